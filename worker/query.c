/*
 * query.c: the small text parsers pipepool owns: percent-decoding (with
 * '+' left as is in paths, space in queries is the caller's choice) and
 * query-string lookup.  Every function is bounded by its length arguments
 * and never reads or writes past them; a fuzz target drives them.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "query.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode %XX escapes of in[0..inlen) into out (room outcap).  -1 if an
 * escape is malformed or the result does not fit; out is not terminated.
 */
int
pct_decode(const char *in, size_t inlen, char *out, size_t outcap,
    size_t *outlen)
{
	size_t	i, n = 0;
	int	hi, lo;

	for (i = 0; i < inlen; i++) {
		char c = in[i];

		if (c == '%') {
			if (inlen - i < 3)
				return -1;
			hi = hexval((unsigned char)in[i + 1]);
			lo = hexval((unsigned char)in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (n >= outcap)
			return -1;
		out[n++] = c;
	}
	*outlen = n;
	return 0;
}

/*
 * Find name in a query string (a=1&b=2) and decode its value ('+' is a
 * space) into val.  Returns 1 if found, 0 if absent, -1 if its value is
 * malformed or longer than valcap.  A name without '=' has an empty value.
 */
int
query_param(const char *q, size_t qlen, const char *name, char *val,
    size_t valcap, size_t *vallen)
{
	size_t	nlen = strlen(name), i = 0, end, eq, k;

	while (i <= qlen) {
		for (end = i; end < qlen && q[end] != '&'; end++)
			;
		for (eq = i; eq < end && q[eq] != '='; eq++)
			;
		if (eq - i == nlen && memcmp(q + i, name, nlen) == 0) {
			size_t vs = eq < end ? eq + 1 : end;

			if (pct_decode(q + vs, end - vs, val, valcap,
			    vallen) == -1)
				return -1;
			for (k = 0; k < *vallen; k++)
				if (val[k] == '+')
					val[k] = ' ';
			return 1;
		}
		i = end + 1;
	}
	return 0;
}

/* Strict signed decimal: optional '-' or '+', 1..19 digits, no spaces. */
int
parse_i64(const char *s, size_t len, int64_t *v)
{
	size_t		i = 0;
	int		neg = 0;
	uint64_t	n = 0, lim;

	if (len > 0 && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == len)
		return -1;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (n > (lim - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (neg)
		*v = n == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n;
	else
		*v = (int64_t)n;
	return 0;
}
