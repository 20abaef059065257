/*
 * cgi.c: CGI mode.  When fd 0 is no socket and GATEWAY_INTERFACE is set,
 * pipepool answers the one request in its environment: it starts one
 * worker process, sends it the request over a pipe like the front would,
 * writes the worker's CGI response to stdout and exits 0.
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
#include "handlers.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "request.h"
#include "worker.h"

static const char *
env_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

static int
cgi_error(unsigned status, const char *why)
{
	printf("Status: %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "\r\n%u %s: %s\n", status, status_text(status), status,
	    status_text(status), why);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
cgi_main(const struct options *o)
{
	struct reqinfo		 ri;
	struct msg_request	 mr;
	struct msg_hdr		 h;
	struct msgbuf		 mb;
	struct iovec		 iov[5];
	const unsigned char	*p;
	const char		*why = NULL;
	char			*body = NULL;
	size_t			 blen = 0;
	ssize_t			 n;
	unsigned		 status;
	int			 req[2], rep[2], keep[2], r, wst;
	pid_t			 pid;

	log_setrole("cgi");
	signal(SIGPIPE, SIG_IGN);
	if ((status = request_parse(&ri, env_param, NULL, &why)) != 0)
		return cgi_error(status, why);
	if (ri.content_length > o->max_body)
		return cgi_error(413, "the request body is larger than "
		    "--max-body");
	if ((body = malloc(ri.content_length + 1)) == NULL)
		fatal("malloc");
	while (blen < ri.content_length) {
		n = read(STDIN_FILENO, body + blen, ri.content_length - blen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		blen += (size_t)n;
	}
	if (pipe2(req, O_CLOEXEC) == -1 || pipe2(rep, O_CLOEXEC) == -1)
		fatal("pipe2");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		keep[0] = req[0];
		keep[1] = rep[1];
		if (proc_child_signals() == -1 || proc_keep_fds(keep, 2) == -1)
			fatal("setting up the worker");
		worker_main(o, 1, -1);
	}
	close(req[0]);
	close(rep[1]);
	msg_request_pack(&mr, 0, ri.method, ri.method_len, ri.path,
	    ri.path_len, ri.query, ri.query_len, blen, iov);
	iov[4].iov_base = body;
	iov[4].iov_len = blen;
	if (msgbuf_init(&mb, 16384, o->max_body + MSG_REPLY_HEAD_MAX +
	    sizeof(struct msg_reply)) == -1)
		fatal("msgbuf_init");
	if (msg_write(req[1], MSG_REQUEST, 1, iov, 5) == -1)
		r = -1;
	else
		r = msg_read(rep[0], &mb, &h, &p, (int)(o->timeout * 1000));
	close(req[1]);		/* the worker exits at EOF */
	if (r == 1 && h.type == MSG_REPLY && h.id == 1) {
		if (write_all(STDOUT_FILENO, p + sizeof(struct msg_reply),
		    h.len - sizeof(struct msg_reply)) == -1)
			log_warn("writing the response");
	} else if (r == -1 && errno == ETIMEDOUT) {
		kill(pid, SIGKILL);
		cgi_error(504, "the worker took longer than --timeout");
	} else {
		kill(pid, SIGKILL);
		cgi_error(502, "the worker failed to answer");
	}
	while (waitpid(pid, &wst, 0) == -1 && errno == EINTR)
		;
	msgbuf_free(&mb);
	free(body);
	return 0;
}
