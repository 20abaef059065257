/* handlers.h: the routes a hello worker answers. */
#ifndef PP_HANDLERS_H
#define PP_HANDLERS_H

#include <stddef.h>

#include "msg.h"
#include "options.h"
#include "reply.h"

enum action { ACT_REPLY, ACT_GARBAGE };

void		 handlers_init(void);
enum action	 handlers_route(const struct options *, const struct msg_request_view *,
		    struct reply *);

#endif
