/*
 * hello.c: the built-in default application, written against pipepool.h
 * alone, as any application is.  GET or HEAD on any path: the hello page;
 * POST /echo: the body back; with --debug-routes, faults on purpose for
 * the tests: /debug/crash, /debug/exit, /debug/sleep?ms=N and
 * /debug/leak?mb=N[&ms=M] (N MiB allocated, touched and never freed, then
 * M ms asleep: a worker that grows, for --worker-max-memory).  (The debug
 * routes that break the worker's own protocol, /debug/garbage,
 * /debug/hostile and /debug/scribble-stats, are the worker's: hostile.c,
 * routed before any application.)
 *
 * init learns whether --debug-routes is on from the environment: a worker
 * sets PIPEPOOL_DEBUG_ROUTES=1 before it runs init, and unsets it
 * otherwise (worker.c).
 *
 * Built twice from this file: into pipepool with PIPEPOOL_BUILTIN, where
 * the descriptor is app_default, and as build/hello.so (`--app`), where it
 * is pipepool_app.
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L	/* nanosleep, under -std=c11 */
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipepool.h"

#define HELLO		"hello world from another process\n"
#define TEXT		"text/plain; charset=utf-8"
#define SLEEP_MAX	3600000
#define LEAK_MAX	1024	/* MiB at a time */

static int	debug_routes;

static int
hello_init(unsigned worker)
{
	const char	*d = getenv("PIPEPOOL_DEBUG_ROUTES");

	(void)worker;
	debug_routes = d != NULL && strcmp(d, "1") == 0;
	return 0;
}

/* A short text answer, as pipepool's own: status, text and a newline. */
static int
text(struct pp_response *res, unsigned status, const char *allow,
    const char *msg)
{
	if (pp_status(res, status) == -1 ||
	    pp_header(res, "Content-Type", TEXT) == -1 ||
	    (allow != NULL && pp_header(res, "Allow", allow) == -1) ||
	    pp_write(res, msg, strlen(msg)) == -1 || pp_write(res, "\n", 1) ==
	    -1)
		return -1;
	return 0;
}

/* The N of a query "...key=N..." (key given with its '='): 0..max, or
 * -1. */
static long
query_num(const char *q, const char *key, long max)
{
	const char	*p;
	char		*end;
	size_t		 kl = strlen(key);
	long		 n;

	for (p = q; p != NULL; p = (p = strchr(p, '&')) != NULL ? p + 1 : NULL)
		if (strncmp(p, key, kl) == 0)
			break;
	if (p == NULL || p[kl] < '0' || p[kl] > '9')
		return -1;
	errno = 0;
	n = strtol(p + kl, &end, 10);
	if (errno != 0 || (*end != '\0' && *end != '&') || n > max)
		return -1;
	return n;
}

static void
nap(long ms)
{
	struct timespec	ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* /debug/leak?mb=N[&ms=M]: N MiB more, touched (so they count), kept for
 * ever; then M ms asleep, still holding the request. */
static int
leak(const struct pp_request *rq, struct pp_response *res)
{
	static void	*kept;		/* a chain of them: never freed */
	static long	 total;
	char		 msg[64], *p;
	long		 mb, ms;

	if ((mb = query_num(pp_query(rq), "mb=", LEAK_MAX)) == -1)
		return text(res, 400, NULL, "mb must be a whole number of MiB "
		    "from 0 to 1024");
	if ((p = malloc(((size_t)mb << 20) + sizeof(kept))) == NULL)
		return text(res, 500, NULL, "out of memory");
	memset(p, 0x5a, ((size_t)mb << 20) + sizeof(kept));
	memcpy(p, &kept, sizeof(kept));
	kept = p;
	total += mb;
	if ((ms = query_num(pp_query(rq), "ms=", SLEEP_MAX)) > 0)
		nap(ms);
	(void)snprintf(msg, sizeof(msg), "leaked %ld MiB (%ld in all)", mb,
	    total);
	return text(res, 200, NULL, msg);
}

/* /debug/... with --debug-routes. */
static int
debug_route(const char *path, const struct pp_request *rq,
    struct pp_response *res)
{
	char		msg[64];
	long		ms;

	if (strcmp(path, "/debug/crash") == 0)
		abort();
	if (strcmp(path, "/debug/exit") == 0)
		exit(3);
	if (strcmp(path, "/debug/leak") == 0)
		return leak(rq, res);
	if (strcmp(path, "/debug/sleep") != 0)
		return text(res, 404, NULL, "no such debug route");
	if ((ms = query_num(pp_query(rq), "ms=", SLEEP_MAX)) == -1)
		return text(res, 400, NULL, "ms must be a whole number of "
		    "milliseconds from 0 to 3600000");
	nap(ms);
	(void)snprintf(msg, sizeof(msg), "slept %ld ms", ms);
	return text(res, 200, NULL, msg);
}

static int
hello_handle(const struct pp_request *rq, struct pp_response *res)
{
	const char	*path = pp_path(rq), *method = pp_method(rq);
	const void	*body;
	size_t		 len;

	if (strncmp(path, "/debug/", 7) == 0) {
		if (debug_routes)
			return debug_route(path, rq, res);
		return text(res, 404, NULL, "not found (debug routes are off)");
	}
	if (strcmp(path, "/echo") == 0) {
		if (strcmp(method, "POST") != 0)
			return text(res, 405, "POST", "/echo takes POST only");
		body = pp_body(rq, &len);
		if (pp_header(res, "Content-Type", "application/octet-stream")
		    == -1)
			return -1;
		return pp_write(res, body, len);
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return text(res, 405, "GET, HEAD", "this path takes GET or "
		    "HEAD");
	if (pp_header(res, "Content-Type", TEXT) == -1)
		return -1;
	return pp_write(res, HELLO, sizeof(HELLO) - 1);
}

#ifdef PIPEPOOL_BUILTIN
extern const struct pp_app app_default;
const struct pp_app app_default = { PIPEPOOL_ABI, "hello", hello_init,
    hello_handle, NULL };
#else
PIPEPOOL_APP("hello", hello_init, hello_handle, NULL);
#endif
