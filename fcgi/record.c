/*
 * record.c: an answer (a CGI head, then its body) written on a FastCGI
 * connection as request fcgi_id's FCGI_STDOUT records (each at most
 * RECORD_CONTENT_MAX bytes), an empty one to end the stream, and
 * FCGI_END_REQUEST; or a streamed answer, in several calls, the last of
 * which ends it.  No padding (it is optional).  Nothing is copied: the
 * records' headers and the caller's bytes go out together, REC_BATCH
 * records to a writev(2), so a small answer is one system call.
 */
#include <sys/uio.h>

#include <fastcgi.h>
#include <stdint.h>
#include <string.h>

#include "msg.h"
#include "record.h"

#define REC_BATCH	32	/* records per writev */

/* What is left to write of the two parts, head and body. */
struct cursor {
	const unsigned char	*part[2];
	size_t			 len[2];
	int			 p;	/* the part at hand; 2: none left */
	size_t			 off;	/* into part[p] */
};

static void
header(FCGI_Header *hd, unsigned type, unsigned id, size_t len)
{
	memset(hd, 0, sizeof(*hd));
	hd->version = FCGI_VERSION_1;
	hd->type = (unsigned char)type;
	hd->requestIdB1 = (unsigned char)(id >> 8);
	hd->requestIdB0 = (unsigned char)id;
	hd->contentLengthB1 = (unsigned char)(len >> 8);
	hd->contentLengthB0 = (unsigned char)len;
}

/* Past the parts that are written whole (or empty). */
static void
skip_done(struct cursor *c)
{
	while (c->p < 2 && c->off == c->len[c->p]) {
		c->p++;
		c->off = 0;
	}
}

/*
 * The next FCGI_STDOUT record, its header in hd, as iovecs at iov (three
 * at most: the header and a piece of each part, as a record may span
 * head and body).  Returns the iovecs used.
 */
static int
next_record(struct cursor *c, FCGI_Header *hd, unsigned id,
    struct iovec *iov)
{
	size_t	room = RECORD_CONTENT_MAX, n;
	int	ni = 1;

	iov[0].iov_base = hd;
	iov[0].iov_len = sizeof(*hd);
	while (c->p < 2 && room > 0) {
		n = c->len[c->p] - c->off;
		if (n > room)
			n = room;
		iov[ni].iov_base = (void *)(uintptr_t)(c->part[c->p] + c->off);
		iov[ni++].iov_len = n;
		room -= n;
		c->off += n;
		skip_done(c);
	}
	header(hd, FCGI_STDOUT, id, RECORD_CONTENT_MAX - room);
	return ni;
}

/*
 * Write an answer (CGI head, then body; either may be empty) on fd as
 * request fcgi_id's FCGI_STDOUT, then, if last, end the request (a
 * streamed answer comes in several calls, the head in the first).  0
 * when all is written; -1 if the connection failed (nginx is gone or
 * reset it; nothing to answer).
 */
int
record_answer(int fd, unsigned fcgi_id, const void *head, size_t hlen,
    const void *body, size_t blen, int last)
{
	FCGI_Header		 hd[REC_BATCH], tail_out;
	FCGI_EndRequestRecord	 end;
	struct iovec		 iov[3 * REC_BATCH + 2];
	struct cursor		 c = { { head, body }, { hlen, blen }, 0, 0 };
	int			 ni, nr;

	skip_done(&c);
	do {
		ni = 0;
		for (nr = 0; nr < REC_BATCH && c.p < 2; nr++)
			ni += next_record(&c, &hd[nr], fcgi_id, iov + ni);
		if (c.p == 2 && last) {
			header(&tail_out, FCGI_STDOUT, fcgi_id, 0);
			header(&end.header, FCGI_END_REQUEST, fcgi_id,
			    sizeof(end.body));
			memset(&end.body, 0, sizeof(end.body));
			end.body.protocolStatus = FCGI_REQUEST_COMPLETE;
			iov[ni].iov_base = &tail_out;
			iov[ni++].iov_len = sizeof(tail_out);
			iov[ni].iov_base = &end;
			iov[ni++].iov_len = sizeof(end);
		}
		if (ni > 0 && msg_writev_all(fd, iov, ni) == -1)
			return -1;
	} while (c.p < 2);
	return 0;
}
