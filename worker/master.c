/*
 * master.c: the supervisor process ("pipepool: master").  It owns the
 * listening socket and one table of children {pid, role, number, state,
 * lifeline, id}, and starts each child from its row of the role table
 * (proc.h; main.c holds it) through one spawn_child(), knowing no role's
 * internals.  Signal handlers only set flags; one loop (ppoll on the
 * front's control socket, with those signals unblocked only while it
 * waits) reaps, respawns with back-off, reloads and stops.  Stopping asks
 * the front to drain, then escalates TERM, then KILL after a bound.
 * Reloading validates the settings and probes the application first
 * (proc_probe: a child loads it and runs its init), starts the new
 * workers beside the old, and retires each old one only once its
 * successor is up (has loaded its application and waits for requests,
 * as its stats page says): a successor that cannot start leaves the old
 * one serving.  With --worker-max-memory it reads each worker's PSS once
 * a second (the kernel's figure, /proc/PID/smaps_rollup: nothing a worker
 * writes) and replaces one that grew past it the same way.  A pool
 * sized to the load (--workers MIN:MAX) has a target the master moves
 * every POOL_TICK_MS from what it sees (pool_tick): it grows at once,
 * doubling at the most, when requests wait or fewer than --spare are
 * idle, and shrinks, retiring the highest numbers, once more than that
 * have been idle for --idle-timeout.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "dispatch.h"
#include "log.h"
#include "master.h"
#include "msg.h"
#include "proc.h"
#include "stats.h"

#define NSLOTS		PROC_SLOTS
#define NUMBERS		(PP_WORKERS_MAX + 1)	/* a role's numbers: 0..max */
#define KILL_AFTER_MS	2000	/* from TERM to KILL when stopping */
#define AREA_RETRY_MS	1000	/* no dispatch area for a new front */
#define PIPE_SIZE	(256 * 1024)	/* request and reply pipes, when the
					 * kernel agrees */
#define UP_POLL_MS	20	/* after a reload, how often the master looks
				 * whether the new workers are up */
#define MEM_SAMPLE_MS	1000	/* how often the workers' PSS is read */
#define MEM_BUDGET_MS	50	/* ...and the most one reading may take */
#define POOL_TICK_MS	100	/* a MIN:MAX pool: how often its target is
				 * worked out */

enum sstate { SL_EMPTY, SL_RUNNING, SL_RETIRING };

/* Why the master signalled a child itself (none: it did not). */
enum order { ORD_NONE, ORD_FRONT_KILL, ORD_BAD_MSG, ORD_RETIRE_KILL,
    ORD_STOP_TERM,
    ORD_STOP_KILL };

struct slot {
	pid_t		pid;
	enum sstate	state;
	enum role	role;
	unsigned	number;		/* 1..count, 0 for a role of one */
	int		life_fd;	/* write end of the child's lifeline */
	uint64_t	id;		/* unique for the master's lifetime */
	int64_t		started_ms;
	enum order	killed;		/* we signalled it, and why */
	unsigned	gen;		/* the reload it was started after */
	int		recycle;	/* past --worker-max-memory: replaced
					 * as on a reload */
	int64_t		retire_by;	/* SL_RETIRING: killed if still there
					 * then (0: never) */
	/* PROC_PAGE: its stats page, read-only (sealed: it cannot shrink
	 * under us); it says when the child is up.  Else NULL. */
	const struct stats_page	*page;
};

/* Per role and number: consecutive deaths at start, and when to respawn. */
struct respawn {
	unsigned	fails;
	int64_t		at_ms;
};

/*
 * The fds made for one child, by the fd number it will find them at:
 * its own end, and the other end (the master's: a control socket, a
 * lifeline; or the front's: a channel, a pipe).  The listening socket is
 * the master's and is not in end[].
 */
struct child_fds {
	int	end[PROC_FD_MAX];
	int	peer[PROC_FD_MAX];
	int	page[2];	/* its stats page: read-write, read-only */
	int	nkeep;		/* fds 3..3+nkeep-1 */
};

static volatile sig_atomic_t	sig_chld, sig_term, sig_hup, sig_usr1;

static const struct proc_role	*roles;
static enum role		 hub;		/* the row with PROC_HUB */
static struct slot		 slots[NSLOTS];
static struct respawn		 respawns[ROLE_COUNT][NUMBERS];
static struct options		*opts;
static int			 listen_fd = -1;
static int			 ctl_fd = -1;	/* our end of the front's */
static uint64_t			 next_id = 1;
static unsigned			 gen;		/* reloads so far */
static int			 replacing;	/* old children wait for
						 * their successors */
static int			 stopping;
static int64_t			 mem_at;	/* the next PSS sample */

/* A role sized to the load (count_max): its target, and since when it
 * has had more workers than it wants (0: not). */
static struct pool {
	unsigned	target;
	int64_t		excess_since;
} pools[ROLE_COUNT];
static int64_t			 pool_at;	/* the next pool_tick */
static int64_t			 stop_term_at, stop_kill_at;
static int			 pass_argc;
static char			**pass_argv;

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD:
		sig_chld = 1;
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	case SIGUSR1:
		sig_usr1 = 1;
		break;
	default:
		sig_term = 1;
		break;
	}
}

static void
queue_cap_stat(const struct options *o)
{
	atomic_store(&stats->queue_capacity, o->queue);
}

static const char *
role_name(enum role r)
{
	return roles[r].name;
}

/* "worker 3", "store": how the log names a child, and ps after "pipepool: ". */
static const char *
slot_name(const struct slot *s, char *buf, size_t len)
{
	if (roles[s->role].count != NULL)
		snprintf(buf, len, "%s %u", role_name(s->role), s->number);
	else
		snprintf(buf, len, "%s", role_name(s->role));
	return buf;
}

/* The least and the most of a pool role r (count..count_max). */
static void
pool_bounds(enum role r, unsigned *lo, unsigned *hi)
{
	*lo = roles[r].count(opts);
	*hi = roles[r].count_max(opts);
	if (*lo > PP_WORKERS_MAX)
		*lo = PP_WORKERS_MAX;
	if (*hi > PP_WORKERS_MAX)
		*hi = PP_WORKERS_MAX;
	if (*hi < *lo)
		*hi = *lo;
}

/* How many of pool role r run now: its target, kept within its bounds
 * (which a reload may move); at first --spare, or the least. */
static unsigned
pool_size(enum role r)
{
	struct pool	*p = &pools[r];
	unsigned	 lo, hi;

	pool_bounds(r, &lo, &hi);
	if (p->target == 0)
		p->target = opts->spare > lo ? opts->spare : lo;
	if (p->target < lo)
		p->target = lo;
	if (p->target > hi)
		p->target = hi;
	atomic_store(&stats->pool_min, lo);
	atomic_store(&stats->pool_max, hi);
	atomic_store(&stats->pool_target, p->target);
	return p->target;
}

/* The numbers role r runs as: 1..count (or its pool's target), or 0
 * alone for a role of one. */
static void
role_numbers(enum role r, unsigned *first, unsigned *last)
{
	unsigned	n;

	if (roles[r].count == NULL) {
		*first = *last = 0;
		return;
	}
	n = roles[r].count_max != NULL ? pool_size(r) : roles[r].count(opts);
	*first = 1;
	*last = n > PP_WORKERS_MAX ? PP_WORKERS_MAX : n;
}

static struct slot *
slot_free(void)
{
	int	i;

	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state == SL_EMPTY)
			return &slots[i];
	return NULL;
}

static struct slot *
slot_by_pid(pid_t pid)
{
	int	i;

	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state != SL_EMPTY && slots[i].pid == pid)
			return &slots[i];
	return NULL;
}

static struct slot *
slot_by_id(uint64_t id)
{
	int	i;

	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state != SL_EMPTY && slots[i].id == id)
			return &slots[i];
	return NULL;
}

/* Is s of this generation?  An older child of a PROC_RELOAD role, or
 * one that grew too large, is being replaced: it serves until its
 * successor is up. */
static int
slot_current(const struct slot *s)
{
	return !(roles[s->role].flags & PROC_RELOAD) || (s->gen == gen &&
	    !s->recycle);
}

/* The running child of role r and number n of this generation, or NULL. */
static struct slot *
slot_running(enum role r, unsigned n)
{
	int	i;

	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state == SL_RUNNING && slots[i].role == r &&
		    slots[i].number == n && slot_current(&slots[i]))
			return &slots[i];
	return NULL;
}

static struct slot *
front_slot(void)
{
	return slot_running(hub, 0);
}

static void
slot_stats(struct slot *s)
{
	struct stats_worker	*w = &stats->w[s - slots];

	atomic_store(&w->pid, s->state == SL_EMPTY ? 0 : s->pid);
	atomic_store(&w->role, s->role);
	atomic_store(&w->number, s->number);
	atomic_store(&w->state, s->state == SL_EMPTY ? WS_EMPTY :
	    s->state == SL_RETIRING ? WS_RETIRING : WS_STARTING);
	if (s->state != SL_EMPTY) {
		atomic_store(&w->requests, 0);
		atomic_store(&w->started_unix, (int64_t)time(NULL));
	}
	atomic_store(&w->pss_kib, -1);
}

static int
ctl_send(uint32_t type, struct slot *s, const int *fds, int nfds)
{
	struct msg_worker	mw;

	if (ctl_fd == -1)
		return -1;
	memset(&mw, 0, sizeof(mw));
	mw.slot = (uint32_t)(s - slots);
	mw.role = s->role;
	mw.pid = s->pid;
	mw.number = s->number;
	if (chan_send(ctl_fd, type, s->id, &mw, sizeof(mw), fds,
	    nfds) == -1) {
		log_warn("sending %s to the front", msg_typename(type));
		return -1;
	}
	return 0;
}

static int
send_settings(void)
{
	struct msg_settings	ms;

	roles[hub].settings(opts, &ms);
	if (ctl_fd == -1 || chan_send(ctl_fd, MSG_SETTINGS, 0, &ms,
	    sizeof(ms), NULL, 0) == -1) {
		log_warn("sending settings to the front");
		return -1;
	}
	return 0;
}

/* A broken role table is a broken program: refuse to start. */
static void
check_roles(void)
{
	unsigned	r, i, hubs = 0;

	for (r = 0; r < ROLE_COUNT; r++) {
		if (roles[r].name == NULL || roles[r].entry == NULL)
			fatalx("role %u: no name or no entry", r);
		for (i = 0; i < 3; i++)
			if (roles[r].fds[i] != PROC_FD_NONE)
				fatalx("%s: keeps fd %u", roles[r].name, i);
		for (i = 4; i < PROC_FD_MAX; i++)
			if (roles[r].fds[i] != PROC_FD_NONE &&
			    roles[r].fds[i - 1] == PROC_FD_NONE)
				fatalx("%s: a gap before fd %u", roles[r].name,
				    i);
		if (roles[r].flags & PROC_HUB) {
			hub = (enum role)r;
			hubs++;
			if (roles[r].settings == NULL ||
			    roles[r].count != NULL)
				fatalx("%s: a hub is one, with settings",
				    roles[r].name);
		}
	}
	if (hubs != 1)
		fatalx("the role table has %u hubs, not 1", hubs);
}

static void
close_fds(struct child_fds *cf)
{
	int	i;

	for (i = 0; i < PROC_FD_MAX; i++) {
		if (cf->end[i] != -1)
			close(cf->end[i]);
		if (cf->peer[i] != -1)
			close(cf->peer[i]);
		cf->end[i] = cf->peer[i] = -1;
	}
	for (i = 0; i < 2; i++) {
		if (cf->page[i] != -1)
			close(cf->page[i]);
		cf->page[i] = -1;
	}
}

/* Make what a child finds at one fd number: its end and the other. */
static int
make_fd(enum proc_fd kind, int *end, int *peer)
{
	int	p[2];

	switch (kind) {
	case PROC_FD_NONE:
	case PROC_FD_LISTEN:
		return 0;
	case PROC_FD_CTL:
	case PROC_FD_CHAN:
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    p) == -1) {
			log_warn("socketpair");
			return -1;
		}
		*end = p[1];
		*peer = p[0];
		return 0;
	case PROC_FD_LIFE:
	case PROC_FD_REQ:
	case PROC_FD_REP:
		if (pipe2(p, O_CLOEXEC) == -1) {
			log_warn("pipe2");
			return -1;
		}
		/* The child reads a lifeline or requests, writes replies. */
		*end = p[kind == PROC_FD_REP];
		*peer = p[kind != PROC_FD_REP];
		/* Fewer wake-ups per large request; best effort (the kernel
		 * limits pipe memory per user, pipe-user-pages-soft). */
		if (kind != PROC_FD_LIFE)
			(void)fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
		return 0;
	}
	return -1;
}

/* Make every fd of role r's row, and its stats page.  -1: cf is closed. */
static int
make_fds(enum role r, struct child_fds *cf)
{
	const struct proc_role	*pr = &roles[r];
	int			 i;

	cf->nkeep = 0;
	cf->page[0] = cf->page[1] = -1;
	for (i = 0; i < PROC_FD_MAX; i++)
		cf->end[i] = cf->peer[i] = -1;
	for (i = 3; i < PROC_FD_MAX && pr->fds[i] != PROC_FD_NONE; i++) {
		if (make_fd(pr->fds[i], &cf->end[i], &cf->peer[i]) == -1)
			goto fail;
		cf->nkeep++;
	}
	if ((pr->flags & PROC_PAGE) &&
	    stats_page_new(&cf->page[0], &cf->page[1]) == -1) {
		log_warn("making a %s's stats page", pr->name);
		goto fail;
	}
	return 0;
fail:
	close_fds(cf);
	return -1;
}

/*
 * In the child, right after fork(): keep its fds at their numbers, drop
 * the shared counters to read-only (but in the front) with its own page,
 * take its title and run its entry function.
 */
static void __attribute__((noreturn))
child_run(const struct slot *s, struct child_fds *cf,
    const struct proc_start *ps)
{
	const struct proc_role	*pr = &roles[s->role];
	char			 name[32], title[48];
	int			 keep[PROC_FD_MAX], i;

	for (i = 0; i < cf->nkeep; i++)
		keep[i] = pr->fds[3 + i] == PROC_FD_LISTEN ? listen_fd :
		    cf->end[3 + i];
	slot_name(s, name, sizeof(name));
	/* Before the code we did not write runs (the parent does it too:
	 * whichever comes first, a kill of the group reaches it). */
	if ((pr->flags & PROC_GROUP) && setpgid(0, 0) == -1)
		fatal("setpgid");
	if (proc_child_signals() == -1 || (!(pr->flags & PROC_HUB) &&
	    stats_child(cf->page[0]) == -1) ||
	    proc_keep_fds(keep, cf->nkeep) == -1)
		fatal("setting up the %s", name);
	snprintf(title, sizeof(title), "pipepool: %s", name);
	proc_title(title);
	pr->entry(opts, ps);
}

/*
 * In the master, after the fork: close the child's ends, keep ours (the
 * control socket, the lifeline), and give the front the others, in the
 * order of their fd numbers and then the stats page read-only, with
 * MSG_WORKER_UP.  The front itself gets its settings instead.
 */
static int
child_started(struct slot *s, struct child_fds *cf)
{
	const struct proc_role	*pr = &roles[s->role];
	int			 give[PROC_FD_MAX + 1], ngive = 0, i, rc = 0;

	for (i = 3; i < 3 + cf->nkeep; i++) {
		if (pr->fds[i] == PROC_FD_CTL)
			ctl_fd = cf->peer[i];
		else if (pr->fds[i] == PROC_FD_LIFE)
			s->life_fd = cf->peer[i];
		else
			continue;
		cf->peer[i] = -1;
	}
	for (i = 3; i < 3 + cf->nkeep; i++)
		if (cf->peer[i] != -1)
			give[ngive++] = cf->peer[i];
	if (cf->page[1] != -1) {
		give[ngive++] = cf->page[1];
		if ((s->page = mmap(NULL, sizeof(*s->page), PROT_READ,
		    MAP_SHARED, cf->page[1], 0)) == MAP_FAILED) {
			log_warn("mapping a stats page");
			s->page = NULL;	/* then it counts as up at once */
		}
	}
	if (pr->flags & PROC_HUB)
		rc = send_settings();
	else
		(void)ctl_send(MSG_WORKER_UP, s, give, ngive);
	close_fds(cf);
	return rc;
}

/*
 * Start a child of role r, number n, in the free slot s: make the fds its
 * row lists (a front first gets a new dispatch area; a worker is enlisted
 * in it), fork, and run its entry function in the child.  -1 if anything
 * fails (maintain() tries again later).
 */
static int
spawn_child(struct slot *s, enum role r, unsigned n)
{
	const struct proc_role	*pr = &roles[r];
	struct child_fds	 cf;
	struct proc_start	 ps;
	char			 name[32];
	pid_t			 pid;

	if (pr->flags & PROC_HUB) {
		/* A new dispatch area for each front: workers of the old one
		 * keep theirs until they exit, so none can write into the
		 * new one. */
		dispatch_unmap();
		if (dispatch_map(opts->threads, dispatch_nbuf_for(opts->workers_max,
		    opts->threads), opts->max_body) == -1) {
			log_warn("mapping the dispatch area; retrying in 1 s");
			respawns[r][n].at_ms = proc_now_ms() + AREA_RETRY_MS;
			return -1;
		}
	}
	if (make_fds(r, &cf) == -1)
		return -1;
	if (pr->flags & PROC_AREA)
		dispatch_enlist((uint32_t)(s - slots));
	ps.number = n;
	ps.slot = (uint32_t)(s - slots);
	ps.id = next_id;
	if ((pid = fork()) == -1) {
		log_warn("fork");
		close_fds(&cf);
		return -1;
	}
	memset(s, 0, sizeof(*s));
	s->role = r;
	s->number = n;
	if (pid == 0)
		child_run(s, &cf, &ps);
	if (pr->flags & PROC_GROUP)
		(void)setpgid(pid, pid);	/* EACCES: it did it first */
	s->pid = pid;
	s->state = SL_RUNNING;
	s->life_fd = -1;
	s->id = next_id++;
	s->gen = gen;
	s->started_ms = proc_now_ms();
	slot_stats(s);
	log_info("%s spawned, pid %ld", slot_name(s, name, sizeof(name)),
	    (long)pid);
	return child_started(s, &cf);
}

/*
 * Start whatever should run and does not; respects back-off delays.  The
 * roles start in the table's order; none while the front cannot.
 */
static void
maintain(void)
{
	struct slot	*s;
	unsigned	 r, n, first, last;
	int64_t		 now = proc_now_ms();

	if (stopping)
		return;
	for (r = 0; r < ROLE_COUNT; r++) {
		role_numbers((enum role)r, &first, &last);
		for (n = first; n <= last; n++) {
			if (slot_running((enum role)r, n) != NULL)
				continue;
			if (now >= respawns[r][n].at_ms) {
				if ((s = slot_free()) == NULL)
					log_warnx("no free slot for a %s",
					    roles[r].name);
				else if (spawn_child(s, (enum role)r, n) == 0)
					continue;
			}
			if (r == hub)
				return;
		}
	}
}

/* Milliseconds until maintain() or the stop sequence has work, or -1. */
static int
next_timer(void)
{
	int64_t		now = proc_now_ms(), t = -1;
	unsigned	r, n;

	if (stopping) {
		t = stop_term_at > now ? stop_term_at : stop_kill_at;
	} else {
		if (replacing)
			t = now + UP_POLL_MS;
		if (t == -1 || mem_at < t)
			t = mem_at;
		if (opts->workers_max > opts->workers && (t == -1 ||
		    pool_at < t))
			t = pool_at;
		for (n = 0; n < NSLOTS; n++)
			if (slots[n].state == SL_RETIRING &&
			    slots[n].retire_by != 0 && slots[n].killed ==
			    ORD_NONE && (t == -1 || slots[n].retire_by < t))
				t = slots[n].retire_by;
		for (r = 0; r < ROLE_COUNT; r++)
			for (n = 0; n < NUMBERS; n++)
				if (respawns[r][n].at_ms > now && (t == -1 ||
				    respawns[r][n].at_ms < t))
					t = respawns[r][n].at_ms;
	}
	if (t == -1)
		return -1;
	return t <= now ? 0 : (int)(t - now);
}

/*
 * Signal a child; one of a PROC_GROUP role with its whole group (its
 * --exec program and whatever that started), or alone if it has no group
 * of its own yet (ESRCH: while unreaped, its pid names no other group).
 */
static int
kill_child(const struct slot *s, int sig)
{
	if ((roles[s->role].flags & PROC_GROUP) && (kill(-s->pid, sig) == 0 ||
	    errno != ESRCH))
		return 0;
	return kill(s->pid, sig);
}

/* What the log says the master had to do with a child's end. */
static const char *
order_text(const struct slot *s)
{
	switch (s->killed) {
	case ORD_FRONT_KILL:
		return " (killed by the master on the front's request)";
	case ORD_RETIRE_KILL:
		return " (killed by the master: it did not leave within "
		    "--timeout + --grace of its retirement)";
	case ORD_BAD_MSG:
		return " (killed by the master: it sent a bad message)";
	case ORD_STOP_TERM:
		return " (stopping: sent SIGTERM after --grace)";
	case ORD_STOP_KILL:
		return " (stopping: sent SIGKILL after SIGTERM)";
	case ORD_NONE:
		break;
	}
	if (stopping)
		return " (stopped at shutdown)";
	if (s->state == SL_RETIRING)
		return " (retired)";
	return "";
}

/* An incident of the master's (incident.h): it is its ring's writer. */
static void
master_incident(enum incident_kind kind, pid_t pid, const char *what)
{
	incident_add(&stats->inc_master, stats->incidents, kind,
	    (int32_t)pid, 0, what);
}

/* The log line of a child's end: a warning if nobody ordered it. */
static void
log_end(const struct slot *s, int status, int abnormal)
{
	char	how[128], name[32], what[INCIDENT_TEXT_MAX];

	proc_describe_exit(status, how, sizeof(how));
	if (abnormal && s->killed == ORD_NONE && !stopping)
		log_warnx("%s (pid %ld) %s%s", slot_name(s, name,
		    sizeof(name)), (long)s->pid, how, order_text(s));
	else
		log_info("%s (pid %ld) %s%s", slot_name(s, name, sizeof(name)),
		    (long)s->pid, how, order_text(s));
	if (abnormal && s->killed == ORD_NONE && !stopping &&
	    s->state == SL_RUNNING) {
		STAT_ADD(worker_crashes, 1);
		(void)snprintf(what, sizeof(what), "%.24s %.100s",
		    slot_name(s, name, sizeof(name)), how);
		master_incident(INC_EXIT, s->pid, what);
	}
}

/*
 * The front is gone: the other children go with it, closing their
 * lifelines makes them exit (the new front gets a new dispatch area and
 * new workers).
 */
static void
front_gone(void)
{
	int	i;

	if (ctl_fd != -1)
		close(ctl_fd);
	ctl_fd = -1;
	for (i = 0; i < NSLOTS; i++) {
		if (slots[i].state == SL_EMPTY || slots[i].role == hub)
			continue;
		if (slots[i].life_fd != -1)
			close(slots[i].life_fd);
		slots[i].life_fd = -1;
		slots[i].state = SL_RETIRING;
	}
}

/*
 * A running child ended, not at stop: when to start its successor.  A
 * start-up failure is any abnormal end sooner than its row's quick_ms
 * after start that the master did not order (not stopping, not retired,
 * not killed for the front), whatever the signal: a worker that the OOM
 * killer SIGKILLs at each start must back off too.  A child killed for a
 * bad message counts: its own fault.
 */
static void
back_off(const struct slot *s, int64_t lived, int abnormal)
{
	const struct proc_role	*pr = &roles[s->role];
	struct respawn		*rs = &respawns[s->role][s->number];
	int64_t			 d;
	char			 what[INCIDENT_TEXT_MAX];

	STAT_ADD(respawns, 1);
	if (lived < pr->quick_ms && abnormal && (s->killed == ORD_NONE ||
	    s->killed == ORD_BAD_MSG))
		rs->fails++;
	else
		rs->fails = 0;
	if (rs->fails < 2) {
		rs->at_ms = 0;
		return;
	}
	d = 100LL << (rs->fails - 2 > 6 ? 6 : rs->fails - 2);
	if (d > pr->backoff_max_ms)
		d = pr->backoff_max_ms;
	rs->at_ms = proc_now_ms() + d;
	log_warnx("%s %u died %u times in a row within %u ms of starting; "
	    "respawning in %lld ms (back-off)", pr->name, s->number,
	    rs->fails, pr->quick_ms, (long long)d);
	(void)snprintf(what, sizeof(what), "%s %u died %u times in a row "
	    "at start; respawning in %lld ms", pr->name, s->number, rs->fails,
	    (long long)d);
	master_incident(INC_BACKOFF, s->pid, what);
}

static void
child_gone(struct slot *s, int status)
{
	int64_t	lived = proc_now_ms() - s->started_ms;
	int	abnormal = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	log_end(s, status, abnormal);
	if (s->life_fd != -1)
		close(s->life_fd);
	if (s->page != NULL)
		(void)munmap((void *)s->page, sizeof(*s->page));
	s->page = NULL;
	if (s->role == hub)
		front_gone();
	else if ((roles[s->role].flags & PROC_GONE_ANY) ||
	    (s->state == SL_RUNNING && !stopping))
		/* The front fails what it held (a front thread may be
		 * waiting for it). */
		(void)ctl_send(MSG_WORKER_GONE, s, NULL, 0);
	/* One being replaced has a successor already: none to time. */
	if (s->state == SL_RUNNING && !stopping && slot_current(s))
		back_off(s, lived, abnormal);
	s->state = SL_EMPTY;
	s->pid = 0;
	slot_stats(s);
}

static void
reap(void)
{
	struct slot	*s;
	pid_t		 pid;
	int		 status;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid == -1 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if ((s = slot_by_pid(pid)) == NULL)
			continue;
		/* What it started and left behind (a CGI's helpers) goes
		 * with it; its pid names no other group while any of its
		 * own is left, so this kills nothing else. */
		if (roles[s->role].flags & PROC_GROUP)
			(void)kill(-pid, SIGKILL);
		child_gone(s, status);
	}
}

/*
 * Retire s: it finishes its request, runs its application's fini and
 * leaves.  Code we did not write runs in both, so it is given --timeout
 * + --grace for them; then check_retiring() kills it, or retirements
 * (every reload, every shrink of a pool) could fill the slot table.
 */
static void
retire(struct slot *s)
{
	s->state = SL_RETIRING;
	s->retire_by = proc_now_ms() + (int64_t)((opts->timeout +
	    opts->grace) * 1000);
	slot_stats(s);
	(void)ctl_send(MSG_RETIRE, s, NULL, 0);
}

/* Kill the retired children past their time (retire()). */
static void
check_retiring(void)
{
	struct slot	*s;
	int64_t		 now = proc_now_ms();
	char		 name[32];
	int		 i;

	for (i = 0; i < NSLOTS; i++) {
		s = &slots[i];
		if (s->state != SL_RETIRING || s->retire_by == 0 ||
		    now < s->retire_by || s->killed != ORD_NONE)
			continue;
		log_warnx("%s (pid %ld) did not leave within --timeout + "
		    "--grace of its retirement; killing it", slot_name(s, name,
		    sizeof(name)), (long)s->pid);
		s->killed = ORD_RETIRE_KILL;
		(void)kill_child(s, SIGKILL);
	}
}

/* Has s loaded its code and taken (or waited for) a request? */
static int
slot_up(const struct slot *s)
{
	uint32_t	st;

	if (s->page == NULL)
		return 1;
	st = atomic_load_explicit(&s->page->state, memory_order_relaxed);
	return st == WS_IDLE || st == WS_BUSY;
}

/* Is every number of role r up in this generation? */
static int
role_up(enum role r)
{
	struct slot	*s;
	unsigned	 n, first, last;

	role_numbers(r, &first, &last);
	for (n = first; n <= last; n++)
		if ((s = slot_running(r, n)) == NULL || !slot_up(s))
			return 0;
	return 1;
}

/*
 * After a reload: an old child of a PROC_RELOAD role retires (finishes
 * its request and leaves) once its successor, the same role and number,
 * is up; one whose number is no longer run, once all of the new are up.
 * Until then it serves, so a successor that cannot start (its init
 * fails, it crashes) leaves the pool as it was.  Returns whether any
 * still waits (the loop then looks again every UP_POLL_MS).
 */
static int
retire_replaced(void)
{
	struct slot	*s, *next;
	unsigned	 first, last;
	int		 i, up, waiting = 0;

	for (i = 0; i < NSLOTS; i++) {
		s = &slots[i];
		if (s->state != SL_RUNNING || slot_current(s))
			continue;
		role_numbers(s->role, &first, &last);
		if (s->number >= first && s->number <= last)
			up = (next = slot_running(s->role, s->number)) != NULL &&
			    slot_up(next);
		else
			up = role_up(s->role);
		if (!up) {
			waiting = 1;
			continue;
		}
		retire(s);
	}
	return waiting;
}

/* pid's proportional set size in KiB (its share of every page it maps,
 * not the pages it shares counted whole, as RSS does), or -1. */
static long long
pss_kib(pid_t pid)
{
	char		 path[64], buf[4096], *p;
	long long	 kib;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	(void)snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup",
	    (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (len < sizeof(buf) - 1 && ((n = read(fd, buf + len,
	    sizeof(buf) - 1 - len)) > 0 || (n == -1 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	(void)close(fd);
	buf[len] = '\0';
	if ((p = strstr(buf, "\nPss:")) == NULL ||
	    sscanf(p + 5, "%lld", &kib) != 1)
		return -1;
	return kib;
}

/* The process group pid leads, of a process in /proc (name: its pid),
 * or -1. */
static long
pgrp_of(const char *name)
{
	char	path[64], buf[512], *p;
	long	pgrp;
	ssize_t	n;
	int	fd;

	(void)snprintf(path, sizeof(path), "/proc/%s/stat", name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((n = read(fd, buf, sizeof(buf) - 1)) == -1 && errno == EINTR)
		;
	(void)close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "pid (comm) state ppid pgrp ...": comm may hold anything. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %*c %*d %ld", &pgrp) != 1)
		return -1;
	return pgrp;
}

/*
 * The PSS of every running child, a PROC_GROUP one's whole process group
 * (an --exec program, what an application started), into kib[slot]
 * (-1: unknown): one pass over /proc, within MEM_BUDGET_MS (a worker that
 * forks thousands of children must not stall the master's loop: a pass
 * cut short is -1, and the last figures stand; such a worker's PSS then
 * goes unread, and --worker-rlimit-as is what bounds it).
 */
static int
group_pss(long long *kib)
{
	struct dirent	*e;
	DIR		*d;
	long		 g;
	pid_t		 p;
	long long	 k;
	int64_t		 end = proc_now_ms() + MEM_BUDGET_MS;
	unsigned	 n = 0;
	int		 i;

	for (i = 0; i < NSLOTS; i++)
		kib[i] = -1;
	if ((d = opendir("/proc")) == NULL) {
		log_warn("opendir /proc");
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (++n % 64 == 0 && proc_now_ms() > end) {
			(void)closedir(d);
			return -1;
		}
		if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
		    (g = pgrp_of(e->d_name)) <= 0)
			continue;
		p = (pid_t)atol(e->d_name);
		for (i = 0; i < NSLOTS; i++)
			if (slots[i].state == SL_RUNNING &&
			    slots[i].pid == ((roles[slots[i].role].flags &
			    PROC_GROUP) ? (pid_t)g : p) &&
			    (k = pss_kib(p)) >= 0)
				kib[i] = (kib[i] < 0 ? 0 : kib[i]) + k;
	}
	(void)closedir(d);
	return 0;
}

/*
 * Once every MEM_SAMPLE_MS: each worker's PSS, its whole process group's,
 * for /status (stats_worker.pss_kib), and --worker-max-memory: a worker
 * of this generation whose PSS passed it is replaced as on a reload: a
 * successor starts, and it finishes its request and leaves once that one
 * is up.  Nothing a worker writes is read for this.
 */
static void
check_memory(void)
{
	static long long	 kibs[NSLOTS];
	struct slot		*s;
	long long		 kib;
	int64_t			 now = proc_now_ms();
	char			 name[32];
	int			 i;

	if (now < mem_at)
		return;
	mem_at = now + MEM_SAMPLE_MS;
	if (group_pss(kibs) == -1)
		return;
	for (i = 0; i < NSLOTS; i++) {
		s = &slots[i];
		if (s->state != SL_EMPTY)
			atomic_store(&stats->w[i].pss_kib, kibs[i]);
		if (opts->max_memory == 0 || s->state != SL_RUNNING ||
		    !(roles[s->role].flags & PROC_AREA) || !slot_current(s) ||
		    (kib = kibs[i]) == -1 ||
		    (unsigned long long)kib * 1024 <= opts->max_memory)
			continue;
		log_info("%s (pid %ld) uses %lld KiB (PSS), past "
		    "--worker-max-memory %llu: replacing it once its request "
		    "is done", slot_name(s, name, sizeof(name)), (long)s->pid,
		    kib, (unsigned long long)opts->max_memory);
		s->recycle = 1;
		replacing = 1;
	}
}

/* Retire pool role r's children numbered above n: each finishes its
 * request and leaves. */
static void
pool_retire_above(enum role r, unsigned n)
{
	struct slot	*s;
	int		 i;

	for (i = 0; i < NSLOTS; i++) {
		s = &slots[i];
		if (s->state != SL_RUNNING || s->role != r || s->number <= n ||
		    !slot_current(s))
			continue;
		retire(s);
	}
}

/*
 * Move pool role r's target from what it sees: its busy, idle and
 * starting children (each child's page says which: a worker can lie
 * there, but that moves the target only between --workers' bounds, as a
 * busy worker would) and the requests waiting (the front's count).  It
 * wants busy + waiting beyond the idle + --spare.  More: it grows at
 * once, doubling at the most, and only when the last it started are up
 * or requests wait.
 * Fewer: once it has wanted fewer for --idle-timeout, it shrinks to what
 * it wants.
 */
static void
pool_tick(enum role r, int64_t now)
{
	struct pool	*p = &pools[r];
	struct slot	*s;
	unsigned	 lo, hi, up = 0, idle = 0, starting = 0, queued, want;
	unsigned	 cur = pool_size(r);
	int		 i;

	pool_bounds(r, &lo, &hi);
	for (i = 0; i < NSLOTS; i++) {
		s = &slots[i];
		if (s->state != SL_RUNNING || s->role != r || !slot_current(s))
			continue;
		if (!slot_up(s))
			starting++;
		else if (up++, s->page != NULL && atomic_load_explicit(
		    &s->page->state, memory_order_relaxed) == WS_IDLE)
			idle++;
	}
	if ((queued = atomic_load(&stats->queue_depth)) > opts->queue)
		queued = opts->queue;
	/* Requests in line that idle workers are about to take need no
	 * new worker: the front's count is a sample, and a request in line
	 * for the microseconds before an idle worker claims it would else
	 * grow a pool at rest under a single client. */
	want = up - idle + (queued > idle ? queued - idle : 0) + opts->spare;
	want = want < lo ? lo : want > hi ? hi : want;
	if (want > cur) {
		p->excess_since = 0;
		if (starting > 0 && queued == 0)
			return;
		p->target = want - cur > cur ? 2 * cur : want;
		log_info("pool: %u busy, %u waiting: growing to %u workers",
		    up - idle, queued, pool_size(r));
	} else if (want == cur)
		p->excess_since = 0;
	else if (p->excess_since == 0)
		p->excess_since = now;
	else if (now - p->excess_since >= (int64_t)(opts->idle_timeout *
	    1000)) {
		p->target = want;
		p->excess_since = 0;
		log_info("pool: %u idle for %.3g s: shrinking to %u workers",
		    idle, opts->idle_timeout, pool_size(r));
		pool_retire_above(r, p->target);
	}
}

/* Every POOL_TICK_MS: each pool role's target. */
static void
check_pools(void)
{
	int64_t		now = proc_now_ms();
	unsigned	r;

	if (now < pool_at)
		return;
	pool_at = now + POOL_TICK_MS;
	for (r = 0; r < ROLE_COUNT; r++)
		if (roles[r].count_max != NULL)
			pool_tick((enum role)r, now);
}

/* SIGUSR1 (logrotate): the front reopens its access log. */
static void
usr1(void)
{
	struct slot	*s;

	if ((s = front_slot()) != NULL && kill(s->pid, SIGUSR1) == -1)
		log_warn("passing SIGUSR1 to the front");
}

/* Would the roles replaced on reload start with nopts? */
static int
reload_probe(const struct options *nopts, char *err, size_t errlen)
{
	unsigned	r;

	for (r = 0; r < ROLE_COUNT; r++)
		if ((roles[r].flags & PROC_RELOAD) && roles[r].probe != NULL &&
		    roles[r].probe(nopts, err, errlen) == -1)
			return -1;
	return 0;
}

/*
 * SIGHUP: read the settings again and probe the application they name;
 * if both hold, the next generation of PROC_RELOAD children starts beside
 * the old one, which retire_replaced() retires as the new come up.
 */
static void
reload(void)
{
	struct options	 nopts;
	char		 err[700], what[INCIDENT_TEXT_MAX];

	if (stopping)
		return;
	if (options_reload(&nopts, pass_argc, pass_argv, err,
	    sizeof(err)) == -1 || reload_probe(&nopts, err,
	    sizeof(err)) == -1) {
		log_warnx("reload refused, keeping the running settings: %s",
		    err);
		(void)snprintf(what, sizeof(what), "refused: %.110s", err);
		master_incident(INC_RELOAD, 0, what);
		return;
	}
	if (strcmp(nopts.listen, opts->listen) != 0)
		log_warnx("reload: --listen cannot change without a restart; "
		    "still on %s", opts->listen);
	memcpy(nopts.listen, opts->listen, sizeof(nopts.listen));
	*opts = nopts;
	queue_cap_stat(opts);
	if (opts->workers_max > opts->workers)
		log_info("reloading: %u to %u workers", opts->workers,
		    opts->workers_max);
	else
		log_info("reloading: %u workers", opts->workers);
	(void)snprintf(what, sizeof(what), "%u to %u workers, generation %u",
	    opts->workers, opts->workers_max, gen + 1);
	master_incident(INC_RELOAD, 0, what);
	(void)send_settings();
	gen++;
	maintain();
	replacing = retire_replaced();
}

static void
stop_begin(void)
{
	int64_t	now = proc_now_ms();

	if (stopping)
		return;
	stopping = 1;
	log_info("stopping: no new connections, waiting up to %.3g s for "
	    "requests in flight", opts->grace);
	if (listen_fd != -1)
		close(listen_fd);
	listen_fd = -1;
	stop_term_at = now + (int64_t)(opts->grace * 1000);
	stop_kill_at = stop_term_at + KILL_AFTER_MS;
	if (front_slot() != NULL && ctl_fd != -1 &&
	    chan_send(ctl_fd, MSG_STOP, 0, NULL, 0, NULL, 0) == -1)
		log_warn("asking the front to stop");
}

/* While stopping: once the front is gone, workers go; then escalate. */
static int
stop_step(void)
{
	int64_t	now = proc_now_ms();
	int	i, alive = 0, front = front_slot() != NULL;

	for (i = 0; i < NSLOTS; i++) {
		struct slot *s = &slots[i];

		if (s->state == SL_EMPTY)
			continue;
		alive++;
		if (!front && s->life_fd != -1) {
			close(s->life_fd);	/* worker: time to go */
			s->life_fd = -1;
		}
		if (now >= stop_kill_at) {
			(void)kill_child(s, SIGKILL);
			s->killed = ORD_STOP_KILL;
		} else if (now >= stop_term_at && s->killed == ORD_NONE) {
			log_warnx("%s %u (pid %ld) still running after "
			    "--grace; sending SIGTERM", role_name(s->role),
			    s->number, (long)s->pid);
			(void)kill_child(s, SIGTERM);
			s->killed = ORD_STOP_TERM;
		}
	}
	if (!front && stop_term_at > now + KILL_AFTER_MS) {
		/* The front is done: workers get a short bound, not --grace. */
		stop_term_at = now + KILL_AFTER_MS;
		stop_kill_at = stop_term_at + KILL_AFTER_MS;
	}
	return alive;
}

/*
 * The rule for a bad message from a child to the master, one for every
 * channel the master reads (today the front's control socket is the only
 * one): a message that is malformed, or that the master does not take
 * from that child, gets the sender killed (SIGKILL) with one log line,
 * and the master reads nothing more from it.  It is then respawned like
 * any child that died, back-off included (a front that always sends
 * garbage does not loop).  The other way, a bad message from the master
 * is fatalx in the child.
 */
static void
kill_sender(struct slot *s, const char *what)
{
	char	name[32];

	close(ctl_fd);
	ctl_fd = -1;
	if (s == NULL)
		return;
	log_warnx("the %s (pid %ld) sent %s; killing it", slot_name(s, name,
	    sizeof(name)), (long)s->pid, what);
	if (s->killed == ORD_NONE)
		s->killed = ORD_BAD_MSG;
	if (kill(s->pid, SIGKILL) == -1)
		log_warn("kill %ld", (long)s->pid);
}

/* One message from the front: MSG_KILL is all it may send. */
static void
ctl_read(void)
{
	struct msg_hdr		 h;
	struct msg_worker	 mw;
	struct slot		*s;
	char			 what[64];
	int			 fds[4], nfds = 4;
	ssize_t			 r;

	r = chan_recv(ctl_fd, &h, &mw, sizeof(mw), fds, &nfds);
	if (r == -1 && errno == EAGAIN)
		return;
	if (r == 0 || (r == -1 && errno != EPROTO)) {
		/* The front is gone; reap() will see it. */
		close(ctl_fd);
		ctl_fd = -1;
		return;
	}
	if (r == -1) {
		kill_sender(front_slot(), "a bad message");
		return;
	}
	while (nfds > 0)
		close(fds[--nfds]);
	if (h.type != MSG_KILL) {
		snprintf(what, sizeof(what), "an unexpected %s message",
		    msg_typename(h.type));
		kill_sender(front_slot(), what);
		return;
	}
	/* The slot is still ours (not reaped), so its pid is too. */
	if ((s = slot_by_id(h.id)) != NULL && s->role != hub &&
	    s->killed == ORD_NONE) {
		s->killed = ORD_FRONT_KILL;
		if (kill_child(s, SIGKILL) == -1)
			log_warn("kill %ld", (long)s->pid);
	}
}

/*
 * The handlers only set flags; the signals are blocked but while the loop
 * waits in ppoll (no race between a check and the wait).  SIGPIPE: a
 * child's end of a socket may close under a send.
 */
static void
master_signals(void)
{
	struct sigaction	sa;
	sigset_t		block;

	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &block, NULL) == -1)
		fatal("sigprocmask");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1 ||
	    sigaction(SIGQUIT, &sa, NULL) == -1 ||
	    sigaction(SIGUSR1, &sa, NULL) == -1)
		fatal("sigaction");
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		fatal("sigaction");
}

/* Wait for the front's next message, a signal or the next timer. */
static void
wait_events(void)
{
	struct pollfd	pfd;
	struct timespec	ts;
	sigset_t	none;
	int		t = next_timer();

	sigemptyset(&none);
	pfd.fd = ctl_fd;
	pfd.events = POLLIN;
	if (t >= 0) {
		ts.tv_sec = t / 1000;
		ts.tv_nsec = (long)(t % 1000) * 1000000;
	}
	if (ppoll(&pfd, ctl_fd == -1 ? 0 : 1, t >= 0 ? &ts : NULL,
	    &none) == -1) {
		if (errno != EINTR)
			fatal("ppoll");
		return;
	}
	if (ctl_fd != -1 && (pfd.revents & (POLLIN | POLLHUP)))
		ctl_read();
}

int
master_main(struct options *o, const struct proc_role *table, int lfd,
    const char *unix_path, int argc, char **argv)
{
	int	i;

	roles = table;
	check_roles();
	opts = o;
	listen_fd = lfd;
	pass_argc = argc;
	pass_argv = argv;
	for (i = 0; i < NSLOTS; i++)
		slots[i].life_fd = -1;
	log_setrole("master");
	proc_title("pipepool: master");
	/* Workers run code that is not ours, as our user: without this a
	 * worker could ptrace the master or the front (or read their
	 * /proc/PID/mem) and go around every check of the trust boundary.
	 * Inherited by the front and the store; workers set it back. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("prctl PR_SET_DUMPABLE");
	master_signals();
	queue_cap_stat(opts);
	log_info("pipepool %s started: %u%s%.0u workers, max body %llu, "
	    "timeout %.3g s, queue %u", PP_VERSION, opts->workers,
	    opts->workers_max > opts->workers ? " to " : "",
	    opts->workers_max > opts->workers ? opts->workers_max : 0,
	    (unsigned long long)opts->max_body, opts->timeout, opts->queue);
	maintain();
	for (;;) {
		if (sig_term) {
			sig_term = 0;
			stop_begin();
		}
		if (sig_chld) {
			sig_chld = 0;
			reap();
		}
		if (sig_hup) {
			sig_hup = 0;
			reload();
		}
		if (sig_usr1) {
			sig_usr1 = 0;
			usr1();
		}
		if (stopping) {
			if (stop_step() == 0)
				break;
		} else {
			check_retiring();
			check_memory();
			check_pools();
			maintain();
			replacing = replacing && retire_replaced();
		}
		wait_events();
	}
	if (unix_path != NULL && unlink(unix_path) == -1 && errno != ENOENT)
		log_warn("unlink %s", unix_path);
	log_info("stopped");
	return 0;
}
