/*
 * front_int.h: private to fcgi/, the front process's shared types and the
 * functions that cross its files, grouped by the file that defines them
 * (everything else in those files is static).  front.h is the process's
 * interface to the master; this is how its parts see each other:
 *
 *   front.c         start, signals, settings, the control thread
 *   conn.c          the connection threads: accept, serve_conn,
 *                   serve_request, the watchdog, stop and drain
 *   relay.c         one request through a worker (the dispatch area)
 *   stream.c        a request's libfcgi streams: bodies, the front's own
 *                   answers and pages
 *   store_client.c  one /kv request through the store
 *   workers.c       the front's view of the workers: table, channels,
 *                   kill
 */
#ifndef PP_FRONT_INT_H
#define PP_FRONT_INT_H

#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "incident.h"
#include "mgmt.h"
#include "msg.h"
#include "proc.h"
#include "request.h"
#include "status.h"

/*
 * C_WAITING: inside libfcgi, waiting for or reading a request's params;
 * C_BODY: reading its body; C_BUSY: the rest.  The watchdog bounds the
 * time in the first two by --read-timeout as a whole, so a client that
 * drips a byte now and then cannot hold a thread.
 */
enum cstate { C_NONE, C_WAITING, C_BODY, C_BUSY };

/* One connection thread and the FastCGI connection it serves. */
struct conn {
	pthread_t	 th;
	pthread_mutex_t	 lk;		/* guards state, since, dupfd, gen,
					 * relaying and fd_given */
	enum cstate	 state;
	int64_t		 since;		/* when state was entered */
	int		 dupfd;		/* for shutdown(), and for workers */
	uint32_t	 gen;		/* connections taken (msg_conn.gen) */
	unsigned	 nreq;		/* requests on this connection */
	unsigned	 idx;		/* its mailbox in the dispatch area */
	_Atomic int	 waiting;	/* in wait_direct() (relay.c) */
	int		 input;		/* wait_direct saw it readable */
	int		 counted;	/* a worker counted the request */
	/* Set by the relay, for the control thread's check of a worker
	 * that asks for the connection (workers.c): a request of ours is
	 * with a worker (1: direct, 0: relayed, -1: none), and the tag of
	 * the worker that was given the fd (0: none yet). */
	int		 relaying;
	uint32_t	 fd_given;
	FCGX_Request	 req;
	char		*body;
	size_t		 bodycap;
	struct reqinfo	 ri;
	unsigned	 widx_pid;	/* who answered, for the slow log */
	int64_t		 qwait_us;	/* its time in line (relay.c); -1 */
	int64_t		 out_bytes;	/* of its answer, by stream_put */
	_Atomic int64_t	 queued_us;	/* put in line then (0: not), for
					 * the watchdog's oldest */
	/* A /kv request waiting for the store (store_client.c: all
	 * written under store.lk, the reply read once sdone is set). */
	struct conn	*snext;
	uint64_t	 sid;
	_Atomic uint32_t sdone;		/* futex word: the reply is in */
	unsigned	 sgen;		/* incarnation it was sent to */
	unsigned	 sstatus;
	unsigned char	*sreply;	/* the store's reply, copied */
	size_t		 sreply_len, sreply_cap;
	char		*page;		/* /status and /metrics, on first use */
	struct mgmt_filter mf;		/* management records (mgmt.c) */
	/* A request answered past --timeout whose worker still held the
	 * mailbox (relay.c: relay_settle frees it before the next). */
	struct {
		uint32_t	 tag;		/* the worker's; 0: none */
		int		 b;		/* its large buffer, or -1 */
		int		 shut;		/* the connection was shut */
		int64_t		 until;		/* the most we wait, ms */
	}		 late;
};

/* A worker as the front knows it: an entry of workers.c's table
 * (by master slot), copied out by workers_at(). */
struct fworker {
	int		 used;
	uint64_t	 id;
	uint32_t	 tag;		/* dispatch_tag(slot, id) */
	pid_t		 pid;
	unsigned	 number;
};

/* The settings a reload may change (front.c's apply_settings, from
 * MSG_SETTINGS); any thread reads them with atomic_load. */
struct front_live {
	_Atomic uint64_t max_body;
	_Atomic uint32_t timeout_ms, read_timeout_ms, slow_ms, debug, queue;
	_Atomic uint32_t queue_target_ms;
};

struct pollfd;

/* front.c */
extern struct front_live front_live;
extern sigset_t	front_wake_mask;	/* a thread's mask, SIGUSR2 let in */
int		front_start_thread(pthread_t *, void *(*)(void *), void *);
void		front_incident(enum incident_kind, pid_t, unsigned status,
		    const struct reqinfo *);

/* conn.c */
void		conn_start(unsigned threads, int listen_fd);
void		conn_stop(void);
void		conn_state(struct conn *, enum cstate);
struct conn	*conn_at(uint32_t mbox);
void		conn_wake(struct conn *);
void		conn_wake_all(void);
/* status_held_source's: up to max requests workers hold now, from every
 * connection; how many. */
unsigned	conn_held(struct held *, unsigned max);
/* The line's depth and its oldest request's age into the shared stats:
 * the watchdog's every 100 ms, and /status's and /metrics' before they
 * render, so a page says what is in line when it is asked for. */
void		conn_count_line(void);

/* relay.c */
unsigned	relay(struct conn *, int64_t start);
int		relay_settle(struct conn *);

/* stream.c */
int		stream_put(struct conn *, const void *, size_t);
int		stream_flush(struct conn *);
unsigned	stream_reply(struct conn *, unsigned status, const char *extra,
		    const char *why);
unsigned	stream_page(struct conn *);
unsigned	stream_take_body(struct conn *, size_t *blen);
unsigned	stream_take_body_into(struct conn *, unsigned char *buf,
		    size_t limit, size_t *blen);
unsigned	stream_too_large(struct conn *);
void		stream_skip_body(struct conn *);

/* store_client.c */
void		store_client_init(void);
void		store_client_up(const struct msg_hdr *,
		    const struct msg_worker *, int *fds);
unsigned	store_client_request(struct conn *, const char *body,
		    size_t blen, int64_t deadline_ms, unsigned queue_cap,
		    int debug);

/* workers.c */
void		workers_init(int ctl_fd);
void		workers_ask_kill(uint64_t id, uint32_t mslot, pid_t pid,
		    unsigned number, enum role kind);
struct fworker	workers_at(uint32_t tag);
void		workers_kill(uint32_t tag);
void		workers_up(const struct msg_hdr *, const struct msg_worker *,
		    int *fds);
void		workers_gone(const struct msg_hdr *, const struct msg_worker *);
void		workers_retire(const struct msg_hdr *,
		    const struct msg_worker *);
int		workers_pollfds(struct pollfd *, uint32_t *slot);
void		workers_chan(uint32_t slot);

#endif
