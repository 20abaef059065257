/*
 * request.c: request marshalling.  The route path is DOCUMENT_URI as nginx
 * sends it, or SCRIPT_NAME + PATH_INFO from servers that send no
 * DOCUMENT_URI; the query string never takes part in routing.  Returns an
 * HTTP status (400, 414; 503 when out of memory) with a one-line reason
 * for what cannot be sent to a worker.
 *
 * request_peek checks a request's declared param lengths before libfcgi
 * reads them (see there).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

unsigned
request_parse(struct reqinfo *ri, param_fn get, void *ctx, const char **why)
{
	const char	*s, *pi, *cl;
	size_t		 n, m;
	char		*end;
	unsigned long long v;

	if ((s = get(ctx, "REQUEST_METHOD")) == NULL || *s == '\0') {
		*why = "no REQUEST_METHOD";
		return 400;
	}
	ri->method = s;
	ri->method_len = strlen(s);
	if (ri->method_len > MSG_METHOD_MAX) {
		*why = "request method too long";
		return 400;
	}
	if ((s = get(ctx, "DOCUMENT_URI")) != NULL && *s != '\0') {
		if ((n = strlen(s)) > MSG_PATH_MAX)
			goto long_uri;
		ri->path = s;
	} else {
		s = get(ctx, "SCRIPT_NAME");
		pi = get(ctx, "PATH_INFO");
		n = s ? strlen(s) : 0;
		m = pi ? strlen(pi) : 0;
		if (n + m > MSG_PATH_MAX)
			goto long_uri;
		if (n + m == 0) {
			ri->path = "/";
			n = 1;
		} else if (m == 0 || n == 0) {
			ri->path = n ? s : pi;
			n += m;
		} else {
			if (ri->joined == NULL &&
			    (ri->joined = malloc(MSG_PATH_MAX + 1)) == NULL) {
				*why = "out of memory";
				return 503;
			}
			memcpy(ri->joined, s, n);
			memcpy(ri->joined + n, pi, m);
			n += m;
			ri->joined[n] = '\0';
			ri->path = ri->joined;
		}
	}
	ri->path_len = n;
	if ((s = get(ctx, "QUERY_STRING")) == NULL)
		s = "";
	ri->query = s;
	ri->query_len = strlen(s);
	if (ri->query_len > MSG_QUERY_MAX)
		goto long_uri;
	/* No length, an empty one or a negative one (Caddy sends -1 for a
	 * chunked upload) means unknown: the body is read to its end. */
	ri->content_length = 0;
	ri->length_known = 0;
	if ((cl = get(ctx, "CONTENT_LENGTH")) != NULL && *cl != '\0') {
		s = cl + (*cl == '-');
		errno = 0;
		v = strtoull(s, &end, 10);
		if (*s < '0' || *s > '9' || *end != '\0' || errno != 0) {
			*why = "CONTENT_LENGTH is not a number";
			return 400;
		}
		if (s == cl) {
			ri->content_length = v;
			ri->length_known = 1;
		}
	}
	return 0;
long_uri:
	*why = "request path or query string too long";
	return 414;
}

void
request_free(struct reqinfo *ri)
{
	free(ri->joined);
	ri->joined = NULL;
}

void
request_line(const struct reqinfo *ri, char *buf, size_t n)
{
	(void)snprintf(buf, n, "%.*s %.*s%s%.*s", (int)ri->method_len,
	    ri->method != NULL ? ri->method : "", (int)ri->path_len, ri->path,
	    ri->query_len ? "?" : "", (int)ri->query_len,
	    ri->query_len ? ri->query : "");
}

/*
 * /kv and /kv/... go to the store (and /debug/store-crash when debug
 * routes are on); everything else to workers.
 */
int
front_route_store(const struct reqinfo *ri, int debug)
{
	if (debug && strcmp(ri->path, "/debug/store-crash") == 0)
		return 1;
	return (ri->path_len == 3 || (ri->path_len > 3 && ri->path[3] == '/'))
	    && memcmp(ri->path, "/kv", 3) == 0;
}

/*
 * The declared lengths of the FastCGI name-value pairs in a stream of
 * content bytes, fed in pieces: each length is 1 byte, or 4 bytes when
 * its top bit is set (the top bit then masked), and the name and value
 * bytes follow.  Mirrors libfcgi's ReadParams, which allocates name +
 * value + 2 bytes as soon as it has both lengths.
 */
struct nvscan {
	uint64_t	skip;		/* name and value bytes still to pass */
	uint64_t	name;		/* the pair's name length */
	uint32_t	len;		/* the length being read */
	unsigned	got, want;	/* its bytes read, of 1 or 4 */
	unsigned	which;		/* 0: the name's length, 1: the value's */
};

/* -1 if a length over REQ_PARAMS_MAX is declared in p[0..n). */
static int
nv_feed(struct nvscan *s, const unsigned char *p, size_t n)
{
	size_t	k;
	uint8_t	b;

	while (n > 0) {
		if (s->skip > 0) {
			k = s->skip < n ? (size_t)s->skip : n;
			s->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		b = *p++;
		n--;
		if (s->got == 0) {
			s->want = b & 0x80 ? 4 : 1;
			s->len = b & 0x7f;
		} else
			s->len = s->len << 8 | b;
		if (++s->got < s->want)
			continue;
		s->got = 0;
		if (s->len > REQ_PARAMS_MAX)
			return -1;
		if (s->which == 0)
			s->name = s->len;
		else
			s->skip = s->name + s->len;
		s->which = !s->which;
	}
	return 0;
}

#define FCGI_BEGIN	1	/* the record types of the FastCGI spec */
#define FCGI_PARAMS	4
#define FCGI_GETVALUES	9

/*
 * Look at the first n bytes a connection holds for its next request
 * (read or peeked, not yet given to libfcgi) as libfcgi will read them:
 * records in order, the first FCGI_BEGIN_REQUEST naming the request, that
 * request's FCGI_PARAMS records one stream of pairs up to an empty one,
 * and FCGI_GET_VALUES records (request id 0) a list of pairs each (the
 * front takes those before the request out first, and libfcgi never sees
 * one: mgmt.c; the check stays for those among the params).  REQ_PEEK_OK
 * once the params are complete with no length over REQ_PARAMS_MAX
 * declared (or libfcgi will refuse the bytes without allocating: a wrong
 * version), REQ_PEEK_MORE to wait for more bytes, REQ_PEEK_BAD with a
 * reason for a length over the bound or params that do not end within
 * REQ_PARAMS_MAX bytes.  Records past the params are not seen here.
 */
int
request_peek(const unsigned char *p, size_t n, const char **why)
{
	struct nvscan	params, one;
	size_t		off = 0, body, clen, have;
	unsigned	type, id, begun = 0;

	memset(&params, 0, sizeof(params));
	while (off + 8 <= n) {
		if (p[off] != 1)
			return REQ_PEEK_OK;	/* libfcgi drops it unread */
		type = p[off + 1];
		id = (unsigned)p[off + 2] << 8 | p[off + 3];
		clen = (size_t)p[off + 4] << 8 | p[off + 5];
		body = off + 8;
		off = body + clen + p[off + 6];
		have = n - body < clen ? n - body : clen;
		if (type == FCGI_BEGIN) {
			if (begun == 0)
				begun = id;
		} else if (id == 0 && type == FCGI_GETVALUES) {
			memset(&one, 0, sizeof(one));
			if (nv_feed(&one, p + body, have) == -1)
				goto absurd;
		} else if (begun != 0 && id == begun && type == FCGI_PARAMS) {
			if (clen == 0)
				return REQ_PEEK_OK;
			if (nv_feed(&params, p + body, have) == -1)
				goto absurd;
		}
		if (off > REQ_PARAMS_MAX)
			goto long_params;
	}
	if (n >= REQ_PARAMS_MAX)
		goto long_params;
	return REQ_PEEK_MORE;
absurd:
	*why = "a param declares a length over 64 KiB";
	return REQ_PEEK_BAD;
long_params:
	*why = "the params do not end within 64 KiB";
	return REQ_PEEK_BAD;
}
