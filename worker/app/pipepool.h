/*
 * pipepool.h: the interface between pipepool and an application it runs
 * in its workers.  An application is a shared object (`--app FILE.so`)
 * that exports one descriptor, `pipepool_app` (PIPEPOOL_APP() below).
 *
 * Where things run: each worker process loads the file itself, after
 * fork, and calls init once, then handle for one request at a time, then
 * fini when it is retired (a reload, --max-requests).  A worker never
 * runs two requests at once, so an application needs no locks of its own
 * between requests; several workers run side by side, so what they share
 * (files, a database) needs the care any pre-fork server needs.
 *
 * What a handler may block on: anything (a database, a socket, a file),
 * for up to the request's deadline (pp_deadline_ms()).  Past it the client
 * has had a 504 and the worker is killed, so an application that can stop
 * early should answer before it.
 *
 * Threads: init, handle and fini run on the worker's main thread; the
 * pp_* functions may only be called from it, during handle.
 *
 * Lifetimes: a request's strings and body live until handle returns;
 * pp_header and pp_write copy what they are given.
 *
 * ABI: PIPEPOOL_ABI changes whenever this file changes incompatibly; the
 * loader refuses a descriptor with another number.
 */
#ifndef PIPEPOOL_H
#define PIPEPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PIPEPOOL_ABI	1

struct pp_request;	/* read-only, one request */
struct pp_response;	/* its answer */

struct pp_app {
	unsigned	 abi;		/* PIPEPOOL_ABI */
	const char	*name;		/* for the log and /status */
	/* Once per worker, after fork; worker is its 1-based number.
	 * Return 0, or -1 to have the worker exit (at start: pipepool's
	 * start fails; on reload: the old workers keep serving). */
	int		(*init)(unsigned worker);
	/* One request.  Return 0 when the answer is complete (a handler
	 * that set nothing answers 200 with an empty body), or -1: the
	 * client gets 500 with pp_error()'s reason if nothing was sent
	 * yet, else the connection is cut short. */
	int		(*handle)(const struct pp_request *,
			    struct pp_response *);
	void		(*fini)(void);	/* at retirement; may be NULL */
};

/* Define the descriptor: PIPEPOOL_APP("hello", init, handle, fini). */
#define PIPEPOOL_APP(name, init, handle, fini)				\
	const struct pp_app pipepool_app = { PIPEPOOL_ABI, (name),	\
	    (init), (handle), (fini) }

/* The request.  Strings are NUL-terminated; lengths exclude the NUL. */
const char	*pp_method(const struct pp_request *);
const char	*pp_path(const struct pp_request *);
const char	*pp_query(const struct pp_request *);	/* "" if none */
/* A FastCGI param by name, exactly as the web server sent it
 * (REQUEST_METHOD, QUERY_STRING, HTTP_HOST, REMOTE_ADDR...), or NULL.
 * pp_path is the routed path (DOCUMENT_URI, or SCRIPT_NAME + PATH_INFO). */
const char	*pp_param(const struct pp_request *, const char *name);
/* Iterate over every param: *it starts at 0; returns 0 at the end. */
int		 pp_param_next(const struct pp_request *, size_t *it,
		    const char **name, const char **value);
/* The body (up to --max-body) and its length; never NULL. */
const void	*pp_body(const struct pp_request *, size_t *len);
/* Milliseconds left before the request's deadline (--timeout from its
 * arrival); 0 or less: it has passed. */
int64_t		 pp_deadline_ms(const struct pp_request *);

/* The answer.  Status and headers first (before the first pp_write);
 * each returns 0, or -1 with errno (EINVAL: bad value or too late,
 * ENOSPC: headers too long, EPIPE: the client is gone). */
int		 pp_status(struct pp_response *, unsigned status);
int		 pp_header(struct pp_response *, const char *name,
		    const char *value);
/* Body bytes; may be called many times.  An answer larger than a worker's
 * buffer streams to the client while it is written. */
int		 pp_write(struct pp_response *, const void *, size_t);
/* The reason a 500 gives when handle returns -1. */
void		 pp_error(struct pp_response *, const char *why);

#ifdef __cplusplus
}
#endif

#endif
