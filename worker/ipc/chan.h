/* chan.h: framed messages with fds on a SOCK_SEQPACKET socket. */
#ifndef PP_CHAN_H
#define PP_CHAN_H

#include <sys/types.h>

#include "msg.h"

/* Send one message (payload at most 4096 bytes) with up to 4 fds. */
int	chan_send(int sock, uint32_t type, uint64_t id, const void *,
	    size_t, const int *fds, int nfds);
/*
 * Receive one message: header into h, payload into buf (at most cap),
 * fds into fds (*nfds in: room, out: received).  Returns 1, 0 at EOF, -1
 * with errno (EPROTO for a bad or truncated message; any fds that came
 * with it are closed).
 */
ssize_t	chan_recv(int sock, struct msg_hdr *, void *, size_t,
	    int *fds, int *nfds);

#endif
