/*
 * hop.c: the worker-hop microbenchmark (no nginx, no FastCGI).
 *
 * What one request costs for going through a pipepool worker, by itself:
 * it maps a dispatch area (worker/ipc/dispatch.h) with one mailbox per client
 * thread and forks W real workers (worker_main(), in master slots
 * 0..W-1, enlisted as master.c's spawn_worker() does), then T client
 * threads push requests through the real dispatch area the way
 * fcgi/relay.c's relay() does: each frames its request in its own
 * mailbox (msg_frame), puts it in line (dispatch_put), hands over a large
 * body when the worker asks for it (dispatch_body), sleeps on the mailbox
 * (dispatch_wait) until the reply is there, checks it, copies the answer
 * into an output buffer (the front's put()) and frees the mailbox
 * (dispatch_free).  Then, in the same run, an "inline" baseline: the same
 * threads, the same loop, but each thread produces the answer itself
 * (reply_bytes(), the same CGI bytes as the built-in application's, whose
 * state is the worker's main thread's alone) and copies it into its
 * output buffer.  The difference in CPU time per request is what
 * the hop adds: client-side CPU (getrusage RUSAGE_SELF) plus worker CPU
 * (RUSAGE_CHILDREN, after the workers exited: they are retired with
 * dispatch_retire, then waitpid), minus the inline CPU.
 *
 * Usage: hop [-w WORKERS] [-t THREADS] [-n REQUESTS] [-d SECONDS] [-b BYTES]
 *   defaults 2 workers, 4 threads, 200000 requests, no time limit;
 *   -d stops the hop phase after SECONDS (the inline phase then runs as many
 *   requests as the hop phase did); -b BYTES sends POST /echo with a body of
 *   BYTES (the worker echoes it) instead of GET / (the hello answer); a body
 *   over MB_BODY_INLINE goes in once a worker has the request, as the
 *   front's does.
 *
 * Output: one "name: value" line per figure, last the verdict against the
 * target (hop CPU added per request <= 15 us).  Exit 0 even on a MISS; 1 if
 * something fails (a bad answer, a worker that dies or does not answer
 * within 30 s).
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "reply.h"
#include "msg.h"
#include "options.h"
#include "proc.h"
#include "stats.h"
#include "worker.h"

#define TARGET_ADDED_US	15.0
#define HELLO		"hello world from another process\n"
#define WORKERS_MAX	64
#define THREADS_MAX	1024
#define ANSWER_MS	30000	/* a worker that takes longer is broken */

enum mode { MODE_HOP, MODE_INLINE };

struct client {
	pthread_t	 tid;
	unsigned	 idx;		/* its mailbox, as the front's conn->idx */
	char		*out;		/* what put() would send on */
	size_t		 outcap;
	size_t		 outlen;
	uint64_t	 done;
	uint64_t	 lat_ns;	/* sum of round-trip wall times */
	uint64_t	 checked;	/* answers compared byte for byte */
};

static struct options	 opts;
static pid_t		 wpid[WORKERS_MAX];
static unsigned		 nworkers = 2, nthreads = 4;
static uint64_t		 nrequests = 200000;
static double		 seconds;	/* 0: no time limit */
static size_t		 body_len;
static char		*body;
static enum mode	 mode;
static uint64_t		 limit;		/* requests of the current phase */
static int64_t		 stop_ns;	/* 0: none */
static _Atomic uint64_t	 next_req;
static _Atomic uint64_t	 seq = 1;
static _Atomic int	 stopped;

static int64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
tv_us(const struct timeval *tv)
{
	return (double)tv->tv_sec * 1e6 + (double)tv->tv_usec;
}

static double
cpu_us(const struct rusage *a, const struct rusage *b)
{
	return tv_us(&b->ru_utime) - tv_us(&a->ru_utime) +
	    tv_us(&b->ru_stime) - tv_us(&a->ru_stime);
}

static long
ctxsw(const struct rusage *a, const struct rusage *b)
{
	return (b->ru_nvcsw - a->ru_nvcsw) + (b->ru_nivcsw - a->ru_nivcsw);
}

static void
usage(void)
{
	fprintf(stderr, "usage: hop [-w WORKERS] [-t THREADS] [-n REQUESTS] "
	    "[-d SECONDS] [-b BYTES]\n");
	exit(64);
}

static unsigned long long
number(const char *s, unsigned long long lo, unsigned long long hi)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 ||
	    v < lo || v > hi)
		usage();
	return v;
}

/* The request every client sends: GET / or POST /echo with the body. */
static void
request_line(const char **method, size_t *mlen, const char **path,
    size_t *plen)
{
	if (body_len > 0) {
		*method = "POST";
		*path = "/echo";
	} else {
		*method = "GET";
		*path = "/";
	}
	*mlen = strlen(*method);
	*plen = strlen(*path);
}

/* The front's put(): the answer is copied on toward the client. */
static void
put(struct client *c, const void *p, size_t n)
{
	if (c->outlen + n > c->outcap)
		c->outlen = 0;		/* "sent": start over */
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
}

/*
 * Is this the answer we asked for: the blank line ending the CGI head,
 * then the body.  A hello body is compared whole every time; an echo body
 * whole on each thread's first request and every 1024th (a compare of
 * 64 KiB per request would be CPU charged to both sides), else its tail.
 */
static void
check_answer(struct client *c, const unsigned char *p, size_t n)
{
	const char	*want = body_len > 0 ? body : HELLO;
	size_t		 wlen = body_len > 0 ? body_len : sizeof(HELLO) - 1;
	size_t		 cmp = wlen;

	if ((c->done & 1023) != 0 && cmp > 64)
		cmp = 64;
	if (n < wlen + 4 || memcmp(p + n - wlen - 4, "\r\n\r\n", 4) != 0 ||
	    memcmp(p + n - cmp, want + wlen - cmp, cmp) != 0)
		errx(1, "answer %" PRIu64 " of a thread is not the expected "
		    "%s body (%zu bytes)", c->done, body_len ? "echo" :
		    "hello", n);
	if (cmp == wlen)
		c->checked++;
}

/*
 * Frame the request in mailbox d, the body first put where it goes (the
 * front reads it there from libfcgi), as relay.c's frame_request() does.
 * Returns where the body starts.
 */
static size_t
frame_request(unsigned char *d, uint64_t id)
{
	struct msg_request	 mr;
	struct iovec		 iov[5];
	const char		*method, *path;
	size_t			 mlen, plen, boff;

	request_line(&method, &mlen, &path, &plen);
	boff = sizeof(struct msg_hdr) + msg_request_pack(&mr, method, mlen,
	    path, plen, "", 0, body_len, iov);
	if (body_len > 0)
		memcpy(d + boff, body, body_len);
	iov[4].iov_base = d + boff;	/* in place */
	iov[4].iov_len = body_len;
	if (msg_frame(d, dispatch_capacity(), MSG_REQUEST, id, iov, 5) == 0)
		err(1, "msg_frame");
	return boff;
}

/* One request through a worker, as fcgi/relay.c's relay() does it. */
static void
serve_hop(struct client *c)
{
	unsigned char	*d = dispatch_data(c->idx);
	const unsigned char *p;
	size_t		 cap = dispatch_capacity(), boff = 0, used;
	struct msg_hdr	 h;
	struct msg_reply rep;
	int64_t		 deadline;
	uint64_t	 id;
	uint32_t	 s, w;
	int		 want_body, b = -1;

	deadline = proc_now_ms() + ANSWER_MS;
	id = atomic_fetch_add(&seq, 1);
	want_body = body_len > MB_BODY_INLINE;
	if (!want_body)
		boff = frame_request(d, id);
	/* Each thread has one request at most: the line is never full. */
	if (dispatch_put(c->idx, nthreads, want_body) == -1)
		err(1, "dispatch_put");
	for (;;) {
		s = dispatch_state(c->idx);
		if (MB_KIND(s) == MB_DONE || MB_KIND(s) == MB_FAILED)
			break;
		if (MB_KIND(s) == MB_WANT_BODY && b == -1) {
			if ((b = dispatch_buf_get()) == -1)
				errx(1, "no buffer for a large body");
			d = dispatch_buf((unsigned)b);
			boff = frame_request(d, id);
			if (dispatch_body(c->idx, MB_WORKER(s), 1,
			    (unsigned)b) == -1)
				errx(1, "worker in slot %u gave up the request",
				    MB_WORKER(s));
			continue;
		}
		if (dispatch_wait(c->idx, s, deadline) == -1)
			errx(1, "no answer within %d ms (mailbox %u state "
			    "0x%08x)", ANSWER_MS, c->idx, s);
	}
	w = MB_WORKER(s);
	if (MB_KIND(s) == MB_FAILED)
		errx(1, "worker in slot %u failed the request", w);
	if ((p = msg_unframe(d, cap, MSG_REPLY, &h)) == NULL || h.id != id)
		errx(1, "worker in slot %u: unexpected reply (type %u, id %"
		    PRIu64 ", len %u)", w, h.type, h.id, h.len);
	memcpy(&rep, p, sizeof(rep));
	if (rep.status != 200)
		errx(1, "worker in slot %u answered %u", w, rep.status);
	if (MB_SLOT(w) < PROC_SLOTS)
		atomic_fetch_add_explicit(&stats->w[MB_SLOT(w)].requests, 1,
		    memory_order_relaxed);
	put(c, p + sizeof(rep), h.len - sizeof(rep));
	check_answer(c, p + sizeof(rep), h.len - sizeof(rep));
	used = want_body || body_len ? boff + body_len : 0;
	if (sizeof(h) + h.len > used)
		used = sizeof(h) + h.len;
	if (b >= 0) {
		dispatch_buf_put((unsigned)b, used, proc_now_ms());
		used = 0;
	}
	dispatch_free(c->idx, used);
}

/* The same answer produced in the client thread: the baseline. */
static void
serve_inline(struct client *c)
{
	struct reply		 rp;
	size_t			 n;

	if (body_len > 0)
		reply_bytes(&rp, 200, "application/octet-stream", body,
		    body_len, 0);
	else
		reply_bytes(&rp, 200, REPLY_TEXT_TYPE, HELLO, sizeof(HELLO) - 1,
		    0);
	if (c->outlen + rp.head_len + rp.body_len > c->outcap)
		c->outlen = 0;
	n = c->outlen;
	put(c, rp.head, rp.head_len);
	put(c, rp.body, rp.body_len);
	check_answer(c, (unsigned char *)c->out + n, rp.head_len +
	    rp.body_len);
}

static void *
client_main(void *arg)
{
	struct client	*c = arg;
	int64_t		 t0, t1;

	for (;;) {
		if (atomic_fetch_add(&next_req, 1) >= limit)
			break;
		t0 = now_ns();
		if (stop_ns && t0 >= stop_ns) {
			atomic_store(&stopped, 1);
			break;
		}
		if (mode == MODE_HOP)
			serve_hop(c);
		else
			serve_inline(c);
		t1 = now_ns();
		c->lat_ns += (uint64_t)(t1 - t0);
		c->done++;
	}
	return NULL;
}

/*
 * Fork worker n (1-based) in master slot n - 1, as master.c's
 * spawn_worker() does, without a lifeline: the worker dies with us
 * instead (PR_SET_PDEATHSIG), should we fail before retiring it.
 */
static void
spawn(unsigned n)
{
	pid_t	pid, parent = getpid();

	dispatch_enlist(n - 1);	/* its tag: dispatch_tag(n - 1, 1) */
	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid == 0) {
		if (proc_child_signals() == -1 || proc_keep_fds(NULL, 0) == -1 ||
		    prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
			err(1, "setting up a worker");
		if (getppid() != parent)
			_exit(1);
		worker_main(&opts, n, -1, -1, dispatch_tag(n - 1, 1));
	}
	wpid[n - 1] = pid;
}

/* Retire every worker (they leave dispatch_take) and reap them. */
static void
reap(void)
{
	unsigned	i;
	int		status;

	for (i = 0; i < nworkers; i++)
		dispatch_retire(dispatch_tag(i, 1));
	for (i = 0; i < nworkers; i++) {
		while (waitpid(wpid[i], &status, 0) == -1)
			if (errno != EINTR)
				err(1, "waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			errx(1, "worker %u (pid %ld) ended badly (status 0x%x)",
			    i + 1, (long)wpid[i], status);
	}
}

struct phase {
	uint64_t	done;
	double		wall_s;
	double		lat_us;		/* mean round trip */
	double		cpu_self_us;	/* per request */
	double		cpu_workers_us;	/* per request */
	double		csw_self;	/* context switches per request */
	double		csw_workers;
	uint64_t	checked;
};

/* Run one phase with nthreads clients; fills the self figures of ph. */
static void
run_phase(enum mode m, uint64_t n, struct client *cl, struct phase *ph)
{
	struct rusage	r0, r1;
	int64_t		t0, t1;
	uint64_t	lat = 0;
	unsigned	i;
	int		e;

	mode = m;
	limit = n;
	atomic_store(&next_req, 0);
	atomic_store(&stopped, 0);
	for (i = 0; i < nthreads; i++) {
		cl[i].done = cl[i].lat_ns = cl[i].checked = 0;
		cl[i].outlen = 0;
	}
	if (getrusage(RUSAGE_SELF, &r0) == -1)
		err(1, "getrusage");
	t0 = now_ns();
	stop_ns = m == MODE_HOP && seconds > 0 ?
	    t0 + (int64_t)(seconds * 1e9) : 0;
	for (i = 0; i < nthreads; i++)
		if ((e = pthread_create(&cl[i].tid, NULL, client_main,
		    &cl[i])) != 0)
			errx(1, "pthread_create: %s", strerror(e));
	for (i = 0; i < nthreads; i++)
		pthread_join(cl[i].tid, NULL);
	t1 = now_ns();
	if (getrusage(RUSAGE_SELF, &r1) == -1)
		err(1, "getrusage");
	memset(ph, 0, sizeof(*ph));
	for (i = 0; i < nthreads; i++) {
		ph->done += cl[i].done;
		ph->checked += cl[i].checked;
		lat += cl[i].lat_ns;
	}
	if (ph->done == 0)
		errx(1, "no request was served");
	ph->wall_s = (double)(t1 - t0) / 1e9;
	ph->lat_us = (double)lat / 1e3 / (double)ph->done;
	ph->cpu_self_us = cpu_us(&r0, &r1) / (double)ph->done;
	ph->csw_self = (double)ctxsw(&r0, &r1) / (double)ph->done;
}

int
main(int argc, char **argv)
{
	struct client	*cl;
	struct phase	 hop, inl;
	struct rusage	 c0, c1;
	struct sigaction sa;
	double		 hop_cpu, added;
	unsigned	 i;
	size_t		 j;
	int		 ch;

	while ((ch = getopt(argc, argv, "w:t:n:d:b:")) != -1) {
		switch (ch) {
		case 'w':
			nworkers = (unsigned)number(optarg, 1, WORKERS_MAX);
			break;
		case 't':
			nthreads = (unsigned)number(optarg, 1, THREADS_MAX);
			break;
		case 'n':
			nrequests = number(optarg, 1, UINT64_MAX / 2);
			break;
		case 'd':
			seconds = (double)number(optarg, 0, 3600);
			break;
		case 'b':
			body_len = (size_t)number(optarg, 0, 64u << 20);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	options_defaults(&opts);
	opts.workers = nworkers;
	if (body_len > opts.max_body)
		opts.max_body = body_len;
	/* As the front (a pipepool child). */
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		err(1, "sigaction");
	if (body_len > 0) {
		if ((body = malloc(body_len)) == NULL)
			err(1, "malloc");
		for (j = 0; j < body_len; j++)
			body[j] = (char)('a' + (j * 7 + j / 251) % 26);
	}
	reply_init();	/* for the inline phase; workers do their own */

	/* As the master: the shared counters and the dispatch area (one
	 * mailbox per client thread), then the workers, forked before any
	 * thread exists. */
	if (stats_map() == -1)
		err(1, "mapping the stats");
	if (dispatch_map(nthreads, nthreads, opts.max_body) == -1)
		err(1, "mapping the dispatch area");
	if (getrusage(RUSAGE_CHILDREN, &c0) == -1)
		err(1, "getrusage");
	for (i = 0; i < nworkers; i++)
		spawn(i + 1);

	if ((cl = calloc(nthreads, sizeof(*cl))) == NULL)
		err(1, "calloc");
	for (i = 0; i < nthreads; i++) {
		cl[i].idx = i;
		cl[i].outcap = 2 * (MSG_REPLY_HEAD_MAX + body_len) + 65536;
		if ((cl[i].out = malloc(cl[i].outcap)) == NULL)
			err(1, "malloc");
	}

	run_phase(MODE_HOP, nrequests, cl, &hop);
	reap();
	if (getrusage(RUSAGE_CHILDREN, &c1) == -1)
		err(1, "getrusage");
	hop.cpu_workers_us = cpu_us(&c0, &c1) / (double)hop.done;
	hop.csw_workers = (double)ctxsw(&c0, &c1) / (double)hop.done;

	/* The baseline: as many requests as the hop phase served. */
	run_phase(MODE_INLINE, hop.done, cl, &inl);

	hop_cpu = hop.cpu_self_us + hop.cpu_workers_us;
	added = hop_cpu - inl.cpu_self_us;
	if (body_len)
		printf("hop setup: workers=%u threads=%u requests=%" PRIu64
		    " POST /echo body=%zu bytes\n", nworkers, nthreads,
		    hop.done, body_len);
	else
		printf("hop setup: workers=%u threads=%u requests=%" PRIu64
		    " GET / (hello)\n", nworkers, nthreads, hop.done);
	printf("hop answers checked: %" PRIu64 " in full, every one's "
	    "tail\n", hop.checked);
	printf("hop requests per second: %.0f\n", (double)hop.done /
	    hop.wall_s);
	printf("hop round trip mean: %.2f us\n", hop.lat_us);
	printf("hop cpu client per request: %.2f us\n", hop.cpu_self_us);
	printf("hop cpu workers per request: %.2f us\n", hop.cpu_workers_us);
	printf("hop cpu total per request: %.2f us\n", hop_cpu);
	printf("hop context switches per request: client %.2f workers %.2f\n",
	    hop.csw_self, hop.csw_workers);
	printf("inline requests per second: %.0f\n", (double)inl.done /
	    inl.wall_s);
	printf("inline round trip mean: %.3f us\n", inl.lat_us);
	printf("inline cpu per request: %.3f us\n", inl.cpu_self_us);
	/* The target is the hop's own cost (hello); with a body the copy
	 * of the body is added, so that figure is shown without one. */
	if (body_len == 0)
		printf("hop cpu added per request: %.2f us target<=%.0f %s\n",
		    added, TARGET_ADDED_US, added <= TARGET_ADDED_US ? "PASS" :
		    "MISS");
	else
		printf("hop cpu added per request: %.2f us (with a %zu-byte "
		    "body; the target is for hello) -\n", added, body_len);

	for (i = 0; i < nthreads; i++)
		free(cl[i].out);
	free(cl);
	free(body);
	dispatch_unmap();
	return 0;
}
