/*
 * fuzz_params.c: libFuzzer target for request marshalling: the input is
 * split into NAME=VALUE params (NUL-separated) as a FastCGI server might
 * send them, and request_parse() must turn any of them into a bounded
 * request or a 400/414, with a known length only from digits.  The same
 * bytes, as FastCGI records, go to request_peek(): it must not read past
 * them, and its verdict on any prefix that is not "more" must be its
 * verdict on the whole (bytes arriving later cannot change it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct env {
	char	*names[16];
	char	*values[16];
	int	 n;
};

static const char *
get(void *ctx, const char *name)
{
	struct env	*e = ctx;
	int		 i;

	for (i = 0; i < e->n; i++)
		if (strcmp(e->names[i], name) == 0)
			return e->values[i];
	return NULL;
}

static void
peek_check(const uint8_t *data, size_t size)
{
	const char	*why;
	unsigned char	*copy;
	int		 whole, part;

	/* An exact copy: ASan sees a read past the input. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return;
	memcpy(copy, data, size);
	whole = request_peek(copy, size, &why);
	part = request_peek(copy, size / 2, &why);
	if (whole < REQ_PEEK_OK || whole > REQ_PEEK_BAD)
		abort();
	if (part != REQ_PEEK_MORE && part != whole)
		abort();
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char	*known[] = { "REQUEST_METHOD", "DOCUMENT_URI",
	    "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_LENGTH" };
	struct reqinfo		*ri;
	struct env		 e;
	const char		*why;
	char			*copy, *p, *end, *eq;
	unsigned		 st;

	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	memset(&e, 0, sizeof(e));
	for (p = copy, end = copy + size; p < end && e.n < 16;
	    p += strlen(p) + 1) {
		eq = strchr(p, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		/* A short tag picks one of the names that matter. */
		e.names[e.n] = (strlen(p) == 1) ?
		    (char *)known[(unsigned char)*p % 6] : p;
		e.values[e.n++] = eq + 1;
	}
	if ((ri = calloc(1, sizeof(*ri))) != NULL) {
		st = request_parse(ri, get, &e, &why);
		if (st == 0 && (ri->path_len > MSG_PATH_MAX ||
		    ri->query_len > MSG_QUERY_MAX ||
		    ri->method_len > MSG_METHOD_MAX))
			abort();
		if (st != 0 && st != 400 && st != 414 && st != 503)
			abort();
		if (st == 0 && !ri->length_known && ri->content_length != 0)
			abort();
		request_free(ri);
		free(ri);
	}
	peek_check(data, size);
	free(copy);
	return 0;
}
