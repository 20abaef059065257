/*
 * test_msg.c: the framing module.  Whole, split and back-to-back messages
 * over a real pipe; malformed headers (short, too long, unknown type) and
 * request payloads refused; a request's params block packed, parsed and
 * bounded; fds passed over a seqpacket socket.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "check.h"
#include "msg.h"

static void
raw_hdr(int fd, uint32_t type, uint32_t len, uint64_t id)
{
	struct msg_hdr	h = { type, len, id };

	CHECK(msg_write_all(fd, &h, sizeof(h)) == 0);
}

static void
test_roundtrip(void)
{
	struct msgbuf		 in;
	struct msg_hdr		 h;
	struct msg_request	 mr;
	struct msg_request_view	 v;
	struct iovec		 iov[5];
	const unsigned char	*p;
	char			 body[3000];
	int			 fds[2], i;

	CHECK(pipe(fds) == 0);
	CHECK(msgbuf_init(&in, 64, 1 << 20) == 0);
	for (i = 0; i < (int)sizeof(body); i++)
		body[i] = (char)(i % 251);
	body[7] = '\0';
	/* Two requests back to back: both come out whole, in order. */
	for (i = 0; i < 2; i++) {
		msg_request_pack(&mr, "POST", 4, "/echo", 5, "a=1", 3,
		    sizeof(body), iov);
		iov[4].iov_base = body;
		iov[4].iov_len = sizeof(body);
		CHECK(msg_write(fds[1], MSG_REQUEST, 100 + (uint64_t)i, iov,
		    5) == 0);
	}
	for (i = 0; i < 2; i++) {
		CHECK(msg_read(fds[0], &in, &h, &p, 1000) == 1);
		CHECK(h.type == MSG_REQUEST);
		CHECK(h.id == 100 + (uint64_t)i);
		CHECK(msg_request_parse(p, h.len, &v) == 0);
		CHECK(v.method_len == 4 && memcmp(v.method, "POST", 4) == 0);
		CHECK(v.path_len == 5 && memcmp(v.path, "/echo", 5) == 0);
		CHECK(v.query_len == 3 && memcmp(v.query, "a=1", 3) == 0);
		CHECK(v.body_len == sizeof(body) &&
		    memcmp(v.body, body, sizeof(body)) == 0);
	}
	/* Nothing more: a read with a timeout times out. */
	CHECK(msg_read(fds[0], &in, &h, &p, 20) == -1 && errno == ETIMEDOUT);
	/* A header split across writes is reassembled. */
	{
		struct msg_hdr	hh = { MSG_REPLY, 10, 5 };
		char		pay[10] = "0123456789";

		CHECK(msg_write_all(fds[1], &hh, 5) == 0);
		CHECK(msg_read(fds[0], &in, &h, &p, 20) == -1 &&
		    errno == ETIMEDOUT);
		CHECK(msg_write_all(fds[1], (char *)&hh + 5, sizeof(hh) - 5) == 0);
		CHECK(msg_write_all(fds[1], pay, 4) == 0);
		CHECK(msg_write_all(fds[1], pay + 4, 6) == 0);
		CHECK(msg_read(fds[0], &in, &h, &p, 1000) == 1);
		CHECK(h.type == MSG_REPLY && h.len == 10 && h.id == 5);
		CHECK(memcmp(p, pay, 10) == 0);
	}
	/* EOF in the middle of a message is EOF. */
	raw_hdr(fds[1], MSG_REPLY, 100, 1);
	close(fds[1]);
	CHECK(msg_read(fds[0], &in, &h, &p, 1000) == 0);
	close(fds[0]);
	msgbuf_free(&in);
}

/* A lone header of type and len on a pipe: msg_read refuses it. */
static void
refused(struct msgbuf *in, uint32_t type, uint32_t len)
{
	struct msg_hdr		 h;
	const unsigned char	*p;
	int			 fds[2];

	CHECK(pipe(fds) == 0);
	raw_hdr(fds[1], type, len, 1);
	CHECK(msg_read(fds[0], in, &h, &p, 100) == -1 && errno == EPROTO);
	close(fds[0]);
	close(fds[1]);
	in->start = in->end = 0;
}

static void
test_malformed(void)
{
	struct msgbuf		 in;
	struct msg_hdr		 h;

	CHECK(msgbuf_init(&in, 64, 1000) == 0);
	/* Unknown types. */
	refused(&in, 0, 8);
	refused(&in, MSG_TYPE_MAX, 8);
	/* Too long for this reader: refused before anything is buffered. */
	refused(&in, MSG_REPLY, 1001);
	CHECK(in.cap < 1001);
	/* Too short for its type; fixed-size types must match exactly. */
	refused(&in, MSG_REPLY, 2);
	h.type = MSG_KILL;
	h.len = sizeof(struct msg_worker) + 1;
	CHECK(msg_check(&h, 1 << 20) == -1);
	h.len = sizeof(struct msg_worker);
	CHECK(msg_check(&h, 1 << 20) == 0);
	h.type = MSG_STOP;
	h.len = 1;
	CHECK(msg_check(&h, 1 << 20) == -1);
	h.type = MSG_REQUEST;
	h.len = MSG_PAYLOAD_HARD_MAX + 1;
	CHECK(msg_check(&h, SIZE_MAX) == -1);
	msgbuf_free(&in);
}

static void
test_request_parse(void)
{
	unsigned char		 buf[256] = { 0 };
	struct msg_request	 r;
	struct msg_request_view	 v;

	memset(&r, 0, sizeof(r));
	CHECK(msg_request_parse(buf, sizeof(r) - 1, &v) == -1);
	/* Lengths that do not add up. */
	r.method_len = 3;
	r.path_len = 1;
	r.body_len = 10;
	memcpy(buf, &r, sizeof(r));
	memcpy(buf + sizeof(r), "GET/", 4);
	CHECK(msg_request_parse(buf, sizeof(r) + 4, &v) == -1);
	CHECK(msg_request_parse(buf, sizeof(r) + 14, &v) == 0);
	CHECK(msg_request_parse(buf, sizeof(r) + 15, &v) == -1);
	/* No method, or one too long. */
	r.method_len = 0;
	memcpy(buf, &r, sizeof(r));
	CHECK(msg_request_parse(buf, sizeof(r) + 11, &v) == -1);
	r.method_len = MSG_METHOD_MAX + 1;
	r.path_len = 0;
	r.body_len = 0;
	memcpy(buf, &r, sizeof(r));
	CHECK(msg_request_parse(buf, sizeof(r) + MSG_METHOD_MAX + 1, &v) ==
	    -1);
	/* A body length that would wrap. */
	r.method_len = 1;
	r.body_len = UINT32_MAX;
	memcpy(buf, &r, sizeof(r));
	CHECK(msg_request_parse(buf, sizeof(r) + 1, &v) == -1);
}

/* A params block: packed from an envp and parsed back; bounds refused. */
static void
test_params(void)
{
	static unsigned char	 buf[sizeof(struct msg_request) + 16 +
				    MSG_PARAMS_MAX + 8];
	char			*envp[] = { "REQUEST_METHOD=GET",
				    "HTTP_HOST=x", "EMPTY=", NULL };
	struct msg_request	 r;
	struct msg_request_view	 v;
	struct iovec		 iov[6];
	size_t			 plen, len, off;

	plen = msg_params_size(envp);
	CHECK(plen == 19 + 12 + 7);
	CHECK(msg_params_size(NULL) == 0);
	off = msg_request_pack(&r, "GET", 3, "/", 1, "q", 1, 2, iov);
	msg_params_put(&r, envp, plen, buf + off, &iov[4]);
	CHECK(r.params_len == plen && iov[4].iov_len == plen);
	memcpy(buf, &r, sizeof(r));
	memcpy(buf + sizeof(r), "GET/q", 5);
	memcpy(buf + off + plen, "hi", 2);
	len = off + plen + 2;
	CHECK(msg_request_parse(buf, len, &v) == 0);
	CHECK(v.params_len == plen && v.params == (char *)buf + off);
	CHECK(strcmp(v.params, "REQUEST_METHOD=GET") == 0);
	CHECK(strcmp(v.params + 19 + 12, "EMPTY=") == 0);
	CHECK(v.body_len == 2 && memcmp(v.body, "hi", 2) == 0);
	/* The block must end with a NUL. */
	buf[off + plen - 1] = 'x';
	CHECK(msg_request_parse(buf, len, &v) == -1 && errno == EPROTO);
	buf[off + plen - 1] = '\0';
	/* Lengths that do not add up, and a block over the bound. */
	r.params_len = (uint32_t)plen + 1;
	memcpy(buf, &r, sizeof(r));
	CHECK(msg_request_parse(buf, len, &v) == -1);
	r.params_len = MSG_PARAMS_MAX + 1;
	r.body_len = 0;
	memcpy(buf, &r, sizeof(r));
	memset(buf + off, 0, MSG_PARAMS_MAX + 1);
	CHECK(msg_request_parse(buf, off + MSG_PARAMS_MAX + 1, &v) == -1);
	r.params_len = MSG_PARAMS_MAX;
	memcpy(buf, &r, sizeof(r));
	CHECK(msg_request_parse(buf, off + MSG_PARAMS_MAX, &v) == 0);
	/* No params: an empty block. */
	r.params_len = 0;
	memcpy(buf, &r, sizeof(r));
	CHECK(msg_request_parse(buf, off, &v) == 0 && v.params_len == 0);
}

static void
test_fds(void)
{
	struct msg_hdr		h;
	struct msg_worker	mw = { 3, 1, 1234, 2 }, got;
	int			sv[2], p[2], fds[4], nfds = 4;
	char			c = 0;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	CHECK(pipe(p) == 0);
	CHECK(chan_send(sv[0], MSG_WORKER_UP, 42, &mw, sizeof(mw), p,
	    2) == 0);
	CHECK(chan_recv(sv[1], &h, &got, sizeof(got), fds, &nfds) == 1);
	CHECK(h.type == MSG_WORKER_UP && h.id == 42 && nfds == 2);
	CHECK(got.pid == 1234 && got.number == 2);
	/* The passed fds are the same pipe. */
	CHECK(write(fds[1], "x", 1) == 1);
	CHECK(read(p[0], &c, 1) == 1 && c == 'x');
	close(fds[0]);
	close(fds[1]);
	/* A payload of the wrong size is refused, its fds closed. */
	CHECK(chan_send(sv[0], MSG_KILL, 1, &mw, 3, p, 1) == 0);
	nfds = 4;
	CHECK(chan_recv(sv[1], &h, &got, sizeof(got), fds, &nfds) == -1);
	CHECK(errno == EPROTO && nfds == 0);
	close(sv[0]);
	nfds = 4;
	CHECK(chan_recv(sv[1], &h, &got, sizeof(got), fds, &nfds) == 0);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

int
main(void)
{
	test_roundtrip();
	test_malformed();
	test_request_parse();
	test_params();
	test_fds();
	return check_done("test_msg");
}
