/*
 * fuzz_msg.c: libFuzzer target for the message framing: arbitrary bytes
 * fed to msg_next() in arbitrary chunks, and every payload that comes out
 * as a MSG_REQUEST through msg_request_parse().  Nothing may read or write
 * out of bounds, and a parsed request's fields must lie in its payload
 * (its params block, when there is one, ending with a NUL).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msgbuf		 in;
	struct msg_hdr		 h;
	struct msg_request_view	 v;
	const unsigned char	*p;
	size_t			 off = 0, chunk;
	int			 r;

	if (msgbuf_init(&in, 32, 4096) == -1)
		return 0;
	while (off < size) {
		chunk = (data[off] % 64) + 1;
		off++;
		if (chunk > size - off)
			chunk = size - off;
		if (in.end + chunk > in.cap && in.end - in.start + chunk >
		    in.cap)
			break;
		if (in.end + chunk > in.cap) {
			memmove(in.buf, in.buf + in.start, in.end - in.start);
			in.end -= in.start;
			in.start = 0;
		}
		memcpy(in.buf + in.end, data + off, chunk);
		in.end += chunk;
		off += chunk;
		while ((r = msg_next(&in, &h, &p)) == 1) {
			if (h.type == MSG_REQUEST &&
			    msg_request_parse(p, h.len, &v) == 0) {
				if (v.body + v.body_len !=
				    (const char *)p + h.len ||
				    v.params + v.params_len != v.body ||
				    (v.params_len > 0 &&
				    v.params[v.params_len - 1] != '\0'))
					abort();
			}
		}
		if (r == -1)
			break;
	}
	msgbuf_free(&in);
	/* The payload parser on its own, on the raw input. */
	(void)msg_request_parse(data, size, &v);
	return 0;
}
