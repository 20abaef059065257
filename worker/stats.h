/*
 * stats.h: counters shared by all pipepool processes, in one MAP_SHARED
 * region the master maps before it forks.  Writers use relaxed atomics;
 * /status and /metrics read them without stopping anyone.
 */
#ifndef PP_STATS_H
#define PP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "msg.h"
#include "options.h"

#define STATS_SLOTS	(2 * PP_WORKERS_MAX + 8)
#define STATS_HIST	12	/* request-duration histogram buckets */

enum wstate { WS_EMPTY, WS_STARTING, WS_IDLE, WS_BUSY, WS_RETIRING };
enum wkind { WORKER_FRONT, WORKER_HELLO, WORKER_STORE };

struct stats_worker {
	_Atomic int32_t		pid;
	_Atomic uint32_t	state;		/* enum wstate */
	_Atomic uint32_t	kind;		/* enum wkind */
	_Atomic uint32_t	number;
	_Atomic uint64_t	requests;
	_Atomic int64_t		started_unix;
};

struct stats {
	_Atomic int64_t		started_unix;
	_Atomic int32_t		master_pid;
	_Atomic uint64_t	accepted;
	_Atomic uint64_t	completed;
	_Atomic uint64_t	status_class[6];	/* [2] = 2xx ... [5] */
	_Atomic uint64_t	rejected_overload;
	_Atomic uint64_t	timeouts;
	_Atomic uint64_t	worker_crashes;
	_Atomic uint64_t	respawns;
	_Atomic uint32_t	queue_depth;
	_Atomic uint32_t	queue_capacity;
	_Atomic uint64_t	hist[STATS_HIST + 1];	/* last: +Inf */
	_Atomic uint64_t	duration_us_sum;
	struct stats_worker	w[STATS_SLOTS];		/* by master slot */
};

extern struct stats	*stats;

int	stats_map(void);
void	stats_request_done(unsigned status, int64_t duration_us);
void	stats_request_end(unsigned status, int64_t took_ms, unsigned slow_ms,
	    const struct msg_request_view *, unsigned pid);
extern const double	stats_hist_bounds[STATS_HIST];

#define STAT_ADD(f, n)	atomic_fetch_add_explicit(&stats->f, (n), \
			    memory_order_relaxed)

#endif
