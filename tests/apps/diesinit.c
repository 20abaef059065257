/* diesinit.c: an application whose init dies (abort, SIGABRT). */
#include <stdlib.h>

#include "pipepool.h"

static int
init(unsigned worker)
{
	(void)worker;
	abort();
}

static int
handle(const struct pp_request *rq, struct pp_response *rp)
{
	(void)rq;
	return pp_write(rp, "unreachable\n", 12);
}

PIPEPOOL_APP("diesinit", init, handle, NULL);
