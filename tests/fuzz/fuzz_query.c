/*
 * fuzz_query.c: libFuzzer target for the text parsers: percent-decoding,
 * query-string lookup and strict integers.  The first byte picks the room
 * given to outputs, so too-small buffers are exercised too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		*out;
	size_t		 room, n;
	int64_t		 v;
	const char	*s;

	if (size < 1)
		return 0;
	room = data[0];
	s = (const char *)data + 1;
	size--;
	if ((out = malloc(room + 1)) == NULL)
		return 0;
	if (pct_decode(s, size, out, room, &n) == 0 && n > room)
		abort();
	if (query_param(s, size, "ms", out, room, &n) == 1 && n > room)
		abort();
	(void)query_param(s, size, "", out, room, &n);
	/* Whatever parse_i64 accepts, strtoll reads the same. */
	if (parse_i64(s, size, &v) == 0) {
		char	buf[64];

		if (size >= sizeof(buf) && s[0] != '-' && s[0] != '+' &&
		    s[0] != '0')
			abort();
		if (size < sizeof(buf)) {
			memcpy(buf, s, size);
			buf[size] = '\0';
			if (strtoll(buf, NULL, 10) != v)
				abort();
		}
	}
	free(out);
	return 0;
}
