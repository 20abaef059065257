/*
 * incident.h: the last things that went wrong, for /status and /metrics.
 *
 * Two rings of INCIDENTS_MAX entries live in the shared counters (struct
 * stats): the master's (a worker that died, a back-off, a reload) and the
 * front's (what a request's client got from a fault: a worker that died
 * holding it, a timeout, a malformed answer, an overload burst).  Each
 * ring has one writer process (the front's threads take a lock of their
 * own); workers map them read-only.  An entry is a seqlock: its seq is
 * odd while it is written, and a reader keeps a copy only if seq was even
 * and unchanged across the copy, so a page never shows a torn entry.
 */
#ifndef PP_INCIDENT_H
#define PP_INCIDENT_H

#include <stdatomic.h>
#include <stdint.h>

#define INCIDENTS_MAX		16	/* entries per ring */
#define INCIDENT_TEXT_MAX	128	/* the request line, or what happened */

enum incident_kind {
	INC_NONE,
	/* The front's: a request's client saw it. */
	INC_CRASH,	/* its worker died holding it: 502 */
	INC_TIMEOUT,	/* past --timeout: 504, the worker killed */
	INC_MALFORMED,	/* its worker broke the rules: 502, killed */
	INC_OVERLOAD,	/* the first 503 of a burst (--queue, shedding) */
	/* The master's. */
	INC_EXIT,	/* a worker ended that nobody asked to */
	INC_BACKOFF,	/* a worker that keeps dying at start waits */
	INC_RELOAD,	/* SIGHUP: done, or refused */
	INC_KINDS
};

struct incident {
	_Atomic uint32_t seq;		/* odd while written */
	uint32_t	 kind;		/* enum incident_kind */
	int32_t		 pid;		/* the worker's, 0: none */
	uint32_t	 status;	/* what the client got, 0: no client */
	int64_t		 unix_ms;
	char		 text[INCIDENT_TEXT_MAX];	/* NUL-terminated */
};

struct incident_ring {
	_Atomic uint64_t	n;	/* entries ever written */
	struct incident		e[INCIDENTS_MAX];
};

/* The kind's name in /status and /metrics ("crash"...); "?" outside. */
const char	*incident_name(uint32_t kind);

/*
 * Write an incident into ring r (the caller is its only writer at the
 * time) and count it in counts[kind].  text: the request line ("METHOD
 * PATH?QUERY") for the front's kinds, what happened for the master's;
 * cut to fit.
 */
void	incident_add(struct incident_ring *r, _Atomic uint64_t *counts,
	    enum incident_kind kind, int32_t pid, unsigned status,
	    const char *text);

/*
 * Copy ring r's entries, newest first, into out (room max): only whole
 * ones (see above), each bounded (kind checked, text terminated).  How
 * many.
 */
unsigned	incident_read(const struct incident_ring *r,
		    struct incident *out, unsigned max);

#endif
