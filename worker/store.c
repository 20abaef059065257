/*
 * store.c: the store process ("pipepool: store"): one ordered queue of
 * /kv requests from the front, committed in groups.  What a request
 * means and its SQL are kvdb's (kvdb.h); this file decides which
 * requests share a transaction and when each reply may leave.
 *
 * The front pipelines /kv requests over the request pipe.  The store
 * blocks for one request, then takes every request already waiting (up
 * to BATCH_MAX, or BATCH_BYTES of request and reply bytes) into one
 * transaction, each write applied alone by kvdb so that one failing
 * request fails alone.  Replies to writes, and to reads that came after
 * a write of the same batch, are held and leave only after the commit
 * returned: a write is on disk before its reply leaves.  Reads before the
 * batch's first write see only committed data and are answered at once.
 * If the transaction cannot start or commit (disk full, read-only, I/O
 * error, a lost connection), every write of the batch is answered 503
 * with the reason, reads that may have seen those writes are run again,
 * and the store keeps serving.  A backend that answers writes only at
 * the commit (PostgreSQL's pipeline, kvdb.h) has those replies taken
 * then (kvdb_answer()); one that had to commit them one by one has the
 * held reads run again too.  The database's state goes to the front
 * (MSG_STORE_STATE) when it changes, and is checked every IDLE_MS while
 * no request comes.
 *
 * Replies carry the request's id and may leave in any order.  The store
 * exits when its request pipe reaches EOF (the front is gone) or its
 * lifeline from the master closes.  The front is the more trusted side:
 * a malformed or unknown message from it is a broken invariant, fatalx
 * at once (the batch in progress is neither committed nor answered; the
 * master starts a new store).
 */
#include <sys/prctl.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvdb.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "reply.h"
#include "store.h"
#include "worker.h"

/* Group commit: most requests, and most request plus reply bytes, in one
 * transaction. */
#define BATCH_MAX	KVDB_TXN_MAX
#define BATCH_BYTES	(8u << 20)
#define LOG_EVERY_MS	5000
#define IDLE_MS		1000	/* kvdb_retry() while no request comes */

/* A reply held until the commit (its bytes are in S.out). */
struct pend {
	uint64_t	 id;
	int		 write;
	int		 stored;	/* 0: a read to run again at the end */
	int		 later;		/* a write answered by kvdb_answer() */
	size_t		 seq;		/* ... as the transaction's seq-th */
	struct kvdb_req	 rq;
	struct msg_reply r;
	size_t		 off, head_len, body_len;
};

/* How a reply leaves: now, held if the batch wrote before, held, or
 * known only after the commit (kvdb_answer()). */
enum dmode { D_NOW, D_READ, D_WRITE, D_LATER };

static struct {
	const struct options	*o;
	struct msgbuf		 in;		/* the request pipe */
	int			 life_fd;
	struct pend		*pend;		/* BATCH_MAX entries */
	size_t			 npend;
	char			*out;		/* held replies' bytes */
	size_t			 outlen, outcap;
	int			 in_txn;	/* kvdb_begin() holds */
	int			 begun;		/* kvdb_begin() tried this batch */
	int			 dirty;		/* a write ran in this txn */
	size_t			 nwrites;	/* kvdb_write() calls in it */
	int			 failed;	/* this batch's writes are lost */
	char			 why[256];	/* ... and why, in one line */
	int			 failing;	/* the last write batch failed */
	int64_t			 logged_ms;
	int			 crash;		/* debug: die after the commit */
	int			 noreply;	/* the reply pipe is unusable */
	int			 quit;		/* exit after this batch */
	int			 code;		/* ... with this status */
	struct msg_store_state	 said;		/* the last MSG_STORE_STATE */
} S;

/* --- replies --------------------------------------------------------- */

/* The reply pipe failed: no more writes to it, and the store ends. */
static void
pipe_failed(const char *what)
{
	S.noreply = 1;
	S.quit = 1;
	if (errno == EPIPE) {
		S.code = 0;	/* the front is gone */
	} else {
		log_warn("%s", what);
		S.code = 1;
	}
}

static void
send_reply(uint64_t id, const struct msg_reply *r, const char *head,
    size_t hlen, const char *body, size_t blen)
{
	struct iovec	iov[3];

	if (S.noreply)
		return;
	iov[0].iov_base = (void *)(uintptr_t)r;
	iov[0].iov_len = sizeof(*r);
	iov[1].iov_base = (void *)(uintptr_t)head;
	iov[1].iov_len = hlen;
	iov[2].iov_base = (void *)(uintptr_t)body;
	iov[2].iov_len = blen;
	if (msg_write(STORE_REP_FD, MSG_REPLY, id, iov, 3) == -1)
		pipe_failed("writing a reply");
}

/* The database's state to the front (for /status), if it changed. */
static void
say_state(int always)
{
	struct msg_store_state	ms;
	struct kvdb_state	ks;
	struct iovec		iov;

	kvdb_state(&ks);
	memset(&ms, 0, sizeof(ms));
	ms.backend = (uint32_t)ks.pg;
	ms.conn = (uint32_t)ks.conn;
	ms.reconnects = ks.reconnects;
	if (S.noreply || (!always && memcmp(&ms, &S.said, sizeof(ms)) == 0))
		return;
	S.said = ms;
	iov.iov_base = &ms;
	iov.iov_len = sizeof(ms);
	if (msg_write(STORE_REP_FD, MSG_STORE_STATE, 0, &iov, 1) == -1)
		pipe_failed("writing the store's state");
}

static void
answer(uint64_t id, const struct reply *rp)
{
	send_reply(id, &rp->r, rp->head, rp->head_len, rp->body,
	    rp->body_len);
}

/* Room for n more bytes in S.out. */
static int
out_reserve(size_t n)
{
	char	*nb;
	size_t	 cap;

	if (S.outcap - S.outlen >= n)
		return 0;
	cap = S.outcap ? S.outcap : 65536;
	while (cap - S.outlen < n)
		cap *= 2;
	if ((nb = realloc(S.out, cap)) == NULL)
		return -1;
	S.out = nb;
	S.outcap = cap;
	return 0;
}

/*
 * Answer now, or hold the reply until the commit: replies to writes, and
 * to reads that may have seen this transaction's writes.
 */
static void
deliver(uint64_t id, enum dmode mode, const struct kvdb_req *rq,
    const struct reply *rp)
{
	struct pend	*p;

	if (mode == D_NOW || (mode == D_READ && !S.dirty)) {
		answer(id, rp);
		return;
	}
	p = &S.pend[S.npend++];		/* the batch bound keeps it in */
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->write = mode == D_WRITE || mode == D_LATER;
	p->rq = *rq;
	p->rq.body = NULL;
	p->rq.body_len = 0;
	p->rq.ikey = NULL;	/* the pipe's buffer moves on */
	p->rq.iklen = 0;
	p->r = rp->r;
	if (mode == D_LATER) {
		p->later = 1;
		p->seq = S.nwrites - 1;
		return;
	}
	if (out_reserve(rp->head_len + rp->body_len) == -1) {
		log_warn("holding a reply of %zu bytes", rp->head_len +
		    rp->body_len);
		if (p->write) {	/* its reply is gone: the write must go too */
			if (S.in_txn)
				kvdb_rollback();
			snprintf(S.why, sizeof(S.why), "store: out of memory: "
			    "out of memory");
			S.in_txn = 0;
			S.failed = 1;
		}
		return;		/* a read is run again at the end */
	}
	p->stored = 1;
	p->off = S.outlen;
	p->head_len = rp->head_len;
	p->body_len = rp->body_len;
	memcpy(S.out + S.outlen, rp->head, rp->head_len);
	if (rp->body_len > 0)
		memcpy(S.out + S.outlen + rp->head_len, rp->body,
		    rp->body_len);
	S.outlen += rp->head_len + rp->body_len;
}

/* nwrites were answered 503: say so, at most every LOG_EVERY_MS. */
static void
note_failure(size_t nwrites)
{
	int64_t	now = proc_now_ms();

	if (nwrites == 0)
		return;
	if (!S.failing || now - S.logged_ms >= LOG_EVERY_MS) {
		log_warnx("%zu write%s answered 503: %s", nwrites,
		    nwrites == 1 ? "" : "s", S.why);
		S.logged_ms = now;
	}
	S.failing = 1;
}

static void
note_success(void)
{
	if (S.failing)
		log_info("writes commit again");
	S.failing = 0;
}

/* --- requests -------------------------------------------------------- */

/* A read: GET, HEAD or the listing. */
static void
run_read(uint64_t id, const struct kvdb_req *rq, enum dmode mode)
{
	struct reply	rp;

	kvdb_read(rq, &rp);
	deliver(id, mode, rq, &rp);
	kvdb_read_done();
}

/* A write: PUT, DELETE or incr, in the batch's transaction. */
static void
run_write(uint64_t id, const struct kvdb_req *rq)
{
	struct reply	rp;
	int		r;

	if (!S.begun && !S.failed) {
		S.begun = 1;
		S.nwrites = 0;
		S.in_txn = kvdb_begin(S.why, sizeof(S.why)) == 0;
	}
	if (!S.in_txn) {
		/* No transaction: nothing of this write can happen. */
		reply_text(&rp, 503, KVDB_RETRY_AFTER, "%s", S.why[0] ?
		    S.why : "store: cannot write");
		note_failure(1);
		answer(id, &rp);
		return;
	}
	S.dirty = 1;
	S.nwrites++;
	if ((r = kvdb_write(rq, &rp, S.why, sizeof(S.why))) == -1) {
		S.in_txn = 0;
		S.failed = 1;
	}
	deliver(id, r == 1 ? D_LATER : D_WRITE, rq, &rp);
}

static void	cleanup(void);

/*
 * The front broke the protocol: a broken invariant (store.h), fatalx.
 * What the store holds is freed first, so that a leak checker on the
 * unit tests sees real leaks only; the batch in progress goes with the
 * database connection, neither committed nor answered.
 */
static void __attribute__((noreturn, format(printf, 1, 2)))
bad_msg(const char *fmt, ...)
{
	char	line[256];
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cleanup();
	fatalx("%s from the front", line);
}

/* The key that leads the body (store.h, STORE_F_KEY).  -1 if bad. */
static int
take_key(struct msg_request_view *v, struct kvdb_req *rq)
{
	size_t	n = v->flags & STORE_F_KEYLEN;

	rq->ikey = NULL;
	rq->iklen = 0;
	if (!(v->flags & STORE_F_KEY))
		return 0;
	if (n == 0 || n > STORE_IDEM_KEY_MAX || n > v->body_len)
		return -1;
	rq->ikey = v->body;
	rq->iklen = n;
	v->body += n;
	v->body_len -= n;
	return 0;
}

/* The store's own debug route: 1 if v is it (answered, or the end). */
static int
debug_route(uint64_t id, const struct msg_request_view *v)
{
	struct reply	rp;

	if (!msg_view_path_is(v, "/debug/store-crash"))
		return 0;
	if (S.o->debug_routes) {
		log_warnx("aborting on /debug/store-crash");
		abort();
	}
	reply_text(&rp, 404, NULL, "not found (debug routes are off)");
	answer(id, &rp);
	return 1;
}

/* One message from the front. */
static void
handle_msg(const struct msg_hdr *h, const unsigned char *p)
{
	struct msg_request_view	v;
	struct kvdb_req		rq;
	struct reply		rp;

	if (h->type != MSG_REQUEST || msg_request_parse(p, h->len, &v) == -1)
		bad_msg("bad %s message (len %u)", msg_typename(h->type),
		    h->len);
	if (take_key(&v, &rq) == -1)
		bad_msg("bad idempotency key (flags %#x, body %zu)", v.flags,
		    v.body_len);
	if (debug_route(h->id, &v))
		return;
	if (!kvdb_route(&v, &rq, &rp) || kvdb_refuse(&rq, &rp)) {
		answer(h->id, &rp);
		return;
	}
	if (!kvdb_is_write(&rq)) {
		run_read(h->id, &rq, D_READ);
		return;
	}
	S.crash |= (v.flags & STORE_F_CRASH) && S.o->debug_routes;
	run_write(h->id, &rq);
}

/* --- batches --------------------------------------------------------- */

/* Send every reply held for the batch: as they are if ok (the reads
 * run again if reread), else the writes' 503 and the reads run again.
 * Returns the count of writes. */
static size_t
send_held(int ok, int reread)
{
	struct reply	 rp;
	struct pend	*p;
	size_t		 i, nwrites = 0;

	for (i = 0; i < S.npend; i++) {
		p = &S.pend[i];
		nwrites += p->write;
		if (ok && p->later) {
			kvdb_answer(p->seq, &rp);
			answer(p->id, &rp);
		} else if (ok && p->stored && (p->write || !reread)) {
			send_reply(p->id, &p->r, S.out + p->off, p->head_len,
			    S.out + p->off + p->head_len, p->body_len);
		} else if (p->write) {
			reply_text(&rp, 503, KVDB_RETRY_AFTER, "%s", S.why);
			answer(p->id, &rp);
		} else
			run_read(p->id, &p->rq, D_NOW);
	}
	return nwrites;
}

/* Commit the batch, then send every reply held for it. */
static void
finish_batch(void)
{
	size_t	nwrites;
	int	committed = 0, c;

	if (S.in_txn) {
		if ((c = kvdb_commit(S.why, sizeof(S.why))) >= 0)
			committed = 1 + c;
		else
			S.failed = 1;
		S.in_txn = 0;
	}
	if (committed && S.crash) {
		log_warnx("dying between COMMIT and the replies, as asked "
		    "(--debug-routes)");
		abort();
	}
	S.crash = 0;
	S.dirty = 0;	/* reads run again below see committed data only */
	nwrites = send_held(!S.failed, committed == 2);
	if (S.failed)
		note_failure(nwrites);
	else if (nwrites > 0)
		note_success();
	say_state(0);
	S.npend = 0;
	S.outlen = 0;
	S.begun = 0;
	S.failed = 0;
	S.why[0] = '\0';
	if (S.outcap > 4 * BATCH_BYTES) {	/* a huge batch: give back */
		free(S.out);
		S.out = NULL;
		S.outcap = 0;
	}
}

/*
 * Take the next whole request.  block: wait for it; else only what is
 * buffered or readable now.  Returns 1 with a message, 0 if none is
 * ready, -1 when the store should stop (S.quit and S.code set).
 */
static int
take(struct msg_hdr *h, const unsigned char **p, int block)
{
	struct pollfd	pfd[2];
	ssize_t		n;
	int		r;

	for (;;) {
		if ((r = msg_next(&S.in, h, p)) == 1)
			return 1;
		if (r == -1 && errno == EPROTO)
			bad_msg("bad %s message (len %u)",
			    msg_typename(h->type), h->len);
		if (r == -1) {		/* no memory to buffer it */
			log_warn("reading a request from the front");
			S.code = 1;
			goto stop;
		}
		pfd[0].fd = STORE_REQ_FD;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = S.life_fd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		r = poll(pfd, S.life_fd >= 0 ? 2 : 1, block ? IDLE_MS : 0);
		if (r == 0 && block) {
			/* Idle: a lost database connection is noticed and
			 * made again now, not with the next request. */
			kvdb_retry();
			say_state(0);
			continue;
		}
		if (r == -1) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			S.code = 1;
			goto stop;
		}
		if (S.life_fd >= 0 && pfd[1].revents) {
			S.code = 0;	/* the master is gone */
			goto stop;
		}
		if (pfd[0].revents == 0) {
			if (block)
				continue;
			return 0;
		}
		if ((n = msg_fill(STORE_REQ_FD, &S.in)) == 0) {
			S.code = 0;	/* the front closed our pipe */
			goto stop;
		}
		if (n == -1) {
			log_warn("reading the request pipe");
			S.code = 1;
			goto stop;
		}
	}
stop:
	S.quit = 1;
	return -1;
}

/* One batch: h and what else is waiting, up to max requests. */
static void
run_batch(struct msg_hdr *h, const unsigned char *p, size_t max)
{
	size_t	n = 0, bytes = 0;

	kvdb_retry();
	for (;;) {
		handle_msg(h, p);
		n++;
		bytes += h->len;
		if (S.failed || S.quit || n >= max ||
		    bytes + S.outlen >= BATCH_BYTES)
			break;
		if (take(h, &p, 0) != 1)
			break;
	}
	finish_batch();
}

/* --- start and end --------------------------------------------------- */

int
store_check_db(const char *path, char *err, size_t errlen)
{
	return kvdb_check(path, err, errlen);
}

static void
start(const struct options *o, int life_fd)
{
	memset(&S, 0, sizeof(S));
	S.o = o;
	S.life_fd = life_fd;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		log_warn("prctl PR_SET_NO_NEW_PRIVS");
	if (msgbuf_init(&S.in, 65536, o->max_body + MSG_PATH_MAX +
	    MSG_QUERY_MAX + MSG_METHOD_MAX + sizeof(struct msg_request)) == -1)
		fatal("msgbuf_init");
	if ((S.pend = calloc(BATCH_MAX, sizeof(*S.pend))) == NULL)
		fatal("calloc");
	kvdb_open(o);
	say_state(1);
}

static void
cleanup(void)
{
	kvdb_close();
	msgbuf_free(&S.in);
	free(S.pend);
	free(S.out);
	S.pend = NULL;
	S.out = NULL;
}

void
store_main(const struct options *o, int life_fd)
{
	struct msg_hdr		 h;
	const unsigned char	*p;

	log_setrole("store");
	proc_title("pipepool: store");
	reply_init();
	start(o, life_fd);
	if (kvdb_is_pg(o->db))	/* o->db may hold a password */
		log_info("serving a PostgreSQL database%s", o->batch ? "" :
		    " (one transaction per request)");
	else
		log_info("serving %s (synchronous=%s%s)", o->db,
		    o->sync_full ? "FULL" : "NORMAL", o->batch ? "" :
		    ", one transaction per request");
	while (!S.quit && take(&h, &p, 1) == 1)
		run_batch(&h, p, o->batch ? BATCH_MAX : 1);
	cleanup();
	exit(S.code);
}
