/*
 * worker.c: a hello worker process.  It reads one MSG_REQUEST at a time
 * from its request pipe, answers on its reply pipe with the same id, and
 * exits when either pipe to its peers reaches EOF: the front closed its
 * request pipe (retired, or the front is gone), or the master's lifeline
 * closed (the master is gone).  The lifeline is watched with O_ASYNC: the
 * kernel sends SIGIO when its write end closes, so the request loop is a
 * plain blocking read with no poll(2) per request.  A malformed message
 * from the front is a broken invariant: the worker logs it and exits 1.
 */
#include <sys/prctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "worker.h"

static void
limits(const struct options *o)
{
	struct rlimit	rl;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		log_warn("prctl PR_SET_NO_NEW_PRIVS");
	if (o->rlimit_as) {
		rl.rlim_cur = rl.rlim_max = o->rlimit_as;
		if (setrlimit(RLIMIT_AS, &rl) == -1)
			fatal("setrlimit RLIMIT_AS %llu",
			    (unsigned long long)o->rlimit_as);
	}
	if (o->rlimit_nofile) {
		rl.rlim_cur = rl.rlim_max = o->rlimit_nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			fatal("setrlimit RLIMIT_NOFILE %llu",
			    (unsigned long long)o->rlimit_nofile);
	}
}

/* Send something that is no message at all: the front must cope. */
static void
garbage(void)
{
	static const char	junk[] = "\xff\xff\xff\x7fthis is not a message";

	(void)write_all(WORKER_REP_FD, junk, sizeof(junk) - 1);
}

/* The master's end of the lifeline closed: the master is gone. */
static void
on_sigio(int sig)
{
	(void)sig;
	_exit(0);
}

/*
 * Have the kernel signal us when the lifeline's write end closes.  The
 * lifeline is checked once more after arming, in case the master was
 * already gone.
 */
static void
watch_lifeline(int fd)
{
	struct sigaction	sa;
	struct pollfd		pfd = { fd, POLLIN, 0 };

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_sigio;
	if (sigaction(SIGIO, &sa, NULL) == -1 ||
	    fcntl(fd, F_SETOWN, getpid()) == -1 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC) == -1)
		fatal("watching the lifeline");
	if (poll(&pfd, 1, 0) == 1)
		_exit(0);
}

void
worker_main(const struct options *o, unsigned number, int life_fd)
{
	struct msgbuf		 mb;
	struct msg_hdr		 h;
	struct msg_request_view	 v;
	struct reply		 rp;
	const unsigned char	*p;
	struct iovec		 iov[3];
	uint64_t		 served = 0;
	char			 role[32];
	int			 r;

	snprintf(role, sizeof(role), "worker %u", number);
	log_setrole(role);
	snprintf(role, sizeof(role), "pipepool: worker %u", number);
	proc_title(role);
	limits(o);
	/* Tests of the master's back-off make workers die at start. */
	if (o->debug_routes && getenv("PIPEPOOL_DEBUG_FAIL_AT_START") != NULL)
		fatalx("PIPEPOOL_DEBUG_FAIL_AT_START is set: failing at start");
	handlers_init();
	if (msgbuf_init(&mb, 16384, o->max_body + MSG_PATH_MAX +
	    MSG_QUERY_MAX + MSG_METHOD_MAX + sizeof(struct msg_request)) == -1)
		fatal("msgbuf_init");
	if (life_fd >= 0)
		watch_lifeline(life_fd);
	for (;;) {
		r = msg_read(WORKER_REQ_FD, &mb, &h, &p, -1);
		if (r == 0)
			exit(0);	/* the front closed our request pipe */
		if (r == -1)
			fatal("reading a request");
		if (h.type != MSG_REQUEST ||
		    msg_request_parse(p, h.len, &v) == -1)
			fatalx("bad %s message (len %u) from the front",
			    msg_typename(h.type), h.len);
		if (handle(o, &v, &rp) == ACT_GARBAGE) {
			/* Behave like a broken worker: garbage, then nothing
			 * until the master kills it (or its lifeline goes). */
			garbage();
			for (;;)
				pause();
		}
		served++;
		if (o->max_requests && served >= o->max_requests)
			rp.r.flags |= REPLY_RETIRING;
		iov[0].iov_base = &rp.r;
		iov[0].iov_len = sizeof(rp.r);
		iov[1].iov_base = (void *)(uintptr_t)rp.head;
		iov[1].iov_len = rp.head_len;
		iov[2].iov_base = (void *)(uintptr_t)rp.body;
		iov[2].iov_len = rp.body_len;
		if (msg_write(WORKER_REP_FD, MSG_REPLY, h.id, iov, 3) == -1) {
			if (errno == EPIPE)
				exit(0);	/* the front dropped us */
			fatal("writing a reply");
		}
		if (rp.r.flags & REPLY_RETIRING) {
			log_info("served %llu requests (--max-requests), "
			    "retiring", (unsigned long long)served);
			exit(0);
		}
	}
}
