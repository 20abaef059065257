/*
 * worker.c: a hello worker process.  It takes one request at a time from
 * the shared dispatch area (dispatch.h), answers in the same mailbox, and
 * sleeps there while no request waits.  It exits when retired (reload,
 * --max-requests) or when the master's lifeline closes (the master is
 * gone): the lifeline is watched with O_ASYNC, the kernel sends SIGIO when
 * its write end closes, so the loop has no poll(2).  A malformed request
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

#include "direct.h"
#include "dispatch.h"
#include "handlers.h"
#include "hostile.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "record.h"
#include "stats.h"
#include "worker.h"

static void
limits(const struct options *o)
{
	struct rlimit	rl;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		log_warn("prctl PR_SET_NO_NEW_PRIVS");
	/* The master and the front are not dumpable (master.c), so no worker
	 * can ptrace them; a worker is, so an application's crash can leave
	 * a core and be debugged. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == -1)
		log_warn("prctl PR_SET_DUMPABLE");
	if (o->rlimit_as) {
		/* The limit is for the worker's own memory: the dispatch area
		 * it shares (mapped already, mostly never touched) comes on
		 * top, or a small limit would leave it no room at all.  The
		 * sum saturates at RLIM_INFINITY rather than wrap below the
		 * worker's own mapping (options cap the value at 2^56). */
		if (o->rlimit_as >= RLIM_INFINITY - dispatch_size())
			rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
		else
			rl.rlim_cur = rl.rlim_max = o->rlimit_as +
			    dispatch_size();
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

/* Answer with something that is no message at all: the front must cope. */
static void
garbage(unsigned char *d)
{
	static const char	junk[] = "\xff\xff\xff\x7fthis is not a message";

	memcpy(d, junk, sizeof(junk) - 1);
}

/*
 * Put rp in data area d (capacity cap) as a MSG_REPLY.  The body may point
 * into d itself (/echo answers with the request's body): msg_frame moves
 * the parts in order, body last, so the body goes first by hand.  A reply
 * that cannot fit becomes a 500.
 */
static void
put_reply(unsigned char *d, size_t cap, uint64_t id, struct reply *rp)
{
	struct iovec	iov[3];
	size_t		off = sizeof(struct msg_hdr) + sizeof(rp->r);

	if (rp->head_len > cap - off || rp->body_len > cap - off -
	    rp->head_len) {
		log_warnx("a reply of %zu bytes does not fit the %zu-byte "
		    "mailbox", rp->head_len + rp->body_len, cap);
		reply_text(rp, 500, NULL, "the answer was too large");
	}
	if (rp->body_len > 0)
		memmove(d + off + rp->head_len, rp->body, rp->body_len);
	iov[0].iov_base = &rp->r;
	iov[0].iov_len = sizeof(rp->r);
	iov[1].iov_base = (void *)(uintptr_t)rp->head;
	iov[1].iov_len = rp->head_len;
	iov[2].iov_base = d + off + rp->head_len;	/* in place */
	iov[2].iov_len = rp->body_len;
	(void)msg_frame(d, cap, MSG_REPLY, id, iov, 3);
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

/*
 * Answer mb's direct request on its connection, counting it first (the
 * front does not: it is not woken, unless it waits to give back a large
 * body's buffer).  Without the connection, or for an answer too large to
 * be sure nginx takes it at once, answer in the mailbox and tell the front
 * to relay it: a worker never blocks on a slow client (the front's thread
 * does, up to --read-timeout, while the worker serves others).
 */
/* getpid() is a system call in glibc: once, not per request. */
static unsigned	my_pid;

static void
answer_direct(const struct options *o, unsigned mb, uint32_t tag,
    const struct mb_conn *mc, const struct msg_request_view *v,
    struct reply *rp, unsigned char *d, uint64_t id)
{
	int		fd, ok;

	if (rp->head_len + rp->body_len > DIRECT_ANSWER_MAX ||
	    (fd = direct_fd(mb, mc->gen)) == -1) {
		put_reply(d, dispatch_capacity(), id, rp);
		dispatch_done(mb, tag);
		direct_note(mb, mc->gen);
		return;
	}
	stats_worker_request(rp->r.status, now_ms_mono() - mc->start_ms,
	    o->slow_ms, v, my_pid);
	dispatch_sending(mb, tag);
	ok = record_answer(fd, mc->fcgi_id, rp->head, rp->head_len, rp->body,
	    rp->body_len) == 0;
	dispatch_sent(mb, tag, ok, rp->r.status, now_ms_mono());
}

void
worker_main(const struct options *o, unsigned number, int life_fd,
    int chan_fd, uint32_t tag)
{
	struct msg_hdr		 h;
	struct msg_request_view	 v;
	struct reply		 rp;
	struct mb_conn		 mc;
	const unsigned char	*p;
	unsigned char		*d;
	size_t			 cap;
	uint64_t		 served = 0;
	char			 role[32];
	enum action		 act;
	int			 mb, b, want_body;

	snprintf(role, sizeof(role), "worker %u", number);
	log_setrole(role);
	snprintf(role, sizeof(role), "pipepool: worker %u", number);
	proc_title(role);
	my_pid = (unsigned)getpid();
	limits(o);
	/* Tests of the master's back-off make workers die at start. */
	if (o->debug_routes && getenv("PIPEPOOL_DEBUG_FAIL_AT_START") != NULL)
		fatalx("PIPEPOOL_DEBUG_FAIL_AT_START is set: failing at start");
	handlers_init();
	if (direct_init(chan_fd, o->threads) == -1)
		log_warnx("every answer goes through the front");
	cap = dispatch_capacity();
	if (life_fd >= 0)
		watch_lifeline(life_fd);
	for (;;) {
		stats_worker_state(WS_IDLE);
		if ((mb = dispatch_take(tag, &want_body)) == -1) {
			if (stats != NULL)
				log_info("retired after %llu requests",
				    (unsigned long long)served);
			exit(0);
		}
		stats_worker_state(WS_BUSY);
		d = dispatch_data((unsigned)mb);
		b = -1;
		if (want_body) {
			if ((b = dispatch_want_body((unsigned)mb, tag)) == -1)
				continue;	/* the front gave up on it */
			d = dispatch_buf((unsigned)b);
		}
		if ((p = msg_unframe(d, cap, MSG_REQUEST, &h)) == NULL ||
		    msg_request_parse(p, h.len, &v) == -1)
			fatalx("bad %s message (len %u) from the front",
			    msg_typename(h.type), h.len);
		if (o->debug_routes && hostile_route(&v, (unsigned)mb, chan_fd,
		    &rp))
			act = ACT_REPLY;
		else
			act = handlers_route(o, &v, &rp);
		if (act == ACT_GARBAGE) {
			/* Behave like a broken worker: garbage, then nothing
			 * until the master kills it (or its lifeline goes). */
			garbage(d);
			dispatch_done((unsigned)mb, tag);
			if (dispatch_conn_get((unsigned)mb, &mc))
				direct_note((unsigned)mb, mc.gen);
			for (;;)
				pause();
		}
		served++;
		if (dispatch_conn_get((unsigned)mb, &mc))
			answer_direct(o, (unsigned)mb, tag, &mc, &v, &rp, d,
			    h.id);
		else {
			put_reply(d, cap, h.id, &rp);
			dispatch_done((unsigned)mb, tag);
		}
		if (o->max_requests && served >= o->max_requests) {
			log_info("served %llu requests (--max-requests), "
			    "retiring", (unsigned long long)served);
			exit(0);
		}
	}
}
