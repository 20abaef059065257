/*
 * dispatch.h: the shared dispatch area, where the front puts requests for
 * the workers and a worker takes each one.  One MAP_SHARED region,
 * mapped by the master before it forks a front and its workers (a new
 * region for each front incarnation, so a late write by an old worker
 * never reaches a new front):
 *   - a header: the order of requests, the word idle workers sleep on,
 *     and a retire flag per worker (by master slot);
 *   - one mailbox per front connection thread (--threads), whose data
 *     area holds its request and then its reply, each one framed message
 *     (msg.h), and is big enough for --max-body.
 *
 * A mailbox's state word (also the futex each side sleeps on) says who may
 * touch its data; the low 24 bits name a worker by its tag (dispatch_tag:
 * its master slot and a number of its incarnation, so that a new worker
 * in the same slot is never taken for the old one):
 *   MB_FREE            the front thread writes its request
 *   MB_QUEUED          waiting in line for a worker (seq gives the order)
 *   MB_CLAIMED | w     worker w has it; the front thread waits
 *   MB_WANT_BODY | w   worker w has it and waits while the front thread
 *                      reads the body into the data area (large bodies)
 *   MB_DONE | w        the reply is in the data area
 *   MB_SENDING | w     w writes the reply straight to the request's
 *                      FastCGI connection (a direct request, below)
 *   MB_SENT | w        w wrote it all, or the connection failed under
 *                      it (status 0): w is done with the data area
 *   MB_FAILED | w      w died with it (the front, told by the master
 *                      that w is gone, said so here), or the front could
 *                      not read the large body
 *   MB_CUT | w         w died while sending: the answer is cut short,
 *                      the front must close the connection
 *   MB_PART | w        a piece of a streamed answer is in the data area
 *                      (a MSG_REPLY: the first holds the head); w waits
 *   MB_PART_OK | w     the front wrote it: w may lay the next piece, or
 *                      its last (MB_DONE)
 *   MB_PART_STOP | w   the front could not write it (nginx is gone): w
 *                      writes no more, and ends with MB_DONE
 *   MB_RUNNING | w     w's application began on it: from here w's death
 *                      fails it; before (MB_CLAIMED, and a request with
 *                      no large body), it goes back in line, at its
 *                      place, once, for another worker
 *   MB_LATE | w        set by the front only, past --timeout: it answered
 *                      alone and asked for w's death.  w must not start
 *                      or answer (dispatch_running and dispatch_sending
 *                      fail); the mailbox stays w's until w's death
 *                      (MB_FAILED) or its end (MB_DONE, MB_SENT)
 * Only a compare-and-swap moves a request from MB_QUEUED to MB_CLAIMED, so
 * a worker that dies holding a request is always known: there is no
 * window between taking a request and owning it.
 *
 * A direct request (the front set its connection with dispatch_conn) is
 * answered by the worker itself on nginx's connection, whose fd it got
 * from the front once (direct.h), so the front's thread sleeps once per
 * request, waiting for the next one, instead of twice.  The worker counts
 * the request in the shared stats.  If it cannot (no fd) it answers in the
 * mailbox as usual and tells the front over its channel.
 *
 * Trust: every worker can write the whole area but for what is kept in
 * each process's own memory.  So the sizes, the mailbox and buffer counts
 * and the body-buffer pool's bookkeeping are process-private (set at map
 * time, inherited by fork); every word a process reads from the area is
 * read once and bounded before it is used as an index or a loop bound;
 * a state word is only a claim, which the front checks against what it
 * knows of the request (fcgi/front.c); the master never reads the area.
 * Workers of one pool can read and disturb each other's requests here:
 * they are one application, as php-fpm's children share one socket.
 */
#ifndef PP_DISPATCH_H
#define PP_DISPATCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MB_FREE		0x00000000u
#define MB_QUEUED	0x01000000u
#define MB_CLAIMED	0x02000000u
#define MB_WANT_BODY	0x03000000u
#define MB_DONE		0x04000000u
#define MB_FAILED	0x05000000u
#define MB_SENDING	0x06000000u
#define MB_SENT		0x07000000u
#define MB_CUT		0x08000000u
#define MB_PART		0x09000000u
#define MB_PART_OK	0x0a000000u
#define MB_PART_STOP	0x0b000000u
#define MB_RUNNING	0x0c000000u
#define MB_KIND_MAX	MB_RUNNING	/* the last a worker may set */
#define MB_LATE		0x0d000000u
#define MB_KIND(s)	((s) & 0xff000000u)
#define MB_WORKER(s)	((s) & 0x00ffffffu)	/* its tag */

/* A worker's tag: its master slot (12 bits) and its incarnation (12
 * bits, never 0, so no tag is 0).  MB_SLOT is below 4096 for any tag;
 * callers still check it against their own table's size. */
#define MB_SLOT(t)	((t) & 0xfffu)
static inline uint32_t
dispatch_tag(uint32_t slot, uint64_t id)
{
	return (slot & 0xfffu) | (uint32_t)(1 + id % 4095) << 12;
}

/*
 * Bodies larger than this are read once a worker has the request, into a
 * buffer the front thread takes from a pool for that request (lowest free
 * first), so only requests being served hold a large body and a few
 * buffers stay warm; the request's reply comes back in the same buffer.
 * Only the front takes and gives back buffers (its own bookkeeping, never
 * in the area); a worker learns its request's buffer from the mailbox.
 */
#define MB_BODY_INLINE	(16u * 1024)

/*
 * The pieces of a streamed answer (MB_PART, and its end) lie past the
 * request in its data area, which the application may still read while
 * it writes: at dispatch_piece_at(the request message's length), each
 * side working it out from what it knows itself.  The area has room
 * there for MSG_REPLY_HEAD_MAX bytes at the least (dispatch_map), so a
 * piece carries at least that many.
 */
static inline size_t
dispatch_piece_at(size_t msg_len)
{
	return (msg_len + 15) & ~(size_t)15;
}

/* A direct request's connection, as the front sets it. */
struct mb_conn {
	uint32_t	gen;		/* msg_conn.gen */
	uint32_t	fcgi_id;	/* its FastCGI request id */
	int64_t		start_ms;	/* when the front began it */
	int64_t		put_us;		/* when the relay began (queue time) */
};

unsigned dispatch_nbuf_for(unsigned workers, unsigned threads);
int	 dispatch_map(unsigned nmbox, unsigned nbuf, size_t max_body);
void	 dispatch_unmap(void);
size_t	 dispatch_capacity(void);
size_t	 dispatch_size(void);
unsigned char *dispatch_data(unsigned mb);
uint32_t dispatch_state(unsigned mb);
unsigned dispatch_queued(void);

/* The master: worker slots [0, slot] may sleep in the area. */
void	 dispatch_enlist(uint32_t slot);

/* The front. */
unsigned dispatch_gone(uint32_t tag);
unsigned dispatch_nbuf(void);
int	 dispatch_put(unsigned mb, unsigned cap, int want_body);
int	 dispatch_wait(unsigned mb, uint32_t seen, int64_t deadline_ms);
int	 dispatch_cancel(unsigned mb);
/* Past --timeout, mb held by a worker in state s (MB_CLAIMED, MB_RUNNING,
 * or between pieces: MB_PART*): MB_LATE.  1 if done, 0 if the state
 * moved on, or is none of those. */
int	 dispatch_late(unsigned mb, uint32_t s);
int	 dispatch_body(unsigned mb, uint32_t w, int ok, unsigned b);
int	 dispatch_buf_get(void);
unsigned char *dispatch_buf(unsigned b);
void	 dispatch_buf_put(unsigned b, size_t used, int64_t now_ms);
void	 dispatch_trim(int64_t now_ms);
void	 dispatch_free(unsigned mb, size_t used);
void	 dispatch_conn(unsigned mb, const struct mb_conn *);
void	 dispatch_sent_info(unsigned mb, unsigned *status, int64_t *when_ms);
int64_t	 dispatch_claimed_us(unsigned mb);
int	 dispatch_part_ack(unsigned mb, uint32_t w, int ok);
unsigned dispatch_requeued(unsigned mb);
void	 dispatch_retire(uint32_t tag);

/* Tests that play a hostile worker: the area's shared bytes other than
 * the mailboxes' data (the header and every mailbox's words), and
 * scribbling over them (dispatch.c). */
unsigned char *dispatch_meta(size_t *len);
#define DISPATCH_SCRIBBLE_BYTES	0
#define DISPATCH_SCRIBBLE_FF	1
#define DISPATCH_SCRIBBLE_WORDS	2
void	 dispatch_scribble(int how, uint64_t seed, unsigned self);

/* A worker. */
int	 dispatch_take(uint32_t w, int *want_body);
int	 dispatch_want_body(unsigned mb, uint32_t w);
int	 dispatch_done(unsigned mb, uint32_t w);
/* Does w still hold mb's request?  A worker looks before it writes its
 * answer into the mailbox (the front frees a mailbox taken back past
 * --timeout once w is dead, or RELAY_GRACE_MS later). */
int	 dispatch_mine(unsigned mb, uint32_t w);
int	 dispatch_running(unsigned mb, uint32_t w);
int	 dispatch_part_put(unsigned mb, uint32_t w);
int	 dispatch_part_wait(unsigned mb, uint32_t w);
int	 dispatch_conn_get(unsigned mb, struct mb_conn *);
int	 dispatch_sending(unsigned mb, uint32_t w);
int	 dispatch_sent(unsigned mb, uint32_t w, int ok, unsigned status,
	    int64_t now_ms);


#endif
