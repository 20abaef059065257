/*
 * kvdb.h: the /kv API over its database, as the store process (store.h)
 * drives it: route a request, then read, or write inside a transaction
 * the caller begins, commits or rolls back.  kvdb knows nothing of
 * batches, pipes or held replies; the store decides which requests share
 * a transaction and when a reply may leave.
 *
 * Two backends sit behind these calls, chosen by kvdb_open() from --db
 * (kvdb_is_pg()): SQLite (kvdb.c; --db is a file) and PostgreSQL
 * (kvpg.c; --db is a libpq connection string).  kvdb_route() and struct
 * kvdb_req are the /kv semantics and need no database; every other call
 * speaks of "the database" and reports failures as one-line reasons,
 * never as a backend's codes.  SQLite answers each write before
 * kvdb_write() returns; PostgreSQL pipelines a transaction's statements
 * and gives those answers by kvdb_commit() (kvdb_answer()), which the
 * store allows: it holds every write's reply until then anyway.
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
/* A write's 503 reason while the database is read-only (both backends). */
#define KVDB_READONLY_WHY	"store: the database is read-only; writes resume " \
	"once it is writable"
/* Most writes in one transaction (the store's group commit bound). */
#define KVDB_TXN_MAX		256

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

/* 1 if --db names a PostgreSQL database (a postgresql:// or postgres://
 * URI, or a keyword string with host= or dbname=), 0 if a SQLite file. */
int	kvdb_is_pg(const char *db);

/*
 * The start-up check, before any store runs.  SQLite: open (creating it
 * if missing) the database at db, make it ready to write (WAL, the
 * tables), then close it.  PostgreSQL: the connection string parses (the
 * server may be down: the store connects, and keeps trying, itself),
 * loading libpq first (pq.h).  -1 with a one-line reason in err: the
 * value's fault for PostgreSQL (a malformed string), the system's for
 * SQLite; -2 when libpq cannot be loaded.
 */
int	kvdb_check(const char *db, char *err, size_t errlen);

/* What /status and /metrics show of the database (kvdb_state()). */
enum kvdb_conn { KVDB_DOWN, KVDB_UP, KVDB_READONLY };
struct kvdb_state {
	int		 pg;		/* 0: SQLite, 1: PostgreSQL */
	enum kvdb_conn	 conn;
	uint64_t	 reconnects;	/* connections made again after one
					 * was lost or refused */
};
void	kvdb_state(struct kvdb_state *);

/*
 * The store's database (o->db, o->sync_full).  kvdb_open() opens it
 * read-write, else read-only (reads go on, writes are refused), else
 * not at all (everything refused), and logs which; it never fails: a
 * database that vanished or turned read-only must not crash-loop the
 * store.  kvdb_retry(), outside a transaction, opens it again if it is
 * not read-write and the last try is a second old; cheap otherwise.  A
 * read-write connection is kept for good: when its file turns read-only,
 * writes fail (503) until it is writable again.  PostgreSQL: kvdb_open()
 * connects (or answers 503 until it can); kvdb_retry() notices an idle
 * connection the server closed and connects again, with back-off.  kvdb_close() closes it and frees what
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
 * Writes, in a transaction: kvdb_begin(), at most KVDB_TXN_MAX
 * kvdb_write(), then kvdb_commit() or kvdb_rollback().  Until
 * kvdb_commit() returned 0 or 1 nothing is on disk, so a write's reply
 * must not leave before it.
 *
 * kvdb_begin: 0, or -1 with the reason in why (no transaction).
 * kvdb_write: rq (a write) applied with its idempotency key, if any,
 *   alone: rp is its answer, a failure of its own included (the
 *   transaction goes on), and 0 is returned; or 1: its answer is
 *   kvdb_answer(i) once kvdb_commit() returned 0 or 1, i counting the
 *   transaction's writes from 0; or -1 with the reason in why when the
 *   transaction is gone (rolled back): none of its writes will be, and
 *   rp is a 503.  rq's body is copied if it is needed later.
 * kvdb_commit: 0 once the writes are on disk; 1 once they are too, but
 *   each in a transaction of its own (one failed and took the others
 *   with it), so a read inside this transaction may have seen what is
 *   not so and must run again; or -1 with the reason in why, rolled
 *   back, or (PostgreSQL, the connection lost after COMMIT left) with
 *   an unknown outcome, which why says.  Also forgets idempotency keys
 *   past their time.
 * kvdb_answer: the i-th write's answer (kvdb_write() returned 1), valid
 *   until the next kvdb_begin().
 * kvdb_rollback: drops the transaction, if there is one.
 */
int	kvdb_begin(char *why, size_t whylen);
int	kvdb_write(const struct kvdb_req *rq, struct reply *rp, char *why,
	    size_t whylen);
int	kvdb_commit(char *why, size_t whylen);
void	kvdb_answer(size_t i, struct reply *rp);
void	kvdb_rollback(void);

/*
 * For the backends (kvdb.c, kvpg.c): one table of the calls above, and
 * the answers both give alike, so that the /kv semantics are written
 * once.  Idempotency keys are kept IDEM_KEEP_S seconds, at most
 * IDEM_KEEP_N of them.
 */
struct kvdb_backend {
	int	(*check)(const char *, char *, size_t);
	void	(*open)(const struct options *);
	void	(*retry)(void);
	void	(*close)(void);
	void	(*state)(struct kvdb_state *);
	int	(*refuse)(const struct kvdb_req *, struct reply *);
	void	(*read)(const struct kvdb_req *, struct reply *);
	void	(*read_done)(void);
	int	(*begin)(char *, size_t);
	int	(*write)(const struct kvdb_req *, struct reply *, char *,
		    size_t);
	int	(*commit)(char *, size_t);
	void	(*answer)(size_t, struct reply *);	/* NULL: never later */
	void	(*rollback)(void);
};
extern const struct kvdb_backend	kvdb_pg;

#define KVDB_IDEM_KEEP_S	(24 * 3600)
#define KVDB_IDEM_KEEP_N	100000
#define KVDB_LIST_MAX		10000

/* A key's value (found 0: 404), for GET or HEAD as rq says. */
void	kvdb_reply_value(struct reply *, const struct kvdb_req *rq,
	    int found, const void *v, size_t len);
/* PUT: 201 created, else 204; DELETE: 204, or 404 if not found. */
void	kvdb_reply_put(struct reply *, int created);
void	kvdb_reply_delete(struct reply *, int found);
/* incr: the new value; the value is no number (409); cur + n does not
 * fit (400). */
void	kvdb_reply_sum(struct reply *, int64_t sum);
void	kvdb_reply_nan(struct reply *);
void	kvdb_reply_overflow(struct reply *, int64_t cur, int64_t n);
/* What an idempotency key was used for ("PUT k 0"), its length. */
int	kvdb_idem_what(const struct kvdb_req *, char *buf, size_t len);
/* The answer to a write whose idempotency key was found: the stored
 * reply (status, head bytes) if it was used for the same request (was
 * is what kvdb_idem_what() said then), else 422. */
void	kvdb_reply_replay(struct reply *, const struct kvdb_req *rq,
	    const char *was, unsigned status, const void *head, size_t n);
/* A write's answer as bytes to store with its idempotency key: malloc'd,
 * *n long; NULL if out of memory. */
char	*kvdb_reply_bytes(const struct reply *, size_t *n);

#endif
