/*
 * fuzz_dispatch.c: libFuzzer target for the front's side of the dispatch
 * area against a hostile worker.  The input is a program: each step either
 * scribbles bytes anywhere in the area's shared words (the header and
 * every mailbox's words, as a worker can) or in a mailbox's data, or calls
 * one of the front's functions, which must stay inside the mapping and
 * return (no wait here blocks: every deadline is now).  A reply laid out
 * in a scribbled mailbox goes through msg_unframe, whose payload must lie
 * inside the mailbox.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "msg.h"
#include "proc.h"

#define NMBOX		8
#define NBUF		4
#define MAX_BODY	4096

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	mapped;

static uint32_t
take32(const uint8_t *d, size_t size, size_t *off)
{
	uint32_t	v = 0;
	int		i;

	for (i = 0; i < 4; i++)
		v = v << 8 | (*off < size ? d[(*off)++] : 0);
	return v;
}

static void
inside(const unsigned char *p, size_t n)
{
	size_t			 len;
	const unsigned char	*base = dispatch_meta(&len);

	if (p < base || p + n > base + dispatch_size())
		abort();
}

static void
step(unsigned op, uint32_t a, uint32_t b)
{
	const unsigned char	*p;
	unsigned char		*meta;
	struct msg_hdr		 h;
	size_t			 len;
	unsigned		 st;
	int64_t			 when;
	int			 buf;

	switch (op % 12) {
	case 0:		/* a worker writes a byte of the shared words */
		meta = dispatch_meta(&len);
		meta[a % len] = (unsigned char)b;
		break;
	case 1:		/* ...or a word */
		meta = dispatch_meta(&len);
		if (len >= 4)
			memcpy(meta + (a % (len - 3)), &b, 4);
		break;
	case 2:		/* ...or a mailbox's data */
		memcpy(dispatch_data(a % NMBOX) + (b % (dispatch_capacity() -
		    4)), &b, 4);
		break;
	case 3:
		(void)dispatch_queued();
		break;
	case 4:
		(void)dispatch_put(a % NMBOX, b % 4, (int)(b & 1));
		break;
	case 5:
		(void)dispatch_cancel(a % NMBOX);
		break;
	case 6:
		dispatch_gone(b);
		break;
	case 7:
		dispatch_trim(proc_now_ms() + (int64_t)a);
		break;
	case 8:
		if ((buf = dispatch_buf_get()) >= 0) {
			inside(dispatch_buf((unsigned)buf), dispatch_capacity());
			dispatch_buf_put((unsigned)buf, b, proc_now_ms());
		}
		break;
	case 9:
		(void)dispatch_body(a % NMBOX, b, (int)(a & 1), b);
		dispatch_sent_info(a % NMBOX, &st, &when);
		break;
	case 10:
		p = msg_unframe(dispatch_data(a % NMBOX), dispatch_capacity(),
		    MSG_REPLY, &h);
		if (p != NULL)
			inside(p, h.len);
		(void)dispatch_wait(a % NMBOX, b, 0);
		break;
	default:
		dispatch_free(a % NMBOX, b);
		dispatch_retire(b);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		off = 0, len;
	unsigned	i, op;
	uint32_t	a, b;

	if (!mapped) {
		if (dispatch_map(NMBOX, NBUF, MAX_BODY) == -1)
			abort();
		mapped = 1;
	}
	while (off < size) {
		op = data[off++];
		a = take32(data, size, &off);
		b = take32(data, size, &off);
		step(op, a, b);
	}
	/* The next input starts from a clean area. */
	memset(dispatch_meta(&len), 0, len);
	for (i = 0; i < NBUF; i++)
		dispatch_buf_put(i, 0, 0);
	for (i = 0; i < NMBOX; i++)
		dispatch_free(i, 0);
	return 0;
}
