/*
 * hostile.h: the debug routes that play a hostile worker (only with
 * --debug-routes), for the tests of the trust boundary: the front and the
 * master must survive whatever a worker writes where it can.  They are
 * the worker's, not the built-in routes' (handlers.h): they need what no
 * application is given, the request's mailbox, the worker's channel to
 * the front and the shared counters.
 */
#ifndef PP_HOSTILE_H
#define PP_HOSTILE_H

#include "msg.h"
#include "reply.h"

/*
 * /debug/hostile?do=bytes|ff|words|ask|badmsg[&seed=N] and
 * /debug/scribble-stats, for the request in mailbox mb of a worker whose
 * channel to the front is chan (-1: none).  1 if the path is one of them
 * (rp then holds the answer, or the worker died trying), 0 if not.
 */
int	hostile_route(const struct msg_request_view *, unsigned mb, int chan,
	    struct reply *rp);

#endif
