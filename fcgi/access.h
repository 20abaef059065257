/*
 * access.h: the access log (--access-log), written by the front: one line
 * per request, reopened on SIGUSR1 (logrotate's convention).
 */
#ifndef PP_ACCESS_H
#define PP_ACCESS_H

#include <stddef.h>
#include <stdint.h>

struct reqinfo;

/* At the front's start: path ("" : none, "-": stderr), and the buffer's
 * bytes (0: a write per line; else at least a line's room). */
void	access_open(const char *path, size_t buffer);
/* Write out what the buffer holds (a stopping front, before _exit). */
void	access_flush(void);
/* From the SIGUSR1 handler: reopen at the next flush or line. */
void	access_rotate(void);
/* One request ended: what the client got (status; bytes of answer, -1
 * unknown), its queue time (µs, -1: no worker took it), its total time
 * and the pid that answered (0: the front). */
void	access_line(const struct reqinfo *, unsigned status, int64_t bytes,
	    int64_t qwait_us, int64_t total_ms, unsigned pid);

#endif
