/*
 * test_store.c: unit tests of the store without the master or the front.
 * The store process (worker/store.c): each case forks store_main() with
 * pipes on fds 3, 4 and 5 like the master does, sends MSG_REQUESTs and
 * reads the MSG_REPLYs: the /kv API and its errors, binary values,
 * pipelined batches (each id answered once, one failing request failing
 * alone), --batch 0, idempotency keys, durability across a restart, and
 * how the store ends (EOF, lifeline, a malformed message).  kvdb alone
 * (worker/kvdb.c), in this process: its routes without a database, and
 * transactions it is given (commit, rollback, a write failing alone).
 * Exits 1 if any check fails.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "kvdb.h"
#include "msg.h"
#include "options.h"
#include "proc.h"
#include "reply.h"
#include "store.h"
#include "worker.h"

#define TIMEOUT_MS	20000

static char	dir[64];
static char	dbpath[128];

/* A running store and our ends of its pipes. */
struct st {
	pid_t		pid;
	int		req, rep, life;
	struct msgbuf	in;		/* the reply pipe */
	uint64_t	next_id;
};

/* One reply, its body copied (and NUL-terminated) for the checks. */
struct res {
	uint64_t	 id;
	unsigned	 status;
	char		 head[MSG_REPLY_HEAD_MAX + 1];
	char		*body;
	size_t		 blen;
};

static int
store_start(struct st *s, const struct options *o)
{
	int	req[2], rep[2], life[2], keep[3];

	memset(s, 0, sizeof(*s));
	s->req = s->rep = s->life = -1;
	if (pipe2(req, O_CLOEXEC) == -1 || pipe2(rep, O_CLOEXEC) == -1 ||
	    pipe2(life, O_CLOEXEC) == -1) {
		perror("pipe2");
		return -1;
	}
	if ((s->pid = fork()) == -1) {
		perror("fork");
		return -1;
	}
	if (s->pid == 0) {
		keep[0] = req[0];
		keep[1] = rep[1];
		keep[2] = life[0];
		if (proc_child_signals() == -1 || proc_keep_fds(keep, 3) == -1)
			_exit(2);
		store_main(o, STORE_LIFE_FD);
	}
	close(req[0]);
	close(rep[1]);
	close(life[0]);
	s->req = req[1];
	s->rep = rep[0];
	s->life = life[1];
	s->next_id = 1;
	if (msgbuf_init(&s->in, 65536, 8u << 20) == -1) {
		perror("msgbuf_init");
		return -1;
	}
	return 0;
}

/* Close what is left open and reap the store; returns its wait status. */
static int
store_end(struct st *s)
{
	int	status = -1;

	if (s->req != -1)
		close(s->req);
	if (s->life != -1)
		close(s->life);
	while (s->pid > 0 && waitpid(s->pid, &status, 0) == -1 &&
	    errno == EINTR)
		;
	if (s->rep != -1)
		close(s->rep);
	msgbuf_free(&s->in);
	s->req = s->rep = s->life = -1;
	return status;
}

static int
exited(int status, int code)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static uint64_t
send_req(struct st *s, const char *method, const char *path,
    const char *query, const void *body, size_t blen)
{
	struct msg_request	r;
	struct iovec		iov[5];
	uint64_t		id = s->next_id++;

	msg_request_pack(&r, method, strlen(method), path, strlen(path),
	    query, strlen(query), blen, iov);
	iov[4].iov_base = (void *)(uintptr_t)body;
	iov[4].iov_len = blen;
	if (msg_write(s->req, MSG_REQUEST, id, iov, 5) == -1) {
		perror("writing a request");
		check_failures++;
	}
	return id;
}

static void
res_free(struct res *r)
{
	free(r->body);
	r->body = NULL;
}

/* Read one reply into r.  -1 on EOF, timeout or a malformed reply. */
static int
recv_res(struct st *s, struct res *r)
{
	struct msg_hdr		 h;
	struct msg_reply	 mr;
	const unsigned char	*p;
	const char		*end;
	size_t			 hl;

	memset(r, 0, sizeof(*r));
	do {	/* the store's state, for /status, comes in between */
		if (msg_read(s->rep, &s->in, &h, &p, TIMEOUT_MS) != 1)
			h.type = 0;
	} while (h.type == MSG_STORE_STATE);
	if (h.type != MSG_REPLY) {
		fprintf(stderr, "no reply from the store\n");
		return -1;
	}
	memcpy(&mr, p, sizeof(mr));
	r->id = h.id;
	r->status = mr.status;
	p += sizeof(mr);
	end = memmem(p, h.len - sizeof(mr), "\r\n\r\n", 4);
	if (end == NULL || (size_t)(end - (const char *)p) + 4 >
	    sizeof(r->head) - 1) {
		fprintf(stderr, "reply without a CGI head\n");
		return -1;
	}
	hl = (size_t)(end - (const char *)p) + 4;
	memcpy(r->head, p, hl);
	r->head[hl] = '\0';
	r->blen = h.len - sizeof(mr) - hl;
	if ((r->body = malloc(r->blen + 1)) == NULL)
		return -1;
	memcpy(r->body, p + hl, r->blen);
	r->body[r->blen] = '\0';
	return 0;
}

/* One request, one reply with the same id.  Returns the status, or 0. */
static unsigned
call(struct st *s, struct res *r, const char *method, const char *path,
    const char *query, const void *body, size_t blen)
{
	uint64_t	id = send_req(s, method, path, query, body, blen);

	if (recv_res(s, r) == -1) {
		check_failures++;
		return 0;
	}
	CHECK(r->id == id);
	return r->status;
}

/* call() for checks on the status and, unless NULL, the exact body. */
static int
expect(struct st *s, const char *method, const char *path,
    const char *query, const char *body, unsigned status, const char *want)
{
	struct res	r;
	unsigned	got;
	int		ok;

	got = call(s, &r, method, path, query, body, body ? strlen(body) : 0);
	ok = got == status && (want == NULL || (r.blen == strlen(want) &&
	    memcmp(r.body, want, r.blen) == 0));
	if (!ok)
		fprintf(stderr, "%s %s?%s: got %u '%s', want %u '%s'\n",
		    method, path, query, got, r.body ? r.body : "", status,
		    want ? want : "*");
	res_free(&r);
	return ok;
}

static void
opts(struct options *o)
{
	options_defaults(o);
	snprintf(o->db, sizeof(o->db), "%s", dbpath);
}

static void
rm_db_at(const char *path)
{
	char	p[192];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static void
rm_db(void)
{
	rm_db_at(dbpath);
}

/* send_req() with an idempotency key ahead of the body (store.h). */
static uint64_t
send_keyed(struct st *s, const char *method, const char *path,
    const char *query, const char *key, size_t klen, const char *body)
{
	struct msg_request	r;
	struct iovec		iov[6];
	uint64_t		id = s->next_id++;
	size_t			blen = strlen(body);

	msg_request_pack(&r, method, strlen(method), path, strlen(path),
	    query, strlen(query), strlen(key) + blen, iov);
	r.flags = (uint16_t)(STORE_F_KEY | klen);	/* klen may lie */
	iov[4].iov_base = (void *)(uintptr_t)key;
	iov[4].iov_len = strlen(key);
	iov[5].iov_base = (void *)(uintptr_t)body;
	iov[5].iov_len = blen;
	if (msg_write(s->req, MSG_REQUEST, id, iov, 6) == -1) {
		perror("writing a request");
		check_failures++;
	}
	return id;
}

/* A keyed request's reply: status and body, checked. */
static int
keyed(struct st *s, const char *method, const char *path, const char *query,
    const char *key, const char *body, unsigned status, const char *want,
    int replayed)
{
	struct res	r;
	int		ok;

	(void)send_keyed(s, method, path, query, key, strlen(key), body);
	if (recv_res(s, &r) == -1) {
		check_failures++;
		return 0;
	}
	ok = r.status == status && (want == NULL || strcmp(r.body, want) ==
	    0) && (strstr(r.head, "Idempotent-Replayed: true") != NULL) ==
	    replayed;
	if (!ok)
		fprintf(stderr, "%s %s?%s key %s: got %u '%s' (%s), want %u "
		    "'%s'\n", method, path, query, key, r.status, r.body,
		    r.head, status, want ? want : "*");
	res_free(&r);
	return ok;
}

/*
 * Idempotency keys: a key's first reply is given again and nothing is
 * applied twice, also within one batch; another request with the key is
 * 422; keys past their age or beyond the newest IDEM_KEEP_N are pruned
 * (rows planted before the start); a key longer than the body is a bad
 * message (exit 1).
 */
static void
test_idem(void)
{
	struct options	 o;
	struct st	 s;
	struct res	 r[3];
	char		 err[256];
	sqlite3		*db;
	int		 i, status;

	rm_db();
	opts(&o);
	CHECK(store_check_db(dbpath, err, sizeof(err)) == 0);
	CHECK(sqlite3_open(dbpath, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "INSERT INTO idem(id, key, at, req, status, "
	    "reply) VALUES (1, 'ancient', strftime('%s','now'), 'INCR n 1', "
	    "200, 'x'), (2, 'stale', 0, 'INCR n 1', 200, 'x'), (200000, "
	    "'recent', strftime('%s','now'), 'INCR n 1', 200, 'Status: 200 "
	    "OK\r\n\r\nold\n')", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	if (store_start(&s, &o) == -1) {
		check_failures++;
		return;
	}
	CHECK(keyed(&s, "POST", "/kv/n", "incr=1", "k1", "", 200, "1\n", 0));
	/* Three with one key, pipelined: one batch as a rule. */
	for (i = 0; i < 3; i++)
		(void)send_keyed(&s, "POST", "/kv/n", "incr=1", "k2", 2, "");
	for (i = 0; i < 3; i++) {
		CHECK(recv_res(&s, &r[i]) == 0);
		CHECK(r[i].status == 200 && r[i].body != NULL &&
		    strcmp(r[i].body, "2\n") == 0);
		res_free(&r[i]);
	}
	CHECK(keyed(&s, "POST", "/kv/n", "incr=1", "k1", "", 200, "1\n", 1));
	CHECK(expect(&s, "GET", "/kv/n", "", NULL, 200, "2"));
	CHECK(keyed(&s, "PUT", "/kv/n", "", "k1", "9", 422, NULL, 0));
	CHECK(keyed(&s, "PUT", "/kv/p", "", "k3", "v", 201, NULL, 0));
	CHECK(keyed(&s, "PUT", "/kv/p", "", "k3", "v", 201, NULL, 1));
	/* Planted: 'recent' stays, 'ancient' (too many) and 'stale' (too
	 * old) were pruned by the batches above. */
	CHECK(keyed(&s, "POST", "/kv/n", "incr=1", "recent", "", 200, "old\n",
	    1));
	CHECK(keyed(&s, "POST", "/kv/n", "incr=1", "ancient", "", 200, "3\n",
	    0));
	CHECK(keyed(&s, "POST", "/kv/n", "incr=1", "stale", "", 200, "4\n",
	    0));
	/* A key longer than the body: the front broke the protocol. */
	(void)send_keyed(&s, "POST", "/kv/n", "", "abc", 9, "");
	while (waitpid(s.pid, &status, 0) == -1 && errno == EINTR)
		;
	CHECK(exited(status, 1));
	s.pid = -1;
	(void)store_end(&s);
}

/* --- cases ------------------------------------------------------------ */

static void
test_check_db(void)
{
	static const char junk[] = "this is not an SQLite database, not "
	    "at all, not at all, not at all, not at all, not at all\n";
	char	err[512], p[192];
	int	fd;

	err[0] = '\0';
	CHECK(store_check_db(dbpath, err, sizeof(err)) == 0);
	CHECK(store_check_db(dbpath, err, sizeof(err)) == 0);	/* again */
	CHECK(store_check_db("/nonexistent-dir/sub/kv.db", err,
	    sizeof(err)) == -1);
	CHECK(strstr(err, "/nonexistent-dir/sub/kv.db") != NULL);
	CHECK(strchr(err, '\n') == NULL);
	snprintf(p, sizeof(p), "%s/junk.db", dir);
	if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600)) != -1) {
		CHECK(write(fd, junk, sizeof(junk) - 1) ==
		    (ssize_t)sizeof(junk) - 1);
		close(fd);
	}
	err[0] = '\0';
	CHECK(store_check_db(p, err, sizeof(err)) == -1);
	CHECK(err[0] != '\0');
	unlink(p);
}

/* PUT, GET, HEAD, DELETE; binary, empty and 1 MiB values. */
static void
api_values(struct st *s)
{
	struct res	r;
	char		*big;
	size_t		i, n = 1u << 20;
	static const char bin[] = "a\0b\0\xff\r\n\0";

	CHECK(expect(s, "GET", "/kv/k1", "", NULL, 404, NULL));
	CHECK(expect(s, "PUT", "/kv/k1", "", "v1", 201, NULL));
	CHECK(expect(s, "GET", "/kv/k1", "", NULL, 200, "v1"));
	CHECK(call(s, &r, "PUT", "/kv/k1", "", "v2", 2) == 204);
	CHECK(r.blen == 0 && strstr(r.head, "Status: 204") != NULL);
	res_free(&r);
	CHECK(expect(s, "GET", "/kv/k1", "", NULL, 200, "v2"));
	CHECK(call(s, &r, "HEAD", "/kv/k1", "", NULL, 0) == 200);
	CHECK(r.blen == 0 && strstr(r.head, "Content-Length: 2\r\n") != NULL);
	res_free(&r);
	CHECK(call(s, &r, "HEAD", "/kv/nope", "", NULL, 0) == 404);
	CHECK(r.blen == 0);
	res_free(&r);
	CHECK(expect(s, "DELETE", "/kv/k1", "", NULL, 204, ""));
	CHECK(expect(s, "DELETE", "/kv/k1", "", NULL, 404, NULL));
	CHECK(expect(s, "GET", "/kv/k1", "", NULL, 404, NULL));

	CHECK(call(s, &r, "PUT", "/kv/bin", "", bin, sizeof(bin) - 1) ==
	    201);
	res_free(&r);
	CHECK(call(s, &r, "GET", "/kv/bin", "", NULL, 0) == 200);
	CHECK(r.blen == sizeof(bin) - 1 && memcmp(r.body, bin, r.blen) == 0);
	CHECK(strstr(r.head, "application/octet-stream") != NULL);
	CHECK(strstr(r.head, "X-Worker-Pid: ") != NULL);
	res_free(&r);
	CHECK(expect(s, "PUT", "/kv/empty", "", "", 201, NULL));
	CHECK(expect(s, "GET", "/kv/empty", "", NULL, 200, ""));
	if ((big = malloc(n)) != NULL) {
		for (i = 0; i < n; i++)
			big[i] = (char)(i * 7 % 251);
		CHECK(call(s, &r, "PUT", "/kv/big", "", big, n) == 201);
		res_free(&r);
		CHECK(call(s, &r, "GET", "/kv/big", "", NULL, 0) == 200);
		CHECK(r.blen == n && memcmp(r.body, big, n) == 0);
		res_free(&r);
		free(big);
	}
}

/* incr: amounts, overflow, values that are not integers. */
static void
api_incr(struct st *s)
{
	CHECK(expect(s, "POST", "/kv/n", "", NULL, 200, "1\n"));
	CHECK(expect(s, "POST", "/kv/n", "incr=41", NULL, 200, "42\n"));
	CHECK(expect(s, "POST", "/kv/n", "x=1&incr=-50", NULL, 200,
	    "-8\n"));
	CHECK(expect(s, "GET", "/kv/n", "", NULL, 200, "-8"));
	CHECK(expect(s, "POST", "/kv/n", "incr=", NULL, 400, NULL));
	CHECK(expect(s, "POST", "/kv/n", "incr=1.5", NULL, 400, NULL));
	CHECK(expect(s, "POST", "/kv/n", "incr=+", NULL, 400, NULL));
	CHECK(expect(s, "POST", "/kv/n", "incr=99999999999999999999", NULL,
	    400, NULL));
	CHECK(expect(s, "PUT", "/kv/max", "", "9223372036854775806", 201,
	    NULL));
	CHECK(expect(s, "POST", "/kv/max", "", NULL, 200,
	    "9223372036854775807\n"));
	CHECK(expect(s, "POST", "/kv/max", "", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/max", "", NULL, 200,
	    "9223372036854775807"));
	CHECK(expect(s, "PUT", "/kv/min", "", "-9223372036854775807", 201,
	    NULL));
	CHECK(expect(s, "POST", "/kv/min", "incr=-1", NULL, 200,
	    "-9223372036854775808\n"));
	CHECK(expect(s, "POST", "/kv/min", "incr=-1", NULL, 400, NULL));
	CHECK(expect(s, "PUT", "/kv/txt", "", "12a", 201, NULL));
	CHECK(expect(s, "POST", "/kv/txt", "incr=1", NULL, 409, NULL));
	CHECK(expect(s, "POST", "/kv/empty", "incr=1", NULL, 409, NULL));
	CHECK(expect(s, "PUT", "/kv/sp", "", " 1", 201, NULL));
	CHECK(expect(s, "POST", "/kv/sp", "", NULL, 409, NULL));
}

/* Keys, paths and methods (leaves key A.b_c~d-9 for api_list()). */
static void
api_keys(struct st *s)
{
	struct res	r;
	char		key[300], path[400];

	CHECK(expect(s, "PUT", "/kv/A.b_c~d-9", "", "x", 201, NULL));
	CHECK(expect(s, "GET", "/kv/%41.b_c~d-9", "", NULL, 200, "x"));
	CHECK(expect(s, "GET", "/kv/a%2Fb", "", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/a/b", "", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/a%zz", "", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/a%4", "", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/a b", "", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/a+b", "", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/%00", "", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/\xc3\xa9", "", NULL, 400, NULL));
	memset(key, 'k', sizeof(key));
	snprintf(path, sizeof(path), "/kv/%.250s", key);
	CHECK(expect(s, "PUT", path, "", "long", 201, NULL));
	CHECK(expect(s, "GET", path, "", NULL, 200, "long"));
	snprintf(path, sizeof(path), "/kv/%.251s", key);
	CHECK(expect(s, "PUT", path, "", "long", 400, NULL));
	CHECK(expect(s, "GET", "/kvx", "", NULL, 404, NULL));
	CHECK(expect(s, "GET", "/debug/store-crash", "", NULL, 404, NULL));

	/* Methods. */
	CHECK(call(s, &r, "PATCH", "/kv/k", "", NULL, 0) == 405);
	CHECK(strstr(r.head, "Allow: GET, HEAD, PUT, DELETE, POST\r\n") !=
	    NULL);
	res_free(&r);
	CHECK(call(s, &r, "PUT", "/kv/", "", NULL, 0) == 405);
	CHECK(strstr(r.head, "Allow: GET, HEAD\r\n") != NULL);
	res_free(&r);
	CHECK(expect(s, "POST", "/kv", "", NULL, 405, NULL));
}

/* The listing, sorted bytewise. */
static void
api_list(struct st *s)
{
	struct res	r;

	CHECK(expect(s, "PUT", "/kv/p-b", "", "1", 201, NULL));
	CHECK(expect(s, "PUT", "/kv/p-a", "", "1", 201, NULL));
	CHECK(expect(s, "PUT", "/kv/p-B", "", "1", 201, NULL));
	CHECK(expect(s, "PUT", "/kv/p~", "", "1", 201, NULL));
	CHECK(expect(s, "PUT", "/kv/p", "", "1", 201, NULL));
	CHECK(expect(s, "PUT", "/kv/q", "", "1", 201, NULL));
	CHECK(expect(s, "GET", "/kv/", "prefix=p", NULL, 200,
	    "p\np-B\np-a\np-b\np~\n"));
	CHECK(expect(s, "GET", "/kv", "prefix=p-", NULL, 200,
	    "p-B\np-a\np-b\n"));
	CHECK(expect(s, "GET", "/kv", "prefix=p%7E", NULL, 200, "p~\n"));
	CHECK(expect(s, "GET", "/kv/", "prefix=p&limit=2", NULL, 200,
	    "p\np-B\n"));
	CHECK(expect(s, "GET", "/kv/", "prefix=zz", NULL, 200, ""));
	CHECK(expect(s, "GET", "/kv/", "prefix=a%2Fb", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/", "limit=0", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/", "limit=10001", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/", "limit=x", NULL, 400, NULL));
	CHECK(expect(s, "GET", "/kv/", "limit=1", NULL, 200, "A.b_c~d-9\n"));
	CHECK(call(s, &r, "HEAD", "/kv/", "prefix=q", NULL, 0) == 200);
	CHECK(r.blen == 0 && strstr(r.head, "Content-Length: 2\r\n") != NULL);
	res_free(&r);
}

/* The /kv API on one store, case by case. */
static void
test_api(void)
{
	struct options	o;
	struct st	s;

	rm_db();
	opts(&o);
	if (store_start(&s, &o) == -1) {
		check_failures++;
		return;
	}
	api_values(&s);
	api_incr(&s);
	api_keys(&s);
	api_list(&s);
	CHECK(exited(store_end(&s), 0));
}

/* A database at path whose kv table refuses key "poison" (a trigger). */
static void
plant_poison(const char *path)
{
	char	 err[256];
	sqlite3	*db;

	CHECK(store_check_db(path, err, sizeof(err)) == 0);
	if (sqlite3_open(path, &db) == SQLITE_OK) {
		CHECK(sqlite3_exec(db, "CREATE TRIGGER poison BEFORE INSERT ON "
		    "kv WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, "
		    "'poisoned'); END", NULL, NULL, NULL) == SQLITE_OK);
	}
	sqlite3_close(db);
}

/* n requests back to back: PUT /kv/pNNNN vN, every third a GET of it
 * instead, the middle one a PUT of "poison".  Returns the poison's id. */
static uint64_t
pipeline_send(struct st *s, int n)
{
	char		path[64], val[32];
	uint64_t	poison_id = 0;
	int		i;

	for (i = 0; i < n; i++) {
		if (i == n / 2) {
			poison_id = send_req(s, "PUT", "/kv/poison", "", "x", 1);
			continue;
		}
		snprintf(path, sizeof(path), "/kv/p%04d", i);
		snprintf(val, sizeof(val), "v%d", i);
		if (i % 3 == 2)
			send_req(s, "GET", path, "", NULL, 0);
		else
			send_req(s, "PUT", path, "", val, strlen(val));
	}
	return poison_id;
}

/* Their n replies: each id once, the poison a 500, the rest as sent. */
static void
pipeline_recv(struct st *s, uint64_t first, uint64_t poison_id, int n)
{
	struct res	 r;
	unsigned char	*seen;
	int		 i, status_ok = 1, ids_ok = 1;

	if ((seen = calloc((size_t)n + 2, 1)) == NULL) {
		check_failures++;
		return;
	}
	for (i = 0; i < n; i++) {
		if (recv_res(s, &r) == -1) {
			check_failures++;
			break;
		}
		if (r.id < first || r.id >= first + (uint64_t)n ||
		    seen[r.id - first]++)
			ids_ok = 0;
		else if (r.id == poison_id)
			CHECK(r.status == 500 && strstr(r.body, "store:") !=
			    NULL);
		else if ((r.id - first) % 3 == 2)
			status_ok &= r.status == 404 || r.status == 200;
		else
			status_ok &= r.status == 201;
		res_free(&r);
	}
	CHECK(ids_ok);
	CHECK(status_ok);
	free(seen);
}

/* A new store on the same file sees everything that was answered. */
static void
pipeline_reopen(const struct options *o, int n)
{
	struct st	s;
	char		path[64], want[64];
	int		i;

	if (store_start(&s, o) == -1) {
		check_failures++;
		return;
	}
	for (i = 0; i < n; i += 7) {
		if (i % 3 == 2 || i == n / 2)
			continue;
		snprintf(path, sizeof(path), "/kv/p%04d", i);
		snprintf(want, sizeof(want), "v%d", i);
		CHECK(expect(&s, "GET", path, "", NULL, 200, want));
	}
	CHECK(expect(&s, "GET", "/kv/poison", "", NULL, 404, NULL));
	CHECK(expect(&s, "GET", "/kv/", "prefix=p&limit=10000", NULL, 200,
	    NULL));
	CHECK(exited(store_end(&s), 0));
}

/*
 * Many requests back to back: every id answered exactly once, a request
 * that fails in SQL (a trigger refuses key "poison") fails alone, the
 * rest commit, and it all survives a restart.
 */
static void
test_pipeline(void)
{
	struct options	o;
	struct st	s;
	uint64_t	first, poison_id;
	int		n = 600;

	rm_db();
	plant_poison(dbpath);
	opts(&o);
	if (store_start(&s, &o) == -1) {
		check_failures++;
		return;
	}
	first = s.next_id;
	poison_id = pipeline_send(&s, n);
	pipeline_recv(&s, first, poison_id, n);
	CHECK(exited(store_end(&s), 0));
	pipeline_reopen(&o, n);
}

/* Read-your-writes inside one batch, and --batch 0. */
static void
test_batch(int batch)
{
	struct options	o;
	struct st	s;
	struct res	r;
	int		i, n = 200, ok = 1, okget = 1;
	uint64_t	get_id;

	rm_db();
	opts(&o);
	o.batch = batch;
	if (store_start(&s, &o) == -1) {
		check_failures++;
		return;
	}
	for (i = 0; i < n; i++)
		send_req(&s, "POST", "/kv/c", "incr=1", NULL, 0);
	get_id = send_req(&s, "GET", "/kv/c", "", NULL, 0);
	for (i = 0; i <= n; i++) {
		if (recv_res(&s, &r) == -1) {
			check_failures++;
			break;
		}
		if (r.id == get_id)
			okget = r.status == 200 && strcmp(r.body, "200") == 0;
		else
			ok &= r.status == 200 && atoi(r.body) == (int)r.id;
		res_free(&r);
	}
	CHECK(ok);
	CHECK(okget);
	CHECK(expect(&s, "GET", "/kv/c", "", NULL, 200, "200"));
	CHECK(exited(store_end(&s), 0));
}

/* The store ends when the master's lifeline closes, and on garbage. */
static void
test_endings(void)
{
	struct options	o;
	struct st	s;
	int		status;

	rm_db();
	opts(&o);
	if (store_start(&s, &o) == -1) {
		check_failures++;
		return;
	}
	CHECK(expect(&s, "PUT", "/kv/x", "", "1", 201, NULL));
	close(s.life);
	s.life = -1;
	while (waitpid(s.pid, &status, 0) == -1 && errno == EINTR)
		;
	CHECK(exited(status, 0));
	s.pid = -1;
	close(s.req);
	s.req = -1;
	(void)store_end(&s);

	if (store_start(&s, &o) == -1) {
		check_failures++;
		return;
	}
	CHECK(expect(&s, "GET", "/kv/x", "", NULL, 200, "1"));
	CHECK(write(s.req, "\x07\0\0\0garbage-garbage-garbage", 27) == 27);
	/* Wait before store_end() closes the lifeline: that ends it too. */
	while (waitpid(s.pid, &status, 0) == -1 && errno == EINTR)
		;
	CHECK(exited(status, 1));
	s.pid = -1;
	(void)store_end(&s);
}

/* --- kvdb alone -------------------------------------------------------- */

/* A request as msg_request_parse() would see it, routed by kvdb. */
static int
kv_route(struct kvdb_req *rq, struct reply *rp, const char *method,
    const char *path, const char *query, const char *body, const char *ikey)
{
	struct msg_request_view	v;

	memset(&v, 0, sizeof(v));
	v.method = method;
	v.method_len = strlen(method);
	v.path = path;
	v.path_len = strlen(path);
	v.query = query;
	v.query_len = strlen(query);
	v.body = body;
	v.body_len = strlen(body);
	rq->ikey = ikey;
	rq->iklen = ikey ? strlen(ikey) : 0;
	return kvdb_route(&v, rq, rp);
}

/* rp is status with, unless NULL, want in its body or its head. */
static int
kv_is(const struct reply *rp, unsigned status, const char *want)
{
	int	ok;

	ok = rp->r.status == status && (want == NULL || (rp->body_len > 0 &&
	    memmem(rp->body, rp->body_len, want, strlen(want)) != NULL) ||
	    memmem(rp->head, rp->head_len, want, strlen(want)) != NULL);
	if (!ok)
		fprintf(stderr, "kvdb: got %u '%.*s', want %u '%s'\n",
		    rp->r.status, (int)rp->body_len, rp->body ? rp->body : "",
		    status, want ? want : "*");
	return ok;
}

/* A read through kvdb, checked as kv_is(). */
static int
kv_read(const char *method, const char *path, const char *query,
    unsigned status, const char *want)
{
	struct kvdb_req	rq;
	struct reply	rp;
	int		ok;

	if (kv_route(&rq, &rp, method, path, query, "", NULL) != 1 ||
	    kvdb_is_write(&rq) || kvdb_refuse(&rq, &rp))
		return 0;
	kvdb_read(&rq, &rp);
	ok = kv_is(&rp, status, want);
	kvdb_read_done();
	return ok;
}

/* A write through kvdb in the open transaction: kvdb_write() returns
 * 0 and its answer is as kv_is(). */
static int
kv_write(const char *method, const char *path, const char *query,
    const char *body, const char *ikey, unsigned status, const char *want)
{
	struct kvdb_req	rq;
	struct reply	rp;
	char		why[256];

	if (kv_route(&rq, &rp, method, path, query, body, ikey) != 1 ||
	    !kvdb_is_write(&rq) || kvdb_refuse(&rq, &rp))
		return 0;
	return kvdb_write(&rq, &rp, why, sizeof(why)) == 0 &&
	    kv_is(&rp, status, want);
}

/* kvdb_route() alone: answers that need no database, and what it makes
 * of the rest. */
static void
test_kvdb_route(void)
{
	struct kvdb_req	rq;
	struct reply	rp;

	CHECK(kv_route(&rq, &rp, "GET", "/kv/a%2Fb", "", "", NULL) == 0);
	CHECK(kv_is(&rp, 400, NULL));
	CHECK(kv_route(&rq, &rp, "GET", "/kvx", "", "", NULL) == 0);
	CHECK(kv_is(&rp, 404, NULL));
	/* The store's own debug route is not kvdb's. */
	CHECK(kv_route(&rq, &rp, "GET", "/debug/store-crash", "", "",
	    NULL) == 0);
	CHECK(kv_is(&rp, 404, "the store has no such path\n"));
	CHECK(kv_route(&rq, &rp, "PATCH", "/kv/k", "", "", NULL) == 0);
	CHECK(kv_is(&rp, 405, "Allow: GET, HEAD, PUT, DELETE, POST\r\n"));
	CHECK(kv_route(&rq, &rp, "POST", "/kv/n", "incr=1.5", "", NULL) ==
	    0);
	CHECK(kv_is(&rp, 400, NULL));
	CHECK(kv_route(&rq, &rp, "GET", "/kv/", "limit=0", "", NULL) == 0);
	CHECK(kv_is(&rp, 400, NULL));

	CHECK(kv_route(&rq, &rp, "GET", "/kv/", "prefix=p&limit=5", "",
	    NULL) == 1);
	CHECK(rq.op == KVDB_LIST && rq.n == 5 && rq.plen == 1 && !rq.head &&
	    !kvdb_is_write(&rq));
	CHECK(kv_route(&rq, &rp, "HEAD", "/kv", "", "", NULL) == 1);
	CHECK(rq.op == KVDB_LIST && rq.head && rq.n == 1000);
	CHECK(kv_route(&rq, &rp, "POST", "/kv/n", "incr=-3", "", NULL) == 1);
	CHECK(rq.op == KVDB_INCR && rq.n == -3 && kvdb_is_write(&rq));
	CHECK(kv_route(&rq, &rp, "PUT", "/kv/%41", "", "v", "k") == 1);
	CHECK(rq.op == KVDB_PUT && rq.klen == 1 && strcmp(rq.key, "A") ==
	    0 && rq.body_len == 1 && rq.iklen == 1);
}

/*
 * kvdb over a database: refused while it cannot be opened; a rolled
 * back transaction leaves nothing, a committed one stays (also across
 * a reopen); reads inside a transaction see its writes; a write that
 * fails in SQL (a trigger refuses key "poison") fails alone; an
 * idempotency key replays its first answer.
 */
static void
test_kvdb(void)
{
	struct options	o;
	struct kvdb_req	rq;
	struct reply	rp;
	char		path[192], why[256];

	snprintf(path, sizeof(path), "%s/kvdb.db", dir);
	rm_db_at(path);
	options_defaults(&o);
	reply_init();
	snprintf(o.db, sizeof(o.db), "/nonexistent-dir/sub/kv.db");
	kvdb_open(&o);
	CHECK(kv_route(&rq, &rp, "GET", "/kv/k", "", "", NULL) == 1);
	CHECK(kvdb_refuse(&rq, &rp) == 1);
	CHECK(kv_is(&rp, 503, NULL) && strstr(rp.body, "cannot use "
	    "database") != NULL);
	kvdb_close();

	CHECK(kvdb_check(path, why, sizeof(why)) == 0);
	plant_poison(path);
	snprintf(o.db, sizeof(o.db), "%s", path);
	kvdb_open(&o);
	CHECK(kvdb_begin(why, sizeof(why)) == 0);
	CHECK(kv_write("PUT", "/kv/k", "", "v1", NULL, 201, "created\n"));
	CHECK(kv_read("GET", "/kv/k", "", 200, "v1"));
	kvdb_rollback();
	CHECK(kv_read("GET", "/kv/k", "", 404, NULL));

	CHECK(kvdb_begin(why, sizeof(why)) == 0);
	CHECK(kv_write("PUT", "/kv/k", "", "v2", NULL, 201, NULL));
	CHECK(kv_write("PUT", "/kv/k", "", "v3", NULL, 204, NULL));
	CHECK(kv_write("PUT", "/kv/poison", "", "x", NULL, 500,
	    "store: writing a key: "));
	CHECK(kv_write("POST", "/kv/n", "incr=5", "", "i1", 200, "5\n"));
	CHECK(kv_write("POST", "/kv/n", "incr=5", "", "i1", 200,
	    "Idempotent-Replayed: true\r\n"));
	CHECK(kv_write("PUT", "/kv/n", "", "1", "i1", 422, NULL));
	CHECK(kv_write("DELETE", "/kv/nope", "", "", NULL, 404, NULL));
	CHECK(kvdb_commit(why, sizeof(why)) == 0);
	kvdb_close();

	kvdb_open(&o);
	CHECK(kv_read("GET", "/kv/k", "", 200, "v3"));
	CHECK(kv_read("HEAD", "/kv/k", "", 200, "Content-Length: 2\r\n"));
	CHECK(kv_read("GET", "/kv/n", "", 200, "5"));
	CHECK(kv_read("GET", "/kv/poison", "", 404, NULL));
	CHECK(kv_read("GET", "/kv/", "", 200, "k\nn\n"));
	kvdb_close();
	rm_db_at(path);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/pp-unit-store.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/kv.db", dir);
	test_check_db();
	test_api();
	test_pipeline();
	test_batch(1);
	test_batch(0);
	test_endings();
	test_idem();
	/* In this process, after the last fork: kvdb's connection must not
	 * be inherited by a store. */
	test_kvdb_route();
	test_kvdb();
	rm_db();
	if (rmdir(dir) == -1)
		perror(dir);
	sqlite3_shutdown();
	return check_done("test_store");
}
