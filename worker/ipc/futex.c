/*
 * futex.c: sleeping on a 32-bit word until another thread or process
 * changes it (the dispatch area's mailbox states and sleep flags, the
 * front's own waits).
 */
#include <linux/futex.h>
#include <sys/syscall.h>

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"

/*
 * Sleep while *word == val, until deadline_ms (CLOCK_MONOTONIC ms; -1:
 * none).  0 when woken or the word changed (callers re-check), -1 with
 * ETIMEDOUT past the deadline.  A signal also returns 0.
 */
int
futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t deadline_ms,
    int shared)
{
	struct timespec	ts, *tp = NULL;
	int		op = FUTEX_WAIT_BITSET;

	if (!shared)
		op |= FUTEX_PRIVATE_FLAG;
	if (atomic_load_explicit(word, memory_order_acquire) != val)
		return 0;
	if (deadline_ms >= 0) {
		ts.tv_sec = deadline_ms / 1000;
		ts.tv_nsec = (deadline_ms % 1000) * 1000000;
		tp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
	if (syscall(SYS_futex, word, op, val, tp, NULL,
	    FUTEX_BITSET_MATCH_ANY) == -1 && errno == ETIMEDOUT)
		return -1;
	return 0;
}

void
futex_wake(_Atomic uint32_t *word, int n, int shared)
{
	(void)syscall(SYS_futex, word, FUTEX_WAKE | (shared ? 0 :
	    FUTEX_PRIVATE_FLAG), n, NULL, NULL, 0);
}
