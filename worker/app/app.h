/*
 * app.h: inside a worker, the application it runs: --app FILE.so, the
 * --exec adapter (exec.c) or the built-in default (hello.c), all behind
 * the public interface of pipepool.h.  Private to pipepool (not
 * installed).
 */
#ifndef PP_APP_H
#define PP_APP_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "options.h"
#include "pipepool.h"
#include "reply.h"

/* load.c: choose and load this worker's application (dlopen for --app,
 * checking the descriptor and its ABI number), then run its init with
 * the worker's number.  0, or -1 with a one-line reason in err (the
 * dlerror text, "no pipepool_app descriptor", "ABI 2, this pipepool
 * speaks 1", "init failed").  Called in a worker after fork, and in the
 * master's probe child at start and on reload. */
int	app_start(const struct options *, unsigned worker, char *err,
	    size_t errlen);
/* load.c: run the application's fini, if any (at retirement). */
void	app_stop(void);
/* load.c: the application started by app_start. */
const struct pp_app *app_current(void);

/*
 * Where a streamed answer goes (the worker's answer.c): piece() takes the
 * answer's status, the head the first time (head_len 0 after), and n body
 * bytes (at most app_answer_max).  It returns 0, or -1 once nobody takes
 * more (nginx is gone): the handler's further pp_write fail with EPIPE.
 */
struct app_sink {
	int	(*piece)(void *arg, unsigned status, const char *head,
		    size_t head_len, const void *body, size_t n);
	void	*arg;
};

/* app_handle's results. */
#define APP_WHOLE	0	/* rp is the answer, whole */
#define APP_STREAMED	1	/* it went to the sink; end it as status */
#define APP_CUT		2	/* it went to the sink in part: end it cut
				 * short (the handler failed, or nobody
				 * takes it) */

/* app.c: answer one request with the current application: the pp_*
 * functions see v (and its params) and the deadline (CLOCK_MONOTONIC ms).
 * An answer within app_answer_max becomes rp (APP_WHOLE); a larger one
 * streams to sink (APP_STREAMED or APP_CUT; rp->r.status is its status),
 * or, with no sink, rp is a 500.  A handler returning -1 before its
 * answer began makes rp a 500 with pp_error's reason. */
int	app_handle(const struct msg_request_view *v, int64_t deadline_ms,
	    struct reply *rp, const struct app_sink *sink);

/* app.c: the most body bytes an answer holds (the mailbox's room for
 * a reply's body): a larger one streams in pieces of this size.  Set by
 * the worker at start; 1 MiB until then. */
void	app_answer_max(size_t);
/* app.c, for a built-in handler whose answer comes over time (the CGI
 * runner): the body bytes pp_write holds and has not sent yet, and
 * app_flush, which sends them now as a piece (the first: with the head,
 * so with no body yet it sends the head alone), making the answer a
 * streamed one.  0, or -1 with errno as pp_write's. */
size_t	app_held(void);
int	app_flush(struct pp_response *);
/* app.c: free what app_handle keeps between requests (app_stop does). */
void	app_free(void);

/* hello.c: the built-in default application (hello, /echo, /debug/...). */
extern const struct pp_app app_default;
/* exec.c (exec.h): exec_app(cmdline) is the --exec adapter. */

#endif
