/* request.h: turning CGI/FastCGI params into the fields a worker needs. */
#ifndef PP_REQUEST_H
#define PP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct reqinfo {
	const char	*method;
	size_t		 method_len;
	char		 path[MSG_PATH_MAX + 1];
	size_t		 path_len;
	const char	*query;
	size_t		 query_len;
	uint64_t	 content_length;
};

typedef const char *(*param_fn)(void *ctx, const char *name);

unsigned	request_parse(struct reqinfo *, param_fn, void *ctx,
		    const char **why);
int		front_route_store(const struct reqinfo *, int debug);

#endif
