/*
 * msg.c: framing for every message between processes (see msg.h).
 * Pipes carry a byte stream, so a reader buffers (struct msgbuf) and checks
 * each header before it makes room for the payload; a bad header is the
 * peer's fault (EPROTO), never ours.  The master/front control channel is a
 * SOCK_SEQPACKET socket: one message per packet, fds passed with
 * SCM_RIGHTS.
 */
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "proc.h"

/* Payload bounds per type; SIZE_MAX max means "up to the reader's limit". */
#define EXACTLY(name, type)	{ name, sizeof(type), sizeof(type) }
static const struct {
	const char	*name;
	size_t		 min;
	size_t		 max;
} msg_types[MSG_TYPE_MAX] = {
	[MSG_REQUEST] = { "request", sizeof(struct msg_request), SIZE_MAX },
	[MSG_REPLY] = { "reply", sizeof(struct msg_reply), SIZE_MAX },
	[MSG_WORKER_UP] = EXACTLY("worker-up", struct msg_worker),
	[MSG_WORKER_GONE] = EXACTLY("worker-gone", struct msg_worker),
	[MSG_RETIRE] = EXACTLY("retire", struct msg_worker),
	[MSG_KILL] = EXACTLY("kill", struct msg_worker),
	[MSG_STOP] = { "stop", 0, 0 },
	[MSG_SETTINGS] = EXACTLY("settings", struct msg_settings),
	[MSG_CONN_ASK] = EXACTLY("conn-ask", struct msg_conn),
	[MSG_CONN] = EXACTLY("conn", struct msg_conn),
	[MSG_REPLIED] = EXACTLY("replied", struct msg_conn),
	[MSG_STORE_STATE] = EXACTLY("store-state", struct msg_store_state),
};

const char *
msg_typename(uint32_t type)
{
	if (type == 0 || type >= MSG_TYPE_MAX)
		return "unknown";
	return msg_types[type].name;
}

/* 0 if the header is acceptable to a reader allowing max_payload bytes. */
int
msg_check(const struct msg_hdr *h, size_t max_payload)
{
	size_t	max;

	if (h->type == 0 || h->type >= MSG_TYPE_MAX)
		goto bad;
	max = msg_types[h->type].max;
	if (max == SIZE_MAX)
		max = max_payload;
	if (max > MSG_PAYLOAD_HARD_MAX)
		max = MSG_PAYLOAD_HARD_MAX;
	if (h->len < msg_types[h->type].min || h->len > max)
		goto bad;
	return 0;
bad:
	errno = EPROTO;
	return -1;
}

int
msgbuf_init(struct msgbuf *in, size_t initial, size_t max_payload)
{
	memset(in, 0, sizeof(*in));
	if (initial < sizeof(struct msg_hdr) + 64)
		initial = sizeof(struct msg_hdr) + 64;
	if ((in->buf = malloc(initial)) == NULL)
		return -1;
	in->cap = initial;
	in->max_payload = max_payload;
	return 0;
}

void
msgbuf_free(struct msgbuf *in)
{
	free(in->buf);
	memset(in, 0, sizeof(*in));
}

/* Make room for need bytes from in->start on; moves data to the front. */
static int
msgbuf_reserve(struct msgbuf *in, size_t need)
{
	unsigned char	*nb;
	size_t		 ncap;

	if (in->start > 0 && in->start + need > in->cap) {
		memmove(in->buf, in->buf + in->start, in->end - in->start);
		in->end -= in->start;
		in->start = 0;
	}
	if (need <= in->cap)
		return 0;
	ncap = in->cap;
	while (ncap < need)
		ncap *= 2;
	if ((nb = realloc(in->buf, ncap)) == NULL)
		return -1;
	in->buf = nb;
	in->cap = ncap;
	return 0;
}

/*
 * Take one whole message from what is buffered.  Returns 1 and points
 * *payload into the buffer (valid until the next msg_fill), 0 if more bytes
 * are needed, -1 with errno EPROTO on a bad header.
 */
int
msg_next(struct msgbuf *in, struct msg_hdr *h, const unsigned char **payload)
{
	size_t	avail = in->end - in->start;

	if (avail < sizeof(*h))
		return 0;
	memcpy(h, in->buf + in->start, sizeof(*h));
	if (msg_check(h, in->max_payload) == -1)
		return -1;
	if (avail < sizeof(*h) + h->len) {
		if (msgbuf_reserve(in, sizeof(*h) + h->len) == -1)
			return -1;
		return 0;
	}
	*payload = in->buf + in->start + sizeof(*h);
	in->start += sizeof(*h) + h->len;
	if (in->start == in->end)
		in->start = in->end = 0;
	return 1;
}

/* One read(2) into the buffer.  Returns bytes read, 0 at EOF, -1 on error. */
ssize_t
msg_fill(int fd, struct msgbuf *in)
{
	ssize_t	n;

	if (in->end == in->cap && msgbuf_reserve(in,
	    in->end - in->start + 4096) == -1)
		return -1;
	do {
		n = read(fd, in->buf + in->end, in->cap - in->end);
	} while (n == -1 && errno == EINTR);
	if (n > 0)
		in->end += (size_t)n;
	return n;
}

/*
 * Read one whole message, waiting at most timeout_ms in all (-1: no
 * limit).  Returns 1, 0 at EOF (also EOF in the middle of a message),
 * -1 with errno ETIMEDOUT, EPROTO or a read error.
 */
int
msg_read(int fd, struct msgbuf *in, struct msg_hdr *h,
    const unsigned char **payload, int timeout_ms)
{
	struct pollfd	pfd;
	int64_t		deadline = 0, rem;
	int		r, left = -1;
	ssize_t		n;

	if (timeout_ms >= 0)
		deadline = proc_now_ms() + timeout_ms;
	for (;;) {
		if ((r = msg_next(in, h, payload)) != 0)
			return r;
		if (timeout_ms >= 0) {
			rem = deadline - proc_now_ms();
			left = rem > 0 ? (int)rem : 0;	/* rem <= timeout_ms */
			pfd.fd = fd;
			pfd.events = POLLIN;
			r = poll(&pfd, 1, left);
			if (r == -1 && errno == EINTR)
				continue;
			if (r == -1)
				return -1;
			if (r == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
		}
		if ((n = msg_fill(fd, in)) == 0)
			return 0;
		if (n == -1)
			return -1;
	}
}

/* Write every byte of iov, across short writes and EINTR. */
int
msg_writev_all(int fd, struct iovec *iov, int iovcnt)
{
	ssize_t	n;

	while (iovcnt > 0) {
		if (iov->iov_len == 0) {
			iov++;
			iovcnt--;
			continue;
		}
		n = writev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int
msg_write_all(int fd, const void *buf, size_t len)
{
	struct iovec	iov = { (void *)(uintptr_t)buf, len };

	return msg_writev_all(fd, &iov, 1);
}

/*
 * Lay one message out in memory at d (room: cap bytes): header, then the
 * iovecs as payload.  A part already in place (iov_base == its spot) is
 * not copied; others move with memmove, so they may overlap d.  Returns
 * the bytes used, or 0 (EMSGSIZE) when it does not fit.
 */
size_t
msg_frame(unsigned char *d, size_t cap, uint32_t type, uint64_t id,
    const struct iovec *iov, int iovcnt)
{
	struct msg_hdr	h;
	size_t		len = 0, off = sizeof(h);
	int		i;

	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (cap < sizeof(h) || len > cap - sizeof(h) ||
	    len > MSG_PAYLOAD_HARD_MAX) {
		errno = EMSGSIZE;
		return 0;
	}
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > 0 && iov[i].iov_base != d + off)
			memmove(d + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	h = msg_hdr_make(type, len, id);
	memcpy(d, &h, sizeof(h));
	return off;
}

/*
 * The message of the given type laid out at d (room: cap bytes), as
 * msg_frame wrote it.  The header is copied out once (the memory may be
 * shared with its writer) into *h and checked like any reader checks it.
 * Returns the payload, or NULL with EPROTO.
 */
const unsigned char *
msg_unframe(const unsigned char *d, size_t cap, uint32_t type,
    struct msg_hdr *h)
{
	if (cap < sizeof(*h)) {
		errno = EPROTO;
		return NULL;
	}
	memcpy(h, d, sizeof(*h));
	if (msg_check(h, cap - sizeof(*h)) == -1)
		return NULL;
	if (h->type != type) {
		errno = EPROTO;
		return NULL;
	}
	return d + sizeof(*h);
}

/*
 * Write one message: header then the iovecs as payload, in one writev
 * where the kernel takes it whole.  At most 8 payload iovecs.
 */
int
msg_write(int fd, uint32_t type, uint64_t id, const struct iovec *iov,
    int iovcnt)
{
	struct msg_hdr	h;
	struct iovec	v[9];
	size_t		len = 0;
	int		i;

	if (iovcnt < 0 || iovcnt > 8) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < iovcnt; i++) {
		len += iov[i].iov_len;
		v[i + 1] = iov[i];
	}
	if (len > MSG_PAYLOAD_HARD_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	h = msg_hdr_make(type, len, id);
	v[0].iov_base = &h;
	v[0].iov_len = sizeof(h);
	return msg_writev_all(fd, v, iovcnt + 1);
}

/*
 * Fill r and iov[0..3] (method, path, query, and r itself first) for a
 * MSG_REQUEST with no params, whose body the caller appends as iov[4]
 * (or its params as iov[4], msg_params_put, and its body as iov[5]).
 * Returns the payload length without params or body.  Callers bound the
 * lengths first.
 */
size_t
msg_request_pack(struct msg_request *r, const char *method,
    size_t mlen, const char *path, size_t plen, const char *query,
    size_t qlen, size_t body_len, struct iovec *iov)
{
	memset(r, 0, sizeof(*r));
	r->method_len = (uint16_t)mlen;
	r->path_len = (uint16_t)plen;
	r->query_len = (uint16_t)qlen;
	r->body_len = (uint32_t)body_len;
	iov[0].iov_base = r;
	iov[0].iov_len = sizeof(*r);
	iov[1].iov_base = (void *)(uintptr_t)method;
	iov[1].iov_len = mlen;
	iov[2].iov_base = (void *)(uintptr_t)path;
	iov[2].iov_len = plen;
	iov[3].iov_base = (void *)(uintptr_t)query;
	iov[3].iov_len = qlen;
	return sizeof(*r) + mlen + plen + qlen;
}

/*
 * The bytes envp's strings (NULL-ended, as libfcgi's FCGX_Request.envp)
 * take with their NULs: the params block of a MSG_REQUEST.
 */
size_t
msg_params_size(char *const *envp)
{
	size_t	n = 0;

	for (; envp != NULL && *envp != NULL; envp++)
		n += strlen(*envp) + 1;
	return n;
}

/*
 * Copy envp's strings (len bytes: msg_params_size) to dst, where they go
 * in the message, and make r and iov (the one after the query's, as
 * msg_request_pack filled them) say so.  The caller bounds len first.
 */
void
msg_params_put(struct msg_request *r, char *const *envp, size_t len,
    unsigned char *dst, struct iovec *iov)
{
	char	*d = (char *)dst;

	for (; len > 0 && *envp != NULL; envp++)
		d = stpcpy(d, *envp) + 1;
	r->params_len = (uint32_t)len;
	iov->iov_base = dst;
	iov->iov_len = len;
}

/* Check a MSG_REQUEST payload and point v into it.  -1/EPROTO if bad. */
int
msg_request_parse(const unsigned char *p, size_t len,
    struct msg_request_view *v)
{
	struct msg_request	r;
	size_t			off;

	if (len < sizeof(r))
		goto bad;
	memcpy(&r, p, sizeof(r));
	if (r.method_len == 0 || r.method_len > MSG_METHOD_MAX ||
	    r.path_len > MSG_PATH_MAX || r.query_len > MSG_QUERY_MAX ||
	    r.params_len > MSG_PARAMS_MAX)
		goto bad;
	if ((size_t)r.method_len + r.path_len + r.query_len + r.params_len +
	    r.body_len != len - sizeof(r))
		goto bad;
	off = sizeof(r);
	v->flags = r.flags;
	v->method = (const char *)p + off;
	v->method_len = r.method_len;
	off += r.method_len;
	v->path = (const char *)p + off;
	v->path_len = r.path_len;
	off += r.path_len;
	v->query = (const char *)p + off;
	v->query_len = r.query_len;
	off += r.query_len;
	v->params = (const char *)p + off;
	v->params_len = r.params_len;
	if (r.params_len > 0 && p[off + r.params_len - 1] != '\0')
		goto bad;
	off += r.params_len;
	v->body = (const char *)p + off;
	v->body_len = r.body_len;
	return 0;
bad:
	errno = EPROTO;
	return -1;
}

int
msg_view_path_is(const struct msg_request_view *v, const char *path)
{
	size_t	n = strlen(path);

	return v->path_len == n && memcmp(v->path, path, n) == 0;
}

int
msg_view_method_is(const struct msg_request_view *v, const char *m)
{
	size_t	n = strlen(m);

	return v->method_len == n && memcmp(v->method, m, n) == 0;
}
