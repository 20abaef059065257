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
	app_handle(&v, proc_now_ms() + 5000, &rp);
	CHECK(rp.r.status == 201);
	CHECK_STR(whole(&rp), exp_pid("Status: 201 Created\r\n"
	    "Content-Type: text/x-probe\r\nContent-Length: 66\r\n"
	    "X-Worker-Pid: %ld\r\nX-A: 1\r\n\r\n"
	    "PUT /p ?a=1 host=example none=n\n"
	    "[HTTP_HOST|example][E|][A|b=c]BODY"));
	/* HEAD: the same head, no body. */
	view(&v, "HEAD", "/p", "", params, sizeof(params), "");
	app_handle(&v, proc_now_ms() + 5000, &rp);
	CHECK(rp.body_len == 0 && strstr(rp.head, "Content-Length: 60\r\n"));
	/* An error: 500 with its reason. */
	probe_rc = -1;
	app_handle(&v, proc_now_ms() + 5000, &rp);
	CHECK(rp.r.status == 500);
	CHECK(strstr(whole(&rp), "\r\n\r\nprobe failed on purpose\n") != NULL);
	/* An answer past the limit: 500, the answer was too large. */
	probe_rc = 0;
	app_answer_max(20);
	view(&v, "GET", "/p", "", "", 0, "");
	app_handle(&v, proc_now_ms() + 5000, &rp);
	CHECK(rp.r.status == 500);
	CHECK(strstr(whole(&rp), "the answer was too large\n") != NULL);
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
	app_handle(&v, 0, &rp);
	CHECK_STR(whole(&rp), exp_pid(
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: 33\r\nX-Worker-Pid: %ld\r\n\r\n"
	    "hello world from another process\n"));
	view(&v, "HEAD", "/", "", "", 0, "");
	app_handle(&v, 0, &rp);
	CHECK(rp.body_len == 0 && strstr(rp.head, "Content-Length: 33\r\n"));
	view(&v, "POST", "/", "", "", 0, "");
	app_handle(&v, 0, &rp);
	CHECK_STR(whole(&rp), exp_pid("Status: 405 Method Not Allowed\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 28\r\n"
	    "X-Worker-Pid: %ld\r\nAllow: GET, HEAD\r\n\r\n"
	    "this path takes GET or HEAD\n"));
	view(&v, "POST", "/echo", "", "", 0, "abc");
	app_handle(&v, 0, &rp);
	CHECK_STR(whole(&rp), exp_pid(
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Length: 3\r\nX-Worker-Pid: %ld\r\n\r\nabc"));
	/* An empty body, before the buffer was ever needed. */
	app_free();
	view(&v, "POST", "/echo", "", "", 0, "");
	app_handle(&v, 0, &rp);
	CHECK(rp.r.status == 200 && rp.body_len == 0 &&
	    strstr(rp.head, "Content-Length: 0\r\n"));
	view(&v, "GET", "/echo", "", "", 0, "");
	app_handle(&v, 0, &rp);
	CHECK(rp.r.status == 405 && strstr(rp.head, "Allow: POST\r\n"));
	view(&v, "GET", "/debug/sleep", "ms=1", "", 0, "");
	app_handle(&v, 0, &rp);
	CHECK(rp.r.status == 404 &&
	    strstr(whole(&rp), "not found (debug routes are off)\n"));
	setenv("PIPEPOOL_DEBUG_ROUTES", "1", 1);
	CHECK(app_default.init(1) == 0);
	app_handle(&v, 0, &rp);
	CHECK(rp.r.status == 200 && strstr(whole(&rp), "\r\n\r\nslept 1 ms\n"));
	view(&v, "GET", "/debug/sleep", "ms=x", "", 0, "");
	app_handle(&v, 0, &rp);
	CHECK(rp.r.status == 400);
	view(&v, "GET", "/debug/nope", "", "", 0, "");
	app_handle(&v, 0, &rp);
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
	app_free();
	return check_done("test_app");
}
