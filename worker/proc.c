/*
 * proc.c: what every child does right after fork() (proc.h has the
 * process model it serves): take its title ("pipepool: worker 3" in ps -o
 * args, by overwriting the argv area the way nginx's ngx_setproctitle
 * does), keep only the fds it owns, and reset the signals the master
 * uses.  Also the one clock every process reads, the CPU-list parser
 * of --cpu-affinity, and the probe: a check run in a child of its own.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

extern char **environ;

static char	*title_start;
static size_t	 title_room;

/*
 * Claim the contiguous argv (and environ) strings as room for titles.  The
 * environment and argv strings are copied first, so getenv() and argv[]
 * keep working.  Call before anything keeps a pointer into argv.
 */
void
proc_title_init(int argc, char **argv)
{
	char	*start, *end, **env;
	int	 i, n;

	if (argc < 1 || argv[0] == NULL)
		return;
	start = argv[0];
	end = start + strlen(start) + 1;
	for (i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	for (n = 0; environ[n] != NULL; n++)
		;
	if ((env = calloc((size_t)n + 1, sizeof(*env))) == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		if ((env[i] = strdup(environ[i])) == NULL)
			return;
	}
	environ = env;
	for (i = 0; i < argc; i++)
		if ((argv[i] = strdup(argv[i])) == NULL)
			return;
	title_start = start;
	title_room = (size_t)(end - start);
}

/* Set what ps(1) shows as this process's args, and its comm name. */
void
proc_title(const char *title)
{
	size_t	n;

	(void)prctl(PR_SET_NAME, (unsigned long)title, 0, 0, 0);
	if (title_start == NULL || title_room < 2)
		return;
	n = strlen(title);
	if (n > title_room - 1)
		n = title_room - 1;
	memcpy(title_start, title, n);
	memset(title_start + n, '\0', title_room - n);
}

/*
 * Keep fds[0..nfds-1] as 3, 4, ... and close every other fd above 2, so a
 * child holds no pipe end of another process.  The fds are moved with
 * F_DUPFD above all of them first, so the order never clobbers one.
 */
int
proc_keep_fds(const int *fds, int nfds)
{
	int	tmp[16], i, high = 3 + nfds;

	if (nfds > 16)
		return -1;
	for (i = 0; i < nfds; i++)
		if (fds[i] >= high)
			high = fds[i] + 1;
	for (i = 0; i < nfds; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, high)) == -1)
			return -1;
	for (i = 0; i < nfds; i++)
		if (dup2(tmp[i], 3 + i) == -1)
			return -1;
	if (close_range((unsigned)(3 + nfds), ~0U, 0) == -1)
		return -1;
	return 0;
}

/*
 * glibc keeps signals 32 and 33 (SIGCANCEL, SIGSETXID) for itself: its
 * sigaction refuses them.  An ignored signal survives execve, so one
 * ignored by whoever started pipepool would reach every program we run;
 * the kernel's call sets it to its default.
 */
static void
reset_reserved(int sig)
{
	unsigned long	ksa[4] = { 0 };	/* SIG_DFL, no flags, empty mask */

	(void)syscall(SYS_rt_sigaction, sig, ksa, NULL, sizeof(ksa[3]));
}

/*
 * A program's child between fork and execve (an --exec program, a CGI):
 * async-signal-safe calls only, and no memory written but its stack and
 * errno, so that a child sharing its parent's memory (CLONE_VM, as the
 * CGI runner's) may call it too.  Every signal to its default, none
 * blocked; it dies with the process that forked it (parent: that pid,
 * seen before the fork; gone already, the child exits 127); only
 * keep[0..n-1] stay open, as 3, 4, ... (proc_keep_fds).  0, or -1 with
 * errno for proc_exec_fail().
 */
int
proc_exec_child(pid_t parent, const int *keep, int n)
{
	static const struct sigaction	dfl;	/* SIG_DFL, empty mask */
	sigset_t			none;
	int				s;

	for (s = 1; s < NSIG; s++)
		if (s < SIGRTMIN && s >= 32)
			reset_reserved(s);
		else
			(void)sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == -1)
		return -1;
	if (getppid() != parent)
		_exit(127);		/* its parent is gone already */
	return proc_keep_fds(keep, n);
}

/* ...it failed before execve: errno to the parent on ck, then exit. */
void
proc_exec_fail(int ck)
{
	int	e = errno;
	ssize_t	n;

	n = write(ck, &e, sizeof(e));
	(void)n;		/* the parent then sees EOF: a failure too */
	_exit(127);
}

/*
 * Children leave SIGINT, SIGHUP and SIGUSR1 to the master (a Ctrl-C
 * reaches the whole process group, and `systemctl kill` the whole unit;
 * only the master decides what they mean), die on SIGTERM, and never die
 * of SIGPIPE.  All signals are unblocked.
 */
int
proc_child_signals(void)
{
	struct sigaction	sa;
	sigset_t		none;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1 ||
	    sigaction(SIGUSR1, &sa, NULL) == -1 ||
	    sigaction(SIGPIPE, &sa, NULL) == -1)
		return -1;
	sa.sa_handler = SIG_DFL;
	if (sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGCHLD, &sa, NULL) == -1 ||
	    sigaction(SIGQUIT, &sa, NULL) == -1)
		return -1;
	sigemptyset(&none);
	return sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Parse a CPU list as taskset(1) -c takes it ("1", "0-3", "0,2-3") into
 * set.  -1 if malformed or naming a CPU past CPU_SETSIZE.
 */
int
proc_cpulist(const char *s, cpu_set_t *set)
{
	char		*end;
	unsigned long	 a, b;

	CPU_ZERO(set);
	for (;;) {
		if (*s < '0' || *s > '9')
			return -1;
		a = strtoul(s, &end, 10);
		b = a;
		if (*end == '-') {
			s = end + 1;
			if (*s < '0' || *s > '9')
				return -1;
			b = strtoul(s, &end, 10);
		}
		if (a > b || b >= CPU_SETSIZE)
			return -1;
		for (; a <= b; a++)
			CPU_SET(a, set);
		if (*end == '\0')
			return 0;
		if (*end != ',')
			return -1;
		s = end + 1;
	}
}

/* Milliseconds of CLOCK_MONOTONIC: every deadline and age in pipepool. */
int64_t
proc_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same clock in microseconds, for the figures finer than deadlines
 * (queue time): one clock across processes, so a worker's reading and
 * the front's compare. */
int64_t
proc_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
proc_describe_exit(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
}

/* The probe's child: run fn, write "OK" or its reason to fd 3, leave. */
static void __attribute__((noreturn))
probe_child(proc_check_fn fn, const struct options *o, int report,
    pid_t parent)
{
	char	err[600] = "";
	size_t	n;

	(void)setpgid(0, 0);
	/* In its own group, the probe would outlive a master SIGKILLed while
	 * it waits (with an init that hangs, for good): die with it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == -1 ||
	    getppid() != parent)
		_exit(1);
	/* fd 3, close-on-exec: a program fn starts must not hold it open. */
	if (proc_child_signals() == -1 || proc_keep_fds(&report, 1) == -1 ||
	    fcntl(3, F_SETFD, FD_CLOEXEC) == -1)
		_exit(1);
	proc_title("pipepool: probe");
	if (fn(o, err, sizeof(err)) == 0)
		snprintf(err, sizeof(err), "OK");
	else if (err[0] == '\0')
		snprintf(err, sizeof(err), "failed");
	n = strcspn(err, "\n");
	(void)write(3, err, n);
	_exit(0);
}

/* Read the child's report until it closes the pipe or the bound passes. */
static int
probe_read(int fd, int64_t until, char *buf, size_t len)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLIN };
	size_t		got = 0;
	ssize_t		r;
	int64_t		left;

	for (;;) {
		if ((left = until - proc_now_ms()) <= 0)
			return -1;
		if (poll(&pfd, 1, (int)left) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pfd.revents == 0)
			continue;
		r = read(fd, buf + got, len - 1 - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0 || (got += (size_t)r) == len - 1)
			break;
	}
	buf[got] = '\0';
	return 0;
}

int
proc_probe(proc_check_fn fn, const struct options *o, int timeout_ms,
    char *err, size_t errlen)
{
	char	msg[600], how[128];
	pid_t	pid, self = getpid();
	int	p[2], status, timed_out;

	if (pipe2(p, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0)
		probe_child(fn, o, p[1], self);
	close(p[1]);
	(void)setpgid(pid, pid);
	timed_out = probe_read(p[0], proc_now_ms() + timeout_ms, msg,
	    sizeof(msg)) == -1;
	close(p[0]);
	if (kill(-pid, SIGKILL) == -1 && errno == ESRCH)
		(void)kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			status = 0;
			break;
		}
	if (timed_out) {
		snprintf(err, errlen, "still starting after %d ms; killed",
		    timeout_ms);
		return -1;
	}
	if (strcmp(msg, "OK") == 0)
		return 0;
	if (msg[0] != '\0') {
		snprintf(err, errlen, "%s", msg);
		return -1;
	}
	proc_describe_exit(status, how, sizeof(how));
	snprintf(err, errlen, "died at start: %s", how);
	return -1;
}
