/*
 * hostile.h: debug routes that play a hostile worker (only with
 * --debug-routes), for the tests of the trust boundary: the front and the
 * master must survive whatever a worker writes where it can.
 */
#ifndef PP_HOSTILE_H
#define PP_HOSTILE_H

#include "handlers.h"

/* The worker's tag and the mailbox of the request it is handling. */
void		hostile_request(uint32_t tag, unsigned mb);
/* /debug/hostile?do=bytes|ff|words|ask[&seed=N] */
enum action	hostile_route(const struct msg_request_view *, struct reply *);

#endif
