/*
 * exec.c: the exec adapter (exec.h): each worker runs one long-running
 * program and relays its requests to it over two pipes.
 *
 * init starts the program (its fds 3 and 4 the pipes, stdin /dev/null,
 * stdout and stderr pipes that a logger thread turns into log lines, so
 * nothing it prints can reach the protocol) and waits for its READY.
 * handle writes one REQUEST frame and relays HEAD, each BODY and END or
 * ERROR to pp_status/pp_header, pp_write and pp_error as they come, so an
 * answer of any size streams through one frame at a time.  fini closes
 * the request pipe, which asks the program to exit, and reaps it.
 *
 * Faults: a program that exits, crashes or writes a malformed frame has
 * broken its worker.  The adapter logs why, kills the program and _exits
 * the worker (status 2) without answering: the front gives the client 502
 * and the master respawns the worker with its back-off, as for any worker
 * fault.  A program that dies between requests ends its worker the same
 * way, from the logger thread, so that no request meets a dead program
 * (but one already on its way: see exec_logger_exited).  A
 * hang is the master's to end: past --timeout it kills the worker's
 * process group, the program with it; the adapter itself gives up only
 * EXEC_GRACE_MS after a request's deadline.
 *
 * Who owns the program is ex.state: IDLE between requests (the logger
 * may claim a death), BUSY in init and handle (the caller's thread deals
 * with it), GONE once one of them took it over for good.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wordexp.h>

#include "exec.h"
#include "log.h"
#include "pipepool.h"
#include "proc.h"

#define EXEC_READY_MS	10000	/* from the start to READY */
#define EXEC_EXIT_MS	1000	/* from the request pipe's close to exit */
#define EXEC_GRACE_MS	5000	/* past a deadline, for the master's kill */
#define EXEC_REAP_MS	200	/* for a program whose pipe closed to exit */
#define EXEC_DRAIN_MS	500	/* for the logger to log a dead program's
				 * last lines */
#define EXEC_BUSY_MS	50	/* the logger's look at a death in handle */
#define EXEC_SETTLE_MS	100	/* for an answer to leave before the
				 * logger ends an idle worker */
#define EXEC_REASON_MAX	256	/* of an ERROR frame's text, for pp_error */
#define EXEC_PIPE_SIZE	(1024 * 1024)
/* One log line's share of a line of output, as log.c escapes it (4 bytes
 * per control byte); log.c's lines are 1 KiB with their prefix. */
#define EXEC_LOG_PIECE	896
#define EXEC_OUT_READS	16	/* reads of one stream per poll round */
/* Room for a whole frame and a read beyond it. */
#define EXEC_IN_CAP	(sizeof(struct exec_hdr) + EXEC_FRAME_MAX + 65536)
#define EXEC_IN_ROOM	65536	/* the least room a read gets */
#define EXEC_ANSWER	(1u << EXEC_HEAD | 1u << EXEC_BODY | 1u << EXEC_END | \
			 1u << EXEC_ERROR)

_Static_assert(sizeof(struct exec_hdr) == 16, "exec_hdr is 16 bytes");

enum exec_state { EXEC_S_IDLE, EXEC_S_BUSY, EXEC_S_GONE };

struct exec_buf {
	unsigned char	*p;
	size_t		 cap;
	size_t		 start;		/* first unconsumed byte */
	size_t		 end;		/* one past the last byte */
};

/* One of the program's output streams, on its way to the log. */
struct exec_out {
	int		 fd;
	const char	*name;		/* "stdout", "stderr" */
	char		 line[EXEC_LOG_PIECE];
	size_t		 len;
	size_t		 cost;		/* len as log.c escapes it */
	int		 cont;		/* this piece continues a line */
};

/* One answer being relayed. */
struct exec_answer {
	struct pp_response	*res;
	int			 headed;	/* HEAD came */
	int			 bodied;	/* a BODY came */
	int			 failed;	/* pp_* refused: read on, -1 */
};

static struct {
	const char	*cmdline;
	const char	*name;		/* its first word, for the log */
	wordexp_t	 words;
	int		 have_words;
	char		*path;		/* the file to run */
	char		**envp;
	char		 worker_env[32];	/* PIPEPOOL_WORKER=N */
	pid_t		 pid;
	int		 pidfd;		/* -1 without pidfd_open(2) */
	int		 reaped;
	int		 status;	/* its wait status, once reaped */
	int		 killed;	/* we sent the SIGKILL */
	int		 running;	/* init succeeded */
	int		 req_fd;	/* our end of its fd 3 */
	int		 rep_fd;	/* our end of its fd 4 */
	struct exec_out	 out[2];
	pthread_t	 logger;
	int		 logging;	/* the logger thread is not joined */
	atomic_int	 state;		/* enum exec_state */
	uint64_t	 id;		/* the request in flight, from 1 */
	int64_t		 until;		/* when handle stops waiting */
	char		 why[160];	/* what exec_next found wrong */
	struct exec_buf	 in;		/* frames from the program */
	struct exec_buf	 head;		/* a REQUEST's header and params */
	struct exec_buf	 scratch;	/* a header's NUL-ended strings */
} ex = {
	.pid = -1, .pidfd = -1, .req_fd = -1, .rep_fd = -1,
	.out = { { .fd = -1, .name = "stdout" },
	    { .fd = -1, .name = "stderr" } },
};

extern char **environ;

static void	exec_fault(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));

static uint32_t
get32(const unsigned char *p)
{
	uint32_t	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void
put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static int
exec_reserve(struct exec_buf *b, size_t more)
{
	unsigned char	*np;
	size_t		 ncap;

	if (b->cap - b->end >= more)
		return 0;
	if (more > SIZE_MAX / 2 - b->end) {
		errno = ENOMEM;
		return -1;
	}
	ncap = b->cap ? b->cap : 4096;
	while (ncap - b->end < more)
		ncap *= 2;
	if ((np = realloc(b->p, ncap)) == NULL)
		return -1;
	b->p = np;
	b->cap = ncap;
	return 0;
}

static void
exec_buf_free(struct exec_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* "exited with status 3", "was killed by signal 9 (Killed)". */
static void
exec_describe(int status, char *buf, size_t size)
{
	if (status == -1)
		snprintf(buf, size, "is gone (no exit status)");
	else if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "was killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    ex.killed ? " (by pipepool)" : "");
	else
		snprintf(buf, size, "ended with wait status %#x", status);
}

/* ---- the program's output, to the log (the logger thread) ---- */

static void
exec_out_emit(struct exec_out *o)
{
	if (o->len > 0 || o->cont)
		log_info("exec[%d] %s%s: %.*s", (int)ex.pid, o->name,
		    o->cont ? "+" : "", (int)o->len, o->line);
	o->len = o->cost = 0;
}

/*
 * Cut the bytes into log lines: at each newline (a CR before it dropped)
 * or NUL (log lines are C strings), and into pieces that log.c's line
 * holds whole once escaped; a piece that continues a line is "stdout+".
 */
static void
exec_out_take(struct exec_out *o, const char *s, size_t n)
{
	unsigned char	c;
	size_t		i, cost;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '\n' || c == '\0') {
			if (c == '\n' && o->len > 0 &&
			    o->line[o->len - 1] == '\r')
				o->len--;
			exec_out_emit(o);
			o->cont = 0;
			continue;
		}
		cost = c >= 0x20 && c != 0x7f && c != '\\' ? 1 : 4;
		if (o->cost + cost > sizeof(o->line)) {
			exec_out_emit(o);
			o->cont = 1;
		}
		o->line[o->len++] = (char)c;
		o->cost += cost;
	}
}

/* Read what is there.  Returns 0 at the stream's end (its rest logged). */
static int
exec_out_read(struct exec_out *o)
{
	char	buf[4096];
	ssize_t	n;
	int	i;

	for (i = 0; i < EXEC_OUT_READS; i++) {
		n = read(o->fd, buf, sizeof(buf));
		if (n > 0) {
			exec_out_take(o, buf, (size_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 1;
		if (n == -1)
			log_warn("exec: reading %s's %s", ex.name, o->name);
		exec_out_emit(o);
		return 0;
	}
	return 1;
}

/* ---- the program's life ---- */

/*
 * Reap the program, waiting up to ms for it to exit by itself and then
 * killing it.  Returns its wait status, or -1 if it cannot be had.
 */
static int
exec_reap(int ms)
{
	struct pollfd	pfd = { ex.pidfd, POLLIN, 0 };
	int64_t		end = proc_now_ms() + ms, left;
	pid_t		r;

	while (!ex.reaped) {
		if ((left = end - proc_now_ms()) <= 0 && !ex.killed) {
			(void)kill(ex.pid, SIGKILL);
			ex.killed = 1;
		}
		r = waitpid(ex.pid, &ex.status, left > 0 ? WNOHANG : 0);
		if (r == ex.pid)
			ex.reaped = 1;
		else if (r == -1 && errno != EINTR) {
			ex.reaped = 1;
			ex.status = -1;
		} else if (r == 0)
			(void)poll(&pfd, ex.pidfd != -1,
			    ex.pidfd != -1 ? (int)left : 10);
	}
	return ex.status;
}

/* Wait up to ms for the logger to log all the program printed. */
static void
exec_logger_join(int ms)
{
	struct timespec	ts;

	if (!ex.logging)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	if (pthread_timedjoin_np(ex.logger, NULL, &ts) == 0)
		ex.logging = 0;
}

/* The program broke its protocol: kill it, end the worker (502). */
static void
exec_fault(const char *fmt, ...)
{
	char	why[256];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	atomic_store(&ex.state, EXEC_S_GONE);
	log_warnx("exec: %s (pid %d): %s; killing it and its worker",
	    ex.name, (int)ex.pid, why);
	(void)exec_reap(0);
	exec_logger_join(EXEC_DRAIN_MS);
	_exit(2);
}

/* The program is gone (when: "while answering"): end the worker (502). */
static void __attribute__((noreturn))
exec_died(const char *when)
{
	char	what[96];
	int	status;

	atomic_store(&ex.state, EXEC_S_GONE);
	status = exec_reap(EXEC_REAP_MS);
	exec_logger_join(EXEC_DRAIN_MS);
	exec_describe(status, what, sizeof(what));
	log_warnx("exec: %s (pid %d) %s %s; its worker exits", ex.name,
	    (int)ex.pid, what, when);
	_exit(2);
}

/*
 * The logger saw the program exit.  Between requests the death is the
 * logger's: it logs what is left to log and ends the worker, so the next
 * request finds a new one.  Returns 1 if a request holds the program (look
 * again soon: it may be back to idle), 0 if the program is being stopped.
 */
static int
exec_logger_exited(void)
{
	int	idle = EXEC_S_IDLE, i, status;
	char	what[96];

	if (!atomic_compare_exchange_strong(&ex.state, &idle, EXEC_S_GONE))
		return idle == EXEC_S_BUSY;
	for (i = 0; i < 2; i++)
		if (ex.out[i].fd != -1 && exec_out_read(&ex.out[i]))
			exec_out_emit(&ex.out[i]);
	status = exec_reap(EXEC_REAP_MS);
	exec_describe(status, what, sizeof(what));
	log_warnx("exec: %s (pid %d) %s between requests; its worker exits",
	    ex.name, (int)ex.pid, what);
	/* The answer handed to pp_* a moment ago may still be on its way. */
	(void)poll(NULL, 0, EXEC_SETTLE_MS);
	_exit(2);
}

/* The logger thread: the program's stdout and stderr, and its exit. */
static void *
exec_logger(void *unused)
{
	struct pollfd	pfd[3];
	int		i, n, paused = 0;

	(void)unused;
	for (i = 0; i < 2; i++)
		pfd[i] = (struct pollfd){ ex.out[i].fd, POLLIN, 0 };
	pfd[2] = (struct pollfd){ ex.pidfd, POLLIN, 0 };
	/* The output may end a moment before the exit shows. */
	while (pfd[0].fd != -1 || pfd[1].fd != -1 || pfd[2].fd != -1 ||
	    paused) {
		n = poll(pfd, 3, paused ? EXEC_BUSY_MS : -1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			log_warn("exec: poll of %s's output", ex.name);
			break;
		}
		if (n == 0) {
			pfd[2].fd = ex.pidfd;
			paused = 0;
		}
		for (i = 0; i < 2; i++)
			if (pfd[i].revents && !exec_out_read(&ex.out[i]))
				pfd[i].fd = -1;
		if (pfd[2].revents) {
			paused = exec_logger_exited();
			pfd[2].fd = -1;
		}
	}
	return NULL;
}

/* The logger starts with every signal blocked: they are the worker's. */
static int
exec_logger_start(void)
{
	sigset_t	all, old;
	int		e;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&ex.logger, NULL, exec_logger, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		errno = e;
		log_warn("exec: a thread for %s's output", ex.name);
		return -1;
	}
	ex.logging = 1;
	return 0;
}

/* ---- starting it ---- */

static const char *
exec_wrde(int r)
{
	switch (r) {
	case WRDE_BADCHAR:
		return "an unquoted |, &, ;, <, >, (, ), {, } or newline "
		    "(quote it, or run the line with sh -c '...')";
	case WRDE_BADVAL:
		return "an undefined shell variable";
	case WRDE_CMDSUB:
		return "command substitution is not allowed";
	case WRDE_NOSPACE:
		return "out of memory";
	case WRDE_SYNTAX:
		return "a shell syntax error (an unbalanced quote?)";
	default:
		return "no program named";
	}
}

/* Split the command line into ex.words as sh would, running nothing. */
static int
exec_words(void)
{
	int	r = -1;

	if (ex.cmdline != NULL)
		r = wordexp(ex.cmdline, &ex.words, WRDE_NOCMD | WRDE_UNDEF);
	if (r == WRDE_NOSPACE)
		wordfree(&ex.words);
	if (r == 0 && ex.words.we_wordc == 0) {
		wordfree(&ex.words);
		r = -1;
	}
	if (r != 0) {
		log_warnx("exec: --exec \"%s\": %s", ex.cmdline ?
		    ex.cmdline : "", exec_wrde(r));
		return -1;
	}
	ex.have_words = 1;
	ex.name = ex.words.we_wordv[0];
	return 0;
}

static int
exec_runnable(const char *path)
{
	struct stat	st;

	return access(path, X_OK) == 0 && stat(path, &st) == 0 &&
	    S_ISREG(st.st_mode);
}

/*
 * The file to run: the first word if it has a slash (execve tells what is
 * wrong with it), else the first runnable file of that name in PATH, as
 * execvp(3) looks for it; here, because a child after fork may only make
 * async-signal-safe calls.
 */
static int
exec_locate(void)
{
	const char	*dirs = getenv("PATH"), *d, *colon;
	size_t		 dl;

	if (strchr(ex.name, '/') != NULL)
		return (ex.path = strdup(ex.name)) == NULL ? -1 : 0;
	if (dirs == NULL)
		dirs = "/usr/local/bin:/usr/bin:/bin";
	for (d = dirs; ; d = colon + 1) {
		if ((colon = strchr(d, ':')) == NULL)
			colon = d + strlen(d);
		dl = (size_t)(colon - d);
		free(ex.path);
		if (asprintf(&ex.path, "%.*s%s%s", (int)dl, d, dl ? "/" : "",
		    ex.name) == -1) {
			ex.path = NULL;
			return -1;
		}
		if (exec_runnable(ex.path))
			return 0;
		if (*colon == '\0')
			break;
	}
	log_warnx("exec: %s: not found in PATH (%s)", ex.name, dirs);
	return -1;
}

/* The worker's environment with the PIPEPOOL_* names set to ours. */
static int
exec_environ(unsigned worker)
{
	static char	req[] = "PIPEPOOL_REQUEST_FD=3";
	static char	rep[] = "PIPEPOOL_REPLY_FD=4";
	size_t		i, n;

	_Static_assert(EXEC_REQUEST_FD == 3 && EXEC_REPLY_FD == 4,
	    "the names above say 3 and 4");
	for (n = 0; environ[n] != NULL; n++)
		;
	if ((ex.envp = calloc(n + 4, sizeof(*ex.envp))) == NULL) {
		log_warn("exec: environment");
		return -1;
	}
	snprintf(ex.worker_env, sizeof(ex.worker_env), "PIPEPOOL_WORKER=%u",
	    worker);
	for (i = n = 0; environ[i] != NULL; i++)
		if (strncmp(environ[i], "PIPEPOOL_REQUEST_FD=", 20) != 0 &&
		    strncmp(environ[i], "PIPEPOOL_REPLY_FD=", 18) != 0 &&
		    strncmp(environ[i], "PIPEPOOL_WORKER=", 16) != 0)
			ex.envp[n++] = environ[i];
	ex.envp[n++] = req;
	ex.envp[n++] = rep;
	ex.envp[n++] = ex.worker_env;
	return 0;
}

static int
exec_buffers(void)
{
	if (exec_reserve(&ex.in, EXEC_IN_CAP) == -1 ||
	    exec_reserve(&ex.scratch, EXEC_FRAME_MAX + 2) == -1) {
		log_warn("exec: buffers");
		return -1;
	}
	return 0;
}

enum { P_REQ, P_REP, P_OUT, P_ERR, P_CK, P_N };

/*
 * The child, between fork and execve: async-signal-safe calls only (the
 * worker may have threads).  Its fds become 3 (requests), 4 (answers),
 * 0 /dev/null, 1 and 2 the log pipes, nothing else; its signals their
 * defaults; and it dies with the thread that forked it.  Any failure goes
 * to the parent as an errno on the close-on-exec pipe P_CK.
 */
static void __attribute__((noreturn))
exec_child(int p[P_N][2], int devnull, pid_t parent)
{
	int	keep[6] = { p[P_REQ][0], p[P_REP][1], p[P_CK][1],
		    p[P_OUT][1], p[P_ERR][1], devnull };
	int	ck = p[P_CK][1];

	if (proc_exec_child(parent, keep, 6) == -1)	/* 3 4 5 6 7 8 */
		proc_exec_fail(ck);
	ck = 5;
	if (dup2(8, 0) == -1 || dup2(6, 1) == -1 || dup2(7, 2) == -1 ||
	    close(6) == -1 || close(7) == -1 || close(8) == -1 ||
	    fcntl(ck, F_SETFD, FD_CLOEXEC) == -1)
		goto fail;
	execve(ex.path, ex.words.we_wordv, ex.envp);
fail:
	proc_exec_fail(ck);
}

static void
exec_close(int *fd)
{
	if (*fd != -1)
		(void)close(*fd);
	*fd = -1;
}

/* The pipes, close-on-exec; our ends never block (every wait polls). */
static int
exec_pipes(int p[P_N][2], int *devnull)
{
	int	i;

	for (i = 0; i < P_N; i++)
		p[i][0] = p[i][1] = -1;
	if ((*devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("exec: /dev/null");
		return -1;
	}
	for (i = 0; i < P_N; i++)
		if (pipe2(p[i], O_CLOEXEC) == -1) {
			log_warn("exec: pipe");
			return -1;
		}
	if (fcntl(p[P_REQ][1], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(p[P_REP][0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(p[P_OUT][0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(p[P_ERR][0], F_SETFL, O_NONBLOCK) == -1) {
		log_warn("exec: O_NONBLOCK");
		return -1;
	}
	/* Larger pipes: fewer wake-ups for large bodies; a hint only. */
	(void)fcntl(p[P_REQ][1], F_SETPIPE_SZ, EXEC_PIPE_SIZE);
	(void)fcntl(p[P_REP][0], F_SETPIPE_SZ, EXEC_PIPE_SIZE);
	return 0;
}

/* After fork: keep our ends in ex, close the child's and the rest. */
static void
exec_keep_ends(int p[P_N][2], int *devnull)
{
	ex.req_fd = p[P_REQ][1];
	ex.rep_fd = p[P_REP][0];
	ex.out[0].fd = p[P_OUT][0];
	ex.out[1].fd = p[P_ERR][0];
	p[P_REQ][1] = p[P_REP][0] = p[P_OUT][0] = p[P_ERR][0] = -1;
	exec_close(&p[P_REQ][0]);
	exec_close(&p[P_REP][1]);
	exec_close(&p[P_OUT][1]);
	exec_close(&p[P_ERR][1]);
	exec_close(&p[P_CK][1]);
	exec_close(devnull);
}

/* Start the program; 0 once its execve succeeded. */
static int
exec_spawn(void)
{
	int	p[P_N][2], devnull = -1, e, i;
	pid_t	parent = getpid();
	ssize_t	n;

	if (exec_pipes(p, &devnull) == -1)
		goto fail;
	if ((ex.pid = fork()) == -1) {
		log_warn("exec: fork");
		goto fail;
	}
	if (ex.pid == 0)
		exec_child(p, devnull, parent);
	exec_keep_ends(p, &devnull);
	while ((n = read(p[P_CK][0], &e, sizeof(e))) == -1 && errno == EINTR)
		;
	exec_close(&p[P_CK][0]);
	if (n != 0) {
		errno = n == (ssize_t)sizeof(e) ? e : EIO;
		log_warn("exec: cannot run %s", ex.path);
		(void)exec_reap(EXEC_REAP_MS);
		return -1;
	}
#ifdef SYS_pidfd_open
	ex.pidfd = (int)syscall(SYS_pidfd_open, ex.pid, 0);
#endif
	return 0;
fail:
	for (i = 0; i < P_N; i++) {
		exec_close(&p[i][0]);
		exec_close(&p[i][1]);
	}
	exec_close(&devnull);
	ex.pid = -1;
	return -1;
}

/* ---- frames ---- */

/*
 * Wait until fd has events or the program has exited, until the monotonic
 * time until.  Returns 1 when fd is ready, 0 when only the program's exit
 * is, -1 with errno ETIMEDOUT at until (or poll's errno).
 */
static int
exec_wait(int fd, short events, int64_t until)
{
	struct pollfd	pfd[2] = { { fd, events, 0 }, { ex.pidfd, POLLIN, 0 } };
	int64_t		left;
	int		r;

	for (;;) {
		if ((left = until - proc_now_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(pfd, 2, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return pfd[0].revents != 0;
		if (r == -1 && errno != EINTR)
			return -1;
	}
}

/*
 * Read more of the program's answer into ex.in.  Returns 1; 0 when the
 * program is gone (end of file, or it exited and nothing is left to read);
 * -1 at until (errno ETIMEDOUT) or on an error, with ex.why.
 */
static int
exec_fill(int64_t until)
{
	struct exec_buf	*b = &ex.in;
	ssize_t		 n;
	int		 r;

	if (b->start == b->end)
		b->start = b->end = 0;
	else if (b->cap - b->end < EXEC_IN_ROOM) {
		memmove(b->p, b->p + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
	for (;;) {
		if ((r = exec_wait(ex.rep_fd, POLLIN, until)) == -1)
			break;
		n = read(ex.rep_fd, b->p + b->end, b->cap - b->end);
		if (n > 0) {
			b->end += (size_t)n;
			return 1;
		}
		if (n == 0 || (r == 0 && errno == EAGAIN))
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			break;
	}
	snprintf(ex.why, sizeof(ex.why), "reading its answer: %s",
	    strerror(errno));
	return -1;
}

/* 0 if a header is one that may come now, else -1 with ex.why. */
static int
exec_check(const struct exec_hdr *h, unsigned types)
{
	if (h->type >= 32 || (types & 1u << h->type) == 0)
		snprintf(ex.why, sizeof(ex.why), "malformed frame (type %u)",
		    h->type);
	else if (h->len > EXEC_FRAME_MAX)
		snprintf(ex.why, sizeof(ex.why), "malformed frame (type %u, "
		    "%u bytes, over the limit of %u)", h->type, h->len,
		    EXEC_FRAME_MAX);
	else if (h->id != ex.id)
		snprintf(ex.why, sizeof(ex.why), "malformed frame (type %u "
		    "for request %llu, not %llu)", h->type,
		    (unsigned long long)h->id, (unsigned long long)ex.id);
	else
		return 0;
	errno = EPROTO;
	return -1;
}

/*
 * The next whole frame, of one of the types in the mask types and for
 * the request in flight; its payload stays in ex.in until the next call.
 * Returns 1; 0 when the program is gone; -1 with ex.why and errno
 * EPROTO (a malformed header), ETIMEDOUT (until passed) or another.
 */
static int
exec_next(struct exec_hdr *h, const unsigned char **payload, unsigned types,
    int64_t until)
{
	struct exec_buf	*b = &ex.in;
	size_t		 have;
	int		 r;

	for (;;) {
		have = b->end - b->start;
		if (have >= sizeof(*h)) {
			memcpy(h, b->p + b->start, sizeof(*h));
			if (exec_check(h, types) == -1)
				return -1;
			if (have - sizeof(*h) >= h->len) {
				*payload = b->p + b->start + sizeof(*h);
				b->start += sizeof(*h) + h->len;
				return 1;
			}
		}
		if ((r = exec_fill(until)) != 1)
			return r;
	}
}

/* Wait for READY; on any other outcome the program is reaped. */
static int
exec_ready(void)
{
	struct exec_hdr		 h;
	const unsigned char	*p;
	char			 what[96];
	int			 r;

	r = exec_next(&h, &p, 1u << EXEC_READY, proc_now_ms() + EXEC_READY_MS);
	if (r == 1 && h.len != 4)
		snprintf(ex.why, sizeof(ex.why), "malformed READY (%u bytes)",
		    h.len);
	else if (r == 1 && get32(p) != EXEC_VERSION)
		snprintf(ex.why, sizeof(ex.why), "speaks protocol version %u, "
		    "not %u", get32(p), EXEC_VERSION);
	else if (r == 1)
		return 0;
	else if (r == -1 && errno == ETIMEDOUT)
		snprintf(ex.why, sizeof(ex.why), "sent no READY within %d s",
		    EXEC_READY_MS / 1000);
	if (r == 0) {
		exec_describe(exec_reap(EXEC_REAP_MS), what, sizeof(what));
		exec_logger_join(EXEC_DRAIN_MS);
		log_warnx("exec: %s (pid %d) %s before it was READY", ex.name,
		    (int)ex.pid, what);
		return -1;
	}
	log_warnx("exec: %s (pid %d): %s; killing it", ex.name, (int)ex.pid,
	    ex.why);
	(void)exec_reap(0);
	exec_logger_join(EXEC_DRAIN_MS);
	return -1;
}

/* ---- one request ---- */

static int
exec_param(struct exec_buf *b, const char *name, const char *value,
    uint32_t *n)
{
	size_t	nl = strlen(name), vl = strlen(value);

	if (nl > UINT32_MAX || vl > UINT32_MAX ||
	    exec_reserve(b, 8 + nl + vl) == -1)
		return -1;
	put32(b->p + b->end, (uint32_t)nl);
	put32(b->p + b->end + 4, (uint32_t)vl);
	memcpy(b->p + b->end + 8, name, nl);
	memcpy(b->p + b->end + 8 + nl, value, vl);
	b->end += 8 + nl + vl;
	(*n)++;
	return 0;
}

/* The params exec_params() sends first, from pp_method and the like. */
static int
exec_ours(const char *name)
{
	return strcmp(name, "REQUEST_METHOD") == 0 ||
	    strcmp(name, "PIPEPOOL_PATH") == 0 ||
	    strcmp(name, "QUERY_STRING") == 0;
}

/*
 * The REQUEST frame's header, deadline and params in ex.head; the body
 * follows it on the pipe.  -1 with errno EFBIG if it cannot be framed.
 */
static int
exec_params(const struct pp_request *req, size_t body_len)
{
	struct exec_buf	*b = &ex.head;
	struct exec_hdr	 h;
	const char	*name, *value;
	size_t		 it = 0;
	uint32_t	 n = 0;
	int64_t		 left = pp_deadline_ms(req);

	b->end = 0;
	if (exec_reserve(b, sizeof(h) + 8) == -1)
		return -1;
	b->end = sizeof(h) + 8;
	if (exec_param(b, "REQUEST_METHOD", pp_method(req), &n) == -1 ||
	    exec_param(b, "PIPEPOOL_PATH", pp_path(req), &n) == -1 ||
	    exec_param(b, "QUERY_STRING", pp_query(req), &n) == -1)
		return -1;
	while (pp_param_next(req, &it, &name, &value))
		if (!exec_ours(name) && exec_param(b, name, value, &n) == -1)
			return -1;
	if (body_len > UINT32_MAX ||
	    b->end - sizeof(h) > UINT32_MAX - body_len) {
		errno = EFBIG;
		return -1;
	}
	h.type = EXEC_REQUEST;
	h.len = (uint32_t)(b->end - sizeof(h) + body_len);
	h.id = ex.id;
	memcpy(b->p, &h, sizeof(h));
	put32(b->p + sizeof(h), left <= 0 ? 0 : left > UINT32_MAX ?
	    UINT32_MAX : (uint32_t)left);
	put32(b->p + sizeof(h) + 4, n);
	return 0;
}

static void
exec_advance(struct iovec **iov, int *n, size_t done)
{
	while (*n > 0 && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n > 0) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
}

/* Write the whole REQUEST as the program reads it, until ex.until. */
static void
exec_write(struct iovec *iov, int n)
{
	ssize_t	w;
	int	r;

	while (n > 0) {
		if ((w = writev(ex.req_fd, iov, n)) >= 0) {
			exec_advance(&iov, &n, (size_t)w);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE)
			exec_died("before it read its request");
		if (errno != EAGAIN)
			exec_fault("writing its request: %s", strerror(errno));
		if ((r = exec_wait(ex.req_fd, POLLOUT, ex.until)) == 0)
			exec_died("before it read its request");
		if (r == -1)
			exec_fault("did not read its request by %d s past the "
			    "deadline", EXEC_GRACE_MS / 1000);
	}
}

/* Send the request; -1 (with pp_error) if it cannot be framed. */
static int
exec_send(const struct pp_request *req, struct pp_response *res)
{
	struct iovec	iov[2];
	size_t		blen;

	iov[1].iov_base = (void *)pp_body(req, &blen);
	iov[1].iov_len = blen;
	if (exec_params(req, blen) == -1) {
		pp_error(res, errno == EFBIG ? "the request is too large "
		    "for --exec" : "out of memory");
		return -1;
	}
	iov[0].iov_base = ex.head.p;
	iov[0].iov_len = ex.head.end;
	exec_write(iov, 2);
	return 0;
}

/* pp_* refused the answer: EPIPE, the client is gone; else a 500.  The
 * program's answer is read to its end all the same. */
static void
exec_refused(struct exec_answer *a, const char *why)
{
	if (errno != EPIPE)
		pp_error(a->res, why);
	a->failed = 1;
}

/* The header at *off of a HEAD, NUL-ended in ex.scratch; -1 if malformed. */
static int
exec_header(const unsigned char *p, uint32_t len, size_t *off,
    const char **name, const char **value)
{
	uint32_t	nl, vl;
	char		*s = (char *)ex.scratch.p;

	if (len - *off < 8)
		return -1;
	nl = get32(p + *off);
	vl = get32(p + *off + 4);
	*off += 8;
	if (nl == 0 || nl > len - *off || vl > len - *off - nl ||
	    memchr(p + *off, '\0', (size_t)nl + vl) != NULL)
		return -1;
	memcpy(s, p + *off, nl);
	s[nl] = '\0';
	memcpy(s + nl + 1, p + *off + nl, vl);
	s[nl + 1 + vl] = '\0';
	*off += (size_t)nl + vl;
	*name = s;
	*value = s + nl + 1;
	return 0;
}

static void
exec_head(struct exec_answer *a, const unsigned char *p, uint32_t len)
{
	const char	*name, *value;
	uint32_t	 status, n, i;
	size_t		 off = 8;

	if (a->headed || a->bodied)
		exec_fault("malformed answer (%s)", a->headed ? "HEAD twice" :
		    "HEAD after BODY");
	if (len < 8)
		exec_fault("malformed HEAD (%u bytes)", len);
	status = get32(p);
	n = get32(p + 4);
	if (status < 100 || status > 599)
		exec_fault("malformed HEAD (status %u)", status);
	a->headed = 1;
	if (!a->failed && pp_status(a->res, status) == -1)
		exec_refused(a, "exec: the program's status was refused");
	for (i = 0; i < n; i++) {
		if (exec_header(p, len, &off, &name, &value) == -1)
			exec_fault("malformed HEAD (header %u of %u)", i + 1,
			    n);
		if (!a->failed && pp_header(a->res, name, value) == -1)
			exec_refused(a, "exec: a header the program set was "
			    "refused");
	}
	if (off != len)
		exec_fault("malformed HEAD (%zu bytes past its headers)",
		    len - off);
}

static void
exec_body(struct exec_answer *a, const unsigned char *p, uint32_t len)
{
	a->bodied = 1;
	if (!a->failed && len > 0 && pp_write(a->res, p, len) == -1)
		exec_refused(a, "exec: the answer's body was refused");
}

static int
exec_error(struct exec_answer *a, const unsigned char *p, uint32_t len)
{
	char	why[EXEC_REASON_MAX];
	size_t	n = len < sizeof(why) - 1 ? len : sizeof(why) - 1;

	memcpy(why, p, n);
	why[n] = '\0';
	pp_error(a->res, why[0] != '\0' ? why : "the program answered ERROR");
	return -1;
}

/* The answer is over: nothing may follow it; the program is idle. */
static int
exec_done(int r)
{
	if (ex.in.end != ex.in.start)
		exec_fault("malformed answer (bytes after its end)");
	atomic_store(&ex.state, EXEC_S_IDLE);
	return r;
}

/* Take the program for a request; -1 if it never started. */
static int
exec_begin(const struct pp_request *req, struct pp_response *res)
{
	int	idle = EXEC_S_IDLE;
	int64_t	left = pp_deadline_ms(req);

	if (!ex.running) {
		pp_error(res, "exec: no program");
		return -1;
	}
	/* GONE: the logger found the program dead and ends this worker. */
	if (!atomic_compare_exchange_strong(&ex.state, &idle, EXEC_S_BUSY))
		for (;;)
			pause();
	ex.id++;
	left = left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : left;
	ex.until = proc_now_ms() + left + EXEC_GRACE_MS;
	return 0;
}

static int
exec_handle(const struct pp_request *req, struct pp_response *res)
{
	struct exec_answer	 a = { res, 0, 0, 0 };
	struct exec_hdr		 h;
	const unsigned char	*p;
	int			 r;

	if (exec_begin(req, res) == -1)
		return -1;
	if (exec_send(req, res) == -1)
		return exec_done(-1);
	for (;;) {
		if ((r = exec_next(&h, &p, EXEC_ANSWER, ex.until)) == 0)
			exec_died("while answering a request");
		if (r == -1 && errno == ETIMEDOUT)
			exec_fault("no answer %d s past the request's deadline",
			    EXEC_GRACE_MS / 1000);
		if (r == -1)
			exec_fault("%s", ex.why);
		switch (h.type) {
		case EXEC_HEAD:
			exec_head(&a, p, h.len);
			break;
		case EXEC_BODY:
			exec_body(&a, p, h.len);
			break;
		case EXEC_END:
			if (h.len != 0)
				exec_fault("malformed END (%u bytes)", h.len);
			return exec_done(a.failed ? -1 : 0);
		default:
			return exec_done(exec_error(&a, p, h.len));
		}
	}
}

/* ---- the worker's life ---- */

static void
exec_release(void)
{
	int	i;

	exec_close(&ex.req_fd);
	exec_close(&ex.rep_fd);
	exec_close(&ex.pidfd);
	for (i = 0; i < 2 && !ex.logging; i++)	/* else the logger's */
		exec_close(&ex.out[i].fd);
	free(ex.path);
	ex.path = NULL;
	free(ex.envp);
	ex.envp = NULL;
	if (ex.have_words)
		wordfree(&ex.words);
	ex.have_words = 0;
	exec_buf_free(&ex.in);
	exec_buf_free(&ex.head);
	exec_buf_free(&ex.scratch);
}

static int
exec_init(unsigned worker)
{
	atomic_store(&ex.state, EXEC_S_BUSY);	/* a death is init's */
	if (exec_words() == -1 || exec_locate() == -1 ||
	    exec_environ(worker) == -1 || exec_buffers() == -1 ||
	    exec_spawn() == -1)
		goto fail;
	if (exec_logger_start() == -1) {
		(void)exec_reap(0);
		goto fail;
	}
	if (exec_ready() == -1)
		goto fail;
	ex.running = 1;
	log_info("exec: worker %u runs %s (pid %d)", worker, ex.cmdline,
	    (int)ex.pid);
	atomic_store(&ex.state, EXEC_S_IDLE);
	return 0;
fail:
	atomic_store(&ex.state, EXEC_S_GONE);
	exec_release();
	return -1;
}

/* Retirement: the request pipe's end asks the program to exit. */
static void
exec_fini(void)
{
	int	idle = EXEC_S_IDLE, status;
	char	what[96];

	if (!ex.running)
		return;
	/* GONE: the logger found the program dead and ends this worker. */
	if (!atomic_compare_exchange_strong(&ex.state, &idle, EXEC_S_GONE))
		for (;;)
			pause();
	exec_close(&ex.req_fd);
	status = exec_reap(EXEC_EXIT_MS);
	exec_logger_join(EXEC_DRAIN_MS);
	exec_describe(status, what, sizeof(what));
	if (ex.killed)
		log_warnx("exec: %s (pid %d) did not exit within %d ms of "
		    "its request pipe's end: %s", ex.name, (int)ex.pid,
		    EXEC_EXIT_MS, what);
	else
		log_info("exec: %s (pid %d) %s", ex.name, (int)ex.pid, what);
	ex.running = 0;
	exec_release();
}

static const struct pp_app exec_desc = {
	PIPEPOOL_ABI, "exec", exec_init, exec_handle, exec_fini
};

const struct pp_app *
exec_app(const char *cmdline)
{
	ex.cmdline = cmdline;
	return &exec_desc;
}
