/*
 * handlers.c: what a hello worker answers.  GET or HEAD on any path: the
 * hello page; POST /echo: the body back; /debug/... (only with
 * --debug-routes): faults on purpose, for the tests.  Every reply names
 * the worker's pid in X-Worker-Pid.  The hello reply is built once.
 */
#include <sys/mman.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handlers.h"
#include "hostile.h"
#include "query.h"
#include "stats.h"

#define HELLO	"hello world from another process\n"

static char	hello_head[256];
static size_t	hello_head_len;

void
handlers_init(void)
{
	reply_init();
	hello_head_len = reply_head(hello_head, sizeof(hello_head), 200,
	    REPLY_TEXT_TYPE, sizeof(HELLO) - 1, reply_pid_header());
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
	if (msg_view_path_is(v, "/debug/hostile"))
		return hostile_route(v, rp);
	if (msg_view_path_is(v, "/debug/scribble-stats")) {
		scribble_stats(rp);
		return ACT_REPLY;
	}
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
