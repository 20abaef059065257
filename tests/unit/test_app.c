/*
 * test_app.c: the pp_* functions and app_handle (worker/app/app.c), and
 * the built-in application (hello.c) through them.  This test stands in
 * for load.c: its app_current() returns the application it is testing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "check.h"
#include "proc.h"

static const struct pp_app	*cur;

#define CHECK_STR(got, want) do {					\
	if (strcmp((got), (want)) != 0) {				\
		fprintf(stderr, "got [%s]\nnot [%s]\n", (got), (want));	\
		CHECK(0);						\
	}								\
} while (0)

const struct pp_app *
app_current(void)
{
	return cur;
}

/* A request view of method, path, query, a params block and a body. */
static void
view(struct msg_request_view *v, const char *method, const char *path,
    const char *query, const char *params, size_t plen, const char *body)
{
	memset(v, 0, sizeof(*v));
	v->method = method;
	v->method_len = strlen(method);
	v->path = path;
	v->path_len = strlen(path);
	v->query = query;
	v->query_len = strlen(query);
	v->params = params;
	v->params_len = plen;
	v->body = body;
	v->body_len = strlen(body);
}

/* rp's head and body, as one string. */
static const char *
whole(const struct reply *rp)
{
	static char	buf[8192];

	(void)snprintf(buf, sizeof(buf), "%.*s%.*s", (int)rp->head_len,
	    rp->head, (int)rp->body_len, rp->body != NULL ? rp->body : "");
	return buf;
}

/* fmt with the test's pid for its %ld (the X-Worker-Pid line). */
static const char *
exp_pid(const char *fmt)
{
	static char	buf[8192];

	(void)snprintf(buf, sizeof(buf), fmt, (long)getpid());
	return buf;
}

static int	probe_rc;

/* A handler that reads everything and answers with what it saw. */
static int
probe(const struct pp_request *rq, struct pp_response *res)
{
	const char	*n, *v;
	char		 line[256];
	size_t		 it = 0, blen;
	const void	*b = pp_body(rq, &blen);
	char		 longv[MSG_REPLY_HEAD_MAX];

	CHECK(pp_status(res, 99) == -1 && errno == EINVAL);
	CHECK(pp_status(res, 201) == 0);
	CHECK(pp_header(res, "Bad Name", "x") == -1 && errno == EINVAL);
	CHECK(pp_header(res, "X-A", "a\r\nb") == -1 && errno == EINVAL);
	CHECK(pp_header(res, "Status", "200 OK") == -1 && errno == EINVAL);
	CHECK(pp_header(res, "Content-Length", "3") == 0);	/* dropped */
	CHECK(pp_header(res, "X-A", "1") == 0);
	CHECK(pp_header(res, "Content-Type", "text/x-probe") == 0);
	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	CHECK(pp_header(res, "X-Long", longv) == -1 && errno == ENOSPC);
	(void)snprintf(line, sizeof(line), "%s %s ?%s host=%s none=%s\n",
	    pp_method(rq), pp_path(rq), pp_query(rq),
	    pp_param(rq, "HTTP_HOST"), pp_param(rq, "NONE") ? "y" : "n");
	CHECK(pp_write(res, line, strlen(line)) == 0 || errno == EFBIG);
	while (pp_param_next(rq, &it, &n, &v)) {
		(void)snprintf(line, sizeof(line), "[%s|%s]", n, v);
		CHECK(pp_write(res, line, strlen(line)) == 0 || errno == EFBIG);
	}
	CHECK(pp_write(res, b, blen) == 0 || errno == EFBIG);
	CHECK(pp_header(res, "X-Late", "1") == -1 && errno == EINVAL);
	CHECK(pp_status(res, 200) == -1);
	CHECK(pp_deadline_ms(rq) > 1000 && pp_deadline_ms(rq) <= 5000);
	if (probe_rc == -1)
		pp_error(res, "probe failed on purpose");
	return probe_rc;
}

static const struct pp_app	probe_app = { PIPEPOOL_ABI, "probe", NULL,
				    probe, NULL };

static void
test_probe(void)
{
	static const char	params[] = "HTTP_HOST=example\0NOEQ\0E=\0"
				    "A=b=c";
	struct msg_request_view	v;
	static struct reply	rp;

	cur = &probe_app;
	view(&v, "PUT", "/p", "a=1", params, sizeof(params), "BODY");
	probe_rc = 0;
	(void)app_handle(&v, proc_now_ms() + 5000, &rp, NULL);
	CHECK(rp.r.status == 201);
	CHECK_STR(whole(&rp), exp_pid("Status: 201 Created\r\n"
	    "Content-Type: text/x-probe\r\nContent-Length: 66\r\n"
	    "X-Worker-Pid: %ld\r\nX-A: 1\r\n\r\n"
	    "PUT /p ?a=1 host=example none=n\n"
	    "[HTTP_HOST|example][E|][A|b=c]BODY"));
	/* HEAD: the same head, no body. */
	view(&v, "HEAD", "/p", "", params, sizeof(params), "");
	(void)app_handle(&v, proc_now_ms() + 5000, &rp, NULL);
	CHECK(rp.body_len == 0 && strstr(rp.head, "Content-Length: 60\r\n"));
	/* An error: 500 with its reason. */
	probe_rc = -1;
	(void)app_handle(&v, proc_now_ms() + 5000, &rp, NULL);
	CHECK(rp.r.status == 500);
	CHECK(strstr(whole(&rp), "\r\n\r\nprobe failed on purpose\n") != NULL);
	/* An answer past the limit: 500, the answer was too large. */
	probe_rc = 0;
	app_answer_max(20);
	view(&v, "GET", "/p", "", "", 0, "");
	(void)app_handle(&v, proc_now_ms() + 5000, &rp, NULL);
	CHECK(rp.r.status == 500);
	CHECK(strstr(whole(&rp), "the answer was too large\n") != NULL);
	app_answer_max(1024 * 1024);
}

/* A sink that keeps what it is given, in order, and fails after fail_at
 * pieces (0: never). */
static struct {
	char		 got[4096];
	size_t		 len;
	unsigned	 pieces, status, fail_at;
	size_t		 head_len;	/* the first piece's */
} K;

static int
keep(void *arg, unsigned status, const char *head, size_t hl,
    const void *body, size_t n)
{
	CHECK(arg == &K);
	if (K.fail_at != 0 && K.pieces >= K.fail_at)
		return -1;
	CHECK(K.pieces == 0 || (K.status == status && hl == 0));
	CHECK(K.len + hl + n <= sizeof(K.got));
	if (K.pieces++ == 0)
		K.head_len = hl;
	K.status = status;
	memcpy(K.got + K.len, head, hl);
	memcpy(K.got + K.len + hl, body, n);
	K.len += hl + n;
	return 0;
}

static int	chunks_rc;

/* 7 writes of 10 bytes: "chunk 0..\n" ... then chunks_rc. */
static int
chunks(const struct pp_request *rq, struct pp_response *res)
{
	char	b[16];
	int	i, rc = 0;

	(void)rq;
	CHECK(pp_status(res, 202) == 0);
	CHECK(pp_header(res, "X-S", "1") == 0);
	for (i = 0; i < 7; i++) {
		(void)snprintf(b, sizeof(b), "chunk %d..\n", i);
		if (pp_write(res, b, 10) == -1) {
			CHECK(errno == EPIPE);
			rc = -1;
		}
	}
	CHECK(pp_header(res, "X-Late", "1") == -1 && errno == EINVAL);
	return rc == -1 ? rc : chunks_rc;
}

static const struct pp_app	chunks_app = { PIPEPOOL_ABI, "chunks", NULL,
				    chunks, NULL };

/* An answer past app_answer_max streams to the sink: every byte in
 * order, the head first with no Content-Length. */
static void
test_stream(void)
{
	const struct app_sink	 sink = { keep, &K };
	struct msg_request_view	 v;
	static struct reply	 rp;
	static const char	 body[] = "chunk 0..\nchunk 1..\nchunk 2..\n"
				    "chunk 3..\nchunk 4..\nchunk 5..\n"
				    "chunk 6..\n";

	cur = &chunks_app;
	app_answer_max(25);
	view(&v, "GET", "/s", "", "", 0, "");
	memset(&K, 0, sizeof(K));
	chunks_rc = 0;
	CHECK(app_handle(&v, 0, &rp, &sink) == APP_STREAMED);
	CHECK(rp.r.status == 202 && K.status == 202);
	CHECK(K.pieces == 3);	/* 25 + 25 + the last 20 */
	K.got[K.len] = '\0';
	CHECK(K.len == K.head_len + sizeof(body) - 1);
	CHECK_STR(K.got, exp_pid("Status: 202 Accepted\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "X-Worker-Pid: %ld\r\nX-S: 1\r\n\r\n"
	    "chunk 0..\nchunk 1..\nchunk 2..\nchunk 3..\nchunk 4..\n"
	    "chunk 5..\nchunk 6..\n"));
	/* HEAD: the head alone. */
	view(&v, "HEAD", "/s", "", "", 0, "");
	memset(&K, 0, sizeof(K));
	CHECK(app_handle(&v, 0, &rp, &sink) == APP_STREAMED);
	CHECK(K.len == K.head_len && K.head_len > 0);
	/* The handler fails once the answer began: cut short. */
	view(&v, "GET", "/s", "", "", 0, "");
	memset(&K, 0, sizeof(K));
	chunks_rc = -1;
	CHECK(app_handle(&v, 0, &rp, &sink) == APP_CUT);
	CHECK(K.pieces == 2);	/* the last piece is not sent */
	/* Nobody takes more: pp_write says EPIPE, the answer is cut. */
	memset(&K, 0, sizeof(K));
	chunks_rc = 0;
	K.fail_at = 1;
	CHECK(app_handle(&v, 0, &rp, &sink) == APP_CUT);
	CHECK(K.pieces == 1);
	/* Within the limit: whole, as before, with its length. */
	app_answer_max(1024);
	memset(&K, 0, sizeof(K));
	CHECK(app_handle(&v, 0, &rp, &sink) == APP_WHOLE);
	CHECK(K.pieces == 0 && rp.body_len == 70 &&
	    strstr(rp.head, "Content-Length: 70\r\n") != NULL);
	app_answer_max(1024 * 1024);
}

/* The built-in application's answers, byte for byte as before. */
static void
test_hello(void)
{
	struct msg_request_view	v;
	static struct reply	rp;

	cur = &app_default;
	CHECK(app_default.init(1) == 0);
	view(&v, "GET", "/any", "x=1", "", 0, "");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK_STR(whole(&rp), exp_pid(
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: 33\r\nX-Worker-Pid: %ld\r\n\r\n"
	    "hello world from another process\n"));
	view(&v, "HEAD", "/", "", "", 0, "");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK(rp.body_len == 0 && strstr(rp.head, "Content-Length: 33\r\n"));
	view(&v, "POST", "/", "", "", 0, "");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK_STR(whole(&rp), exp_pid("Status: 405 Method Not Allowed\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 28\r\n"
	    "X-Worker-Pid: %ld\r\nAllow: GET, HEAD\r\n\r\n"
	    "this path takes GET or HEAD\n"));
	view(&v, "POST", "/echo", "", "", 0, "abc");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK_STR(whole(&rp), exp_pid(
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Length: 3\r\nX-Worker-Pid: %ld\r\n\r\nabc"));
	/* An empty body, before the buffer was ever needed. */
	app_free();
	view(&v, "POST", "/echo", "", "", 0, "");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK(rp.r.status == 200 && rp.body_len == 0 &&
	    strstr(rp.head, "Content-Length: 0\r\n"));
	view(&v, "GET", "/echo", "", "", 0, "");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK(rp.r.status == 405 && strstr(rp.head, "Allow: POST\r\n"));
	view(&v, "GET", "/debug/sleep", "ms=1", "", 0, "");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK(rp.r.status == 404 &&
	    strstr(whole(&rp), "not found (debug routes are off)\n"));
	setenv("PIPEPOOL_DEBUG_ROUTES", "1", 1);
	CHECK(app_default.init(1) == 0);
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK(rp.r.status == 200 && strstr(whole(&rp), "\r\n\r\nslept 1 ms\n"));
	view(&v, "GET", "/debug/sleep", "ms=x", "", 0, "");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK(rp.r.status == 400);
	view(&v, "GET", "/debug/nope", "", "", 0, "");
	(void)app_handle(&v, 0, &rp, NULL);
	CHECK(rp.r.status == 404 &&
	    strstr(whole(&rp), "no such debug route\n"));
}

int
main(void)
{
	setenv("PIPEPOOL_DEBUG_ROUTES", "0", 1);
	reply_init();
	test_probe();
	test_hello();
	test_stream();
	app_free();
	return check_done("test_app");
}
