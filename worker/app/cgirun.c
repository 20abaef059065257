/*
 * cgirun.c: the CGI runner (cgirun.h): each request's SCRIPT_FILENAME
 * run as a CGI program, one at a time per worker.
 *
 * A request: the script is checked (an absolute path; with --cgi-root,
 * inside the root once `..` and symbolic links are resolved; a regular,
 * executable file), its environment built from the params, and it is
 * started (cgi_spawn: clone(2) as vfork) with its stdin, stdout and
 * stderr on pipes, cwd its directory.
 * One poll loop then writes the body to its stdin (closed after the
 * body), reads its stdout and reads its stderr, so a large body in and a
 * large answer out never deadlock.  Its stdout goes through a small
 * state machine (struct cgi_run, one function per state): HEAD gathers
 * the header block (up to CGI_HEAD_MAX), which is checked and then
 * applied through pp_status/pp_header; BODY hands each read to pp_write
 * and sends what it holds on as a piece (app_flush) at CGI_PIECE bytes
 * or CGI_QUIET_MS; DRAIN reads and drops (a bad head, a client gone).  The answer is done
 * when its stdout ends and the program has exited.
 *
 * Trust: what the program writes is untrusted.  Its head is parsed
 * within bounds and anything malformed is a 502; its body goes through
 * pp_write, which bounds and streams it; its stderr lines are cut to
 * CGI_LINE_MAX and escaped by log.c.
 *
 * Children: SIGCHLD is blocked while a program runs, and the runner
 * reaps its program itself (waitpid on its pid); between requests a
 * SIGCHLD handler reaps whatever else ended (helpers orphaned to the
 * worker, which is a child subreaper).  A hang is the master's to end:
 * past --timeout it kills the worker's group, the program and its helpers
 * with it; the runner gives up by itself only CGI_GRACE_MS later.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "cgirun.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "stats.h"

#define CGI_READ	(64 * 1024)	/* one read of stdout, one pp_write */
#define CGI_LINE_MAX	512	/* a stderr line's piece in the log */
#define CGI_GRACE_MS	5000	/* past a deadline, for the master's kill */
#define CGI_PIPE_SIZE	(1024 * 1024)
#define CGI_ROUNDS	16	/* reads of one stream per poll round */
/*
 * How an answer streams: what the program wrote goes out as a piece once
 * CGI_PIECE bytes are held, or CGI_QUIET_MS after the first byte held
 * (so its head, or a trickle, reaches the client that late at the most);
 * an answer that ends sooner goes whole, with its length.
 */
#define CGI_PIECE	(256 * 1024)
#define CGI_QUIET_MS	50
/* The environment: params are "NAME\0VALUE\0" of at least 3 bytes. */
#define CGI_ENV_MAX	(MSG_PARAMS_MAX / 3 + 2)
#define CGI_TYPE	"text/plain; charset=utf-8"

enum cgi_state { CS_HEAD, CS_BODY, CS_DRAIN };

/* One request's program. */
struct cgi_run {
	const char		*script;	/* SCRIPT_FILENAME */
	struct pp_response	*res;
	enum cgi_state		 state;
	pid_t			 pid;
	int			 pidfd;		/* -1 without pidfd_open */
	int			 exited, status;	/* once reaped */
	int			 in, out, err;	/* our ends, or -1 */
	const unsigned char	*body;
	size_t			 body_len, body_off;
	size_t			 head_len;
	size_t			 scan;	/* the head's line being read */
	unsigned		 code;	/* 502, 504 or 0 */
	const char		*why;	/* its reason */
	int			 failed;	/* pp_* refused: -1 */
	int64_t			 held_ms;	/* when the bytes not sent yet
						 * began to wait, or 0 */
	unsigned		 err_lines;	/* logged */
	size_t			 err_len;
	char			 err_line[CGI_LINE_MAX];
};

static struct {
	const char	*root;		/* --cgi-root, or "" */
	char		 rroot[PATH_MAX];	/* realpath(root) */
	size_t		 rroot_len;
	char		 path[PATH_MAX];	/* the file to run */
	char		 dir[PATH_MAX];		/* its directory */
	char		 head[CGI_HEAD_MAX];
	char		 rd[CGI_READ];
	char		 env[MSG_PARAMS_MAX + 64];
	char		*envp[CGI_ENV_MAX + 2];
	char		 deadline[48];
} C;

/* ---- the children of the worker ---- */

/* Between requests: reap whatever ended (SIGCHLD is blocked in handle). */
static void
on_sigchld(int sig)
{
	int	e = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = e;
}

static void
sigchld_block(int block)
{
	sigset_t	s;

	sigemptyset(&s);
	sigaddset(&s, SIGCHLD);
	(void)sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}

/* Reap the program, waiting for it if wait; 1 once it is reaped. */
static int
cgi_reap(struct cgi_run *r, int wait)
{
	pid_t	p;

	while (!r->exited) {
		p = waitpid(r->pid, &r->status, wait ? 0 : WNOHANG);
		if (p == -1 && errno == EINTR)
			continue;
		if (p == 0)
			return 0;
		if (p == -1) {
			log_warn("cgi: waitpid %ld", (long)r->pid);
			r->status = -1;
		}
		r->exited = 1;
	}
	return 1;
}

static void
cgi_close(int *fd)
{
	if (*fd != -1)
		(void)close(*fd);
	*fd = -1;
}

/* ---- the answers pipepool gives itself ---- */

/* A short answer of its own: code, a reason line, and a log line. */
static int
cgi_refuse(struct pp_response *res, const char *script, unsigned code,
    const char *why)
{
	log_warnx("cgi: %s: %s (%u)", script, why, code);
	if (pp_status(res, code) == -1 ||
	    pp_header(res, "Content-Type", CGI_TYPE) == -1 ||
	    pp_write(res, why, strlen(why)) == -1 ||
	    pp_write(res, "\n", 1) == -1)
		return -1;
	return 0;
}

/*
 * Is the script one to run?  0 with C.path (what to execve) and C.dir
 * (its directory), or the status to answer (404, 403) with *why.
 */
static unsigned
cgi_check(const char *script, const char **why)
{
	struct stat	st;
	char		*slash;

	*why = "SCRIPT_FILENAME is not an absolute path";
	if (script[0] != '/' || strlen(script) >= sizeof(C.path))
		return 403;
	if (C.root[0] == '\0')
		memcpy(C.path, script, strlen(script) + 1);
	else if (realpath(script, C.path) == NULL) {
		*why = errno == EACCES ? "permission denied" : "no such program";
		return errno == EACCES ? 403 : 404;
	} else if (strncmp(C.path, C.rroot, C.rroot_len) != 0 ||
	    (C.path[C.rroot_len] != '/' && C.rroot_len > 1)) {
		*why = "outside --cgi-root";
		return 403;
	}
	if (stat(C.path, &st) == -1) {
		*why = errno == EACCES ? "permission denied" : "no such program";
		return errno == EACCES ? 403 : 404;
	}
	*why = "not a regular file";
	if (!S_ISREG(st.st_mode))
		return 403;
	*why = "not executable";
	if (access(C.path, X_OK) == -1)
		return 403;
	memcpy(C.dir, C.path, strlen(C.path) + 1);
	slash = strrchr(C.dir, '/');
	slash[slash == C.dir] = '\0';	/* "/x" runs in "/" */
	return 0;
}

/*
 * The environment: every param as NAME=VALUE but HTTP_PROXY (a client's
 * "Proxy:" header, which programs take for their proxy: httpoxy) and
 * PIPEPOOL_DEADLINE_MS, which is ours.  Bounded: the params are.
 */
static void
cgi_environ(const struct pp_request *rq)
{
	const char	*k, *v;
	size_t		 it = 0, o = 0, n = 0, kl, vl;
	int64_t		 left = pp_deadline_ms(rq);

	while (pp_param_next(rq, &it, &k, &v)) {
		if (strcmp(k, "HTTP_PROXY") == 0 ||
		    strcmp(k, "PIPEPOOL_DEADLINE_MS") == 0)
			continue;
		kl = strlen(k);
		vl = strlen(v);
		if (kl + vl + 2 > sizeof(C.env) - o || n >= CGI_ENV_MAX)
			break;	/* cannot happen: params are bounded */
		C.envp[n++] = C.env + o;
		memcpy(C.env + o, k, kl);
		C.env[o + kl] = '=';
		memcpy(C.env + o + kl + 1, v, vl + 1);
		o += kl + vl + 2;
	}
	snprintf(C.deadline, sizeof(C.deadline), "PIPEPOOL_DEADLINE_MS=%lld",
	    (long long)(left > 0 ? left : 0));
	C.envp[n++] = C.deadline;
	C.envp[n] = NULL;
}

/* ---- starting it ---- */

enum { P_IN, P_OUT, P_ERR, P_N };

/*
 * What the child needs.  It runs on cgi_stack in our memory (CLONE_VM)
 * until its execve, and we are suspended meanwhile (CLONE_VFORK): so it
 * tells us why it failed in err, and writes nothing else of ours.
 */
struct cgi_start {
	int		 keep[P_N];	/* its stdin, stdout, stderr */
	pid_t		 parent;
	const char	*script;
	int		 err;		/* its errno, when it could not exec */
};

/* Its stack: a few frames of system-call wrappers (more with SAN=1). */
static char	cgi_stack[64 * 1024] __attribute__((aligned(64)));

/*
 * The child, between clone and execve: async-signal-safe calls only, and
 * every signal blocked until proc_exec_child has set them to their
 * defaults (a handler of ours must never run on its stack).  Its fds 0,
 * 1, 2 become the pipes and nothing else stays open; none of its signals
 * blocked; it dies with the worker.
 */
static int
cgi_child(void *arg)
{
	struct cgi_start	*s = arg;
	char			*argv[2];

	if (proc_exec_child(s->parent, s->keep, P_N) == -1 ||	/* 3 4 5 */
	    dup2(3, 0) == -1 || dup2(4, 1) == -1 || dup2(5, 2) == -1 ||
	    close_range(3, ~0U, 0) == -1 || chdir(C.dir) == -1)
		goto fail;
	argv[0] = (char *)(uintptr_t)s->script;
	argv[1] = NULL;
	execve(C.path, argv, C.envp);
fail:
	s->err = errno;
	_exit(127);
}

/* The pipes, close-on-exec; our ends never block (every wait polls). */
static int
cgi_pipes(int p[P_N][2])
{
	int	i;

	for (i = 0; i < P_N; i++)
		p[i][0] = p[i][1] = -1;
	for (i = 0; i < P_N; i++)
		if (pipe2(p[i], O_CLOEXEC) == -1)
			goto fail;
	/* Fewer, larger reads of a large answer; best effort. */
	(void)fcntl(p[P_OUT][0], F_SETPIPE_SZ, CGI_PIPE_SIZE);
	if (fcntl(p[P_IN][1], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(p[P_OUT][0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(p[P_ERR][0], F_SETFL, O_NONBLOCK) == -1)
		goto fail;
	return 0;
fail:
	log_warn("cgi: pipes");
	for (i = 0; i < P_N; i++) {
		cgi_close(&p[i][0]);
		cgi_close(&p[i][1]);
	}
	return -1;
}

/*
 * Start the program with the pipes: clone(2) with CLONE_VM | CLONE_VFORK,
 * as posix_spawn does (the worker's page tables are not copied, and no
 * page of it is copied on write afterwards), with what posix_spawn cannot
 * do (PR_SET_PDEATHSIG).  0, or -1 with errno its reason (0: pipepool's
 * fault, logged).
 */
static int
cgi_spawn(struct cgi_run *r)
{
	struct cgi_start	s;
	sigset_t		all, old;
	int			p[P_N][2], i, e;

	if (cgi_pipes(p) == -1)
		goto fail;
	s.keep[P_IN] = p[P_IN][0];
	s.keep[P_OUT] = p[P_OUT][1];
	s.keep[P_ERR] = p[P_ERR][1];
	s.parent = getpid();
	s.script = r->script;
	s.err = 0;
	sigfillset(&all);
	if (sigprocmask(SIG_SETMASK, &all, &old) == -1) {
		log_warn("cgi: sigprocmask");
		goto fail;
	}
	r->pid = clone(cgi_child, cgi_stack + sizeof(cgi_stack),
	    CLONE_VM | CLONE_VFORK | SIGCHLD, &s);
	e = errno;
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	if (r->pid == -1) {
		errno = e;
		log_warn("cgi: clone for %s", r->script);
		goto fail;
	}
	r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
	r->in = p[P_IN][1];
	r->out = p[P_OUT][0];
	r->err = p[P_ERR][0];
	p[P_IN][1] = p[P_OUT][0] = p[P_ERR][0] = -1;
	for (i = 0; i < P_N; i++)
		cgi_close(&p[i][1 - (i == P_IN)]);
	if (s.err != 0) {
		(void)cgi_reap(r, 1);
		errno = s.err;
		log_warn("cgi: cannot run %s", r->script);
		errno = s.err;
		return -1;
	}
	stats_worker_cgi(r->pid, r->script);
	return 0;
fail:
	for (i = 0; i < P_N; i++) {
		cgi_close(&p[i][0]);
		cgi_close(&p[i][1]);
	}
	errno = 0;
	return -1;
}

/* ---- its stdout: a CGI response (RFC 3875 section 6) ---- */

static void	out_head(struct cgi_run *, const char *, size_t);
static void	out_body(struct cgi_run *, const char *, size_t);
static void	out_drain(struct cgi_run *, const char *, size_t);

static void (*const out_state[])(struct cgi_run *, const char *, size_t) = {
	[CS_HEAD] = out_head,
	[CS_BODY] = out_body,
	[CS_DRAIN] = out_drain,
};

/* The program's answer is no use: stop it, drop the rest. */
static void
cgi_stop(struct cgi_run *r, unsigned code, const char *why)
{
	if (r->code == 0 && code != 0) {
		r->code = code;
		r->why = why;
	}
	r->state = CS_DRAIN;
	if (!r->exited)
		(void)kill(r->pid, SIGKILL);
	cgi_close(&r->in);
	cgi_close(&r->out);
}

/* What the answer holds goes out now (see CGI_PIECE). */
static void
cgi_flush(struct cgi_run *r)
{
	r->held_ms = 0;
	if (app_flush(r->res) == -1) {
		r->failed = 1;	/* the client is gone */
		cgi_stop(r, 0, NULL);
	}
}

/* An HTTP token (RFC 9110 tchar), as pp_header wants a name. */
static int
head_token(const char *s)
{
	static const char	tchar[] = "!#$%&'*+-.^_`|~"
	    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

	return *s != '\0' && s[strspn(s, tchar)] == '\0';
}

/* "NNN reason" (the reason is pipepool's own): 100..599, or 0. */
static unsigned
head_status(const char *v)
{
	if (v[0] < '1' || v[0] > '5' || v[1] < '0' || v[1] > '9' ||
	    v[2] < '0' || v[2] > '9' || (v[3] != '\0' && v[3] != ' '))
		return 0;
	return (unsigned)((v[0] - '0') * 100 + (v[1] - '0') * 10 +
	    (v[2] - '0'));
}

/*
 * Split the header block (C.head, up to its blank line) into lines of
 * "name\0value\0" in place, checking each; then apply it: the status
 * (Status:, else 302 for a Location:, else 200) and the other headers in
 * order.  A local redirect (a Location that is a path) goes to the client
 * as a 302 too: nginx cannot reprocess it.  0, or -1 after cgi_stop (502)
 * or with r->failed (pp_header refused: too long).
 */
static int
head_apply(struct cgi_run *r)
{
	char		*p = C.head, *end = C.head + r->head_len, *nl, *v;
	char		*names[256], *vals[256];
	unsigned	 status = 0, i, n = 0;
	int		 type = 0, loc = 0;

	if (memchr(C.head, '\0', r->head_len) != NULL)
		goto bad;
	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		*nl = '\0';
		if (nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		if (*p == '\0')
			break;
		if ((v = strchr(p, ':')) == NULL || n == 256)
			goto bad;
		*v++ = '\0';
		v += strspn(v, " \t");
		if (!head_token(p) || strchr(v, '\r') != NULL)
			goto bad;
		if (strcasecmp(p, "Status") == 0 &&
		    (status = head_status(v)) == 0)
			goto bad;
		type |= strcasecmp(p, "Content-Type") == 0;
		loc |= strcasecmp(p, "Location") == 0;
		names[n] = p;
		vals[n++] = v;
		p = nl + 1;
	}
	if (!type && !loc && !status)
		goto bad;
	(void)pp_status(r->res, status ? status : loc ? 302 : 200);
	for (i = 0; i < n; i++)
		if (strcasecmp(names[i], "Status") != 0 &&
		    pp_header(r->res, names[i], vals[i]) == -1) {
			pp_error(r->res, "the program's header block is too "
			    "long for pipepool");
			r->failed = 1;
			cgi_stop(r, 0, NULL);
			return -1;
		}
	return 0;
bad:
	cgi_stop(r, 502, "the program gave no valid header block");
	return -1;
}

/*
 * Gather the header block, up to its blank line (LF or CRLF line ends),
 * then apply it and hand what follows to the body.
 */
static void
out_head(struct cgi_run *r, const char *p, size_t n)
{
	size_t	 old = r->head_len, take, e, scan = r->scan;
	char	*nl;

	take = n < sizeof(C.head) - old ? n : sizeof(C.head) - old;
	memcpy(C.head + old, p, take);
	r->head_len += take;
	while ((nl = memchr(C.head + scan, '\n', r->head_len - scan)) != NULL) {
		e = (size_t)(nl - C.head) + 1;
		if (nl == C.head + scan || (nl == C.head + scan + 1 &&
		    C.head[scan] == '\r')) {
			r->head_len = e;
			if (head_apply(r) == -1)
				return;
			/* The quiet timer starts at the first body byte
			 * (out_body): a head alone stays here, so a program
			 * that hangs after it still gets its client 504. */
			r->state = CS_BODY;
			if (e - old < n)
				out_body(r, p + (e - old), n - (e - old));
			return;
		}
		scan = r->scan = e;
	}
	if (r->head_len == sizeof(C.head))
		cgi_stop(r, 502, "the program's header block passed 64 KiB");
}

static void
out_body(struct cgi_run *r, const char *p, size_t n)
{
	if (pp_write(r->res, p, n) == -1) {
		r->failed = 1;	/* the client is gone, or too large */
		cgi_stop(r, 0, NULL);
	} else if (app_held() >= CGI_PIECE)
		cgi_flush(r);
	else if (r->held_ms == 0)
		r->held_ms = proc_now_ms();
}

static void
out_drain(struct cgi_run *r, const char *p, size_t n)
{
	(void)r;
	(void)p;
	(void)n;
}

/* ---- the request's run ---- */

#define CGI_ERR_LINES	1000	/* stderr lines logged per request */

static void
err_emit(struct cgi_run *r)
{
	if (r->err_len == 0)
		return;
	if (r->err_lines < CGI_ERR_LINES)
		log_warnx("%s: %.*s", r->script, (int)r->err_len,
		    r->err_line);
	else if (r->err_lines == CGI_ERR_LINES)
		log_warnx("%s: more than %d lines on stderr; dropping the "
		    "rest", r->script, CGI_ERR_LINES);
	r->err_lines++;
	r->err_len = 0;
}

/* Its stderr, a line (or a CGI_LINE_MAX piece of one) a log line. */
static void
err_take(struct cgi_run *r, const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n') {
			if (r->err_len > 0 && r->err_line[r->err_len - 1] ==
			    '\r')
				r->err_len--;
			err_emit(r);
			continue;
		}
		if (r->err_len == sizeof(r->err_line))
			err_emit(r);
		r->err_line[r->err_len++] = s[i];
	}
}

/* Read what fd has; at its end (or an error) close it and return 0. */
static int
cgi_read(struct cgi_run *r, int *fd, int is_out)
{
	ssize_t	n;
	int	i;

	for (i = 0; i < CGI_ROUNDS && *fd != -1; i++) {
		if ((n = read(*fd, C.rd, sizeof(C.rd))) > 0) {
			if (is_out)
				out_state[r->state](r, C.rd, (size_t)n);
			else
				err_take(r, C.rd, (size_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 1;
		if (n == -1)
			log_warn("cgi: reading %s's %s", r->script, is_out ?
			    "stdout" : "stderr");
		cgi_close(fd);
		if (is_out && r->state == CS_HEAD)
			cgi_stop(r, 502, r->head_len == 0 ? "the program wrote "
			    "nothing" : "the program gave no valid header "
			    "block");
		return 0;
	}
	return *fd != -1;
}

/* The body to its stdin, as much as the pipe takes; closed after it. */
static void
cgi_feed(struct cgi_run *r)
{
	size_t	left = r->body_len - r->body_off;
	ssize_t	n;

	while (left > 0) {
		n = write(r->in, r->body + r->body_off, left > CGI_READ ?
		    CGI_READ : left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n == -1)
			break;	/* EPIPE: it does not read its body */
		r->body_off += (size_t)n;
		left -= (size_t)n;
	}
	cgi_close(&r->in);
}

/*
 * Until its stdout ends and it has exited: its stdin, stdout, stderr and
 * exit polled at once.  Past until (the deadline and CGI_GRACE_MS: the
 * master should have killed the worker by then) it is killed: 504.
 */
static void
cgi_loop(struct cgi_run *r, int64_t until)
{
	struct pollfd	pfd[4];
	int64_t		left, now, quiet;

	while (r->out != -1 || !r->exited) {
		now = proc_now_ms();
		if ((left = until - now) <= 0) {
			cgi_stop(r, 504, "the program took longer than "
			    "--timeout");
			break;
		}
		if (r->held_ms != 0 && r->state == CS_BODY) {
			if ((quiet = r->held_ms + CGI_QUIET_MS - now) <= 0) {
				cgi_flush(r);
				continue;
			}
			if (left > quiet)
				left = quiet;
		}
		if (r->pidfd == -1 && left > 10)
			left = 10;	/* no pidfd: look at its exit often */
		pfd[0] = (struct pollfd){ r->in, POLLOUT, 0 };
		pfd[1] = (struct pollfd){ r->out, POLLIN, 0 };
		pfd[2] = (struct pollfd){ r->err, POLLIN, 0 };
		pfd[3] = (struct pollfd){ r->exited ? -1 : r->pidfd, POLLIN, 0 };
		if (poll(pfd, 4, left > INT_MAX ? INT_MAX : (int)left) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("cgi: poll");
			cgi_stop(r, 502, "pipepool could not wait for the "
			    "program");
			break;
		}
		if (pfd[0].revents)
			cgi_feed(r);
		if (pfd[1].revents)
			(void)cgi_read(r, &r->out, 1);
		if (pfd[2].revents)
			(void)cgi_read(r, &r->err, 0);
		if (pfd[3].revents || r->pidfd == -1)
			(void)cgi_reap(r, 0);
	}
}

/* What it printed on stderr and has not been logged yet; then close. */
static void
cgi_end(struct cgi_run *r)
{
	char	how[128];

	if (r->err != -1)
		(void)cgi_read(r, &r->err, 0);
	err_emit(r);
	cgi_close(&r->in);
	cgi_close(&r->out);
	cgi_close(&r->err);
	cgi_close(&r->pidfd);
	(void)cgi_reap(r, 1);
	if (r->status != 0 && (r->code != 0 || !r->failed)) {
		proc_describe_exit(r->status, how, sizeof(how));
		log_warnx("cgi: %s (pid %ld) %s", r->script, (long)r->pid, how);
	}
}

/* The program could not be started (errno e, 0: pipepool's fault). */
static int
cgi_unstarted(struct pp_response *res, const char *script, int e)
{
	switch (e) {
	case EACCES:
	case EPERM:
		return cgi_refuse(res, script, 403, "permission denied");
	case ENOEXEC:
		return cgi_refuse(res, script, 502, "not a program its system "
		    "can run (no #! line?)");
	case ENOENT:
		return cgi_refuse(res, script, 502, "its interpreter (#! line) "
		    "is missing");
	default:
		pp_error(res, "pipepool could not start the program");
		return -1;
	}
}

static int
cgi_run(struct cgi_run *r, const struct pp_request *rq)
{
	int64_t	until = proc_now_ms() + pp_deadline_ms(rq) + CGI_GRACE_MS;

	r->body = pp_body(rq, &r->body_len);
	if (cgi_spawn(r) == -1)
		return cgi_unstarted(r->res, r->script, errno);
	cgi_feed(r);
	cgi_loop(r, until);
	cgi_end(r);
	if (r->failed)
		return -1;
	if (r->code != 0)
		return cgi_refuse(r->res, r->script, r->code, r->why);
	return 0;
}

static int
cgi_handle(const struct pp_request *rq, struct pp_response *res)
{
	static struct cgi_run	 r;
	const char		*script = pp_param(rq, "SCRIPT_FILENAME");
	const char		*why;
	unsigned		 code;
	int			 rc;

	if (script == NULL || *script == '\0') {
		log_warnx("cgi: a request without SCRIPT_FILENAME");
		pp_error(res, "no SCRIPT_FILENAME param (see "
		    "conf/nginx-cgi.conf)");
		return -1;
	}
	if ((code = cgi_check(script, &why)) != 0)
		return cgi_refuse(res, script, code, why);
	cgi_environ(rq);
	memset(&r, 0, sizeof(r));
	r.script = script;
	r.res = res;
	r.pid = -1;
	r.pidfd = r.in = r.out = r.err = -1;
	sigchld_block(1);
	rc = cgi_run(&r, rq);
	stats_worker_cgi(0, NULL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;	/* helpers orphaned to the worker */
	sigchld_block(0);
	return rc;
}

/* ---- the worker's life ---- */

static int
cgi_init(unsigned worker)
{
	struct sigaction	sa;

	(void)worker;
	if (C.root[0] != '\0') {
		if (realpath(C.root, C.rroot) == NULL) {
			log_warn("cgi: --cgi-root %s", C.root);
			return -1;
		}
		C.rroot_len = strlen(C.rroot);
	}
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == -1 ||
	    sigaction(SIGCHLD, &sa, NULL) == -1) {
		log_warn("cgi: becoming the reaper of programs");
		return -1;
	}
	return 0;
}

/*
 * At retirement: a helper still running (orphaned to the worker) would
 * outlive it.  Kill every child, reap it, and again for those its end
 * orphaned to us, a bounded number of rounds.
 */
static void
cgi_fini(void)
{
	char	path[64], buf[4096], *p, *e;
	ssize_t	n;
	long	pid;
	int	fd, round, any;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/children",
	    (long)getpid());
	sigchld_block(1);
	for (round = 0, any = 1; round < 8 && any; round++) {
		any = 0;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			break;
		n = read(fd, buf, sizeof(buf) - 1);
		(void)close(fd);
		buf[n > 0 ? n : 0] = '\0';
		for (p = buf; (pid = strtol(p, &e, 10)) > 0; p = e, any = 1)
			(void)kill((pid_t)pid, SIGKILL);
		for (p = buf; (pid = strtol(p, &e, 10)) > 0; p = e)
			while (waitpid((pid_t)pid, NULL, 0) == -1 &&
			    errno == EINTR)
				;
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static struct pp_app	cgi = { PIPEPOOL_ABI, "cgi", cgi_init, cgi_handle,
			    cgi_fini };

const struct pp_app *
cgi_app(const char *root)
{
	C.root = root;
	return &cgi;
}
