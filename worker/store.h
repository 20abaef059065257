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
 * msg_request.flags of a request to the store.  STORE_F_KEY: the client's
 * idempotency key (STORE_F_KEYLEN bytes, 1..STORE_IDEM_KEY_MAX of
 * 0x21..0x7e) comes first in the body, before the request's own body.
 * STORE_F_CRASH (only sent with --debug-routes): the store dies after
 * the COMMIT of this request's batch, before any reply leaves.
 */
#define STORE_F_KEY		0x8000
#define STORE_F_CRASH		0x4000
#define STORE_F_KEYLEN		0x00ff
#define STORE_IDEM_KEY_MAX	128
#define STORE_IDEM_KEY_STR	"128"

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
