/*
 * test_queue.c: the dispatch queue.  Idle workers are handed out in FIFO
 * order; waiting requests are served in arrival order, one worker each;
 * a full line is refused at once; a wait times out; retiring a busy worker
 * takes effect at its release.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "proc.h"

static int	failures;

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", \
    __FILE__, __LINE__, #c); failures++; } } while (0)

static struct queue	q;
static int		order[8], norder;
static pthread_mutex_t	olk = PTHREAD_MUTEX_INITIALIZER;

struct arg {
	struct waiter	w;
	int		tag;
	int		got;
};

static void *
waiter_thread(void *p)
{
	struct arg	*a = p;

	a->got = queue_acquire(&q, &a->w, now_ms_mono() + 5000);
	pthread_mutex_lock(&olk);
	order[norder++] = a->tag;
	pthread_mutex_unlock(&olk);
	return NULL;
}

static void
wait_depth(unsigned n)
{
	int	i;

	for (i = 0; i < 500 && queue_depth(&q) != n; i++) {
		struct timespec ts = { 0, 2000000 };

		nanosleep(&ts, NULL);
	}
	CHECK(queue_depth(&q) == n);
}

int
main(void)
{
	struct waiter	w;
	struct arg	a[3];
	pthread_t	th[3];
	int		i;

	CHECK(queue_init(&q, 8, 2) == 0);
	CHECK(waiter_init(&w) == 0);
	/* FIFO over idle workers. */
	queue_add(&q, 3);
	queue_add(&q, 5);
	queue_add(&q, 1);
	CHECK(queue_idle(&q) == 3);
	CHECK(queue_acquire(&q, &w, now_ms_mono() + 100) == 3);
	CHECK(queue_acquire(&q, &w, now_ms_mono() + 100) == 5);
	CHECK(queue_acquire(&q, &w, now_ms_mono() + 100) == 1);
	/* None idle: a wait times out and leaves the line. */
	CHECK(queue_acquire(&q, &w, now_ms_mono() + 30) == -1 &&
	    errno == ETIMEDOUT);
	CHECK(queue_depth(&q) == 0);

	/* Two wait (the cap), a third is refused at once. */
	for (i = 0; i < 2; i++) {
		CHECK(waiter_init(&a[i].w) == 0);
		a[i].tag = i;
		a[i].got = -2;
		CHECK(pthread_create(&th[i], NULL, waiter_thread, &a[i]) == 0);
		wait_depth((unsigned)i + 1);
	}
	CHECK(queue_acquire(&q, &w, now_ms_mono() + 1000) == -1 &&
	    errno == EAGAIN);
	/* Releases go to the waiters in arrival order, one each. */
	CHECK(queue_release(&q, 5) == 1);
	pthread_join(th[0], NULL);
	CHECK(a[0].got == 5 && order[0] == 0);
	CHECK(queue_release(&q, 3) == 1);
	pthread_join(th[1], NULL);
	CHECK(a[1].got == 3 && order[1] == 1);
	CHECK(queue_idle(&q) == 0);

	/* Retire: an idle worker leaves at once, a busy one at release. */
	CHECK(queue_release(&q, 1) == 1);
	CHECK(queue_retire(&q, 1) == 1);
	CHECK(queue_idle(&q) == 0);
	CHECK(queue_retire(&q, 5) == 0);	/* busy */
	CHECK(queue_release(&q, 5) == 0);	/* dropped, not idle */
	CHECK(queue_idle(&q) == 0);
	queue_add(&q, 5);			/* a new worker in that slot */
	CHECK(queue_idle(&q) == 1);
	CHECK(queue_acquire(&q, &w, now_ms_mono() + 100) == 5);
	/* Cap 0: nobody may wait. */
	queue_set_cap(&q, 0);
	CHECK(queue_acquire(&q, &w, now_ms_mono() + 1000) == -1 &&
	    errno == EAGAIN);

	queue_free(&q);
	if (failures)
		fprintf(stderr, "test_queue: %d failures\n", failures);
	return failures ? 1 : 0;
}
