/*
 * hostile.h: the debug routes that play a hostile worker (only with
 * --debug-routes), for the tests of the trust boundary: the front and the
 * master must survive whatever a worker writes where it can.  They are
 * the worker's, not an application's (app.h): they need what no
 * application is given, the request's mailbox, the worker's channel to
 * the front and the shared counters, or break the worker's own protocol
 * (/debug/garbage).
 */
#ifndef PP_HOSTILE_H
#define PP_HOSTILE_H

#include <stdint.h>

#include "answer.h"

/* What hostile_route did. */
enum {
	HOSTILE_NONE,		/* not one of its paths: the application's */
	HOSTILE_REPLY,		/* rp holds the answer */
	HOSTILE_GARBAGE		/* answer with no message at all */
};

/*
 * /debug/hostile?do=bytes|ff|words|ask|badmsg[&seed=N], do=pieces-lie,
 * pieces-forge or pieces-spin, /debug/scribble-stats and /debug/garbage,
 * for request j of the worker with this tag, whose channel to the front
 * is chan (-1: none): HOSTILE_NONE if the path is none of them, else
 * what to do with j->rp (the pieces never return: the worker waits to be
 * killed; and the stats scribble dies trying).
 */
int	hostile_route(struct job *j, uint32_t tag, int chan);

#endif
