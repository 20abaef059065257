/*
 * worker.c: the worker process (ROLE_WORKER).  Its loop takes one request
 * at a time from the shared dispatch area (dispatch.h), has it answered
 * (with --debug-routes by the hostile routes first, hostile.c, then by its
 * application, app.h: --app, --exec or the built-in hello.c), and gives
 * the answer back in the same mailbox or writes it straight on nginx's
 * connection (direct.c, fcgi/record.c).  It sleeps in the area while no
 * request waits.
 *
 * At start it leads a process group of its own (so that the master's kill
 * past --timeout takes whatever the application started with it), ignores
 * SIGPIPE and leaves SIGCHLD to its default (the exec adapter reaps its
 * own program, the CGI runner every child; nothing here waits for any
 * child), then starts its
 * application: one that cannot start (app_start's reason logged) ends the
 * worker with WORKER_EX_APP.
 *
 * It exits when retired (reload, --max-requests), running the
 * application's fini first, or when the master's lifeline closes (the
 * master is gone: no fini, from a signal handler): the lifeline is watched
 * with O_ASYNC, the kernel sends SIGIO when its write end closes, so the
 * loop has no poll(2).  A malformed request from the front is a broken
 * invariant: the worker logs it and exits 1.
 */
#include <sys/prctl.h>
#include <sys/resource.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "answer.h"
#include "app.h"
#include "direct.h"
#include "dispatch.h"
#include "hostile.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "stats.h"
#include "worker.h"

/* The worker: set once at start, but for the count of requests served. */
static struct {
	const struct options	*o;
	uint32_t		 tag;	/* dispatch_tag() of its slot */
	int			 chan;	/* its channel to the front, or -1 */
	unsigned		 pid;	/* getpid() is a system call: once */
	pid_t			 master;	/* our parent at start */
	int			 group;	/* we lead our process group */
	size_t			 cap;	/* dispatch_capacity() */
	uint64_t		 served;
} W;

/* The exit status of a worker whose application cannot start. */
#define WORKER_EX_APP	3

/* No new privileges, a core on a crash, and --worker-rlimit-*. */
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
 * The master's end of the lifeline closed: the master is gone, or (still
 * our parent) tells us to go.  Gone, nobody is left to kill what this
 * worker started (a CGI and its helpers, in its process group): the
 * worker kills its whole group, itself with it.  Told, it exits and the
 * master, reaping it, kills the group (master.c reap).  A dying master
 * closes its files before its children are reparented, so the parent is
 * looked at for up to LIFE_REPARENT_MS before the worker takes it for
 * alive.  Async-signal-safe calls only.
 */
#define LIFE_REPARENT_MS	100
static void
on_sigio(int sig)
{
	struct timespec	ts = { 0, 2000000 };
	int		i;

	(void)sig;
	for (i = 0; W.group && i <= LIFE_REPARENT_MS / 2; i++) {
		if (getppid() != W.master)
			(void)kill(0, SIGKILL);
		(void)nanosleep(&ts, NULL);
	}
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
 * Start this worker's application, telling the built-in one whether
 * --debug-routes is on (hello.c); exit WORKER_EX_APP if it cannot start.
 */
static void
start_app(const struct options *o, unsigned number)
{
	char	err[512];

	if (o->debug_routes)
		(void)setenv("PIPEPOOL_DEBUG_ROUTES", "1", 1);
	else
		(void)unsetenv("PIPEPOOL_DEBUG_ROUTES");
	if (app_start(o, number, err, sizeof(err)) == -1) {
		log_warnx("cannot start the application %s: %s",
		    o->exec[0] != '\0' ? o->exec : o->app[0] != '\0' ? o->app :
		    "(built-in)", err);
		exit(WORKER_EX_APP);
	}
}

/* An orderly exit: the application's fini, then exit(0). */
static void __attribute__((noreturn))
leave(void)
{
	app_stop();
	exit(0);
}

static void
setup(const struct options *o, unsigned number, int life_fd, int chan_fd,
    uint32_t tag)
{
	char	role[32];

	snprintf(role, sizeof(role), "worker %u", number);
	log_setrole(role);
	snprintf(role, sizeof(role), "pipepool: worker %u", number);
	proc_title(role);
	W.o = o;
	W.tag = tag;
	W.chan = chan_fd;
	W.pid = (unsigned)getpid();
	W.master = getppid();
	if (setpgid(0, 0) == -1)
		log_warn("setpgid");
	else
		W.group = 1;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	limits(o);
	/* Tests of the master's back-off make workers die at start. */
	if (o->debug_routes && getenv("PIPEPOOL_DEBUG_FAIL_AT_START") != NULL)
		fatalx("PIPEPOOL_DEBUG_FAIL_AT_START is set: failing at start");
	reply_init();
	start_app(o, number);
	if (direct_init(chan_fd, o->threads) == -1)
		log_warnx("every answer goes through the front");
	W.cap = dispatch_capacity();
	app_answer_max(W.cap - sizeof(struct msg_hdr) -
	    sizeof(struct msg_reply) - MSG_REPLY_HEAD_MAX);
	answer_init(tag, W.cap, o->slow_ms, W.pid);
	if (life_fd >= 0)
		watch_lifeline(life_fd);
}

/*
 * The next request, into j: 0, or -1 if the front gave up on it while the
 * worker waited for its large body.  Sleeps while no request waits; exits
 * when the worker is retired.
 */
static int
take(struct job *j)
{
	struct msg_hdr		 h;
	const unsigned char	*p;
	int			 mb, b, want_body;

	stats_worker_state(WS_IDLE);
	if ((mb = dispatch_take(W.tag, &want_body)) == -1) {
		if (stats != NULL)
			log_info("retired after %llu requests",
			    (unsigned long long)W.served);
		leave();
	}
	j->took_ms = proc_now_ms();
	stats_worker_state(WS_BUSY);
	j->mb = (unsigned)mb;
	j->d = dispatch_data(j->mb);
	if (want_body) {
		if ((b = dispatch_want_body(j->mb, W.tag)) == -1)
			return -1;
		j->d = dispatch_buf((unsigned)b);
	}
	if ((p = msg_unframe(j->d, W.cap, MSG_REQUEST, &h)) == NULL ||
	    msg_request_parse(p, h.len, &j->v) == -1)
		fatalx("bad %s message (len %u) from the front",
		    msg_typename(h.type), h.len);
	j->id = h.id;
	j->msg_len = sizeof(h) + h.len;
	return 0;
}

/*
 * The tests of a worker that dies between taking a request and starting
 * on it (--debug-routes): on /debug/claim-die, the first worker to
 * create the file PIPEPOOL_DEBUG_CLAIM_DIE names dies there.
 */
static void
claim_die(const struct job *j)
{
	const char	*f = getenv("PIPEPOOL_DEBUG_CLAIM_DIE");
	int		 fd;

	if (f == NULL || !msg_view_path_is(&j->v, "/debug/claim-die") ||
	    (fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1)
		return;
	(void)close(fd);
	_exit(9);
}

/*
 * The hostile routes first (--debug-routes), then the application, with
 * the request's deadline: --timeout from when the front began it (a
 * direct request's mailbox says), else from when the worker took it.
 * How the answer is to be given back (APP_*), ROUTE_GARBAGE, or
 * ROUTE_LATE (leave the request: the front answered it).
 */
#define ROUTE_GARBAGE	-1	/* /debug/garbage: answer with no message */
#define ROUTE_LATE	-2	/* the front answered it (--timeout) */
static int
route(struct job *j)
{
	const struct app_sink	*sink = answer_sink(j);
	int64_t			 start = j->took_ms;
	int			 h;

	if (W.o->debug_routes)
		claim_die(j);
	/* From here a death fails the request: before, it went back in
	 * line (dispatch.h). */
	if (dispatch_running(j->mb, W.tag) == -1)
		return ROUTE_LATE;
	if (W.o->debug_routes && (h = hostile_route(j, W.tag, W.chan)) !=
	    HOSTILE_NONE)
		return h == HOSTILE_GARBAGE ? ROUTE_GARBAGE : APP_WHOLE;
	if (j->direct && j->mc.start_ms <= start)
		start = j->mc.start_ms;
	return app_handle(&j->v, start + (int64_t)(W.o->timeout * 1000 + 0.5),
	    &j->rp, sink);
}

/*
 * Behave like a broken worker: garbage for an answer, then nothing until
 * the master kills it (or its lifeline goes).
 */
static void __attribute__((noreturn))
answer_garbage(struct job *j)
{
	struct mb_conn	mc;

	garbage(j->d);
	(void)dispatch_done(j->mb, W.tag);
	if (dispatch_conn_get(j->mb, &mc))
		direct_note(j->mb, mc.gen);
	for (;;)
		pause();
}

/*
 * Run worker number (as ps and the log name it) until it is retired or
 * the master is gone.  life_fd (the lifeline's read end) and chan_fd (its
 * end of its channel to the front) are -1 where there is none (CGI mode,
 * tests); tag: dispatch_tag() of its master slot and incarnation.
 */
void
worker_main(const struct options *o, unsigned number, int life_fd,
    int chan_fd, uint32_t tag)
{
	struct job	j;
	int		how;

	setup(o, number, life_fd, chan_fd, tag);
	for (;;) {
		if (take(&j) == -1)
			continue;	/* the front gave up on it */
		if ((how = route(&j)) == ROUTE_GARBAGE)
			answer_garbage(&j);
		if (how != ROUTE_LATE) {
			W.served++;
			answer(&j, how);
		}
		if (how == ROUTE_LATE || j.lost) {
			/* The front answered it past --timeout and has the
			 * master kill us: take no other request meanwhile,
			 * or the kill would land on it. */
			log_info("lost a request to --timeout; leaving");
			leave();
		}
		if (o->max_requests && W.served >= o->max_requests) {
			log_info("served %llu requests (--max-requests), "
			    "retiring", (unsigned long long)W.served);
			leave();
		}
	}
}
