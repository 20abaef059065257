/*
 * test_request.c: unit tests of fcgi/request.c: request_peek's verdicts
 * on FastCGI records as a client may send them (whole, cut anywhere,
 * declaring absurd lengths, in FCGI_GET_VALUES records, spread over
 * records, past REQ_PARAMS_MAX), and request_parse's CONTENT_LENGTH and
 * route path (DOCUMENT_URI, or SCRIPT_NAME + PATH_INFO).
 * Exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "request.h"

static unsigned char	buf[256 * 1024];
static size_t		len;

static void
rec(unsigned type, unsigned id, const void *p, size_t n, unsigned pad)
{
	unsigned char	h[8] = { 1, (unsigned char)type, (unsigned char)(id >> 8),
	    (unsigned char)id, (unsigned char)(n >> 8), (unsigned char)n,
	    (unsigned char)pad, 0 };

	memcpy(buf + len, h, 8);
	if (n > 0)
		memcpy(buf + len + 8, p, n);
	memset(buf + len + 8 + n, 0, pad);
	len += 8 + n + pad;
}

static void
begin(unsigned id)
{
	static const unsigned char	b[8] = { 0, 1, 1 };

	rec(1, id, b, 8, 0);
}

static int
peek(size_t n)
{
	const char	*why = NULL;
	int		 r;

	r = request_peek(buf, n, &why);
	CHECK((r == REQ_PEEK_BAD) == (why != NULL));
	return r;
}

static void
test_whole_and_cut(void)
{
	static const char	p[] = "\x0e\x03REQUEST_METHODGET"
	    "\x0c\x01DOCUMENT_URI/";
	size_t			n, end;

	len = 0;
	begin(1);
	rec(4, 1, p, sizeof(p) - 1, 3);
	rec(4, 1, NULL, 0, 0);
	end = len;
	rec(5, 1, "body", 4, 4);
	CHECK(peek(len) == REQ_PEEK_OK);
	/* Cut anywhere before the empty PARAMS record's end: wait. */
	for (n = 0; n < end; n++)
		CHECK(peek(n) == REQ_PEEK_MORE);
	CHECK(peek(end) == REQ_PEEK_OK);
}

static void
test_absurd(void)
{
	/* name 0x7ffffffe, value 1: over REQ_PARAMS_MAX. */
	static const char	big[] = "\xff\xff\xff\xfe\x01" "AAA";
	/* A 4-byte length cut by the end of its record, 0x00010001. */
	static const char	a[] = "\x80\x01", b[] = "\x00\x01\x01" "x";

	len = 0;
	begin(1);
	rec(4, 1, big, sizeof(big) - 1, 0);
	CHECK(peek(len) == REQ_PEEK_BAD);
	/* Seen as soon as the length is, without the rest. */
	CHECK(peek(8 + 8 + 8 + 4) == REQ_PEEK_BAD);
	CHECK(peek(8 + 8 + 8 + 3) == REQ_PEEK_MORE);

	len = 0;
	begin(1);
	rec(4, 1, a, 2, 0);
	rec(4, 1, b, 4, 0);
	CHECK(peek(len) == REQ_PEEK_BAD);

	/* Exactly REQ_PARAMS_MAX is allowed. */
	len = 0;
	begin(1);
	rec(4, 1, "\x80\x01\x00\x00\x00", 5, 0);
	CHECK(peek(len) == REQ_PEEK_MORE);
}

static void
test_other_records(void)
{
	static const char	gv[] = "\xff\xff\xff\xfe\x00";
	static const char	ok[] = "\x0e\x00" "FCGI_MAX_CONNS";

	/* FCGI_GET_VALUES before the request: its pairs count too. */
	len = 0;
	rec(9, 0, gv, sizeof(gv) - 1, 0);
	begin(1);
	rec(4, 1, NULL, 0, 0);
	CHECK(peek(len) == REQ_PEEK_BAD);
	len = 0;
	rec(9, 0, ok, sizeof(ok) - 1, 0);
	begin(1);
	rec(4, 1, NULL, 0, 0);
	CHECK(peek(len) == REQ_PEEK_OK);

	/* PARAMS of another request are skipped by libfcgi: so here. */
	len = 0;
	begin(1);
	rec(4, 2, gv, sizeof(gv) - 1, 0);
	rec(4, 1, NULL, 0, 0);
	CHECK(peek(len) == REQ_PEEK_OK);

	/* A bad version: libfcgi drops it without allocating. */
	len = 0;
	begin(1);
	buf[0] = 2;
	CHECK(peek(len) == REQ_PEEK_OK);
}

static void
test_too_long(void)
{
	static unsigned char	chunk[65528];
	size_t			i;

	/* Params that do not end within REQ_PARAMS_MAX bytes. */
	memset(chunk, 0, sizeof(chunk));	/* pairs of empty names */
	len = 0;
	begin(1);
	rec(4, 1, chunk, sizeof(chunk), 0);
	CHECK(peek(len) == REQ_PEEK_BAD);
	/* Just under: answered. */
	len = 0;
	begin(1);
	rec(4, 1, chunk, REQ_PARAMS_MAX - 3 * 8 - 8, 0);
	rec(4, 1, NULL, 0, 0);
	CHECK(len <= REQ_PARAMS_MAX);
	CHECK(peek(len) == REQ_PEEK_OK);
	for (i = 0; i < len; i += 997)
		CHECK(peek(i) == REQ_PEEK_MORE);
}

/* The params request_parse asks for; NULL: not sent. */
struct env {
	const char	*cl, *uri, *script, *info;
};

static const char *
get(void *ctx, const char *name)
{
	struct env	*e = ctx;

	if (strcmp(name, "REQUEST_METHOD") == 0)
		return "POST";
	if (strcmp(name, "CONTENT_LENGTH") == 0)
		return e->cl;
	if (strcmp(name, "DOCUMENT_URI") == 0)
		return e->uri;
	if (strcmp(name, "SCRIPT_NAME") == 0)
		return e->script;
	if (strcmp(name, "PATH_INFO") == 0)
		return e->info;
	return NULL;
}

static void
test_content_length(void)
{
	static const struct {
		const char	*cl;
		unsigned	 status;
		int		 known;
		unsigned long long v;
	} t[] = {
		{ NULL, 0, 0, 0 }, { "", 0, 0, 0 }, { "-1", 0, 0, 0 },
		{ "-25", 0, 0, 0 }, { "0", 0, 1, 0 }, { "123", 0, 1, 123 },
		{ "x", 400, 0, 0 }, { "-", 400, 0, 0 }, { "--1", 400, 0, 0 },
		{ "+1", 400, 0, 0 }, { "1x", 400, 0, 0 },
		{ "99999999999999999999999", 400, 0, 0 },
	};
	struct reqinfo	*ri;
	struct env	 e = { NULL, "/", NULL, NULL };
	const char	*why;
	size_t		 i;

	if ((ri = calloc(1, sizeof(*ri))) == NULL)
		abort();
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		e.cl = t[i].cl;
		CHECK(request_parse(ri, get, &e, &why) == t[i].status);
		if (t[i].status == 0) {
			CHECK(ri->length_known == t[i].known);
			CHECK(ri->content_length == t[i].v);
		}
	}
	request_free(ri);
	free(ri);
}

static void
test_path(void)
{
	static char	 longer[MSG_PATH_MAX + 2], half[MSG_PATH_MAX / 2 + 2];
	static const struct {
		const char	*uri, *script, *info;
		unsigned	 status;
		const char	*path;
	} t[] = {
		{ "/a/b", "/x", "/y", 0, "/a/b" },
		{ "", "/cgi/run", "/more", 0, "/cgi/run/more" },
		{ NULL, "/cgi/run", NULL, 0, "/cgi/run" },
		{ NULL, NULL, "/only", 0, "/only" },
		{ NULL, "", "", 0, "/" },
		{ NULL, NULL, NULL, 0, "/" },
		{ NULL, "/s", "/t", 0, "/s/t" },	/* joined again */
		{ longer, NULL, NULL, 414, NULL },
		{ NULL, half, half, 414, NULL },
	};
	struct reqinfo	*ri;
	struct env	 e = { NULL, NULL, NULL, NULL };
	const char	*why;
	size_t		 i;

	memset(longer, 'a', sizeof(longer) - 1);
	memset(half, 'b', sizeof(half) - 1);
	if ((ri = calloc(1, sizeof(*ri))) == NULL)
		abort();
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		e.uri = t[i].uri;
		e.script = t[i].script;
		e.info = t[i].info;
		CHECK(request_parse(ri, get, &e, &why) == t[i].status);
		if (t[i].status != 0)
			continue;
		CHECK(strcmp(ri->path, t[i].path) == 0);
		CHECK(ri->path_len == strlen(t[i].path));
	}
	/* A join of exactly MSG_PATH_MAX bytes fits, its NUL too. */
	half[MSG_PATH_MAX / 2] = '\0';
	memset(longer, 'c', MSG_PATH_MAX - MSG_PATH_MAX / 2);
	longer[MSG_PATH_MAX - MSG_PATH_MAX / 2] = '\0';
	e.uri = NULL;
	e.script = half;
	e.info = longer;
	CHECK(request_parse(ri, get, &e, &why) == 0);
	CHECK(ri->path_len == MSG_PATH_MAX && strlen(ri->path) == MSG_PATH_MAX);
	CHECK(strncmp(ri->path, half, MSG_PATH_MAX / 2) == 0 &&
	    strcmp(ri->path + MSG_PATH_MAX / 2, longer) == 0);
	request_free(ri);
	CHECK(ri->joined == NULL);
	free(ri);
}

int
main(void)
{
	test_whole_and_cut();
	test_absurd();
	test_other_records();
	test_too_long();
	test_content_length();
	test_path();
	return check_done("test_request");
}
