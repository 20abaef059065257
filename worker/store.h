/*
 * store.h: the store process ("pipepool: store"), the one owner of the
 * SQLite key-value database behind /kv.  It takes requests on the same
 * fds as a worker (worker.h) and commits them in groups.
 */
#ifndef PP_STORE_H
#define PP_STORE_H

#include <stddef.h>

#include "options.h"

/* Longest key, in bytes after percent-decoding. */
#define STORE_KEY_MAX		250
/* Group commit: most requests, and most request plus reply bytes, in one
 * transaction. */
#define STORE_BATCH_MAX		256
#define STORE_BATCH_BYTES	(8u << 20)

/*
 * Open (creating it if missing) the database at path, switch it to WAL
 * and create the kv table, then close it.  -1 with a one-line reason in
 * err if any of it fails.  The master calls this before start-up.
 */
int	store_check_db(const char *path, char *err, size_t errlen);

/* The store process; reads WORKER_REQ_FD, writes WORKER_REP_FD. */
void	store_main(const struct options *, int life_fd)
	    __attribute__((noreturn));

#endif
