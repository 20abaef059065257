/* stats.c: the shared counters region (see stats.h). */
#include <sys/mman.h>

#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"

struct stats	*stats;

/* Upper bounds in seconds of the request-duration histogram buckets. */
const double stats_hist_bounds[STATS_HIST] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	5
};

int
stats_map(void)
{
	void	*p;

	p = mmap(NULL, sizeof(struct stats), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	stats = p;
	atomic_store(&stats->started_unix, (int64_t)time(NULL));
	atomic_store(&stats->master_pid, (int32_t)getpid());
	return 0;
}

void
stats_request_done(unsigned status, int64_t duration_us)
{
	double	s = (double)duration_us / 1e6;
	int	i;

	STAT_ADD(completed, 1);
	if (status >= 100 && status < 600)
		STAT_ADD(status_class[status / 100], 1);
	STAT_ADD(duration_us_sum, (uint64_t)(duration_us < 0 ? 0 :
	    duration_us));
	for (i = 0; i < STATS_HIST; i++)
		if (s <= stats_hist_bounds[i])
			break;
	STAT_ADD(hist[i], 1);
}

/*
 * A request is over, answered by whoever calls (the front, or a worker
 * that sent its answer itself): count it, and log it past slow_ms (0:
 * never).  Only rn's method, path and query are used; they need not end
 * in NUL.
 */
void
stats_request_end(unsigned status, int64_t took_ms, unsigned slow_ms,
    const struct msg_request_view *rn, unsigned pid)
{
	stats_request_done(status, took_ms * 1000);
	if (slow_ms && took_ms > (int64_t)slow_ms)
		log_warnx("slow request: %.*s %.*s%s%.*s took %lld ms (worker "
		    "pid %u, status %u)", (int)rn->method_len, rn->method,
		    (int)rn->path_len, rn->path, rn->query_len ? "?" : "",
		    (int)(rn->query_len > 200 ? 200 : rn->query_len),
		    rn->query, (long long)took_ms, pid, status);
}
