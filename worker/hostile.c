/*
 * hostile.c: /debug/hostile, a worker that does what no worker should
 * (see hostile.h).  do=bytes, ff or words scribbles over the dispatch
 * area's shared words (dispatch_scribble), everywhere but in this
 * request's own mailbox, then answers; do=ask asks the front for the
 * connection of every other mailbox under several guesses of its
 * generation and answers how many it was given (it should be none);
 * do=badmsg floods the worker's channel to the front with messages it has
 * no business sending (the front kills it at the first).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "direct.h"
#include "dispatch.h"
#include "reply.h"
#include "hostile.h"
#include "chan.h"
#include "msg.h"
#include "query.h"
#include "worker.h"

#define ASK_MBOX_MAX	64	/* mailboxes asked for, at the most */
#define ASK_GENS	6	/* generations guessed for each */
#define FLOOD		200	/* bad messages sent */

static struct {
	uint32_t	tag;
	unsigned	mb;
} H;

void
hostile_request(uint32_t tag, unsigned mb)
{
	H.tag = tag;
	H.mb = mb;
}

/* Connections given for mailboxes this worker does not hold. */
static unsigned
ask_all(void)
{
	unsigned	mb, got = 0;
	uint32_t	gen;

	for (mb = 0; mb < ASK_MBOX_MAX; mb++) {
		if (mb == H.mb)
			continue;
		for (gen = 0; gen < ASK_GENS; gen++)
			got += (unsigned)direct_probe(mb, gen);
	}
	return got;
}

enum action
hostile_route(const struct msg_request_view *v, struct reply *rp)
{
	char		val[32], seedv[32];
	size_t		vlen, slen;
	int64_t		seed = 1;

	if (query_param(v->query, v->query_len, "do", val, sizeof(val) - 1,
	    &vlen) != 1) {
		reply_text(rp, 400, NULL, "do must be bytes, ff, words or ask");
		return ACT_REPLY;
	}
	val[vlen] = '\0';
	if (query_param(v->query, v->query_len, "seed", seedv, sizeof(seedv),
	    &slen) == 1 && parse_i64(seedv, slen, &seed) == -1)
		seed = 1;
	if (strcmp(val, "ask") == 0) {
		reply_text(rp, 200, NULL, "granted %u", ask_all());
		return ACT_REPLY;
	}
	if (strcmp(val, "badmsg") == 0) {
		unsigned	i, sent = 0;

		for (i = 0; i < FLOOD; i++)
			sent += chan_send(WORKER_HELLO_CHAN_FD, MSG_STOP, i,
			    NULL, 0, NULL, 0) == 0;
		reply_text(rp, 200, NULL, "sent %u bad messages", sent);
		return ACT_REPLY;
	}
	if (strcmp(val, "bytes") == 0)
		dispatch_scribble(DISPATCH_SCRIBBLE_BYTES, (uint64_t)seed, H.mb);
	else if (strcmp(val, "ff") == 0)
		dispatch_scribble(DISPATCH_SCRIBBLE_FF, (uint64_t)seed, H.mb);
	else if (strcmp(val, "words") == 0)
		dispatch_scribble(DISPATCH_SCRIBBLE_WORDS, (uint64_t)seed, H.mb);
	else {
		reply_text(rp, 400, NULL, "do must be bytes, ff, words or ask");
		return ACT_REPLY;
	}
	reply_text(rp, 200, NULL, "scribbled (%s, seed %lld)", val,
	    (long long)seed);
	return ACT_REPLY;
}
