/*
 * handlers.c: the built-in routes, what a worker answers.  GET or HEAD on
 * any path: the hello page; POST /echo: the body back; /debug/crash,
 * /debug/exit, /debug/sleep and /debug/garbage (only with --debug-routes):
 * faults on purpose, for the tests.  Every reply names the worker's pid in
 * X-Worker-Pid.  The hello reply is built once.
 *
 * A route sees the request and fills a reply, nothing else: what the
 * worker takes the request from and where it puts the answer are the
 * worker loop's (worker.c), and the debug routes that need its mailbox,
 * its channel or the shared counters are the worker's own (hostile.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "query.h"

#define HELLO	"hello world from another process\n"

static char	hello_head[256];
static size_t	hello_head_len;

/* Once in each worker, after fork: the pid its replies name, and the
 * hello reply's head. */
void
handlers_init(void)
{
	reply_init();
	hello_head_len = reply_head(hello_head, sizeof(hello_head), 200,
	    REPLY_TEXT_TYPE, sizeof(HELLO) - 1, reply_pid_header());
}

/* /debug/... with --debug-routes. */
static enum action
debug_route(const struct msg_request_view *v, struct reply *rp)
{
	char		val[32];
	size_t		vlen;
	int64_t		ms;
	struct timespec	ts;

	if (msg_view_path_is(v, "/debug/crash"))
		abort();
	if (msg_view_path_is(v, "/debug/exit"))
		exit(3);
	if (msg_view_path_is(v, "/debug/garbage"))
		return ACT_GARBAGE;
	if (msg_view_path_is(v, "/debug/sleep")) {
		if (query_param(v->query, v->query_len, "ms", val, sizeof(val),
		    &vlen) != 1 || parse_i64(val, vlen, &ms) == -1 || ms < 0 ||
		    ms > 3600000) {
			reply_text(rp, 400, NULL, "ms must be a whole number "
			    "of milliseconds from 0 to 3600000");
			return ACT_REPLY;
		}
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000;
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
		reply_text(rp, 200, NULL, "slept %lld ms", (long long)ms);
		return ACT_REPLY;
	}
	reply_text(rp, 404, NULL, "no such debug route");
	return ACT_REPLY;
}

/*
 * Route the request v: rp holds its answer (ACT_REPLY), or the worker is
 * to give a broken one (ACT_GARBAGE, /debug/garbage).
 */
enum action
handlers_route(const struct options *o, const struct msg_request_view *v,
    struct reply *rp)
{
	int	head = msg_view_method_is(v, "HEAD");

	if (v->path_len >= 7 && memcmp(v->path, "/debug/", 7) == 0) {
		if (o->debug_routes)
			return debug_route(v, rp);
		reply_text(rp, 404, NULL, "not found (debug routes are off)");
		return ACT_REPLY;
	}
	if (msg_view_path_is(v, "/echo")) {
		if (!msg_view_method_is(v, "POST")) {
			reply_text(rp, 405, "Allow: POST\r\n", "/echo takes "
			    "POST only");
			return ACT_REPLY;
		}
		reply_bytes(rp, 200, "application/octet-stream", v->body,
		    v->body_len, 0);
		return ACT_REPLY;
	}
	if (!head && !msg_view_method_is(v, "GET")) {
		reply_text(rp, 405, "Allow: GET, HEAD\r\n", "this path takes "
		    "GET or HEAD");
		return ACT_REPLY;
	}
	rp->r.status = 200;
	rp->head = hello_head;
	rp->head_len = hello_head_len;
	rp->body = head ? NULL : HELLO;
	rp->body_len = head ? 0 : sizeof(HELLO) - 1;
	return ACT_REPLY;
}
