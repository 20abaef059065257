/*
 * stream.c: one request's libfcgi streams, as the front itself uses them:
 * reading its body (into the connection's buffer, or into a mailbox or a
 * large-body buffer of the dispatch area), draining or skipping a body
 * that no one will read, and writing the front's own answers: the plain
 * error replies (stream_reply) and /status and /metrics (stream_page).
 *
 * Contract: a body is taken (stream_take_body*) to the end of FCGI_STDIN
 * or to one byte past its limit, never further, with the connection in
 * C_BODY (so the watchdog bounds the read by --read-timeout) and back in
 * C_BUSY after; a body that is too long or unreadable is answered here
 * (400, 413) and the caller gets that status.  A body no one reads is
 * drained up to BODY_DRAIN_MAX, past which the connection is not kept.
 * A write that fails only marks the connection not to be kept.  Nothing
 * here allocates per request but the connection's own buffers (c->body
 * grows as bytes come, c->page once).
 */
#include <errno.h>
#include <fcgiapp.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front_int.h"
#include "msg.h"
#include "reply.h"
#include "status.h"

#define BODY_DRAIN_MAX	PP_BODY_MAX	/* past this, 413 and close */

/* n bytes of the answer to nginx: 0, or -1 if the connection failed (it
 * is closed once the request is over). */
int
stream_put(struct conn *c, const void *p, size_t n)
{
	if (n == 0 || FCGX_PutStr(p, (int)n, c->req.out) >= 0) {
		c->out_bytes += (int64_t)n;
		return 0;
	}
	c->req.keepConnection = 0;
	return -1;
}

/* What stream_put holds (libfcgi keeps up to 8 KiB) to nginx now: a
 * piece of a streamed answer goes as it comes.  0, or -1 as stream_put. */
int
stream_flush(struct conn *c)
{
	if (FCGX_FFlush(c->req.out) == 0)
		return 0;
	c->req.keepConnection = 0;
	return -1;
}

/* An answer of the front's own, when no worker can give one. */
unsigned
stream_reply(struct conn *c, unsigned status, const char *extra,
    const char *why)
{
	struct reply_plain	p;

	if (reply_plain(&p, status, extra, why) == 0) {
		(void)stream_put(c, p.head, p.head_len);
		(void)stream_put(c, p.body, p.body_len);
	}
	return status;
}

/*
 * Read the request body into c->body, to the end of FCGI_STDIN, reading
 * at most max + 1 bytes (one more than allowed shows a body that is too
 * long).  The buffer grows as bytes come (from 4 KiB, doubling), never
 * from what the client declares.  -1: the client failed.
 */
static int
read_body(struct conn *c, size_t max, size_t *len)
{
	size_t	n = 0, lim, want;
	char	*nb;
	int	r;

	for (;;) {
		if (n == c->bodycap) {
			if (n > max)
				break;		/* max + 1 bytes: too long */
			want = n < 2048 ? 4096 : n * 2;
			if (want > max + 1)
				want = max + 1;
			if ((nb = realloc(c->body, want)) == NULL)
				return -1;
			c->body = nb;
			c->bodycap = want;
		}
		lim = c->bodycap < max + 1 ? c->bodycap : max + 1;
		if (n == lim)
			break;		/* a buffer kept from a larger max */
		r = FCGX_GetStr(c->body + n, (int)(lim - n < INT_MAX ? lim - n :
		    INT_MAX), c->req.in);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (FCGX_GetError(c->req.in) != 0)
		return -1;
	*len = n;
	return 0;
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
void
stream_skip_body(struct conn *c)
{
	int	saved = errno;

	conn_state(c, C_BODY);
	if (drain_body(c) == -1)
		c->req.keepConnection = 0;
	conn_state(c, C_BUSY);
	errno = saved;
}

/* A body over --max-body: 413, after what is left of it (up to a bound,
 * past which the connection is not kept). */
unsigned
stream_too_large(struct conn *c)
{
	if (drain_body(c) == -1)
		c->req.keepConnection = 0;
	return stream_reply(c, 413, NULL, "the request body is larger than "
	    "--max-body");
}

/* After reading a body of n bytes: 0, or the answer given instead. */
static unsigned
body_verdict(struct conn *c, int failed, size_t n, size_t max)
{
	if (failed) {
		c->req.keepConnection = 0;
		return stream_reply(c, 400, NULL, "could not read the request "
		    "body");
	}
	if (n > max)
		return stream_too_large(c);
	conn_state(c, C_BUSY);
	return 0;
}

/*
 * Read c's whole body (a declared length is within --max-body) into
 * c->body.  Returns 0, or the status of the answer given instead (400,
 * 413).
 */
unsigned
stream_take_body(struct conn *c, size_t *blen)
{
	size_t	max = atomic_load(&front_live.max_body);
	int	r;

	conn_state(c, C_BODY);
	r = read_body(c, max, blen);
	return body_verdict(c, r == -1, *blen, max);
}

/*
 * The same into buf, which has room for --max-body + 1 bytes, reading at
 * most limit + 1 (limit: --max-body, or a small body's declared length:
 * more than declared is a 400, so a client that declares a small body
 * cannot park a large one in a queued mailbox).
 */
unsigned
stream_take_body_into(struct conn *c, unsigned char *buf, size_t limit,
    size_t *blen)
{
	size_t	max = atomic_load(&front_live.max_body), n = 0;
	int	r;

	if (limit > max)
		limit = max;
	conn_state(c, C_BODY);
	while (n < limit + 1) {
		r = FCGX_GetStr((char *)buf + n, (int)(limit + 1 - n < INT_MAX ?
		    limit + 1 - n : INT_MAX), c->req.in);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	*blen = n;
	if (n > limit && limit < max) {
		c->req.keepConnection = 0;
		return stream_reply(c, 400, NULL, "the request body is longer "
		    "than its CONTENT_LENGTH");
	}
	return body_verdict(c, FCGX_GetError(c->req.in) != 0, n, max);
}

/* Render page (status_json and the like) into c->page, allocated on the
 * connection's first such request.  0: out of memory. */
static int
render(struct conn *c, size_t (*page)(char *, size_t), size_t *n)
{
	if (c->page == NULL && (c->page = malloc(STATUS_BUF_MAX)) == NULL)
		return 0;
	conn_count_line();
	*n = page(c->page, STATUS_BUF_MAX);
	return 1;
}

/*
 * /status (JSON, or HTML with ?html) and /metrics: the front answers
 * these itself, from the shared counters, so they work while every worker
 * is busy or crashing.  Returns 0 if the path is not one of them.
 */
unsigned
stream_page(struct conn *c)
{
	char		 head[256];
	const char	*ct;
	size_t		 n;
	int		 h, is_head, ok;

	if (strcmp(c->ri.path, "/status") == 0) {
		if (strncmp(c->ri.query, "html", 4) == 0 &&
		    (c->ri.query[4] == '\0' || c->ri.query[4] == '&' ||
		    c->ri.query[4] == '=')) {
			ok = render(c, status_html, &n);
			ct = STATUS_CT_HTML;
		} else {
			ok = render(c, status_json, &n);
			ct = STATUS_CT_JSON;
		}
	} else if (strcmp(c->ri.path, "/metrics") == 0) {
		ok = render(c, status_metrics, &n);
		ct = STATUS_CT_METRICS;
	} else
		return 0;
	if (!ok)
		return stream_reply(c, 503, NULL, "out of memory");
	is_head = strcmp(c->ri.method, "HEAD") == 0;
	if (!is_head && strcmp(c->ri.method, "GET") != 0)
		return stream_reply(c, 405, "Allow: GET, HEAD\r\n", "this page "
		    "takes GET or HEAD");
	/* 200: no Status line (status_line). */
	h = snprintf(head, sizeof(head), "Content-Type: %s"
	    "\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n\r\n",
	    ct, n);
	(void)stream_put(c, head, (size_t)h);
	if (!is_head)
		(void)stream_put(c, c->page, n);
	return 200;
}
