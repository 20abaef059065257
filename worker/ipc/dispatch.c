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
 * Trust (dispatch.h): D below is each process's own copy, set at map time
 * and inherited by fork; nothing in it is ever read back from the area.
 * Words read from the area are read once and bounded (clamp()) before they
 * index anything.  The master only maps the area and raises nslots.
 *
 * Deaths: the master tells the front once it has reaped a worker; the
 * front then calls dispatch_gone(), which fails the request that worker
 * (its tag) held and clears its sleep flag.  A new worker in the same slot
 * has another tag, so a late dispatch_gone() cannot touch its requests.
 */
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "futex.h"
#include "log.h"
#include "msg.h"
#include "options.h"
#include "stats.h"

#define PAGE		4096u
#define MB_KEEP		(16u * 1024)	/* data bytes left resident */
#define NSLOTS		PROC_SLOTS	/* worker slots, as the master's */
#define BUF_IDLE_MS	1000		/* trim a buffer unused this long */

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
	int64_t			claimed_us;	/* when a worker took it */
};

struct dhead {
	_Atomic uint64_t	seq;
	_Atomic uint32_t	gen;		/* idle workers sleep on it */
	_Atomic uint32_t	used;		/* mailboxes [0, used) in use */
	_Atomic uint32_t	nslots;		/* worker slots [0, nslots) */
	/* Per worker slot: the tag of the worker asleep there (0: none),
	 * and the tag of the worker there that is retired.  Tags, not
	 * flags, so that what was meant for a dead worker never holds
	 * for the next one in its slot. */
	_Atomic uint32_t	sleeping[NSLOTS];
	_Atomic uint32_t	retire[NSLOTS];
};

/* The front's own bookkeeping of the body-buffer pool. */
struct dbuf {
	_Atomic uint64_t	*map;		/* a bit per buffer: taken */
	_Atomic int64_t		*used_ms;	/* last given back */
	_Atomic uint64_t	*dirty;		/* bytes touched */
};

static struct {
	void		*base;
	size_t		 len;
	size_t		 cap;		/* data bytes per mailbox or buffer */
	unsigned	 nmbox, nbuf;
	struct dhead	*h;
	struct dmbox	*mb;
	unsigned char	*data;
	unsigned char	*bufs;
	struct dbuf	 b;
	void		*bpriv;		/* b's private mapping */
	size_t		 blen;
	_Atomic uint32_t used;		/* the front's: mailboxes in use */
	uint32_t	 nslots;	/* the master's: slots enlisted */
	/* The front's, by mailbox: may its request go back in line if its
	 * worker dies before starting on it (once, no large body), and how
	 * many times one did (relay.c checks a return to the line by it). */
	_Atomic uint8_t	 again[PP_THREADS_MAX];
	_Atomic uint32_t requeued[PP_THREADS_MAX];
} D;

static size_t
round_page(size_t n)
{
	return (n + PAGE - 1) / PAGE * PAGE;
}

/* A count read from the area, bounded by our own idea of it. */
static unsigned
clamp(uint32_t v, unsigned max)
{
	return v < max ? v : max;
}

/*
 * Body buffers for an area: one per request a worker may hold at once,
 * old and new workers side by side during a reload, and never more than
 * the front's threads (each holds one at the most).  A reload to more
 * workers than this serves large bodies only as buffers come free (the
 * front answers 503 meanwhile) until the next start.
 */
unsigned
dispatch_nbuf_for(unsigned workers, unsigned threads)
{
	unsigned	n = 2 * workers + 8;

	return n < threads ? n : threads;
}

/*
 * Map a new area for nmbox mailboxes, nbuf body buffers and bodies up to
 * max_body.  Pages are only touched as requests use them (MAP_NORESERVE).
 */
int
dispatch_map(unsigned nmbox, unsigned nbuf, size_t max_body)
{
	size_t	cap, meta, len, words;
	void	*p;

	if (nmbox > PP_THREADS_MAX) {
		errno = EINVAL;
		return -1;
	}

	/* The largest request, and room past it for a reply's head: the
	 * least a streamed answer's piece holds (dispatch_piece_at). */
	cap = round_page(max_body + 1 + 16 + 2 * sizeof(struct msg_hdr) +
	    sizeof(struct msg_request) + MSG_METHOD_MAX + MSG_PATH_MAX +
	    MSG_QUERY_MAX + MSG_PARAMS_MAX + MSG_REPLY_HEAD_MAX +
	    sizeof(struct msg_reply));
	meta = round_page(sizeof(struct dhead) + nmbox *
	    sizeof(struct dmbox));
	len = meta + ((size_t)nmbox + nbuf) * cap;
	/* The pool's bookkeeping, in a private mapping: each process's own
	 * copy after fork (never seen by another), and no heap to free. */
	words = ((size_t)nbuf + 63) / 64 + 1;
	D.blen = round_page(words * sizeof(*D.b.map) + ((size_t)nbuf + 1) *
	    (sizeof(*D.b.used_ms) + sizeof(*D.b.dirty)));
	p = mmap(NULL, D.blen, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	D.bpriv = p;
	D.b.map = p;
	D.b.used_ms = (_Atomic int64_t *)(D.b.map + words);
	D.b.dirty = (_Atomic uint64_t *)(D.b.used_ms + nbuf + 1);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		goto fail;
	D.base = p;
	D.len = len;
	D.cap = cap;
	D.nmbox = nmbox;
	D.nbuf = nbuf;
	D.h = p;
	D.mb = (struct dmbox *)(D.h + 1);
	D.data = (unsigned char *)p + meta;
	D.bufs = D.data + (size_t)nmbox * cap;
	atomic_store(&D.used, 0);
	D.nslots = 0;
	return 0;
fail:
	(void)munmap(D.bpriv, D.blen);
	memset(&D, 0, sizeof(D));
	return -1;
}

void
dispatch_unmap(void)
{
	if (D.base != NULL)
		(void)munmap(D.base, D.len);
	if (D.bpriv != NULL)
		(void)munmap(D.bpriv, D.blen);
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
	return D.cap;
}

unsigned
dispatch_nbuf(void)
{
	return D.nbuf;
}

/* mb is always one of ours (a thread's own, or bounded by D.nmbox). */
unsigned char *
dispatch_data(unsigned mb)
{
	if (mb >= D.nmbox)
		fatalx("dispatch_data: mailbox %u of %u", mb, D.nmbox);
	return D.data + (size_t)mb * D.cap;
}

uint32_t
dispatch_state(unsigned mb)
{
	return atomic_load_explicit(&D.mb[mb].state, memory_order_acquire);
}

unsigned char *
dispatch_buf(unsigned b)
{
	if (b >= D.nbuf)
		fatalx("dispatch_buf: buffer %u of %u", b, D.nbuf);
	return D.bufs + (size_t)b * D.cap;
}

unsigned char *
dispatch_meta(size_t *len)
{
	*len = (size_t)(D.data - (unsigned char *)D.base);
	return D.base;
}

/* The front: a buffer for a large request's body and reply, or -1. */
int
dispatch_buf_get(void)
{
	unsigned	i, bit;
	uint64_t	v;

	for (i = 0; i < (D.nbuf + 63) / 64; i++) {
		v = atomic_load(&D.b.map[i]);
		while (~v != 0) {
			bit = (unsigned)__builtin_ctzll(~v);
			if (i * 64 + bit >= D.nbuf)
				break;
			if (atomic_compare_exchange_weak(&D.b.map[i], &v,
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
	if (b >= D.nbuf)
		return;
	if (used > D.cap)
		used = D.cap;
	if (used > atomic_load(&D.b.dirty[b]))
		atomic_store(&D.b.dirty[b], used);
	atomic_store(&D.b.used_ms[b], now_ms);
	atomic_fetch_and(&D.b.map[b / 64], ~(1ULL << (b % 64)));
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

	for (b = 0; b < D.nbuf; b++) {
		if ((dirty = atomic_load(&D.b.dirty[b])) == 0 ||
		    now_ms - atomic_load(&D.b.used_ms[b]) < BUF_IDLE_MS)
			continue;
		bit = 1ULL << (b % 64);
		v = atomic_fetch_or(&D.b.map[b / 64], bit);
		if (v & bit)
			continue;	/* in use */
		(void)madvise(dispatch_buf(b), round_page(dirty), MADV_REMOVE);
		atomic_store(&D.b.dirty[b], 0);
		atomic_fetch_and(&D.b.map[b / 64], ~bit);
	}
}

/* The front: requests in line (not yet taken by a worker). */
unsigned
dispatch_queued(void)
{
	unsigned	i, n, q = 0;

	n = clamp(atomic_load(&D.used), D.nmbox);
	for (i = 0; i < n; i++)
		if (atomic_load_explicit(&D.mb[i].state,
		    memory_order_relaxed) == MB_QUEUED)
			q++;
	return q;
}

/*
 * The master, before it forks a worker into slot: the front looks for
 * sleeping workers in slots [0, nslots).  Written, never read back.
 */
void
dispatch_enlist(uint32_t slot)
{
	if (D.h == NULL || slot >= NSLOTS)
		return;		/* no area: no worker is started */
	if (slot + 1 > D.nslots)
		D.nslots = slot + 1;
	atomic_store(&D.h->nslots, D.nslots);
}

/* Is any worker asleep, waiting for a request? */
static int
anyone_sleeping(void)
{
	uint32_t	i, n = clamp(atomic_load(&D.h->nslots), NSLOTS);

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
	u = atomic_load(&D.used);
	while (u < mb + 1 &&
	    !atomic_compare_exchange_weak(&D.used, &u, mb + 1))
		;
	/* The workers' copy, which they may spoil only for themselves. */
	atomic_store(&D.h->used, atomic_load(&D.used));
	atomic_store_explicit(&m->want_body, (uint32_t)want_body,
	    memory_order_relaxed);
	atomic_store_explicit(&m->buf, UINT32_MAX, memory_order_relaxed);
	atomic_store_explicit(&m->seq, atomic_fetch_add(&D.h->seq, 1),
	    memory_order_relaxed);
	atomic_store(&D.again[mb], !want_body);
	atomic_store_explicit(&m->state, MB_QUEUED, memory_order_release);
	/* Pairs with dispatch_take: either it sees gen move, or we see its
	 * sleep flag (both sequentially consistent). */
	atomic_fetch_add(&D.h->gen, 1);
	if (anyone_sleeping())
		futex_wake(&D.h->gen, 1, 1);
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
	r = futex_wait(&D.mb[mb].state, seen, deadline_ms, 1);
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

/* The front, once mb says MB_SENT: what the worker says it sent, and
 * when, each read once (the caller bounds them). */
void
dispatch_sent_info(unsigned mb, unsigned *status, int64_t *when_ms)
{
	*status = *(volatile uint32_t *)&D.mb[mb].sent_status;
	*when_ms = *(volatile int64_t *)&D.mb[mb].sent_ms;
}

/* The front, once a worker has had mb's request: when it says it took
 * it, read once (the caller bounds it). */
int64_t
dispatch_claimed_us(unsigned mb)
{
	return *(volatile int64_t *)&D.mb[mb].claimed_us;
}

/*
 * The front wrote the piece worker w laid in mb (ok), or could not: tell
 * w.  -1 if the mailbox no longer says w laid one (w died meanwhile).
 */
int
dispatch_part_ack(unsigned mb, uint32_t w, int ok)
{
	uint32_t	s = MB_PART | w;

	if (!atomic_compare_exchange_strong(&D.mb[mb].state, &s,
	    (ok ? MB_PART_OK : MB_PART_STOP) | w))
		return -1;
	futex_wake(&D.mb[mb].state, INT_MAX, 1);
	return 0;
}

/* Take a request back out of line.  1 if done, 0 if a worker has it. */
int
dispatch_cancel(unsigned mb)
{
	uint32_t	s = MB_QUEUED;

	return atomic_compare_exchange_strong(&D.mb[mb].state, &s, MB_FREE);
}

/* Is s a state in which worker w holds its request (not yet answered,
 * not taken back)? */
static int
holds(uint32_t s, uint32_t w)
{
	uint32_t	k = MB_KIND(s);

	return MB_WORKER(s) == w && (k == MB_CLAIMED || k == MB_WANT_BODY ||
	    k == MB_RUNNING || k == MB_PART || k == MB_PART_OK ||
	    k == MB_PART_STOP || k == MB_SENDING);
}

int
dispatch_late(unsigned mb, uint32_t s)
{
	/* Not while the front reads its body (WANT_BODY), nor once it
	 * writes on the connection (SENDING: the front shuts it). */
	if (!holds(s, MB_WORKER(s)) || MB_KIND(s) == MB_WANT_BODY ||
	    MB_KIND(s) == MB_SENDING)
		return 0;
	return atomic_compare_exchange_strong(&D.mb[mb].state, &s,
	    MB_LATE | MB_WORKER(s));
}

/*
 * The front read (ok) or failed to read the large body worker w waits
 * for, into buffer b.  -1 if w died meanwhile (the mailbox says
 * MB_FAILED), or the mailbox no longer says w waits for it.
 */
int
dispatch_body(unsigned mb, uint32_t w, int ok, unsigned b)
{
	uint32_t	s = MB_WANT_BODY | w;

	atomic_store_explicit(&D.mb[mb].buf, b, memory_order_relaxed);
	if (!atomic_compare_exchange_strong(&D.mb[mb].state, &s,
	    (ok ? MB_CLAIMED : MB_FAILED) | w))
		return -1;
	futex_wake(&D.mb[mb].state, INT_MAX, 1);
	return 0;
}

/* The front is done with mb; used: the data bytes its request touched. */
void
dispatch_free(unsigned mb, size_t used)
{
	unsigned char	*d = dispatch_data(mb);

	if (used > D.cap)
		used = D.cap;
	/* Give the pages of a large request back (shared memory: only
	 * MADV_REMOVE frees them), keeping the first few. */
	if (used > MB_KEEP)
		(void)madvise(d + MB_KEEP, round_page(used) - MB_KEEP,
		    MADV_REMOVE);
	atomic_store_explicit(&D.mb[mb].state, MB_FREE, memory_order_relaxed);
}

/*
 * Mailbox mb's worker died holding it (state s, MB_CLAIMED) before its
 * application began: back in line at its place (its seq), if it may go
 * (once, no large body), for the next worker, and its thread woken.  1
 * if it went.  The count moves first: the thread must never see the
 * request in line again without it.
 */
static int
requeue(unsigned mb, uint32_t s)
{
	uint8_t	yes = 1;

	if (!atomic_compare_exchange_strong(&D.again[mb], &yes, 0))
		return 0;
	atomic_fetch_add(&D.requeued[mb], 1);
	if (!atomic_compare_exchange_strong(&D.mb[mb].state, &s, MB_QUEUED)) {
		atomic_fetch_sub(&D.requeued[mb], 1);
		return 0;
	}
	futex_wake(&D.mb[mb].state, INT_MAX, 1);
	atomic_fetch_add(&D.h->gen, 1);
	if (anyone_sleeping())
		futex_wake(&D.h->gen, 1, 1);
	return 1;
}

/* The front: how many times mb's requests went back in line. */
unsigned
dispatch_requeued(unsigned mb)
{
	return mb < PP_THREADS_MAX ? atomic_load(&D.requeued[mb]) : 0;
}

/*
 * The front, told that the worker with this tag is gone: fail the
 * request it held (or put it back in line: requeue; how many went is
 * returned), waking its front thread, and clear its sleep flag.
 * Only words that name exactly this tag change (by compare-and-swap).
 */
unsigned
dispatch_gone(uint32_t tag)
{
	unsigned	i, n, back = 0;
	uint32_t	s, slot = MB_SLOT(tag), t = tag;

	if (D.h == NULL)
		return 0;
	n = clamp(atomic_load(&D.used), D.nmbox);
	for (i = 0; i < n; i++) {
		s = atomic_load(&D.mb[i].state);
		if (!holds(s, tag) && s != (MB_LATE | tag))
			continue;
		if (MB_KIND(s) == MB_CLAIMED && requeue(i, s)) {
			back++;
			continue;
		}
		if (atomic_compare_exchange_strong(&D.mb[i].state, &s,
		    (MB_KIND(s) == MB_SENDING ? MB_CUT : MB_FAILED) | tag))
			futex_wake(&D.mb[i].state, INT_MAX, 1);
	}
	if (slot < NSLOTS)
		(void)atomic_compare_exchange_strong(&D.h->sleeping[slot], &t,
		    0);
	return back;
}

/* The worker with this tag takes no more requests: it leaves after the
 * one it has. */
void
dispatch_retire(uint32_t tag)
{
	if (MB_SLOT(tag) >= NSLOTS)
		return;
	atomic_store(&D.h->retire[MB_SLOT(tag)], tag);
	atomic_fetch_add(&D.h->gen, 1);
	futex_wake(&D.h->gen, INT_MAX, 1);
}

/* The oldest request in line, or -1. */
static int
oldest(void)
{
	unsigned	i, n;
	int		best = -1;
	uint64_t	bseq = UINT64_MAX, sq;

	n = clamp(atomic_load(&D.h->used), D.nmbox);
	for (i = 0; i < n; i++) {
		if (atomic_load_explicit(&D.mb[i].state,
		    memory_order_acquire) != MB_QUEUED)
			continue;
		sq = atomic_load_explicit(&D.mb[i].seq, memory_order_relaxed);
		if (sq < bseq) {
			bseq = sq;
			best = (int)i;
		}
	}
	return best;
}

/*
 * The worker with this tag: take the oldest request in line, sleeping
 * while there is none.  Returns its mailbox, or -1 once retired.
 */
int
dispatch_take(uint32_t tag, int *want_body)
{
	uint32_t	g, s, slot = MB_SLOT(tag);
	int		best;

	if (slot >= NSLOTS)
		return -1;
	for (;;) {
		if (atomic_load(&D.h->retire[slot]) == tag)
			return -1;
		g = atomic_load(&D.h->gen);
		if ((best = oldest()) >= 0) {
			s = MB_QUEUED;
			if (atomic_compare_exchange_strong(&D.mb[best].state,
			    &s, MB_CLAIMED | tag)) {
				D.mb[best].claimed_us = proc_now_us();
				*want_body = (int)atomic_load_explicit(
				    &D.mb[best].want_body,
				    memory_order_relaxed);
				return best;
			}
			continue;	/* another worker was quicker */
		}
		atomic_store(&D.h->sleeping[slot], tag);
		(void)futex_wait(&D.h->gen, g, -1, 1);
		atomic_store(&D.h->sleeping[slot], 0);
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
	futex_wake(st, INT_MAX, 1);
	for (;;) {
		s = atomic_load_explicit(st, memory_order_acquire);
		if (s == (MB_CLAIMED | w)) {
			s = atomic_load_explicit(&D.mb[mb].buf,
			    memory_order_relaxed);
			return s < D.nbuf ? (int)s : -1;
		}
		if (s != (MB_WANT_BODY | w))
			return -1;
		(void)futex_wait(st, s, -1, 1);
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

int
dispatch_mine(unsigned mb, uint32_t w)
{
	return holds(atomic_load(&D.mb[mb].state), w);
}

/*
 * Worker w moves mb on to state `to`, only while it holds the request:
 * not once the front took it back (MB_LATE | w: past --timeout it
 * answered alone), nor once the mailbox went on to another request
 * (the front gave up waiting for word of w's death): 0, or -1 then, and
 * w must leave the mailbox as it is.  A compare-and-swap, so that the
 * front's MB_LATE, and the next request, are never overwritten.
 */
static int
move(unsigned mb, uint32_t w, uint32_t to)
{
	uint32_t	s = atomic_load(&D.mb[mb].state);

	do {
		if (!holds(s, w))
			return -1;
	} while (!atomic_compare_exchange_weak(&D.mb[mb].state, &s, to | w));
	return 0;
}

/* Worker w starts writing mb's answer on its connection: -1 if the front
 * took it back (then w must write nothing). */
int
dispatch_sending(unsigned mb, uint32_t w)
{
	return move(mb, w, MB_SENDING);
}

/*
 * Worker w is done writing mb's answer (status) on its connection: all of
 * it (ok), or the connection failed part way (status 0: nginx went away
 * or reset it; the front closes it).
 */
int
dispatch_sent(unsigned mb, uint32_t w, int ok, unsigned status,
    int64_t now_ms)
{
	if (!dispatch_mine(mb, w))
		return -1;
	D.mb[mb].sent_status = ok ? status : 0;
	D.mb[mb].sent_ms = now_ms;
	if (move(mb, w, MB_SENT) == -1)
		return -1;
	if (atomic_load(&D.mb[mb].front_waits))
		futex_wake(&D.mb[mb].state, INT_MAX, 1);
	return 0;
}

/* Worker w's application begins on mb's request: -1 if the front took
 * it back (then w must leave it). */
int
dispatch_running(unsigned mb, uint32_t w)
{
	return move(mb, w, MB_RUNNING);
}

/* Worker w put its reply in mb: -1 if the request was no longer w's. */
int
dispatch_done(unsigned mb, uint32_t w)
{
	if (move(mb, w, MB_DONE) == -1)
		return -1;
	futex_wake(&D.mb[mb].state, INT_MAX, 1);
	return 0;
}

/* Worker w laid a piece of its answer in mb (dispatch_piece_at): -1 if
 * the front took the request back (then w must leave it). */
int
dispatch_part_put(unsigned mb, uint32_t w)
{
	if (move(mb, w, MB_PART) == -1)
		return -1;
	futex_wake(&D.mb[mb].state, INT_MAX, 1);
	return 0;
}

/*
 * ...and waits until the front wrote it.  1: lay the next; 0: the front
 * could not write it (write no more, but end with dispatch_done); -1 when
 * the front gave up on the request (the mailbox is no longer w's: do not
 * touch it).  No time limit here: the front kills a worker past
 * --timeout.
 */
int
dispatch_part_wait(unsigned mb, uint32_t w)
{
	_Atomic uint32_t	*st = &D.mb[mb].state;
	uint32_t		 s;

	for (;;) {
		s = atomic_load_explicit(st, memory_order_acquire);
		if (s == (MB_PART_OK | w))
			return 1;
		if (s == (MB_PART_STOP | w))
			return 0;
		if (s != (MB_PART | w))
			return -1;
		(void)futex_wait(st, s, -1, 1);
	}
}

/*
 * For the hostile-worker tests only (reached through --debug-routes): play
 * a worker that writes what it should not, everywhere but in mailbox self
 * (its own request).  DISPATCH_SCRIBBLE_BYTES writes random bytes over the
 * header and every mailbox's words, _FF writes 0xff there, and _WORDS
 * writes forged but plausible values into each word: states that name
 * other workers or claim a direct answer, extreme times and statuses, and
 * counts and buffer numbers past every bound.
 */
static uint64_t
xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void
scribble_words(struct dmbox *m, uint64_t *x)
{
	static const uint32_t	kinds[] = { MB_FREE, MB_QUEUED, MB_CLAIMED,
				    MB_WANT_BODY, MB_DONE, MB_FAILED,
				    MB_SENDING, MB_SENT, MB_CUT, MB_PART,
				    MB_PART_OK, MB_PART_STOP, MB_RUNNING,
				    0xff000000u };
	static const int64_t	times[] = { INT64_MIN, -1, 0, INT64_MAX };
	uint64_t		r = xorshift(x);

	atomic_store(&m->state, kinds[r % (sizeof(kinds) / sizeof(kinds[0]))] | (uint32_t)(r >> 40 &
	    0xffffff));
	atomic_store(&m->want_body, (uint32_t)(r >> 8));
	atomic_store(&m->seq, r & 1 ? 0 : UINT64_MAX);
	atomic_store(&m->buf, (uint32_t)(r >> 16));
	m->direct = (uint32_t)(r >> 24);
	m->conn.gen = (uint32_t)(r >> 20);
	m->conn.fcgi_id = (uint32_t)r;
	m->conn.start_ms = times[r >> 3 & 3];
	m->sent_status = (uint32_t)(r >> 32);
	m->sent_ms = times[r >> 5 & 3];
	m->claimed_us = times[r >> 7 & 3];
}

void
dispatch_scribble(int how, uint64_t seed, unsigned self)
{
	unsigned char	*p = D.base, *end = D.data;
	unsigned char	*own = (unsigned char *)&D.mb[self];
	uint64_t	 x = seed | 1;
	unsigned	 i;

	if (how == DISPATCH_SCRIBBLE_WORDS) {
		atomic_store(&D.h->used, 0xffffffffu);
		atomic_store(&D.h->nslots, 0xffffffffu);
		atomic_store(&D.h->seq, 0);
		for (i = 0; i < NSLOTS; i++) {
			atomic_store(&D.h->sleeping[i], (uint32_t)xorshift(&x));
			atomic_store(&D.h->retire[i], (uint32_t)xorshift(&x) &
			    0xffffff);
		}
		for (i = 0; i < D.nmbox; i++)
			if (i != self)
				scribble_words(&D.mb[i], &x);
		return;
	}
	for (; p < end; p++) {
		if (p >= own && p < own + sizeof(struct dmbox))
			continue;
		*p = how == DISPATCH_SCRIBBLE_FF ? 0xff : (unsigned char)
		    xorshift(&x);
	}
}

