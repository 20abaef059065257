/*
 * test_dispatch.c: the shared dispatch area, with forked worker processes
 * and the real functions.  Oldest request first; a full line refused
 * (EAGAIN) unless a worker sleeps; cancel of a queued vs a claimed request;
 * dispatch_gone of a dead worker's request waking its front; retire; the
 * large-body handshake; futex_wait's deadline; direct requests (the worker
 * sees the front's connection, its sent answer wakes a waiting front, a
 * death while sending is MB_CUT).
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dispatch.h"
#include "futex.h"
#include "proc.h"

#define NMBOX		8
#define MAX_BODY	(64u * 1024)
#define NBUF		4
#define LONG_MS		5000	/* "never" for a step that should be quick */

/* What the worker processes report back, in a MAP_SHARED page. */
struct shared {
	_Atomic uint32_t	go;		/* a futex word: carry on */
	int			taken[4];	/* mailboxes, in order taken */
	int			want[4];	/* want_body seen with each */
	int			wb_ret[2];	/* dispatch_want_body results */
	int			conn_seen[2];	/* direct: as the front set? */
};

static struct shared	*sh;

/* A few milliseconds, between two looks at something that cannot be
 * waited for (a process's state, a put the line refuses). */
static void
pause_ms(long ms)
{
	struct timespec	ts = { 0, ms * 1000000 };

	nanosleep(&ts, NULL);
}

/* Fork a worker process that runs fn(w); it dies with us, should we. */
static pid_t
spawn(void (*fn)(uint32_t), uint32_t w)
{
	pid_t	pid, parent = getpid();

	if ((pid = check_fork()) == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(2);
		fn(w);
		_exit(check_failures ? 1 : 0);
	}
	return pid;
}

/* Reap pid, which must exit 0 within LONG_MS (else it is killed). */
static void
reap(pid_t pid)
{
	int64_t	deadline = proc_now_ms() + LONG_MS;
	pid_t	r;
	int	st = 0;

	while ((r = waitpid(pid, &st, WNOHANG)) == 0 &&
	    proc_now_ms() < deadline)
		pause_ms(1);
	if (r == 0) {
		fprintf(stderr, "worker %ld did not exit: killing it\n",
		    (long)pid);
		kill(pid, SIGKILL);
		r = waitpid(pid, &st, 0);
	}
	CHECK(r == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Kill pid and reap it. */
static void
kill_reap(pid_t pid)
{
	int	st;

	CHECK(kill(pid, SIGKILL) == 0);
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* Is task tid (of process pid) asleep, as in a futex wait? */
static int
asleep(pid_t pid, pid_t tid)
{
	char	path[64], buf[512], *p;
	FILE	*f;
	int	s = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/stat", (long)pid,
	    (long)tid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL &&
	    (p = strrchr(buf, ')')) != NULL && p[1] == ' ')
		s = p[2] == 'S';
	fclose(f);
	return s;
}

/* Wait (bounded) until that task sleeps; 0 if it never did. */
static int
until_asleep(pid_t pid, pid_t tid)
{
	int64_t	deadline = proc_now_ms() + LONG_MS;

	while (!asleep(pid, tid)) {
		if (proc_now_ms() >= deadline)
			return 0;
		pause_ms(1);
	}
	return 1;
}

/*
 * Until mailbox mb's state is want, or LONG_MS pass: 1 if it is.  Sleeps
 * on the state word in 1 ms slices (a claim wakes nobody).
 */
static int
await_state(unsigned mb, uint32_t want)
{
	int64_t		deadline = proc_now_ms() + LONG_MS;
	uint32_t	s;

	while ((s = dispatch_state(mb)) != want) {
		if (proc_now_ms() >= deadline) {
			fprintf(stderr, "mailbox %u: state 0x%08x, waited for "
			    "0x%08x\n", mb, s, want);
			return 0;
		}
		(void)dispatch_wait(mb, s, proc_now_ms() + 1);
	}
	return 1;
}

/* Let a worker process carry on. */
static void
go(void)
{
	atomic_fetch_add(&sh->go, 1);
	futex_wake(&sh->go, INT32_MAX, 1);
}

/* A worker process: wait for go() past the value seen at g. */
static void
wait_go(uint32_t g)
{
	while (atomic_load(&sh->go) == g)
		(void)futex_wait(&sh->go, g, -1, 1);
}

/* Forget what the last worker processes reported. */
static void
reset(void)
{
	int	i;

	for (i = 0; i < 4; i++)
		sh->taken[i] = sh->want[i] = -2;
	sh->wb_ret[0] = sh->wb_ret[1] = -2;
}

/* Worker w takes its i-th request; the parent reads what it got. */
static int
take_noted(uint32_t w, int i, int *wb)
{
	int	mb = dispatch_take(w, wb);

	sh->taken[i] = mb;
	sh->want[i] = *wb;
	return mb;
}

/* --- oldest request first --------------------------------------------- */

#define W_FIFO	dispatch_tag(3, 1)

/* Take three requests, answer each ("re: " its tag) as soon as taken. */
static void
fifo_worker(uint32_t w)
{
	char	buf[64];
	int	i, mb, wb;

	for (i = 0; i < 3; i++) {
		if ((mb = take_noted(w, i, &wb)) < 0)
			continue;
		snprintf(buf, sizeof(buf), "re: %s",
		    (char *)dispatch_data((unsigned)mb));
		strcpy((char *)dispatch_data((unsigned)mb), buf);
		dispatch_done((unsigned)mb, w);
	}
}

static void
test_fifo(void)
{
	static const unsigned	order[3] = { 2, 0, 1 };
	unsigned		i;
	pid_t			pid;

	for (i = 0; i < 3; i++) {
		snprintf((char *)dispatch_data(order[i]), 16, "req %u",
		    order[i]);
		CHECK(dispatch_put(order[i], 16, 0) == 0);
		CHECK(dispatch_state(order[i]) == MB_QUEUED);
	}
	CHECK(dispatch_queued() == 3);
	dispatch_enlist(MB_SLOT(W_FIFO));
	pid = spawn(fifo_worker, W_FIFO);
	for (i = 0; i < 3; i++)
		CHECK(await_state(order[i], MB_DONE | W_FIFO));
	reap(pid);
	for (i = 0; i < 3; i++) {
		char	want[16];

		CHECK(sh->taken[i] == (int)order[i]);
		CHECK(sh->want[i] == 0);
		snprintf(want, sizeof(want), "re: req %u", order[i]);
		CHECK(strcmp((char *)dispatch_data(order[i]), want) == 0);
		dispatch_free(order[i], 16);
		CHECK(dispatch_state(order[i]) == MB_FREE);
	}
	CHECK(dispatch_queued() == 0);
}

/* --- a full line, and cancel ------------------------------------------ */

#define W_ONE	dispatch_tag(4, 1)

/* Take one request and answer it. */
static void
one_worker(uint32_t w)
{
	int	mb, wb;

	mb = dispatch_take(w, &wb);
	sh->taken[0] = mb;
	if (mb >= 0)
		dispatch_done((unsigned)mb, w);
}

static void
test_full(void)
{
	int64_t	deadline;
	pid_t	pid;
	int	r;

	/* Two wait and no worker sleeps: a third is refused at once. */
	CHECK(dispatch_put(0, 2, 0) == 0);
	CHECK(dispatch_put(1, 2, 0) == 0);
	errno = 0;
	CHECK(dispatch_put(2, 2, 0) == -1 && errno == EAGAIN);
	CHECK(dispatch_state(2) == MB_FREE);
	CHECK(dispatch_queued() == 2);
	CHECK(dispatch_put(2, 3, 0) == 0);	/* a larger --queue */
	CHECK(dispatch_queued() == 3);
	/* Cancel takes queued requests back out of line. */
	CHECK(dispatch_cancel(0) == 1);
	CHECK(dispatch_cancel(1) == 1);
	CHECK(dispatch_cancel(2) == 1);
	CHECK(dispatch_state(0) == MB_FREE && dispatch_state(1) == MB_FREE &&
	    dispatch_state(2) == MB_FREE);
	CHECK(dispatch_queued() == 0);
	CHECK(dispatch_cancel(0) == 0);		/* nothing in line */

	/* With --queue 0 a request goes in only while a worker sleeps. */
	errno = 0;
	CHECK(dispatch_put(3, 0, 0) == -1 && errno == EAGAIN);
	dispatch_enlist(MB_SLOT(W_ONE));
	pid = spawn(one_worker, W_ONE);
	deadline = proc_now_ms() + LONG_MS;
	while ((r = dispatch_put(3, 0, 0)) == -1 && errno == EAGAIN &&
	    proc_now_ms() < deadline)
		pause_ms(1);
	CHECK(r == 0);
	CHECK(await_state(3, MB_DONE | W_ONE));
	reap(pid);
	CHECK(sh->taken[0] == 3);
	dispatch_free(3, 0);
}

#define W_HOLD	dispatch_tag(5, 1)

/* Take one request and hold it until go(). */
static void
hold_worker(uint32_t w)
{
	uint32_t	g = atomic_load(&sh->go);
	int		mb, wb;

	mb = dispatch_take(w, &wb);
	sh->taken[0] = mb;
	if (mb < 0)
		return;
	wait_go(g);
	dispatch_done((unsigned)mb, w);
}

static void
test_cancel_claimed(void)
{
	pid_t	pid;

	CHECK(dispatch_put(4, 16, 0) == 0);
	dispatch_enlist(MB_SLOT(W_HOLD));
	pid = spawn(hold_worker, W_HOLD);
	CHECK(await_state(4, MB_CLAIMED | W_HOLD));
	/* A worker has it: too late to cancel, and nothing changes. */
	CHECK(dispatch_cancel(4) == 0);
	CHECK(dispatch_state(4) == (MB_CLAIMED | W_HOLD));
	CHECK(dispatch_queued() == 0);
	go();
	CHECK(await_state(4, MB_DONE | W_HOLD));
	reap(pid);
	CHECK(sh->taken[0] == 4);
	CHECK(dispatch_cancel(4) == 0);
	CHECK(dispatch_state(4) == (MB_DONE | W_HOLD));
	dispatch_free(4, 0);
}

/* --- a worker dies with a request ------------------------------------- */

#define W_DIE	dispatch_tag(6, 1)

struct front_waiter {
	pid_t		tid;
	unsigned	mb;
	uint32_t	seen;
	int		ret;
	int64_t		waited;
	_Atomic int	started;
};

/* A front thread: sleep on the mailbox until its state moves. */
static void *
front_thread(void *arg)
{
	struct front_waiter	*fw = arg;
	int64_t			 t0 = proc_now_ms();

	fw->tid = gettid();
	atomic_store(&fw->started, 1);
	fw->ret = dispatch_wait(fw->mb, fw->seen, t0 + LONG_MS);
	fw->waited = proc_now_ms() - t0;
	return NULL;
}

/* Start a front thread waiting on mailbox mb (state seen); until asleep. */
static void
front_asleep(struct front_waiter *fw, pthread_t *th, unsigned mb,
    uint32_t seen)
{
	int64_t	deadline = proc_now_ms() + LONG_MS;

	memset(fw, 0, sizeof(*fw));
	fw->mb = mb;
	fw->seen = seen;
	CHECK(pthread_create(th, NULL, front_thread, fw) == 0);
	while (!atomic_load(&fw->started) && proc_now_ms() < deadline)
		pause_ms(1);
	CHECK(until_asleep(getpid(), fw->tid));
}

/* Take one request and never answer. */
static void
dying_worker(uint32_t w)
{
	int	mb, wb;

	mb = dispatch_take(w, &wb);
	sh->taken[0] = mb;
	for (;;)
		pause();
}

/* Take one request, start on it, and never answer. */
static void
dying_runner(uint32_t w)
{
	int	mb, wb;

	mb = dispatch_take(w, &wb);
	sh->taken[0] = mb;
	if (mb >= 0)
		(void)dispatch_running((unsigned)mb, w);
	for (;;)
		pause();
}

static void
test_fail(void)
{
	struct front_waiter	fw;
	pthread_t		th;
	pid_t			pid;

	/* Mailbox 5 was answered by W_DIE earlier: fail leaves it be. */
	CHECK(dispatch_put(5, 16, 0) == 0);
	dispatch_enlist(MB_SLOT(W_DIE));
	pid = spawn(one_worker, W_DIE);
	CHECK(await_state(5, MB_DONE | W_DIE));
	reap(pid);

	CHECK(dispatch_put(6, 16, 0) == 0);
	pid = spawn(dying_worker, W_DIE);
	CHECK(await_state(6, MB_CLAIMED | W_DIE));
	front_asleep(&fw, &th, 6, MB_CLAIMED | W_DIE);
	/* Dead before starting on it: back in line, its thread woken. */
	kill_reap(pid);
	CHECK(dispatch_state(6) == (MB_CLAIMED | W_DIE));
	CHECK(dispatch_requeued(6) == 0);
	CHECK(dispatch_gone(W_DIE) == 1);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(fw.ret == 0);			/* woken, not timed out */
	CHECK(fw.waited < LONG_MS);
	CHECK(dispatch_state(6) == MB_QUEUED);
	CHECK(dispatch_requeued(6) == 1);
	/* Once only: a second death before starting fails it. */
	pid = spawn(dying_worker, W_DIE);
	CHECK(await_state(6, MB_CLAIMED | W_DIE));
	kill_reap(pid);
	CHECK(dispatch_gone(W_DIE) == 0);
	CHECK(dispatch_state(6) == (MB_FAILED | W_DIE));
	dispatch_free(6, 0);
	/* Started on: a death fails it at once. */
	CHECK(dispatch_put(6, 16, 0) == 0);
	pid = spawn(dying_runner, W_DIE);
	CHECK(await_state(6, MB_RUNNING | W_DIE));
	front_asleep(&fw, &th, 6, MB_RUNNING | W_DIE);
	kill_reap(pid);
	CHECK(dispatch_gone(W_DIE) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(fw.ret == 0 && fw.waited < LONG_MS);
	CHECK(dispatch_state(6) == (MB_FAILED | W_DIE));
	CHECK(dispatch_state(5) == (MB_DONE | W_DIE));
	/* Another worker's request is not touched. */
	dispatch_gone(W_DIE + 1);
	CHECK(dispatch_state(6) == (MB_FAILED | W_DIE));
	dispatch_free(5, 0);
	dispatch_free(6, 0);
}

/* --- direct requests ------------------------------------------------- */

#define W_DIRECT	dispatch_tag(9, 1)

/*
 * Take two requests: the first must be direct with the front's
 * connection, answered as sent after go(), the second not direct; then a
 * third, where it stops, as if killed while sending.
 */
static void
direct_worker(uint32_t w)
{
	struct mb_conn	mc;
	uint32_t	g = atomic_load(&sh->go);
	int		mb, wb;

	mb = take_noted(w, 0, &wb);
	sh->conn_seen[0] = dispatch_conn_get((unsigned)mb, &mc) == 1 &&
	    mc.gen == 41 && mc.fcgi_id == 7 && mc.start_ms == 1234;
	(void)dispatch_sending((unsigned)mb, w);
	wait_go(g);
	dispatch_sent((unsigned)mb, w, 1, 201, 99);
	mb = take_noted(w, 1, &wb);
	sh->conn_seen[1] = dispatch_conn_get((unsigned)mb, &mc) == 0;
	(void)dispatch_sending((unsigned)mb, w);
	dispatch_sent((unsigned)mb, w, 0, 200, 100);
	mb = take_noted(w, 2, &wb);
	(void)dispatch_sending((unsigned)mb, w);
	for (;;)
		pause();
}

static void
test_direct(void)
{
	struct mb_conn		mc = { 41, 7, 1234, 5678 };
	struct front_waiter	fw;
	pthread_t		th;
	unsigned		status;
	int64_t			when;
	pid_t			pid;

	dispatch_enlist(MB_SLOT(W_DIRECT));
	dispatch_conn(1, &mc);
	CHECK(dispatch_put(1, 16, 0) == 0);
	pid = spawn(direct_worker, W_DIRECT);
	CHECK(await_state(1, MB_SENDING | W_DIRECT));
	/* A front waiting on the mailbox is woken by the worker's sent. */
	front_asleep(&fw, &th, 1, MB_SENDING | W_DIRECT);
	go();
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(fw.ret == 0 && fw.waited < LONG_MS);
	CHECK(dispatch_state(1) == (MB_SENT | W_DIRECT));
	dispatch_sent_info(1, &status, &when);
	CHECK(status == 201 && when == 99);
	dispatch_free(1, 0);
	/* Not direct; a failed connection is status 0. */
	dispatch_conn(2, NULL);
	CHECK(dispatch_put(2, 16, 0) == 0);
	CHECK(await_state(2, MB_SENT | W_DIRECT));
	dispatch_sent_info(2, &status, &when);
	CHECK(status == 0);
	dispatch_free(2, 0);
	/* Killed while sending: the master's word makes it MB_CUT. */
	dispatch_conn(3, &mc);
	CHECK(dispatch_put(3, 16, 0) == 0);
	CHECK(await_state(3, MB_SENDING | W_DIRECT));
	kill_reap(pid);
	dispatch_gone(W_DIRECT);
	CHECK(dispatch_state(3) == (MB_CUT | W_DIRECT));
	dispatch_free(3, 0);
	CHECK(sh->taken[0] == 1 && sh->taken[1] == 2 && sh->taken[2] == 3);
	CHECK(sh->conn_seen[0] == 1 && sh->conn_seen[1] == 1);
}

/* --- retire ------------------------------------------------------------ */

#define W_RETIRE	dispatch_tag(7, 1)
#define W_RETIRE_NEXT	dispatch_tag(7, 2)

/* Take until retired; fails (exit 1) if it ever gets a request. */
static void
retire_worker(uint32_t w)
{
	int	wb;

	CHECK(dispatch_take(w, &wb) == -1);
}

static void
test_retire(void)
{
	pid_t	pid;
	int	wb;

	/* A worker asleep in dispatch_take leaves it when retired. */
	dispatch_enlist(MB_SLOT(W_RETIRE));
	pid = spawn(retire_worker, W_RETIRE);
	CHECK(until_asleep(pid, pid));
	dispatch_retire(W_RETIRE);
	reap(pid);
	/* Retired, it takes nothing, even with a request in line... */
	CHECK(dispatch_put(7, 16, 0) == 0);
	CHECK(dispatch_take(W_RETIRE, &wb) == -1);
	CHECK(dispatch_state(7) == MB_QUEUED);
	/* ...but the next worker in its slot (another tag) does. */
	CHECK(dispatch_take(W_RETIRE_NEXT, &wb) == 7);
	CHECK(wb == 0);
	CHECK(dispatch_state(7) == (MB_CLAIMED | W_RETIRE_NEXT));
	/* A late word of the old one's death does not touch it. */
	dispatch_gone(W_RETIRE);
	CHECK(dispatch_state(7) == (MB_CLAIMED | W_RETIRE_NEXT));
	dispatch_done(7, W_RETIRE_NEXT);
	CHECK(dispatch_state(7) == (MB_DONE | W_RETIRE_NEXT));
	dispatch_free(7, 0);
}

/* --- a large body, read once a worker has the request ------------------ */

#define W_BODY	dispatch_tag(8, 1)

/* Two requests that want their body: answer the first with its body's
 * length, and leave the second when the front gives up on it. */
static void
body_worker(uint32_t w)
{
	char	buf[32];
	int	i, mb, wb;

	for (i = 0; i < 2; i++) {
		if ((mb = take_noted(w, i, &wb)) < 0 || !wb)
			return;
		sh->wb_ret[i] = dispatch_want_body((unsigned)mb, w);
		if (sh->wb_ret[i] >= 0) {
			unsigned char *bd = dispatch_buf((unsigned)
			    sh->wb_ret[i]);

			snprintf(buf, sizeof(buf), "%zu", strlen((char *)bd));
			strcpy((char *)bd, buf);
			dispatch_done((unsigned)mb, w);
		}
	}
}

static void
test_want_body(void)
{
	unsigned char	*d;
	size_t		 n = MB_BODY_INLINE * 3;
	pid_t		 pid;
	int		 b, b2;

	CHECK(dispatch_capacity() > n);
	dispatch_enlist(MB_SLOT(W_BODY));
	pid = spawn(body_worker, W_BODY);
	/* The front reads the body once the worker asks for it. */
	CHECK(dispatch_put(1, 16, 1) == 0);
	CHECK(await_state(1, MB_WANT_BODY | W_BODY));
	/* Buffers: lowest free first, each taken once. */
	b = dispatch_buf_get();
	b2 = dispatch_buf_get();
	CHECK(b == 0 && b2 == 1);
	dispatch_buf_put((unsigned)b2, 0, proc_now_ms());
	d = dispatch_buf((unsigned)b);
	memset(d, 'b', n);
	d[n] = '\0';
	CHECK(dispatch_body(1, W_BODY + 1, 1, (unsigned)b) == -1);
	CHECK(dispatch_state(1) == (MB_WANT_BODY | W_BODY));
	CHECK(dispatch_body(1, W_BODY, 1, (unsigned)b) == 0);
	CHECK(await_state(1, MB_DONE | W_BODY));
	CHECK(sh->taken[0] == 1 && sh->want[0] == 1 && sh->wb_ret[0] == b);
	CHECK(strtoul((char *)d, NULL, 10) == n);
	CHECK(dispatch_body(1, W_BODY, 1, (unsigned)b) == -1);	/* done */
	dispatch_buf_put((unsigned)b, n + 1, proc_now_ms() - 5000);
	dispatch_free(1, 0);
	/* An idle buffer's pages go back: it reads as zeros again. */
	dispatch_trim(proc_now_ms());
	CHECK(d[0] == 0 && d[n - 1] == 0);
	CHECK(dispatch_buf_get() == b);
	dispatch_buf_put((unsigned)b, 0, proc_now_ms());
	/* The front could not read it: the worker lets the mailbox be. */
	CHECK(dispatch_put(1, 16, 1) == 0);
	CHECK(await_state(1, MB_WANT_BODY | W_BODY));
	CHECK(dispatch_body(1, W_BODY, 0, 0) == 0);
	CHECK(dispatch_state(1) == (MB_FAILED | W_BODY));
	reap(pid);
	CHECK(sh->taken[1] == 1 && sh->want[1] == 1 && sh->wb_ret[1] == -1);
	CHECK(dispatch_state(1) == (MB_FAILED | W_BODY));
	dispatch_free(1, 0);

	/* A worker that dies while it waits for the body. */
	CHECK(dispatch_put(2, 16, 1) == 0);
	pid = spawn(body_worker, W_BODY);
	CHECK(await_state(2, MB_WANT_BODY | W_BODY));
	kill_reap(pid);
	dispatch_gone(W_BODY);
	CHECK(dispatch_state(2) == (MB_FAILED | W_BODY));
	CHECK(dispatch_body(2, W_BODY, 1, 0) == -1);
	dispatch_free(2, 0);
}

/* --- futex_wait --------------------------------------------------------- */

static void
test_futex_wait(void)
{
	_Atomic uint32_t	word = 7;
	int64_t			t0, t1;

	/* Unchanged word, near deadline: -1 with ETIMEDOUT, on time. */
	t0 = proc_now_ms();
	errno = 0;
	CHECK(futex_wait(&word, 7, t0 + 50, 0) == -1 && errno == ETIMEDOUT);
	t1 = proc_now_ms();
	CHECK(t1 - t0 >= 49 && t1 - t0 < LONG_MS);
	/* A deadline already past. */
	CHECK(futex_wait(&word, 7, t0, 0) == -1);
	/* A word that is no longer val: at once. */
	CHECK(futex_wait(&word, 8, -1, 0) == 0);
	/* The same on a mailbox's state word, shared. */
	t0 = proc_now_ms();
	CHECK(dispatch_wait(0, MB_FREE, t0 + 30) == -1);
	CHECK(proc_now_ms() - t0 >= 29);
	CHECK(dispatch_wait(0, MB_DONE, -1) == 0);
}

/* --- a hostile worker scribbles over the area ---------------------------- */

static void
scribble_worker(uint32_t w)
{
	size_t		 len;
	unsigned char	*m = dispatch_meta(&len);

	(void)w;
	memset(m, 0xff, len);
}

/* p (n bytes) lies inside the area's mapping. */
static int
inside(const unsigned char *p, size_t n)
{
	size_t			 len;
	const unsigned char	*base = dispatch_meta(&len);

	return p >= base && p + n <= base + dispatch_size();
}

/*
 * After a worker set every shared word of the area to 0xff (sizes, counts,
 * the line's order, every mailbox's words), the front's functions stay
 * inside the mapping and return: nothing they index or loop over comes
 * from the area unchecked.
 */
static void
test_scribbled(void)
{
	unsigned	i;
	int		b;

	reap(spawn(scribble_worker, 0));
	for (i = 0; i < NMBOX; i++)
		CHECK(inside(dispatch_data(i), dispatch_capacity()));
	for (i = 0; i < NBUF; i++)
		CHECK(inside(dispatch_buf(i), dispatch_capacity()));
	CHECK(dispatch_capacity() >= MAX_BODY);
	CHECK(dispatch_queued() == 0);		/* no state is MB_QUEUED */
	CHECK(dispatch_cancel(0) == 0);
	dispatch_gone(0xffffffu);
	dispatch_gone(W_FIFO);
	dispatch_trim(proc_now_ms() + 10000);
	/* The pool's bookkeeping is the front's own: all still free. */
	for (i = 0; i < NBUF; i++)
		CHECK(dispatch_buf_get() == (int)i);
	CHECK(dispatch_buf_get() == -1);
	for (i = 0; i < NBUF; i++)
		dispatch_buf_put(i, 1u << 30, proc_now_ms());
	/* Every sleep flag says "asleep", so the line is not counted; the
	 * put itself works on the front's own bounds. */
	CHECK(dispatch_put(NMBOX - 1, 0, 0) == 0);
	CHECK(dispatch_state(NMBOX - 1) == MB_QUEUED);
	CHECK(dispatch_queued() == 1);
	CHECK(dispatch_cancel(NMBOX - 1) == 1);
	dispatch_free(NMBOX - 1, (size_t)-1);
	b = dispatch_body(0, W_FIFO, 1, 0xffffffffu);
	CHECK(b == -1);
	dispatch_retire(0xffffffu);
}

/* --- past --timeout the front takes a request back -------------------- */

#define W_LATE	dispatch_tag(11, 1)

static void
test_late(void)
{
	int		mb, wb;
	uint32_t	s;

	CHECK(dispatch_put(7, 16, 0) == 0);
	/* Only a request a worker holds can be taken back. */
	CHECK(dispatch_late(7, dispatch_state(7)) == 0);
	dispatch_enlist(MB_SLOT(W_LATE));
	mb = dispatch_take(W_LATE, &wb);
	CHECK(mb == 7);
	CHECK(dispatch_running(7, W_LATE) == 0);
	s = dispatch_state(7);
	CHECK(s == (MB_RUNNING | W_LATE));
	/* A stale state is refused: the state moved on meanwhile. */
	CHECK(dispatch_late(7, MB_CLAIMED | W_LATE) == 0);
	CHECK(dispatch_late(7, s) == 1);
	CHECK(dispatch_state(7) == (MB_LATE | W_LATE));
	/* Now the worker can neither start, answer on the connection, nor
	 * lay a piece, and the state stays the front's. */
	CHECK(dispatch_running(7, W_LATE) == -1);
	CHECK(dispatch_sending(7, W_LATE) == -1);
	CHECK(dispatch_part_put(7, W_LATE) == -1);
	CHECK(dispatch_done(7, W_LATE) == -1);
	CHECK(dispatch_sent(7, W_LATE, 1, 200, 1) == -1);
	CHECK(!dispatch_mine(7, W_LATE));
	CHECK(dispatch_state(7) == (MB_LATE | W_LATE));
	/* Another worker's death leaves it; its own fails it. */
	CHECK(dispatch_gone(W_LATE + 1) == 0);
	CHECK(dispatch_state(7) == (MB_LATE | W_LATE));
	CHECK(dispatch_gone(W_LATE) == 0);
	CHECK(dispatch_state(7) == (MB_FAILED | W_LATE));
	CHECK(dispatch_late(7, dispatch_state(7)) == 0);
	dispatch_free(7, 0);

	/* No word of its death in time: the front frees the mailbox and the
	 * connection's next request goes in.  The late worker, still alive,
	 * can touch neither. */
	CHECK(dispatch_put(7, 16, 0) == 0);
	mb = dispatch_take(W_LATE, &wb);
	CHECK(mb == 7 && dispatch_running(7, W_LATE) == 0);
	CHECK(dispatch_late(7, dispatch_state(7)) == 1);
	dispatch_free(7, 0);
	CHECK(dispatch_put(7, 16, 0) == 0);
	CHECK(dispatch_done(7, W_LATE) == -1);
	CHECK(dispatch_sent(7, W_LATE, 1, 200, 1) == -1);
	CHECK(dispatch_running(7, W_LATE) == -1);
	CHECK(dispatch_sending(7, W_LATE) == -1);
	CHECK(!dispatch_mine(7, W_LATE));
	CHECK(MB_KIND(dispatch_state(7)) == MB_QUEUED);
	/* ...nor once another worker has it. */
	mb = dispatch_take(W_LATE + 1, &wb);
	CHECK(mb == 7);
	CHECK(dispatch_done(7, W_LATE) == -1);
	CHECK(dispatch_state(7) == (MB_CLAIMED | (W_LATE + 1)));
	CHECK(dispatch_mine(7, W_LATE + 1));
	CHECK(dispatch_done(7, W_LATE + 1) == 0);
	dispatch_free(7, 0);
}

int
main(void)
{
	void	*p;

	p = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || dispatch_map(NMBOX, NBUF, MAX_BODY) == -1) {
		perror("mmap");
		return 1;
	}
	sh = p;
	CHECK(dispatch_capacity() >= MAX_BODY);
	CHECK(dispatch_queued() == 0);
	test_futex_wait();
	reset();
	test_fifo();
	reset();
	test_full();
	reset();
	test_cancel_claimed();
	reset();
	test_fail();
	reset();
	test_retire();
	reset();
	test_want_body();
	reset();
	test_direct();
	CHECK(dispatch_queued() == 0);
	reset();
	test_late();
	reset();
	test_scribbled();
	dispatch_unmap();
	munmap(sh, sizeof(*sh));
	return check_done("test_dispatch");
}
