/*
 * direct.c: a worker's cache of the front's FastCGI connections, over its
 * channel to the front, for the direct answers (dispatch.h) it writes on
 * nginx's connection itself (fcgi/record.c), so the front's thread is not
 * woken to relay them.
 *
 * The worker asks the front for a connection's fd over its channel (a
 * SOCK_SEQPACKET socketpair the master made, whose other end only the
 * front's control thread reads) the first time it answers on it, and
 * keeps it, by mailbox, until that mailbox's thread takes another
 * connection (a new gen): a fixed table, whose untouched pages cost
 * nothing.  A kept fd never ends a connection: the front ends one with
 * shutdown(2), which holds for every copy.  The cache is bounded by the
 * worker's RLIMIT_NOFILE: when full it is emptied.
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <unistd.h>

#include "chan.h"
#include "direct.h"
#include "log.h"
#include "msg.h"
#include "options.h"

struct kept {
	int		fd1;	/* the fd + 1; 0: none */
	uint32_t	gen;
};

static struct {
	int		 chan;		/* -1: no front to ask (CGI mode) */
	unsigned	 nmbox;
	unsigned	 nkept, maxkept;
	int		 warned;
	struct kept	 k[PP_THREADS_MAX];	/* by mailbox */
} W = { .chan = -1 };

/*
 * chan: this worker's end of its channel to the front, or -1; nmbox: the
 * front's mailboxes (--threads).  -1 if the channel cannot be used (then
 * every answer goes through the front).
 */
int
direct_init(int chan, unsigned nmbox)
{
	struct rlimit	rl;
	struct timeval	tv = { DIRECT_ASK_MS / 1000,
			    (DIRECT_ASK_MS % 1000) * 1000 };

	if (chan < 0)
		return 0;
	if (setsockopt(chan, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1) {
		log_warn("setsockopt SO_RCVTIMEO on the front's channel");
		return -1;
	}
	if (nmbox > PP_THREADS_MAX)
		nmbox = PP_THREADS_MAX;
	/* Room for the lifeline, the channel, logging and a few more. */
	W.maxkept = nmbox;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)nmbox + 16)
		W.maxkept = rl.rlim_cur > 16 ? (unsigned)rl.rlim_cur - 16 : 0;
	W.nmbox = nmbox;
	W.chan = chan;
	return 0;
}

static void
forget(unsigned mb)
{
	if (W.k[mb].fd1 == 0)
		return;
	close(W.k[mb].fd1 - 1);
	W.k[mb].fd1 = 0;
	W.nkept--;
}

/* Once per worker: why its answers go through the front. */
static void
warn_once(const char *why)
{
	if (W.warned)
		return;
	W.warned = 1;
	log_warnx("answering through the front: %s", why);
}

/*
 * The fd of connection gen of mailbox mb, asked of the front if not kept
 * yet.  -1 if it cannot be had: the caller answers through the front.
 */
int
direct_fd(unsigned mb, uint32_t gen)
{
	struct msg_conn	 mc = { mb, gen }, got;
	struct msg_hdr	 h;
	unsigned	 i;
	int		 fd, nfds;
	ssize_t		 r;

	if (W.chan == -1 || mb >= W.nmbox)
		return -1;
	if (W.k[mb].fd1 != 0 && W.k[mb].gen == gen)
		return W.k[mb].fd1 - 1;
	forget(mb);
	if (W.maxkept == 0) {
		warn_once("RLIMIT_NOFILE leaves no room to keep connections");
		return -1;
	}
	if (W.nkept >= W.maxkept)
		for (i = 0; i < W.nmbox; i++)
			forget(i);
	if (chan_send(W.chan, MSG_CONN_ASK, 0, &mc, sizeof(mc), NULL,
	    0) == -1) {
		warn_once("cannot ask the front for a connection");
		return -1;
	}
	for (;;) {
		nfds = 1;
		r = chan_recv(W.chan, &h, &got, sizeof(got), &fd, &nfds);
		if (r == 0) {
			warn_once("the front closed its channel");
			W.chan = -1;
			return -1;
		}
		if (r == -1) {
			/* EAGAIN: no answer within DIRECT_ASK_MS (a late one
			 * is dropped below, next time); EPROTO: also when
			 * the fd did not fit under RLIMIT_NOFILE. */
			log_warn("asking the front for a connection");
			return -1;
		}
		if (h.type == MSG_CONN && got.mbox == mb && got.gen == gen)
			break;
		if (nfds == 1)
			close(fd);	/* the answer to an earlier ask */
	}
	if (nfds == 0)
		return -1;	/* that connection is gone */
	W.k[mb].fd1 = fd + 1;
	W.k[mb].gen = gen;
	W.nkept++;
	return fd;
}

/*
 * The hostile-worker tests (hostile.c): ask for connection gen of mailbox
 * mb afresh, keeping nothing.  1 if the front gave it.
 */
int
direct_probe(unsigned mb, uint32_t gen)
{
	if (mb >= W.nmbox)
		return 0;
	forget(mb);
	if (direct_fd(mb, gen) == -1)
		return 0;
	forget(mb);
	return 1;
}

/* Tell the front that mb's answer is in the mailbox: it relays it. */
void
direct_note(unsigned mb, uint32_t gen)
{
	struct msg_conn	mc = { mb, gen };

	if (W.chan == -1 || chan_send(W.chan, MSG_REPLIED, 0, &mc,
	    sizeof(mc), NULL, 0) == -1)
		/* The front's timeout still ends that request. */
		log_warn("telling the front an answer is in its mailbox");
}
