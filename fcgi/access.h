/*
 * access.h: the access log (--access-log), written by the front: one line
 * per request, reopened on SIGUSR1 (logrotate's convention).
 */
#ifndef PP_ACCESS_H
#define PP_ACCESS_H

#include <stdint.h>

struct reqinfo;

/* At the front's start: path ("" : none, "-": stderr). */
void	access_open(const char *path);
/* From the SIGUSR1 handler: reopen before the next line. */
void	access_rotate(void);
/* One request ended: what the client got (status; bytes of answer, -1
 * unknown), its queue time (µs, -1: no worker took it), its total time
 * and the pid that answered (0: the front). */
void	access_line(const struct reqinfo *, unsigned status, int64_t bytes,
	    int64_t qwait_us, int64_t total_ms, unsigned pid);

#endif
