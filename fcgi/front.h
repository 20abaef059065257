/* front.h: the FastCGI front process. */
#ifndef PP_FRONT_H
#define PP_FRONT_H

#include "msg.h"
#include "options.h"

#include "proc.h"	/* its fds: FRONT_LISTEN_FD, FRONT_CTL_FD */

void	front_main(const struct options *, int listen_fd, int ctl_fd)
	    __attribute__((noreturn));
void	front_settings(const struct options *, struct msg_settings *);

#endif
