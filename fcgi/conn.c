/*
 * conn.c: the connection threads.  Idle threads wait in accept(2) beside
 * each other (the kernel hands each connection to one), and the last idle
 * thread to take one starts another, up to --threads, since nginx's kept
 * connections each hold a thread (a spawner thread starts it: see
 * spawner()).  A thread serves its connection's
 * requests one at a time: libfcgi reads each once its params are known to
 * be sane (read_params), and serve_request answers it with the front's
 * own page, through the store (store_client.c) or through a worker
 * (relay.c).  The watchdog bounds the time a connection may take to send
 * a request (--read-timeout) and hands back memory; stop drains.
 *
 * Each thread owns one struct conn for its life, and its mailbox in the
 * dispatch area (c->idx).  Threads never exit (see thread_main), so a
 * struct conn and its thread id, once in conns[], stay valid: the
 * control thread may wake (conn_wake) or look up (conn_at) any of them.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "access.h"
#include "front_int.h"
#include "log.h"
#include "mgmt.h"
#include "msg.h"
#include "proc.h"
#include "request.h"
#include "stats.h"

/* Per-connection buffers larger than this are freed after their request,
 * so memory follows the requests in flight, not the largest ever seen;
 * the watchdog then hands the freed pages back (malloc_trim). */
#define KEEP_BUF	(16u * 1024)

static int		 listen_fd = -1;
static _Atomic int	 stopping;
static _Atomic int	 trim_wanted;	/* a large buffer was freed */

/* Threads: bookkeeping, all under tlk. */
static pthread_mutex_t	 tlk = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 tdone = PTHREAD_COND_INITIALIZER;
static pthread_cond_t	 tmore = PTHREAD_COND_INITIALIZER; /* spawn_wanted */
static unsigned		 nthreads, nidle, nactive, maxthreads;
static int		 spawn_wanted;
static struct conn	**conns;

static _Thread_local struct conn *self;	/* a connection thread's own */

static void	spawn_thread(void);

/*
 * libfcgi's one read function (os_unix.c), interposed: libfcgi calls it
 * through its PLT, so this definition in the executable is the one it
 * runs.  On a connection thread's connection, management records are
 * taken out and answered by the front (mgmt.c); docs.bats's
 * FCGI_GET_VALUES test fails if libfcgi ever answers one itself.
 */
int	OS_Read(int fd, char *buf, size_t len);

int
OS_Read(int fd, char *buf, size_t len)
{
	if (self != NULL && fd == self->req.ipcFd)
		return (int)mgmt_read(&self->mf, fd, buf, len);
	return (int)read(fd, buf, len);
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

/*
 * Answer the request libfcgi has read on c: a 400/414 for params that
 * make no request, a 413 for a declared body over --max-body, else the
 * front's own page, the store's answer (/kv) or a worker's (relay.c).
 * Counted in the shared stats here, unless a worker that answered on the
 * connection itself counted it (c->counted).
 */
static void
serve_request(struct conn *c)
{
	const char	*why = NULL;
	size_t		 blen = 0, max = atomic_load(&front_live.max_body);
	unsigned	 status;
	int64_t		 start = proc_now_ms();
	struct msg_request_view rn;

	STAT_ADD(accepted, 1);
	c->widx_pid = 0;
	c->counted = 0;
	c->qwait_us = -1;
	c->out_bytes = 0;
	if ((status = request_parse(&c->ri, fcgi_param, &c->req, &why)) != 0) {
		/* What the parse left may be half a request's. */
		c->ri.method = "-";
		c->ri.method_len = 1;
		c->ri.path = "";
		c->ri.path_len = 0;
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
	 * worker's request has it read into its mailbox, or a large one
	 * into a buffer of the dispatch area (relay.c). */
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
		rn.method_len = c->ri.method_len;
		rn.path = c->ri.path;
		rn.path_len = c->ri.path_len;
		rn.query = c->ri.query;
		rn.query_len = c->ri.query_len;
		stats_request_end(status, proc_now_ms() - start,
		    atomic_load(&front_live.slow_ms), &rn, c->widx_pid);
	}
	/* A worker that answered on the connection wrote the bytes. */
	access_line(&c->ri, status, c->counted ? -1 : c->out_bytes,
	    c->qwait_us, proc_now_ms() - start, c->widx_pid);
}

/* Requests whose params fit this are read by the front and handed to
 * libfcgi (read_params); libfcgi's first read, 8 KiB, takes them all. */
#define REQ_SMALL	2048
_Static_assert(REQ_SMALL <= 8192 - 8, "libfcgi's first read takes it all");

/*
 * Read fd's next request until request_peek() can judge it.  Most
 * requests fit small (REQ_SMALL, in accept_request's frame: nginx's
 * params for a plain GET take under 1 KiB): they are read into it and
 * libfcgi is handed them (mgmt_hold), one system call where a peek and
 * libfcgi's read took two; *held says how many.  The buffer on the stack
 * keeps a connection thread's stack to two pages, its TCB's and one of
 * frames (a thread per kept connection: 4 KiB more is 4 MiB at 1,024).
 * Larger params are read up to REQ_SMALL and peeked at past it, in a
 * REQ_PARAMS_MAX buffer; libfcgi reads those from fd.  Management
 * records at the head are read and answered first.  poll(2) cannot wait
 * for more bytes than are queued, so while the params are not whole the
 * thread naps (1 ms, doubling to 64 ms, back to 1 ms when bytes come) in
 * a poll for a hang-up alone; a shutdown by the watchdog (C_WAITING:
 * --read-timeout) or conn_stop() is one.  0: libfcgi may read it; -1:
 * drop the connection (*why set if the params were refused).
 */
static int
read_params(struct conn *c, int fd, unsigned char *small, size_t *held,
    const char **why)
{
	unsigned char	*buf = small, *big = NULL;
	size_t		 have = 0, seen, last = 0, k, got;
	ssize_t		 n;
	struct pollfd	 pfd;
	int		 nap = 1, r;

	*why = NULL;
	for (;;) {
		if (big == NULL)
			n = recv(fd, small + have, REQ_SMALL - have,
			    MSG_DONTWAIT);
		else
			n = recv(fd, big + REQ_SMALL,
			    REQ_PARAMS_MAX - REQ_SMALL, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0)
			goto fail;	/* EOF */
		if (n == -1 && errno != EINTR && errno != EAGAIN)
			goto fail;
		if (n == -1)
			n = 0;
		if (big == NULL) {
			got = have += (size_t)n;
			/* Management records first: answer them.  What is
			 * left is judged before any more is read: it may be
			 * the whole request, with EOF behind it. */
			while ((k = mgmt_pending(&c->mf, small, have)) > 0) {
				if (mgmt_take(&c->mf, fd, small, k) == -1)
					goto fail;
				memmove(small, small + k, have - k);
				have -= k;
			}
			if (have < got)
				last = 0;
			if (have < got && have == 0)
				continue;	/* read on at once */
			seen = have;
		} else
			seen = REQ_SMALL + (size_t)n;
		if ((r = request_peek(buf, seen, why)) != REQ_PEEK_MORE)
			break;
		if (seen == REQ_SMALL && big == NULL) {
			if ((big = malloc(REQ_PARAMS_MAX)) == NULL) {
				log_warn("malloc");
				goto fail;
			}
			memcpy(big, small, REQ_SMALL);
			buf = big;
			continue;
		}
		nap = seen > last ? 1 : nap < 64 ? nap * 2 : 64;
		last = seen;
		pfd.fd = fd;
		pfd.events = POLLRDHUP;
		if (poll(&pfd, 1, nap) == 1)
			goto fail;	/* hung up, or shut down */
	}
	free(big);
	*held = have;
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
	unsigned char	 small[REQ_SMALL];
	const char	*why;
	size_t		 held;
	int		 rc;

	/* libfcgi reads each request from a record boundary. */
	mgmt_reset(&c->mf);
	if (read_params(c, fd, small, &held, &why) == -1) {
		if (why != NULL)
			log_warnx("dropped a FastCGI connection: %s", why);
		return -1;
	}
	/* FCGX_Accept_r begins with FCGX_Finish_r, which would close. */
	c->req.keepConnection = 1;
	(void)FCGX_Detach(&c->req);
	mgmt_hold(&c->mf, small, held);
	rc = FCGX_Accept_r(&c->req);
	/* Its first read took them (REQ_SMALL), unless it failed first:
	 * small is gone once we return. */
	if (mgmt_held(&c->mf) > 0) {
		mgmt_hold(&c->mf, NULL, 0);
		return -1;
	}
	return rc < 0 ? -1 : 0;
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
	int64_t	now = proc_now_ms();

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
	if (when > proc_now_ms())
		when = proc_now_ms();
	return when;
}

/*
 * The depth of the line (mailboxes whose state says queued) and the age
 * of its oldest request: the front's own time of each put (c->queued_us),
 * for the mailboxes whose state still says queued (a worker could forge
 * the state, not the time, nor make a request the front has finished
 * count).  Takes tlk for a moment, no connection's lk.
 */
void
conn_count_line(void)
{
	unsigned	i, n;
	int64_t		now = proc_now_us(), t, age = 0;

	pthread_mutex_lock(&tlk);
	n = nthreads;
	pthread_mutex_unlock(&tlk);
	for (i = 0; i < n; i++) {
		struct conn *c = conns[i];

		if (c == NULL || (t = atomic_load_explicit(&c->queued_us,
		    memory_order_relaxed)) == 0 ||
		    MB_KIND(dispatch_state(c->idx)) != MB_QUEUED)
			continue;
		if (now - t > age)
			age = now - t;
	}
	age /= 1000;
	atomic_store_explicit(&stats->queue_oldest_ms, age > UINT32_MAX ?
	    UINT32_MAX : (uint32_t)age, memory_order_relaxed);
	atomic_store(&stats->queue_depth, dispatch_queued());
}

/*
 * Once every 100 ms: memory freed by large requests goes back to the
 * system, and so do the pages of large-body buffers left idle
 * (dispatch_trim); the line is counted (conn_count_line), and a
 * connection that has spent longer than --read-timeout waiting for or
 * reading one request is shut down, which makes libfcgi's blocked read
 * fail and the thread drop it.  (Each request thread keeps its own
 * --timeout.)  O(threads) per pass; read timeouts are up to 100 ms late.
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
		now = proc_now_ms();
		conn_count_line();
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
	int		rc;

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
		 * the watchdog or conn_stop() also end it. */
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
		rc = finish_request(c);
		/* A request answered past --timeout: its worker leaves the
		 * mailbox before the next request goes in. */
		if (relay_settle(c) == -1 || rc == -1)
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
 * between threads).  -1 when stopping (conn_stop() shuts the socket down,
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
 * closes, again.  The last idle thread to take a connection has another
 * started (up to --threads), so one is always waiting in accept.
 */
static void *
thread_main(void *arg)
{
	struct conn	*c = arg;
	int		 fd;

	self = c;
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
		if (nidle == 0 && nthreads < maxthreads && !spawn_wanted) {
			spawn_wanted = 1;
			pthread_cond_signal(&tmore);
		}
		pthread_mutex_unlock(&tlk);
		serve_conn(c, fd);
		pthread_mutex_lock(&tlk);
		nactive--;
		pthread_cond_broadcast(&tdone);
		pthread_mutex_unlock(&tlk);
	}
	return NULL;	/* not reached */
}

/*
 * Start the connection threads that thread_main asks for.  A thread of
 * its own does it, not the connection thread that saw the need:
 * pthread_create runs some 4 KiB deeper than serving a request does, and
 * a page a thread's stack has touched stays resident for the thread's
 * life (threads never exit), so a connection thread that started another
 * would cost a page more per kept connection.
 */
static void *
spawner(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&tlk);
	for (;;) {
		while (!spawn_wanted)
			pthread_cond_wait(&tmore, &tlk);
		if (nidle == 0 && nthreads < maxthreads &&
		    !atomic_load(&stopping))
			spawn_thread();
		spawn_wanted = 0;
	}
	return NULL;	/* not reached */
}

/* Called with tlk held.  A failure leaves fewer threads, not a crash. */
static void
spawn_thread(void)
{
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
	conns[nthreads] = c;
	if (front_start_thread(&c->th, thread_main, c) == -1) {
		log_warn("pthread_create");
		conns[nthreads] = NULL;
		free(c);
	} else
		nthreads++;
}

/*
 * Which worker holds c's request, from its mailbox (the relay of a direct
 * request learns it only at the end): the worker's pid, 0 if none does.
 * The state and the time are a worker's word: read once, the time
 * clamped to [put in line, now].  A lie only puts the wrong name or age
 * on a row of /status.  Under c->lk.
 */
static pid_t
held_by(const struct conn *c, int64_t now_us, int64_t *ms)
{
	uint32_t	s, k;
	struct fworker	w;
	int64_t		put, at;

	if (c->relaying == -1 || (put = atomic_load_explicit(&c->queued_us,
	    memory_order_relaxed)) == 0)
		return 0;
	s = dispatch_state(c->idx);
	k = MB_KIND(s);
	if (k == MB_FREE || k == MB_QUEUED || k > MB_KIND_MAX ||
	    !(w = workers_at(MB_WORKER(s))).used)
		return 0;
	at = dispatch_claimed_us(c->idx);
	if (at < put || at > now_us)
		at = put;
	*ms = now_us > at ? (now_us - at) / 1000 : 0;
	return w.pid;
}

unsigned
conn_held(struct held *h, unsigned max)
{
	struct conn	*c;
	unsigned	 i, n, k = 0;
	int64_t		 now = proc_now_us();

	pthread_mutex_lock(&tlk);
	n = nthreads;
	pthread_mutex_unlock(&tlk);
	for (i = 0; i < n && k < max; i++) {
		if ((c = conns[i]) == NULL)
			continue;
		pthread_mutex_lock(&c->lk);
		if ((h[k].pid = held_by(c, now, &h[k].elapsed_ms)) > 0) {
			/* ri stays the request's until the relay ends,
			 * which takes lk. */
			request_line(&c->ri, h[k].line, sizeof(h[k].line));
			k++;
		}
		pthread_mutex_unlock(&c->lk);
	}
	return k;
}

/* Wait for the open connections to finish, then exit. */
static void *
drain(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&tlk);
	log_info("stopping: waiting for %u open connections to finish",
	    nactive);
	while (nactive > 0)
		pthread_cond_wait(&tdone, &tlk);
	pthread_mutex_unlock(&tlk);
	access_flush();
	log_info("stopped");
	_exit(0);
}

/*
 * Stop taking connections and requests; exit once the open ones are
 * done.  The control thread goes on meanwhile: workers still ask it for
 * connections, and a worker's death must still reach a waiting thread.
 */
void
conn_stop(void)
{
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
	if (front_start_thread(NULL, drain, NULL) == -1) {
		log_warn("pthread_create");
		(void)drain(NULL);
	}
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
 * Start taking connections on lfd: the first connection thread, the
 * spawner and the watchdog.  At start-up only (a failure is fatal).
 */
void
conn_start(unsigned threads, int lfd)
{
	int	fl;

	listen_fd = lfd;
	maxthreads = threads;
	mgmt_init(threads);
	if ((conns = calloc(maxthreads, sizeof(*conns))) == NULL)
		fatal("calloc");
	/* Blocking accept: see accept_one(). */
	if ((fl = fcntl(listen_fd, F_GETFL)) == -1 ||
	    fcntl(listen_fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
		fatal("fcntl on the listening socket");
	pthread_mutex_lock(&tlk);
	spawn_thread();
	pthread_mutex_unlock(&tlk);
	if (nthreads == 0)
		fatalx("cannot start a connection thread");
	if (front_start_thread(NULL, spawner, NULL) == -1 ||
	    front_start_thread(NULL, watchdog, NULL) == -1)
		fatal("pthread_create");
}
