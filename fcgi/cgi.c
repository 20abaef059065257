/*
 * cgi.c: CGI mode.  When fd 0 is no socket and GATEWAY_INTERFACE is set,
 * pipepool answers the one request in its environment: it starts one
 * worker process, hands it the request through a one-mailbox dispatch
 * area like the front would, writes the worker's CGI response to stdout
 * and exits 0.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgi.h"
#include "dispatch.h"
#include "reply.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "request.h"
#include "worker.h"

#define CGI_TAG	dispatch_tag(0, 1)	/* the one worker's */

static const char *
env_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

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
		if (MB_KIND(s) == MB_DONE)
			return s;
		if (waitpid(pid, &wst, WNOHANG) == pid) {
			*died = 1;
			return s;
		}
		if ((now = now_ms_mono()) >= deadline)
			return s;
		/* No word from the master here: look at the child every
		 * 50 ms while waiting. */
		(void)dispatch_wait(0, s, now + 50 < deadline ? now + 50 :
		    deadline);
	}
}

int
cgi_main(const struct options *o)
{
	struct reqinfo		 ri;
	struct msg_request	 mr;
	struct msg_hdr		 h;
	struct iovec		 iov[5];
	const char		*why = NULL;
	const unsigned char	*p;
	unsigned char		*d;
	size_t			 blen = 0, off;
	ssize_t			 n;
	unsigned		 status;
	uint32_t		 s;
	int			 wst, died;
	pid_t			 pid;

	log_setrole("cgi");
	signal(SIGPIPE, SIG_IGN);
	if ((status = request_parse(&ri, env_param, NULL, &why)) != 0)
		return cgi_error(status, why);
	if (ri.content_length > o->max_body)
		return cgi_error(413, "the request body is larger than "
		    "--max-body");
	if (dispatch_map(1, 1, o->max_body) == -1)
		fatal("mapping the dispatch area");
	d = dispatch_data(0);
	off = sizeof(h) + sizeof(mr) + ri.method_len + ri.path_len +
	    ri.query_len;
	while (blen < ri.content_length) {
		n = read(STDIN_FILENO, d + off + blen, ri.content_length - blen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		blen += (size_t)n;
	}
	msg_request_pack(&mr, ri.method, ri.method_len, ri.path,
	    ri.path_len, ri.query, ri.query_len, blen, iov);
	iov[4].iov_base = d + off;
	iov[4].iov_len = blen;
	if (msg_frame(d, dispatch_capacity(), MSG_REQUEST, 1, iov, 5) == 0)
		fatal("framing the request");
	dispatch_enlist(MB_SLOT(CGI_TAG));
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		if (proc_child_signals() == -1 || proc_keep_fds(NULL, 0) == -1)
			fatal("setting up the worker");
		worker_main(o, 1, -1, -1, CGI_TAG);
	}
	if (dispatch_put(0, 1, 0) == -1)
		fatal("queueing the request");
	s = await(pid, now_ms_mono() + (int64_t)(o->timeout * 1000), &died);
	if (MB_KIND(s) == MB_DONE && (p = msg_unframe(d, dispatch_capacity(),
	    MSG_REPLY, &h)) != NULL && h.id == 1) {
		if (msg_write_all(STDOUT_FILENO, p + sizeof(struct msg_reply),
		    h.len - sizeof(struct msg_reply)) == -1)
			log_warn("writing the response");
		dispatch_retire(CGI_TAG);	/* the worker exits */
	} else if (!died && MB_KIND(s) != MB_DONE) {
		kill(pid, SIGKILL);
		cgi_error(504, "the worker took longer than --timeout");
	} else {
		kill(pid, SIGKILL);
		cgi_error(502, "the worker failed to answer");
	}
	if (!died)
		while (waitpid(pid, &wst, 0) == -1 && errno == EINTR)
			;
	return 0;
}
