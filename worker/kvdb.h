/*
 * kvdb.h: the /kv API over its database, as the store process (store.h)
 * drives it: route a request, then read, or write inside a transaction
 * the caller begins, commits or rolls back.  kvdb knows nothing of
 * batches, pipes or held replies; the store decides which requests share
 * a transaction and when a reply may leave.  Today the database is
 * SQLite (--db is a file), and no other file of the store touches
 * sqlite3.
 *
 * The seam for another backend (#18, PostgreSQL): kvdb_route() and
 * struct kvdb_req are the /kv semantics and need no database; every
 * other call speaks of "the database" and reports failures as one-line
 * reasons, never as a backend's codes, so a backend chosen by
 * kvdb_open() from --db can sit behind the same calls.  kvdb_write()
 * answers before it returns; a backend that pipelines a transaction's
 * statements would give those answers by kvdb_commit() instead, which
 * the store allows: it holds every write's reply until then anyway.
 *
 * Every answer is a struct reply (reply.h).  Its head and body point
 * into rp, kvdb's memory or reply_text()'s buffer: send or copy it
 * before the next kvdb or reply_text() call (a read's, before
 * kvdb_read_done()).  Not thread-safe: one store, one thread.
 */
#ifndef PP_KVDB_H
#define PP_KVDB_H

#include <stddef.h>
#include <stdint.h>

struct msg_request_view;
struct options;
struct reply;

/* Longest key, in bytes after percent-decoding. */
#define KVDB_KEY_MAX		250
/* The extra head line of every 503 of the store: try again in a second. */
#define KVDB_RETRY_AFTER	"Retry-After: 1\r\n"

enum kvdb_op {
	KVDB_GET, KVDB_HEAD, KVDB_LIST,		/* reads */
	KVDB_PUT, KVDB_DELETE, KVDB_INCR	/* writes */
};

/*
 * One routed request.  body and ikey point into the caller's buffer
 * (the request as it came): a copy kept past it must clear them, and
 * can then only be read again, not written.
 */
struct kvdb_req {
	enum kvdb_op	 op;
	int		 head;		/* KVDB_LIST answered to HEAD */
	char		 key[KVDB_KEY_MAX + 1];
	size_t		 klen;
	char		 prefix[KVDB_KEY_MAX + 1];
	size_t		 plen;
	int64_t		 n;		/* KVDB_INCR: amount, KVDB_LIST: limit */
	const char	*body;
	size_t		 body_len;
	const char	*ikey;		/* the client's idempotency key, or */
	size_t		 iklen;		/* NULL and 0 */
};

/*
 * Open (creating it if missing) the database at path, make it ready to
 * write (WAL, the tables), then close it.  -1 with a one-line reason in
 * err.  For the start-up check, before any store runs.
 */
int	kvdb_check(const char *path, char *err, size_t errlen);

/*
 * The store's database (o->db, o->sync_full).  kvdb_open() opens it
 * read-write, else read-only (reads go on, writes are refused), else
 * not at all (everything refused), and logs which; it never fails: a
 * database that vanished or turned read-only must not crash-loop the
 * store.  kvdb_retry(), outside a transaction, opens it again if it is
 * not read-write and the last try is a second old; cheap otherwise.  A read-write connection
 * is kept for good: when its file turns read-only, writes fail (503)
 * until it is writable again.  kvdb_close() closes it and frees what
 * kvdb holds.  o must outlive kvdb's use of it; reply_init() comes
 * first (a 204's head names the pid).
 */
void	kvdb_open(const struct options *o);
void	kvdb_retry(void);
void	kvdb_close(void);

/*
 * A request to the store, turned into an operation: 1 with rq filled
 * (all but ikey and iklen, which are the caller's), or 0 with rp the
 * answer (a bad key, method or parameter; no database involved).
 */
int	kvdb_route(const struct msg_request_view *, struct kvdb_req *rq,
	    struct reply *rp);
int	kvdb_is_write(const struct kvdb_req *);
/* 1 with rp a 503 if the database cannot take rq now (not open, or
 * read-only and rq a write); else 0.  Only a request it let through may
 * go on to kvdb_read() or kvdb_begin() and kvdb_write(). */
int	kvdb_refuse(const struct kvdb_req *rq, struct reply *rp);

/*
 * A read (GET, HEAD, the listing) into rp: its answer, or the reason it
 * failed.  Inside a transaction it sees that transaction's writes, else
 * only committed data.  rp's body may point into the database's memory
 * until kvdb_read_done(), which the caller calls once it sent or copied
 * the reply (and before any other kvdb call).
 */
void	kvdb_read(const struct kvdb_req *rq, struct reply *rp);
void	kvdb_read_done(void);

/*
 * Writes, in a transaction: kvdb_begin(), any number of kvdb_write(),
 * then kvdb_commit() or kvdb_rollback().  Until kvdb_commit() returned 0
 * nothing is on disk, so a write's reply must not leave before it.
 *
 * kvdb_begin: 0, or -1 with the reason in why (no transaction).
 * kvdb_write: rq (a write) applied with its idempotency key, if any,
 *   alone: rp is its answer, a failure of its own included (the
 *   transaction goes on), and 0 is returned; or -1 with the reason in
 *   why when the transaction is gone (rolled back): none of its writes
 *   will be, and rp is a 503.
 * kvdb_commit: 0 once the writes are on disk, or -1 with the reason in
 *   why, rolled back.  Also forgets idempotency keys past their time.
 * kvdb_rollback: drops the transaction, if there is one.
 */
int	kvdb_begin(char *why, size_t whylen);
int	kvdb_write(const struct kvdb_req *rq, struct reply *rp, char *why,
	    size_t whylen);
int	kvdb_commit(char *why, size_t whylen);
void	kvdb_rollback(void);

#endif
