/*
 * kvdb.c: the /kv API (kvdb.h) and its SQLite backend.  PUT, GET, HEAD,
 * DELETE and POST ?incr=N on /kv/KEY, a sorted key listing on /kv/, and
 * the idempotency keys of writes: the routes and the answers both
 * backends give (no database), the choice of backend, and SQLite's: one
 * connection to --db, the schema, the prepared statements, a savepoint
 * per write.  The PostgreSQL backend is kvpg.c.
 *
 * Everything but the routes runs in whatever transaction the caller (the
 * store, store.c) began: kvdb never decides what shares one or when a
 * reply leaves.  SQLite result codes stay inside this file: callers see
 * a reply, 0 or -1 and a one-line reason.
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvdb.h"
#include "log.h"
#include "msg.h"
#include "options.h"
#include "proc.h"
#include "query.h"
#include "reply.h"

#define KEY_ALLOW	"Allow: GET, HEAD, PUT, DELETE, POST\r\n"
#define LIST_ALLOW	"Allow: GET, HEAD\r\n"
#define KEY_RULE	"a key is 1 to 250 bytes of A-Z a-z 0-9 . _ ~ - " \
			"after percent-decoding"
#define LIST_DEFAULT	1000
#define LIST_MAX	KVDB_LIST_MAX
#define BUSY_MS		5000
#define REOPEN_MS	1000	/* between tries to open --db read-write */
#define IDEM_KEEP_S	KVDB_IDEM_KEEP_S
#define IDEM_KEEP_N	KVDB_IDEM_KEEP_N
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

static struct {
	const struct options	*o;
	sqlite3			*db;
	sqlite3_stmt		*st[ST_N];
	sqlite3_stmt		*reading;	/* a read's row, until done */
	int			 ro;		/* db was opened read-only */
	char			 open_why[600];	/* why not read-write, or at all */
	int64_t			 reopen_ms;	/* next try to open read-write */
	char			*list;		/* a key listing being built */
	size_t			 listcap;
	int			 idem_new;	/* keys stored in this txn */
	int64_t			 idem_last;	/* rowid of the newest key */
} K;

static const struct kvdb_backend	 kvdb_sqlite;
static const struct kvdb_backend	*be = &kvdb_sqlite;

static void	lite_read_done(void);
static char				 head204[96];
static size_t				 head204_len;

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
route_list(const struct msg_request_view *v, struct kvdb_req *rq,
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
	rq->op = KVDB_LIST;
	rq->head = msg_view_method_is(v, "HEAD");
	r = query_param(v->query, v->query_len, "prefix", rq->prefix,
	    sizeof(rq->prefix) - 1, &rq->plen);
	if (r == 0)
		rq->plen = 0;
	if (r == -1 || !key_chars(rq->prefix, rq->plen)) {
		reply_text(rp, 400, NULL, "prefix must be 0 to %d bytes of "
		    "A-Z a-z 0-9 . _ ~ -", KVDB_KEY_MAX);
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

/* The operation on a key, by method.  1, or 0 with rp the answer. */
static int
route_method(const struct msg_request_view *v, struct kvdb_req *rq,
    struct reply *rp)
{
	char	val[32];
	size_t	n;
	int	r;

	if (msg_view_method_is(v, "GET"))
		rq->op = KVDB_GET;
	else if (msg_view_method_is(v, "HEAD"))
		rq->op = KVDB_HEAD;
	else if (msg_view_method_is(v, "PUT"))
		rq->op = KVDB_PUT;
	else if (msg_view_method_is(v, "DELETE"))
		rq->op = KVDB_DELETE;
	else if (msg_view_method_is(v, "POST")) {
		rq->op = KVDB_INCR;
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

int
kvdb_route(const struct msg_request_view *v, struct kvdb_req *rq,
    struct reply *rp)
{
	char	dec[MSG_PATH_MAX];
	size_t	n;

	rq->op = KVDB_GET;
	rq->head = 0;
	rq->key[0] = rq->prefix[0] = '\0';
	rq->klen = rq->plen = 0;
	rq->n = 0;
	rq->body = v->body;
	rq->body_len = v->body_len;
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
	if (n < 1 || n > KVDB_KEY_MAX || !key_chars(dec, n)) {
		reply_text(rp, 400, NULL, KEY_RULE);
		return 0;
	}
	memcpy(rq->key, dec, n);
	rq->key[n] = '\0';
	rq->klen = n;
	return route_method(v, rq, rp);
}

int
kvdb_is_write(const struct kvdb_req *rq)
{
	return rq->op != KVDB_GET && rq->op != KVDB_HEAD &&
	    rq->op != KVDB_LIST;
}

/*
 * A libpq connection string: a URI, or keyword=value pairs, the first
 * a keyword (letters and '_') then '=' (spaces around it allowed); a
 * file's path (kv.db, /data/host=a/kv.db) is neither.  A string that
 * looks so but is malformed is PostgreSQL's too: its check says why.
 */
int
kvdb_is_pg(const char *db)
{
	size_t	n;

	if (strncmp(db, "postgresql://", 13) == 0 ||
	    strncmp(db, "postgres://", 11) == 0)
		return 1;
	db += strspn(db, " \t\n");
	n = strspn(db, "abcdefghijklmnopqrstuvwxyz_"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	if (n == 0)
		return 0;
	db += n;
	db += strspn(db, " \t\n");
	return *db == '=';
}

/* --- the answers of both backends ------------------------------------ */

static void
reply_204(struct reply *rp)
{
	rp->r.status = 204;
	rp->head = head204;
	rp->head_len = head204_len;
	rp->body = NULL;
	rp->body_len = 0;
}

void
kvdb_reply_value(struct reply *rp, const struct kvdb_req *rq, int found,
    const void *v, size_t len)
{
	if (!found)
		reply_text(rp, 404, NULL, "no such key");
	else if (rq->op == KVDB_GET)
		reply_bytes(rp, 200, "application/octet-stream", v ? v : "",
		    len, 0);
	else
		reply_bytes(rp, 200, "application/octet-stream", NULL, len, 1);
}

void
kvdb_reply_put(struct reply *rp, int created)
{
	if (created)
		reply_text(rp, 201, NULL, "created");
	else
		reply_204(rp);
}

void
kvdb_reply_delete(struct reply *rp, int found)
{
	if (found)
		reply_204(rp);
	else
		reply_text(rp, 404, NULL, "no such key");
}

void
kvdb_reply_sum(struct reply *rp, int64_t sum)
{
	reply_text(rp, 200, NULL, "%" PRId64, sum);
}

void
kvdb_reply_nan(struct reply *rp)
{
	reply_text(rp, 409, NULL, "the value is not a decimal integer");
}

void
kvdb_reply_overflow(struct reply *rp, int64_t cur, int64_t n)
{
	reply_text(rp, 400, NULL, "%" PRId64 " + %" PRId64 " does not fit in "
	    "a signed 64-bit integer", cur, n);
}

/*
 * A write that carries a client's idempotency key stores, in the same
 * transaction, the key, what the request was (operation, key, amount;
 * not a PUT's body) and the reply it produced.  A later write with that
 * key gets that reply again, marked Idempotent-Replayed, and changes
 * nothing: a client that got 502/504 (the store died between COMMIT and
 * its reply) may retry safely.  Keys are kept IDEM_KEEP_S and at most
 * IDEM_KEEP_N, pruned by each commit of a transaction that stored one.
 */
int
kvdb_idem_what(const struct kvdb_req *rq, char *buf, size_t len)
{
	int	n;

	n = snprintf(buf, len, "%s %s %" PRId64, rq->op == KVDB_PUT ? "PUT" :
	    rq->op == KVDB_DELETE ? "DELETE" : "INCR", rq->key, rq->op ==
	    KVDB_INCR ? rq->n : 0);
	return n < 0 ? 0 : (size_t)n >= len ? (int)len - 1 : n;
}

void
kvdb_reply_replay(struct reply *rp, const struct kvdb_req *rq,
    const char *was, unsigned status, const void *head, size_t n)
{
	char	what[KVDB_KEY_MAX + 64];
	size_t	l = strlen(IDEM_REPLAYED);

	kvdb_idem_what(rq, what, sizeof(what));
	if (was == NULL || strcmp(was, what) != 0)
		reply_text(rp, 422, NULL, "this Idempotency-Key was used for "
		    "another request (%s)", was ? was : "?");
	else if (n > sizeof(rp->headbuf) - l || head == NULL)
		reply_text(rp, 500, NULL, "store: a stored reply is too long");
	else {
		memcpy(rp->headbuf, IDEM_REPLAYED, l);
		memcpy(rp->headbuf + l, head, n);
		rp->r.status = status;
		rp->head = rp->headbuf;
		rp->head_len = l + n;
		rp->body = NULL;
		rp->body_len = 0;
	}
}

char *
kvdb_reply_bytes(const struct reply *rp, size_t *n)
{
	char	*buf;

	*n = rp->head_len + rp->body_len;
	if ((buf = malloc(*n + 1)) == NULL)
		return NULL;
	memcpy(buf, rp->head, rp->head_len);
	if (rp->body_len > 0)
		memcpy(buf + rp->head_len, rp->body, rp->body_len);
	return buf;
}

/* --- SQLite ---------------------------------------------------------- */

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

/* Make a read-write db ready: WAL, the kv and idem tables.  -1 with why. */
static int
db_make(sqlite3 *db, char *why, size_t whylen)
{
	sqlite3_stmt	*st = NULL;
	const char	*mode;
	int		 rc;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st,
	    NULL) != SQLITE_OK) {
		snprintf(why, whylen, "PRAGMA journal_mode=WAL: %s",
		    sqlite3_errmsg(db));
		return -1;
	}
	rc = sqlite3_step(st);
	mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) :
	    NULL;
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		snprintf(why, whylen, "cannot switch to WAL mode: %s",
		    mode ? mode : sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (exec_sql(db, "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY "
	    "COLLATE BINARY, value BLOB NOT NULL) WITHOUT ROWID", why,
	    whylen) == -1)
		return -1;
	/* A write's idempotency key, committed with the write: the reply
	 * it produced, for a retry (see idem_lookup()). */
	return exec_sql(db, "CREATE TABLE IF NOT EXISTS idem(id INTEGER "
	    "PRIMARY KEY, key TEXT NOT NULL UNIQUE, at INTEGER NOT NULL, req "
	    "TEXT NOT NULL, status INTEGER NOT NULL, reply BLOB NOT NULL); "
	    "CREATE INDEX IF NOT EXISTS idem_at ON idem(at)", why, whylen);
}

/*
 * Open path (creating it) and db_make() it; or, rw 0, open it read-only
 * as it is.  -1 with a one-line reason in err; *dbp is then NULL.
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
	if (rw && sqlite3_db_readonly(db, "main") == 1) {
		snprintf(why, sizeof(why), "it can only be opened read-only");
		goto fail;
	}
	if (rw && db_make(db, why, sizeof(why)) == -1)
		goto fail;
	*dbp = db;
	return 0;
fail:
	snprintf(err, errlen, "cannot use database '%s': %s", path, why);
	sqlite3_close(db);
	return -1;
}

static int
lite_check(const char *path, char *err, size_t errlen)
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

/* Step a statement that returns no rows we need, and reset it. */
static int
run(enum st i)
{
	int	rc;

	rc = sqlite3_step(K.st[i]);
	sqlite3_reset(K.st[i]);
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
	    KVDB_RETRY_AFTER : NULL, "store: %s: %s",
	    what, sqlite3_errstr(rc));
}

/* --- reads ----------------------------------------------------------- */

/* Build the listing in K.list.  SQLite result code. */
static int
list_keys(const struct kvdb_req *rq, size_t *len)
{
	sqlite3_stmt	*st;
	char		 hi[KVDB_KEY_MAX + 1], *nb;
	const unsigned char *k;
	size_t		 n = 0, kl, cap;
	int		 rc;

	if (rq->plen == 0) {
		st = K.st[ST_LIST];
		bind_key(st, 1, "", 0);
		sqlite3_bind_int64(st, 2, rq->n);
	} else {
		/* Key bytes are below 0x7f, so prefix+1 bounds the range. */
		memcpy(hi, rq->prefix, rq->plen);
		hi[rq->plen - 1]++;
		st = K.st[ST_LIST_RANGE];
		bind_key(st, 1, rq->prefix, rq->plen);
		bind_key(st, 2, hi, rq->plen);
		sqlite3_bind_int64(st, 3, rq->n);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		k = sqlite3_column_text(st, 0);
		kl = (size_t)sqlite3_column_bytes(st, 0);
		if (k == NULL)
			continue;
		if (K.listcap - n < kl + 1) {
			cap = K.listcap ? K.listcap : 16384;
			while (cap - n < kl + 1)
				cap *= 2;
			if ((nb = realloc(K.list, cap)) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			K.list = nb;
			K.listcap = cap;
		}
		memcpy(K.list + n, k, kl);
		K.list[n + kl] = '\n';
		n += kl + 1;
	}
	done(st);
	*len = n;
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* GET and HEAD of a key: the row stays in K.reading (a GET's body). */
static void
read_key(const struct kvdb_req *rq, struct reply *rp)
{
	sqlite3_stmt	*st = K.st[rq->op == KVDB_GET ? ST_GET : ST_LEN];
	const void	*blob;
	int		 rc;

	bind_key(st, 1, rq->key, rq->klen);
	K.reading = st;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && rq->op == KVDB_GET) {
		blob = sqlite3_column_blob(st, 0);
		kvdb_reply_value(rp, rq, 1, blob,
		    (size_t)sqlite3_column_bytes(st, 0));
	} else if (rc == SQLITE_ROW) {
		kvdb_reply_value(rp, rq, 1, NULL,
		    (size_t)sqlite3_column_int64(st, 0));
	} else if (rc == SQLITE_DONE)
		kvdb_reply_value(rp, rq, 0, NULL, 0);
	else
		db_error(rp, "reading a key", rc);
}

static void
lite_read(const struct kvdb_req *rq, struct reply *rp)
{
	size_t	n;
	int	rc;

	lite_read_done();
	if (rq->op == KVDB_LIST) {
		if ((rc = list_keys(rq, &n)) == SQLITE_OK)
			reply_bytes(rp, 200, "text/plain; charset=utf-8",
			    K.list, n, rq->head);
		else
			db_error(rp, "listing keys", rc);
	} else
		read_key(rq, rp);
	if (rq->op == KVDB_HEAD || rq->head) {
		rp->body = NULL;
		rp->body_len = 0;
	}
}

static void
lite_read_done(void)
{
	if (K.reading != NULL)
		done(K.reading);
	K.reading = NULL;
}

/* --- writes ---------------------------------------------------------- */

static int
do_put(const struct kvdb_req *rq, struct reply *rp)
{
	sqlite3_stmt	*st = K.st[ST_UPDATE];
	int		 rc, changed;

	bind_key(st, 1, rq->key, rq->klen);
	bind_value(st, 2, rq->body, rq->body_len);
	rc = sqlite3_step(st);
	changed = sqlite3_changes(K.db);
	done(st);
	if (rc != SQLITE_DONE)
		return rc;
	if (changed > 0) {
		kvdb_reply_put(rp, 0);
		return SQLITE_OK;
	}
	st = K.st[ST_INSERT];
	bind_key(st, 1, rq->key, rq->klen);
	bind_value(st, 2, rq->body, rq->body_len);
	rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE)
		return rc;
	kvdb_reply_put(rp, 1);
	return SQLITE_OK;
}

static int
do_delete(const struct kvdb_req *rq, struct reply *rp)
{
	sqlite3_stmt	*st = K.st[ST_DELETE];
	int		 rc, changed;

	bind_key(st, 1, rq->key, rq->klen);
	rc = sqlite3_step(st);
	changed = sqlite3_changes(K.db);
	done(st);
	if (rc != SQLITE_DONE)
		return rc;
	kvdb_reply_delete(rp, changed > 0);
	return SQLITE_OK;
}

static int
do_incr(const struct kvdb_req *rq, struct reply *rp)
{
	sqlite3_stmt	*st = K.st[ST_GET];
	char		 num[32];
	int64_t		 cur = 0, sum;
	int		 rc, len;

	bind_key(st, 1, rq->key, rq->klen);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && parse_i64(sqlite3_column_blob(st, 0),
	    (size_t)sqlite3_column_bytes(st, 0), &cur) == -1) {
		done(st);
		kvdb_reply_nan(rp);
		return SQLITE_OK;
	}
	done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;
	if (__builtin_add_overflow(cur, rq->n, &sum)) {
		kvdb_reply_overflow(rp, cur, rq->n);
		return SQLITE_OK;
	}
	len = snprintf(num, sizeof(num), "%" PRId64, sum);
	st = K.st[ST_UPSERT];
	bind_key(st, 1, rq->key, rq->klen);
	bind_value(st, 2, num, (size_t)len);
	rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE)
		return rc;
	kvdb_reply_sum(rp, sum);
	return SQLITE_OK;
}

/* --- idempotency keys (kvdb_idem_what()) --------------------------- */

/* SQLITE_ROW: rp is the answer (the stored reply, or 422); SQLITE_DONE:
 * the key is new; else an error. */
static int
idem_lookup(const struct kvdb_req *rq, struct reply *rp)
{
	sqlite3_stmt	*st = K.st[ST_IDEM_GET];
	int		 rc;

	bind_key(st, 1, rq->ikey, rq->iklen);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		done(st);
		return rc;
	}
	kvdb_reply_replay(rp, rq, (const char *)sqlite3_column_text(st, 1),
	    (unsigned)sqlite3_column_int(st, 0), sqlite3_column_blob(st, 2),
	    (size_t)sqlite3_column_bytes(st, 2));
	done(st);
	return SQLITE_ROW;
}

static int
idem_store(const struct kvdb_req *rq, const struct reply *rp)
{
	sqlite3_stmt	*st = K.st[ST_IDEM_PUT];
	char		 what[KVDB_KEY_MAX + 64], *buf;
	size_t		 n;
	int		 rc, wl;

	if ((buf = kvdb_reply_bytes(rp, &n)) == NULL)
		return SQLITE_NOMEM;
	wl = kvdb_idem_what(rq, what, sizeof(what));
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
	K.idem_last = sqlite3_last_insert_rowid(K.db);
	K.idem_new++;
	return SQLITE_OK;
}

/* In the transaction: forget keys past their time or count. */
static int
idem_prune(void)
{
	int	rc;

	sqlite3_bind_int64(K.st[ST_IDEM_AGE], 1, (int64_t)time(NULL) -
	    IDEM_KEEP_S);
	rc = sqlite3_step(K.st[ST_IDEM_AGE]);
	done(K.st[ST_IDEM_AGE]);
	if (rc != SQLITE_DONE)
		return rc;
	sqlite3_bind_int64(K.st[ST_IDEM_COUNT], 1, K.idem_last - IDEM_KEEP_N);
	rc = sqlite3_step(K.st[ST_IDEM_COUNT]);
	done(K.st[ST_IDEM_COUNT]);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* --- transactions ---------------------------------------------------- */

static void
lite_rollback(void)
{
	int	rc;

	if (K.db != NULL && !sqlite3_get_autocommit(K.db) &&
	    (rc = run(ST_ROLLBACK)) != SQLITE_OK)
		log_warnx("ROLLBACK: %s", sqlite3_errstr(rc));
	K.idem_new = 0;
}

/* The transaction is lost (what failed, and rc): roll back, say why. */
static int
lose(char *why, size_t whylen, const char *what, int rc)
{
	snprintf(why, whylen, "store: %s: %s", what, sqlite3_errstr(rc));
	lite_rollback();
	return -1;
}

static int
lite_begin(char *why, size_t whylen)
{
	int	rc;

	K.idem_new = 0;
	if ((rc = run(ST_BEGIN)) == SQLITE_OK)
		return 0;
	snprintf(why, whylen, "store: cannot start a write transaction: %s",
	    sqlite3_errstr(rc));
	if (!sqlite3_get_autocommit(K.db))
		(void)run(ST_ROLLBACK);
	return -1;
}

/* The write itself (after its key, if any, was found new). */
static int
do_write(const struct kvdb_req *rq, struct reply *rp)
{
	int	rc;

	switch (rq->op) {
	case KVDB_PUT:
		rc = do_put(rq, rp);
		break;
	case KVDB_DELETE:
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

static int
lite_write(const struct kvdb_req *rq, struct reply *rp, char *why,
    size_t whylen)
{
	int	rc;

	if ((rc = run(ST_SAVEPOINT)) != SQLITE_OK) {
		lose(why, whylen, "SAVEPOINT", rc);
		reply_text(rp, 503, KVDB_RETRY_AFTER, "%s", why);
		return -1;
	}
	rc = rq->iklen > 0 ? idem_lookup(rq, rp) : SQLITE_DONE;
	if (rc == SQLITE_ROW)
		rc = SQLITE_OK;		/* answered before: nothing to do */
	else if (rc == SQLITE_DONE)
		rc = do_write(rq, rp);
	if (rc == SQLITE_OK && (rc = run(ST_RELEASE)) == SQLITE_OK)
		return 0;
	/* This request fails alone, unless SQLite dropped the whole
	 * transaction (SQLITE_FULL, IOERR and NOMEM may). */
	if (!sqlite3_get_autocommit(K.db)) {
		(void)run(ST_ROLLBACK_TO);
		(void)run(ST_RELEASE);
	}
	if (sqlite3_get_autocommit(K.db)) {
		lose(why, whylen, "the transaction was rolled back", rc);
		reply_text(rp, 503, KVDB_RETRY_AFTER, "%s", why);
		return -1;
	}
	db_error(rp, rq->op == KVDB_PUT ? "writing a key" : rq->op ==
	    KVDB_DELETE ? "deleting a key" : "incrementing a key", rc);
	return 0;
}

static int
lite_commit(char *why, size_t whylen)
{
	int	rc;

	if (K.idem_new > 0 && (rc = idem_prune()) != SQLITE_OK)
		return lose(why, whylen, "pruning idempotency keys", rc);
	K.idem_new = 0;
	if ((rc = run(ST_COMMIT)) != SQLITE_OK)
		return lose(why, whylen, "could not commit", rc);
	return 0;
}

/* --- opening and closing --------------------------------------------- */

static void
db_close(void)
{
	int	i;

	lite_read_done();
	for (i = 0; i < ST_N; i++) {
		sqlite3_finalize(K.st[i]);
		K.st[i] = NULL;
	}
	if (K.db != NULL && sqlite3_close(K.db) != SQLITE_OK)
		log_warnx("closing the database: %s", sqlite3_errmsg(K.db));
	K.db = NULL;
}

/* Settings and statements of a newly opened K.db.  -1 with err. */
static int
db_prepare(char *err, size_t errlen)
{
	char	q[128];
	int	i, rc;

	snprintf(q, sizeof(q), "PRAGMA synchronous=%s; PRAGMA "
	    "cache_size=-16384", K.o->sync_full ? "FULL" : "NORMAL");
	if (exec_sql(K.db, q, err, errlen) == -1)
		return -1;
	for (i = 0; i < ST_N; i++)
		if ((rc = sqlite3_prepare_v3(K.db, sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &K.st[i], NULL)) != SQLITE_OK) {
			snprintf(err, errlen, "preparing \"%s\": %s", sql[i],
			    sqlite3_errmsg(K.db));
			return -1;
		}
	return 0;
}

/* Open --db with rw as db_open(), and prepare it.  -1 with err. */
static int
db_use(int rw, char *err, size_t errlen)
{
	if (db_open(K.o->db, &K.db, rw, err, errlen) == -1)
		return -1;
	if (db_prepare(err, errlen) == -1) {
		db_close();
		return -1;
	}
	K.ro = !rw;
	return 0;
}

/*
 * (Re)open --db: read-write, else read-only, else not at all, logging a
 * change from what it was (kvdb.h, kvdb_open()).
 */
static void
db_connect(void)
{
	char	err[512];
	int	was = K.db == NULL ? 0 : K.ro ? 1 : 2;

	db_close();	/* a read-only one would hold a lock against rw */
	K.reopen_ms = proc_now_ms() + REOPEN_MS;
	if (db_use(1, K.open_why, sizeof(K.open_why)) == 0) {
		if (was != 0)
			log_info("%s is writable again", K.o->db);
		K.open_why[0] = '\0';
		return;
	}
	if (db_use(0, err, sizeof(err)) == -1) {
		if (was != 0)
			log_warnx("%s; %s", K.open_why, err);
		snprintf(K.open_why, sizeof(K.open_why), "store: %s",
		    err);
		return;
	}
	if (was != 1)
		log_warnx("%s; serving it read-only, writes get 503",
		    K.open_why);
}

static void
lite_open(const struct options *o)
{
	memset(&K, 0, sizeof(K));
	K.o = o;
	db_connect();
	if (K.db == NULL)
		log_warnx("%s; answering 503 until it opens", K.open_why);
}

static void
lite_retry(void)
{
	if ((K.db == NULL || K.ro) && proc_now_ms() >= K.reopen_ms)
		db_connect();
}

static void
lite_close(void)
{
	db_close();
	sqlite3_shutdown();
	free(K.list);
	K.list = NULL;
	K.listcap = 0;
}

static int
lite_refuse(const struct kvdb_req *rq, struct reply *rp)
{
	if (K.db != NULL && !(K.ro && kvdb_is_write(rq)))
		return 0;
	reply_text(rp, 503, KVDB_RETRY_AFTER, "%s", K.db == NULL ?
	    K.open_why : KVDB_READONLY_WHY);
	return 1;
}

static void
lite_state(struct kvdb_state *ks)
{
	ks->pg = 0;
	ks->conn = K.db == NULL ? KVDB_DOWN : K.ro ? KVDB_READONLY : KVDB_UP;
	ks->reconnects = 0;
}

static const struct kvdb_backend kvdb_sqlite = {
	lite_check, lite_open, lite_retry, lite_close, lite_state,
	lite_refuse, lite_read, lite_read_done, lite_begin, lite_write,
	lite_commit, NULL, lite_rollback
};

/* --- the backend chosen by --db -------------------------------------- */

int
kvdb_check(const char *db, char *err, size_t errlen)
{
	return (kvdb_is_pg(db) ? &kvdb_pg : &kvdb_sqlite)->check(db, err,
	    errlen);
}

void
kvdb_open(const struct options *o)
{
	be = kvdb_is_pg(o->db) ? &kvdb_pg : &kvdb_sqlite;
	head204_len = (size_t)snprintf(head204, sizeof(head204),
	    "Status: 204 No Content\r\n%s\r\n", reply_pid_header());
	be->open(o);
}

void
kvdb_retry(void)
{
	be->retry();
}

void
kvdb_close(void)
{
	be->close();
}

void
kvdb_state(struct kvdb_state *ks)
{
	be->state(ks);
}

int
kvdb_refuse(const struct kvdb_req *rq, struct reply *rp)
{
	return be->refuse(rq, rp);
}

void
kvdb_read(const struct kvdb_req *rq, struct reply *rp)
{
	be->read(rq, rp);
}

void
kvdb_read_done(void)
{
	be->read_done();
}

int
kvdb_begin(char *why, size_t whylen)
{
	return be->begin(why, whylen);
}

int
kvdb_write(const struct kvdb_req *rq, struct reply *rp, char *why,
    size_t whylen)
{
	return be->write(rq, rp, why, whylen);
}

int
kvdb_commit(char *why, size_t whylen)
{
	return be->commit(why, whylen);
}

void
kvdb_answer(size_t i, struct reply *rp)
{
	if (be->answer != NULL)
		be->answer(i, rp);
}

void
kvdb_rollback(void)
{
	be->rollback();
}
