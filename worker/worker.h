/* worker.h: the worker process: take a request, answer it, repeat. */
#ifndef PP_WORKER_H
#define PP_WORKER_H

#include <stdint.h>

#include "options.h"

#include "proc.h"	/* its fds: WORKER_LIFE_FD, ... */

/* tag: dispatch_tag() of the worker's master slot and incarnation. */
void	worker_main(const struct options *, unsigned number, int life_fd,
	    int chan_fd, uint32_t tag) __attribute__((noreturn));

#endif
