/*
 * master.h: the supervisor: owns the listening socket and every child,
 * which it starts, keeps up and stops from the role table it is given.
 */
#ifndef PP_MASTER_H
#define PP_MASTER_H

#include "options.h"
#include "proc.h"

/*
 * Serve until stopped; 0 after a clean stop.  roles: ROLE_COUNT rows,
 * indexed by enum role, kept for the master's life.  unix_path: the
 * socket file to remove at the end, or NULL.  argc, argv: read again on
 * reload.
 */
int	master_main(struct options *, const struct proc_role *roles,
	    int listen_fd, const char *unix_path, int argc, char **argv);

#endif
