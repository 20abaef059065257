/* stats.c: the shared counters region and a worker's own page (stats.h). */
#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"

struct stats		*stats;
struct stats_page	*stats_page;

/* The master's read-only fd of the global region: what a child maps.  No
 * process keeps a writable fd of it. */
static int		 stats_ro_fd = -1;

/* Upper bounds in seconds of the request-duration histogram buckets. */
const double stats_hist_bounds[STATS_HIST] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	5
};
const uint64_t stats_hist_bounds_us[STATS_HIST] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 5000000
};

/* Sorted; then the class buckets. */
const uint16_t stats_codes[STATS_CODES] = {
	200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403,
	404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 416, 422, 429,
	431, 499, 500, 501, 502, 503, 504, 505, 507,
	100, 200, 300, 400, 500
};

int
stats_code_slot(unsigned status)
{
	unsigned	lo = 0, hi = STATS_CODES_EXACT, mid;

	if (status < 100 || status > 599)
		return -1;
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (stats_codes[mid] == status)
			return (int)mid;
		if (stats_codes[mid] < status)
			lo = mid + 1;
		else
			hi = mid;
	}
	return STATS_CODE_CLASS(status / 100);
}

/* Upper bounds in seconds of the queue-wait histogram's buckets: most
 * waits are microseconds; overload makes them seconds. */
const double stats_qhist_bounds[STATS_QHIST] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1,
	5, 30
};
const uint64_t stats_qhist_bounds_us[STATS_QHIST] = {
	50, 100, 250, 500, 1000, 2500, 10000, 50000, 250000, 1000000,
	5000000, 30000000
};

/*
 * A sealed memfd of len bytes (it can never shrink, so no mapping of it
 * can SIGBUS), as a read-write fd *rw and a read-only fd *ro of the same
 * file.  A MAP_SHARED mapping of *ro can never be made writable.
 */
static int
memfd_pair(const char *name, size_t len, int *rw, int *ro)
{
	char	path[64];

	*ro = -1;
	if ((*rw = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)) == -1)
		return -1;
	if (ftruncate(*rw, (off_t)len) == -1 || fcntl(*rw, F_ADD_SEALS,
	    F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == -1)
		goto fail;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", *rw);
	if ((*ro = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		goto fail;
	return 0;
fail:
	close(*rw);
	*rw = -1;
	return -1;
}

int
stats_map(void)
{
	void	*p;
	int	 rw;

	if (memfd_pair("pipepool-stats", sizeof(struct stats), &rw,
	    &stats_ro_fd) == -1)
		return -1;
	p = mmap(NULL, sizeof(struct stats), PROT_READ | PROT_WRITE,
	    MAP_SHARED, rw, 0);
	close(rw);
	if (p == MAP_FAILED) {
		close(stats_ro_fd);
		stats_ro_fd = -1;
		return -1;
	}
	stats = p;
	atomic_store(&stats->started_unix, (int64_t)time(NULL));
	atomic_store(&stats->master_pid, (int32_t)getpid());
	return 0;
}

int
stats_page_new(int *rw, int *ro)
{
	return memfd_pair("pipepool-worker-stats", sizeof(struct stats_page),
	    rw, ro);
}

/*
 * In a worker or the store, right after fork (one thread): the global
 * region becomes a read-only mapping of the read-only fd, at the same
 * address (MAP_FIXED replaces the inherited read-write mapping in one
 * step), and page_fd (-1: none) becomes stats_page.  Every fd involved is
 * closed.  -1: the caller must not run (it would hold a writable map).
 */
int
stats_child(int page_fd)
{
	void	*p;
	int	 saved;

	p = mmap(stats, sizeof(struct stats), PROT_READ, MAP_SHARED |
	    MAP_FIXED, stats_ro_fd, 0);
	saved = errno;
	close(stats_ro_fd);
	stats_ro_fd = -1;
	if (p == MAP_FAILED || p != stats) {
		if (page_fd != -1)
			close(page_fd);
		errno = saved;
		return -1;
	}
	if (page_fd == -1)
		return 0;
	p = mmap(NULL, sizeof(struct stats_page), PROT_READ | PROT_WRITE,
	    MAP_SHARED, page_fd, 0);
	saved = errno;
	close(page_fd);
	if (p == MAP_FAILED) {
		errno = saved;
		return -1;
	}
	stats_page = p;
	return 0;
}

/* The bucket of us among n bounds (n: past the last). */
static unsigned
bucket(const uint64_t *bounds_us, unsigned n, int64_t us)
{
	unsigned	i;

	for (i = 0; i < n; i++)
		if (us <= (int64_t)bounds_us[i])
			break;
	return i;
}

static unsigned
hist_bucket(int64_t duration_us)
{
	return bucket(stats_hist_bounds_us, STATS_HIST, duration_us);
}

void
stats_queue_wait(int64_t us)
{
	if (us < 0)
		us = 0;
	STAT_ADD(qhist[bucket(stats_qhist_bounds_us, STATS_QHIST, us)], 1);
	STAT_ADD(qwait_us_sum, (uint64_t)us);
}

static void
slow_log(unsigned status, int64_t took_ms, unsigned slow_ms,
    const struct msg_request_view *rn, unsigned pid)
{
	if (slow_ms && took_ms > (int64_t)slow_ms)
		log_warnx("slow request: %.*s %.*s%s%.*s took %lld ms (worker "
		    "pid %u, status %u)", (int)rn->method_len, rn->method,
		    (int)rn->path_len, rn->path, rn->query_len ? "?" : "",
		    (int)(rn->query_len > 200 ? 200 : rn->query_len),
		    rn->query, (long long)took_ms, pid, status);
}

/*
 * A request is over, answered or relayed by the front: count it, and log
 * it past slow_ms (0: never).  Only rn's method, path and query are used;
 * they need not end in NUL.
 */
void
stats_request_end(unsigned status, int64_t took_ms, unsigned slow_ms,
    const struct msg_request_view *rn, unsigned pid)
{
	int64_t	us = took_ms < 0 ? 0 : took_ms * 1000;
	int	k = stats_code_slot(status);

	STAT_ADD(completed, 1);
	if (k >= 0)
		STAT_ADD(codes[k], 1);
	STAT_ADD(duration_us_sum, (uint64_t)us);
	STAT_ADD(hist[hist_bucket(us)], 1);
	slow_log(status, took_ms, slow_ms, rn, pid);
}

void
stats_worker_state(enum wstate st)
{
	if (stats_page != NULL)
		atomic_store_explicit(&stats_page->state, st,
		    memory_order_relaxed);
}

/* Only this worker writes its page: a load and a store, no locked op. */
#define PAGE_ADD(f, n)	atomic_store_explicit(&stats_page->f,		\
			    atomic_load_explicit(&stats_page->f,	\
			    memory_order_relaxed) + (n), memory_order_relaxed)

void
stats_worker_queue_wait(int64_t us)
{
	if (stats_page == NULL)
		return;
	if (us < 0)
		us = 0;
	PAGE_ADD(qhist[bucket(stats_qhist_bounds_us, STATS_QHIST, us)], 1);
	PAGE_ADD(qwait_us_sum, (uint64_t)us);
}

/*
 * A request this worker answered on nginx's connection itself is over:
 * count it in its page (the front folds it into the totals, status.c),
 * and log it past slow_ms as stats_request_end() does.
 */
void
stats_worker_request(unsigned status, int64_t took_ms, unsigned slow_ms,
    const struct msg_request_view *rn, unsigned pid)
{
	int64_t	us = took_ms < 0 ? 0 : took_ms * 1000;
	int	k = stats_code_slot(status);

	if (stats_page != NULL) {
		if (k >= 0)
			PAGE_ADD(codes[k], 1);
		PAGE_ADD(duration_us_sum, (uint64_t)us);
		PAGE_ADD(hist[hist_bucket(us)], 1);
		/* Last, with release: the front reads it first, with
		 * acquire, and then sees every other field of these
		 * requests, and these requests in its own "accepted". */
		atomic_store_explicit(&stats_page->requests,
		    atomic_load_explicit(&stats_page->requests,
		    memory_order_relaxed) + 1, memory_order_release);
	}
	slow_log(status, took_ms, slow_ms, rn, pid);
}

/*
 * The program a --cgi worker runs (pid 0: none), for /status: the path's
 * first STATS_SCRIPT_MAX - 1 bytes, NUL-padded.  The seqlock's stores
 * are sequentially consistent, so the fields' relaxed stores and the
 * plain bytes are ordered between them.
 */
void
stats_worker_cgi(int32_t pid, const char *script)
{
	struct timespec	ts;
	uint32_t	seq;
	size_t		n = 0;

	if (stats_page == NULL)
		return;
	seq = atomic_load_explicit(&stats_page->cgi_seq, memory_order_relaxed);
	atomic_store(&stats_page->cgi_seq, seq + 1);
	if (script != NULL) {
		n = strnlen(script, STATS_SCRIPT_MAX - 1);
		memcpy(stats_page->cgi_script, script, n);
	}
	memset(stats_page->cgi_script + n, 0, STATS_SCRIPT_MAX - n);
	clock_gettime(CLOCK_REALTIME, &ts);
	atomic_store_explicit(&stats_page->cgi_started_ms, (int64_t)ts.tv_sec *
	    1000 + ts.tv_nsec / 1000000, memory_order_relaxed);
	atomic_store_explicit(&stats_page->cgi_pid, pid, memory_order_relaxed);
	atomic_store(&stats_page->cgi_seq, seq + 2);
}
