/*
 * store.c: the store process ("pipepool: store").  It owns the only
 * SQLite connection to --db and answers the /kv API: PUT, GET, HEAD,
 * DELETE and POST ?incr=N on /kv/KEY, and a sorted key listing on /kv/.
 *
 * The front pipelines /kv requests to it over the request pipe, so the
 * store commits in groups: it blocks for one request, then takes every
 * request already waiting (up to STORE_BATCH_MAX, or STORE_BATCH_BYTES of
 * request and reply bytes) and runs them in one BEGIN IMMEDIATE ...
 * COMMIT, each write in its own SAVEPOINT so that one failing request
 * fails alone.  Replies to writes, and to reads that came after a write
 * of the same batch, leave only after COMMIT returned: a write is on
 * disk before its reply leaves.  Reads before the batch's first write see
 * only committed data and are answered at once.  If the transaction
 * cannot start or commit (disk full, read-only, I/O error), every write
 * of the batch is answered 503 with the reason, reads that may have seen
 * those writes are run again, and the store keeps serving.
 *
 * Replies carry the request's id and may leave in any order.  The store
 * exits when its request pipe reaches EOF (the front is gone) or its
 * lifeline from the master closes; a malformed message from the front is
 * a broken invariant: it finishes the batch, logs and exits 1.
 */
#include <sys/prctl.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reply.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "query.h"
#include "store.h"
#include "worker.h"

#define KEY_ALLOW	"Allow: GET, HEAD, PUT, DELETE, POST\r\n"
#define LIST_ALLOW	"Allow: GET, HEAD\r\n"
#define KEY_RULE	"a key is 1 to 250 bytes of A-Z a-z 0-9 . _ ~ - " \
			"after percent-decoding"
#define LIST_DEFAULT	1000
#define LIST_MAX	10000
#define BUSY_MS		5000
#define LOG_EVERY_MS	5000
#define REOPEN_MS	1000	/* between tries to open --db read-write */
#define RETRY_AFTER	"Retry-After: 1\r\n"
/* Idempotency keys are remembered this long, and at most this many. */
#define IDEM_KEEP_S	(24 * 3600)
#define IDEM_KEEP_N	100000
#define IDEM_REPLAYED	"Idempotent-Replayed: true\r\n"

enum st {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE,
	ST_ROLLBACK_TO, ST_GET, ST_LEN, ST_UPDATE, ST_INSERT, ST_UPSERT,
	ST_DELETE, ST_LIST, ST_LIST_RANGE, ST_IDEM_GET, ST_IDEM_PUT,
	ST_IDEM_AGE, ST_IDEM_COUNT, ST_N
};

static const char *const sql[ST_N] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT r",
	[ST_RELEASE] = "RELEASE r",
	[ST_ROLLBACK_TO] = "ROLLBACK TO r",
	[ST_GET] = "SELECT value FROM kv WHERE key = ?1",
	[ST_LEN] = "SELECT length(value) FROM kv WHERE key = ?1",
	[ST_UPDATE] = "UPDATE kv SET value = ?2 WHERE key = ?1",
	[ST_INSERT] = "INSERT INTO kv(key, value) VALUES (?1, ?2)",
	[ST_UPSERT] = "INSERT INTO kv(key, value) VALUES (?1, ?2) "
	    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[ST_DELETE] = "DELETE FROM kv WHERE key = ?1",
	[ST_LIST] = "SELECT key FROM kv WHERE key >= ?1 ORDER BY key "
	    "LIMIT ?2",
	[ST_LIST_RANGE] = "SELECT key FROM kv WHERE key >= ?1 AND key < ?2 "
	    "ORDER BY key LIMIT ?3",
	[ST_IDEM_GET] = "SELECT status, req, reply FROM idem WHERE key = ?1",
	[ST_IDEM_PUT] = "INSERT INTO idem(key, at, req, status, reply) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_IDEM_AGE] = "DELETE FROM idem WHERE at < ?1",
	[ST_IDEM_COUNT] = "DELETE FROM idem WHERE id <= ?1",
};

enum op { OP_GET, OP_HEAD, OP_LIST, OP_PUT, OP_DELETE, OP_INCR };

/* One routed request.  body points into the request pipe's buffer. */
struct req {
	enum op		 op;
	int		 head;		/* OP_LIST answered to HEAD */
	char		 key[STORE_KEY_MAX + 1];
	size_t		 klen;
	char		 prefix[STORE_KEY_MAX + 1];
	size_t		 plen;
	int64_t		 n;		/* OP_INCR: amount, OP_LIST: limit */
	const char	*body;
	size_t		 body_len;
	const char	*ikey;		/* idempotency key, in the pipe's buffer */
	size_t		 iklen;
	int		 crash;		/* debug: die after this batch's COMMIT */
};

/* A reply held until COMMIT (its bytes are in S.out). */
struct pend {
	uint64_t	 id;
	int		 write;
	int		 stored;	/* 0: a read to run again at the end */
	struct req	 rq;
	struct msg_reply r;
	size_t		 off, head_len, body_len;
};

enum dmode { D_NOW, D_READ, D_WRITE };

static struct {
	const struct options	*o;
	sqlite3			*db;
	sqlite3_stmt		*st[ST_N];
	struct msgbuf		 mb;
	int			 life_fd;
	struct pend		*pend;		/* STORE_BATCH_MAX entries */
	size_t			 npend;
	char			*out;		/* held replies' bytes */
	size_t			 outlen, outcap;
	char			*list;		/* a key listing being built */
	size_t			 listcap;
	char			 head204[96];
	size_t			 head204_len;
	int			 in_txn;	/* BEGIN IMMEDIATE holds */
	int			 begun;		/* BEGIN tried in this batch */
	int			 dirty;		/* a write ran in this txn */
	int			 failed;	/* this batch's writes are lost */
	char			 why[256];	/* ... and why, in one line */
	int			 failing;	/* the last write batch failed */
	int64_t			 logged_ms;
	int			 ro;		/* S.db was opened read-only */
	int			 idem_new;	/* keys stored in this txn */
	int64_t			 idem_last;	/* rowid of the newest key */
	int			 crash;		/* debug: die after COMMIT */
	char			 open_why[600];	/* why not read-write, or at all */
	int64_t			 reopen_ms;	/* next try to open read-write */
	int			 noreply;	/* the reply pipe is unusable */
	int			 quit;		/* exit after this batch */
	int			 code;		/* ... with this status */
} S;

/* --- the database ---------------------------------------------------- */

/* SQLite result codes that mean "cannot write now", not "bug". */
static int
unavailable(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
	case SQLITE_READONLY:
	case SQLITE_IOERR:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_CANTOPEN:
	case SQLITE_NOMEM:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_PROTOCOL:
		return 1;
	default:
		return 0;
	}
}

/* Run one SQL statement that returns no rows we need. */
static int
exec_sql(sqlite3 *db, const char *q, char *err, size_t errlen)
{
	char	*msg = NULL;
	int	 rc;

	if ((rc = sqlite3_exec(db, q, NULL, NULL, &msg)) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", q, msg ? msg :
		    sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/*
 * Open path (creating it), switch to WAL and make the kv table; or, rw
 * 0, open it read-only as it is.  -1 with a one-line reason in err; *dbp
 * is then NULL.
 *
 * EXCLUSIVE locking, set before the first access: WAL then keeps its
 * index in the store's heap instead of a MAP_SHARED -shm file.  A write
 * to a shared mapping of a file that turned immutable or read-only
 * (chattr +i, a remount after an I/O error) is a SIGBUS, which killed
 * the store; with no mapping the write fails with an error and the store
 * answers 503.  The cost: no other process may open the database while
 * the store runs (the store is its only user by design).
 */
static int
db_open(const char *path, sqlite3 **dbp, int rw, char *err, size_t errlen)
{
	sqlite3		*db = NULL;
	sqlite3_stmt	*st = NULL;
	const char	*mode;
	char		 why[512];
	int		 rc;

	*dbp = NULL;
	rc = sqlite3_open_v2(path, &db, (rw ? SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX,
	    NULL);
	if (rc != SQLITE_OK) {
		snprintf(why, sizeof(why), "%s", db ? sqlite3_errmsg(db) :
		    sqlite3_errstr(rc));
		goto fail;
	}
	(void)sqlite3_extended_result_codes(db, 1);
	(void)sqlite3_busy_timeout(db, BUSY_MS);
	if (exec_sql(db, "PRAGMA locking_mode=EXCLUSIVE", why,
	    sizeof(why)) == -1)
		goto fail;
	if (!rw) {
		*dbp = db;
		return 0;
	}
	if (sqlite3_db_readonly(db, "main") == 1) {
		snprintf(why, sizeof(why), "it can only be opened read-only");
		goto fail;
	}
	if ((rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st,
	    NULL)) != SQLITE_OK) {
		snprintf(why, sizeof(why), "PRAGMA journal_mode=WAL: %s",
		    sqlite3_errmsg(db));
		goto fail;
	}
	rc = sqlite3_step(st);
	mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) :
	    NULL;
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		snprintf(why, sizeof(why), "cannot switch to WAL mode: %s",
		    mode ? mode : sqlite3_errmsg(db));
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (exec_sql(db, "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY "
	    "COLLATE BINARY, value BLOB NOT NULL) WITHOUT ROWID", why,
	    sizeof(why)) == -1)
		goto fail;
	/* A write's idempotency key, committed with the write: the reply
	 * it produced, for a retry (see idem_lookup()). */
	if (exec_sql(db, "CREATE TABLE IF NOT EXISTS idem(id INTEGER PRIMARY "
	    "KEY, key TEXT NOT NULL UNIQUE, at INTEGER NOT NULL, req TEXT NOT "
	    "NULL, status INTEGER NOT NULL, reply BLOB NOT NULL); CREATE "
	    "INDEX IF NOT EXISTS idem_at ON idem(at)", why, sizeof(why)) == -1)
		goto fail;
	*dbp = db;
	return 0;
fail:
	snprintf(err, errlen, "cannot use database '%s': %s", path, why);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return -1;
}

int
store_check_db(const char *path, char *err, size_t errlen)
{
	sqlite3	*db;

	if (db_open(path, &db, 1, err, errlen) == -1)
		return -1;
	if (sqlite3_close(db) != SQLITE_OK) {
		snprintf(err, errlen, "cannot use database '%s': closing: %s",
		    path, sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

/* Step a statement that returns no rows, and reset it. */
static int
run(enum st i)
{
	int	rc;

	rc = sqlite3_step(S.st[i]);
	sqlite3_reset(S.st[i]);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void
done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int
bind_key(sqlite3_stmt *st, int i, const char *k, size_t n)
{
	return sqlite3_bind_text(st, i, k, (int)n, SQLITE_STATIC);
}

static int
bind_value(sqlite3_stmt *st, int i, const char *v, size_t n)
{
	return sqlite3_bind_blob(st, i, n > 0 ? v : "", (int)n,
	    SQLITE_STATIC);
}

static void
db_error(struct reply *rp, const char *what, int rc)
{
	reply_text(rp, unavailable(rc) ? 503 : 500, unavailable(rc) ?
	    RETRY_AFTER : NULL, "store: %s: %s",
	    what, sqlite3_errstr(rc));
}

/* --- replies --------------------------------------------------------- */

static void
send_reply(uint64_t id, const struct msg_reply *r, const char *head,
    size_t hlen, const char *body, size_t blen)
{
	struct iovec	iov[3];

	if (S.noreply)
		return;
	iov[0].iov_base = (void *)(uintptr_t)r;
	iov[0].iov_len = sizeof(*r);
	iov[1].iov_base = (void *)(uintptr_t)head;
	iov[1].iov_len = hlen;
	iov[2].iov_base = (void *)(uintptr_t)body;
	iov[2].iov_len = blen;
	if (msg_write(WORKER_REP_FD, MSG_REPLY, id, iov, 3) == -1) {
		S.noreply = 1;
		S.quit = 1;
		if (errno == EPIPE) {
			S.code = 0;	/* the front is gone */
		} else {
			log_warn("writing a reply");
			S.code = 1;
		}
	}
}

static void
reply_204(struct reply *rp)
{
	rp->r.status = 204;
	rp->head = S.head204;
	rp->head_len = S.head204_len;
	rp->body = NULL;
	rp->body_len = 0;
}

/* Room for n more bytes in S.out. */
static int
out_reserve(size_t n)
{
	char	*nb;
	size_t	 cap;

	if (S.outcap - S.outlen >= n)
		return 0;
	cap = S.outcap ? S.outcap : 65536;
	while (cap - S.outlen < n)
		cap *= 2;
	if ((nb = realloc(S.out, cap)) == NULL)
		return -1;
	S.out = nb;
	S.outcap = cap;
	return 0;
}

static void	lose_batch(const char *, int);

/*
 * Answer now, or hold the reply until COMMIT: replies to writes, and to
 * reads that may have seen this transaction's writes.
 */
static void
deliver(uint64_t id, enum dmode mode, const struct req *rq,
    const struct reply *rp)
{
	struct pend	*p;

	if (mode == D_NOW || (mode == D_READ && !S.dirty)) {
		send_reply(id, &rp->r, rp->head, rp->head_len, rp->body,
		    rp->body_len);
		return;
	}
	p = &S.pend[S.npend++];		/* the batch bound keeps it in */
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->write = mode == D_WRITE;
	p->rq = *rq;
	p->rq.body = NULL;
	p->rq.body_len = 0;
	p->rq.ikey = NULL;	/* the pipe's buffer moves on */
	p->rq.iklen = 0;
	p->r = rp->r;
	if (out_reserve(rp->head_len + rp->body_len) == -1) {
		log_warn("holding a reply of %zu bytes", rp->head_len +
		    rp->body_len);
		if (p->write)	/* its reply is gone: the write must go too */
			lose_batch("out of memory", SQLITE_NOMEM);
		return;		/* a read is run again at the end */
	}
	p->stored = 1;
	p->off = S.outlen;
	p->head_len = rp->head_len;
	p->body_len = rp->body_len;
	memcpy(S.out + S.outlen, rp->head, rp->head_len);
	if (rp->body_len > 0)
		memcpy(S.out + S.outlen + rp->head_len, rp->body,
		    rp->body_len);
	S.outlen += rp->head_len + rp->body_len;
}

/* --- routing --------------------------------------------------------- */

static int
key_chars(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '~' || c == '-'))
			return 0;
	}
	return 1;
}

static int
route_list(const struct msg_request_view *v, struct req *rq,
    struct reply *rp)
{
	char	val[32];
	size_t	n;
	int	r;

	if (!msg_view_method_is(v, "GET") && !msg_view_method_is(v, "HEAD")) {
		reply_text(rp, 405, LIST_ALLOW, "the key list takes GET or "
		    "HEAD");
		return 0;
	}
	rq->op = OP_LIST;
	rq->head = msg_view_method_is(v, "HEAD");
	r = query_param(v->query, v->query_len, "prefix", rq->prefix,
	    sizeof(rq->prefix) - 1, &rq->plen);
	if (r == 0)
		rq->plen = 0;
	if (r == -1 || !key_chars(rq->prefix, rq->plen)) {
		reply_text(rp, 400, NULL, "prefix must be 0 to %d bytes of "
		    "A-Z a-z 0-9 . _ ~ -", STORE_KEY_MAX);
		return 0;
	}
	rq->n = LIST_DEFAULT;
	r = query_param(v->query, v->query_len, "limit", val, sizeof(val),
	    &n);
	if (r == -1 || (r == 1 && (parse_i64(val, n, &rq->n) == -1 ||
	    rq->n < 1 || rq->n > LIST_MAX))) {
		reply_text(rp, 400, NULL, "limit must be a whole number from "
		    "1 to %d", LIST_MAX);
		return 0;
	}
	return 1;
}

/*
 * Turn a request into an operation.  Returns 1 with rq filled, or 0 with
 * rp filled (an answer that needs no database).
 */
static int
route(const struct msg_request_view *v, struct req *rq, struct reply *rp)
{
	char	dec[MSG_PATH_MAX], val[32];
	size_t	n;
	int	r;

	rq->op = OP_GET;
	rq->head = 0;
	rq->key[0] = rq->prefix[0] = '\0';
	rq->klen = rq->plen = 0;
	rq->n = 0;
	rq->body = v->body;
	rq->body_len = v->body_len;
	if (msg_view_path_is(v, "/debug/store-crash")) {
		if (S.o->debug_routes) {
			log_warnx("aborting on /debug/store-crash");
			abort();
		}
		reply_text(rp, 404, NULL, "not found (debug routes are off)");
		return 0;
	}
	if (msg_view_path_is(v, "/kv") || msg_view_path_is(v, "/kv/"))
		return route_list(v, rq, rp);
	if (v->path_len < 4 || memcmp(v->path, "/kv/", 4) != 0) {
		reply_text(rp, 404, NULL, "the store has no such path");
		return 0;
	}
	if (pct_decode(v->path + 4, v->path_len - 4, dec, sizeof(dec),
	    &n) == -1) {
		reply_text(rp, 400, NULL, "malformed percent-escape in the "
		    "key");
		return 0;
	}
	if (n < 1 || n > STORE_KEY_MAX || !key_chars(dec, n)) {
		reply_text(rp, 400, NULL, KEY_RULE);
		return 0;
	}
	memcpy(rq->key, dec, n);
	rq->key[n] = '\0';
	rq->klen = n;
	if (msg_view_method_is(v, "GET"))
		rq->op = OP_GET;
	else if (msg_view_method_is(v, "HEAD"))
		rq->op = OP_HEAD;
	else if (msg_view_method_is(v, "PUT"))
		rq->op = OP_PUT;
	else if (msg_view_method_is(v, "DELETE"))
		rq->op = OP_DELETE;
	else if (msg_view_method_is(v, "POST")) {
		rq->op = OP_INCR;
		rq->n = 1;
		r = query_param(v->query, v->query_len, "incr", val,
		    sizeof(val), &n);
		if (r == -1 || (r == 1 && parse_i64(val, n, &rq->n) == -1)) {
			reply_text(rp, 400, NULL, "incr must be a signed "
			    "64-bit decimal integer");
			return 0;
		}
	} else {
		reply_text(rp, 405, KEY_ALLOW, "a key takes GET, HEAD, PUT, "
		    "DELETE or POST");
		return 0;
	}
	return 1;
}

/* --- operations ------------------------------------------------------ */

/* Build the listing in S.list.  SQLite result code. */
static int
list_keys(const struct req *rq, size_t *len)
{
	sqlite3_stmt	*st;
	char		 hi[STORE_KEY_MAX + 1], *nb;
	const unsigned char *k;
	size_t		 n = 0, kl, cap;
	int		 rc;

	if (rq->plen == 0) {
		st = S.st[ST_LIST];
		bind_key(st, 1, "", 0);
		sqlite3_bind_int64(st, 2, rq->n);
	} else {
		/* Key bytes are below 0x7f, so prefix+1 bounds the range. */
		memcpy(hi, rq->prefix, rq->plen);
		hi[rq->plen - 1]++;
		st = S.st[ST_LIST_RANGE];
		bind_key(st, 1, rq->prefix, rq->plen);
		bind_key(st, 2, hi, rq->plen);
		sqlite3_bind_int64(st, 3, rq->n);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		k = sqlite3_column_text(st, 0);
		kl = (size_t)sqlite3_column_bytes(st, 0);
		if (k == NULL)
			continue;
		if (S.listcap - n < kl + 1) {
			cap = S.listcap ? S.listcap : 16384;
			while (cap - n < kl + 1)
				cap *= 2;
			if ((nb = realloc(S.list, cap)) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			S.list = nb;
			S.listcap = cap;
		}
		memcpy(S.list + n, k, kl);
		S.list[n + kl] = '\n';
		n += kl + 1;
	}
	done(st);
	*len = n;
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A read: GET, HEAD or the listing.  Answers through deliver(). */
static void
run_read(uint64_t id, const struct req *rq, enum dmode mode)
{
	struct reply	 rp;
	sqlite3_stmt	*st = NULL;
	const void	*blob;
	size_t		 n;
	int		 rc, head = rq->op == OP_HEAD || rq->head;

	if (rq->op == OP_LIST) {
		if ((rc = list_keys(rq, &n)) == SQLITE_OK)
			reply_bytes(&rp, 200, "text/plain; charset=utf-8",
			    S.list, n, head);
		else
			db_error(&rp, "listing keys", rc);
	} else {
		st = S.st[rq->op == OP_GET ? ST_GET : ST_LEN];
		bind_key(st, 1, rq->key, rq->klen);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && rq->op == OP_GET) {
			blob = sqlite3_column_blob(st, 0);
			n = (size_t)sqlite3_column_bytes(st, 0);
			reply_bytes(&rp, 200, "application/octet-stream",
			    blob ? blob : "", n, 0);
		} else if (rc == SQLITE_ROW) {
			reply_bytes(&rp, 200, "application/octet-stream",
			    NULL, (size_t)sqlite3_column_int64(st, 0), 1);
		} else if (rc == SQLITE_DONE)
			reply_text(&rp, 404, NULL, "no such key");
		else
			db_error(&rp, "reading a key", rc);
	}
	if (head) {
		rp.body = NULL;
		rp.body_len = 0;
	}
	deliver(id, mode, rq, &rp);
	if (st != NULL)
		done(st);
}

/*
 * The transaction is gone (SQLite rolled it back, or we had to): every
 * write of this batch is lost and will be answered 503 at its end.
 */
static void
lose_batch(const char *what, int rc)
{
	snprintf(S.why, sizeof(S.why), "store: %s: %s", what,
	    sqlite3_errstr(rc));
	if (S.in_txn && !sqlite3_get_autocommit(S.db) &&
	    (rc = run(ST_ROLLBACK)) != SQLITE_OK)
		log_warnx("ROLLBACK: %s", sqlite3_errstr(rc));
	S.in_txn = 0;
	S.failed = 1;
}

static void
note_failure(size_t nwrites)
{
	int64_t	now = now_ms_mono();

	if (nwrites == 0)
		return;
	if (!S.failing || now - S.logged_ms >= LOG_EVERY_MS) {
		log_warnx("%zu write%s answered 503: %s", nwrites,
		    nwrites == 1 ? "" : "s", S.why);
		S.logged_ms = now;
	}
	S.failing = 1;
}

static void
note_success(void)
{
	if (S.failing)
		log_info("writes commit again");
	S.failing = 0;
}

static int
do_put(const struct req *rq, struct reply *rp)
{
	sqlite3_stmt	*st = S.st[ST_UPDATE];
	int		 rc, changed;

	bind_key(st, 1, rq->key, rq->klen);
	bind_value(st, 2, rq->body, rq->body_len);
	rc = sqlite3_step(st);
	changed = sqlite3_changes(S.db);
	done(st);
	if (rc != SQLITE_DONE)
		return rc;
	if (changed > 0) {
		reply_204(rp);
		return SQLITE_OK;
	}
	st = S.st[ST_INSERT];
	bind_key(st, 1, rq->key, rq->klen);
	bind_value(st, 2, rq->body, rq->body_len);
	rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE)
		return rc;
	reply_text(rp, 201, NULL, "created");
	return SQLITE_OK;
}

static int
do_delete(const struct req *rq, struct reply *rp)
{
	sqlite3_stmt	*st = S.st[ST_DELETE];
	int		 rc, changed;

	bind_key(st, 1, rq->key, rq->klen);
	rc = sqlite3_step(st);
	changed = sqlite3_changes(S.db);
	done(st);
	if (rc != SQLITE_DONE)
		return rc;
	if (changed > 0)
		reply_204(rp);
	else
		reply_text(rp, 404, NULL, "no such key");
	return SQLITE_OK;
}

static int
do_incr(const struct req *rq, struct reply *rp)
{
	sqlite3_stmt	*st = S.st[ST_GET];
	char		 num[32];
	int64_t		 cur = 0, sum;
	int		 rc, len;

	bind_key(st, 1, rq->key, rq->klen);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && parse_i64(sqlite3_column_blob(st, 0),
	    (size_t)sqlite3_column_bytes(st, 0), &cur) == -1) {
		done(st);
		reply_text(rp, 409, NULL, "the value is not a decimal "
		    "integer");
		return SQLITE_OK;
	}
	done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;
	if (__builtin_add_overflow(cur, rq->n, &sum)) {
		reply_text(rp, 400, NULL, "%" PRId64 " + %" PRId64 " does not "
		    "fit in a signed 64-bit integer", cur, rq->n);
		return SQLITE_OK;
	}
	len = snprintf(num, sizeof(num), "%" PRId64, sum);
	st = S.st[ST_UPSERT];
	bind_key(st, 1, rq->key, rq->klen);
	bind_value(st, 2, num, (size_t)len);
	rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE)
		return rc;
	reply_text(rp, 200, NULL, "%s", num);
	return SQLITE_OK;
}

/* --- idempotency keys ------------------------------------------------ */

/*
 * A write that carries a client's idempotency key stores, in its own
 * savepoint and so in the same transaction, the key, what the request
 * was (operation, key, amount; not a PUT's body) and the reply it
 * produced.  A later write with that key gets that reply again, marked
 * Idempotent-Replayed, and changes nothing: a client that got 502/504
 * (the store died between COMMIT and its reply) may retry safely.  Keys
 * are kept IDEM_KEEP_S and at most IDEM_KEEP_N, pruned in each batch
 * that stored one.
 */
static int
idem_what(const struct req *rq, char *buf, size_t len)
{
	int	n;

	n = snprintf(buf, len, "%s %s %" PRId64, rq->op == OP_PUT ? "PUT" :
	    rq->op == OP_DELETE ? "DELETE" : "INCR", rq->key, rq->op ==
	    OP_INCR ? rq->n : 0);
	return n < 0 ? 0 : (size_t)n >= len ? (int)len - 1 : n;
}

/* SQLITE_ROW: rp is the answer (the stored reply, or 422); SQLITE_DONE:
 * the key is new; else an error. */
static int
idem_lookup(const struct req *rq, struct reply *rp)
{
	sqlite3_stmt		*st = S.st[ST_IDEM_GET];
	char			 what[STORE_KEY_MAX + 64];
	const unsigned char	*was;
	const void		*b;
	size_t			 n, l = strlen(IDEM_REPLAYED);
	int			 rc;

	bind_key(st, 1, rq->ikey, rq->iklen);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		done(st);
		return rc;
	}
	idem_what(rq, what, sizeof(what));
	was = sqlite3_column_text(st, 1);
	b = sqlite3_column_blob(st, 2);
	n = (size_t)sqlite3_column_bytes(st, 2);
	if (was == NULL || strcmp((const char *)was, what) != 0)
		reply_text(rp, 422, NULL, "this Idempotency-Key was used for "
		    "another request (%s)", was ? (const char *)was : "?");
	else if (n > sizeof(rp->headbuf) - l || b == NULL)
		reply_text(rp, 500, NULL, "store: a stored reply is too long");
	else {
		memcpy(rp->headbuf, IDEM_REPLAYED, l);
		memcpy(rp->headbuf + l, b, n);
		rp->r.status = (uint32_t)sqlite3_column_int(st, 0);
		rp->head = rp->headbuf;
		rp->head_len = l + n;
		rp->body = NULL;
		rp->body_len = 0;
	}
	done(st);
	return SQLITE_ROW;
}

static int
idem_store(const struct req *rq, const struct reply *rp)
{
	sqlite3_stmt	*st = S.st[ST_IDEM_PUT];
	char		 what[STORE_KEY_MAX + 64], *buf;
	size_t		 n = rp->head_len + rp->body_len;
	int		 rc, wl;

	if ((buf = malloc(n + 1)) == NULL)
		return SQLITE_NOMEM;
	memcpy(buf, rp->head, rp->head_len);
	if (rp->body_len > 0)
		memcpy(buf + rp->head_len, rp->body, rp->body_len);
	wl = idem_what(rq, what, sizeof(what));
	bind_key(st, 1, rq->ikey, rq->iklen);
	sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
	bind_key(st, 3, what, (size_t)wl);
	sqlite3_bind_int(st, 4, (int)rp->r.status);
	bind_value(st, 5, buf, n);
	rc = sqlite3_step(st);
	done(st);
	free(buf);
	if (rc != SQLITE_DONE)
		return rc;
	S.idem_last = sqlite3_last_insert_rowid(S.db);
	S.idem_new++;
	return SQLITE_OK;
}

/* In the batch's transaction: forget keys past their time or count. */
static int
idem_prune(void)
{
	int	rc;

	sqlite3_bind_int64(S.st[ST_IDEM_AGE], 1, (int64_t)time(NULL) -
	    IDEM_KEEP_S);
	rc = sqlite3_step(S.st[ST_IDEM_AGE]);
	done(S.st[ST_IDEM_AGE]);
	if (rc != SQLITE_DONE)
		return rc;
	sqlite3_bind_int64(S.st[ST_IDEM_COUNT], 1, S.idem_last - IDEM_KEEP_N);
	rc = sqlite3_step(S.st[ST_IDEM_COUNT]);
	done(S.st[ST_IDEM_COUNT]);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Run the write itself (after its key, if any, was found new). */
static int
do_write(const struct req *rq, struct reply *rp)
{
	int	rc;

	switch (rq->op) {
	case OP_PUT:
		rc = do_put(rq, rp);
		break;
	case OP_DELETE:
		rc = do_delete(rq, rp);
		break;
	default:
		rc = do_incr(rq, rp);
		break;
	}
	if (rc == SQLITE_OK && rq->iklen > 0)
		rc = idem_store(rq, rp);
	return rc;
}

/* A write: PUT, DELETE or incr, in its own savepoint of the batch. */
static void
run_write(uint64_t id, const struct req *rq)
{
	struct reply	rp;
	int		rc;

	if (!S.begun && !S.failed) {
		S.begun = 1;
		if ((rc = run(ST_BEGIN)) == SQLITE_OK) {
			S.in_txn = 1;
		} else {
			snprintf(S.why, sizeof(S.why), "store: cannot start "
			    "a write transaction: %s", sqlite3_errstr(rc));
			if (!sqlite3_get_autocommit(S.db))
				(void)run(ST_ROLLBACK);
		}
	}
	if (!S.in_txn) {
		/* No transaction: nothing of this write can happen. */
		reply_text(&rp, 503, RETRY_AFTER, "%s", S.why[0] ? S.why :
		    "store: cannot write");
		note_failure(1);
		deliver(id, D_NOW, rq, &rp);
		return;
	}
	if ((rc = run(ST_SAVEPOINT)) != SQLITE_OK) {
		lose_batch("SAVEPOINT", rc);
		reply_text(&rp, 503, RETRY_AFTER, "%s", S.why);
		deliver(id, D_WRITE, rq, &rp);
		return;
	}
	S.dirty = 1;
	rc = rq->iklen > 0 ? idem_lookup(rq, &rp) : SQLITE_DONE;
	if (rc == SQLITE_ROW)
		rc = SQLITE_OK;		/* answered before: nothing to do */
	else if (rc == SQLITE_DONE)
		rc = do_write(rq, &rp);
	if (rc == SQLITE_OK && (rc = run(ST_RELEASE)) == SQLITE_OK) {
		deliver(id, D_WRITE, rq, &rp);
		return;
	}
	/* This request fails alone, unless SQLite dropped the whole
	 * transaction (SQLITE_FULL, IOERR and NOMEM may). */
	db_error(&rp, rq->op == OP_PUT ? "writing a key" : rq->op ==
	    OP_DELETE ? "deleting a key" : "incrementing a key", rc);
	if (!sqlite3_get_autocommit(S.db)) {
		(void)run(ST_ROLLBACK_TO);
		(void)run(ST_RELEASE);
	}
	if (sqlite3_get_autocommit(S.db))
		lose_batch("the transaction was rolled back", rc);
	deliver(id, D_WRITE, rq, &rp);
}

/* The key that leads the body (store.h, STORE_F_KEY).  -1 if bad. */
static int
take_key(struct msg_request_view *v, struct req *rq)
{
	size_t	n = v->flags & STORE_F_KEYLEN;

	rq->ikey = NULL;
	rq->iklen = 0;
	rq->crash = (v->flags & STORE_F_CRASH) && S.o->debug_routes;
	if (!(v->flags & STORE_F_KEY))
		return 0;
	if (n == 0 || n > STORE_IDEM_KEY_MAX || n > v->body_len)
		return -1;
	rq->ikey = v->body;
	rq->iklen = n;
	v->body += n;
	v->body_len -= n;
	return 0;
}

/* One request from the front.  -1 if the message itself is bad. */
static int
handle_msg(const struct msg_hdr *h, const unsigned char *p)
{
	struct msg_request_view	v;
	struct req		rq;
	struct reply		rp;

	if (h->type != MSG_REQUEST || msg_request_parse(p, h->len, &v) ==
	    -1) {
		log_warnx("bad %s message (len %u) from the front",
		    msg_typename(h->type), h->len);
		return -1;
	}
	if (take_key(&v, &rq) == -1) {
		log_warnx("bad idempotency key (flags %#x, body %zu) from the "
		    "front", v.flags, v.body_len);
		return -1;
	}
	if (!route(&v, &rq, &rp)) {
		deliver(h->id, D_NOW, &rq, &rp);
		return 0;
	}
	if (S.db == NULL || (S.ro && rq.op != OP_GET && rq.op != OP_HEAD &&
	    rq.op != OP_LIST)) {
		reply_text(&rp, 503, RETRY_AFTER, "%s", S.db == NULL ?
		    S.open_why : "store: the database is read-only; writes "
		    "resume once it is writable");
		deliver(h->id, D_NOW, &rq, &rp);
		return 0;
	}
	switch (rq.op) {
	case OP_GET:
	case OP_HEAD:
	case OP_LIST:
		run_read(h->id, &rq, D_READ);
		break;
	default:
		S.crash |= rq.crash;
		run_write(h->id, &rq);
		break;
	}
	return 0;
}

/* Commit the batch, then send every reply held for it. */
static void
finish_batch(void)
{
	struct reply	 rp;
	struct pend	*p;
	size_t		 i, nwrites = 0;
	int		 ok = 1, committed = 0, rc;

	if (S.in_txn && S.idem_new > 0 && (rc = idem_prune()) != SQLITE_OK)
		lose_batch("pruning idempotency keys", rc);
	if (S.in_txn) {
		if ((rc = run(ST_COMMIT)) != SQLITE_OK) {
			lose_batch("could not commit", rc);
			ok = 0;
		} else
			committed = 1;
		S.in_txn = 0;
	}
	if (S.failed)
		ok = 0;
	if (ok && committed && S.crash) {
		log_warnx("dying between COMMIT and the replies, as asked "
		    "(--debug-routes)");
		abort();
	}
	S.crash = 0;
	S.idem_new = 0;
	S.dirty = 0;	/* reads run again below see committed data only */
	for (i = 0; i < S.npend; i++) {
		p = &S.pend[i];
		nwrites += p->write;
		if (ok && p->stored) {
			send_reply(p->id, &p->r, S.out + p->off, p->head_len,
			    S.out + p->off + p->head_len, p->body_len);
		} else if (p->write) {
			reply_text(&rp, 503, RETRY_AFTER, "%s", S.why);
			send_reply(p->id, &rp.r, rp.head, rp.head_len, rp.body,
			    rp.body_len);
		} else
			run_read(p->id, &p->rq, D_NOW);
	}
	if (!ok)
		note_failure(nwrites);
	else if (nwrites > 0)
		note_success();
	S.npend = 0;
	S.outlen = 0;
	S.begun = 0;
	S.failed = 0;
	S.why[0] = '\0';
	if (S.outcap > 4 * STORE_BATCH_BYTES) {	/* a huge batch: give back */
		free(S.out);
		S.out = NULL;
		S.outcap = 0;
	}
}

/* --- the request pipe ------------------------------------------------ */

/*
 * Take the next whole request.  block: wait for it; else only what is
 * buffered or readable now.  Returns 1 with a message, 0 if none is
 * ready, -1 when the store should stop (S.quit and S.code set).
 */
static int
take(struct msg_hdr *h, const unsigned char **p, int block)
{
	struct pollfd	pfd[2];
	ssize_t		n;
	int		r;

	for (;;) {
		if ((r = msg_next(&S.mb, h, p)) == 1)
			return 1;
		if (r == -1) {
			log_warn("reading a request from the front");
			S.code = 1;
			goto stop;
		}
		pfd[0].fd = WORKER_REQ_FD;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = S.life_fd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		r = poll(pfd, S.life_fd >= 0 ? 2 : 1, block ? -1 : 0);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			S.code = 1;
			goto stop;
		}
		if (S.life_fd >= 0 && pfd[1].revents) {
			S.code = 0;	/* the master is gone */
			goto stop;
		}
		if (pfd[0].revents == 0) {
			if (block)
				continue;
			return 0;
		}
		if ((n = msg_fill(WORKER_REQ_FD, &S.mb)) == 0) {
			S.code = 0;	/* the front closed our pipe */
			goto stop;
		}
		if (n == -1) {
			log_warn("reading the request pipe");
			S.code = 1;
			goto stop;
		}
	}
stop:
	S.quit = 1;
	return -1;
}

/* --- start and end --------------------------------------------------- */

static void
db_close(void)
{
	int	i;

	for (i = 0; i < ST_N; i++) {
		sqlite3_finalize(S.st[i]);
		S.st[i] = NULL;
	}
	if (S.db != NULL && sqlite3_close(S.db) != SQLITE_OK)
		log_warnx("closing the database: %s", sqlite3_errmsg(S.db));
	S.db = NULL;
}

/* Settings and statements of a newly opened S.db.  -1 with err. */
static int
db_prepare(char *err, size_t errlen)
{
	char	q[128];
	int	i, rc;

	snprintf(q, sizeof(q), "PRAGMA synchronous=%s; PRAGMA "
	    "cache_size=-16384", S.o->sync_full ? "FULL" : "NORMAL");
	if (exec_sql(S.db, q, err, errlen) == -1)
		return -1;
	for (i = 0; i < ST_N; i++)
		if ((rc = sqlite3_prepare_v3(S.db, sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &S.st[i], NULL)) != SQLITE_OK) {
			snprintf(err, errlen, "preparing \"%s\": %s", sql[i],
			    sqlite3_errmsg(S.db));
			return -1;
		}
	return 0;
}

/* Open --db with rw as db_open(), and prepare it.  -1 with err. */
static int
db_use(int rw, char *err, size_t errlen)
{
	if (db_open(S.o->db, &S.db, rw, err, errlen) == -1)
		return -1;
	if (db_prepare(err, errlen) == -1) {
		db_close();
		return -1;
	}
	S.ro = !rw;
	return 0;
}

/*
 * (Re)open --db: read-write, else read-only (reads go on, writes get
 * 503), else not at all (everything 503).  Never exits: a database that
 * turned read-only or vanished must not crash-loop the store.  Called
 * at start and, while not read-write, before a batch at most every
 * REOPEN_MS.  A read-write connection is kept for good: when its file
 * turns read-only its writes fail (503) and resume on their own.
 */
static void
db_connect(void)
{
	char	err[512];
	int	was = S.db == NULL ? 0 : S.ro ? 1 : 2;

	db_close();	/* a read-only one would hold a lock against rw */
	S.reopen_ms = now_ms_mono() + REOPEN_MS;
	if (db_use(1, S.open_why, sizeof(S.open_why)) == 0) {
		if (was != 0)
			log_info("%s is writable again", S.o->db);
		S.open_why[0] = '\0';
		return;
	}
	if (db_use(0, err, sizeof(err)) == -1) {
		if (was != 0)
			log_warnx("%s; %s", S.open_why, err);
		snprintf(S.open_why, sizeof(S.open_why), "store: %s",
		    err);
		return;
	}
	if (was != 1)
		log_warnx("%s; serving it read-only, writes get 503",
		    S.open_why);
}

static void
cleanup(void)
{
	db_close();
	sqlite3_shutdown();
	msgbuf_free(&S.mb);
	free(S.pend);
	free(S.out);
	free(S.list);
	S.pend = NULL;
	S.out = S.list = NULL;
}

static void
start(const struct options *o, int life_fd)
{
	memset(&S, 0, sizeof(S));
	S.o = o;
	S.life_fd = life_fd;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		log_warn("prctl PR_SET_NO_NEW_PRIVS");
	S.head204_len = (size_t)snprintf(S.head204, sizeof(S.head204),
	    "Status: 204 No Content\r\nX-Worker-Pid: %ld\r\n\r\n",
	    (long)getpid());
	if (msgbuf_init(&S.mb, 65536, o->max_body + MSG_PATH_MAX +
	    MSG_QUERY_MAX + MSG_METHOD_MAX + sizeof(struct msg_request)) == -1)
		fatal("msgbuf_init");
	if ((S.pend = calloc(STORE_BATCH_MAX, sizeof(*S.pend))) == NULL)
		fatal("calloc");
	db_connect();
	if (S.db == NULL)
		log_warnx("%s; answering 503 until it opens", S.open_why);
}

void
store_main(const struct options *o, int life_fd)
{
	struct msg_hdr		 h;
	const unsigned char	*p;
	size_t			 n, bytes, max;

	log_setrole("store");
	proc_title("pipepool: store");
	reply_init();
	start(o, life_fd);
	log_info("serving %s (synchronous=%s%s)", o->db, o->sync_full ?
	    "FULL" : "NORMAL", o->batch ? "" : ", one transaction per "
	    "request");
	max = o->batch ? STORE_BATCH_MAX : 1;
	while (!S.quit && take(&h, &p, 1) == 1) {
		if ((S.db == NULL || S.ro) && now_ms_mono() >= S.reopen_ms)
			db_connect();
		n = 0;
		bytes = 0;
		for (;;) {
			if (handle_msg(&h, p) == -1) {
				S.quit = 1;
				S.code = 1;
				break;
			}
			n++;
			bytes += h.len;
			if (S.failed || S.quit || n >= max ||
			    bytes + S.outlen >= STORE_BATCH_BYTES)
				break;
			if (take(&h, &p, 0) != 1)
				break;
		}
		finish_batch();
	}
	cleanup();
	exit(S.code);
}
