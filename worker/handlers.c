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
static char	pidbuf[32];

void
handlers_init(void)
{
	int	n;

	snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)getpid());
	n = snprintf(hello_head, sizeof(hello_head),
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nX-Worker-Pid: %s\r\n\r\n",
	    sizeof(HELLO) - 1, pidbuf);
	hello_head_len = (size_t)n;
}

const char *
status_text(unsigned s)
{
	switch (s) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

/*
 * The CGI head's Status line for status, in buf (STATUS_LINE_MAX bytes):
 * none for 200, which CGI implies; a server such as Caddy passes a
 * "Status: 200 OK" line on to the client as a header.
 */
const char *
status_line(char *buf, size_t len, unsigned status)
{
	if (status == 200)
		return "";
	(void)snprintf(buf, len, "Status: %u %s\r\n", status,
	    status_text(status));
	return buf;
}

/*
 * A reply with a body of len bytes (body is not copied).  head_only keeps
 * Content-Length but sends no body (HEAD).
 */
void
reply_bytes(struct reply *rp, unsigned status, const char *ctype,
    const char *body, size_t len, int head_only)
{
	char	sl[STATUS_LINE_MAX];
	int	n;

	rp->r.status = status;
	n = snprintf(rp->headbuf, sizeof(rp->headbuf), "%sContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nX-Worker-Pid: %s\r\n\r\n",
	    status_line(sl, sizeof(sl), status), ctype, len, pidbuf);
	rp->head = rp->headbuf;
	rp->head_len = (size_t)n;
	rp->body = head_only ? NULL : body;
	rp->body_len = head_only ? 0 : len;
}

/* A short text reply; extra is more header lines ("Allow: POST\r\n"). */
void
reply_text(struct reply *rp, unsigned status, const char *extra,
    const char *fmt, ...)
{
	static __thread char	body[512];
	char			sl[STATUS_LINE_MAX];
	va_list			ap;
	int			n, h;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(body) - 2)
		n = (int)sizeof(body) - 2;
	body[n++] = '\n';
	rp->r.status = status;
	h = snprintf(rp->headbuf, sizeof(rp->headbuf), "%sContent-Type: "
	    "text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
	    "X-Worker-Pid: %s\r\n%s\r\n", status_line(sl, sizeof(sl), status),
	    n, pidbuf, extra ? extra : "");
	rp->head = rp->headbuf;
	rp->head_len = (size_t)h;
	rp->body = body;
	rp->body_len = (size_t)n;
}

int
view_path_is(const struct msg_request_view *v, const char *path)
{
	size_t	n = strlen(path);

	return v->path_len == n && memcmp(v->path, path, n) == 0;
}

int
view_method_is(const struct msg_request_view *v, const char *m)
{
	size_t	n = strlen(m);

	return v->method_len == n && memcmp(v->method, m, n) == 0;
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

	if (view_path_is(v, "/debug/crash"))
		abort();
	if (view_path_is(v, "/debug/exit"))
		exit(3);
	if (view_path_is(v, "/debug/garbage"))
		return ACT_GARBAGE;
	if (view_path_is(v, "/debug/hostile"))
		return hostile_route(v, rp);
	if (view_path_is(v, "/debug/scribble-stats")) {
		scribble_stats(rp);
		return ACT_REPLY;
	}
	if (view_path_is(v, "/debug/sleep")) {
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
	int	head = view_method_is(v, "HEAD");

	rp->r.flags = 0;
	if (v->path_len >= 7 && memcmp(v->path, "/debug/", 7) == 0) {
		if (o->debug_routes)
			return debug_route(v, rp);
		reply_text(rp, 404, NULL, "not found (debug routes are off)");
		return ACT_REPLY;
	}
	if (view_path_is(v, "/echo")) {
		if (!view_method_is(v, "POST")) {
			reply_text(rp, 405, "Allow: POST\r\n", "/echo takes "
			    "POST only");
			return ACT_REPLY;
		}
		reply_bytes(rp, 200, "application/octet-stream", v->body,
		    v->body_len, 0);
		return ACT_REPLY;
	}
	if (!head && !view_method_is(v, "GET")) {
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
