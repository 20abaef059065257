/*
 * front.c: the FastCGI front ("pipepool: front"): its start, its signals,
 * the settings a reload may change, and the control thread.  The rest of
 * the process lives beside it (front_int.h): the connection threads
 * (conn.c), one request through a worker (relay.c) or the store
 * (store_client.c), the front's own use of libfcgi's streams (stream.c)
 * and its view of the workers (workers.c).
 *
 * The control thread reads the master's socket: new workers (with their
 * channel and stats page) and the store (with its pipe ends), retired or
 * dead workers, new settings, and stop.  EOF there means the master is
 * gone, and the front exits at once.  It also reads the workers'
 * channels (workers_chan): a worker asks for the fd of a connection, once
 * per worker and connection.
 *
 * The rule for master -> front: the master is ours, so a message it
 * should not send, or one that is malformed (a bad frame, a slot or role
 * out of range, the wrong fds), is a broken invariant: fatalx, and the
 * master starts a new front.  One switch, ctl_message(), applies it.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "front.h"
#include "access.h"
#include "front_int.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "stats.h"

#define THREAD_STACK	(256 * 1024)

/* What the master sends, with its fds (chan_recv takes up to 4). */
struct ctl_msg {
	struct msg_hdr	 h;
	union {
		struct msg_worker	w;
		struct msg_settings	s;
	} u;
	int		 fds[4];
	int		 nfds;
};

struct front_live	 front_live;
sigset_t		 front_wake_mask;

static int		 ctl_fd = -1;
static uint64_t		 area_max_body;	/* the dispatch area's room */

void
front_settings(const struct options *o, struct msg_settings *ms)
{
	memset(ms, 0, sizeof(*ms));
	ms->max_body = o->max_body;
	ms->timeout_ms = (uint32_t)(o->timeout * 1000 + 0.5);
	if (ms->timeout_ms == 0)
		ms->timeout_ms = 1;
	ms->read_timeout_ms = (uint32_t)(o->read_timeout * 1000 + 0.5);
	if (ms->read_timeout_ms == 0)
		ms->read_timeout_ms = 1;
	ms->queue = o->queue;
	ms->queue_target_ms = o->queue_target_ms;
	ms->slow_ms = o->slow_ms;
	ms->debug_routes = (uint32_t)o->debug_routes;
}

static void
apply_settings(const struct msg_settings *ms)
{
	uint64_t	max = ms->max_body;

	/* The dispatch area was sized for --max-body at start. */
	if (max > area_max_body) {
		log_warnx("--max-body %llu needs a restart: the dispatch area "
		    "has room for %llu", (unsigned long long)max,
		    (unsigned long long)area_max_body);
		max = area_max_body;
	}
	atomic_store(&front_live.max_body, max);
	atomic_store(&front_live.timeout_ms, ms->timeout_ms);
	atomic_store(&front_live.read_timeout_ms, ms->read_timeout_ms);
	atomic_store(&front_live.slow_ms, ms->slow_ms);
	atomic_store(&front_live.debug, ms->debug_routes);
	atomic_store(&front_live.queue, ms->queue);
	atomic_store(&front_live.queue_target_ms, ms->queue_target_ms);
	atomic_store(&stats->queue_capacity, ms->queue);
}

/*
 * An incident a request's client saw (incident.h), in the front's ring:
 * its threads take turns.  INC_OVERLOAD is the first 503 of a burst: one
 * at most every OVERLOAD_GAP_MS.
 */
#define OVERLOAD_GAP_MS	1000
void
front_incident(enum incident_kind kind, pid_t pid, unsigned status,
    const struct reqinfo *ri)
{
	static pthread_mutex_t	lk = PTHREAD_MUTEX_INITIALIZER;
	static _Atomic int64_t	last_overload;
	char			line[INCIDENT_TEXT_MAX];
	int64_t			now, t;

	/* Every 503 of a burst comes here: all but the first cost one
	 * atomic load, no lock and no formatting. */
	if (kind == INC_OVERLOAD) {
		now = proc_now_ms();
		t = atomic_load_explicit(&last_overload, memory_order_relaxed);
		if ((t != 0 && now - t < OVERLOAD_GAP_MS) ||
		    !atomic_compare_exchange_strong(&last_overload, &t, now))
			return;
	}
	request_line(ri, line, sizeof(line));
	pthread_mutex_lock(&lk);
	incident_add(&stats->inc_front, stats->incidents, kind, (int32_t)pid,
	    status, line);
	pthread_mutex_unlock(&lk);
}

/*
 * Start a detached thread running fn(arg) on a THREAD_STACK stack (*th
 * its id, if th is not NULL).  0, or -1 with errno; the caller says what
 * a failure means (fatal at start-up, fewer threads later).
 */
int
front_start_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
	pthread_attr_t	a;
	pthread_t	t;
	int		r;

	if ((r = pthread_attr_init(&a)) == 0) {
		(void)pthread_attr_setstacksize(&a, THREAD_STACK);
		(void)pthread_attr_setdetachstate(&a,
		    PTHREAD_CREATE_DETACHED);
		r = pthread_create(th != NULL ? th : &t, &a, fn, arg);
		pthread_attr_destroy(&a);
	}
	if (r != 0) {
		errno = r;
		return -1;
	}
	return 0;
}

/* SIGUSR1: reopen the access log (logrotate). */
static void
on_usr1(int sig)
{
	(void)sig;
	access_rotate();
}

/* conn_wake's signal: its only work is to end a ppoll. */
static void
on_wake(int sig)
{
	(void)sig;
}

/*
 * libfcgi installed its own handlers; the front owns its signals.
 * SIGUSR2 wakes a thread waiting for a direct answer (conn_wake): it is
 * blocked in every thread (they inherit the mask) but inside that wait's
 * ppoll, which lets it in with front_wake_mask.
 */
static void
signals(void)
{
	struct sigaction	sa;
	sigset_t		set;

	if (proc_child_signals() == -1)
		fatal("signals");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGUSR1, &sa, NULL) == -1)
		fatal("sigaction");
	sa.sa_flags = 0;
	sa.sa_handler = on_wake;
	if (sigaction(SIGUSR2, &sa, NULL) == -1)
		fatal("sigaction");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (pthread_sigmask(SIG_BLOCK, &set, &front_wake_mask) != 0)
		fatal("pthread_sigmask");
	sigdelset(&front_wake_mask, SIGUSR2);
}

/* A message about a child: its slot and role must be ones the master
 * has, and it must carry nfds fds. */
static void
ctl_check(const struct ctl_msg *m, int nfds)
{
	if (m->u.w.slot >= PROC_SLOTS || (m->u.w.role != ROLE_WORKER &&
	    m->u.w.role != ROLE_STORE) || m->nfds != nfds)
		fatalx("malformed %s message from the master (slot %u, role "
		    "%u, %d fds)", msg_typename(m->h.type), m->u.w.slot,
		    m->u.w.role, m->nfds);
}

/* One message from the master; its fds are taken or closed. */
static void
ctl_message(struct ctl_msg *m)
{
	switch (m->h.type) {
	case MSG_WORKER_UP:
		ctl_check(m, 2);
		workers_up(&m->h, &m->u.w, m->fds);
		return;
	case MSG_WORKER_GONE:
		ctl_check(m, 0);
		workers_gone(&m->h, &m->u.w);
		return;
	case MSG_RETIRE:
		ctl_check(m, 0);
		workers_retire(&m->h, &m->u.w);
		return;
	case MSG_SETTINGS:
	case MSG_STOP:
		if (m->nfds != 0)
			fatalx("%s message from the master with %d fds",
			    msg_typename(m->h.type), m->nfds);
		if (m->h.type == MSG_SETTINGS)
			apply_settings(&m->u.s);
		else
			conn_stop();
		return;
	default:
		fatalx("unexpected %s message from the master",
		    msg_typename(m->h.type));
	}
}

/*
 * The control thread: the master's socket, and the workers' channels.
 * O(worker slots) per message; they are few, and messages are rare (a
 * worker asks once per connection).
 */
static void
control(void)
{
	struct pollfd	pfd[PROC_SLOTS + 1];
	uint32_t	slot[PROC_SLOTS + 1];
	struct ctl_msg	m;
	int		n, i;
	ssize_t		r;

	for (;;) {
		pfd[0].fd = ctl_fd;
		pfd[0].events = POLLIN;
		n = 1 + workers_pollfds(pfd + 1, slot + 1);
		if (poll(pfd, (nfds_t)n, -1) == -1) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		for (i = 1; i < n; i++)
			if (pfd[i].revents != 0)
				workers_chan(slot[i]);
		if (pfd[0].revents == 0)
			continue;
		m.nfds = 4;
		r = chan_recv(ctl_fd, &m.h, &m.u, sizeof(m.u), m.fds, &m.nfds);
		if (r == 0) {
			log_warnx("the master is gone; exiting");
			access_flush();
			_exit(1);
		}
		if (r == -1)
			fatal("reading the control socket");
		ctl_message(&m);
	}
}

void
front_main(const struct options *o, int lfd, int cfd)
{
	struct msg_settings	ms;

	log_setrole("front");
	proc_title("pipepool: front");
	ctl_fd = cfd;
	/* The hot path does not malloc; a few arenas are plenty and each one
	 * costs memory (glibc makes up to 8 per core). */
	if (mallopt(M_ARENA_MAX, 2) == 0)
		log_warnx("mallopt M_ARENA_MAX failed");
	if (FCGX_Init() != 0)
		fatalx("FCGX_Init failed");
	signals();
	access_open(o->access_log, o->access_log_buffer);
	area_max_body = o->max_body;
	workers_init(ctl_fd);
	store_client_init();
	front_settings(o, &ms);
	apply_settings(&ms);
	status_held_source(conn_held);
	conn_start(o->threads, lfd);
	control();
	_exit(1);
}
