/*
 * dispatch.h: the shared dispatch queue.  Idle workers wait in a FIFO
 * ring; requests wait in arrival order; a worker is handed to at most one
 * request at a time.  Workers are small integers (the front's table index).
 */
#ifndef PP_DISPATCH_H
#define PP_DISPATCH_H

#include <pthread.h>
#include <stdint.h>

struct waiter {
	pthread_cond_t	 cv;
	int		 widx;		/* assigned worker, -1 while waiting */
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
int	queue_acquire(struct queue *, struct waiter *, int64_t deadline_ms);
int	queue_release(struct queue *, int widx);
void	queue_add(struct queue *, int widx);
int	queue_retire(struct queue *, int widx);
void	queue_set_cap(struct queue *, unsigned);
unsigned queue_depth(struct queue *);
unsigned queue_idle(struct queue *);

#endif
