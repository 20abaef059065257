/*
 * hello_exec.c: a pipepool --exec program in C (see PROTOCOL.md): hello
 * for any GET, the body back for POST /echo.  No library but libc.
 *
 *	cc -O2 -o hello_exec hello_exec.c
 *	pipepool --exec /path/to/hello_exec
 */
#include <sys/uio.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { READY = 1, REQUEST, HEAD, BODY, END, ERROR };
#define FRAME_MAX	(1024 * 1024)	/* the most pipepool takes per frame */

struct hdr {
	uint32_t	type, len;
	uint64_t	id;
};

static int	rfd = 3, wfd = 4;

/* Read n bytes: 0, or -1 at the end of the pipe (or an error). */
static int
readn(void *p, size_t n)
{
	ssize_t	r;

	while (n > 0) {
		if ((r = read(rfd, p, n)) > 0) {
			p = (char *)p + r;
			n -= (size_t)r;
		} else if (r == 0 || errno != EINTR)
			return -1;
	}
	return 0;
}

static void
writev_all(struct iovec *iov, int n)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = writev(wfd, iov, n)) == -1 && errno == EINTR)
			continue;
		if (w == -1)
			exit(1);		/* pipepool is gone */
		for (; n > 0 && (size_t)w >= iov->iov_len; iov++, n--)
			w -= (ssize_t)iov->iov_len;
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
}

/* A param's value (not NUL-ended) and its length, or NULL; *body is set
 * to where the body starts. */
static const char *
param(const unsigned char *p, uint32_t len, const char *name, uint32_t *vl,
    const unsigned char **body)
{
	uint32_t	 n, i, l[2];
	const char	*found = NULL;
	size_t		 off = 8;

	memcpy(&n, p + 4, 4);
	for (i = 0; i < n && off + 8 <= len; i++) {
		memcpy(l, p + off, 8);
		off += 8;
		if (l[0] == strlen(name) && memcmp(p + off, name, l[0]) == 0) {
			found = (const char *)p + off + l[0];
			*vl = l[1];
		}
		off += (size_t)l[0] + l[1];
	}
	*body = p + (off < len ? off : len);
	return found;
}

/* HEAD (status 200, one Content-Type), BODY pieces and END. */
static void
answer(uint64_t id, const char *type, const unsigned char *b, size_t n)
{
	uint32_t	hh[4] = { 200, 1, 12, (uint32_t)strlen(type) };
	struct hdr	h = { HEAD, 16 + 12 + hh[3], id }, bh;
	struct hdr	e = { END, 0, id };
	struct iovec	iov[7] = { { &h, 16 }, { hh, 16 },
			    { "Content-Type", 12 }, { (char *)type, hh[3] } };
	size_t		piece;
	int		k = 4;

	do {
		piece = n < FRAME_MAX ? n : FRAME_MAX;
		bh = (struct hdr){ BODY, (uint32_t)piece, id };
		iov[k++] = (struct iovec){ &bh, 16 };
		iov[k++] = (struct iovec){ (void *)b, piece };
		b += piece;
		n -= piece;
		if (n == 0)
			iov[k++] = (struct iovec){ &e, 16 };
		writev_all(iov, k);
		k = 0;
	} while (n > 0);
}

int
main(void)
{
	static const char	 hello[] = "hello world from another process\n";
	const unsigned char	*body;
	unsigned char		*p = NULL;
	const char		*m, *path, *e;
	uint32_t		 version = 1, ml = 0, pl = 0;
	struct hdr		 h = { READY, 4, 0 };
	struct iovec		 iov[2] = { { &h, 16 }, { &version, 4 } };

	if ((e = getenv("PIPEPOOL_REQUEST_FD")) != NULL)
		rfd = atoi(e);
	if ((e = getenv("PIPEPOOL_REPLY_FD")) != NULL)
		wfd = atoi(e);
	writev_all(iov, 2);
	while (readn(&h, sizeof(h)) == 0) {	/* the end: time to exit */
		if (h.type != REQUEST || h.len < 8 ||
		    (p = realloc(p, h.len)) == NULL || readn(p, h.len) == -1)
			return 1;
		m = param(p, h.len, "REQUEST_METHOD", &ml, &body);
		path = param(p, h.len, "PIPEPOOL_PATH", &pl, &body);
		if (m && ml == 4 && memcmp(m, "POST", 4) == 0 && path &&
		    pl == 5 && memcmp(path, "/echo", 5) == 0)
			answer(h.id, "application/octet-stream", body,
			    (size_t)(p + h.len - body));
		else
			answer(h.id, "text/plain; charset=utf-8",
			    (const unsigned char *)hello, sizeof(hello) - 1);
	}
	return 0;
}
