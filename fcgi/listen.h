/* listen.h: the listening socket: --listen, systemd's LISTEN_FDS, fd 0. */
#ifndef PP_LISTEN_H
#define PP_LISTEN_H

#include <stddef.h>

#include "options.h"

int	listen_open(const struct options *, char **unix_path, char *desc,
	    size_t desclen, char *err, size_t errlen, int *code);
int	listen_inherited(char *desc, size_t desclen);

#endif
