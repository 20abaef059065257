/*
 * answer.c: a worker gives a request's answer back.
 *
 * Whole (the application's answer fit app_answer_max): in the mailbox, a
 * MSG_REPLY the front relays, or, for a direct request, as FastCGI
 * records on nginx's connection (direct.c, fcgi/record.c), counted here.
 *
 * Streamed (it did not fit): app.c hands each piece to answer_sink's
 * piece(), the first with the head.  The first piece chooses the way out
 * for them all:
 *   ANSWER_RECORDS  a direct request whose connection the worker has:
 *                   records written as the pieces come, the request
 *                   counted at the first (MB_SENDING), ended by MB_SENT;
 *   ANSWER_PIECES   any other: each piece a MSG_REPLY in the data area
 *                   past the request (which the application may still
 *                   read: dispatch_piece_at), MB_PART, and the worker waits until the front wrote
 *                   it (MB_PART_OK) or could not (MB_PART_STOP); the end
 *                   is a MSG_REPLY with no bytes and MB_DONE, its status
 *                   the answer's, or 0 when it is cut short.  A direct
 *                   request's front thread sleeps on its socket: the
 *                   first piece is followed by a word on the channel.
 * A streamed answer is never held whole: a piece is at most the
 * mailbox's room, and one is in flight at a time.
 */
#include <sys/socket.h>

#include <string.h>

#include "answer.h"
#include "direct.h"
#include "log.h"
#include "proc.h"
#include "record.h"
#include "stats.h"

#define ANSWER_NONE	0	/* no piece yet */
#define ANSWER_RECORDS	1
#define ANSWER_PIECES	2

static struct {
	uint32_t	tag;
	size_t		cap;		/* dispatch_capacity() */
	unsigned	slow_ms;
	unsigned	pid;
} A;

void
answer_init(uint32_t tag, size_t cap, unsigned slow_ms, unsigned pid)
{
	A.tag = tag;
	A.cap = cap;
	A.slow_ms = slow_ms;
	A.pid = pid;
}

/*
 * A MSG_REPLY of status, head and body in j's data area.  The body may
 * lie in the area itself (/echo answers with the request's body):
 * msg_frame moves the parts in order, body last, so the body goes first
 * by hand.  0, or -1 if it cannot fit (the caller's bounds keep it in).
 */
static int
frame_reply(struct job *j, unsigned status, const char *head, size_t hl,
    const void *body, size_t n)
{
	struct msg_reply	 r = { status };
	struct iovec		 iov[3];
	size_t			 off = sizeof(struct msg_hdr) + sizeof(r);

	if (hl > A.cap - off || n > A.cap - off - hl)
		return -1;
	if (n > 0)
		memmove(j->d + off + hl, body, n);
	iov[0].iov_base = &r;
	iov[0].iov_len = sizeof(r);
	iov[1].iov_base = (void *)(uintptr_t)head;
	iov[1].iov_len = hl;
	iov[2].iov_base = j->d + off + hl;	/* in place */
	iov[2].iov_len = n;
	return msg_frame(j->d, A.cap, MSG_REPLY, j->id, iov, 3) == 0 ? -1 : 0;
}

/* Give j's whole answer back in the mailbox (one that cannot fit
 * becomes a 500), and the mailbox to the front. */
static void
answer_mailbox(struct job *j)
{
	struct reply	*rp = &j->rp;

	if (!dispatch_mine(j->mb, A.tag)) {
		j->lost = 1;	/* the front answered it, past --timeout */
		return;
	}
	if (frame_reply(j, rp->r.status, rp->head, rp->head_len, rp->body,
	    rp->body_len) == -1) {
		log_warnx("a reply of %zu bytes does not fit the %zu-byte "
		    "mailbox", rp->head_len + rp->body_len, A.cap);
		reply_text(rp, 500, NULL, "the answer was too large");
		(void)frame_reply(j, rp->r.status, rp->head, rp->head_len,
		    rp->body, rp->body_len);
	}
	if (dispatch_done(j->mb, A.tag) == -1)
		j->lost = 1;
}

/* Count j's answer (status) as this worker's: the front does not. */
static void
count(struct job *j, unsigned status)
{
	stats_worker_queue_wait(dispatch_claimed_us(j->mb) - j->mc.put_us);
	stats_worker_request(status, proc_now_ms() - j->mc.start_ms,
	    A.slow_ms, &j->v, A.pid);
}

/*
 * Answer j's direct request on its connection, whole, counting it first.
 * Without the connection, or for an answer too large to be sure nginx
 * takes it at once, answer in the mailbox and tell the front to relay it:
 * a worker never blocks on a slow client for a whole answer (the front's
 * thread does, up to --read-timeout, while the worker serves others).
 */
static void
answer_direct(struct job *j)
{
	struct reply	*rp = &j->rp;
	int		 fd, ok;

	if (rp->head_len + rp->body_len > DIRECT_ANSWER_MAX ||
	    (fd = direct_fd(j->mb, j->mc.gen)) == -1) {
		answer_mailbox(j);
		direct_note(j->mb, j->mc.gen);
		return;
	}
	if (dispatch_sending(j->mb, A.tag) == -1) {
		j->lost = 1;	/* the front answered it, past --timeout */
		return;
	}
	count(j, rp->r.status);
	ok = record_answer(fd, j->mc.fcgi_id, rp->head, rp->head_len, rp->body,
	    rp->body_len, 1) == 0;
	if (dispatch_sent(j->mb, A.tag, ok, rp->r.status, proc_now_ms()) == -1)
		j->lost = 1;
}

/* The first piece of j's streamed answer: choose its way out. */
static void
stream_begin(struct job *j, unsigned status)
{
	j->how = ANSWER_PIECES;
	if (j->direct && (j->fd = direct_fd(j->mb, j->mc.gen)) != -1) {
		if (dispatch_sending(j->mb, A.tag) == -1) {
			j->failed = j->lost = 1;	/* past --timeout */
			return;
		}
		j->how = ANSWER_RECORDS;
		count(j, status);
	}
}

/*
 * n bytes of p, then m of q, as one piece through the front, past the
 * request (dispatch_piece_at): lay it, and wait until it is written.
 */
static int
lay_piece(struct job *j, unsigned status, const void *p, size_t n,
    const void *q, size_t m)
{
	struct msg_reply	 r = { status };
	struct iovec		 iov[3] = { { &r, sizeof(r) },
				    { (void *)(uintptr_t)p, n },
				    { (void *)(uintptr_t)q, m } };
	size_t			 at = dispatch_piece_at(j->msg_len);

	if (!dispatch_mine(j->mb, A.tag)) {
		j->lost = 1;	/* the front answered it, past --timeout */
		return -1;
	}
	if (msg_frame(j->d + at, A.cap - at, MSG_REPLY, j->id, iov, 3) == 0) {
		log_warnx("a piece of %zu bytes does not fit past the request",
		    n + m);
		return -1;
	}
	if (dispatch_part_put(j->mb, A.tag) == -1) {
		j->lost = 1;	/* the front answered it, past --timeout */
		return -1;
	}
	if (j->direct && !j->noted)
		direct_note(j->mb, j->mc.gen);	/* it sleeps on its socket */
	j->noted = 1;
	switch (dispatch_part_wait(j->mb, A.tag)) {
	case 1:
		return 0;
	case 0:
		return -1;	/* nginx is gone */
	default:
		j->lost = 1;	/* the front gave up on it */
		return -1;
	}
}

/*
 * Head, then body, through the front, in as many pieces as the room past
 * the request needs (all of it in one, but for the largest requests).
 */
static int
piece_front(struct job *j, unsigned status, const char *head, size_t hl,
    const void *body, size_t n)
{
	const unsigned char	*b = body;
	size_t			 at = dispatch_piece_at(j->msg_len), room;
	size_t			 h, k;

	/* dispatch_map leaves room: this is a broken invariant's check. */
	if (at >= A.cap || A.cap - at <= sizeof(struct msg_hdr) +
	    sizeof(struct msg_reply)) {
		log_warnx("no room for a piece past the request");
		return -1;
	}
	room = A.cap - at - sizeof(struct msg_hdr) - sizeof(struct msg_reply);
	while (hl + n > 0) {
		h = hl < room ? hl : room;
		k = n < room - h ? n : room - h;
		if (lay_piece(j, status, head, h, b, k) == -1)
			return -1;
		head += h;
		hl -= h;
		b += k;
		n -= k;
	}
	return 0;
}

/* app.h's sink: the next piece of j's answer, the first with its head. */
static int
piece(void *arg, unsigned status, const char *head, size_t hl,
    const void *body, size_t n)
{
	struct job	*j = arg;

	if (j->failed)
		return -1;
	if (j->how == ANSWER_NONE)
		stream_begin(j, status);
	if (j->failed)
		return -1;
	if (j->how == ANSWER_RECORDS) {
		if (record_answer(j->fd, j->mc.fcgi_id, head, hl, body, n,
		    0) == 0)
			return 0;
	} else if (piece_front(j, status, head, hl, body, n) == 0)
		return 0;
	j->failed = 1;
	return -1;
}

const struct app_sink *
answer_sink(struct job *j)
{
	j->sink.piece = piece;
	j->sink.arg = j;
	j->how = ANSWER_NONE;
	j->fd = -1;
	j->failed = j->lost = j->noted = 0;
	j->direct = dispatch_conn_get(j->mb, &j->mc);
	return &j->sink;
}

/*
 * The end of j's streamed answer (how: APP_STREAMED, or APP_CUT).  Cut
 * short on the connection: shut it (every copy: the front's thread sees
 * it end, and nginx an answer cut short); through the front: status 0.
 */
static void
stream_end(struct job *j, int how)
{
	struct msg_reply	r;
	struct iovec		iov = { &r, sizeof(r) };
	size_t			at;
	int			ok = how == APP_STREAMED && !j->failed;

	r.status = ok ? j->rp.r.status : 0;
	if (j->how == ANSWER_RECORDS) {
		if (ok)
			ok = record_answer(j->fd, j->mc.fcgi_id, NULL, 0, NULL,
			    0, 1) == 0;
		else if (shutdown(j->fd, SHUT_RDWR) == -1)
			log_warn("shutting a connection cut short");
		if (dispatch_sent(j->mb, A.tag, ok, j->rp.r.status,
		    proc_now_ms()) == -1)
			j->lost = 1;
		return;
	}
	if (j->lost || !dispatch_mine(j->mb, A.tag)) {
		j->lost = 1;
		return;
	}
	at = dispatch_piece_at(j->msg_len);
	if (at < A.cap)
		(void)msg_frame(j->d + at, A.cap - at, MSG_REPLY, j->id, &iov,
		    1);
	if (dispatch_done(j->mb, A.tag) == -1)
		j->lost = 1;
}

void
answer(struct job *j, int how)
{
	if (how != APP_WHOLE)
		stream_end(j, how);
	else if (j->direct)
		answer_direct(j);
	else
		answer_mailbox(j);
}
