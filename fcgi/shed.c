/*
 * shed.c: shedding on time, CoDel's rule (RFC 8289) at the door.
 *
 * --queue N bounds how many requests wait; --queue-target-ms T bounds how
 * long.  Each time a worker takes a request its wait is a sample.  Once
 * every sample for a whole SHED_INTERVAL_US has been above T (the
 * shortest wait of the interval is above it: a standing queue, not a
 * burst that drains by itself), a spell of shedding begins: the line may
 * hold only about T's worth of work (T times the rate at which workers
 * took requests over the last interval, at least one request), and each
 * arrival past that gets 503 with Retry-After at once; so does, like
 * CoDel's drop at the head, a request that has waited in line over 2 T
 * (the line that stood before the spell began), which its own thread
 * sees at its next look (shed_overdue).  The spell ends when every
 * sample for a whole interval was below T, or the line is empty.  Off
 * (T = 0) it costs one atomic load per request.
 *
 * The samples come from queue_time (relay.c), once the front thread
 * knows the request was taken: late by the request's service time, which
 * only delays a spell's start and end.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "dispatch.h"
#include "front_int.h"
#include "log.h"
#include "proc.h"
#include "shed.h"
#include "stats.h"

#define SHED_INTERVAL_US	100000	/* CoDel's 100 ms */

static struct {
	pthread_mutex_t	lk;		/* guards all but the atomics */
	int64_t		since;		/* us: when the state flips if the
					 * samples keep disagreeing with it;
					 * 0: the last one agreed */
	int64_t		window;		/* us: the rate's window ends */
	unsigned	taken, taken_last;	/* samples in it, and in the
						 * last one */
	_Atomic unsigned room;		/* while shedding: the line's cap */
	_Atomic int	shedding;
} S = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0 };

/* Start or end a spell, under S.lk. */
static void
spell(int on, uint32_t target_ms)
{
	S.since = 0;
	if (atomic_load(&S.shedding) == on)
		return;
	atomic_store(&S.shedding, on);
	if (on) {
		STAT_ADD(shed_spells, 1);
		log_warnx("requests have waited over --queue-target-ms %u for "
		    "%d ms: the line holds %u until they wait less", target_ms,
		    SHED_INTERVAL_US / 1000, atomic_load(&S.room));
	} else
		log_info("requests wait under --queue-target-ms %u again",
		    target_ms);
}

/* Count a take in the rate's window, and work out the line's cap. */
static void
rate(int64_t now, uint32_t target_ms)
{
	uint64_t	room;

	if (now >= S.window) {
		S.taken_last = now - S.window < SHED_INTERVAL_US ? S.taken : 0;
		S.taken = 0;
		S.window = now + SHED_INTERVAL_US;
	}
	S.taken++;
	room = (uint64_t)target_ms * 1000 * S.taken_last / SHED_INTERVAL_US;
	atomic_store(&S.room, room < 1 ? 1 : room > UINT32_MAX ? UINT32_MAX :
	    (unsigned)room);
}

void
shed_waited(int64_t wait_us)
{
	uint32_t	target = atomic_load(&front_live.queue_target_ms);
	int64_t		now;
	int		above, on;

	if (target == 0) {
		if (atomic_load(&S.shedding))
			(void)shed_refuse();	/* off since a reload */
		return;
	}
	now = proc_now_us();
	above = wait_us >= (int64_t)target * 1000;
	pthread_mutex_lock(&S.lk);
	rate(now, target);
	on = atomic_load(&S.shedding);
	if (above == on)
		S.since = 0;	/* a sample that agrees with the state */
	else if (S.since == 0)
		S.since = now + SHED_INTERVAL_US;
	else if (now >= S.since)
		spell(!on, target);
	pthread_mutex_unlock(&S.lk);
}

int
shed_watching(void)
{
	return atomic_load_explicit(&front_live.queue_target_ms,
	    memory_order_relaxed) != 0;
}

int
shed_overdue(int64_t put_us)
{
	uint32_t	target;

	if (!atomic_load_explicit(&S.shedding, memory_order_relaxed))
		return 0;
	target = atomic_load(&front_live.queue_target_ms);
	return target != 0 &&
	    proc_now_us() - put_us > (int64_t)target * 2000;
}

int
shed_refuse(void)
{
	uint32_t	target;
	unsigned	n;

	if (!atomic_load_explicit(&S.shedding, memory_order_relaxed))
		return 0;
	target = atomic_load(&front_live.queue_target_ms);
	if (target != 0 && (n = dispatch_queued()) > 0)
		return n >= atomic_load(&S.room);
	/* Off, or nothing left to wait behind: the spell is over. */
	pthread_mutex_lock(&S.lk);
	spell(0, target);
	pthread_mutex_unlock(&S.lk);
	return 0;
}
