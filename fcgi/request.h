/* request.h: turning CGI/FastCGI params into the fields a worker needs. */
#ifndef PP_REQUEST_H
#define PP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct reqinfo {
	const char	*method;
	size_t		 method_len;
	const char	*path;		/* NUL-terminated, in the params (as
					 * method and query are), or joined */
	size_t		 path_len;
	const char	*query;
	size_t		 query_len;
	uint64_t	 content_length;	/* when known */
	int		 length_known;	/* 0: read the body to its end */
	size_t		 params_len;	/* its params block (msg.h), set by
					 * the relay */
	/* SCRIPT_NAME + PATH_INFO, for a server that sends both and no
	 * DOCUMENT_URI: MSG_PATH_MAX + 1 bytes, malloc'd on first need and
	 * kept for the next request (request_free).  Not inline: a front
	 * connection keeps its reqinfo for life, and nginx never needs it. */
	char		*joined;
};

/*
 * The most bytes a request may take on its connection up to the end of
 * its params (FCGI_BEGIN_REQUEST and FCGI_PARAMS records, with their
 * headers and padding), and so the longest name or value it may declare.
 * nginx's largest default request head (32 KiB of headers) fits; the
 * kernel's default receive buffers hold it, so it can be peeked at whole
 * (past the first 2 KiB, which the front reads: fcgi/conn.c).
 */
#define REQ_PARAMS_MAX	MSG_PARAMS_MAX

/* request_peek's verdicts. */
enum { REQ_PEEK_OK, REQ_PEEK_MORE, REQ_PEEK_BAD };

typedef const char *(*param_fn)(void *ctx, const char *name);

/* The reqinfo is zeroed before its first request_parse; its fields then
 * point into what get() returns, and live as long as that does. */
unsigned	request_parse(struct reqinfo *, param_fn, void *ctx,
		    const char **why);
void		request_free(struct reqinfo *);
int		request_peek(const unsigned char *, size_t, const char **why);
int		front_route_store(const struct reqinfo *, int debug);
/* "METHOD PATH[?QUERY]" into buf (room n, n > 0), cut to fit. */
void		request_line(const struct reqinfo *, char *buf, size_t n);

#endif
