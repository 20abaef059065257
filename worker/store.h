/*
 * store.h: the store process ("pipepool: store"), the one owner of the
 * database behind /kv (kvdb.h), and the wire it speaks with the front.
 * It takes MSG_REQUESTs on its request pipe and answers each with one
 * MSG_REPLY of the same id on its reply pipe, committing writes in
 * groups (store.c).  The front is the more trusted side: a malformed
 * message from it ends the store (fatalx; the master starts another).
 */
#ifndef PP_STORE_H
#define PP_STORE_H

#include <stddef.h>

#include "options.h"

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
 * The start-up check of --db, before any store runs: open it (creating
 * it if missing), make it ready to write, close it.  -1 or -2 with a
 * one-line reason in err, as kvdb_check().
 */
int	store_check_db(const char *path, char *err, size_t errlen);

/* The store process; reads STORE_REQ_FD, writes STORE_REP_FD, and
 * exits when life_fd (the master's lifeline, or -1) or the request pipe
 * reaches EOF. */
void	store_main(const struct options *, int life_fd)
	    __attribute__((noreturn));

#endif
