/*
 * dispatch.c: the shared dispatch area (see dispatch.h).  No lock: each
 * mailbox moves between its front thread and one worker through its state
 * word, and idle workers sleep on one futex word (gen) that the front
 * bumps, waking one of them, when it puts a request in line.
 *
 * Limits, admitted: a worker looking for the oldest request, and the front
 * counting the line against --queue, scan the mailboxes in use: O(front
 * threads ever busy) per request, under a cache line each (a thousand
 * connections cost a few microseconds); the front also scans the worker
 * slots' sleep flags.  No counter is kept because a worker killed between
 * changing one and its flag would skew it for good.
 *
 * Deaths: the master, once it has reaped a hello worker and before its
 * slot can be used again, calls dispatch_gone(), which fails the request
 * the worker held and clears its flags.
 */
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "msg.h"
#include "stats.h"

#define PAGE		4096u
#define MB_KEEP		(16u * 1024)	/* data bytes left resident */

struct dmbox {
	_Atomic uint32_t	state;
	_Atomic uint32_t	want_body;
	_Atomic uint64_t	seq;
	_Atomic uint32_t	buf;		/* large: its body's buffer */
	/* Direct requests: set by the front before dispatch_put (direct is
	 * 0 for the others), read by the worker that claims it; then the
	 * worker's status and time, read by the front once MB_SENT. */
	uint32_t		direct;
	struct mb_conn		conn;
	uint32_t		sent_status;
	_Atomic uint32_t	front_waits;	/* on state, by futex */
	int64_t			sent_ms;
};

#define NBUF		STATS_SLOTS	/* >= workers that may hold one */
#define BUF_IDLE_MS	1000		/* trim a buffer unused this long */

struct dhead {
	_Atomic uint64_t	seq;
	_Atomic uint32_t	gen;		/* idle workers sleep on it */
	_Atomic uint32_t	used;		/* mailboxes [0, used) in use */
	_Atomic uint32_t	nslots;		/* worker slots [0, nslots) */
	uint64_t		cap;		/* data bytes per mailbox */
	/* Per worker slot; a flag, not a count, so that a worker killed
	 * asleep is simply cleared by the master. */
	_Atomic uint32_t	sleeping[STATS_SLOTS];
	_Atomic uint32_t	retire[STATS_SLOTS];
	/* Buffers for large requests: taken by a front thread for one
	 * request (a bit set in bufmap), lowest free first, so a handful
	 * stay warm under load; the watchdog trims idle ones. */
	_Atomic uint64_t	bufmap[(NBUF + 63) / 64];
	_Atomic int64_t		buf_used_ms[NBUF];
	_Atomic uint64_t	buf_dirty[NBUF];	/* bytes touched */
};

static struct {
	void		*base;
	size_t		 len;
	struct dhead	*h;
	struct dmbox	*mb;
	unsigned char	*data;
	unsigned char	*bufs;
} D;

static size_t
round_page(size_t n)
{
	return (n + PAGE - 1) / PAGE * PAGE;
}

/*
 * Map a new area for nmbox mailboxes and bodies up to max_body.  Pages
 * are only touched as requests use them (MAP_NORESERVE).
 */
int
dispatch_map(unsigned nmbox, size_t max_body)
{
	size_t	cap, meta, len;
	void	*p;

	cap = round_page(max_body + 1 + sizeof(struct msg_hdr) +
	    sizeof(struct msg_request) + MSG_METHOD_MAX + MSG_PATH_MAX +
	    MSG_QUERY_MAX + MSG_REPLY_HEAD_MAX + sizeof(struct msg_reply));
	meta = round_page(sizeof(struct dhead) + nmbox *
	    sizeof(struct dmbox));
	len = meta + ((size_t)nmbox + NBUF) * cap;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	D.base = p;
	D.len = len;
	D.h = p;
	D.mb = (struct dmbox *)(D.h + 1);
	D.data = (unsigned char *)p + meta;
	D.bufs = D.data + (size_t)nmbox * cap;
	D.h->cap = cap;
	return 0;
}

void
dispatch_unmap(void)
{
	if (D.base != NULL)
		(void)munmap(D.base, D.len);
	memset(&D, 0, sizeof(D));
}

/* Bytes of address space the area takes (0 when none is mapped). */
size_t
dispatch_size(void)
{
	return D.len;
}

size_t
dispatch_capacity(void)
{
	return D.h->cap;
}

unsigned char *
dispatch_data(unsigned mb)
{
	return D.data + (size_t)mb * D.h->cap;
}

uint32_t
dispatch_state(unsigned mb)
{
	return atomic_load_explicit(&D.mb[mb].state, memory_order_acquire);
}

unsigned char *
dispatch_buf(unsigned b)
{
	return D.bufs + (size_t)b * D.h->cap;
}

/* The front: a buffer for a large request's body and reply, or -1. */
int
dispatch_buf_get(void)
{
	unsigned	i, bit;
	uint64_t	v;

	for (i = 0; i < (NBUF + 63) / 64; i++) {
		v = atomic_load(&D.h->bufmap[i]);
		while (~v != 0) {
			bit = (unsigned)__builtin_ctzll(~v);
			if (i * 64 + bit >= NBUF)
				break;
			if (atomic_compare_exchange_weak(&D.h->bufmap[i], &v,
			    v | (1ULL << bit)))
				return (int)(i * 64 + bit);
		}
	}
	return -1;
}

/* The front is done with buffer b, having touched its first used bytes. */
void
dispatch_buf_put(unsigned b, size_t used, int64_t now_ms)
{
	if (used > atomic_load(&D.h->buf_dirty[b]))
		atomic_store(&D.h->buf_dirty[b], used);
	atomic_store(&D.h->buf_used_ms[b], now_ms);
	atomic_fetch_and(&D.h->bufmap[b / 64], ~(1ULL << (b % 64)));
}

/*
 * Hand back the pages of large-request buffers unused for BUF_IDLE_MS.
 * A buffer is taken like any user takes it (its bit), so no request can
 * be using it meanwhile.  Called by the front's watchdog.
 */
void
dispatch_trim(int64_t now_ms)
{
	unsigned	b;
	uint64_t	bit, v, dirty;

	for (b = 0; b < NBUF; b++) {
		if ((dirty = atomic_load(&D.h->buf_dirty[b])) == 0 ||
		    now_ms - atomic_load(&D.h->buf_used_ms[b]) < BUF_IDLE_MS)
			continue;
		bit = 1ULL << (b % 64);
		v = atomic_fetch_or(&D.h->bufmap[b / 64], bit);
		if (v & bit)
			continue;	/* in use */
		(void)madvise(dispatch_buf(b), round_page(dirty), MADV_REMOVE);
		atomic_store(&D.h->buf_dirty[b], 0);
		atomic_fetch_and(&D.h->bufmap[b / 64], ~bit);
	}
}

/* Requests in line (not yet taken by a worker). */
unsigned
dispatch_queued(void)
{
	unsigned	i, n, q = 0;

	n = atomic_load(&D.h->used);
	for (i = 0; i < n; i++)
		if (atomic_load_explicit(&D.mb[i].state,
		    memory_order_relaxed) == MB_QUEUED)
			q++;
	return q;
}

/* The master, before it forks worker w: a slot's new worker serves. */
void
dispatch_enlist(uint32_t w)
{
	uint32_t	n;

	if (D.h == NULL)
		return;		/* no area: no hello worker is started */
	n = atomic_load(&D.h->nslots);
	atomic_store(&D.h->retire[w], 0);
	atomic_store(&D.h->sleeping[w], 0);
	while (n < w + 1 &&
	    !atomic_compare_exchange_weak(&D.h->nslots, &n, w + 1))
		;
}

/* Is any worker asleep, waiting for a request? */
static int
anyone_sleeping(void)
{
	uint32_t	i, n = atomic_load(&D.h->nslots);

	for (i = 0; i < n; i++)
		if (atomic_load(&D.h->sleeping[i]))
			return 1;
	return 0;
}

/*
 * The front: mailbox mb holds a request (or, with want_body, only waits
 * for a worker before its body is read).  -1 with EAGAIN when --queue
 * requests already wait and no worker is idle.
 */
int
dispatch_put(unsigned mb, unsigned cap, int want_body)
{
	struct dmbox	*m = &D.mb[mb];
	uint32_t	 u;

	/* An idle worker takes it at once: no need to count the line. */
	if (!anyone_sleeping() && dispatch_queued() >= cap) {
		errno = EAGAIN;
		return -1;
	}
	u = atomic_load(&D.h->used);
	while (u < mb + 1 &&
	    !atomic_compare_exchange_weak(&D.h->used, &u, mb + 1))
		;
	atomic_store_explicit(&m->want_body, (uint32_t)want_body,
	    memory_order_relaxed);
	atomic_store_explicit(&m->buf, UINT32_MAX, memory_order_relaxed);
	atomic_store_explicit(&m->seq, atomic_fetch_add(&D.h->seq, 1),
	    memory_order_relaxed);
	atomic_store_explicit(&m->state, MB_QUEUED, memory_order_release);
	/* Pairs with dispatch_take: either it sees gen move, or we see its
	 * sleep flag (both sequentially consistent). */
	atomic_fetch_add(&D.h->gen, 1);
	if (anyone_sleeping())
		wake_word(&D.h->gen, 1, 1);
	return 0;
}

/*
 * Sleep until mb's state is no longer seen, or the deadline (-1: none).
 * The flag tells dispatch_sent to wake us: it skips the system call when
 * nobody waits (both sides sequentially consistent: either we see the
 * new state, or it sees the flag).
 */
int
dispatch_wait(unsigned mb, uint32_t seen, int64_t deadline_ms)
{
	int	r;

	atomic_store(&D.mb[mb].front_waits, 1);
	r = wait_word(&D.mb[mb].state, seen, deadline_ms, 1);
	atomic_store(&D.mb[mb].front_waits, 0);
	return r;
}

/* The front: mb's next request is direct, on this connection (NULL: no). */
void
dispatch_conn(unsigned mb, const struct mb_conn *mc)
{
	D.mb[mb].direct = mc != NULL;
	if (mc != NULL)
		D.mb[mb].conn = *mc;
}

/* The front, once mb says MB_SENT: the status and when it was sent. */
void
dispatch_sent_info(unsigned mb, unsigned *status, int64_t *when_ms)
{
	*status = D.mb[mb].sent_status;
	*when_ms = D.mb[mb].sent_ms;
}

/* Take a request back out of line.  1 if done, 0 if a worker has it. */
int
dispatch_cancel(unsigned mb)
{
	uint32_t	s = MB_QUEUED;

	return atomic_compare_exchange_strong(&D.mb[mb].state, &s, MB_FREE);
}

/*
 * The front read (ok) or failed to read the large body worker w waits
 * for, into buffer b.  -1 if w died meanwhile (the mailbox says
 * MB_FAILED).
 */
int
dispatch_body(unsigned mb, uint32_t w, int ok, unsigned b)
{
	uint32_t	s = MB_WANT_BODY | w;

	atomic_store_explicit(&D.mb[mb].buf, b, memory_order_relaxed);
	if (!atomic_compare_exchange_strong(&D.mb[mb].state, &s,
	    (ok ? MB_CLAIMED : MB_FAILED) | w))
		return -1;
	wake_word(&D.mb[mb].state, INT_MAX, 1);
	return 0;
}

/* The front is done with mb; used: the data bytes its request touched. */
void
dispatch_free(unsigned mb, size_t used)
{
	unsigned char	*d = dispatch_data(mb);

	/* Give the pages of a large request back (shared memory: only
	 * MADV_REMOVE frees them), keeping the first few. */
	if (used > MB_KEEP)
		(void)madvise(d + MB_KEEP, round_page(used) - MB_KEEP,
		    MADV_REMOVE);
	atomic_store_explicit(&D.mb[mb].state, MB_FREE, memory_order_relaxed);
}

/*
 * The master reaped worker w: fail the request it held, waking its front
 * thread, and clear its flags.  Done before the slot is reused, so it can
 * only touch w's own request.
 */
void
dispatch_gone(uint32_t w)
{
	unsigned	i, n;
	uint32_t	s;

	if (D.h == NULL)
		return;		/* the area failed to map again: none */
	n = atomic_load(&D.h->used);
	for (i = 0; i < n; i++) {
		s = atomic_load(&D.mb[i].state);
		if (MB_WORKER(s) != w || (MB_KIND(s) != MB_CLAIMED &&
		    MB_KIND(s) != MB_WANT_BODY && MB_KIND(s) != MB_SENDING))
			continue;
		if (atomic_compare_exchange_strong(&D.mb[i].state, &s,
		    (MB_KIND(s) == MB_SENDING ? MB_CUT : MB_FAILED) | w))
			wake_word(&D.mb[i].state, INT_MAX, 1);
	}
	atomic_store(&D.h->sleeping[w], 0);
}

/* Worker w takes no more requests: it leaves after the one it has. */
void
dispatch_retire(uint32_t w)
{
	atomic_store(&D.h->retire[w], 1);
	atomic_fetch_add(&D.h->gen, 1);
	wake_word(&D.h->gen, INT_MAX, 1);
}

/*
 * Worker w: take the oldest request in line, sleeping while there is
 * none.  Returns its mailbox, or -1 once w is retired.
 */
int
dispatch_take(uint32_t w, int *want_body)
{
	unsigned	i, n;
	int		best;
	uint64_t	bseq, sq;
	uint32_t	g, s;

	for (;;) {
		if (atomic_load(&D.h->retire[w]))
			return -1;
		g = atomic_load(&D.h->gen);
		best = -1;
		bseq = UINT64_MAX;
		n = atomic_load(&D.h->used);
		for (i = 0; i < n; i++) {
			if (atomic_load_explicit(&D.mb[i].state,
			    memory_order_acquire) != MB_QUEUED)
				continue;
			sq = atomic_load_explicit(&D.mb[i].seq,
			    memory_order_relaxed);
			if (sq < bseq) {
				bseq = sq;
				best = (int)i;
			}
		}
		if (best >= 0) {
			s = MB_QUEUED;
			if (atomic_compare_exchange_strong(&D.mb[best].state,
			    &s, MB_CLAIMED | w)) {
				*want_body = (int)atomic_load_explicit(
				    &D.mb[best].want_body,
				    memory_order_relaxed);
				return best;
			}
			continue;	/* another worker was quicker */
		}
		atomic_store(&D.h->sleeping[w], 1);
		(void)wait_word(&D.h->gen, g, -1, 1);
		atomic_store(&D.h->sleeping[w], 0);
	}
}

/*
 * Worker w holds mb, whose body the front has not read yet: ask for it
 * and wait.  The buffer holding the whole request (and then the reply)
 * when it is there; -1 when the front gave up on it (the mailbox is no
 * longer w's: do not touch it).
 */
int
dispatch_want_body(unsigned mb, uint32_t w)
{
	_Atomic uint32_t	*st = &D.mb[mb].state;
	uint32_t		 s;

	atomic_store_explicit(st, MB_WANT_BODY | w, memory_order_release);
	wake_word(st, INT_MAX, 1);
	for (;;) {
		s = atomic_load_explicit(st, memory_order_acquire);
		if (s == (MB_CLAIMED | w)) {
			s = atomic_load_explicit(&D.mb[mb].buf,
			    memory_order_relaxed);
			return s < NBUF ? (int)s : -1;
		}
		if (s != (MB_WANT_BODY | w))
			return -1;
		(void)wait_word(st, s, -1, 1);
	}
}

/* Worker w, holding mb: is it direct, and on which connection? */
int
dispatch_conn_get(unsigned mb, struct mb_conn *mc)
{
	if (!D.mb[mb].direct)
		return 0;
	*mc = D.mb[mb].conn;
	return 1;
}

/*
 * A direct request's large-body buffer goes back to the pool once, by the
 * worker when it has sent its answer, or by the front when the worker died
 * sending: whoever calls this first gets it (and gives it back with
 * dispatch_buf_put), the other -1.
 */
int
dispatch_buf_claim(unsigned mb)
{
	uint32_t	b = atomic_exchange(&D.mb[mb].buf, UINT32_MAX);

	return b < NBUF ? (int)b : -1;
}

/* Worker w starts writing mb's answer on its connection. */
void
dispatch_sending(unsigned mb, uint32_t w)
{
	atomic_store(&D.mb[mb].state, MB_SENDING | w);
}

/*
 * Worker w is done writing mb's answer (status) on its connection: all of
 * it (ok), or the connection failed part way (status 0: nginx went away
 * or reset it; the front closes it).
 */
void
dispatch_sent(unsigned mb, uint32_t w, int ok, unsigned status,
    int64_t now_ms)
{
	D.mb[mb].sent_status = ok ? status : 0;
	D.mb[mb].sent_ms = now_ms;
	atomic_store(&D.mb[mb].state, MB_SENT | w);
	if (atomic_load(&D.mb[mb].front_waits))
		wake_word(&D.mb[mb].state, INT_MAX, 1);
}

/* Worker w put its reply in mb. */
void
dispatch_done(unsigned mb, uint32_t w)
{
	atomic_store_explicit(&D.mb[mb].state, MB_DONE | w,
	    memory_order_release);
	wake_word(&D.mb[mb].state, INT_MAX, 1);
}

/*
 * Sleep while *word == val, until deadline_ms (CLOCK_MONOTONIC ms; -1:
 * none).  0 when woken or the word changed (callers re-check), -1 with
 * ETIMEDOUT past the deadline.  A signal also returns 0.
 */
int
wait_word(_Atomic uint32_t *word, uint32_t val, int64_t deadline_ms,
    int shared)
{
	struct timespec	ts, *tp = NULL;
	int		op = FUTEX_WAIT_BITSET;

	if (!shared)
		op |= FUTEX_PRIVATE_FLAG;
	if (atomic_load_explicit(word, memory_order_acquire) != val)
		return 0;
	if (deadline_ms >= 0) {
		ts.tv_sec = deadline_ms / 1000;
		ts.tv_nsec = (deadline_ms % 1000) * 1000000;
		tp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
	if (syscall(SYS_futex, word, op, val, tp, NULL,
	    FUTEX_BITSET_MATCH_ANY) == -1 && errno == ETIMEDOUT)
		return -1;
	return 0;
}

void
wake_word(_Atomic uint32_t *word, int n, int shared)
{
	(void)syscall(SYS_futex, word, FUTEX_WAKE | (shared ? 0 :
	    FUTEX_PRIVATE_FLAG), n, NULL, NULL, 0);
}
