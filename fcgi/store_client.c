/*
 * store_client.c: the front's side of the store (worker/store.c).  The
 * store is one process; /kv requests are pipelined to it over its request
 * pipe, and one reader thread per store incarnation takes every reply and
 * hands it to the waiting request by id.  store_client_request() is the
 * one call a connection thread makes (conn.c's serve_request).
 *
 * Two locks, and neither is ever held where the other side could stop us
 * for good:
 *  - store.lk guards the current incarnation, the pending list and the
 *    incarnations' reference counts; it is held for list work and the
 *    copy of a reply, never across a system call that may block.  The
 *    reply path needs only this one, so replies always flow.
 *  - store.wlk makes writers of the request pipe take turns (a request is
 *    one message, written whole).  The pipe is non-blocking and each
 *    writer polls it until its request's deadline; a writer that waits
 *    for its turn waits until the same deadline (pthread_mutex_clocklock).
 * A request cut short by its deadline leaves the pipe mid-message: that
 * incarnation takes no more requests and is killed (the master starts a
 * new one), since the store can only be stuck by then.  So every /kv
 * request is answered, or 504, by its deadline.
 *
 * The rule for store -> front is the one for a worker (workers.c): the
 * store is a child behind the front, so a reply that is malformed (a bad
 * frame, another type, a status outside 100-599) is its fault.  The
 * front has the master kill that incarnation (inst_kill) and fails the
 * requests it held, and only those (502, inst_gone); the others wait for
 * the next incarnation within their deadline.  A well-formed reply whose
 * request is gone (timed out) is dropped.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "front_int.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "stats.h"
#include "store.h"

#define IDEM_PARAM	"HTTP_IDEMPOTENCY_KEY"
#define DEBUG_PARAM	"HTTP_X_PIPEPOOL_DEBUG_STORE"
#define SEND_AGAIN	1	/* not an HTTP status */
#define RECONNECTS_STEP_MAX 1000 /* a store's reconnects in one message */

struct store_inst {
	int		 req_fd;	/* non-blocking */
	int		 rep_fd;
	uint64_t	 id;
	uint32_t	 mslot;
	pid_t		 pid;
	unsigned	 gen;
	unsigned	 refs;		/* the reader + writers (store.lk) */
	int		 broken;	/* a request was cut short (store.lk) */
	uint64_t	 reconnects;	/* its last MSG_STORE_STATE's (reader) */
};

static struct {
	pthread_mutex_t		 lk;		/* see the top of this file */
	pthread_mutex_t		 wlk;
	pthread_cond_t		 up;		/* a store came up */
	struct store_inst	*cur;		/* NULL while there is none */
	struct conn		*pending;	/* waiting for replies */
	unsigned		 npending;
	unsigned		 gen;
	uint64_t		 seq;		/* request ids */
} store = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0 };

/* store_client_request() waits on store.up until a CLOCK_MONOTONIC
 * deadline, like every other waiter. */
void
store_client_init(void)
{
	pthread_condattr_t	ca;

	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&store.up, &ca) != 0)
		fatalx("pthread_cond_init");
	pthread_condattr_destroy(&ca);
}

static struct timespec
ms_to_ts(int64_t ms)
{
	struct timespec	ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	return ts;
}

/* Have the master kill incarnation si (the master owns its pid). */
static void
inst_kill(const struct store_inst *si)
{
	workers_ask_kill(si->id, si->mslot, si->pid, 0, ROLE_STORE);
}

/* Under store.lk: drop a reference; the last one closes and frees. */
static void
inst_unref(struct store_inst *si)
{
	if (--si->refs > 0)
		return;
	close(si->req_fd);
	close(si->rep_fd);
	free(si);
}

/* Under store.lk: c no longer waits for a reply. */
static void
pending_unlink(struct conn *c)
{
	struct conn	**pp;

	for (pp = &store.pending; *pp != NULL; pp = &(*pp)->snext)
		if (*pp == c) {
			*pp = c->snext;
			store.npending--;
			return;
		}
}

/* Under store.lk: a waiting request gets its answer (or a failure). */
static void
deliver(struct conn *c, unsigned status, const unsigned char *p, size_t len)
{
	if (len > c->sreply_cap) {
		unsigned char *nb = realloc(c->sreply, len);

		if (nb == NULL) {
			status = 0;
			len = 0;
		} else {
			c->sreply = nb;
			c->sreply_cap = len;
		}
	}
	if (len)
		memcpy(c->sreply, p, len);
	c->sreply_len = len;
	c->sstatus = status;
	pending_unlink(c);
	atomic_store_explicit(&c->sdone, 1, memory_order_release);
	futex_wake(&c->sdone, 1, 0);
}

/* Under store.lk: every request sent to si fails with it. */
static void
inst_gone(struct store_inst *si)
{
	struct conn	*c, *next;

	if (store.cur == si)
		store.cur = NULL;
	for (c = store.pending; c != NULL; c = next) {
		next = c->snext;
		if (c->sgen == si->gen)
			deliver(c, 0, NULL, 0);
	}
}

/*
 * The store's database changed state (MSG_STORE_STATE): into the shared
 * counters for /status.  -1 if malformed (a value out of range).  The
 * store is untrusted: its reconnects count from its last message's,
 * at most RECONNECTS_STEP_MAX at a time (it says its state on each
 * change, and a connection takes a round trip at least), and one going
 * back counts from 0, as a new incarnation's would.
 */
static int
take_state(struct store_inst *si, const unsigned char *p)
{
	struct msg_store_state	ms;
	uint64_t		d;

	memcpy(&ms, p, sizeof(ms));
	if (ms.backend > 1 || ms.conn > 2)
		return -1;
	d = ms.reconnects >= si->reconnects ? ms.reconnects -
	    si->reconnects : ms.reconnects;
	atomic_store(&stats->store_backend, ms.backend);
	atomic_store(&stats->store_db, ms.conn);
	STAT_ADD(store_reconnects, d < RECONNECTS_STEP_MAX ? d :
	    RECONNECTS_STEP_MAX);
	si->reconnects = ms.reconnects;
	return 0;
}

/* One per store incarnation: read replies until the store is gone. */
static void *
reader(void *arg)
{
	struct store_inst	*si = arg;
	struct msgbuf		 in;
	struct msg_hdr		 h;
	struct msg_reply	 rep;
	const unsigned char	*p;
	struct conn		*c;
	int			 r, bad = 0;

	if (msgbuf_init(&in, 65536, MSG_REPLY_HEAD_MAX +
	    sizeof(struct msg_reply) + PP_BODY_MAX) == -1)
		fatal("msgbuf_init");
	for (;;) {
		r = msg_read(si->rep_fd, &in, &h, &p, -1);
		if (r == 1 && h.type == MSG_STORE_STATE) {
			if ((bad = take_state(si, p) == -1))
				break;
			continue;
		}
		if (r != 1 || h.type != MSG_REPLY) {
			bad = r != 0;
			break;
		}
		memcpy(&rep, p, sizeof(rep));
		if (rep.status < 100 || rep.status > 599) {
			bad = 1;
			break;
		}
		pthread_mutex_lock(&store.lk);
		for (c = store.pending; c != NULL; c = c->snext)
			if (c->sid == h.id && c->sgen == si->gen)
				break;
		if (c != NULL)
			deliver(c, rep.status, p + sizeof(rep),
			    h.len - sizeof(rep));
		pthread_mutex_unlock(&store.lk);
	}
	if (bad) {
		log_warnx("the store (pid %ld) sent a malformed reply; killing "
		    "it", (long)si->pid);
		inst_kill(si);
	} else
		log_warnx("the store (pid %ld) is gone", (long)si->pid);
	pthread_mutex_lock(&store.lk);
	/* No store: nothing up; unless a newer one already said so. */
	if (store.cur == NULL || store.cur == si)
		atomic_store(&stats->store_db, 0);
	si->broken = 1;
	inst_gone(si);
	inst_unref(si);
	pthread_mutex_unlock(&store.lk);
	msgbuf_free(&in);
	return NULL;
}

/* The master started a store: fds are its request pipe's write end and
 * its reply pipe's read end, both ours from now on. */
void
store_client_up(const struct msg_hdr *h, const struct msg_worker *mw,
    int *fds)
{
	struct store_inst	*si;

	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1) {
		log_warn("fcntl O_NONBLOCK on the store's request pipe");
		goto fail;
	}
	if ((si = calloc(1, sizeof(*si))) == NULL) {
		log_warn("calloc");
		goto fail;
	}
	si->req_fd = fds[0];
	si->rep_fd = fds[1];
	si->id = h->id;
	si->mslot = mw->slot;
	si->pid = mw->pid;
	si->refs = 1;		/* the reader's */
	pthread_mutex_lock(&store.lk);
	si->gen = ++store.gen;
	if (front_start_thread(NULL, reader, si) == -1) {
		pthread_mutex_unlock(&store.lk);
		log_warn("pthread_create");
		free(si);
		goto fail;
	}
	store.cur = si;
	pthread_cond_broadcast(&store.up);
	pthread_mutex_unlock(&store.lk);
	atomic_store(&stats->w[mw->slot].state, WS_IDLE);
	return;
fail:
	close(fds[0]);
	close(fds[1]);
}

/*
 * Write all of iov to the non-blocking fd by deadline_ms.  0; -1 with
 * errno (ETIMEDOUT at the deadline); *sent says how much went out.
 */
static int
write_by(int fd, struct iovec *iov, int n, int64_t deadline_ms, size_t *sent)
{
	struct pollfd	pfd;
	ssize_t		w;
	int64_t		left;

	*sent = 0;
	while (n > 0) {
		if (iov->iov_len == 0) {
			iov++;
			n--;
			continue;
		}
		if ((w = writev(fd, iov, n)) >= 0) {
			*sent += (size_t)w;
			for (; n > 0 && (size_t)w >= iov->iov_len; iov++, n--)
				w -= (ssize_t)iov->iov_len;
			if (n > 0) {
				iov->iov_base = (char *)iov->iov_base + w;
				iov->iov_len -= (size_t)w;
			}
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		if ((left = deadline_ms - proc_now_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) == -1 &&
		    errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * The client's Idempotency-Key, checked: NULL with *key set (or NULL
 * when there is none), else why it is refused (400).
 */
static const char *
idem_key(struct conn *c, const char **key, size_t *len)
{
	const char	*k = FCGX_GetParam(IDEM_PARAM, c->req.envp);
	size_t		 i, n;

	*key = NULL;
	*len = 0;
	if (k == NULL)
		return NULL;
	n = strnlen(k, STORE_IDEM_KEY_MAX + 1);
	if (n == 0 || n > STORE_IDEM_KEY_MAX)
		return "Idempotency-Key must be 1 to " STORE_IDEM_KEY_STR
		    " bytes";
	for (i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return "Idempotency-Key must be printable ASCII "
			    "without spaces";
	*key = k;
	*len = n;
	return NULL;
}

/*
 * Put c on the pending list of the current store, waiting for one up to
 * the deadline.  Returns that incarnation with a reference held, or NULL
 * with the answer already given in *status.
 */
static struct store_inst *
enlist(struct conn *c, int64_t deadline, unsigned queue_cap,
    unsigned *status)
{
	struct timespec		 ts = ms_to_ts(deadline);
	struct store_inst	*si;

	pthread_mutex_lock(&store.lk);
	while (store.cur == NULL || store.cur->broken) {
		if (pthread_cond_timedwait(&store.up, &store.lk, &ts) ==
		    ETIMEDOUT && (store.cur == NULL || store.cur->broken)) {
			pthread_mutex_unlock(&store.lk);
			STAT_ADD(timeouts, 1);
			*status = stream_reply(c, 504, NULL, "the store did "
			    "not come back within --timeout");
			return NULL;
		}
	}
	if (store.npending > queue_cap) {
		pthread_mutex_unlock(&store.lk);
		STAT_ADD(rejected_overload, 1);
		*status = stream_reply(c, 503, "Retry-After: 1\r\n", "the "
		    "store's queue is full");
		return NULL;
	}
	si = store.cur;
	si->refs++;
	c->sid = ++store.seq;
	atomic_store_explicit(&c->sdone, 0, memory_order_relaxed);
	c->sgen = si->gen;
	c->snext = store.pending;
	store.pending = c;
	store.npending++;
	pthread_mutex_unlock(&store.lk);
	return si;
}

/*
 * Write c's request (iov[0] its header) to si, taking turns on
 * store.wlk, by the deadline.  0; SEND_AGAIN if si can take no more
 * requests and this one is unsent (c is off the pending list); else the
 * status of the answer given.
 */
static unsigned
send_request(struct conn *c, struct store_inst *si, struct iovec *iov,
    int n, int64_t deadline)
{
	struct timespec	ts = ms_to_ts(deadline);
	size_t		sent = 0;
	int		r, broken;

	if ((errno = pthread_mutex_clocklock(&store.wlk, CLOCK_MONOTONIC,
	    &ts)) != 0) {
		r = -1;		/* ETIMEDOUT: nothing went out */
		goto fail;
	}
	pthread_mutex_lock(&store.lk);
	broken = si->broken;
	pthread_mutex_unlock(&store.lk);
	if (broken) {
		/* Its last writer was cut short or it died, and nothing of
		 * ours went out: the next incarnation may have it. */
		pthread_mutex_unlock(&store.wlk);
		pthread_mutex_lock(&store.lk);
		pending_unlink(c);
		pthread_mutex_unlock(&store.lk);
		return SEND_AGAIN;
	}
	r = write_by(si->req_fd, iov, n, deadline, &sent);
	if (r == -1 && sent > 0) {
		/* Cut short mid-message: nothing more may follow it. */
		pthread_mutex_lock(&store.lk);
		si->broken = 1;
		pthread_mutex_unlock(&store.lk);
	}
	pthread_mutex_unlock(&store.wlk);
	if (r == 0)
		return 0;
fail:
	pthread_mutex_lock(&store.lk);
	pending_unlink(c);
	pthread_mutex_unlock(&store.lk);
	if (errno == ETIMEDOUT) {
		STAT_ADD(timeouts, 1);
		if (sent > 0) {
			log_warnx("the store took no request for --timeout; "
			    "killing it");
			inst_kill(si);
		}
		return stream_reply(c, 504, NULL, "the store took no request "
		    "within --timeout");
	}
	if (errno != EPIPE)
		log_warn("writing to the store");
	return stream_reply(c, 502, NULL, "could not send the request to "
	    "the store");
}

/* Wait for c's reply until the deadline, and give it. */
static unsigned
await_reply(struct conn *c, int64_t deadline, pid_t spid, uint32_t sslot)
{
	struct store_inst	*si;

	/* The reader thread sets sdone and wakes us; no lock needed. */
	while (!atomic_load_explicit(&c->sdone, memory_order_acquire)) {
		if (futex_wait(&c->sdone, 0, deadline, 0) == 0)
			continue;
		pthread_mutex_lock(&store.lk);
		if (!atomic_load_explicit(&c->sdone, memory_order_relaxed)) {
			pending_unlink(c);
			si = store.cur;
			if (si != NULL && si->gen == c->sgen)
				inst_kill(si);
			pthread_mutex_unlock(&store.lk);
			STAT_ADD(timeouts, 1);
			log_warnx("the store took longer than --timeout on %s "
			    "%s; killing it", c->ri.method, c->ri.path);
			return stream_reply(c, 504, NULL, "the store took "
			    "longer than --timeout");
		}
		pthread_mutex_unlock(&store.lk);
	}
	if (c->sstatus == 0)
		return stream_reply(c, 502, NULL, "the store died while "
		    "handling this request");
	c->widx_pid = (unsigned)spid;	/* only for the slow log */
	atomic_fetch_add_explicit(&stats->w[sslot].requests, 1,
	    memory_order_relaxed);
	(void)stream_put(c, c->sreply, c->sreply_len);
	return c->sstatus;
}

/* One /kv request as it goes to the store. */
struct store_msg {
	struct msg_hdr		h;
	struct msg_request	mr;
	struct iovec		iov[7];	/* h, mr and its 3 fields, key, body */
};

/*
 * Frame c's request, as id c->sid, in m: the idempotency key (if any)
 * before the body, its length in the flags; crash: --debug-routes let
 * the request ask the store to die after its COMMIT.  Framed again for
 * each try, since write_by() consumes m->iov.
 */
static void
frame(struct conn *c, struct store_msg *m, const char *key, size_t klen,
    const char *body, size_t blen, int crash)
{
	m->h.len = (uint32_t)(msg_request_pack(&m->mr, c->ri.method,
	    c->ri.method_len, c->ri.path, c->ri.path_len, c->ri.query,
	    c->ri.query_len, klen + blen, m->iov + 1) + klen + blen);
	m->h.type = MSG_REQUEST;
	m->h.id = c->sid;
	if (key != NULL)
		m->mr.flags = (uint16_t)(STORE_F_KEY | klen);
	if (crash)
		m->mr.flags |= STORE_F_CRASH;
	m->iov[0].iov_base = &m->h;
	m->iov[0].iov_len = sizeof(m->h);
	m->iov[5].iov_base = (void *)(uintptr_t)key;
	m->iov[5].iov_len = klen;
	m->iov[6].iov_base = (void *)(uintptr_t)body;
	m->iov[6].iov_len = blen;
}

/*
 * Send a /kv request to the store and answer it by deadline_ms: the
 * store's reply, or 502/503/504.  Three steps: wait for a store that
 * takes requests (enlist), send (send_request, again if that store
 * broke before any of it went out), await the reply.  c->sgen is the
 * incarnation it was sent to, so that incarnation's death fails exactly
 * the requests it had.  debug: --debug-routes (see frame()).
 */
unsigned
store_client_request(struct conn *c, const char *body, size_t blen,
    int64_t deadline_ms, unsigned queue_cap, int debug)
{
	struct store_msg	 m;
	struct store_inst	*si;
	const char		*key, *why, *dbg;
	size_t			 klen;
	unsigned		 status;
	pid_t			 spid;
	uint32_t		 sslot;
	int			 crash;

	if ((why = idem_key(c, &key, &klen)) != NULL)
		return stream_reply(c, 400, NULL, why);
	dbg = debug ? FCGX_GetParam(DEBUG_PARAM, c->req.envp) : NULL;
	crash = dbg != NULL && strcmp(dbg, "crash-after-commit") == 0;
	do {
		if ((si = enlist(c, deadline_ms, queue_cap, &status)) == NULL)
			return status;
		spid = si->pid;
		sslot = si->mslot;
		frame(c, &m, key, klen, body, blen, crash);
		status = send_request(c, si, m.iov, 7, deadline_ms);
		pthread_mutex_lock(&store.lk);
		inst_unref(si);
		pthread_mutex_unlock(&store.lk);
	} while (status == SEND_AGAIN);
	if (status != 0)
		return status;
	return await_reply(c, deadline_ms, spid, sslot);
}
