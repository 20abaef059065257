/* wrongabi.c: a descriptor with ABI number 99 (this pipepool speaks 1). */
#include "pipepool.h"

static int
handle(const struct pp_request *rq, struct pp_response *rp)
{
	(void)rq;
	(void)rp;
	return 0;
}

const struct pp_app pipepool_app = { 99, "wrongabi", NULL, handle, NULL };
