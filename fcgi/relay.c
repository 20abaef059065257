/*
 * relay.c: one request through a worker.  The request goes into its
 * connection thread's mailbox of the dispatch area (worker/ipc/dispatch.h),
 * where the oldest waiting request is taken by the next free worker; the
 * thread then follows the mailbox's state word until the request is
 * answered: on the connection by the worker itself (a direct answer, from
 * a kept connection's second request on), or from the mailbox, relayed
 * by the thread.  The front answers alone when no worker can: 503 (queue
 * full, or no buffer for a large body), 504 (--timeout), 502 (the worker
 * died, broke the rules, or sent a malformed reply).
 *
 * relay() is the only entry; it runs once per request on the connection
 * thread, and every step below is static so that the compiler can fold
 * the loop into it.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "front_int.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "shed.h"
#include "stats.h"

static _Atomic uint64_t	 seq = 1;	/* request ids */

/*
 * The relay of one request through a worker: a struct for what is carried
 * across the wait, and one short function per mailbox state, each
 * returning 0 to look at the mailbox again or the status of the answer
 * (slowcgi's parse_record chain is the shape).
 *
 * Trust: the state word is the only thing a worker tells us here, and any
 * worker can write it, so it is a claim, checked against what this thread
 * knows (relay_check): whether the request is direct, and which worker
 * first held it (r->owner, pinned at the first look that names one).  A
 * state that breaks the rules is that worker's fault: it is killed and
 * only this request fails.  A worker that keeps changing the state, or
 * waking the thread, makes no thread spin: after RELAY_CHANGES_MAX changes
 * or RELAY_LOOKS_MAX looks it counts as broken.  A streamed answer's
 * pieces (MB_PART) are the exception: each one written starts the counts
 * again, and only the deadline bounds how many come.
 * Once part of an answer went to nginx (a direct request's worker may
 * have written on the connection; a streamed answer's pieces went), a
 * fault can no longer be answered: the connection is closed instead.
 * Past --timeout the worker is killed, and past RELAY_GRACE_MS more the
 * thread stops waiting for word of its death and answers alone.
 * While its request waits in line, the thread also looks at its
 * connection every RELAY_LINE_LOOK_MS: nginx closes it when its client
 * gives up (or aborts the request, FCGI_ABORT_REQUEST), and then the
 * request leaves the line, so no worker works for nobody.
 */
#define RELAY_CHANGES_MAX	16	/* a request makes 6 at the most */
#define RELAY_LOOKS_MAX		4096	/* wake-ups with no change: worker
					 * deaths, or a worker's futex wakes */
#define RELAY_GRACE_MS		2000	/* from the kill to its word */
#define SHED_WHY	"requests wait longer than --queue-target-ms for a worker"
#define RELAY_LINE_LOOK_MS	50	/* in line: how often the connection
					 * is looked at */

struct relay {
	struct conn	*c;
	unsigned char	*d;		/* the request: mailbox or buffer */
	size_t		 used;		/* data bytes it touched there */
	size_t		 bmax;		/* the most a request can touch */
	size_t		 msg_len;	/* the request message's bytes */
	int64_t		 start, deadline;
	int64_t		 put_us;	/* when it went into the line */
	uint64_t	 id;
	unsigned	 status;	/* a streamed answer's, from its first
					 * piece */
	int		 streamed;	/* a piece went to nginx */
	int		 stopped;	/* ...and nginx took no more */
	uint32_t	 owner;		/* tag first seen holding it; 0: none */
	unsigned	 requeued;	/* dispatch_requeued() when last seen */
	uint32_t	 last;		/* the state last seen */
	unsigned	 changes, looks;
	int		 b;		/* its large body's buffer, or -1 */
	int		 want_body;	/* its body is read once a worker
					 * asks */
	int		 direct;	/* put as direct: the worker may answer
					 * on the connection itself */
	int		 on_socket;	/* wait on the socket, not the
					 * mailbox */
	int		 timed_out;	/* past --timeout, the worker killed */
};

/* Where a request's params, and then its body, start in its mailbox. */
static size_t
params_offset(const struct conn *c)
{
	return sizeof(struct msg_hdr) + sizeof(struct msg_request) +
	    c->ri.method_len + c->ri.path_len + c->ri.query_len;
}

static size_t
body_offset(const struct conn *c)
{
	return params_offset(c) + c->ri.params_len;
}

/*
 * Frame c's request, whose body is already in place, in mailbox d: its
 * params are copied from libfcgi's envp straight to their place (the
 * second pass over envp; relay_begin's sum was the first), the rest is
 * moved by msg_frame.
 */
static void
frame_request(struct conn *c, unsigned char *d, uint64_t id, size_t blen)
{
	struct msg_request	mr;
	struct iovec		iov[6];

	msg_request_pack(&mr, c->ri.method, c->ri.method_len, c->ri.path,
	    c->ri.path_len, c->ri.query, c->ri.query_len, blen, iov);
	msg_params_put(&mr, c->req.envp, c->ri.params_len,
	    d + params_offset(c), &iov[4]);
	iov[5].iov_base = d + body_offset(c);
	iov[5].iov_len = blen;
	(void)msg_frame(d, dispatch_capacity(), MSG_REQUEST, id, iov, 6);
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
	left = deadline - proc_now_ms();
	if (left < 0)
		left = 0;
	ts.tv_sec = left / 1000;
	ts.tv_nsec = left % 1000 * 1000000;
	r = ppoll(&pfd, 1, deadline == INT64_MAX ? NULL : &ts,
	    &front_wake_mask);
	atomic_store(&c->waiting, 0);
	if (r == -1 && errno != EINTR)
		log_warn("ppoll");
	c->input = r == 1;	/* serve_conn need not poll again */
	if (dispatch_state(c->idx) != seen || r == -1)
		return 0;
	if (r == 1)
		return 1;
	return proc_now_ms() >= deadline ? -1 : 0;
}

/*
 * Set while c's request is with a worker (direct: it may have the
 * connection; -1 when the request is over), for the control thread's
 * check of a worker that asks for the connection (workers.c).
 */
static void
relaying(struct conn *c, int direct)
{
	pthread_mutex_lock(&c->lk);
	c->relaying = direct;
	c->fd_given = 0;
	pthread_mutex_unlock(&c->lk);
}

/* The request is over: give back its mailbox and its large buffer. */
static void
release(struct relay *r, size_t used)
{
	if (r->b >= 0) {
		dispatch_buf_put((unsigned)r->b, used, proc_now_ms());
		r->b = -1;
		used = 0;
	}
	dispatch_free(r->c->idx, used);
}

/* No worker took the request: give its mailbox back and answer alone. */
static unsigned
no_worker(struct relay *r, unsigned status, const char *why)
{
	if (r->want_body && r->b == -1)
		stream_skip_body(r->c);	/* not read yet */
	release(r, r->used);
	return stream_reply(r->c, status, status == 503 ? "Retry-After: 1\r\n" :
	    NULL, why);
}

/* Part of an answer may be on c's connection already, written by a
 * worker: libfcgi must write nothing more for this request. */
static void
no_more_output(struct conn *c)
{
	c->req.out->wasFCloseCalled = 1;
	c->req.err->wasFCloseCalled = 1;
}

/* ...and so the connection ends with it, answered with status. */
static unsigned
cut_short(struct conn *c, unsigned status)
{
	c->req.keepConnection = 0;
	no_more_output(c);
	return status;
}

/* A fault's answer (status, why), or, once part of an answer went out
 * (sent: a direct worker may have written), the connection closed. */
static unsigned
fault(struct relay *r, int sent, unsigned status, const char *why)
{
	if (sent || r->streamed)
		return cut_short(r->c, status);
	return stream_reply(r->c, status, NULL, why);
}

/* The worker r->owner (or, if none yet, the one state s names). */
static struct fworker
relay_worker(const struct relay *r, uint32_t s)
{
	return workers_at(r->owner != 0 ? r->owner : MB_WORKER(s));
}

/*
 * The worker broke the rules of the area (why): kill it and fail only this
 * request.  A direct request's connection may hold part of an answer
 * already: it is closed instead of answered.
 */
static unsigned
relay_broken(struct relay *r, uint32_t s, const char *why)
{
	struct conn	*c = r->c;
	struct fworker	 wk = relay_worker(r, s);

	workers_kill(r->owner != 0 ? r->owner : MB_WORKER(s));
	if (wk.used)
		log_warnx("worker %u (pid %ld) broke the dispatch area's rules "
		    "on %s %s (%s); killing it", wk.number, (long)wk.pid,
		    c->ri.method, c->ri.path, why);
	else
		log_warnx("a worker broke the dispatch area's rules on %s %s "
		    "(%s, naming no worker we know: tag %#x); failing the "
		    "request", c->ri.method, c->ri.path, why, MB_WORKER(s));
	release(r, r->bmax);
	front_incident(INC_MALFORMED, wk.used ? wk.pid : 0, 502, &c->ri);
	return fault(r, r->direct, 502, "the worker broke the rules of the "
	    "dispatch area");
}

/*
 * The front put the request back in line itself (dispatch_gone): its
 * worker died before its application began on it.  It is no one's
 * again.  NULL: that keeps the rules.
 */
static const char *
back_in_line(struct relay *r)
{
	r->requeued = dispatch_requeued(r->c->idx);
	r->owner = 0;
	return NULL;
}

/* Does state s keep the rules for this request?  NULL, or what it broke. */
static const char *
relay_check(struct relay *r, uint32_t s)
{
	uint32_t	k = MB_KIND(s), w = MB_WORKER(s);

	if (k == MB_QUEUED && w == 0 && r->owner != 0 &&
	    dispatch_requeued(r->c->idx) != r->requeued)
		return back_in_line(r);
	if (k == MB_QUEUED)
		return r->owner == 0 && w == 0 ? NULL : "a state it cannot "
		    "return to";
	if (k > MB_KIND_MAX || k == MB_FREE)
		return "a state no worker may set";
	if (r->owner == 0)
		r->owner = w;
	else if (w != r->owner)
		return "another worker's name in a request it held";
	if (!r->direct && (k == MB_SENDING || k == MB_SENT || k == MB_CUT))
		return "a direct answer to a request that was not direct";
	return NULL;
}

/*
 * Begin: the request into the mailbox (a small body, or one of unknown
 * length, with it; a large declared one waits for a worker) and into the
 * line.  0, or the answer given instead.
 */
static unsigned
relay_begin(struct relay *r, struct conn *c, int64_t start)
{
	struct mb_conn	mc;
	size_t		blen = 0, limit;
	unsigned	status;

	memset(r, 0, sizeof(*r));
	r->c = c;
	r->b = -1;
	/* Never too long: conn.c refused params past REQ_PARAMS_MAX bytes
	 * of records, and a pair's '=' and NUL take its 2 length bytes. */
	if ((c->ri.params_len = msg_params_size(c->req.envp)) >
	    MSG_PARAMS_MAX) {
		c->ri.params_len = 0;
		return stream_reply(c, 400, NULL, "the params are too long");
	}
	r->start = start;
	r->deadline = start + atomic_load(&front_live.timeout_ms);
	r->id = atomic_fetch_add(&seq, 1);
	r->requeued = dispatch_requeued(c->idx);
	r->d = dispatch_data(c->idx);
	r->bmax = body_offset(c) + atomic_load(&front_live.max_body) + 1;
	/* A body of unknown length (nginx sends an empty CONTENT_LENGTH
	 * with every GET; Caddy -1 for a chunked upload) is read with the
	 * request, up to --max-body: almost always there is none, and the
	 * large-body handshake would cost every GET two wake-ups. */
	r->want_body = c->ri.length_known &&
	    c->ri.content_length > MB_BODY_INLINE;
	/* Direct from a kept connection's second request on: nginx closes
	 * connections past its keepalive pool after one request, and such
	 * a connection is not worth the round trip that gives a worker its
	 * fd (a wake-up of the control thread). */
	r->direct = c->req.keepConnection && ++c->nreq > 1;
	/* A large body's buffer goes back once the worker is done with it:
	 * wait on the mailbox, which the worker's MB_SENT wakes. */
	r->on_socket = r->direct && !r->want_body;
	mc.gen = c->gen;
	mc.fcgi_id = (uint32_t)c->req.requestId;
	mc.start_ms = start;
	mc.put_us = r->put_us = proc_now_us();
	dispatch_conn(c->idx, r->direct ? &mc : NULL);
	relaying(c, r->direct);
	if (!r->want_body) {
		/* At most what it declared: the mailbox's room is for bodies
		 * of any size, but only a large one may hold it in line. */
		limit = c->ri.length_known ? (size_t)c->ri.content_length :
		    atomic_load(&front_live.max_body);
		if ((status = stream_take_body_into(c, r->d + body_offset(c),
		    limit, &blen)) != 0) {
			dispatch_free(c->idx, r->bmax);
			return status;
		}
		frame_request(c, r->d, r->id, blen);
		r->used = r->msg_len = body_offset(c) + blen;
	}
	atomic_store_explicit(&c->queued_us, r->put_us, memory_order_relaxed);
	if (shed_refuse()) {
		STAT_ADD(shed, 1);
		front_incident(INC_OVERLOAD, 0, 503, &c->ri);
		return no_worker(r, 503, SHED_WHY);
	}
	if (dispatch_put(c->idx, atomic_load(&front_live.queue),
	    r->want_body) == -1) {
		STAT_ADD(rejected_overload, 1);
		front_incident(INC_OVERLOAD, 0, 503, &c->ri);
		return no_worker(r, 503, "every worker is busy and the queue "
		    "is full");
	}
	return 0;
}

/* MB_WANT_BODY: a worker has the request; now its body, into a buffer of
 * the pool, where the worker will answer too. */
static unsigned
relay_body(struct relay *r, uint32_t s)
{
	struct conn	*c = r->c;
	size_t		 blen = 0;
	unsigned	 status;

	if ((r->b = dispatch_buf_get()) == -1) {
		(void)dispatch_body(c->idx, r->owner, 0, 0);
		STAT_ADD(rejected_overload, 1);
		return no_worker(r, 503, "no buffer for a large body");
	}
	r->d = dispatch_buf((unsigned)r->b);
	status = stream_take_body_into(c, r->d + body_offset(c),
	    atomic_load(&front_live.max_body), &blen);
	if (status == 0)
		frame_request(c, r->d, r->id, blen);
	/* -1: it died meanwhile, and the mailbox says so. */
	(void)dispatch_body(c->idx, MB_WORKER(s), status == 0, (unsigned)r->b);
	if (status != 0) {
		/* Answered (400, 413); the worker goes back to the line
		 * without touching the buffer. */
		if (status == 400)
			log_warnx("a client left before sending its body (%s "
			    "%s); the worker that waited for it goes back to "
			    "the line", c->ri.method, c->ri.path);
		release(r, r->bmax);
		return status;
	}
	r->used = r->msg_len = body_offset(c) + blen;
	return 0;
}

/*
 * Past --timeout, a worker holding the request (state s): answer now, and
 * leave the mailbox (and its large buffer) to relay_settle, which frees
 * it once the worker is gone.  A worker still laying its answer loses
 * it first (MB_LATE), so that it writes no more on a direct request's
 * connection; one already writing there has the connection shut under
 * it.  0 if the state moved on meanwhile (look again).
 */
static unsigned
answer_late(struct relay *r, uint32_t s)
{
	struct conn	*c = r->c;
	struct fworker	 wk = relay_worker(r, s);
	int		 shut = r->direct && MB_KIND(s) == MB_SENDING;

	if (!shut && !dispatch_late(c->idx, s))
		return 0;
	if (shut)
		(void)shutdown(c->req.ipcFd, SHUT_RDWR);
	c->late.tag = r->owner != 0 ? r->owner : MB_WORKER(s);
	c->late.b = r->b;
	c->late.shut = shut;
	c->late.until = proc_now_ms() + RELAY_GRACE_MS;
	r->b = -1;
	STAT_ADD(timeouts, 1);
	front_incident(INC_TIMEOUT, wk.pid, 504, &c->ri);
	log_warnx("worker %u (pid %ld) took longer than --timeout on %s %s; "
	    "killed it%s", wk.number, (long)wk.pid, c->ri.method, c->ri.path,
	    shut || r->streamed ? " (its answer is cut short)" : "");
	return fault(r, shut, 504, "the worker took longer than --timeout");
}

/* A state in which the worker is done with the request (relay_step
 * takes it from there). */
static int
answered(uint32_t s)
{
	uint32_t	k = MB_KIND(s);

	return k == MB_DONE || k == MB_FAILED || k == MB_SENT || k == MB_CUT;
}

/*
 * answer_late, looking again while the worker moves on under us: a few
 * times at most (an honest one blocks once it lays a piece, and the
 * front does not let it on meanwhile).  A worker that keeps changing its
 * state, or one that asked for its body, gets the old way: word of its
 * death, or the grace.
 */
#define LATE_TRIES	8
static unsigned
late_now(struct relay *r)
{
	uint32_t	s;
	unsigned	i, status;

	for (i = 0; i < LATE_TRIES; i++) {
		s = dispatch_state(r->c->idx);
		if (relay_check(r, s) != NULL || answered(s))
			return 0;
		if ((status = answer_late(r, s)) != 0)
			return status;
	}
	return 0;
}

/* Past --timeout (and then past the grace for word of the kill). */
static unsigned
relay_late(struct relay *r, uint32_t s)
{
	struct conn	*c = r->c;

	if (s == MB_QUEUED && dispatch_cancel(c->idx)) {
		STAT_ADD(timeouts, 1);
		front_incident(INC_TIMEOUT, 0, 504, &c->ri);
		return no_worker(r, 504, "no worker became free within "
		    "--timeout");
	}
	if (!r->timed_out) {
		/* A worker took it meanwhile: which one (the look pins it;
		 * a state that breaks the rules is for relay_step, and so is
		 * an answer that came just now). */
		s = dispatch_state(c->idx);
		if (relay_check(r, s) != NULL || MB_KIND(s) == MB_QUEUED ||
		    answered(s))
			return 0;
		r->timed_out = 1;
		workers_kill(r->owner != 0 ? r->owner : MB_WORKER(s));
		/* In any other state, its word ends the wait. */
		r->deadline = proc_now_ms() + RELAY_GRACE_MS;
		return late_now(r);
	}
	/* No word of its death: the master may be gone.  Never later. */
	STAT_ADD(timeouts, 1);
	front_incident(INC_TIMEOUT, relay_worker(r, s).pid, 504, &c->ri);
	log_warnx("no word that the worker on %s %s died after it was killed "
	    "for --timeout; answering alone", c->ri.method, c->ri.path);
	release(r, r->bmax);
	return fault(r, r->direct && MB_KIND(s) == MB_SENDING, 504,
	    "the worker took longer than --timeout");
}

/*
 * After a request answer_late answered: wait until its worker is gone
 * (MB_FAILED, MB_CUT: the master's word of its death) or done with the
 * mailbox (MB_DONE, MB_SENT), at most RELAY_GRACE_MS from the kill, then
 * free the mailbox and its buffer.  The connection thread calls it before
 * it reads its next request.  -1 if the worker wrote on the connection
 * after it lost the request (it broke the rules): close the connection.
 */
int
relay_settle(struct conn *c)
{
	uint32_t	s, k;
	unsigned	looks = 0;
	int		rc = 0;

	if (c->late.tag == 0)
		return 0;
	for (;;) {
		s = dispatch_state(c->idx);
		k = MB_KIND(s);
		if (MB_WORKER(s) == c->late.tag && (k == MB_FAILED ||
		    k == MB_DONE || k == MB_SENT || k == MB_CUT))
			break;
		if (proc_now_ms() >= c->late.until || ++looks >
		    RELAY_LOOKS_MAX) {
			log_warnx("no word that the worker killed for "
			    "--timeout died; its mailbox is taken back");
			break;
		}
		(void)dispatch_wait(c->idx, s, c->late.until);
	}
	if (!c->late.shut && (k == MB_SENT || k == MB_CUT) &&
	    MB_WORKER(s) == c->late.tag) {
		log_warnx("a worker wrote on a connection after it was answered "
		    "for --timeout; closing it");
		rc = -1;
	}
	if (c->late.b >= 0)
		dispatch_buf_put((unsigned)c->late.b, dispatch_capacity(),
		    proc_now_ms());
	dispatch_free(c->idx, dispatch_capacity());
	c->late.tag = 0;
	return rc;
}

/*
 * Has nginx given up on c's request?  Its connection has ended (EOF, an
 * error), or holds FCGI_ABORT_REQUEST for it.  Never blocks.
 */
static int
nginx_gave_up(struct conn *c)
{
	struct pollfd	pfd = { c->req.ipcFd, POLLIN, 0 };
	FCGI_Header	h;
	ssize_t		n;

	if (poll(&pfd, 1, 0) != 1)
		return 0;
	n = recv(c->req.ipcFd, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		return 1;
	return n == (ssize_t)sizeof(h) && h.type == FCGI_ABORT_REQUEST &&
	    ((unsigned)h.requestIdB1 << 8 | h.requestIdB0) ==
	    (unsigned)c->req.requestId;
}

/* In line, and nginx gave up on it: out of line, answered to nobody
 * (the connection ends), counted.  0 if a worker took it meanwhile. */
static unsigned
relay_abandoned(struct relay *r)
{
	if (!dispatch_cancel(r->c->idx))
		return 0;
	STAT_ADD(abandoned, 1);
	release(r, r->used);	/* a large body is never read: the
				 * connection ends with this request */
	return cut_short(r->c, 499);
}

/* In line too long while the front sheds (shed.c): out of line, 503.  0
 * if a worker took it meanwhile. */
static unsigned
relay_shed(struct relay *r)
{
	if (!dispatch_cancel(r->c->idx))
		return 0;
	STAT_ADD(shed, 1);
	front_incident(INC_OVERLOAD, 0, 503, &r->c->ri);
	return no_worker(r, 503, SHED_WHY);
}

/* The request is in line or with a worker: wait for the next state. */
static unsigned
relay_wait(struct relay *r, uint32_t s)
{
	int64_t	until = r->deadline, look;
	int	rc;

	if (MB_KIND(s) == MB_QUEUED && (!r->on_socket || shed_watching())) {
		if (!r->on_socket && nginx_gave_up(r->c))
			return relay_abandoned(r);
		if (shed_overdue(r->put_us))
			return relay_shed(r);
		if ((look = proc_now_ms() + RELAY_LINE_LOOK_MS) < until)
			until = look;
	}
	if (r->on_socket)
		rc = wait_direct(r->c, s, until);
	else
		rc = dispatch_wait(r->c->idx, s, until);
	if (rc == -1 && until < r->deadline) {
		r->looks--;	/* our own look at the connection */
		return 0;
	}
	if (rc == 1 && MB_KIND(s) == MB_QUEUED && nginx_gave_up(r->c))
		return relay_abandoned(r);
	if (rc == 1) {
		/* The worker is writing its last bytes (nginx may answer
		 * them before it says so), or else nginx hung up or broke
		 * the protocol: this connection ends with this request.
		 * Either way, only the mailbox is left to wait on. */
		if (MB_KIND(s) != MB_SENDING)
			r->c->req.keepConnection = 0;
		r->on_socket = 0;
		return 0;
	}
	if (rc == 0 && proc_now_ms() < r->deadline)
		return 0;
	return relay_late(r, s);
}

/* MB_SENT, MB_CUT: the worker wrote what there is on the connection, and
 * counted the request: libfcgi must write nothing more for it. */
static unsigned
relay_sent(struct relay *r, uint32_t s)
{
	struct conn	*c = r->c;
	struct fworker	 wk = workers_at(r->owner);
	unsigned	 status;
	int64_t		 sent_ms;

	c->counted = 1;
	c->widx_pid = (unsigned)wk.pid;
	no_more_output(c);
	dispatch_sent_info(c->idx, &status, &sent_ms);
	release(r, r->used);
	if (MB_KIND(s) == MB_SENT && status >= 100 && status <= 599 &&
	    !r->streamed)
		return status;
	c->req.keepConnection = 0;
	if (r->streamed) {
		/* Pieces went through us, then records: a worker that
		 * switched ways mid-answer; what nginx got is cut. */
		log_warnx("worker %u (pid %ld) wrote on the connection after "
		    "streaming through the front; closing it", wk.number,
		    (long)wk.pid);
		return 502;
	}
	if (MB_KIND(s) == MB_SENT)
		return 499;	/* nginx went away: nobody to tell */
	if (r->timed_out)
		STAT_ADD(timeouts, 1);
	front_incident(r->timed_out ? INC_TIMEOUT : INC_CRASH, wk.pid, 502,
	    &c->ri);
	log_warnx("worker %u (pid %ld) %s while sending its answer to %s %s; "
	    "closing the connection", wk.number, (long)wk.pid, r->timed_out ?
	    "took longer than --timeout and was killed" : "died",
	    c->ri.method, c->ri.path);
	return 502;
}

/* MB_FAILED: the worker died with it, or was killed past --timeout. */
static unsigned
relay_failed(struct relay *r)
{
	struct conn	*c = r->c;
	struct fworker	 wk = workers_at(r->owner);

	release(r, r->used);
	front_incident(r->timed_out ? INC_TIMEOUT : INC_CRASH, wk.pid,
	    r->timed_out ? 504 : 502, &c->ri);
	if (r->timed_out) {
		STAT_ADD(timeouts, 1);
		log_warnx("worker %u (pid %ld) took longer than --timeout on "
		    "%s %s; killed it%s", wk.number, (long)wk.pid, c->ri.method,
		    c->ri.path, r->streamed ? " (its answer is cut short)" :
		    "");
		return fault(r, 0, 504, "the worker took longer than "
		    "--timeout");
	}
	log_warnx("worker %u (pid %ld) died while handling %s %s%s", wk.number,
	    (long)wk.pid, c->ri.method, c->ri.path, r->streamed ? " (its "
	    "answer is cut short)" : "");
	return fault(r, 0, 502, "the worker died while handling this "
	    "request");
}

/* The worker sent a malformed reply, or piece of one: kill it. */
static unsigned
relay_malformed(struct relay *r)
{
	struct fworker	wk = workers_at(r->owner);

	release(r, dispatch_capacity());
	workers_kill(r->owner);
	front_incident(INC_MALFORMED, wk.pid, 502, &r->c->ri);
	if (wk.pid != 0)
		log_warnx("worker %u (pid %ld) sent a malformed reply; killing "
		    "it", wk.number, (long)wk.pid);
	else
		log_warnx("a worker the front does not know yet (tag %#x) sent "
		    "a malformed reply; killing it once it is known", r->owner);
	/* A direct request's worker may have written on the connection. */
	return fault(r, r->direct, 502, "the worker sent a malformed reply");
}

/*
 * The MSG_REPLY at off in the request's data, read where it lies (each
 * length once, by msg_unframe): its status into *rep and its bytes.
 * NULL if it is malformed.
 */
static const unsigned char *
reply_at(struct relay *r, size_t off, struct msg_reply *rep, size_t *n)
{
	const unsigned char	*p;
	struct msg_hdr		 h;
	size_t			 cap = dispatch_capacity();

	if (off >= cap || (p = msg_unframe(r->d + off, cap - off, MSG_REPLY,
	    &h)) == NULL || h.id != r->id || h.len < sizeof(*rep))
		return NULL;
	memcpy(rep, p, sizeof(*rep));
	if (off + sizeof(h) + h.len > r->used)
		r->used = off + sizeof(h) + h.len;
	*n = h.len - sizeof(*rep);
	return p + sizeof(*rep);
}

/*
 * MB_PART: a piece of a streamed answer, past the request (where we know
 * it ends: dispatch_piece_at); every piece names the first one's status.
 * Written to nginx, all of it (an application streams what it has), and
 * the worker told (nginx gone: it stops).
 */
static unsigned
relay_part(struct relay *r, uint32_t s)
{
	const unsigned char	*p;
	struct msg_reply	 rep;
	size_t			 n;

	if (r->want_body && r->b == -1)
		return relay_broken(r, s, "an answer before its body");
	/* A worker laying pieces without waiting for our word must not keep
	 * us from its deadline. */
	if (proc_now_ms() >= r->deadline)
		return relay_late(r, s);
	if ((p = reply_at(r, dispatch_piece_at(r->msg_len), &rep, &n)) ==
	    NULL || rep.status < 100 || rep.status > 599 || (r->streamed &&
	    rep.status != r->status))
		return relay_malformed(r);
	r->status = rep.status;
	r->streamed = 1;
	r->on_socket = 0;	/* pieces wake us on the mailbox */
	r->changes = r->looks = 0;
	if (!r->stopped && (stream_put(r->c, p, n) == -1 ||
	    stream_flush(r->c) == -1))
		r->stopped = 1;
	(void)dispatch_part_ack(r->c->idx, r->owner, !r->stopped);
	return 0;	/* -1: it died meanwhile; the mailbox says so */
}

/* MB_DONE after pieces: the end, which names their status, or 0: the
 * worker cut it short (its application failed, or nginx had gone). */
static unsigned
relay_end(struct relay *r)
{
	struct conn		*c = r->c;
	struct fworker		 wk = workers_at(r->owner);
	struct msg_reply	 rep;
	size_t			 n;

	if (reply_at(r, dispatch_piece_at(r->msg_len), &rep, &n) == NULL ||
	    n > 0 || (rep.status != 0 && rep.status != r->status))
		return relay_malformed(r);
	if (MB_SLOT(r->owner) < PROC_SLOTS)
		atomic_fetch_add_explicit(&stats->w[MB_SLOT(r->owner)].requests,
		    1, memory_order_relaxed);
	c->widx_pid = (unsigned)wk.pid;
	release(r, r->used);
	if (r->stopped)
		return cut_short(c, 499);	/* nobody to tell */
	if (rep.status == 0) {
		log_warnx("worker %u (pid %ld) cut its answer to %s %s short; "
		    "closing the connection", wk.number, (long)wk.pid,
		    c->ri.method, c->ri.path);
		return cut_short(c, r->status);
	}
	return r->status;
}

/* MB_DONE: the worker is done with the data; check its reply. */
static unsigned
relay_reply(struct relay *r)
{
	struct conn		*c = r->c;
	const unsigned char	*p;
	struct msg_reply	 rep;
	size_t			 n;

	if (r->streamed)
		return relay_end(r);
	if ((p = reply_at(r, 0, &rep, &n)) == NULL || rep.status < 100 ||
	    rep.status > 599)
		return relay_malformed(r);
	if (MB_SLOT(r->owner) < PROC_SLOTS)
		atomic_fetch_add_explicit(&stats->w[MB_SLOT(r->owner)].requests,
		    1, memory_order_relaxed);
	c->widx_pid = (unsigned)workers_at(r->owner).pid;
	(void)stream_put(c, p, n);
	release(r, r->used);
	return rep.status;
}

/*
 * The request is over: if a worker took it (r->owner, pinned by the
 * front's own look), its time in line goes to c->qwait_us (-1: no worker
 * took it), and into the histogram unless the worker answered on the
 * connection and so counted it in its own page (c->counted: the front's
 * thread learns of a direct answer only at the connection's next
 * request, too late for /metrics).  The time of the take is the
 * worker's word, read once and bounded by what the front knows: not
 * before the request went into line, not after now.  So every request a
 * worker took is counted once, whoever lies about when.
 */
static void
queue_time(struct relay *r)
{
	int64_t	now, us;

	r->c->qwait_us = -1;
	if (r->owner == 0)
		return;
	now = proc_now_us();
	us = dispatch_claimed_us(r->c->idx) - r->put_us;
	if (us < 0 || r->put_us > now)
		us = 0;
	else if (us > now - r->put_us)
		us = now - r->put_us;
	if (!r->c->counted)
		stats_queue_wait(us);
	shed_waited(us);
	r->c->qwait_us = us;
}

/* One look at the mailbox: 0 to look again, or the answer's status. */
static unsigned
relay_step(struct relay *r)
{
	uint32_t	 s = dispatch_state(r->c->idx);
	const char	*why;

	if (s != r->last) {
		r->last = s;
		if (++r->changes > RELAY_CHANGES_MAX)
			return relay_broken(r, s, "too many state changes");
	}
	if (++r->looks > RELAY_LOOKS_MAX)
		return relay_broken(r, s, "too many wake-ups");
	if ((why = relay_check(r, s)) != NULL)
		return relay_broken(r, s, why);
	switch (MB_KIND(s)) {
	case MB_DONE:
		return relay_reply(r);
	case MB_PART:
		return relay_part(r, s);
	case MB_FAILED:
		return relay_failed(r);
	case MB_SENT:
	case MB_CUT:
		return relay_sent(r, s);
	case MB_WANT_BODY:
		if (r->b == -1 && r->want_body)
			return relay_body(r, s);
		if (!r->want_body)
			return relay_broken(r, s, "a body it has already");
		return relay_wait(r, s);
	default:	/* MB_QUEUED, MB_CLAIMED, MB_SENDING, and our own
			 * MB_PART_OK and _STOP (the worker has not moved) */
		return relay_wait(r, s);
	}
}

/*
 * Put the request in c's mailbox and see it answered by the worker that
 * takes it: on the connection by the worker itself (direct), or relayed
 * from the mailbox.  A small body, or one of unknown length (almost
 * always none), goes in with the request; a large declared one is read
 * once a worker has the request, into a buffer of the pool, so no large
 * declared body waits in line.  Past --timeout the worker is killed and
 * the master's word of its death ends the wait (504); a death before
 * answering is a 502, and so is an answer that is not a well-formed
 * reply; a death while writing a direct answer closes the connection.
 */
unsigned
relay(struct conn *c, int64_t start)
{
	struct relay	r;
	unsigned	status;

	if ((status = relay_begin(&r, c, start)) == 0)
		while ((status = relay_step(&r)) == 0)
			;
	atomic_store_explicit(&c->queued_us, 0, memory_order_relaxed);
	queue_time(&r);
	relaying(c, -1);
	return status;
}
