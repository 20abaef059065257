/* initfail.c: an application whose init fails in every worker. */
#include <stdio.h>

#include "pipepool.h"

static int
init(unsigned worker)
{
	fprintf(stderr, "initfail: worker %u refuses to start\n", worker);
	return -1;
}

static int
handle(const struct pp_request *rq, struct pp_response *rp)
{
	(void)rq;
	return pp_write(rp, "unreachable\n", 12);
}

PIPEPOOL_APP("initfail", init, handle, NULL);
