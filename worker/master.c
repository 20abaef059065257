/*
 * master.c: the supervisor process ("pipepool: master").  It owns the
 * listening socket and one table of children {pid, kind, state, lifeline,
 * respawn}.  Signal handlers only set flags; one loop (ppoll on the front's
 * control socket, with those signals unblocked only while it waits) reaps,
 * respawns with back-off, reloads and stops.  Stopping asks the front to
 * drain, then escalates TERM, then KILL after a bound.  Reloading validates
 * the settings first, starts the new workers, then retires the old ones.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
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

#include "dispatch.h"
#include "front.h"
#include "log.h"
#include "master.h"
#include "chan.h"
#include "msg.h"
#include "proc.h"
#include "stats.h"
#include "store.h"
#include "worker.h"

#define NSLOTS		PROC_SLOTS
#define QUICK_DEATH_MS	1000	/* dying sooner than this after start */
#define BACKOFF_MAX_MS	5000
#define KILL_AFTER_MS	2000	/* from TERM to KILL when stopping */
#define PIPE_SIZE	(256 * 1024)	/* worker pipes, when the kernel agrees */

enum sstate { SL_EMPTY, SL_RUNNING, SL_RETIRING };

/* Why the master signalled a child itself (none: it did not). */
enum order { ORD_NONE, ORD_FRONT_KILL, ORD_STOP_TERM, ORD_STOP_KILL };

struct slot {
	pid_t		pid;
	enum sstate	state;
	enum role	kind;
	unsigned	number;		/* 1..N for workers, 0 front/store */
	int		life_fd;	/* write end of the child's lifeline */
	uint64_t	id;		/* unique for the master's lifetime */
	int64_t		started_ms;
	enum order	killed;		/* we signalled it, and why */
};

/* Per worker number: consecutive deaths at start, and when to respawn. */
struct respawn {
	unsigned	fails;
	int64_t		at_ms;
};

static volatile sig_atomic_t	sig_chld, sig_term, sig_hup;

static struct slot	 slots[NSLOTS];
#define STORE_RESPAWN	(PP_WORKERS_MAX + 1)
static struct respawn	 respawns[STORE_RESPAWN + 1];
static struct options	*opts;
static int		 listen_fd = -1;
static int		 ctl_fd = -1;		/* our end of the front's socket */
static uint64_t		 next_id = 1;
static int		 stopping;
static int64_t		 stop_term_at, stop_kill_at;
static int		 pass_argc;
static char		**pass_argv;

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD:
		sig_chld = 1;
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	default:
		sig_term = 1;
		break;
	}
}

static void
queue_cap_stat(const struct options *o)
{
	atomic_store(&stats->queue_capacity, o->queue);
}

static const char *
kind_name(enum role k)
{
	return k == ROLE_FRONT ? "front" : k == ROLE_STORE ? "store" :
	    "worker";
}

static const char *
slot_name(const struct slot *s, char *buf, size_t len)
{
	if (s->kind == ROLE_WORKER)
		snprintf(buf, len, "worker %u", s->number);
	else
		snprintf(buf, len, "%s", kind_name(s->kind));
	return buf;
}

static struct slot *
slot_free(void)
{
	int	i;

	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state == SL_EMPTY)
			return &slots[i];
	return NULL;
}

static struct slot *
slot_by_pid(pid_t pid)
{
	int	i;

	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state != SL_EMPTY && slots[i].pid == pid)
			return &slots[i];
	return NULL;
}

static struct slot *
slot_by_id(uint64_t id)
{
	int	i;

	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state != SL_EMPTY && slots[i].id == id)
			return &slots[i];
	return NULL;
}

static struct slot *
front_slot(void)
{
	int	i;

	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state == SL_RUNNING &&
		    slots[i].kind == ROLE_FRONT)
			return &slots[i];
	return NULL;
}

static void
slot_stats(struct slot *s)
{
	struct stats_worker	*w = &stats->w[s - slots];

	atomic_store(&w->pid, s->state == SL_EMPTY ? 0 : s->pid);
	atomic_store(&w->role, s->kind);
	atomic_store(&w->number, s->number);
	atomic_store(&w->state, s->state == SL_EMPTY ? WS_EMPTY :
	    s->state == SL_RETIRING ? WS_RETIRING : WS_STARTING);
	if (s->state != SL_EMPTY) {
		atomic_store(&w->requests, 0);
		atomic_store(&w->started_unix, (int64_t)time(NULL));
	}
}

static int
ctl_send(uint32_t type, struct slot *s, const int *fds, int nfds)
{
	struct msg_worker	mw;

	if (ctl_fd == -1)
		return -1;
	memset(&mw, 0, sizeof(mw));
	mw.slot = (uint32_t)(s - slots);
	mw.role = s->kind;
	mw.pid = s->pid;
	mw.number = s->number;
	if (chan_send(ctl_fd, type, s->id, &mw, sizeof(mw), fds,
	    nfds) == -1) {
		log_warn("sending %s to the front", msg_typename(type));
		return -1;
	}
	return 0;
}

static int
send_settings(void)
{
	struct msg_settings	ms;

	front_settings(opts, &ms);
	if (ctl_fd == -1 || chan_send(ctl_fd, MSG_SETTINGS, 0, &ms,
	    sizeof(ms), NULL, 0) == -1) {
		log_warn("sending settings to the front");
		return -1;
	}
	return 0;
}

/*
 * Start a worker of kind k.  A hello worker gets its lifeline's read end
 * (its requests come through the dispatch area) and one end of its
 * channel to the front (direct.h), the front the other end over the
 * control socket, and its stats page (stats.h: read-write for the
 * worker, read-only for the front, after its channel end); the store
 * gets its request pipe's read end and its reply pipe's write end, and
 * the front the other two ends.  We keep the
 * lifeline's write end.  Returns -1 if anything fails (the caller
 * retries later).
 */
static int
spawn_worker(enum role k, unsigned number)
{
	struct slot	*s;
	int		 req[2] = { -1, -1 }, rep[2] = { -1, -1 };
	int		 life[2] = { -1, -1 }, keep[3], give[2];
	int		 chan[2] = { -1, -1 };
	int		 page[2] = { -1, -1 };	/* its stats page: rw, ro */
	int		 store = k == ROLE_STORE;
	char		 name[32];
	pid_t		 pid;

	if ((s = slot_free()) == NULL) {
		log_warnx("no free slot for a %s", kind_name(k));
		return -1;
	}
	if ((store && (pipe2(req, O_CLOEXEC) == -1 ||
	    pipe2(rep, O_CLOEXEC) == -1)) || pipe2(life, O_CLOEXEC) == -1) {
		log_warn("pipe2");
		goto fail;
	}
	if (store) {
		/* Fewer wake-ups per large request; best effort (the kernel
		 * limits pipe memory per user, pipe-user-pages-soft). */
		(void)fcntl(req[1], F_SETPIPE_SZ, PIPE_SIZE);
		(void)fcntl(rep[1], F_SETPIPE_SZ, PIPE_SIZE);
	} else {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    chan) == -1) {
			log_warn("socketpair");
			goto fail;
		}
		if (stats_page_new(&page[0], &page[1]) == -1) {
			log_warn("making a worker's stats page");
			goto fail;
		}
		dispatch_enlist((uint32_t)(s - slots));
	}
	if ((pid = fork()) == -1) {
		log_warn("fork");
		goto fail;
	}
	if (pid == 0) {
		if (!store) {
			keep[0] = life[0];
			keep[1] = chan[1];
			if (proc_child_signals() == -1 ||
			    stats_child(page[0]) == -1 ||
			    proc_keep_fds(keep, 2) == -1)
				fatal("setting up a worker");
			worker_main(opts, number, WORKER_HELLO_LIFE_FD,
			    WORKER_HELLO_CHAN_FD, dispatch_tag((uint32_t)(s -
			    slots), next_id));
		}
		keep[0] = req[0];
		keep[1] = rep[1];
		keep[2] = life[0];
		if (proc_child_signals() == -1 || stats_child(-1) == -1 ||
		    proc_keep_fds(keep, 3) == -1)
			fatal("setting up the store");
		store_main(opts, WORKER_LIFE_FD);
	}
	close(life[0]);
	memset(s, 0, sizeof(*s));
	s->pid = pid;
	s->state = SL_RUNNING;
	s->kind = k;
	s->number = number;
	s->life_fd = life[1];
	s->id = next_id++;
	s->started_ms = now_ms_mono();
	slot_stats(s);
	log_info("%s spawned, pid %ld", slot_name(s, name, sizeof(name)),
	    (long)pid);
	if (store) {
		close(req[0]);
		close(rep[1]);
		give[0] = req[1];
		give[1] = rep[0];
		(void)ctl_send(MSG_WORKER_UP, s, give, 2);
		close(req[1]);
		close(rep[0]);
	} else {
		close(chan[1]);
		close(page[0]);
		give[0] = chan[0];
		give[1] = page[1];
		(void)ctl_send(MSG_WORKER_UP, s, give, 2);
		close(chan[0]);
		close(page[1]);
	}
	return 0;
fail:
	close(page[0]);
	close(page[1]);
	close(chan[0]);
	close(chan[1]);
	close(req[0]);
	close(req[1]);
	close(rep[0]);
	close(rep[1]);
	close(life[0]);
	close(life[1]);
	return -1;
}

static int
spawn_front(void)
{
	struct slot	*s;
	int		 sv[2], keep[2];
	pid_t		 pid;

	if ((s = slot_free()) == NULL)
		return -1;
	/* A new dispatch area for each front: workers of the old one keep
	 * theirs until they exit, so none can write into the new one. */
	dispatch_unmap();
	if (dispatch_map(opts->threads, dispatch_nbuf_for(opts->workers,
	    opts->threads),
	    opts->max_body) == -1) {
		log_warn("mapping the dispatch area; retrying in 1 s");
		respawns[0].at_ms = now_ms_mono() + 1000;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("fork");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		keep[0] = listen_fd;
		keep[1] = sv[1];
		if (proc_child_signals() == -1 || proc_keep_fds(keep, 2) == -1)
			fatal("setting up the front");
		front_main(opts, FRONT_LISTEN_FD, FRONT_CTL_FD);
	}
	close(sv[1]);
	ctl_fd = sv[0];
	memset(s, 0, sizeof(*s));
	s->pid = pid;
	s->state = SL_RUNNING;
	s->kind = ROLE_FRONT;
	s->life_fd = -1;
	s->id = next_id++;
	s->started_ms = now_ms_mono();
	slot_stats(s);
	log_info("front spawned, pid %ld", (long)pid);
	return send_settings();
}

/* Start whatever should run and does not; respects back-off delays. */
static void
maintain(void)
{
	unsigned	n;
	int		i, have;
	int64_t		now = now_ms_mono();

	if (stopping)
		return;
	if (front_slot() == NULL) {
		if (now < respawns[0].at_ms || spawn_front() == -1)
			return;
	}
	for (n = 1; n <= opts->workers; n++) {
		have = 0;
		for (i = 0; i < NSLOTS; i++)
			if (slots[i].state == SL_RUNNING &&
			    slots[i].kind == ROLE_WORKER &&
			    slots[i].number == n)
				have = 1;
		if (!have && now >= respawns[n].at_ms)
			(void)spawn_worker(ROLE_WORKER, n);
	}
	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state == SL_RUNNING &&
		    slots[i].kind == ROLE_STORE)
			return;
	if (now >= respawns[STORE_RESPAWN].at_ms)
		(void)spawn_worker(ROLE_STORE, 0);
}

/* Milliseconds until maintain() or the stop sequence has work, or -1. */
static int
next_timer(void)
{
	int64_t	now = now_ms_mono(), t = -1;
	unsigned n;

	if (stopping) {
		t = stop_term_at > now ? stop_term_at : stop_kill_at;
	} else {
		for (n = 0; n <= STORE_RESPAWN; n++)
			if (respawns[n].at_ms > now &&
			    (t == -1 || respawns[n].at_ms < t))
				t = respawns[n].at_ms;
	}
	if (t == -1)
		return -1;
	return t <= now ? 0 : (int)(t - now);
}

static void
describe_exit(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
}

/* What the log says the master had to do with a child's end. */
static const char *
order_text(const struct slot *s)
{
	switch (s->killed) {
	case ORD_FRONT_KILL:
		return " (killed by the master on the front's request)";
	case ORD_STOP_TERM:
		return " (stopping: sent SIGTERM after --grace)";
	case ORD_STOP_KILL:
		return " (stopping: sent SIGKILL after SIGTERM)";
	case ORD_NONE:
		break;
	}
	if (stopping)
		return " (stopped at shutdown)";
	if (s->state == SL_RETIRING)
		return " (retired)";
	return "";
}

static void
child_gone(struct slot *s, int status)
{
	char		 how[128], name[32];
	int64_t		 lived = now_ms_mono() - s->started_ms;
	int		 abnormal, i;
	struct respawn	*rs;

	describe_exit(status, how, sizeof(how));
	abnormal = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (abnormal && s->killed == ORD_NONE && !stopping)
		log_warnx("%s (pid %ld) %s%s", slot_name(s, name,
		    sizeof(name)), (long)s->pid, how, order_text(s));
	else
		log_info("%s (pid %ld) %s%s", slot_name(s, name, sizeof(name)),
		    (long)s->pid, how, order_text(s));
	if (abnormal && s->killed == ORD_NONE && !stopping &&
	    s->state == SL_RUNNING)
		STAT_ADD(worker_crashes, 1);
	if (s->life_fd != -1)
		close(s->life_fd);
	if (s->kind == ROLE_FRONT) {
		if (ctl_fd != -1)
			close(ctl_fd);
		ctl_fd = -1;
		/* Its workers and the store go with it: closing their
		 * lifelines makes them exit (the new front gets a new
		 * dispatch area and new workers). */
		for (i = 0; i < NSLOTS; i++) {
			if (slots[i].state == SL_EMPTY ||
			    slots[i].kind == ROLE_FRONT)
				continue;
			if (slots[i].life_fd != -1)
				close(slots[i].life_fd);
			slots[i].life_fd = -1;
			slots[i].state = SL_RETIRING;
		}
	} else if (s->kind == ROLE_WORKER || (s->state == SL_RUNNING &&
	    !stopping))
		/* A worker's, whatever its state: the front fails what it
		 * held (a front thread may be waiting for it). */
		(void)ctl_send(MSG_WORKER_GONE, s, NULL, 0);

	rs = &respawns[s->kind == ROLE_FRONT ? 0 : s->kind ==
	    ROLE_STORE ? STORE_RESPAWN : s->number];
	if (s->state == SL_RUNNING && !stopping) {
		STAT_ADD(respawns, 1);
		/* A start-up failure: any abnormal end soon after start that
		 * the master did not order (not stopping, not retired, not
		 * killed for the front), whatever the signal: a worker that
		 * the OOM killer SIGKILLs at each start must back off too. */
		if (lived < QUICK_DEATH_MS && abnormal &&
		    s->killed == ORD_NONE)
			rs->fails++;
		else
			rs->fails = 0;
		if (rs->fails >= 2) {
			int64_t d = 100LL << (rs->fails - 2 > 6 ? 6 :
			    rs->fails - 2);

			if (d > BACKOFF_MAX_MS)
				d = BACKOFF_MAX_MS;
			rs->at_ms = now_ms_mono() + d;
			log_warnx("%s %u died %u times in a row within %d ms "
			    "of starting; respawning in %lld ms (back-off)",
			    kind_name(s->kind), s->number, rs->fails,
			    QUICK_DEATH_MS, (long long)d);
		} else
			rs->at_ms = 0;
	}
	s->state = SL_EMPTY;
	s->pid = 0;
	slot_stats(s);
}

static void
reap(void)
{
	struct slot	*s;
	pid_t		 pid;
	int		 status;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid == -1 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if ((s = slot_by_pid(pid)) != NULL)
			child_gone(s, status);
	}
}

static void
reload(void)
{
	struct options	 nopts;
	char		 err[700];
	uint64_t	 old_max = next_id;
	int		 i;

	if (stopping)
		return;
	if (options_reload(&nopts, pass_argc, pass_argv, err,
	    sizeof(err)) == -1) {
		log_warnx("reload refused, keeping the running settings: %s",
		    err);
		return;
	}
	if (strcmp(nopts.listen, opts->listen) != 0)
		log_warnx("reload: --listen cannot change without a restart; "
		    "still on %s", opts->listen);
	memcpy(nopts.listen, opts->listen, sizeof(nopts.listen));
	*opts = nopts;
	queue_cap_stat(opts);
	log_info("reloading: %u workers", opts->workers);
	(void)send_settings();
	/* New workers first (they come up beside the old ones)... */
	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state == SL_RUNNING &&
		    slots[i].kind == ROLE_WORKER && slots[i].id < old_max)
			slots[i].state = SL_RETIRING;
	maintain();
	/* ...then the old ones finish their request and leave. */
	for (i = 0; i < NSLOTS; i++)
		if (slots[i].state == SL_RETIRING && slots[i].id < old_max &&
		    slots[i].kind == ROLE_WORKER) {
			slot_stats(&slots[i]);
			(void)ctl_send(MSG_RETIRE, &slots[i], NULL, 0);
		}
}

static void
stop_begin(void)
{
	struct slot	*f;
	int64_t		 now = now_ms_mono();

	if (stopping)
		return;
	stopping = 1;
	log_info("stopping: no new connections, waiting up to %.3g s for "
	    "requests in flight", opts->grace);
	if (listen_fd != -1)
		close(listen_fd);
	listen_fd = -1;
	stop_term_at = now + (int64_t)(opts->grace * 1000);
	stop_kill_at = stop_term_at + KILL_AFTER_MS;
	if ((f = front_slot()) != NULL && ctl_fd != -1 &&
	    chan_send(ctl_fd, MSG_STOP, 0, NULL, 0, NULL, 0) == -1)
		log_warn("asking the front to stop");
}

/* While stopping: once the front is gone, workers go; then escalate. */
static int
stop_step(void)
{
	int64_t	now = now_ms_mono();
	int	i, alive = 0, front = front_slot() != NULL;

	for (i = 0; i < NSLOTS; i++) {
		struct slot *s = &slots[i];

		if (s->state == SL_EMPTY)
			continue;
		alive++;
		if (!front && s->life_fd != -1) {
			close(s->life_fd);	/* worker: time to go */
			s->life_fd = -1;
		}
		if (now >= stop_kill_at) {
			kill(s->pid, SIGKILL);
			s->killed = ORD_STOP_KILL;
		} else if (now >= stop_term_at && s->killed == ORD_NONE) {
			log_warnx("%s %u (pid %ld) still running after "
			    "--grace; sending SIGTERM", kind_name(s->kind),
			    s->number, (long)s->pid);
			kill(s->pid, SIGTERM);
			s->killed = ORD_STOP_TERM;
		}
	}
	if (!front && stop_term_at > now + KILL_AFTER_MS) {
		/* The front is done: workers get a short bound, not --grace. */
		stop_term_at = now + KILL_AFTER_MS;
		stop_kill_at = stop_term_at + KILL_AFTER_MS;
	}
	return alive;
}

/* Bad messages from the front are logged at a bounded rate. */
static struct log_limit	bad_msgs;

static void
ctl_read(void)
{
	struct msg_hdr		 h;
	struct msg_worker	 mw;
	struct slot		*s;
	int			 fds[4], nfds = 4;
	ssize_t			 r;

	r = chan_recv(ctl_fd, &h, &mw, sizeof(mw), fds, &nfds);
	if (r == 0 || (r == -1 && errno != EPROTO && errno != EAGAIN)) {
		/* The front is gone; reap() will see it. */
		close(ctl_fd);
		ctl_fd = -1;
		return;
	}
	if (r == -1) {
		log_warnx_limited(&bad_msgs, "bad message from the front");
		return;
	}
	while (nfds > 0)
		close(fds[--nfds]);
	if (h.type != MSG_KILL) {
		log_warnx_limited(&bad_msgs, "unexpected %s message from the "
		    "front", msg_typename(h.type));
		return;
	}
	/* The slot is still ours (not reaped), so its pid is too. */
	if ((s = slot_by_id(h.id)) != NULL && s->kind != ROLE_FRONT &&
	    s->killed == ORD_NONE) {
		s->killed = ORD_FRONT_KILL;
		if (kill(s->pid, SIGKILL) == -1)
			log_warn("kill %ld", (long)s->pid);
	}
}

int
master_main(struct options *o, int lfd, const char *unix_path, int argc,
    char **argv)
{
	struct sigaction	sa;
	sigset_t		block, none;
	struct pollfd		pfd;
	struct timespec		ts;
	int			t, i;

	opts = o;
	listen_fd = lfd;
	pass_argc = argc;
	pass_argv = argv;
	for (i = 0; i < NSLOTS; i++)
		slots[i].life_fd = -1;
	log_setrole("master");
	proc_title("pipepool: master");
	/* Workers run code that is not ours, as our user: without this a
	 * worker could ptrace the master or the front (or read their
	 * /proc/PID/mem) and go around every check of the trust boundary.
	 * Inherited by the front and the store; workers set it back. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("prctl PR_SET_DUMPABLE");

	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	if (sigprocmask(SIG_BLOCK, &block, NULL) == -1)
		fatal("sigprocmask");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1 ||
	    sigaction(SIGQUIT, &sa, NULL) == -1)
		fatal("sigaction");
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		fatal("sigaction");
	sigemptyset(&none);

	queue_cap_stat(opts);
	log_info("pipepool %s started: %u workers, max body %llu, timeout "
	    "%.3g s, queue %u", PP_VERSION, opts->workers,
	    (unsigned long long)opts->max_body, opts->timeout, opts->queue);
	maintain();

	for (;;) {
		if (sig_term) {
			sig_term = 0;
			stop_begin();
		}
		if (sig_chld) {
			sig_chld = 0;
			reap();
		}
		if (sig_hup) {
			sig_hup = 0;
			reload();
		}
		if (stopping) {
			if (stop_step() == 0)
				break;
		} else
			maintain();
		t = next_timer();
		pfd.fd = ctl_fd;
		pfd.events = POLLIN;
		if (t >= 0) {
			ts.tv_sec = t / 1000;
			ts.tv_nsec = (long)(t % 1000) * 1000000;
		}
		if (ppoll(&pfd, ctl_fd == -1 ? 0 : 1, t >= 0 ? &ts : NULL,
		    &none) == -1) {
			if (errno != EINTR)
				fatal("ppoll");
			continue;
		}
		if (ctl_fd != -1 && (pfd.revents & (POLLIN | POLLHUP)))
			ctl_read();
	}
	if (unix_path != NULL && unlink(unix_path) == -1 && errno != ENOENT)
		log_warn("unlink %s", unix_path);
	log_info("stopped");
	return 0;
}
