/*
 * shed.h: shedding on time (--queue-target-ms): new arrivals get 503 at
 * once while the requests workers take have waited too long (shed.c).
 */
#ifndef PP_SHED_H
#define PP_SHED_H

#include <stdint.h>

/* A worker took a request that had waited wait_us in line. */
void	shed_waited(int64_t wait_us);
/* At an arrival: 1 to refuse it (503), 0 to let it in line. */
int	shed_refuse(void);
/* A request in line since put_us (proc_now_us): 1 if a spell is on and it
 * has waited over twice the target (CoDel drops at the head: it leaves
 * the line with a 503), else 0. */
int	shed_overdue(int64_t put_us);
/* Whether --queue-target-ms is set: a request in line looks at the time
 * (shed_overdue) as often as at its connection. */
int	shed_watching(void);

#endif
