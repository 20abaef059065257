/*
 * mgmt.c: FastCGI management records (request id 0), answered by the
 * front (mgmt.h).
 *
 * Why not libfcgi: its ProcessManagementRecord answers FCGI_MAX_CONNS and
 * FCGI_MAX_REQS with 1 whatever the server is, builds its answer with
 * sprintf in a 64-byte stack buffer (a record naming FCGI_MAX_CONNS four
 * times overflows it), and reads the pairs with ReadParams, which
 * allocates what a pair declares and aborts when it cannot.  The front
 * checks a request's head before libfcgi reads it (conn.c), but a
 * management record among the body is parsed where no check sees it.  So
 * libfcgi is never given one: the front interposes libfcgi's one read
 * function, OS_Read (conn.c), and mgmt_read takes every management
 * record out of the bytes, answering it on the connection.  The records
 * are followed as libfcgi follows them (header, content, padding), from
 * the start of each request: libfcgi drops what it read past a request.
 *
 * An answer is written on the connection by the thread that reads it,
 * while libfcgi reads a request's head or body: no worker writes on the
 * connection then (a direct answer begins once the body is in).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mgmt.h"
#include "msg.h"

#define FCGI_HEADER		8
#define FCGI_BEGIN		1
#define FCGI_GET_VALUES		9
#define FCGI_GET_VALUES_RESULT	10
#define FCGI_UNKNOWN_TYPE	11

static char	threads_s[12] = "1";

void
mgmt_init(unsigned threads)
{
	(void)snprintf(threads_s, sizeof(threads_s), "%u", threads);
}

void
mgmt_reset(struct mgmt_filter *f)
{
	f->hlen = 0;
	f->pass = f->take = 0;
	f->held = NULL;
	f->hold_len = 0;
}

void
mgmt_free(struct mgmt_filter *f)
{
	free(f->mbuf);
	f->mbuf = NULL;
}

void
mgmt_hold(struct mgmt_filter *f, const unsigned char *p, size_t n)
{
	f->held = p;
	f->hold_len = n;
}

size_t
mgmt_held(const struct mgmt_filter *f)
{
	return f->hold_len;
}

/* A FastCGI name-value length at c[*off], 1 or 4 bytes; -1: past end. */
static int64_t
nv_len(const unsigned char *c, size_t clen, size_t *off)
{
	size_t	o = *off;

	if (o >= clen)
		return -1;
	if ((c[o] & 0x80) == 0) {
		*off = o + 1;
		return c[o];
	}
	if (clen - o < 4)
		return -1;
	*off = o + 4;
	return (int64_t)(c[o] & 0x7f) << 24 | (int64_t)c[o + 1] << 16 |
	    (int64_t)c[o + 2] << 8 | c[o + 3];
}

/* The value of a variable we know (its index in *which), or NULL. */
static const char *
known(const unsigned char *name, int64_t len, unsigned *which)
{
	static const char *const names[3] = {
		"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"
	};
	unsigned	i;

	for (i = 0; i < 3; i++)
		if ((size_t)len == strlen(names[i]) &&
		    memcmp(name, names[i], (size_t)len) == 0) {
			*which = i;
			return i < 2 ? threads_s : "0";
		}
	return NULL;
}

static void
put_header(unsigned char *out, unsigned type, size_t clen, unsigned pad)
{
	out[0] = 1;
	out[1] = (unsigned char)type;
	out[2] = out[3] = 0;
	out[4] = (unsigned char)(clen >> 8);
	out[5] = (unsigned char)clen;
	out[6] = (unsigned char)pad;
	out[7] = 0;
}

/* FCGI_GET_VALUES_RESULT for the pairs in c[0..clen): see mgmt.h. */
static size_t
get_values(const unsigned char *c, size_t clen, unsigned char *out)
{
	size_t		 off = 0, o = FCGI_HEADER, vl, pad;
	int64_t		 nl, len;
	unsigned	 which, seen = 0;
	const char	*v;

	while (off < clen) {
		if ((nl = nv_len(c, clen, &off)) < 0 ||
		    (len = nv_len(c, clen, &off)) < 0 ||
		    (uint64_t)nl + (uint64_t)len > clen - off)
			break;		/* malformed: the rest is ignored */
		v = known(c + off, nl, &which);
		off += (size_t)(nl + len);
		if (v == NULL || (seen & 1u << which))
			continue;
		seen |= 1u << which;
		vl = strlen(v);
		out[o++] = (unsigned char)nl;
		out[o++] = (unsigned char)vl;
		memcpy(out + o, c + off - nl - len, (size_t)nl);
		o += (size_t)nl;
		memcpy(out + o, v, vl);
		o += vl;
	}
	pad = (8 - (o - FCGI_HEADER) % 8) % 8;
	memset(out + o, 0, pad);
	put_header(out, FCGI_GET_VALUES_RESULT, o - FCGI_HEADER,
	    (unsigned)pad);
	return o + pad;
}

size_t
mgmt_answer(unsigned type, const unsigned char *c, size_t clen,
    unsigned char *out)
{
	if (type == FCGI_GET_VALUES)
		return get_values(c, clen, out);
	/* FCGI_UnknownTypeBody: the type, 7 reserved bytes. */
	put_header(out, FCGI_UNKNOWN_TYPE, 8, 0);
	memset(out + FCGI_HEADER, 0, 8);
	out[FCGI_HEADER] = (unsigned char)type;
	return FCGI_HEADER + 8;
}

/* A header is complete in f->hdr: a management record to take, or one
 * for libfcgi to pass (1, its header to be handed on). */
static int
begin_record(struct mgmt_filter *f)
{
	const unsigned char	*h = f->hdr;
	uint32_t		 clen = (uint32_t)h[4] << 8 | h[5];

	f->hlen = 0;
	if (h[0] != 1 || h[1] == FCGI_BEGIN || (h[2] | h[3]) != 0) {
		f->pass = clen + h[6];
		return 1;
	}
	f->type = h[1];
	f->clen = clen;
	f->pad = h[6];
	f->take = clen + h[6];
	f->mlen = 0;
	/* Without the buffer the record is answered as if it named
	 * nothing: a true answer still. */
	if (clen > 0 && f->mbuf == NULL &&
	    (f->mbuf = malloc(MGMT_CONTENT_MAX)) == NULL)
		log_warn("malloc");
	return 0;
}

/* The management record is whole: answer it.  -1: the write failed. */
static int
answer(struct mgmt_filter *f, int fd)
{
	unsigned char	out[MGMT_ANSWER_MAX];
	size_t		n;

	n = mgmt_answer(f->type, f->mbuf, f->mlen, out);
	return msg_write_all(fd, out, n);
}

/* Bytes p[0..k) of the management record: its content is kept (up to
 * MGMT_CONTENT_MAX), its padding dropped. */
static void
keep_content(struct mgmt_filter *f, const unsigned char *p, size_t k)
{
	size_t	seen = (size_t)f->clen + f->pad - f->take;

	if (seen >= f->clen)
		return;
	if (k > f->clen - seen)
		k = f->clen - seen;
	if (k > MGMT_CONTENT_MAX - f->mlen)
		k = MGMT_CONTENT_MAX - f->mlen;
	if (f->mbuf == NULL)
		return;		/* begin_record could not allocate it */
	memcpy(f->mbuf + f->mlen, p, k);
	f->mlen += k;
}

/* Bytes in[0..k) of a record for libfcgi, to out + *o. */
static int
pass_on(struct mgmt_filter *f, const unsigned char *in, size_t k,
    unsigned char *out, size_t *o)
{
	if (out == NULL)
		return -1;
	if (out + *o != in)
		memmove(out + *o, in, k);
	*o += k;
	f->pass -= (uint32_t)k;
	return 0;
}

/*
 * Walk in[0..n) (starting where f says), handing what libfcgi may read to
 * out (which may be in: what is handed on never passes what was read),
 * management records taken and answered.  out NULL: nothing may be
 * handed on (mgmt_take).  Bytes handed on, or -1.
 */
static ssize_t
filter(struct mgmt_filter *f, int fd, const unsigned char *in, size_t n,
    unsigned char *out)
{
	size_t	i = 0, o = 0, k;

	while (i < n) {
		if (f->pass > 0) {
			k = n - i < f->pass ? n - i : f->pass;
			if (pass_on(f, in + i, k, out, &o) == -1)
				return -1;
		} else if (f->take > 0) {
			k = n - i < f->take ? n - i : f->take;
			keep_content(f, in + i, k);
			f->take -= (uint32_t)k;
			if (f->take == 0 && answer(f, fd) == -1)
				return -1;
		} else {
			k = n - i < 8 - f->hlen ? n - i : 8 - f->hlen;
			memcpy(f->hdr + f->hlen, in + i, k);
			if ((f->hlen += (unsigned)k) < 8)
				break;	/* held back until the rest comes */
			if (begin_record(f)) {
				if (out == NULL)
					return -1;
				memcpy(out + o, f->hdr, 8);
				o += 8;
			} else if (f->take == 0 && answer(f, fd) == -1)
				return -1;
		}
		i += k;
	}
	return (ssize_t)o;
}

ssize_t
mgmt_read(struct mgmt_filter *f, int fd, void *buf, size_t len)
{
	unsigned char	*p = buf;
	ssize_t		 n, kept;
	unsigned	 held;

	if (len <= sizeof(f->hdr)) {
		errno = EINVAL;		/* libfcgi reads 8 KiB at a time */
		return -1;
	}
	do {
		/* A header held back is handed on (or not) whole, from the
		 * start of buf: what is kept never passes what was read. */
		held = f->hlen;
		if (f->hold_len > 0) {
			n = (ssize_t)(f->hold_len < len - held ? f->hold_len :
			    len - held);
			memcpy(p + held, f->held, (size_t)n);
			f->held += n;
			f->hold_len -= (size_t)n;
		} else if ((n = read(fd, p + held, len - held)) <= 0)
			return n;
		memcpy(p, f->hdr, held);
		f->hlen = 0;
		if ((kept = filter(f, fd, p, (size_t)n + held, p)) == -1)
			return -1;	/* errno from the write */
	} while (kept == 0);
	return kept;
}

size_t
mgmt_pending(const struct mgmt_filter *f, const unsigned char *p, size_t n)
{
	size_t	len;

	if (f->take > 0)
		return n < f->take ? n : f->take;
	if (f->pass > 0 || f->hlen > 0 || n < FCGI_HEADER)
		return 0;
	if (p[0] != 1 || p[1] == FCGI_BEGIN || (p[2] | p[3]) != 0)
		return 0;
	len = FCGI_HEADER + ((size_t)p[4] << 8 | p[5]) + p[6];
	return n < len ? n : len;
}

int
mgmt_take(struct mgmt_filter *f, int fd, const unsigned char *p, size_t n)
{
	return filter(f, fd, p, n, NULL) == -1 ? -1 : 0;
}
