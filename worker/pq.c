/*
 * pq.c: libpq, loaded only by a process that talks to PostgreSQL.
 *
 * libpq brings twenty libraries with it (OpenSSL, GnuTLS, Kerberos,
 * LDAP, SASL, p11-kit...) whose constructors run and whose pages are
 * touched at start-up.  Linked into pipepool, every process of the tree
 * mapped them: 5 MiB of PSS at rest (make bench: 3.1 MiB for master,
 * front, four workers and the store without libpq, 8.2 MiB with it),
 * though only a store with --db set to a connection string uses them.
 * So pipepool is not linked with -lpq: pq_load() dlopens libpq.so.5
 * (Debian's libpq5, the soname libpq has kept since PostgreSQL 8.0) and
 * the PQ* functions kvpg.c calls are defined here, each forwarding to
 * libpq's.  libpq-fe.h is included, so the compiler checks every
 * definition against libpq's own prototype.  With a PostgreSQL --db the
 * master loads it for its start-up check of the string (kvdb_check), and
 * the processes it forks inherit the mapping; without, none loads it.
 *
 * A new PQ* call in kvpg.c is a link error until it is listed in
 * PQ_CALLS (or PQ_VOID_CALLS, for those returning void).
 */
#include <dlfcn.h>
#include <libpq-fe.h>
#include <stdio.h>

#include "pq.h"

#define PQ_SONAME	"libpq.so.5"

/* X(return type, name, parameters, arguments) */
#define PQ_CALLS(X)							\
	X(char *, PQcmdTuples, (PGresult *r), (r))			\
	X(PGconn *, PQconnectdbParams, (const char *const *k,		\
	    const char *const *v, int e), (k, v, e))			\
	X(PQconninfoOption *, PQconninfoParse, (const char *s,		\
	    char **e), (s, e))						\
	X(int, PQconsumeInput, (PGconn *c), (c))			\
	X(int, PQenterPipelineMode, (PGconn *c), (c))			\
	X(char *, PQerrorMessage, (const PGconn *c), (c))		\
	X(PGresult *, PQexec, (PGconn *c, const char *q), (c, q))	\
	X(int, PQflush, (PGconn *c), (c))				\
	X(PGresult *, PQgetResult, (PGconn *c), (c))			\
	X(int, PQgetlength, (const PGresult *r, int t, int f), (r, t, f)) \
	X(char *, PQgetvalue, (const PGresult *r, int t, int f), (r, t, f)) \
	X(char *, PQhost, (const PGconn *c), (c))			\
	X(int, PQntuples, (const PGresult *r), (r))			\
	X(const char *, PQparameterStatus, (const PGconn *c,		\
	    const char *p), (c, p))					\
	X(int, PQpipelineSync, (PGconn *c), (c))			\
	X(char *, PQport, (const PGconn *c), (c))			\
	X(PGresult *, PQprepare, (PGconn *c, const char *n,		\
	    const char *q, int np, const Oid *t), (c, n, q, np, t))	\
	X(char *, PQresultErrorField, (const PGresult *r, int f), (r, f)) \
	X(char *, PQresultErrorMessage, (const PGresult *r), (r))	\
	X(ExecStatusType, PQresultStatus, (const PGresult *r), (r))	\
	X(int, PQsendFlushRequest, (PGconn *c), (c))			\
	X(int, PQsendQueryParams, (PGconn *c, const char *q, int np,	\
	    const Oid *t, const char *const *v, const int *l,		\
	    const int *f, int rf), (c, q, np, t, v, l, f, rf))		\
	X(int, PQsendQueryPrepared, (PGconn *c, const char *n, int np,	\
	    const char *const *v, const int *l, const int *f, int rf),	\
	    (c, n, np, v, l, f, rf))					\
	X(int, PQserverVersion, (const PGconn *c), (c))			\
	X(int, PQsocket, (const PGconn *c), (c))			\
	X(ConnStatusType, PQstatus, (const PGconn *c), (c))

#define PQ_VOID_CALLS(X)						\
	X(void, PQclear, (PGresult *r), (r))				\
	X(void, PQconninfoFree, (PQconninfoOption *o), (o))		\
	X(void, PQfinish, (PGconn *c), (c))				\
	X(void, PQfreemem, (void *p), (p))

#define POINTER(ret, name, params, args)	static ret (*p_##name) params;
#define FORWARD(ret, name, params, args)				\
	ret name params { return p_##name args; }
#define FORWARD_VOID(ret, name, params, args)				\
	ret name params { p_##name args; }
#define RESOLVE(ret, name, params, args)				\
	if ((*(void **)&p_##name = dlsym(h, #name)) == NULL)		\
		goto fail;

PQ_CALLS(POINTER)
PQ_VOID_CALLS(POINTER)
PQ_CALLS(FORWARD)
PQ_VOID_CALLS(FORWARD_VOID)

static void	*handle;

int
pq_load(char *err, size_t errlen)
{
	const char	*why;
	void		*h;

	if (handle != NULL)
		return 0;
	if ((h = dlopen(PQ_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL)
		goto fail;
	PQ_CALLS(RESOLVE)
	PQ_VOID_CALLS(RESOLVE)
	handle = h;
	return 0;
fail:
	why = dlerror();
	snprintf(err, errlen, "cannot load %s (Debian's libpq5), which "
	    "--db postgresql:// needs: %s", PQ_SONAME, why ? why : "?");
	if (h != NULL)
		(void)dlclose(h);
	return -1;
}
