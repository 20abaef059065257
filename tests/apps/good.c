/*
 * good.c: the test application of tests/e2e/app.bats, against
 * pipepool.h.  Every answer carries X-App: c and X-Version: VERSION
 * (-DVERSION='"v2"' tells one build from another in a code deploy).
 *
 *	/params		201, the params the tests send and the request line
 *	/all		every param, one NAME=VALUE a line
 *	/echo		the body back, byte for byte
 *	/big?mb=N	N MiB of a known pattern, written 64 KiB at a time
 *	/big?mb=N&fail=1  the same, then handle fails
 *	/error		handle returns -1 with pp_error: 500 with the reason
 *	/crash		abort() in the middle of a request
 *	/hang		never answers (the deadline passes)
 *	/deadline	the milliseconds left of --timeout
 *	/worker		the worker number init was given
 *	else		"good VERSION"
 *
 * GOOD_INIT_MS in the environment makes init take that long (a slow
 * start: a reload must keep the old workers serving meanwhile).
 */
#define _DEFAULT_SOURCE	/* usleep */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipepool.h"

#ifndef VERSION
#define VERSION	"dev"
#endif

static unsigned	worker_number;

static int
good_init(unsigned worker)
{
	const char	*ms = getenv("GOOD_INIT_MS");

	worker_number = worker;
	if (ms != NULL)
		usleep((useconds_t)strtoul(ms, NULL, 10) * 1000);
	return 0;
}

static int
text(struct pp_response *rp, const char *s)
{
	if (pp_header(rp, "Content-Type", "text/plain") == -1)
		return -1;
	return pp_write(rp, s, strlen(s));
}

static const char *
param(const struct pp_request *rq, const char *name)
{
	const char	*v = pp_param(rq, name);

	return v == NULL ? "(none)" : v;
}

static int
params(const struct pp_request *rq, struct pp_response *rp)
{
	char	buf[4096];

	snprintf(buf, sizeof(buf), "method=%s\npath=%s\nquery=%s\n"
	    "HTTP_X_TEST=%s\nREMOTE_ADDR=%s\n", pp_method(rq), pp_path(rq),
	    pp_query(rq), param(rq, "HTTP_X_TEST"), param(rq, "REMOTE_ADDR"));
	if (pp_status(rp, 201) == -1 || pp_header(rp, "X-Echo-Test",
	    param(rq, "HTTP_X_TEST")) == -1)
		return -1;
	return text(rp, buf);
}

static int
all(const struct pp_request *rq, struct pp_response *rp)
{
	const char	*n, *v;
	size_t		 it = 0;

	while (pp_param_next(rq, &it, &n, &v))
		if (pp_write(rp, n, strlen(n)) == -1 || pp_write(rp, "=", 1) ==
		    -1 || pp_write(rp, v, strlen(v)) == -1 ||
		    pp_write(rp, "\n", 1) == -1)
			return -1;
	return 0;
}

/* Byte i of every /big answer: i mod 251 (a prime, so no chunk repeats). */
static int
big(const struct pp_request *rq, struct pp_response *rp)
{
	static unsigned char	chunk[65536];
	const char		*q = pp_query(rq);
	size_t			 left, i, n, off = 0;

	left = (size_t)strtoul(strncmp(q, "mb=", 3) == 0 ? q + 3 : "1",
	    NULL, 10) << 20;
	if (pp_header(rp, "Content-Type", "application/octet-stream") == -1)
		return -1;
	while (left > 0) {
		n = left < sizeof(chunk) ? left : sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = (unsigned char)((off + i) % 251);
		if (pp_write(rp, chunk, n) == -1)
			return -1;
		off += n;
		left -= n;
	}
	if (strstr(q, "fail=1") != NULL) {	/* fails once it all went */
		pp_error(rp, "good fails after its answer began");
		return -1;
	}
	return 0;
}

static int
good_handle(const struct pp_request *rq, struct pp_response *rp)
{
	const char	*p = pp_path(rq);
	const void	*b;
	char		 buf[64];
	size_t		 len;

	if (pp_header(rp, "X-App", "c") == -1 ||
	    pp_header(rp, "X-Version", VERSION) == -1)
		return -1;
	if (strcmp(p, "/params") == 0)
		return params(rq, rp);
	if (strcmp(p, "/all") == 0)
		return all(rq, rp);
	if (strcmp(p, "/echo") == 0) {
		b = pp_body(rq, &len);
		if (pp_header(rp, "Content-Type",
		    "application/octet-stream") == -1)
			return -1;
		return pp_write(rp, b, len);
	}
	if (strcmp(p, "/big") == 0)
		return big(rq, rp);
	if (strcmp(p, "/error") == 0) {
		pp_error(rp, "good fails on purpose");
		return -1;
	}
	if (strcmp(p, "/crash") == 0)
		abort();
	if (strcmp(p, "/hang") == 0)
		for (;;)
			pause();
	if (strcmp(p, "/deadline") == 0)
		snprintf(buf, sizeof(buf), "%lld\n",
		    (long long)pp_deadline_ms(rq));
	else if (strcmp(p, "/worker") == 0)
		snprintf(buf, sizeof(buf), "%u\n", worker_number);
	else
		snprintf(buf, sizeof(buf), "good %s\n", VERSION);
	return text(rp, buf);
}

PIPEPOOL_APP("good", good_init, good_handle, NULL);
