/*
 * pq.h: libpq, loaded at run time by the process that talks to
 * PostgreSQL (pq.c).  Until pq_load() has succeeded, no PQ* call may be
 * made: each one goes through a pointer pq_load() sets.
 */
#ifndef PP_PQ_H
#define PP_PQ_H
#include <stddef.h>

/* Load libpq (once; later calls return 0 at once).  -1 with a one-line
 * reason (dlerror's) in err. */
int	pq_load(char *err, size_t errlen);

#endif
