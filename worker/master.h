/* master.h: the supervisor: owns the listening socket and every child. */
#ifndef PP_MASTER_H
#define PP_MASTER_H

#include "options.h"

int	master_main(struct options *, int listen_fd, const char *unix_path,
	    int argc, char **argv);

#endif
