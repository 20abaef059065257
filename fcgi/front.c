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

#define THREAD_STACK	(256 * 1024)
/* Per-connection buffers larger than this are freed after their request,
 * so memory follows the requests in flight, not the largest ever seen;
 * the watchdog then hands the freed pages back (malloc_trim). */
#define KEEP_BUF	(16u * 1024)

static uint64_t		 area_max_body;	/* the dispatch area's room */

static int		 listen_fd = -1, ctl_fd = -1;
static _Atomic int	 stopping;
static _Atomic int	 trim_wanted;	/* a large buffer was freed */

struct front_live	 front_live;
sigset_t		 front_wake_mask;	/* SIGUSR2 let in */

/* Threads: bookkeeping, all under tlk. */
static pthread_mutex_t	 tlk = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 tdone = PTHREAD_COND_INITIALIZER;
static unsigned		 nthreads, nidle, nactive, maxthreads;
static struct conn	**conns;

static void	spawn_thread(void);

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

/* After a request: give back buffers that a large one grew. */
static void
trim_buffers(struct conn *c)
{
	if (c->bodycap > KEEP_BUF || c->sreply_cap > KEEP_BUF)
		atomic_store_explicit(&trim_wanted, 1, memory_order_relaxed);
	if (c->bodycap > KEEP_BUF) {
		free(c->body);
		c->body = NULL;
		c->bodycap = 0;
	}
	if (c->sreply_cap > KEEP_BUF) {
		free(c->sreply);
		c->sreply = NULL;
		c->sreply_cap = 0;
	}
}

static const char *
fcgi_param(void *ctx, const char *name)
{
	return FCGX_GetParam(name, ((FCGX_Request *)ctx)->envp);
}

static void
serve_request(struct conn *c)
{
	const char	*why = NULL;
	size_t		 blen = 0, max = atomic_load(&front_live.max_body);
	unsigned	 status;
	int64_t		 start = now_ms_mono();
	struct msg_request_view rn;

	STAT_ADD(accepted, 1);
	c->widx_pid = 0;
	c->counted = 0;
	if ((status = request_parse(&c->ri, fcgi_param, &c->req, &why)) != 0) {
		c->ri.method = "-";
		c->ri.path[0] = '\0';
		c->ri.query = "";
		c->ri.query_len = 0;
		c->req.keepConnection = 0;
		stream_reply(c, status, NULL, why);
		goto done;
	}
	if (c->ri.content_length > max) {
		status = stream_too_large(c);
		goto done;
	}
	/* The front's pages and the store's read the body into c->body; a
	 * worker's request reads it into its mailbox (see dispatch()). */
	if (front_route_store(&c->ri, atomic_load(&front_live.debug)) ||
	    strcmp(c->ri.path, "/status") == 0 ||
	    strcmp(c->ri.path, "/metrics") == 0) {
		if ((status = stream_take_body(c, &blen)) != 0)
			goto done;
		if ((status = stream_page(c)) == 0)
			status = store_client_request(c, c->body, blen,
			    start + atomic_load(&front_live.timeout_ms),
			    atomic_load(&front_live.queue),
			    (int)atomic_load(&front_live.debug));
	} else {
		conn_state(c, C_BUSY);
		status = relay(c, start);
	}
done:
	trim_buffers(c);
	if (!c->counted) {
		memset(&rn, 0, sizeof(rn));
		rn.method = c->ri.method;
		rn.method_len = strlen(c->ri.method);
		rn.path = c->ri.path;
		rn.path_len = strlen(c->ri.path);
		rn.query = c->ri.query;
		rn.query_len = c->ri.query_len;
		stats_request_end(status, now_ms_mono() - start,
		    atomic_load(&front_live.slow_ms), &rn, c->widx_pid);
	}
}

/* --- connections and threads --------------------------------------- */

/* conn_wake's signal: its only work is to end a ppoll. */
static void
on_wake(int sig)
{
	(void)sig;
}

/*
 * Peek at fd until request_peek() can judge the request it holds.  The
 * bytes stay for libfcgi.  Most requests fit the 4 KiB on the stack;
 * larger params are peeked into a REQ_PARAMS_MAX buffer.  poll(2) cannot
 * wait for more bytes than are queued, so while the params are not whole
 * the thread naps (1 ms, doubling to 64 ms, back to 1 ms when bytes come)
 * in a poll for a hang-up alone; a shutdown by the watchdog (C_WAITING:
 * --read-timeout) or stop() is one.  0: libfcgi may read it; -1: drop
 * the connection (*why set if the params were refused).
 */
static int
peek_params(int fd, const char **why)
{
	unsigned char	 small[4096], *buf = small, *big = NULL;
	size_t		 cap = sizeof(small);
	ssize_t		 n, last = 0;
	struct pollfd	 pfd;
	int		 nap = 1, r;

	*why = NULL;
	for (;;) {
		if ((n = recv(fd, buf, cap, MSG_PEEK | MSG_DONTWAIT)) == 0)
			goto fail;	/* EOF */
		if (n == -1 && errno != EINTR && errno != EAGAIN)
			goto fail;
		if (n == -1)
			n = 0;
		if ((r = request_peek(buf, (size_t)n, why)) != REQ_PEEK_MORE)
			break;
		if ((size_t)n == cap && big == NULL) {
			if ((big = malloc(REQ_PARAMS_MAX)) == NULL) {
				log_warn("malloc");
				goto fail;
			}
			buf = big;
			cap = REQ_PARAMS_MAX;
			continue;
		}
		nap = n > last ? 1 : nap < 64 ? nap * 2 : 64;
		last = n;
		pfd.fd = fd;
		pfd.events = POLLRDHUP;
		if (poll(&pfd, 1, nap) == 1)
			goto fail;	/* hung up, or shut down */
	}
	free(big);
	return r == REQ_PEEK_OK ? 0 : -1;
fail:
	free(big);
	return -1;
}

/*
 * Let libfcgi read c's next request once its params are known to declare
 * no absurd length: libfcgi allocates what a name-value pair declares and
 * aborts the process (an assertion) when that fails.  FCGX_Detach makes
 * libfcgi's own close (after a protocol error) a plain close(2), not its
 * lingering close, which reads for 2 s after each byte the client sends,
 * unbounded by --read-timeout; serve_conn shuts the connection down.
 * -1: the connection is closed, broken or refused.
 */
static int
accept_request(struct conn *c, int fd)
{
	const char	*why;

	if (peek_params(fd, &why) == -1) {
		if (why != NULL)
			log_warnx("dropped a FastCGI connection: %s", why);
		return -1;
	}
	/* FCGX_Accept_r begins with FCGX_Finish_r, which would close. */
	c->req.keepConnection = 1;
	(void)FCGX_Detach(&c->req);
	return FCGX_Accept_r(&c->req) < 0 ? -1 : 0;
}

/*
 * End c's request as FCGX_Finish_r does (flush the answer and its
 * FCGI_END_REQUEST, free libfcgi's streams and params), but leave the
 * closing to serve_conn: FCGX_Finish_r would close with libfcgi's
 * lingering close.  0: the connection is kept; -1: close it.
 */
static int
finish_request(struct conn *c)
{
	int	bad = 0;

	if (c->req.in != NULL) {
		bad |= FCGX_FClose(c->req.err);
		bad |= FCGX_FClose(c->req.out);
		bad |= FCGX_GetError(c->req.in);
	}
	FCGX_Free(&c->req, 0);
	return c->req.keepConnection && bad == 0 ? 0 : -1;
}

void
conn_state(struct conn *c, enum cstate st)
{
	int64_t	now = now_ms_mono();

	pthread_mutex_lock(&c->lk);
	c->state = st;
	c->since = now;
	pthread_mutex_unlock(&c->lk);
}

/*
 * When c's thread, waiting for a direct answer, in fact waits for the
 * next request: the time the worker sent the answer; INT64_MAX / 2 (never
 * too old) if not.  Called with c->lk held; c->since is INT64_MAX / 2
 * once dropped.
 */
static int64_t
idle_since(struct conn *c)
{
	unsigned	status;
	int64_t		when;

	if (c->state != C_BUSY || !atomic_load(&c->waiting) ||
	    c->since == INT64_MAX / 2 ||
	    MB_KIND(dispatch_state(c->idx)) != MB_SENT)
		return INT64_MAX / 2;
	dispatch_sent_info(c->idx, &status, &when);
	/* The worker's word: never before the request began, nor later
	 * than now (either would make the watchdog close a connection
	 * early, or never). */
	if (when < c->since)
		when = c->since;
	if (when > now_ms_mono())
		when = now_ms_mono();
	return when;
}

/*
 * Once every 100 ms: memory freed by large requests goes back to the
 * system, the queue depth for /status is counted, and a connection that
 * has spent longer than --read-timeout waiting for or reading one request
 * is shut down, which makes libfcgi's blocked read fail and the thread
 * drop it.  (Each request thread keeps its own --timeout.)  O(threads)
 * per pass; read timeouts are up to 100 ms late.
 */
static void *
watchdog(void *arg)
{
	struct timespec	ts = { 0, 100 * 1000000 };
	unsigned	i, n;
	int64_t		now, limit, since;

	(void)arg;
	for (;;) {
		while (nanosleep(&ts, NULL) == -1 && errno == EINTR)
			;
		/* glibc keeps freed memory in its arenas; large request
		 * buffers would otherwise stay resident after a burst. */
		if (atomic_exchange_explicit(&trim_wanted, 0,
		    memory_order_relaxed))
			(void)malloc_trim(0);
		now = now_ms_mono();
		atomic_store(&stats->queue_depth, dispatch_queued());
		dispatch_trim(now);
		limit = atomic_load(&front_live.read_timeout_ms);
		pthread_mutex_lock(&tlk);
		n = nthreads;
		pthread_mutex_unlock(&tlk);
		for (i = 0; i < n; i++) {
			struct conn *c = conns[i];

			if (c == NULL)
				continue;
			pthread_mutex_lock(&c->lk);
			since = c->state == C_WAITING || c->state == C_BODY ?
			    c->since : idle_since(c);
			if (c->dupfd != -1 && now - since > limit) {
				log_warnx("dropping a FastCGI connection that "
				    "took over --read-timeout to send %s",
				    c->state == C_BODY ? "a body" :
				    "a request");
				(void)shutdown(c->dupfd, SHUT_RDWR);
				c->since = INT64_MAX / 2;	/* once */
			}
			pthread_mutex_unlock(&c->lk);
		}
	}
	return NULL;
}

/*
 * Serve requests on one FastCGI connection until it closes.  We accept
 * connections ourselves (to set timeouts) and hand them to libfcgi with
 * keepConnection set, so FCGX_Accept_r reads a request on it; its
 * listen_sock is -1, so it never accepts on its own.
 */
static void
serve_conn(struct conn *c, int fd)
{
	struct pollfd	pfd;

	pthread_mutex_lock(&c->lk);
	c->dupfd = dup(fd);
	c->gen++;
	c->nreq = 0;
	c->input = 0;
	pthread_mutex_unlock(&c->lk);
	c->req.ipcFd = fd;
	c->req.keepConnection = 1;
	for (;;) {
		conn_state(c, C_WAITING);
		if (atomic_load(&stopping))
			break;
		/* Sleep in poll, not in libfcgi's read: a reader blocked in
		 * read(2) on a unix socket is also woken each time nginx
		 * reads what was written to it (the socket has one wait
		 * queue), which is a context switch per request for nothing;
		 * poll only wakes for input.  EOF, errors and a shutdown by
		 * the watchdog or stop() also end it. */
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (!c->input)
			while (poll(&pfd, 1, -1) == -1 && errno == EINTR)
				;
		c->input = 0;
		/* Bytes of a request have come: its --read-timeout starts
		 * now, not when the connection went idle, or a request that
		 * arrives as an idle connection times out would be cut. */
		conn_state(c, C_WAITING);
		if (accept_request(c, fd) < 0)
			break;	/* closed, timed out, broken or refused */
		conn_state(c, C_BODY);
		serve_request(c);
		if (atomic_load(&stopping))
			c->req.keepConnection = 0;
		if (finish_request(c) == -1)
			break;
	}
	FCGX_Free(&c->req, 0);
	/* Workers may hold the connection too (direct.c): only a shutdown
	 * ends it for nginx.  libfcgi has closed ipcFd itself after a
	 * protocol error; dupfd is the same socket. */
	(void)shutdown(c->req.ipcFd >= 0 ? c->req.ipcFd : c->dupfd, SHUT_RDWR);
	if (c->req.ipcFd >= 0)
		close(c->req.ipcFd);
	c->req.ipcFd = -1;
	pthread_mutex_lock(&c->lk);
	c->state = C_NONE;
	if (c->dupfd != -1)
		close(c->dupfd);
	c->dupfd = -1;
	pthread_mutex_unlock(&c->lk);
}

static void
set_timeouts(int fd)
{
	struct timeval	tv;
	uint32_t	ms = atomic_load(&front_live.read_timeout_ms);
	int		one = 1;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1)
		log_warn("setsockopt timeouts");
	/* Fails harmlessly (EOPNOTSUPP) on unix sockets. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * Wait for a connection in accept(2), beside the other idle threads: the
 * kernel hands each new connection to one of them (no herd, no hand-off
 * between threads).  -1 when stopping (stop() shuts the socket down,
 * which wakes them all).
 */
static int
accept_one(void)
{
	int	fd;

	for (;;) {
		if (atomic_load(&stopping))
			return -1;
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			set_timeouts(fd);
			return fd;
		}
		if (atomic_load(&stopping))
			return -1;
		switch (errno) {
		case EAGAIN:
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			break;
		default:	/* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
			log_warn("accept");
			(void)poll(NULL, 0, 100);	/* let fds free up */
			break;
		}
	}
}

/*
 * A connection thread: wait in accept, serve the connection until it
 * closes, again.  The last idle thread to take a connection starts
 * another (up to --threads), so one is always waiting in accept.
 */
static void *
thread_main(void *arg)
{
	struct conn	*c = arg;
	int		 fd;

	for (;;) {
		pthread_mutex_lock(&tlk);
		nidle++;
		pthread_mutex_unlock(&tlk);

		fd = accept_one();

		pthread_mutex_lock(&tlk);
		nidle--;
		if (fd < 0) {
			pthread_cond_broadcast(&tdone);
			pthread_mutex_unlock(&tlk);
			/* Stopping: park until the process exits, so that no
			 * thread id in conns[] is ever stale (conn_wake). */
			for (;;)
				pause();
		}
		nactive++;
		if (nidle == 0 && nthreads < maxthreads)
			spawn_thread();
		pthread_mutex_unlock(&tlk);
		serve_conn(c, fd);
		pthread_mutex_lock(&tlk);
		nactive--;
		pthread_cond_broadcast(&tdone);
		pthread_mutex_unlock(&tlk);
	}
	return NULL;	/* not reached */
}

/* Called with tlk held.  A failure leaves fewer threads, not a crash. */
static void
spawn_thread(void)
{
	pthread_attr_t	 a;
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("calloc");
		return;
	}
	c->dupfd = -1;
	c->idx = nthreads;
	if (pthread_mutex_init(&c->lk, NULL) != 0 ||
	    FCGX_InitRequest(&c->req, -1, 0) != 0) {
		log_warnx("cannot set up a connection thread");
		free(c);
		return;
	}
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, THREAD_STACK);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	conns[nthreads] = c;
	if ((errno = pthread_create(&c->th, &a, thread_main, c)) != 0) {
		log_warn("pthread_create");
		conns[nthreads] = NULL;
		free(c);
	} else
		nthreads++;
	pthread_attr_destroy(&a);
}

/* --- stop and control ---------------------------------------------- */

/* Wait for the open connections to finish, then exit. */
static void *
drain(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&tlk);
	log_info("stopping: waiting for %u open connections to finish", nactive);
	while (nactive > 0)
		pthread_cond_wait(&tdone, &tlk);
	pthread_mutex_unlock(&tlk);
	log_info("stopped");
	_exit(0);
}

/*
 * Stop taking connections and requests; exit once the open ones are
 * done.  The control thread goes on meanwhile: workers still ask it for
 * connections, and a worker's death must still reach a waiting thread.
 */
static void
stop(void)
{
	pthread_attr_t	a;
	pthread_t	th;
	unsigned	i;

	if (atomic_exchange(&stopping, 1))
		return;
	/* Wakes every thread blocked in accept (the master has closed its
	 * copy: no new connection is taken any more). */
	(void)shutdown(listen_fd, SHUT_RDWR);
	pthread_mutex_lock(&tlk);
	/* Idle kept connections: wake their reader with EOF. */
	for (i = 0; i < nthreads; i++) {
		struct conn *c = conns[i];

		if (c == NULL)
			continue;
		pthread_mutex_lock(&c->lk);
		if (c->state == C_WAITING && c->dupfd != -1)
			(void)shutdown(c->dupfd, SHUT_RD);
		pthread_mutex_unlock(&c->lk);
		/* Waiting for a direct answer that may be sent already. */
		conn_wake(c);
	}
	pthread_mutex_unlock(&tlk);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if ((errno = pthread_create(&th, &a, drain, NULL)) != 0) {
		log_warn("pthread_create");
		(void)drain(NULL);
	}
	pthread_attr_destroy(&a);
}

/*
 * End c's wait_direct(), if it is in one: its request needs a look (a
 * thread not in one looks at its mailbox before it waits again).  SIGUSR2
 * is blocked in connection threads except inside that ppoll, so it
 * interrupts nothing else; a wake that finds the thread just out of it
 * stays pending and only makes its next wait look once more.  Threads
 * never exit (see thread_main), so c->th stays valid.
 */
void
conn_wake(struct conn *c)
{
	if (!atomic_load(&c->waiting))
		return;
	if ((errno = pthread_kill(c->th, SIGUSR2)) != 0)
		log_warn("waking a connection thread");
}

/* The connection thread with mailbox mb, or NULL. */
struct conn *
conn_at(uint32_t mb)
{
	struct conn	*c = NULL;

	pthread_mutex_lock(&tlk);
	if (mb < nthreads)
		c = conns[mb];
	pthread_mutex_unlock(&tlk);
	return c;
}

/* Every connection thread waiting for a direct answer takes a look. */
void
conn_wake_all(void)
{
	unsigned	i;

	pthread_mutex_lock(&tlk);
	for (i = 0; i < nthreads; i++)
		if (conns[i] != NULL)
			conn_wake(conns[i]);
	pthread_mutex_unlock(&tlk);
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
			stop();
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
	int			fl;

	log_setrole("front");
	proc_title("pipepool: front");
	listen_fd = lfd;
	ctl_fd = cfd;
	maxthreads = o->threads;
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
	if ((conns = calloc(maxthreads, sizeof(*conns))) == NULL)
		fatal("calloc");
	area_max_body = o->max_body;
	workers_init(ctl_fd);
	store_client_init();
	front_settings(o, &ms);
	apply_settings(&ms);
	/* Blocking accept: see accept_one(). */
	if ((fl = fcntl(listen_fd, F_GETFL)) == -1 ||
	    fcntl(listen_fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
		fatal("fcntl on the listening socket");
	pthread_mutex_lock(&tlk);
	spawn_thread();
	pthread_mutex_unlock(&tlk);
	if (nthreads == 0)
		fatalx("cannot start a connection thread");
	{
		pthread_attr_t	a;
		pthread_t	th;

		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, THREAD_STACK);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if ((errno = pthread_create(&th, &a, watchdog, NULL)) != 0)
			fatal("pthread_create");
		pthread_attr_destroy(&a);
	}
	control();
	_exit(1);
}
