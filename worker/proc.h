/*
 * proc.h: the process model: the roles, what a row of the role table
 * says about one (main.c holds the table, master.c reads it), the fds each
 * role finds at start, the master's slots; and what every child does
 * after fork(): its title, fd hygiene, signals.  Also the one clock and
 * the CPU-list parser.
 */
#ifndef PP_PROC_H
#define PP_PROC_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"

struct msg_settings;

/* What a process is, as ps, /status and /metrics name it. */
enum role {
	ROLE_FRONT,
	ROLE_WORKER,
	ROLE_STORE,
	ROLE_COUNT		/* not a role: the size of the role table */
};

/* The master's slots: every child it supervises, new and retiring. */
#define PROC_SLOTS	(2 * PP_WORKERS_MAX + 8)

/*
 * The fds each role finds after proc_keep_fds(), by number: its row's
 * fds[] says what the master puts at each, and its entry function hands
 * them on by these names.
 */
#define FRONT_LISTEN_FD	3	/* the listening socket */
#define FRONT_CTL_FD	4	/* its control socket to the master */
#define WORKER_LIFE_FD 3	/* a worker's lifeline */
#define WORKER_CHAN_FD 4	/* its end of its channel to the front */
#define STORE_REQ_FD	3	/* the store: read end of its request pipe */
#define STORE_REP_FD	4	/* the store: write end of its reply pipe */
#define STORE_LIFE_FD	5	/* the store: read end of its lifeline */
#define PROC_FD_MAX	8	/* fds[] of a row: numbers 3..PROC_FD_MAX-1 */

/* What the master puts at one fd number of a child. */
enum proc_fd {
	PROC_FD_NONE,
	PROC_FD_LISTEN,	/* the listening socket (the master keeps it too) */
	PROC_FD_CTL,	/* a control socket: the master holds the other end */
	PROC_FD_LIFE,	/* a lifeline's read end: the master holds the write
			 * end, and closing it tells the child to go */
	PROC_FD_CHAN,	/* a channel (SOCK_SEQPACKET) to the front, which
			 * gets the other end */
	PROC_FD_REQ,	/* a request pipe's read end: the front writes */
	PROC_FD_REP	/* a reply pipe's write end: the front reads */
};

/* What a child's entry function is told besides the settings. */
struct proc_start {
	unsigned	number;		/* 1..count, 0 for a role of one */
	uint32_t	slot;		/* its master slot */
	uint64_t	id;		/* its unique id, for the master's life */
};

/* struct proc_role.flags */
#define PROC_HUB	0x01	/* the front: holds the master's control
				 * socket and keeps the shared counters
				 * writable; a new dispatch area is mapped
				 * before each start; no other role starts
				 * while it is down, and its end retires
				 * every other child */
#define PROC_AREA	0x02	/* takes requests from the dispatch area:
				 * enlisted in it before the fork */
#define PROC_PAGE	0x04	/* has its own stats page (stats.h), which
				 * the front gets read-only */
#define PROC_RELOAD	0x08	/* replaced on reload: new ones start beside
				 * the old, which then retire */
#define PROC_GONE_ANY	0x10	/* the front hears of its end even when it
				 * was retiring or the master stopping (a
				 * front thread may be waiting for it) */
#define PROC_GROUP	0x20	/* leads its own process group: what it
				 * starts (an --exec program, its helpers)
				 * dies with it when the master kills it */

/*
 * Back-off: an end the master did not order, sooner than quick_ms after
 * start, is a failed start; from the second in a row the master waits
 * 100 ms, doubling, at most max_ms, before the next start.
 */
#define PROC_QUICK_MS		1000
#define PROC_BACKOFF_MAX_MS	5000

/* The bound on a probe (proc_probe), after which its group is killed. */
#define PROC_PROBE_MS		15000

/*
 * One row of the role table (nginx's ngx_process_t, httpd's procs[]):
 * everything the master needs to start and keep up a role, without
 * knowing what the role does.  Every child is respawned when it ends
 * while it is running (not retiring, not at stop), with back-off.
 */
struct proc_role {
	/* Its name in the log; ps shows "pipepool: NAME[ NUMBER]". */
	const char	*name;
	void		(*entry)(const struct options *,
			    const struct proc_start *) __attribute__((noreturn));
	/* How many run, numbered 1..count; NULL: one, numbered 0. */
	unsigned	(*count)(const struct options *);
	/* A pool sized to the load: the most that may run (count is the
	 * least); the master keeps a target between them.  NULL: count. */
	unsigned	(*count_max)(const struct options *);
	/* What it keeps, by fd number: 3, 4, ... with no gap. */
	enum proc_fd	 fds[PROC_FD_MAX];
	unsigned	 flags;		/* PROC_* */
	unsigned	 quick_ms;	/* back-off, as above */
	unsigned	 backoff_max_ms;
	/* PROC_HUB: the settings sent to it at start and on reload. */
	void		(*settings)(const struct options *,
			    struct msg_settings *);
	/* PROC_RELOAD, or NULL: whether new ones could start with these
	 * settings, checked before the first start and before a reload
	 * replaces any (a failure refuses the reload).  0, or -1 with a
	 * one-line reason in err. */
	int		(*probe)(const struct options *, char *err,
			    size_t errlen);
};

/* What proc_probe runs in its child: 0, or -1 with a reason in err. */
typedef int	(*proc_check_fn)(const struct options *, char *err,
		    size_t errlen);

void	proc_title_init(int argc, char **argv);
void	proc_title(const char *title);
int	proc_keep_fds(const int *fds, int nfds);
int	proc_child_signals(void);
int	proc_exec_child(pid_t parent, const int *keep, int n);
void	proc_exec_fail(int ck) __attribute__((noreturn));
int64_t	proc_now_ms(void);
int64_t	proc_now_us(void);
/*
 * Run fn(o) in a child that leads its own process group and keeps only
 * fds 0-2, bounded by timeout_ms; then kill the group, so nothing it
 * started outlives it.  For code we did not write that must not run in
 * the caller (an application's init).  0 if fn returned 0, else -1 with
 * a one-line reason in err: fn's, or how the child died or timed out.
 */
int	proc_probe(proc_check_fn fn, const struct options *o, int timeout_ms,
	    char *err, size_t errlen);
/* "exited with status 3", "killed by signal 6 (Aborted)": a wait status. */
void	proc_describe_exit(int status, char *buf, size_t len);
int	proc_cpulist(const char *, cpu_set_t *);

#endif
