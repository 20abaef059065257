/* front.h: the FastCGI front process. */
#ifndef PP_FRONT_H
#define PP_FRONT_H

#include "msg.h"
#include "options.h"

#define FRONT_LISTEN_FD	3
#define FRONT_CTL_FD	4

void	front_main(const struct options *, int listen_fd, int ctl_fd)
	    __attribute__((noreturn));
void	front_settings(const struct options *, struct msg_settings *);

#endif
