/*
 * chan.c: one framed message, with up to 4 fds, per SOCK_SEQPACKET
 * packet: the master/front control channel and each worker's channel to
 * the front.  The header is msg.h's; its bounds are checked (msg_check)
 * before the payload is used.
 */
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"

/* Room for the control part of a message with up to CHAN_FDS_MAX fds. */
#define CHAN_FDS_MAX	4
union chan_cmsg {
	struct cmsghdr	hdr;
	char		buf[CMSG_SPACE(CHAN_FDS_MAX * sizeof(int))];
};

/* Send one control message with up to 4 fds on a SOCK_SEQPACKET socket. */
int
chan_send(int sock, uint32_t type, uint64_t id, const void *payload,
    size_t len, const int *fds, int nfds)
{
	struct msg_hdr	 h;
	struct iovec	 iov[2];
	struct msghdr	 mh;
	union chan_cmsg	 cm;
	struct cmsghdr	*c;
	ssize_t		 n;

	if (nfds < 0 || nfds > CHAN_FDS_MAX || len > 4096) {
		errno = EINVAL;
		return -1;
	}
	h = msg_hdr_make(type, len, id);
	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	iov[1].iov_base = (void *)(uintptr_t)payload;
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	if (nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	do {
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n != sizeof(h) + len) {	/* seqpacket: never partial */
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/*
 * Receive one control message: header into h, payload into buf (at most
 * cap), fds into fds (*nfds in: room, out: received).  Returns 1, 0 at
 * EOF, -1 with errno (EPROTO for a bad or truncated message; any fds that
 * came with it are closed).
 */
ssize_t
chan_recv(int sock, struct msg_hdr *h, void *buf, size_t cap, int *fds,
    int *nfds)
{
	struct iovec	 iov[2];
	struct msghdr	 mh;
	union chan_cmsg	 cm;
	struct cmsghdr	*c;
	ssize_t		 n;
	int		 room = *nfds, got = 0, n_in, i;

	*nfds = 0;
	iov[0].iov_base = h;
	iov[0].iov_len = sizeof(*h);
	iov[1].iov_base = buf;
	iov[1].iov_len = cap;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n <= 0)
		return n;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		/* Every fd of every SCM_RIGHTS part is kept or closed: a
		 * peer sending more, in several parts, leaks none here. */
		n_in = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < n_in; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + (size_t)i * sizeof(int),
			    sizeof(int));
			if (got < room)
				fds[got++] = fd;
			else
				close(fd);
		}
	}
	*nfds = got;
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n < sizeof(*h) || msg_check(h, cap) == -1 ||
	    (size_t)n != sizeof(*h) + h->len)
		goto bad;
	return 1;
bad:
	for (i = 0; i < got; i++)
		close(fds[i]);
	*nfds = 0;
	errno = EPROTO;
	return -1;
}
