/*
 * stats.h: counters shared by all pipepool processes.
 *
 * The global region (struct stats) is one MAP_SHARED memfd the master maps
 * read-write before it forks; the front inherits that mapping, and so
 * may write.  A worker or the store replaces it right after fork with a
 * read-only mapping of a read-only fd (stats_child()): the kernel then
 * refuses every store (SIGSEGV) and mprotect(PROT_WRITE) (EACCES), so no
 * worker can touch the master's or the front's counters.
 *
 * What a worker reports of itself goes into its own page (struct
 * stats_page, one memfd per worker the master makes before the fork):
 * the worker maps it read-write, the front read-only (the fd comes with
 * MSG_WORKER_UP), and the master read-only for one word: on a reload it
 * retires an old worker once its successor's state says idle or busy
 * (master.c slot_up; a lie only retires the liar's predecessor early),
 * and a MIN:MAX pool counts its idle workers by it (pool_tick; a lie
 * only moves the pool's size within MIN..MAX).
 * The front reads each field once and clamps it (status.c), so a worker
 * can lie only about itself.
 *
 * Writers use relaxed atomics; /status and /metrics read them without
 * stopping anyone.
 */
#ifndef PP_STATS_H
#define PP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "incident.h"
#include "msg.h"
#include "options.h"
#include "proc.h"

#define STATS_HIST	12	/* request-duration histogram buckets */
#define STATS_QHIST	12	/* queue-wait histogram buckets */

/*
 * Requests by status: a fixed set of exact codes (every code pipepool
 * answers with itself, and the common ones), then one bucket per class
 * for any other code an application sends (1xx ... 5xx): STATS_CODES
 * counters, so a worker's page and /metrics stay bounded.  stats_codes[i]
 * is the code counted at i (100, 200, ... for the class buckets).
 */
#define STATS_CODES_EXACT	37
#define STATS_CODES		(STATS_CODES_EXACT + 5)
#define STATS_CODE_CLASS(k)	(STATS_CODES_EXACT + (k) - 1)	/* 1..5 */
extern const uint16_t	stats_codes[STATS_CODES];
/* Where status (100..599) is counted; -1 outside 100..599. */
int	stats_code_slot(unsigned status);

#define STATS_SCRIPT_MAX 128	/* of a CGI's path in a worker's page */

enum wstate { WS_EMPTY, WS_STARTING, WS_IDLE, WS_BUSY, WS_RETIRING };

/* Written by the master (pid, role, number, state, started_unix,
 * pss_kib) and the front (state once up, requests it relayed); read-only
 * to workers. */
struct stats_worker {
	_Atomic int32_t		pid;
	_Atomic uint32_t	state;		/* enum wstate */
	_Atomic uint32_t	role;		/* enum role */
	_Atomic uint32_t	number;
	_Atomic uint64_t	requests;
	_Atomic int64_t		started_unix;
	_Atomic int64_t		pss_kib;	/* the master's sample of its
						 * process group: KiB, -1: none */
};

struct stats {
	_Atomic int64_t		started_unix;
	_Atomic int32_t		master_pid;
	_Atomic uint64_t	accepted;
	_Atomic uint64_t	completed;
	_Atomic uint64_t	codes[STATS_CODES];	/* by stats_code_slot */
	_Atomic uint64_t	rejected_overload;
	_Atomic uint64_t	abandoned;	/* out of line: nginx gave up */
	_Atomic uint64_t	shed;		/* 503: --queue-target-ms */
	_Atomic uint64_t	shed_spells;	/* ...spells of it begun */
	_Atomic uint64_t	access_log_errors;	/* lines lost */
	_Atomic uint64_t	timeouts;
	_Atomic uint64_t	worker_crashes;
	_Atomic uint64_t	respawns;
	_Atomic uint32_t	queue_depth;
	_Atomic uint32_t	queue_capacity;
	_Atomic uint32_t	pool_min, pool_max;	/* --workers */
	_Atomic uint32_t	pool_target;	/* the master's target */
	/* The front's own (stats_queue_wait, the watchdog): queue time
	 * of the requests workers took, by bucket (plus what workers
	 * count in their pages, folded in); the age of the oldest
	 * request in line. */
	_Atomic uint64_t	qhist[STATS_QHIST + 1];	/* last: +Inf */
	_Atomic uint64_t	qwait_us_sum;
	_Atomic uint32_t	queue_oldest_ms;
	_Atomic uint64_t	hist[STATS_HIST + 1];	/* last: +Inf */
	_Atomic uint64_t	duration_us_sum;
	/* The front's, from the store's MSG_STORE_STATE (store_client.c):
	 * its backend (0 SQLite, 1 PostgreSQL), its database's state (0
	 * down, 1 up, 2 read-only) and the connections it made again, by
	 * all stores so far. */
	_Atomic uint32_t	store_backend;
	_Atomic uint32_t	store_db;
	_Atomic uint64_t	store_reconnects;
	struct stats_worker	w[PROC_SLOTS];		/* by master slot */
	/* The last incidents (incident.h), each ring one process's, and
	 * every incident ever, by kind. */
	struct incident_ring	inc_master, inc_front;
	_Atomic uint64_t	incidents[INC_KINDS];
};

/*
 * A worker's own page: its state and the requests it answered on nginx's
 * connection itself (those the front does not count).  Written only by
 * that worker, so plain relaxed loads and stores, no read-modify-write;
 * `requests` is stored last, with release.  Untrusted to the front.
 */
struct stats_page {
	_Atomic uint32_t	state;		/* WS_IDLE or WS_BUSY */
	uint32_t		pad;
	_Atomic uint64_t	requests;
	_Atomic uint64_t	codes[STATS_CODES];
	_Atomic uint64_t	hist[STATS_HIST + 1];
	_Atomic uint64_t	duration_us_sum;
	_Atomic uint64_t	qhist[STATS_QHIST + 1];	/* those requests' */
	_Atomic uint64_t	qwait_us_sum;		/* queue time */
	/* --cgi: the program running, if any.  cgi_seq is odd while the
	 * worker writes the three below (a seqlock: the front copies them
	 * and takes the copy only if cgi_seq was even and unchanged). */
	_Atomic uint32_t	cgi_seq;
	_Atomic int32_t		cgi_pid;	/* 0: none */
	_Atomic int64_t		cgi_started_ms;	/* CLOCK_REALTIME */
	char			cgi_script[STATS_SCRIPT_MAX];	/* any bytes */
};

extern struct stats		*stats;
extern struct stats_page	*stats_page;	/* in a worker, else NULL */

/* The master, at start. */
int	stats_map(void);
/* The master, before forking a worker: its page, as *rw and *ro fds. */
int	stats_page_new(int *rw, int *ro);
/* A worker or the store, right after fork: see above; closes page_fd. */
int	stats_child(int page_fd);

/* The front: a request it answered or relayed is over. */
void	stats_request_end(unsigned status, int64_t took_ms, unsigned slow_ms,
	    const struct msg_request_view *, unsigned pid);
/* A worker: its state, and a request it answered itself. */
void	stats_worker_state(enum wstate);
void	stats_worker_request(unsigned status, int64_t took_ms,
	    unsigned slow_ms, const struct msg_request_view *, unsigned pid);
/* A worker: the CGI program it runs now (pid 0, script NULL: none). */
void	stats_worker_cgi(int32_t pid, const char *script);

/* The front: a worker took a request that waited us microseconds; a
 * worker: so did a request it answers itself (before counting it). */
void	stats_queue_wait(int64_t us);
void	stats_worker_queue_wait(int64_t us);

extern const double	stats_hist_bounds[STATS_HIST];
extern const double	stats_qhist_bounds[STATS_QHIST];
extern const uint64_t	stats_qhist_bounds_us[STATS_QHIST];
/* The same bounds in microseconds (status.c clamps with them). */
extern const uint64_t	stats_hist_bounds_us[STATS_HIST];

#define STAT_ADD(f, n)	atomic_fetch_add_explicit(&stats->f, (n), \
			    memory_order_relaxed)

#endif
