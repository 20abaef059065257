/*
 * front.c: the FastCGI front ("pipepool: front").  Threads take FastCGI
 * connections (idle threads wait in accept(2), the kernel hands each
 * connection to one, and a new thread is started when none is left idle,
 * up to --threads, since nginx's kept connections each hold one
 * thread).  libfcgi reads each request; the thread puts it in its own
 * mailbox of the shared dispatch area (dispatch.h), where the oldest
 * waiting request is taken by the next free worker.  On a kept
 * connection the worker writes the answer to nginx itself (a direct
 * answer) and the thread only waits for the next request; otherwise it
 * sleeps until the answer is in the mailbox, then writes it back.
 *
 * The front answers on its own only when no worker can: 413 (body over
 * --max-body, never sent to a worker), 503 (queue full), 504 (--timeout),
 * 502 (the worker died or sent garbage), 400/414 (unusable request).
 *
 * A control thread reads the master's socket: new workers (with their pipe
 * ends or channel), retired or dead workers, new settings, and stop.  EOF
 * there means the master is gone, and the front exits at once.  It also
 * answers the workers' channels: the fd of a connection, once per worker
 * and connection.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "front.h"
#include "front_int.h"
#include "reply.h"
#include "log.h"
#include "chan.h"
#include "msg.h"
#include "proc.h"
#include "request.h"
#include "stats.h"
#include "status.h"


static uint64_t		 area_max_body;	/* the dispatch area's room */

static int		 ctl_fd = -1;

struct front_live	 front_live;
sigset_t		 front_wake_mask;	/* SIGUSR2 let in */

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
	atomic_store(&stats->queue_capacity, ms->queue);
}

/* conn_wake's signal: its only work is to end a ppoll. */
static void
on_wake(int sig)
{
	(void)sig;
}

/*
 * The control thread: the master's socket, and the workers' channels.
 * O(worker slots) per message; they are few, and messages are rare (a
 * worker asks once per connection).
 */
static void
control(void)
{
	struct msg_hdr	h;
	union {
		struct msg_worker	w;
		struct msg_settings	s;
	} u;
	struct pollfd	pfd[PROC_SLOTS + 1];
	uint32_t	slot[PROC_SLOTS + 1];
	int		fds[4], nfds, n, i;
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
		nfds = 4;
		r = chan_recv(ctl_fd, &h, &u, sizeof(u), fds, &nfds);
		if (r == 0) {
			log_warnx("the master is gone; exiting");
			_exit(1);
		}
		/* The rule for master -> front: the master is ours, so a
		 * message it should not send is a broken invariant. */
		if (r == -1)
			fatal("reading the control socket");
		switch (h.type) {
		case MSG_WORKER_UP:
			workers_up(&h, &u.w, fds, nfds);
			continue;
		case MSG_WORKER_GONE:
			workers_gone(&h, &u.w);
			break;
		case MSG_RETIRE:
			workers_retire(&h, &u.w);
			break;
		case MSG_SETTINGS:
			apply_settings(&u.s);
			break;
		case MSG_STOP:
			conn_stop();
			break;
		default:
			fatalx("unexpected %s message from the master",
			    msg_typename(h.type));
		}
		while (nfds > 0)
			close(fds[--nfds]);
	}
}

void
front_main(const struct options *o, int lfd, int cfd)
{
	struct sigaction	sa;
	struct msg_settings	ms;
	sigset_t		set;

	log_setrole("front");
	proc_title("pipepool: front");
	ctl_fd = cfd;
	/* The hot path does not malloc; a few arenas are plenty and each one
	 * costs memory (glibc makes up to 8 per core). */
	if (mallopt(M_ARENA_MAX, 2) == 0)
		log_warnx("mallopt M_ARENA_MAX failed");
	if (FCGX_Init() != 0)
		fatalx("FCGX_Init failed");
	/* libfcgi installed its own handlers; the front owns its signals. */
	if (proc_child_signals() == -1)
		fatal("signals");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) == -1)
		fatal("sigaction");
	/* SIGUSR2 wakes a thread waiting for a direct answer (conn_wake);
	 * blocked in every thread (they inherit it) except in that wait. */
	sa.sa_handler = on_wake;
	if (sigaction(SIGUSR2, &sa, NULL) == -1)
		fatal("sigaction");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (pthread_sigmask(SIG_BLOCK, &set, &front_wake_mask) != 0)
		fatal("pthread_sigmask");
	sigdelset(&front_wake_mask, SIGUSR2);
	area_max_body = o->max_body;
	workers_init(ctl_fd);
	store_client_init();
	front_settings(o, &ms);
	apply_settings(&ms);
	conn_start(o->threads, lfd);
	control();
	_exit(1);
}
