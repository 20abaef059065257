/*
 * cgi.c: CGI mode.  When fd 0 is no socket and GATEWAY_INTERFACE is set,
 * pipepool answers the one request in its environment: it starts one
 * worker process, hands it the request through a one-mailbox dispatch
 * area like the front would, writes the worker's CGI response to stdout
 * and exits 0.
 */
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgi.h"
#include "dispatch.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "reply.h"
#include "request.h"
#include "worker.h"

#define CGI_TAG	dispatch_tag(0, 1)	/* the one worker's */

static size_t	req_len;	/* the request message's bytes */

/* A CGI program's params are its environment. */
static const char *
env_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

/* The plain-text answer for status on stdout: 0, or 1 if it failed. */
static int
cgi_error(unsigned status, const char *why)
{
	struct reply_plain	p;

	if (reply_plain(&p, status, NULL, why) == -1 ||
	    fwrite(p.head, 1, p.head_len, stdout) != p.head_len ||
	    fwrite(p.body, 1, p.body_len, stdout) != p.body_len)
		return 1;
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The worker's state once it answers, dies, or --timeout passes. */
static uint32_t
await(pid_t pid, int64_t deadline, int *died)
{
	uint32_t	s;
	int64_t		now;
	int		wst;

	*died = 0;
	for (;;) {
		s = dispatch_state(0);
		if (MB_KIND(s) == MB_DONE || s == (MB_PART | CGI_TAG))
			return s;
		if (waitpid(pid, &wst, WNOHANG) == pid) {
			*died = 1;
			return s;
		}
		if ((now = proc_now_ms()) >= deadline)
			return s;
		/* No word from the master here: look at the child every
		 * 50 ms while waiting. */
		(void)dispatch_wait(0, s, now + 50 < deadline ? now + 50 :
		    deadline);
	}
}

/* Up to want bytes of the body from stdin into dst: how many came. */
static size_t
read_body(unsigned char *dst, uint64_t want)
{
	size_t	got = 0;
	ssize_t	n;

	while (got < want) {
		n = read(STDIN_FILENO, dst + got, want - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* The request of ri, its body read from stdin, framed in mailbox 0. */
static void
put_request(const struct reqinfo *ri)
{
	struct msg_request	 mr;
	struct iovec		 iov[6];
	unsigned char		*d = dispatch_data(0);
	size_t			 blen, poff, plen, off;

	/* The params are the environment, as CGI has them; the body is read
	 * where it goes in the message: never copied. */
	if ((plen = msg_params_size(environ)) > MSG_PARAMS_MAX)
		plen = 0;
	poff = sizeof(struct msg_hdr) + sizeof(mr) + ri->method_len +
	    ri->path_len + ri->query_len;
	off = poff + plen;
	blen = read_body(d + off, ri->content_length);
	msg_request_pack(&mr, ri->method, ri->method_len, ri->path,
	    ri->path_len, ri->query, ri->query_len, blen, iov);
	msg_params_put(&mr, environ, plen, d + poff, &iov[4]);
	iov[5].iov_base = d + off;
	iov[5].iov_len = blen;
	if ((req_len = msg_frame(d, dispatch_capacity(), MSG_REQUEST, 1, iov,
	    6)) == 0)
		fatal("framing the request");
}

/* The one worker, in master slot 0 of the area. */
static pid_t
start_worker(const struct options *o)
{
	pid_t	pid;

	dispatch_enlist(MB_SLOT(CGI_TAG));
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		if (proc_child_signals() == -1 || proc_keep_fds(NULL, 0) == -1)
			fatal("setting up the worker");
		worker_main(o, 1, -1, -1, CGI_TAG);
	}
	return pid;
}

/*
 * The MSG_REPLY at off of mailbox 0 (whole at 0; a streamed answer's
 * pieces and end past the request): its bytes and status, or NULL.
 */
static const unsigned char *
reply_at(size_t off, struct msg_reply *rep, size_t *n)
{
	const unsigned char	*p;
	struct msg_hdr		 h;

	if (off >= dispatch_capacity() || (p = msg_unframe(dispatch_data(0) +
	    off, dispatch_capacity() - off, MSG_REPLY, &h)) == NULL ||
	    h.id != 1 || h.len < sizeof(*rep))
		return NULL;
	memcpy(rep, p, sizeof(*rep));
	*n = h.len - sizeof(*rep);
	return p + sizeof(*rep);
}

/* n bytes of the answer on stdout: 0, or -1 (logged). */
static int
put(const unsigned char *p, size_t n)
{
	if (msg_write_all(STDOUT_FILENO, p, n) == 0)
		return 0;
	log_warn("writing the response");
	return -1;
}

/*
 * The worker's answer on stdout (whole, or its pieces as they come: each
 * naming the first one's status), or the error that stands for it (504
 * past --timeout, else 502; once part of an answer went out, only the
 * cut).  The worker is gone when this returns.  0, or 1 if the answer
 * failed or was cut short (pipepool's exit status).
 */
static int
finish(const struct options *o, pid_t pid)
{
	const unsigned char	*p;
	struct msg_reply	 rep;
	int64_t			 deadline = proc_now_ms() +
				    (int64_t)(o->timeout * 1000);
	uint32_t		 s;
	unsigned		 first = 0;
	size_t			 n, at = dispatch_piece_at(req_len);
	int			 wst, died, ok = 1, bad = 0;

	while ((s = await(pid, deadline, &died)) == (MB_PART | CGI_TAG) &&
	    proc_now_ms() < deadline) {
		if ((p = reply_at(at, &rep, &n)) == NULL || (first != 0 &&
		    rep.status != first)) {
			bad = 1;
			break;
		}
		first = rep.status;
		ok = ok && put(p, n) == 0;
		if (dispatch_part_ack(0, CGI_TAG, ok) == -1)
			break;
	}
	if (!bad && MB_KIND(s) == MB_DONE && (p = reply_at(first != 0 ? at :
	    0, &rep, &n)) != NULL && (first == 0 || (n == 0 &&
	    rep.status == first))) {
		if (ok)
			ok = put(p, n) == 0;
		dispatch_retire(CGI_TAG);	/* the worker exits */
	} else if (first != 0) {
		kill(pid, SIGKILL);
		log_warnx("the worker's answer was cut short");
		ok = 0;
	} else if (!bad && !died && MB_KIND(s) != MB_DONE) {
		kill(pid, SIGKILL);
		cgi_error(504, "the worker took longer than --timeout");
	} else {
		kill(pid, SIGKILL);
		cgi_error(502, "the worker failed to answer");
	}
	if (!died)
		while (waitpid(pid, &wst, 0) == -1 && errno == EINTR)
			;
	return ok ? 0 : 1;
}

int
cgi_main(const struct options *o)
{
	struct reqinfo	 ri;
	const char	*why = NULL;
	unsigned	 status;
	pid_t		 pid;

	log_setrole("cgi");
	signal(SIGPIPE, SIG_IGN);
	memset(&ri, 0, sizeof(ri));
	if ((status = request_parse(&ri, env_param, NULL, &why)) != 0)
		return cgi_error(status, why);
	if (ri.content_length > o->max_body)
		return cgi_error(413, "the request body is larger than "
		    "--max-body");
	if (dispatch_map(1, 1, o->max_body) == -1)
		fatal("mapping the dispatch area");
	put_request(&ri);
	pid = start_worker(o);
	if (dispatch_put(0, 1, 0) == -1)
		fatal("queueing the request");
	return finish(o, pid);
}
