/*
 * dispatch.c: the shared dispatch queue (see dispatch.h).  One mutex
 * guards it; a request that finds no idle worker sleeps on its own futex
 * word until a worker is handed to it, so exactly one thread wakes per
 * freed worker (no thundering herd), and it wakes after the mutex is
 * released and without taking it again.  Removing a retired worker
 * from the idle ring is O(idle workers); it happens only on reloads.
 */
#include <linux/futex.h>
#include <sys/syscall.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"

int
queue_init(struct queue *q, unsigned nworkers, unsigned cap)
{
	memset(q, 0, sizeof(*q));
	if (pthread_mutex_init(&q->lk, NULL) != 0)
		return -1;
	q->idle = calloc(nworkers, sizeof(*q->idle));
	q->retire = calloc(nworkers, 1);
	if (q->idle == NULL || q->retire == NULL) {
		free(q->idle);
		free(q->retire);
		return -1;
	}
	q->nworkers = nworkers;
	q->cap = cap;
	return 0;
}

void
queue_free(struct queue *q)
{
	free(q->idle);
	free(q->retire);
	pthread_mutex_destroy(&q->lk);
}

int
waiter_init(struct waiter *w)
{
	memset(w, 0, sizeof(*w));
	atomic_store(&w->widx, -1);
	return 0;
}

/*
 * Sleep while *word == val, until deadline_ms (CLOCK_MONOTONIC
 * milliseconds).  Returns 0 when *word changed (or on a spurious wake:
 * callers re-check), -1 with ETIMEDOUT past the deadline.  Words are
 * private to the process (FUTEX_PRIVATE_FLAG).
 */
int
wait_word(_Atomic int *word, int val, int64_t deadline_ms)
{
	struct timespec	ts;

	if (atomic_load_explicit(word, memory_order_acquire) != val)
		return 0;
	ts.tv_sec = deadline_ms / 1000;
	ts.tv_nsec = (deadline_ms % 1000) * 1000000;
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
	if (syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
	    val, &ts, NULL, FUTEX_BITSET_MATCH_ANY) == -1 &&
	    errno == ETIMEDOUT)
		return -1;
	return 0;	/* woken, changed meanwhile (EAGAIN) or EINTR */
}

/* Wake the thread sleeping on word (after storing its new value). */
void
wake_word(_Atomic int *word)
{
	(void)syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1,
	    NULL, NULL, 0);
}

static void
unlink_waiter(struct queue *q, struct waiter *w)
{
	struct waiter	**pp, *prev = NULL;

	for (pp = &q->head; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			if (q->tail == w)
				q->tail = prev;
			q->nwait--;
			return;
		}
	}
}

/*
 * Take an idle worker, or wait in line for one until deadline_ms
 * (CLOCK_MONOTONIC milliseconds).  Returns the worker index; -1 with
 * EAGAIN when the line is already full, ETIMEDOUT past the deadline.
 */
int
queue_acquire(struct queue *q, struct waiter *w, int64_t deadline_ms)
{
	int	widx;

	pthread_mutex_lock(&q->lk);
	if (q->idle_n > 0 && q->head == NULL) {
		widx = q->idle[q->idle_head];
		q->idle_head = (q->idle_head + 1) % q->nworkers;
		q->idle_n--;
		pthread_mutex_unlock(&q->lk);
		return widx;
	}
	if (q->nwait >= q->cap) {
		pthread_mutex_unlock(&q->lk);
		errno = EAGAIN;
		return -1;
	}
	atomic_store_explicit(&w->widx, -1, memory_order_relaxed);
	w->next = NULL;
	if (q->tail != NULL)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
	q->nwait++;
	pthread_mutex_unlock(&q->lk);
	for (;;) {
		widx = atomic_load_explicit(&w->widx, memory_order_acquire);
		if (widx != -1)
			return widx;
		if (wait_word(&w->widx, -1, deadline_ms) == -1) {
			/* Timed out, unless a worker came meanwhile. */
			pthread_mutex_lock(&q->lk);
			widx = atomic_load_explicit(&w->widx,
			    memory_order_relaxed);
			if (widx == -1)
				unlink_waiter(q, w);
			pthread_mutex_unlock(&q->lk);
			if (widx != -1)
				return widx;
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

/*
 * Under the lock: hand widx to the oldest waiter, or make it idle.
 * Returns the waiter, which the caller wakes once the lock is released
 * (a late wake-up of a thread that already moved on is only spurious).
 */
static struct waiter *
hand_out(struct queue *q, int widx)
{
	struct waiter	*w;

	if ((w = q->head) != NULL) {
		q->head = w->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->nwait--;
		atomic_store_explicit(&w->widx, widx, memory_order_release);
		return w;
	}
	q->idle[(q->idle_head + q->idle_n) % q->nworkers] = widx;
	q->idle_n++;
	return NULL;
}

/*
 * A request is done with widx.  Returns 1 if the worker went back into
 * service, 0 if it was retired meanwhile (the caller drops it).
 */
int
queue_release(struct queue *q, int widx)
{
	struct waiter	*w = NULL;
	int		 kept = 1;

	pthread_mutex_lock(&q->lk);
	if (q->retire[widx]) {
		q->retire[widx] = 0;
		kept = 0;
	} else
		w = hand_out(q, widx);
	pthread_mutex_unlock(&q->lk);
	if (w != NULL)
		wake_word(&w->widx);
	return kept;
}

/* A new worker enters service. */
void
queue_add(struct queue *q, int widx)
{
	struct waiter	*w;

	pthread_mutex_lock(&q->lk);
	q->retire[widx] = 0;
	w = hand_out(q, widx);
	pthread_mutex_unlock(&q->lk);
	if (w != NULL)
		wake_word(&w->widx);
}

/*
 * Take widx out of service.  Returns 1 if it was idle (now removed: the
 * caller drops it), 0 if it is busy (its request's release will drop it).
 */
int
queue_retire(struct queue *q, int widx)
{
	unsigned	i, j, n;
	int		found = 0;

	pthread_mutex_lock(&q->lk);
	n = q->idle_n;
	for (i = 0, j = 0; i < n; i++) {
		int v = q->idle[(q->idle_head + i) % q->nworkers];

		if (v == widx) {
			found = 1;
			continue;
		}
		q->idle[(q->idle_head + j) % q->nworkers] = v;
		j++;
	}
	q->idle_n = j;
	if (!found)
		q->retire[widx] = 1;
	pthread_mutex_unlock(&q->lk);
	return found;
}

void
queue_set_cap(struct queue *q, unsigned cap)
{
	pthread_mutex_lock(&q->lk);
	q->cap = cap;
	pthread_mutex_unlock(&q->lk);
}

unsigned
queue_depth(struct queue *q)
{
	unsigned	n;

	pthread_mutex_lock(&q->lk);
	n = q->nwait;
	pthread_mutex_unlock(&q->lk);
	return n;
}

unsigned
queue_idle(struct queue *q)
{
	unsigned	n;

	pthread_mutex_lock(&q->lk);
	n = q->idle_n;
	pthread_mutex_unlock(&q->lk);
	return n;
}
