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

#include "msg.h"
#include "reply.h"

/* What hostile_route did. */
enum {
	HOSTILE_NONE,		/* not one of its paths: the application's */
	HOSTILE_REPLY,		/* rp holds the answer */
	HOSTILE_GARBAGE		/* answer with no message at all */
};

/*
 * /debug/hostile?do=bytes|ff|words|ask|badmsg[&seed=N],
 * /debug/scribble-stats and /debug/garbage, for the request in mailbox mb
 * of a worker whose channel to the front is chan (-1: none): HOSTILE_NONE
 * if the path is none of them, else what to do (or the worker died
 * trying).
 */
int	hostile_route(const struct msg_request_view *, unsigned mb, int chan,
	    struct reply *rp);

#endif
