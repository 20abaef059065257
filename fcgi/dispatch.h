/*
 * dispatch.h: the shared dispatch queue.  Idle workers wait in a FIFO
 * ring; requests wait in arrival order; a worker is handed to at most one
 * request at a time.  Workers are small integers (the front's table index).
 */
#ifndef PP_DISPATCH_H
#define PP_DISPATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/*
 * A thread waiting in line.  widx is also the futex word it sleeps on:
 * whoever hands it a worker stores the index and wakes it, and the woken
 * thread needs no lock to see it (no wake-up only to block on the queue's
 * mutex, which cost several futex calls per request under load).
 */
struct waiter {
	_Atomic int	 widx;		/* assigned worker, -1 while waiting */
	struct waiter	*next;
};

struct queue {
	pthread_mutex_t	 lk;
	int		*idle;		/* ring of idle worker indices */
	unsigned	 idle_head;
	unsigned	 idle_n;
	unsigned	 nworkers;	/* size of idle[] and retire[] */
	unsigned char	*retire;	/* retire[w]: drop w on release */
	struct waiter	*head, *tail;	/* requests waiting, oldest first */
	unsigned	 nwait;
	unsigned	 cap;		/* most requests that may wait */
};

int	queue_init(struct queue *, unsigned nworkers, unsigned cap);
void	queue_free(struct queue *);
int	waiter_init(struct waiter *);
int	wait_word(_Atomic int *, int, int64_t deadline_ms);
void	wake_word(_Atomic int *);
int	queue_acquire(struct queue *, struct waiter *, int64_t deadline_ms);
int	queue_release(struct queue *, int widx);
void	queue_add(struct queue *, int widx);
int	queue_retire(struct queue *, int widx);
void	queue_set_cap(struct queue *, unsigned);
unsigned queue_depth(struct queue *);
unsigned queue_idle(struct queue *);

#endif
