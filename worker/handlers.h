/*
 * handlers.h: the built-in routes (hello, /echo, /debug/...): a request
 * in, a reply out (reply.h).  They know nothing of where the request came
 * from or where the reply goes: that is the worker loop's (worker.h).
 */
#ifndef PP_HANDLERS_H
#define PP_HANDLERS_H

#include "msg.h"
#include "options.h"
#include "reply.h"

/* What the worker is to do with a routed request. */
enum action {
	ACT_REPLY,	/* send the reply */
	ACT_GARBAGE	/* answer with no message at all (/debug/garbage) */
};

void		 handlers_init(void);
enum action	 handlers_route(const struct options *,
		    const struct msg_request_view *, struct reply *);

#endif
