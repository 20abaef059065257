/* worker.h: the worker process: take a request, answer it, repeat. */
#ifndef PP_WORKER_H
#define PP_WORKER_H

#include "options.h"

/* fds of a worker after proc_keep_fds(): */
#define WORKER_REQ_FD	3	/* read end of its request pipe */
#define WORKER_REP_FD	4	/* write end of its reply pipe */
#define WORKER_LIFE_FD	5	/* read end of its lifeline from the master */

void	worker_main(const struct options *, unsigned number, int life_fd)
	    __attribute__((noreturn));

#endif
