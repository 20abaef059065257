/*
 * kvpg.c: the /kv API's PostgreSQL backend (kvdb.h, struct kvdb_backend),
 * for --db set to a libpq connection string.  One connection in libpq's
 * pipeline mode; the answers and routes are kvdb.c's, so both backends
 * mean the same.
 *
 * A transaction of the store (kvdb_begin ... kvdb_commit) goes to the
 * server as one pipelined round trip: BEGIN, each write's statement,
 * COMMIT, one sync; the writes' answers are read after it and given by
 * kvdb_answer(), so none leaves before COMMIT succeeded.  Two things
 * need an answer in the middle, and flush what was sent so far to get
 * it: a read inside the transaction (it must see its writes), and a
 * write with an idempotency key (its key is looked up first, and its
 * reply stored after).  If one statement fails, the server skips the
 * rest up to the sync: the transaction is rolled back and each of its
 * writes run again in a transaction of its own, so that one bad request
 * fails alone (kvdb_commit() returns 1).
 *
 * The increment is one statement, INSERT ... ON CONFLICT DO UPDATE ...
 * WHERE ... RETURNING, inside the function kv_incr (SCHEMA): it adds
 * under the row's lock, so two stores on one database lose no update,
 * and it says why it did not (no number, overflow) without an error
 * that would abort the group.  Keys sort bytewise (COLLATE "C"), as in
 * SQLite.
 *
 * A lost connection (server gone, network cut): the writes in flight are
 * answered 503, "not written" if COMMIT was not sent yet, else "outcome
 * unknown"; kvdb_retry() connects again, at once and then with back-off
 * up to BACKOFF_MAX_MS, through the whole connection string (several
 * hosts, target_session_attrs=read-write: the first primary that
 * answers).  Until then every request is refused 503, with a reason of
 * our own: libpq's (hosts, ports, user names) goes to the log alone.
 * The connection is blocking: connecting holds the store up to 2 s a
 * host (CONNECT_TIMEOUT), a lock wait up to 3/4 of --timeout
 * (lock_timeout), and a server that stops answering mid-statement holds
 * it until keepalives or tcp_user_timeout end the connection, or the
 * front's --timeout replaces the store.  A group's results are
 * small (a row or a tag per write), so the server never blocks on
 * sending them while we still send (libpq's warning on blocking mode).
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvdb.h"
#include "log.h"
#include "msg.h"
#include "options.h"
#include "pq.h"
#include "proc.h"
#include "query.h"
#include "reply.h"

#define BACKOFF_MIN_MS	50
#define BACKOFF_MAX_MS	1000
#define CONNECT_TIMEOUT	"2"	/* seconds a host, whatever --db says */
#define LOCK_TIMEOUT_MIN 100	/* ms: lock_timeout's least (limits()) */
#define TCP_TIMEOUT_MIN	1000	/* ms: tcp_user_timeout's least */
#define LOCK_WAIT	"55P03"	/* lock_timeout's SQLSTATE */
#define READ_ONLY	"25006"	/* a write in a read-only transaction */
#define RO_RECHECK_MS	1000	/* connect again while read-only, first */
#define RO_RECHECK_MAX	8000	/* then up to this, doubling */
#define ITEMS_MAX	(4 * KVDB_TXN_MAX + 8)
#define BODY_MAX	512	/* of a write's answer (reply_text()'s) */

/* The tables, as SQLite's (kvdb.c), and the increment (see the top). */
static const char schema[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(7107712);"	/* two stores start at once */
    "CREATE TABLE IF NOT EXISTS kv(key text COLLATE \"C\" PRIMARY KEY,"
    " value bytea NOT NULL);"
    "CREATE TABLE IF NOT EXISTS idem(id bigserial PRIMARY KEY, key text"
    " NOT NULL UNIQUE, at bigint NOT NULL, req text NOT NULL, status int"
    " NOT NULL, reply bytea NOT NULL);"
    "CREATE INDEX IF NOT EXISTS idem_at ON idem(at);"
    /* The value as parse_i64() reads it (query.c), else NULL. */
    "CREATE OR REPLACE FUNCTION kv_int(b bytea) RETURNS bigint"
    " LANGUAGE plpgsql IMMUTABLE AS $f$"
    " DECLARE s text; d text; x numeric;"
    " BEGIN"
    "  IF encode(b, 'hex') !~ '^(2b|2d)?(3[0-9])+$' THEN RETURN NULL;"
    "  END IF;"
    "  s := convert_from(b, 'UTF8');"
    "  d := ltrim(ltrim(s, '+-'), '0');"
    "  IF length(d) > 19 THEN RETURN NULL; END IF;"
    "  x := ((CASE WHEN left(s, 1) = '-' THEN '-' ELSE '' END) ||"
    "   (CASE WHEN d = '' THEN '0' ELSE d END))::numeric;"
    "  IF x < -9223372036854775808 OR x > 9223372036854775807 THEN"
    "   RETURN NULL; END IF;"
    "  RETURN x::bigint;"
    " END $f$;"
    /* r 0: v is the new value; 1: the value is no number; 2: v + n
     * does not fit.  A row the WHERE refuses stays locked. */
    "CREATE OR REPLACE FUNCTION kv_incr(k text, n bigint, OUT r int,"
    " OUT v text) LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  INSERT INTO kv AS t(key, value) VALUES (k, convert_to(n::text,"
    "   'UTF8')) ON CONFLICT (key) DO UPDATE SET value ="
    "   convert_to((kv_int(t.value)::numeric + n)::text, 'UTF8')"
    "   WHERE kv_int(t.value)::numeric + n BETWEEN -9223372036854775808"
    "   AND 9223372036854775807"
    "   RETURNING convert_from(t.value, 'UTF8') INTO v;"
    "  IF FOUND THEN r := 0; RETURN; END IF;"
    "  SELECT kv_int(value)::text INTO v FROM kv WHERE key = k;"
    "  r := CASE WHEN v IS NULL THEN 1 ELSE 2 END;"
    " END $f$;"
    "COMMIT";

enum st {
	ST_GET, ST_LEN, ST_LIST, ST_PUT, ST_DELETE, ST_INCR, ST_IDEM_GET,
	ST_IDEM_PUT, ST_PRUNE, ST_N
};

static const char *const sql[ST_N] = {
	[ST_GET] = "SELECT value FROM kv WHERE key = $1::text",
	[ST_LEN] = "SELECT octet_length(value) FROM kv WHERE key = $1::text",
	/* $2 '': no upper bound.  One row: the keys, each ending '\n'. */
	[ST_LIST] = "SELECT coalesce(string_agg(key, E'\\n' ORDER BY key) ||"
	    " E'\\n', '') FROM (SELECT key FROM kv WHERE key >= $1::text AND"
	    " ($2::text = '' OR key < $2::text) ORDER BY key LIMIT"
	    " $3::bigint) s",
	/* xmax is 0 in a row just inserted, our xid in one updated. */
	[ST_PUT] = "INSERT INTO kv(key, value) VALUES ($1::text, $2::bytea)"
	    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
	    " RETURNING xmax = 0",
	[ST_DELETE] = "DELETE FROM kv WHERE key = $1::text",
	[ST_INCR] = "SELECT r, v FROM kv_incr($1::text, $2::bigint)",
	[ST_IDEM_GET] = "SELECT status::text, req, reply FROM idem WHERE"
	    " key = $1::text",
	[ST_IDEM_PUT] = "INSERT INTO idem(key, at, req, status, reply) VALUES"
	    " ($1::text, $2::bigint, $3::text, $4::int, $5::bytea)",
	[ST_PRUNE] = "DELETE FROM idem WHERE at < $1::bigint OR id <="
	    " (SELECT max(id) FROM idem) - $2::bigint",
};

/* What a result in the pipeline is for, in the order they come. */
enum ik { I_CMD, I_WRITE, I_KEEP, I_SYNC };
struct item {
	enum ik	 kind;
	size_t	 w;		/* I_WRITE: which write */
};

/* A write of the transaction: its request (body and idempotency key in
 * P.bytes, for a second run) and its answer. */
struct wr {
	struct kvdb_req	 rq;
	size_t		 boff, ikoff;
	int		 answered;
	struct reply	 rp;
	char		 body[BODY_MAX];
};

static struct {
	const struct options	*o;
	PGconn			*conn;
	int			 up;
	int			 ever;		/* was up once */
	int			 ro;		/* a write failed: read-only */
	int64_t			 ro_retry_ms, ro_backoff_ms;
	uint64_t		 reconnects;
	char			 why[600];	/* why not up, in one line */
	const char		*pub;		/* the same, for clients */
	int64_t			 retry_ms;
	int64_t			 backoff_ms;
	struct item		 q[ITEMS_MAX];
	size_t			 nq, nd;	/* sent, taken */
	PGresult		*res;		/* the last I_KEEP's */
	PGresult		*reading;	/* a read's, until done */
	int			 in_txn;
	int			 aborted;	/* a statement failed */
	int			 lost;		/* the connection, in this txn */
	int			 commit_sent;
	char			 err[256];	/* the failed statement's */
	char			 sqlstate[6];
	struct wr		*w;		/* KVDB_TXN_MAX */
	size_t			 nw;
	char			*bytes;
	size_t			 nbytes, bytescap;
	int			 idem_new;
} P;

/* --- the connection -------------------------------------------------- */

/* s (a libpq message, lines ending '\n') as one line into buf. */
static void
one_line(char *buf, size_t len, const char *s)
{
	size_t	i, n = 0;

	for (i = 0; s != NULL && s[i] != '\0' && n + 1 < len; i++) {
		if (s[i] == '\n' && s[i + 1] == '\0')
			break;
		buf[n++] = s[i] == '\n' || s[i] == '\t' ? ' ' : s[i];
	}
	buf[n] = '\0';
}

/* The connection is gone: drop it, say why once, try again at once. */
static int
lost(const char *what)
{
	char	msg[400];

	one_line(msg, sizeof(msg), P.conn ? PQerrorMessage(P.conn) : NULL);
	snprintf(P.why, sizeof(P.why), "store: lost the connection to "
	    "PostgreSQL (%s: %s)", what, msg[0] ? msg : "no answer");
	P.pub = "store: lost the connection to PostgreSQL";
	if (P.up)
		log_warnx("%s", P.why);
	PQclear(P.res);
	P.res = NULL;
	PQclear(P.reading);
	P.reading = NULL;
	PQfinish(P.conn);
	P.conn = NULL;
	P.up = 0;
	P.lost = 1;
	P.nq = P.nd = 0;
	P.retry_ms = proc_now_ms();
	P.backoff_ms = BACKOFF_MIN_MS;
	return -1;
}

/* r (taken) is COMMAND_OK, else -1 with P.why: "store: what: why". */
static int
result_ok(PGresult *r, const char *what)
{
	char	msg[400];

	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		return 0;
	}
	one_line(msg, sizeof(msg), PQresultErrorMessage(r));
	snprintf(P.why, sizeof(P.why), "store: %s: %s", what, msg);
	PQclear(r);
	return -1;
}

/* A wait's limit: 3/4 of --timeout (the store answers before the front
 * gives up on it), at least least ms. */
static long
budget_ms(long least)
{
	long	to = (long)(P.o->timeout * 1000);

	return to - to / 4 > least ? to - to / 4 : least;
}

/*
 * The session's time limits, so that the store answers before the
 * front's --timeout replaces it, and a statement never lands after its
 * request was answered: a row lock waited for past lock_timeout fails
 * the statement (55P03, answered 503); a session of ours left idle in a
 * transaction ends; a statement whose client went away (the store
 * killed) is cancelled (client_connection_check_interval, PostgreSQL
 * 14 and later).  No statement_timeout: one firing during COMMIT's wait
 * for a synchronous standby would acknowledge a commit that exists on
 * the primary alone.  -1 with P.why.
 */
static int
limits(void)
{
	char	q[256];
	long	lock = budget_ms(LOCK_TIMEOUT_MIN);

	snprintf(q, sizeof(q), "SET lock_timeout = %ld;"
	    " SET idle_in_transaction_session_timeout = %ld%s", lock,
	    2 * lock, PQserverVersion(P.conn) >= 140000 ?
	    "; SET client_connection_check_interval = 1000" : "");
	return result_ok(PQexec(P.conn, q), "setting the session's time "
	    "limits in PostgreSQL");
}

/*
 * The schema is there (its last object made, the increment, too): then
 * none of it is made again, as CREATE ... IF NOT EXISTS takes locks
 * (CREATE INDEX a ShareLock, waiting for every writer) and fails on a
 * read-only server, whose data can still be read.  A schema changed in
 * a later version needs a test of its own here.
 */
static int
schema_made(void)
{
	PGresult	*r;
	int		 made;

	r = PQexec(P.conn, "SELECT to_regclass('idem_at') IS NOT NULL AND"
	    " to_regprocedure('kv_incr(text, bigint)') IS NOT NULL");
	made = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return made;
}

/* Make the schema and the statements on a new connection; -1 with
 * P.why. */
static int
prepare(void)
{
	char	name[8], msg[400], what[64];
	int	i;

	if ((!schema_made() && result_ok(PQexec(P.conn, schema), "cannot "
	    "make the tables in PostgreSQL") == -1) || limits() == -1)
		return -1;
	for (i = 0; i < ST_N; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		snprintf(what, sizeof(what), "preparing \"%.*s...\"", 40,
		    sql[i]);
		if (result_ok(PQprepare(P.conn, name, sql[i], 0, NULL),
		    what) == -1)
			return -1;
	}
	if (!PQenterPipelineMode(P.conn)) {
		one_line(msg, sizeof(msg), PQerrorMessage(P.conn));
		snprintf(P.why, sizeof(P.why), "store: pipeline mode: %s",
		    msg);
		return -1;
	}
	return 0;
}

/*
 * Connect through --db (our defaults first: what it says wins; but
 * connect_timeout, after it, is ours), make the schema, prepare.  Logs
 * a change from what it was.  Keepalives and tcp_user_timeout end a
 * connection whose server went silent; connect_timeout is libpq's least
 * (2 s a host), as connecting blocks the store's only thread.
 */
static void
pg_connect(void)
{
	char		 tcp[24];
	const char	*kw[] = { "application_name", "keepalives",
			    "keepalives_idle", "keepalives_interval",
			    "keepalives_count", "tcp_user_timeout", "dbname",
			    "connect_timeout", NULL };
	const char	*val[] = { "pipepool", "1", "5", "2", "3", tcp,
			    P.o->db, CONNECT_TIMEOUT, NULL };
	char		 msg[400], was[sizeof(P.why)];

	snprintf(tcp, sizeof(tcp), "%ld", budget_ms(TCP_TIMEOUT_MIN));
	snprintf(was, sizeof(was), "%s", P.why);
	P.conn = PQconnectdbParams(kw, val, 1);
	if (P.conn == NULL || PQstatus(P.conn) != CONNECTION_OK) {
		one_line(msg, sizeof(msg), P.conn ? PQerrorMessage(P.conn) :
		    "out of memory");
		snprintf(P.why, sizeof(P.why), "store: cannot connect to "
		    "PostgreSQL: %s", msg);
		P.pub = "store: cannot connect to PostgreSQL";
		goto fail;
	}
	if (prepare() == -1) {
		P.pub = "store: cannot set up the PostgreSQL session";
		goto fail;
	}
	if (P.ever) {
		P.reconnects++;
		log_info("connected to PostgreSQL again (%s port %s)",
		    PQhost(P.conn), PQport(P.conn));
	} else
		log_info("connected to PostgreSQL (%s port %s)",
		    PQhost(P.conn), PQport(P.conn));
	P.ever = P.up = 1;
	P.ro = 0;
	P.why[0] = '\0';
	P.backoff_ms = BACKOFF_MIN_MS;
	return;
fail:
	PQfinish(P.conn);
	P.conn = NULL;
	if (strcmp(was, P.why) != 0)
		log_warnx("%s; answering 503, trying again", P.why);
	P.retry_ms = proc_now_ms() + P.backoff_ms;
	P.backoff_ms = P.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
	    P.backoff_ms * 2;
}

/* A setting the server reports (ParameterStatus) is on. */
static int
reported_on(const char *name)
{
	const char	*v = PQparameterStatus(P.conn, name);

	return v != NULL && strcmp(v, "on") == 0;
}

/*
 * The server refuses writes: a write failed so (25006), or it says so
 * (PostgreSQL 14 and later report both settings as they change).
 */
static int
read_only(void)
{
	return P.up && (P.ro || reported_on("default_transaction_read_only") ||
	    reported_on("in_hot_standby"));
}

/*
 * While read-only, connect again now and then: through a connection
 * string naming several hosts (target_session_attrs=read-write), a
 * primary elsewhere; else this one, once it is writable again.
 */
static void
recheck_ro(void)
{
	int64_t	now = proc_now_ms();

	if (P.ro_backoff_ms == 0) {
		log_warnx("the database is read-only; writes answered "
		    "503, connecting again for a writable one");
		P.ro_backoff_ms = RO_RECHECK_MS;
		P.ro_retry_ms = now;
	}
	if (now < P.ro_retry_ms)
		return;
	P.ro_retry_ms = now + P.ro_backoff_ms;
	P.ro_backoff_ms = P.ro_backoff_ms * 2 > RO_RECHECK_MAX ?
	    RO_RECHECK_MAX : P.ro_backoff_ms * 2;
	PQclear(P.res);
	P.res = NULL;
	PQfinish(P.conn);
	P.conn = NULL;
	P.up = 0;
	pg_connect();
}

/* An idle connection the server closed (it went down): notice it now,
 * not with the next request's failure. */
static void
check_idle(void)
{
	struct pollfd	pfd;

	pfd.fd = PQsocket(P.conn);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0 || poll(&pfd, 1, 0) != 1)
		return;
	if (!PQconsumeInput(P.conn) || PQstatus(P.conn) == CONNECTION_BAD)
		(void)lost("the server closed it");
}

static void
pg_retry(void)
{
	if (P.up)
		check_idle();
	if (read_only() && !P.in_txn)
		recheck_ro();
	else if (P.up)
		P.ro_backoff_ms = 0;
	if (!P.up && proc_now_ms() >= P.retry_ms)
		pg_connect();
}

static int
pg_check(const char *db, char *err, size_t errlen)
{
	PQconninfoOption	*opt;
	char			*msg = NULL, line[400], *q;

	if (pq_load(err, errlen) == -1)
		return -2;
	if ((opt = PQconninfoParse(db, &msg)) == NULL) {
		one_line(line, sizeof(line), msg ? msg : "out of memory");
		if ((q = strstr(line, db)) != NULL)	/* it may hold a password */
			snprintf(q, sizeof(line) - (size_t)(q - line), "...\"");
		snprintf(err, errlen, "not a PostgreSQL connection string: %s",
		    line);
		PQfreemem(msg);
		return -1;
	}
	PQconninfoFree(opt);
	return 0;
}

static void
pg_open(const struct options *o)
{
	char	err[512];

	if (pq_load(err, sizeof(err)) == -1)
		fatalx("store: %s", err);	/* pg_check() loaded it */
	memset(&P, 0, sizeof(P));
	P.o = o;
	P.pub = "store: not connected to PostgreSQL";
	P.backoff_ms = BACKOFF_MIN_MS;
	if ((P.w = calloc(KVDB_TXN_MAX, sizeof(*P.w))) == NULL)
		fatal("calloc");
	pg_connect();
}

static void
pg_close(void)
{
	PQclear(P.res);
	PQclear(P.reading);
	PQfinish(P.conn);
	free(P.w);
	free(P.bytes);
	memset(&P, 0, sizeof(P));
}

static void
pg_state(struct kvdb_state *ks)
{
	ks->pg = 1;
	ks->conn = !P.up ? KVDB_DOWN : read_only() ? KVDB_READONLY : KVDB_UP;
	ks->reconnects = P.reconnects;
}

static int
pg_refuse(const struct kvdb_req *rq, struct reply *rp)
{
	if (P.up && !(kvdb_is_write(rq) && read_only()))
		return 0;
	reply_text(rp, 503, KVDB_RETRY_AFTER, "%s", P.up ? KVDB_READONLY_WHY :
	    P.pub);
	return 1;
}

/* --- the pipeline ---------------------------------------------------- */

static int
push(enum ik kind, size_t w)
{
	if (P.nq >= ITEMS_MAX)
		fatalx("pipeline: more than %d results", ITEMS_MAX);
	P.q[P.nq].kind = kind;
	P.q[P.nq].w = w;
	return (int)P.nq++;
}

static int
send_st(enum st i, int n, const char *const *v, const int *len,
    const int *fmt, int rfmt, enum ik kind, size_t w)
{
	char	name[8];

	snprintf(name, sizeof(name), "s%d", (int)i);
	if (!PQsendQueryPrepared(P.conn, name, n, v, len, fmt, rfmt))
		return lost("sending a statement");
	return push(kind, w);
}

static int
send_cmd(const char *q)
{
	if (!PQsendQueryParams(P.conn, q, 0, NULL, NULL, NULL, NULL, 0))
		return lost("sending a statement");
	return push(I_CMD, 0);
}

static int
send_sync(void)
{
	if (!PQpipelineSync(P.conn))
		return lost("sending a sync");
	return push(I_SYNC, 0);
}

/* Have the server send what it has (for an answer before the sync). */
static int
send_flush(void)
{
	if (!PQsendFlushRequest(P.conn) || PQflush(P.conn) != 0)
		return lost("flushing");
	return 0;
}

static void
failed(const PGresult *r)
{
	const char	*st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	one_line(P.err, sizeof(P.err), PQresultErrorField(r,
	    PG_DIAG_MESSAGE_PRIMARY));
	snprintf(P.sqlstate, sizeof(P.sqlstate), "%s", st ? st : "");
	P.aborted = 1;
}

static int	write_result(struct wr *, PGresult *);

/* One result r for item it. */
static void
take(const struct item *it, PGresult *r)
{
	ExecStatusType	st = PQresultStatus(r);

	if (st == PGRES_PIPELINE_ABORTED) {
		P.aborted = 1;
	} else if (it->kind == I_CMD) {
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			failed(r);
	} else if (it->kind == I_WRITE) {
		if (write_result(&P.w[it->w], r) == -1)
			failed(r);
	} else if (it->kind == I_KEEP) {
		if (st != PGRES_TUPLES_OK)
			failed(r);
		PQclear(P.res);
		P.res = r;
		return;
	}
	PQclear(r);
}

/*
 * Take the results of the items sent, up to item upto (-1: all): each
 * query's result, then its NULL; a sync's alone.  -1 if the connection
 * is lost.
 */
static int
drain(int upto)
{
	const struct item	*it;
	PGresult		*r;

	while (P.nd < P.nq && (upto < 0 || P.nd <= (size_t)upto)) {
		it = &P.q[P.nd++];
		if ((r = PQgetResult(P.conn)) == NULL ||
		    PQstatus(P.conn) == CONNECTION_BAD) {
			PQclear(r);
			return lost("reading a result");
		}
		take(it, r);
		if (it->kind != I_SYNC && (r = PQgetResult(P.conn)) != NULL) {
			PQclear(r);
			return lost("an unexpected result");
		}
	}
	if (P.nd == P.nq)
		P.nd = P.nq = 0;
	return 0;
}

/* Send a statement and take its result (in P.res), with all before. */
static int
ask(enum st i, int n, const char *const *v, const int *len, const int *fmt,
    int rfmt)
{
	int	it;

	PQclear(P.res);
	P.res = NULL;
	if ((it = send_st(i, n, v, len, fmt, rfmt, I_KEEP, 0)) == -1)
		return -1;
	if ((P.in_txn ? send_flush() : send_sync()) < 0)
		return -1;
	return drain(P.in_txn ? it : -1);
}

/* --- reads ----------------------------------------------------------- */

/* A failed read's answer: 503 with the reason (it may work again). */
static void
read_failed(struct reply *rp, const char *what)
{
	reply_text(rp, 503, KVDB_RETRY_AFTER, "store: %s: %s", what, P.up ?
	    P.err : P.pub);
}

static void
pg_read_done(void)
{
	PQclear(P.reading);
	P.reading = NULL;
}

static void
read_list(const struct kvdb_req *rq, struct reply *rp)
{
	const char	*v[3];
	char		 lo[KVDB_KEY_MAX + 1], hi[KVDB_KEY_MAX + 1], lim[24];

	/* rq->prefix is plen bytes, not a string. */
	memcpy(lo, rq->prefix, rq->plen);
	lo[rq->plen] = '\0';
	memcpy(hi, lo, rq->plen + 1);
	if (rq->plen > 0)
		hi[rq->plen - 1]++;	/* key bytes are below 0x7f */
	snprintf(lim, sizeof(lim), "%" PRId64, rq->n);
	v[0] = lo;
	v[1] = hi;
	v[2] = lim;
	if (ask(ST_LIST, 3, v, NULL, NULL, 0) == -1 || P.res == NULL ||
	    PQresultStatus(P.res) != PGRES_TUPLES_OK ||
	    PQntuples(P.res) != 1) {
		read_failed(rp, "listing keys");
		return;
	}
	P.reading = P.res;
	P.res = NULL;
	reply_bytes(rp, 200, "text/plain; charset=utf-8",
	    PQgetvalue(P.reading, 0, 0), (size_t)PQgetlength(P.reading, 0, 0),
	    rq->head);
}

static void
read_key(const struct kvdb_req *rq, struct reply *rp)
{
	const char	*v[1] = { rq->key };
	int		 get = rq->op == KVDB_GET;

	if (ask(get ? ST_GET : ST_LEN, 1, v, NULL, NULL, get) == -1 ||
	    P.res == NULL || PQresultStatus(P.res) != PGRES_TUPLES_OK) {
		read_failed(rp, "reading a key");
		return;
	}
	P.reading = P.res;
	P.res = NULL;
	if (PQntuples(P.reading) == 0)
		kvdb_reply_value(rp, rq, 0, NULL, 0);
	else if (get)
		kvdb_reply_value(rp, rq, 1, PQgetvalue(P.reading, 0, 0),
		    (size_t)PQgetlength(P.reading, 0, 0));
	else
		kvdb_reply_value(rp, rq, 1, NULL, (size_t)strtoull(
		    PQgetvalue(P.reading, 0, 0), NULL, 10));
}

static void
pg_read(const struct kvdb_req *rq, struct reply *rp)
{
	pg_read_done();
	if (!P.up || (P.in_txn && (P.aborted || P.lost))) {
		/* An aborted transaction's reads run again after it. */
		reply_text(rp, 503, KVDB_RETRY_AFTER, "%s", P.up ?
		    "store: the transaction failed" : P.pub);
		return;
	}
	if (rq->op == KVDB_LIST)
		read_list(rq, rp);
	else
		read_key(rq, rp);
	if (!P.in_txn)
		P.aborted = 0;
	if (rq->op == KVDB_HEAD || rq->head) {
		rp->body = NULL;
		rp->body_len = 0;
	}
}

/* --- writes ---------------------------------------------------------- */

/* A copy of src into dst, its body in body (as dst's own). */
static void
keep(struct reply *dst, char *body, const struct reply *src)
{
	dst->r = src->r;
	if (src->head == src->headbuf) {
		memcpy(dst->headbuf, src->headbuf, src->head_len);
		dst->head = dst->headbuf;
	} else
		dst->head = src->head;
	dst->head_len = src->head_len;
	dst->body_len = src->body_len < BODY_MAX ? src->body_len : BODY_MAX;
	if (dst->body_len > 0)
		memcpy(body, src->body, dst->body_len);
	dst->body = dst->body_len > 0 ? body : NULL;
}

static void
answer_with(struct wr *x, const struct reply *rp)
{
	keep(&x->rp, x->body, rp);
	x->answered = 1;
}

/* A write's statement's result: its answer, or -1 if it failed. */
static int
write_result(struct wr *x, PGresult *r)
{
	struct reply	rp;
	ExecStatusType	st = PQresultStatus(r);
	int64_t		v;

	if (x->rq.op == KVDB_DELETE) {
		if (st != PGRES_COMMAND_OK)
			return -1;
		kvdb_reply_delete(&rp, strcmp(PQcmdTuples(r),
		    "0") != 0);
	} else if (st != PGRES_TUPLES_OK || PQntuples(r) != 1)
		return -1;
	else if (x->rq.op == KVDB_PUT)
		kvdb_reply_put(&rp, PQgetvalue(r, 0, 0)[0] == 't');
	else if (PQgetvalue(r, 0, 0)[0] == '1')
		kvdb_reply_nan(&rp);
	else if (parse_i64(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1),
	    &v) == -1)
		return -1;
	else if (PQgetvalue(r, 0, 0)[0] == '0')
		kvdb_reply_sum(&rp, v);
	else
		kvdb_reply_overflow(&rp, v, x->rq.n);
	answer_with(x, &rp);
	return 0;
}

/* Send write w's statement.  The item's index, or -1 (lost). */
static int
send_write(size_t w)
{
	struct wr	*x = &P.w[w];
	const char	*v[2];
	int		 len[2] = { 0, (int)x->rq.body_len }, fmt[2] = { 0, 1 };
	char		 num[24];

	v[0] = x->rq.key;
	if (x->rq.op == KVDB_PUT) {
		v[1] = x->rq.body_len > 0 ? P.bytes + x->boff : "";
		return send_st(ST_PUT, 2, v, len, fmt, 0, I_WRITE, w);
	}
	if (x->rq.op == KVDB_DELETE)
		return send_st(ST_DELETE, 1, v, NULL, NULL, 0, I_WRITE, w);
	snprintf(num, sizeof(num), "%" PRId64, x->rq.n);
	v[1] = num;
	return send_st(ST_INCR, 2, v, NULL, NULL, 0, I_WRITE, w);
}

/* Store write w's answer with its idempotency key (item, or -1). */
static int
send_idem_put(size_t w)
{
	struct wr	*x = &P.w[w];
	const char	*v[5];
	int		 len[5] = { 0 }, fmt[5] = { 0, 0, 0, 0, 1 }, rc;
	char		 what[KVDB_KEY_MAX + 64], at[24], status[8], *b;
	size_t		 n;

	if ((b = kvdb_reply_bytes(&x->rp, &n)) == NULL)
		fatal("malloc");
	kvdb_idem_what(&x->rq, what, sizeof(what));
	snprintf(at, sizeof(at), "%lld", (long long)time(NULL));
	snprintf(status, sizeof(status), "%u", (unsigned)x->rp.r.status);
	v[0] = P.bytes + x->ikoff;
	v[1] = at;
	v[2] = what;
	v[3] = status;
	v[4] = b;
	len[4] = (int)n;
	rc = send_st(ST_IDEM_PUT, 5, v, len, fmt, 0, I_CMD, 0);
	free(b);
	P.idem_new++;
	return rc;
}

/*
 * Write w with an idempotency key: look the key up (with everything
 * sent before); if it is there, its answer is the stored one; else run
 * the write, take its answer and store it with the key.  -1: lost.
 */
static int
idem_write(size_t w)
{
	struct wr	*x = &P.w[w];
	struct reply	 rp;
	const char	*v[1] = { P.bytes + x->ikoff };
	int		 it;

	if (ask(ST_IDEM_GET, 1, v, NULL, NULL, 1) == -1)
		return -1;
	if (P.aborted)
		return 0;
	if (PQntuples(P.res) == 1) {
		kvdb_reply_replay(&rp, &x->rq, PQgetvalue(P.res, 0, 1),
		    (unsigned)strtoul(PQgetvalue(P.res, 0, 0), NULL, 10),
		    PQgetvalue(P.res, 0, 2), (size_t)PQgetlength(P.res, 0,
		    2));
		answer_with(x, &rp);
		return 0;
	}
	if ((it = send_write(w)) == -1 || send_flush() == -1 ||
	    drain(it) == -1)
		return -1;
	if (P.aborted)
		return 0;
	return send_idem_put(w) == -1 ? -1 : 0;
}

/* Room for n more bytes in P.bytes. */
static void
bytes_reserve(size_t n)
{
	char	*nb;
	size_t	 cap;

	if (P.bytescap - P.nbytes >= n)
		return;
	cap = P.bytescap ? P.bytescap : 65536;
	while (cap - P.nbytes < n)
		cap *= 2;
	if ((nb = realloc(P.bytes, cap)) == NULL)
		fatal("realloc");	/* the store restarts; nothing held */
	P.bytes = nb;
	P.bytescap = cap;
}

/* Keep rq as write w, with copies of its body and key. */
static void
add_write(size_t w, const struct kvdb_req *rq)
{
	struct wr	*x = &P.w[w];

	x->rq = *rq;
	x->answered = 0;
	bytes_reserve(rq->body_len + rq->iklen + 1);
	x->boff = P.nbytes;
	if (rq->body_len > 0)
		memcpy(P.bytes + P.nbytes, rq->body, rq->body_len);
	P.nbytes += rq->body_len;
	x->ikoff = P.nbytes;
	if (rq->iklen > 0)
		memcpy(P.bytes + P.nbytes, rq->ikey, rq->iklen);
	P.bytes[P.nbytes + rq->iklen] = '\0';
	P.nbytes += rq->iklen + 1;
	x->rq.body = NULL;	/* the pipe's buffer moves on: P.bytes */
	x->rq.ikey = NULL;
}

/* Send write w (its key first, if it has one).  -1: lost. */
static int
run_write(size_t w)
{
	if (P.w[w].rq.iklen > 0)
		return idem_write(w);
	return send_write(w) == -1 ? -1 : 0;
}

/* --- transactions ---------------------------------------------------- */

/* A write's 503 when the connection is gone. */
static void
answer_lost(struct reply *rp, int sent)
{
	reply_text(rp, 503, KVDB_RETRY_AFTER, "%s; %s", P.pub, sent ?
	    "the outcome of this write is unknown" : "not written");
}

static void
txn_reset(void)
{
	P.in_txn = 1;
	P.aborted = P.lost = P.commit_sent = 0;
	P.idem_new = 0;
	P.err[0] = P.sqlstate[0] = '\0';
}

static int
pg_begin(char *why, size_t whylen)
{
	pg_read_done();
	P.nw = P.nbytes = 0;
	if (!P.up) {
		snprintf(why, whylen, "%s", P.pub);
		return -1;
	}
	txn_reset();
	if (send_cmd("BEGIN") == -1) {
		P.in_txn = 0;
		snprintf(why, whylen, "%s", P.pub);
		return -1;
	}
	return 0;
}

static int
pg_write(const struct kvdb_req *rq, struct reply *rp, char *why,
    size_t whylen)
{
	size_t	w = P.nw++;

	add_write(w, rq);
	if (!P.lost && !P.aborted)
		(void)run_write(w);
	if (P.lost) {
		P.in_txn = 0;
		answer_lost(rp, 0);
		snprintf(why, whylen, "%s; not written", P.pub);
		return -1;
	}
	return 1;
}

/* Send the idempotency keys' pruning, COMMIT and a sync; take them. */
static int
commit_sync(void)
{
	const char	*v[2];
	char		 age[24], count[24];

	if (P.idem_new > 0 && !P.aborted) {
		snprintf(age, sizeof(age), "%lld", (long long)time(NULL) -
		    KVDB_IDEM_KEEP_S);
		snprintf(count, sizeof(count), "%d", KVDB_IDEM_KEEP_N);
		v[0] = age;
		v[1] = count;
		if (send_st(ST_PRUNE, 2, v, NULL, NULL, 0, I_CMD, 0) == -1)
			return -1;
	}
	if (send_cmd("COMMIT") == -1)
		return -1;
	P.commit_sent = 1;
	if (send_sync() == -1)
		return -1;
	return drain(-1);
}

/*
 * After a failed statement: the transaction block is in error.  A sync
 * first: a failure seen through a flush (an idempotency key's look-up,
 * a read) leaves the pipeline aborted, and the server would skip a
 * ROLLBACK sent into it, leaving the block failed for the next BEGIN.
 * A sync after the transaction's own costs nothing (one round trip).
 */
static int
rollback_sync(void)
{
	if (send_sync() == -1 || send_cmd("ROLLBACK") == -1 ||
	    send_sync() == -1)
		return -1;
	return drain(-1);
}

/* A write failed alone: 503 if it may work again, else 500. */
static void
answer_failed(struct wr *x)
{
	struct reply	rp;
	/* Classes 40 (serialization, deadlock), 53 (resources), 57
	 * (operator intervention), a lock waited for too long: another
	 * try may work. */
	int		again = strncmp(P.sqlstate, "40", 2) == 0 ||
			    strcmp(P.sqlstate, LOCK_WAIT) == 0 ||
			    strcmp(P.sqlstate, READ_ONLY) == 0 ||
			    strncmp(P.sqlstate, "53", 2) == 0 ||
			    strncmp(P.sqlstate, "57", 2) == 0;

	reply_text(&rp, again ? 503 : 500, again ? KVDB_RETRY_AFTER : NULL,
	    "store: %s: %s", x->rq.op == KVDB_PUT ? "writing a key" :
	    x->rq.op == KVDB_DELETE ? "deleting a key" :
	    "incrementing a key", P.err);
	answer_with(x, &rp);
}

/* Write w again in a transaction of its own; its answer, whatever
 * happens. */
static void
run_alone(size_t w)
{
	struct reply	rp;

	P.w[w].answered = 0;
	if (!P.up) {
		answer_lost(&rp, 0);
		answer_with(&P.w[w], &rp);
		return;
	}
	txn_reset();
	if (send_cmd("BEGIN") == 0 && run_write(w) == 0)
		(void)commit_sync();
	if (P.lost) {
		answer_lost(&rp, P.commit_sent);
		answer_with(&P.w[w], &rp);
	} else if (P.aborted) {
		answer_failed(&P.w[w]);
		(void)rollback_sync();
	}
}

static int
pg_commit(char *why, size_t whylen)
{
	size_t	i;

	if (!P.lost && !P.aborted)
		(void)commit_sync();
	if (P.lost) {
		P.in_txn = 0;
		snprintf(why, whylen, "%s; %s", P.pub, P.commit_sent ?
		    "the outcome of these writes is unknown" : "not written");
		return -1;
	}
	if (!P.aborted) {
		P.in_txn = 0;
		return 0;
	}
	P.ro = strcmp(P.sqlstate, READ_ONLY) == 0;
	if (P.ro || strcmp(P.sqlstate, LOCK_WAIT) == 0) {
		/* Alone, each would fail so again (or wait as long): none
		 * is written. */
		log_warnx("a group of %zu writes failed (%s: %s); none is "
		    "written", P.nw, P.sqlstate, P.err);
		for (i = 0; i < P.nw; i++)
			answer_failed(&P.w[i]);
		(void)rollback_sync();
		P.in_txn = 0;
		return 1;
	}
	log_warnx("a group of %zu writes failed (%s: %s); each runs alone",
	    P.nw, P.sqlstate, P.err);
	(void)rollback_sync();
	for (i = 0; i < P.nw; i++)
		run_alone(i);
	P.in_txn = 0;
	return 1;
}

static void
pg_answer(size_t i, struct reply *rp)
{
	if (i >= P.nw || !P.w[i].answered) {
		reply_text(rp, 500, NULL, "store: a write without an answer");
		return;
	}
	keep(rp, P.w[i].body, &P.w[i].rp);
}

static void
pg_rollback(void)
{
	if (P.in_txn && P.up && !P.lost)
		(void)rollback_sync();
	P.in_txn = 0;
}

const struct kvdb_backend kvdb_pg = {
	pg_check, pg_open, pg_retry, pg_close, pg_state, pg_refuse, pg_read,
	pg_read_done, pg_begin, pg_write, pg_commit, pg_answer, pg_rollback
};
