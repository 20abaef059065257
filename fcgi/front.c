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
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "front.h"
#include "front_int.h"
#include "handlers.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "request.h"
#include "stats.h"
#include "status.h"

#define THREAD_STACK	(256 * 1024)
#define BODY_DRAIN_MAX	(64u << 20)	/* past this, 413 and close */
/* Per-connection buffers larger than this are freed after their request,
 * so memory follows the requests in flight, not the largest ever seen;
 * the watchdog then hands the freed pages back (malloc_trim). */
#define KEEP_BUF	(16u * 1024)

/* The hello workers, by master slot (the worker part of mailbox states). */
struct fworker {
	int		 used;
	uint64_t	 id;
	pid_t		 pid;
	unsigned	 number;
};

static struct fworker	 wtab[STATS_SLOTS];
static pthread_mutex_t	 wlk = PTHREAD_MUTEX_INITIALIZER;
/* Each hello worker's channel (direct.h), by slot; -1 when none.  Only
 * the control thread touches them. */
static int		 wchan[STATS_SLOTS];
static uint64_t		 area_max_body;	/* the dispatch area's room */

static int		 listen_fd = -1, ctl_fd = -1;
static _Atomic int	 stopping;
static _Atomic uint64_t	 seq = 1;
static _Atomic int	 trim_wanted;	/* a large buffer was freed */
static sigset_t		 wake_mask;	/* a thread's mask, SIGUSR2 let in */

/* Settings a reload may change. */
static _Atomic uint64_t	 s_max_body;
static _Atomic uint32_t	 s_timeout_ms, s_read_timeout_ms, s_slow_ms,
			 s_debug;

/* Threads: bookkeeping, all under tlk. */
static pthread_mutex_t	 tlk = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 tdone = PTHREAD_COND_INITIALIZER;
static unsigned		 nthreads, nidle, nactive, maxthreads;
static struct conn	**conns;

static void	spawn_thread(void);
static void	conn_wake(struct conn *);
static void	conn_state(struct conn *, enum cstate);
static _Atomic uint32_t	s_queue;

static unsigned
queue_cap_now(void)
{
	return atomic_load(&s_queue);
}

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
	atomic_store(&s_max_body, max);
	atomic_store(&s_timeout_ms, ms->timeout_ms);
	atomic_store(&s_read_timeout_ms, ms->read_timeout_ms);
	atomic_store(&s_slow_ms, ms->slow_ms);
	atomic_store(&s_debug, ms->debug_routes);
	atomic_store(&s_queue, ms->queue);
	atomic_store(&stats->queue_capacity, ms->queue);
}

/* --- workers ------------------------------------------------------- */

/* Ask the master to kill a child (it still owns the pid: no reuse). */
void
ask_kill(uint64_t id, uint32_t mslot, pid_t pid, unsigned number,
    enum wkind kind)
{
	struct msg_worker	mw;

	memset(&mw, 0, sizeof(mw));
	mw.slot = mslot;
	mw.pid = pid;
	mw.number = number;
	mw.kind = kind;
	/* SOCK_SEQPACKET: each message is one atomic packet, so any thread
	 * may send; only the control thread reads. */
	if (msg_send_fds(ctl_fd, MSG_KILL, id, &mw, sizeof(mw), NULL,
	    0) == -1)
		log_warn("asking the master to kill pid %ld", (long)pid);
}

/* A copy of the entry of the worker in slot w (zero when none). */
static struct fworker
worker_at(uint32_t w)
{
	struct fworker	f;

	memset(&f, 0, sizeof(f));
	if (w < STATS_SLOTS) {
		pthread_mutex_lock(&wlk);
		f = wtab[w];
		pthread_mutex_unlock(&wlk);
	}
	return f;
}

/* Ask the master to kill the worker in slot w, if it is still there. */
static void
worker_kill(uint32_t w)
{
	struct fworker	f = worker_at(w);

	if (f.used)
		ask_kill(f.id, w, f.pid, f.number, WORKER_HELLO);
}

static void
worker_up(const struct msg_hdr *h, const struct msg_worker *mw, int *fds,
    int nfds)
{
	if (mw->slot >= STATS_SLOTS) {
		log_warnx("worker-up for slot %u", mw->slot);
		goto fail;
	}
	if (mw->kind == WORKER_STORE) {
		if (nfds != 2) {
			log_warnx("store-up without its two pipe ends");
			goto fail;
		}
		store_client_up(h, mw, fds);
		return;
	}
	pthread_mutex_lock(&wlk);
	wtab[mw->slot].used = 1;
	wtab[mw->slot].id = h->id;
	wtab[mw->slot].pid = mw->pid;
	wtab[mw->slot].number = mw->number;
	pthread_mutex_unlock(&wlk);
	if (wchan[mw->slot] != -1)
		close(wchan[mw->slot]);	/* its last worker's */
	wchan[mw->slot] = -1;
	if (nfds == 1) {
		/* Never block the control thread on a worker. */
		if (fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1)
			log_warn("fcntl O_NONBLOCK on a worker's channel");
		else {
			wchan[mw->slot] = fds[0];
			nfds = 0;
		}
	}
fail:
	while (nfds > 0)
		close(fds[--nfds]);
}

/* Slot of the hello worker with this id, or -1. */
static int
worker_slot(uint64_t id)
{
	unsigned	i;
	int		w = -1;

	pthread_mutex_lock(&wlk);
	for (i = 0; i < STATS_SLOTS; i++)
		if (wtab[i].used && wtab[i].id == id)
			w = (int)i;
	pthread_mutex_unlock(&wlk);
	return w;
}

/* The master retired a worker: it takes no more requests. */
static void
worker_retire(uint64_t id)
{
	int	w;

	if ((w = worker_slot(id)) != -1)
		dispatch_retire((uint32_t)w);
}

/* --- answering ----------------------------------------------------- */

static void
put(struct conn *c, const void *p, size_t n)
{
	if (n > 0 && FCGX_PutStr(p, (int)n, c->req.out) < 0)
		c->req.keepConnection = 0;
}

/* An answer of the front's own, when no worker can give one. */
unsigned
front_reply(struct conn *c, unsigned status, const char *extra,
    const char *why)
{
	char	head[512], body[512];
	int	h, b;

	/* The body first, so its length is counted, not worked out. */
	b = snprintf(body, sizeof(body), "%u %s: %s\n", status,
	    status_text(status), why);
	if (b < 0)
		b = 0;
	if ((size_t)b >= sizeof(body))
		b = (int)sizeof(body) - 1;
	h = snprintf(head, sizeof(head), "Status: %u %s\r\nContent-Type: "
	    "text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s\r\n",
	    status, status_text(status), b, extra ? extra : "");
	if (h > 0 && (size_t)h < sizeof(head)) {
		put(c, head, (size_t)h);
		put(c, body, (size_t)b);
	}
	return status;
}

/* MSG_REQUEST iovecs for c's request with this body (iov has room for 5). */
static void
pack_request(struct conn *c, struct msg_request *mr, struct iovec *iov,
    const char *body, size_t blen)
{
	msg_request_pack(mr, 0, c->ri.method, c->ri.method_len, c->ri.path,
	    c->ri.path_len, c->ri.query, c->ri.query_len, blen, iov);
	iov[4].iov_base = (void *)(uintptr_t)body;
	iov[4].iov_len = blen;
}

/*
 * Read the request body into c->body, growing it from the declared
 * length up to max + 1 bytes (one more than allowed shows a body that is
 * too long).  -1: the client failed.
 */
static int
read_body(struct conn *c, size_t max, size_t *len)
{
	size_t	n = 0, want;
	char	*nb;
	int	r;

	want = c->ri.content_length < max ? (size_t)c->ri.content_length + 1 :
	    max + 1;
	for (;;) {
		if (c->bodycap < want) {
			if ((nb = realloc(c->body, want)) == NULL)
				return -1;
			c->body = nb;
			c->bodycap = want;
		}
		while (n < c->bodycap) {
			r = FCGX_GetStr(c->body + n, (int)(c->bodycap - n),
			    c->req.in);
			if (r <= 0)
				goto done;
			n += (size_t)r;
		}
		if (c->bodycap > max)
			break;		/* max + 1 bytes: too long */
		want = c->bodycap * 2 < max + 1 ? c->bodycap * 2 : max + 1;
	}
done:
	if (FCGX_GetError(c->req.in) != 0)
		return -1;
	*len = n;
	return 0;
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

/* Read and throw away what is left of the body, up to a bound. */
static int
drain_body(struct conn *c)
{
	char	buf[8192];
	size_t	total = 0;
	int	r;

	while ((r = FCGX_GetStr(buf, sizeof(buf), c->req.in)) > 0) {
		total += (size_t)r;
		if (total > BODY_DRAIN_MAX)
			return -1;
	}
	return FCGX_GetError(c->req.in) == 0 ? 0 : -1;
}

/* Answering without a worker: the unread body must not be taken for the
 * next request on a kept connection. */
static void
skip_body(struct conn *c)
{
	int	saved = errno;

	conn_state(c, C_BODY);
	if (drain_body(c) == -1)
		c->req.keepConnection = 0;
	conn_state(c, C_BUSY);
	errno = saved;
}

/* After reading a body of n bytes: 0, or the answer given instead. */
static unsigned
body_verdict(struct conn *c, int failed, size_t n, size_t max)
{
	if (failed) {
		c->req.keepConnection = 0;
		return front_reply(c, 400, NULL, "could not read the request "
		    "body");
	}
	if (n > max) {
		if (drain_body(c) == -1)
			c->req.keepConnection = 0;
		return front_reply(c, 413, NULL, "the request body is larger "
		    "than --max-body");
	}
	conn_state(c, C_BUSY);
	return 0;
}

/*
 * Read c's whole body (c->ri.content_length is within --max-body) into
 * c->body.  Returns 0, or the status of the answer given instead (400,
 * 413).  The watchdog bounds the read by --read-timeout (C_BODY).
 */
static unsigned
take_body(struct conn *c, size_t *blen)
{
	size_t	max = atomic_load(&s_max_body);
	int	r;

	conn_state(c, C_BODY);
	r = read_body(c, max, blen);
	return body_verdict(c, r == -1, *blen, max);
}

/* The same into buf, which has room for --max-body + 1 bytes. */
static unsigned
take_body_into(struct conn *c, unsigned char *buf, size_t *blen)
{
	size_t	max = atomic_load(&s_max_body), n = 0;
	int	r;

	conn_state(c, C_BODY);
	while (n < max + 1) {
		r = FCGX_GetStr((char *)buf + n, (int)(max + 1 - n < INT_MAX ?
		    max + 1 - n : INT_MAX), c->req.in);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	*blen = n;
	return body_verdict(c, FCGX_GetError(c->req.in) != 0, n, max);
}

/* Where a request's body starts in its mailbox. */
static size_t
body_offset(const struct conn *c)
{
	return sizeof(struct msg_hdr) + sizeof(struct msg_request) +
	    c->ri.method_len + c->ri.path_len + c->ri.query_len;
}

/* Frame c's request, whose body is already in place, in mailbox d. */
static void
frame_request(struct conn *c, unsigned char *d, uint64_t id, size_t blen)
{
	struct msg_request	mr;
	struct iovec		iov[5];

	pack_request(c, &mr, iov, (const char *)d + body_offset(c), blen);
	(void)msg_frame(d, dispatch_capacity(), MSG_REQUEST, id, iov, 5);
}

/* The request is over: give back its mailbox and its large buffer. */
static void
release(struct conn *c, int b, size_t used)
{
	if (b >= 0) {
		dispatch_buf_put((unsigned)b, used, now_ms_mono());
		used = 0;
	}
	dispatch_free(c->idx, used);
}

/*
 * Wait for c's direct request to move on from state seen: its worker sent
 * the answer, or something needs the thread.  The worker does not wake
 * us: once the answer is sent, the next thing on the connection is the
 * next request (or EOF), so we sleep on the socket, and the control
 * thread wakes us (conn_wake) when a worker dies, answers in the mailbox
 * after all, or when stopping.  1 if the socket is readable while the
 * state is still seen (nginx hung up, or broke the protocol), 0 to look
 * again, -1 past deadline (INT64_MAX: none).
 */
static int
wait_direct(struct conn *c, uint32_t seen, int64_t deadline)
{
	struct pollfd	pfd = { c->req.ipcFd, POLLIN, 0 };
	struct timespec	ts;
	int64_t		left;
	int		r;

	atomic_store(&c->waiting, 1);
	/* Pairs with conn_wake(): either we see the new state here, or it
	 * sees c->waiting (both sequentially consistent) and its signal,
	 * blocked until ppoll, ends the ppoll at once. */
	if (dispatch_state(c->idx) != seen) {
		atomic_store(&c->waiting, 0);
		return 0;
	}
	left = deadline - now_ms_mono();
	if (left < 0)
		left = 0;
	ts.tv_sec = left / 1000;
	ts.tv_nsec = left % 1000 * 1000000;
	r = ppoll(&pfd, 1, deadline == INT64_MAX ? NULL : &ts, &wake_mask);
	atomic_store(&c->waiting, 0);
	if (r == -1 && errno != EINTR)
		log_warn("ppoll");
	c->input = r == 1;	/* serve_conn need not poll again */
	if (dispatch_state(c->idx) != seen || r == -1)
		return 0;
	if (r == 1)
		return 1;
	return now_ms_mono() >= deadline ? -1 : 0;
}

/* No worker took the request: give its mailbox back and answer alone. */
static unsigned
no_worker(struct conn *c, int want_body, size_t used, unsigned status,
    const char *why)
{
	if (want_body)
		skip_body(c);	/* not read yet */
	dispatch_free(c->idx, used);
	return front_reply(c, status, status == 503 ? "Retry-After: 1\r\n" :
	    NULL, why);
}

/*
 * Put the request in c's mailbox and see it answered by the worker that
 * takes it: on the connection by the worker itself (direct), or relayed
 * from the mailbox.  A small body goes in with the request; a large one
 * is read once a worker has the request, so only requests being served
 * hold a body in memory.  Past --timeout the worker is killed and the
 * master's word of its death ends the wait (504); a death before
 * answering is a 502, and so is an answer that is not a well-formed
 * reply; a death while writing a direct answer closes the connection.
 */
static unsigned
dispatch(struct conn *c, int64_t start)
{
	unsigned char	*d = dispatch_data(c->idx);
	const unsigned char *p;
	size_t		 cap = dispatch_capacity(), blen = 0, used = 0;
	size_t		 bmax = body_offset(c) + atomic_load(&s_max_body) + 1;
	struct msg_hdr	 h;
	struct msg_reply rep;
	int64_t		 deadline;
	uint64_t	 id;
	uint32_t	 s, w;
	unsigned	 status;
	struct fworker	 wk;
	int		 want_body, timed_out = 0, b = -1, direct, r;
	struct mb_conn	 mc;
	int64_t		 sent_ms;

	deadline = start + atomic_load(&s_timeout_ms);
	id = atomic_fetch_add(&seq, 1);
	want_body = c->ri.content_length > MB_BODY_INLINE;
	/* Direct from a kept connection's second request on: nginx closes
	 * connections past its keepalive pool after one request, and such
	 * a connection is not worth the round trip that gives a worker its
	 * fd (a wake-up of the control thread). */
	direct = c->req.keepConnection && ++c->nreq > 1;
	mc.gen = c->gen;
	mc.fcgi_id = (uint32_t)c->req.requestId;
	mc.start_ms = start;
	dispatch_conn(c->idx, direct ? &mc : NULL);
	if (!want_body) {
		if ((status = take_body_into(c, d + body_offset(c),
		    &blen)) != 0) {
			dispatch_free(c->idx, bmax);
			return status;
		}
		frame_request(c, d, id, blen);
		used = body_offset(c) + blen;
	}
	if (dispatch_put(c->idx, queue_cap_now(), want_body) == -1) {
		STAT_ADD(rejected_overload, 1);
		return no_worker(c, want_body, used, 503, "every worker is busy "
		    "and the queue is full");
	}
	for (;;) {
		s = dispatch_state(c->idx);
		if (MB_KIND(s) == MB_DONE || MB_KIND(s) == MB_FAILED ||
		    MB_KIND(s) == MB_SENT || MB_KIND(s) == MB_CUT)
			break;
		if (MB_KIND(s) == MB_WANT_BODY && b == -1) {
			/* A worker has it: now the body, into a buffer of
			 * the pool, where the worker will answer too. */
			w = MB_WORKER(s);
			if ((b = dispatch_buf_get()) == -1) {
				(void)dispatch_body(c->idx, w, 0, 0);
				STAT_ADD(rejected_overload, 1);
				return no_worker(c, 1, 0, 503, "no buffer for a "
				    "large body");
			}
			d = dispatch_buf((unsigned)b);
			status = take_body_into(c, d + body_offset(c), &blen);
			if (status == 0)
				frame_request(c, d, id, blen);
			/* -1: it died meanwhile, and the mailbox says so. */
			(void)dispatch_body(c->idx, w, status == 0,
			    (unsigned)b);
			if (status != 0) {
				/* Answered (400, 413); the worker goes back to
				 * the line without touching the buffer. */
				if (status == 400)
					log_warnx("a client left before sending "
					    "its body (%s %s); the worker that "
					    "waited for it goes back to the line",
					    c->ri.method, c->ri.path);
				release(c, b, bmax);
				return status;
			}
			used = body_offset(c) + blen;
			continue;
		}
		/* A large body's worker wakes us on the mailbox when it wants
		 * the body; after that, or for a small one, a direct answer
		 * needs nothing from us.  Once the socket is readable, only
		 * the mailbox is left to wait on. */
		if (direct && (!want_body || b != -1))
			r = wait_direct(c, s, timed_out ? INT64_MAX : deadline);
		else
			r = dispatch_wait(c->idx, s, timed_out ? -1 :
			    deadline);
		if (r == 1) {
			/* The worker is writing its last bytes (nginx may
			 * answer them before it says so), or else nginx hung
			 * up or broke the protocol: this connection ends with
			 * this request.  Either way, only the mailbox is left
			 * to wait on. */
			if (MB_KIND(s) != MB_SENDING)
				c->req.keepConnection = 0;
			direct = 0;
			continue;
		}
		if (r == 0 || timed_out)
			continue;
		/* Past --timeout. */
		s = dispatch_state(c->idx);
		if (s == MB_QUEUED && dispatch_cancel(c->idx)) {
			STAT_ADD(timeouts, 1);
			return no_worker(c, want_body, used, 504, "no worker "
			    "became free within --timeout");
		}
		if (MB_KIND(s) == MB_CLAIMED || MB_KIND(s) == MB_SENDING) {
			/* Its death, reported by the master, ends the wait. */
			timed_out = 1;
			worker_kill(MB_WORKER(s));
		}
	}
	w = MB_WORKER(s);
	wk = worker_at(w);
	if (MB_KIND(s) == MB_SENT || MB_KIND(s) == MB_CUT) {
		/* The worker counted the request and wrote what there is:
		 * libfcgi must write nothing more for it.  A large body's
		 * buffer goes back once: by the worker once it sent, or
		 * here if it died sending. */
		c->counted = 1;
		c->widx_pid = (unsigned)wk.pid;
		c->req.out->wasFCloseCalled = 1;
		c->req.err->wasFCloseCalled = 1;
		dispatch_sent_info(c->idx, &status, &sent_ms);
		if (b >= 0 && dispatch_buf_claim(c->idx) == -1) {
			b = -1;		/* the worker gave it back */
			used = 0;	/* and the mailbox held no body */
		}
		release(c, b, used);
		if (MB_KIND(s) == MB_SENT && status != 0)
			return status;
		c->req.keepConnection = 0;
		if (MB_KIND(s) == MB_SENT)
			return 499;	/* nginx went away: nobody to tell */
		if (timed_out)
			STAT_ADD(timeouts, 1);
		log_warnx("worker %u (pid %ld) %s while sending its answer to "
		    "%s %s; closing the connection", wk.number, (long)wk.pid,
		    timed_out ? "took longer than --timeout and was killed" :
		    "died", c->ri.method, c->ri.path);
		return 502;
	}
	if (MB_KIND(s) == MB_FAILED) {
		release(c, b, used);
		if (timed_out) {
			STAT_ADD(timeouts, 1);
			log_warnx("worker %u (pid %ld) took longer than "
			    "--timeout on %s %s; killed it", wk.number,
			    (long)wk.pid, c->ri.method, c->ri.path);
			return front_reply(c, 504, NULL, "the worker took "
			    "longer than --timeout");
		}
		log_warnx("worker %u (pid %ld) died while handling %s %s",
		    wk.number, (long)wk.pid, c->ri.method, c->ri.path);
		return front_reply(c, 502, NULL, "the worker died while "
		    "handling this request");
	}
	/* MB_DONE: the worker is done with the data; check its reply. */
	if ((p = msg_unframe(d, cap, MSG_REPLY, &h)) != NULL && h.id == id) {
		memcpy(&rep, p, sizeof(rep));
		if (rep.status >= 100 && rep.status <= 599) {
			if (w < STATS_SLOTS)
				atomic_fetch_add_explicit(&stats->w[w].requests,
				    1, memory_order_relaxed);
			c->widx_pid = (unsigned)wk.pid;
			put(c, p + sizeof(rep), h.len - sizeof(rep));
			if (sizeof(h) + h.len > used)
				used = sizeof(h) + h.len;
			release(c, b, used);
			return rep.status;
		}
	}
	release(c, b, cap);
	worker_kill(w);
	log_warnx("worker %u (pid %ld) sent a malformed reply; killing it",
	    wk.number, (long)wk.pid);
	return front_reply(c, 502, NULL, "the worker sent a malformed reply");
}

/*
 * /status (JSON, or HTML with ?html) and /metrics: the front answers
 * these itself, from the shared counters, so they work while every worker
 * is busy or crashing.  Returns 0 if the path is not one of them.
 */
static unsigned
front_page(struct conn *c)
{
	char		 head[256];
	const char	*ct;
	size_t		 n;
	int		 h, is_head;

	if (strcmp(c->ri.path, "/status") == 0) {
		if (c->page == NULL && (c->page = malloc(STATUS_BUF_MAX)) == NULL)
			return front_reply(c, 503, NULL, "out of memory");
		if (strncmp(c->ri.query, "html", 4) == 0 &&
		    (c->ri.query[4] == '\0' || c->ri.query[4] == '&' ||
		    c->ri.query[4] == '=')) {
			n = status_html(c->page, STATUS_BUF_MAX);
			ct = STATUS_CT_HTML;
		} else {
			n = status_json(c->page, STATUS_BUF_MAX);
			ct = STATUS_CT_JSON;
		}
	} else if (strcmp(c->ri.path, "/metrics") == 0) {
		if (c->page == NULL && (c->page = malloc(STATUS_BUF_MAX)) == NULL)
			return front_reply(c, 503, NULL, "out of memory");
		n = status_metrics(c->page, STATUS_BUF_MAX);
		ct = STATUS_CT_METRICS;
	} else
		return 0;
	is_head = strcmp(c->ri.method, "HEAD") == 0;
	if (!is_head && strcmp(c->ri.method, "GET") != 0)
		return front_reply(c, 405, "Allow: GET, HEAD\r\n", "this page "
		    "takes GET or HEAD");
	h = snprintf(head, sizeof(head), "Status: 200 OK\r\nContent-Type: %s"
	    "\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n\r\n",
	    ct, n);
	put(c, head, (size_t)h);
	if (!is_head)
		put(c, c->page, n);
	return 200;
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
	size_t		 blen = 0, max = atomic_load(&s_max_body);
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
		front_reply(c, status, NULL, why);
		goto done;
	}
	if (c->ri.content_length > max) {
		if (drain_body(c) == -1)
			c->req.keepConnection = 0;
		status = front_reply(c, 413, NULL, "the request body is "
		    "larger than --max-body");
		goto done;
	}
	/* The front's pages and the store's read the body into c->body; a
	 * worker's request reads it into its mailbox (see dispatch()). */
	if (front_route_store(&c->ri, atomic_load(&s_debug)) ||
	    strcmp(c->ri.path, "/status") == 0 ||
	    strcmp(c->ri.path, "/metrics") == 0) {
		if ((status = take_body(c, &blen)) != 0)
			goto done;
		if ((status = front_page(c)) == 0)
			status = store_client_request(c, c->body, blen,
			    start + atomic_load(&s_timeout_ms), queue_cap_now(),
			    (int)atomic_load(&s_debug));
	} else {
		conn_state(c, C_BUSY);
		status = dispatch(c, start);
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
		    atomic_load(&s_slow_ms), &rn, c->widx_pid);
	}
}

/* --- connections and threads --------------------------------------- */

/*
 * libfcgi's param parser (even with Debian's CVE-2025-23016 patch) sums
 * a declared name and value length in an int and asserts that malloc of
 * the result succeeded: a client declaring lengths near 2^31 makes it
 * abort().  glibc's abort() raises SIGABRT with no lock held, so while a
 * thread is inside FCGX_Accept_r its handler jumps back to serve_conn,
 * which drops that connection.  Any other SIGABRT still kills the front.
 */
static __thread sigjmp_buf	*parse_jmp;

/* conn_wake's signal: its only work is to end a ppoll. */
static void
on_wake(int sig)
{
	(void)sig;
}

static void
on_abort(int sig)
{
	sigjmp_buf	*jb = parse_jmp;

	if (jb != NULL) {
		parse_jmp = NULL;
		siglongjmp(*jb, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* FCGX_Accept_r, surviving libfcgi's assertion on absurd param lengths. */
static int
accept_request(struct conn *c)
{
	sigjmp_buf	jb;
	int		r;

	if (sigsetjmp(jb, 0) != 0) {
		log_warnx("dropped a FastCGI connection whose params declared "
		    "impossible lengths (libfcgi gave up on them)");
		FCGX_Free(&c->req, 1);
		return -1;
	}
	parse_jmp = &jb;
	r = FCGX_Accept_r(&c->req);
	parse_jmp = NULL;
	return r;
}

static void
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
		limit = atomic_load(&s_read_timeout_ms);
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
		if (accept_request(c) < 0)
			break;	/* closed, timed out or broken: libfcgi closed */
		conn_state(c, C_BODY);
		serve_request(c);
		if (atomic_load(&stopping))
			c->req.keepConnection = 0;
		FCGX_Finish_r(&c->req);
		if (c->req.ipcFd < 0)
			break;
	}
	if (c->req.ipcFd >= 0) {
		FCGX_Free(&c->req, 0);
		/* Workers may hold the connection too (direct.c): only a
		 * shutdown ends it for nginx. */
		(void)shutdown(c->req.ipcFd, SHUT_RDWR);
		close(c->req.ipcFd);
		c->req.ipcFd = -1;
	}
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
	uint32_t	ms = atomic_load(&s_read_timeout_ms);
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
static void
conn_wake(struct conn *c)
{
	if (!atomic_load(&c->waiting))
		return;
	if ((errno = pthread_kill(c->th, SIGUSR2)) != 0)
		log_warn("waking a connection thread");
}

/* The connection thread with mailbox mb, or NULL. */
static struct conn *
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
static void
wake_waiting(void)
{
	unsigned	i;

	pthread_mutex_lock(&tlk);
	for (i = 0; i < nthreads; i++)
		if (conns[i] != NULL)
			conn_wake(conns[i]);
	pthread_mutex_unlock(&tlk);
}

/*
 * A message from the hello worker in slot w: it asks for a connection's
 * fd (given only while that connection is the one asked for: its thread
 * holds it open while the request is the worker's), or its answer is in
 * its mailbox after all.
 */
static void
worker_chan(uint32_t w)
{
	struct msg_hdr	 h;
	struct msg_conn	 mc;
	struct conn	*c;
	int		 fds[1], nfds = 1, r, give;

	r = (int)msg_recv_fds(wchan[w], &h, &mc, sizeof(mc), fds, &nfds);
	if (r == 0 || (r == -1 && errno != EAGAIN && errno != EPROTO)) {
		close(wchan[w]);	/* the worker is gone */
		wchan[w] = -1;
		return;
	}
	if (nfds > 0)
		close(fds[0]);
	if (r == -1) {
		if (errno == EPROTO)
			log_warnx("bad message on a worker's channel");
		return;
	}
	c = conn_at(mc.mbox);
	switch (h.type) {
	case MSG_CONN_ASK:
		if (c != NULL)
			pthread_mutex_lock(&c->lk);
		give = c != NULL && c->gen == mc.gen && c->dupfd != -1;
		if (msg_send_fds(wchan[w], MSG_CONN, 0, &mc, sizeof(mc),
		    give ? &c->dupfd : NULL, give) == -1)
			log_warn("giving a worker its connection");
		if (c != NULL)
			pthread_mutex_unlock(&c->lk);
		break;
	case MSG_REPLIED:
		if (c != NULL)
			conn_wake(c);
		break;
	default:
		log_warnx("unexpected %s message from a worker",
		    msg_typename(h.type));
		break;
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
	struct msg_hdr	h;
	union {
		struct msg_worker	w;
		struct msg_settings	s;
	} u;
	struct pollfd	pfd[STATS_SLOTS + 1];
	uint32_t	slot[STATS_SLOTS + 1];
	int		fds[4], nfds, n, i;
	ssize_t		r;

	for (;;) {
		pfd[0].fd = ctl_fd;
		pfd[0].events = POLLIN;
		for (n = 1, i = 0; i < STATS_SLOTS; i++)
			if (wchan[i] != -1) {
				pfd[n].fd = wchan[i];
				pfd[n].events = POLLIN;
				slot[n++] = (uint32_t)i;
			}
		if (poll(pfd, (nfds_t)n, -1) == -1) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		for (i = 1; i < n; i++)
			if (pfd[i].revents != 0)
				worker_chan(slot[i]);
		if (pfd[0].revents == 0)
			continue;
		nfds = 4;
		r = msg_recv_fds(ctl_fd, &h, &u, sizeof(u), fds, &nfds);
		if (r == 0) {
			log_warnx("the master is gone; exiting");
			_exit(1);
		}
		if (r == -1) {
			if (errno == EPROTO) {
				log_warnx("bad control message");
				continue;
			}
			fatal("reading the control socket");
		}
		switch (h.type) {
		case MSG_WORKER_UP:
			worker_up(&h, &u.w, fds, nfds);
			continue;
		case MSG_WORKER_GONE:
			/* The master already failed the request it held
			 * (dispatch_gone); its entry stays for the log until
			 * a new worker takes the slot.  A thread waiting for
			 * a direct answer sleeps in poll, not on its mailbox:
			 * wake it to look. */
			wake_waiting();
			break;
		case MSG_RETIRE:
			worker_retire(h.id);
			break;
		case MSG_SETTINGS:
			apply_settings(&u.s);
			break;
		case MSG_STOP:
			stop();
			break;
		default:
			log_warnx("unexpected %s message from the master",
			    msg_typename(h.type));
			break;
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
	if (pthread_sigmask(SIG_BLOCK, &set, &wake_mask) != 0)
		fatal("pthread_sigmask");
	sigdelset(&wake_mask, SIGUSR2);
	/* SA_NODEFER: the handler runs with the thread's own mask, so
	 * accept_request's sigsetjmp need not save it (a system call per
	 * request) for the jump out to leave SIGABRT unblocked. */
	sa.sa_handler = on_abort;
	sa.sa_flags = SA_NODEFER;
	if (sigaction(SIGABRT, &sa, NULL) == -1)
		fatal("sigaction");
	if ((conns = calloc(maxthreads, sizeof(*conns))) == NULL)
		fatal("calloc");
	area_max_body = o->max_body;
	for (fl = 0; fl < STATS_SLOTS; fl++)
		wchan[fl] = -1;
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
