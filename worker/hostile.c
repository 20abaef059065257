/*
 * hostile.c: a worker that does what no worker should (see hostile.h).
 * /debug/hostile: do=bytes, ff or words scribbles over the dispatch
 * area's shared words (dispatch_scribble), everywhere but in this
 * request's own mailbox, then answers; do=ask asks the front for the
 * connection of every other mailbox under several guesses of its
 * generation and answers how many it was given (it should be none);
 * do=badmsg floods the worker's channel to the front with messages it has
 * no business sending (the front kills it at the first); do=pieces-*
 * streams an answer the wrong way (pieces()).
 * /debug/scribble-stats: the same against the shared counters.
 * /debug/garbage: the worker answers with no message at all (worker.c).
 */
#include <sys/mman.h>

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "direct.h"
#include "dispatch.h"
#include "hostile.h"
#include "query.h"
#include "stats.h"

#define ASK_MBOX_MAX	64	/* mailboxes asked for, at the most */
#define ASK_GENS	6	/* generations guessed for each */
#define FLOOD		200	/* bad messages sent */

/* Connections given for mailboxes other than self. */
static unsigned
ask_all(unsigned self)
{
	unsigned	mb, got = 0;
	uint32_t	gen;

	for (mb = 0; mb < ASK_MBOX_MAX; mb++) {
		if (mb == self)
			continue;
		for (gen = 0; gen < ASK_GENS; gen++)
			got += (unsigned)direct_probe(mb, gen);
	}
	return got;
}

/* One piece of a streamed answer, of status and n bytes at p, laid
 * where it goes (answer.c's way, without its checks), and said so. */
static void
lay(struct job *j, uint32_t tag, unsigned status, const char *p, size_t n)
{
	struct msg_reply	r = { status };
	struct iovec		iov[2] = { { &r, sizeof(r) },
				    { (void *)(uintptr_t)p, n } };
	size_t			at = dispatch_piece_at(j->msg_len);

	(void)msg_frame(j->d + at, dispatch_capacity() - at, MSG_REPLY, j->id,
	    iov, 2);
	(void)dispatch_part_put(j->mb, tag);
	if (j->direct)
		direct_note(j->mb, j->mc.gen);	/* it sleeps on its socket */
}

/*
 * A streamed answer that breaks the rules once its first piece went out
 * (how): "lie", a second piece naming another status; "forge", a piece
 * whose header claims more bytes than the area holds; "spin", 1-byte
 * pieces for ever.  The front must kill the worker (the first two at
 * once, the last past --timeout) and close the connection, since part of
 * an answer went out.  Waits to be killed.
 */
static void __attribute__((noreturn))
pieces(struct job *j, uint32_t tag, const char *how)
{
	static const char	first[] = "Content-Type: text/plain\r\n\r\n"
				    "part one\n";
	struct msg_hdr		h;

	lay(j, tag, 200, first, sizeof(first) - 1);
	if (dispatch_part_wait(j->mb, tag) == 1) {
		if (strcmp(how, "pieces-lie") == 0)
			lay(j, tag, 201, "part two\n", 9);
		else if (strcmp(how, "pieces-forge") == 0) {
			h = msg_hdr_make(MSG_REPLY, UINT32_MAX, j->id);
			memcpy(j->d + dispatch_piece_at(j->msg_len), &h,
			    sizeof(h));
			(void)dispatch_part_put(j->mb, tag);
			if (j->direct)
				direct_note(j->mb, j->mc.gen);
		} else
			do
				lay(j, tag, 200, "x", 1);
			while (dispatch_part_wait(j->mb, tag) == 1);
	}
	for (;;)
		pause();
}

/* /debug/hostile */
static void
hostile(struct job *j, uint32_t tag, int chan)
{
	const struct msg_request_view	*v = &j->v;
	struct reply			*rp = &j->rp;
	unsigned			 mb = j->mb;
	char		val[32], seedv[32];
	size_t		vlen, slen;
	int64_t		seed = 1;

	if (query_param(v->query, v->query_len, "do", val, sizeof(val) - 1,
	    &vlen) != 1) {
		reply_text(rp, 400, NULL, "do must be bytes, ff, words or ask");
		return;
	}
	val[vlen] = '\0';
	if (query_param(v->query, v->query_len, "seed", seedv, sizeof(seedv),
	    &slen) == 1 && parse_i64(seedv, slen, &seed) == -1)
		seed = 1;
	if (strncmp(val, "pieces-", 7) == 0)
		pieces(j, tag, val);
	if (strcmp(val, "ask") == 0) {
		reply_text(rp, 200, NULL, "granted %u", ask_all(mb));
		return;
	}
	if (strcmp(val, "badmsg") == 0) {
		unsigned	i, sent = 0;

		for (i = 0; i < FLOOD; i++)
			sent += chan_send(chan, MSG_STOP, i, NULL, 0, NULL,
			    0) == 0;
		reply_text(rp, 200, NULL, "sent %u bad messages", sent);
		return;
	}
	if (strcmp(val, "bytes") == 0)
		dispatch_scribble(DISPATCH_SCRIBBLE_BYTES, (uint64_t)seed, mb);
	else if (strcmp(val, "ff") == 0)
		dispatch_scribble(DISPATCH_SCRIBBLE_FF, (uint64_t)seed, mb);
	else if (strcmp(val, "words") == 0)
		dispatch_scribble(DISPATCH_SCRIBBLE_WORDS, (uint64_t)seed, mb);
	else {
		reply_text(rp, 400, NULL, "do must be bytes, ff, words or ask");
		return;
	}
	reply_text(rp, 200, NULL, "scribbled (%s, seed %lld)", val,
	    (long long)seed);
}

/*
 * /debug/scribble-stats: a hostile worker against the counters.  Its own
 * page gets every byte 0xff (allowed: the front clamps what it reads
 * there); then it tries to make the global region writable, and to write
 * it.  Both must fail: mprotect with EACCES, the store by SIGSEGV (the
 * default action, also under ASan), so the client gets 502.  An answer at
 * all (500) means the region was writable.
 */
static void
scribble_stats(struct reply *rp)
{
	if (stats_page != NULL)
		memset((void *)stats_page, 0xff, sizeof(*stats_page));
	if (stats == NULL) {
		reply_text(rp, 500, NULL, "no shared counters here");
		return;
	}
	if (mprotect(stats, sizeof(*stats), PROT_READ | PROT_WRITE) == 0) {
		reply_text(rp, 500, NULL, "mprotect made the counters writable");
		return;
	}
	signal(SIGSEGV, SIG_DFL);
	memset((void *)stats, 0xff, sizeof(*stats));
	reply_text(rp, 500, NULL, "wrote the global counters");
}

int
hostile_route(struct job *j, uint32_t tag, int chan)
{
	if (msg_view_path_is(&j->v, "/debug/garbage"))
		return HOSTILE_GARBAGE;
	if (msg_view_path_is(&j->v, "/debug/hostile"))
		hostile(j, tag, chan);
	else if (msg_view_path_is(&j->v, "/debug/scribble-stats"))
		scribble_stats(&j->rp);
	else
		return HOSTILE_NONE;
	return HOSTILE_REPLY;
}
