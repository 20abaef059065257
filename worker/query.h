/* query.h: percent-decoding and query-string lookup (bounded, no malloc). */
#ifndef PP_QUERY_H
#define PP_QUERY_H

#include <stddef.h>
#include <stdint.h>

int	pct_decode(const char *in, size_t inlen, char *out, size_t outcap,
	    size_t *outlen);
int	query_param(const char *q, size_t qlen, const char *name, char *val,
	    size_t valcap, size_t *vallen);
int	parse_i64(const char *s, size_t len, int64_t *v);

#endif
