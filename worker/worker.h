/* worker.h: the worker process: take a request, answer it, repeat. */
#ifndef PP_WORKER_H
#define PP_WORKER_H

#include <stdint.h>

#include "options.h"

/* fds of a worker after proc_keep_fds(); a hello worker has its
 * lifeline and its channel to the front (requests come through the
 * dispatch area), the store its request and reply pipes and lifeline. */
#define WORKER_REQ_FD	3	/* read end of its request pipe (store) */
#define WORKER_REP_FD	4	/* write end of its reply pipe (store) */
#define WORKER_LIFE_FD	5	/* read end of its lifeline from the master */
#define WORKER_HELLO_LIFE_FD 3	/* a hello worker's lifeline */
#define WORKER_HELLO_CHAN_FD 4	/* its end of its channel to the front */

/* tag: dispatch_tag() of the worker's master slot and incarnation. */
void	worker_main(const struct options *, unsigned number, int life_fd,
	    int chan_fd, uint32_t tag) __attribute__((noreturn));

#endif
