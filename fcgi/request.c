/*
 * request.c: request marshalling.  The route path is DOCUMENT_URI as nginx
 * sends it, or SCRIPT_NAME + PATH_INFO from servers that send no
 * DOCUMENT_URI; the query string never takes part in routing.  Returns an
 * HTTP status (400, 414) with a one-line reason for what cannot be sent to
 * a worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

unsigned
request_parse(struct reqinfo *ri, param_fn get, void *ctx, const char **why)
{
	const char	*s, *pi, *cl;
	size_t		 n, m;
	char		*end;
	unsigned long long v;

	if ((s = get(ctx, "REQUEST_METHOD")) == NULL || *s == '\0') {
		*why = "no REQUEST_METHOD";
		return 400;
	}
	ri->method = s;
	ri->method_len = strlen(s);
	if (ri->method_len > MSG_METHOD_MAX) {
		*why = "request method too long";
		return 400;
	}
	if ((s = get(ctx, "DOCUMENT_URI")) != NULL && *s != '\0') {
		n = strlen(s);
		if (n > MSG_PATH_MAX)
			goto long_uri;
		memcpy(ri->path, s, n);
	} else {
		s = get(ctx, "SCRIPT_NAME");
		pi = get(ctx, "PATH_INFO");
		n = s ? strlen(s) : 0;
		m = pi ? strlen(pi) : 0;
		if (n + m > MSG_PATH_MAX)
			goto long_uri;
		if (n)
			memcpy(ri->path, s, n);
		if (m)
			memcpy(ri->path + n, pi, m);
		n += m;
		if (n == 0)
			ri->path[n++] = '/';
	}
	ri->path[n] = '\0';
	ri->path_len = n;
	if ((s = get(ctx, "QUERY_STRING")) == NULL)
		s = "";
	ri->query = s;
	ri->query_len = strlen(s);
	if (ri->query_len > MSG_QUERY_MAX)
		goto long_uri;
	ri->content_length = 0;
	if ((cl = get(ctx, "CONTENT_LENGTH")) != NULL && *cl != '\0') {
		errno = 0;
		v = strtoull(cl, &end, 10);
		if (*cl < '0' || *cl > '9' || *end != '\0' || errno != 0) {
			*why = "CONTENT_LENGTH is not a number";
			return 400;
		}
		ri->content_length = v;
	}
	return 0;
long_uri:
	*why = "request path or query string too long";
	return 414;
}

/*
 * /kv and /kv/... go to the store (and /debug/store-crash when debug
 * routes are on); everything else to hello workers.
 */
int
front_route_store(const struct reqinfo *ri, int debug)
{
	if (debug && strcmp(ri->path, "/debug/store-crash") == 0)
		return 1;
	return (ri->path_len == 3 || (ri->path_len > 3 && ri->path[3] == '/'))
	    && memcmp(ri->path, "/kv", 3) == 0;
}
