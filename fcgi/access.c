/*
 * access.c: the access log, off by default (--access-log FILE, or "-"
 * for stderr).  One line per request, in this format (fields split by
 * one space; the request line quoted):
 *
 *   TIME "METHOD PATH[?QUERY]" STATUS BYTES QUEUE_MS TOTAL_MS PID
 *
 * TIME is UTC, ISO 8601 with ms; STATUS what the client got (499: nginx
 * went away); BYTES the answer's bytes the front wrote, head included,
 * or "-" when a worker wrote it on the connection itself; QUEUE_MS the
 * time from the front having the request to a worker taking it, or "-"
 * if none did; TOTAL_MS from the front having it to its end; PID the
 * process that answered (0: the front itself).  In the request line every
 * control byte, DEL, backslash, space and double quote is written \xHH,
 * so no client can end a line or forge a field.  A request line longer
 * than the line's room is cut (a line is at most ACCESS_LINE_MAX bytes).
 *
 * Each line is one write(2) on an O_APPEND fd by the connection thread
 * that ends the request: lines never interleave, and a slow disk costs
 * that request one write.  A failed write (ENOSPC, EIO) loses its line,
 * never the request: counted (pipepool_access_log_errors_total) and
 * logged at most LOG_LIMIT_PER_SEC a second.  SIGUSR1 (the master passes
 * it on) makes the next line reopen the file first; the new fd replaces
 * the old one in place (dup2), so a write in flight lands in one file or
 * the other, never in a stranger's fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "log.h"
#include "request.h"
#include "stats.h"

#define ACCESS_LINE_MAX	4096

static struct {
	int			 fd;		/* -1: off */
	char			 path[512];	/* "" for stderr */
	volatile sig_atomic_t	 rotate;
	pthread_mutex_t		 lk;		/* reopening */
	struct log_limit	 lim;
} A = { -1, "", 0, PTHREAD_MUTEX_INITIALIZER, { 0, 0, 0 } };

static int
open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

void
access_open(const char *path)
{
	if (path[0] == '\0')
		return;
	if (strcmp(path, "-") == 0) {
		A.fd = STDERR_FILENO;
		return;
	}
	(void)snprintf(A.path, sizeof(A.path), "%s", path);
	if ((A.fd = open_log(path)) == -1) {
		log_warn("--access-log %s: no access log until it opens (on "
		    "SIGUSR1)", path);
		if ((A.fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
			fatal("open /dev/null");
		A.rotate = 1;
	}
}

void
access_rotate(void)
{
	A.rotate = 1;
}

/* SIGUSR1 came: the file again, in place of the old fd. */
static void
reopen(void)
{
	int	fd;

	pthread_mutex_lock(&A.lk);
	if (A.rotate && A.path[0] != '\0') {
		A.rotate = 0;
		if ((fd = open_log(A.path)) == -1)
			log_warn("reopening --access-log %s", A.path);
		else {
			if (dup2(fd, A.fd) == -1)
				log_warn("dup2 for --access-log %s", A.path);
			(void)close(fd);
		}
	}
	pthread_mutex_unlock(&A.lk);
}

/* A number, or "-" when it is negative (unknown). */
static void
field(char *line, size_t *n, int64_t v)
{
	int	r;

	if (v < 0)
		r = snprintf(line + *n, ACCESS_LINE_MAX - *n, " -");
	else
		r = snprintf(line + *n, ACCESS_LINE_MAX - *n, " %lld",
		    (long long)v);
	if (r > 0 && (size_t)r < ACCESS_LINE_MAX - *n)
		*n += (size_t)r;
}

void
access_line(const struct reqinfo *ri, unsigned status, int64_t bytes,
    int64_t qwait_us, int64_t total_ms, unsigned pid)
{
	char	line[ACCESS_LINE_MAX];
	size_t	n, tail = 128;	/* room kept for the fields after the URI */
	ssize_t	w;

	if (A.fd == -1)
		return;
	if (A.rotate)
		reopen();
	n = log_stamp(line, sizeof(line));
	line[n++] = ' ';
	line[n++] = '"';
	log_escape(line, sizeof(line) - tail, &n, ri->method,
	    strlen(ri->method), " \"");
	line[n++] = ' ';
	log_escape(line, sizeof(line) - tail, &n, ri->path, strlen(ri->path),
	    " \"");
	if (ri->query_len > 0) {
		line[n++] = '?';
		log_escape(line, sizeof(line) - tail, &n, ri->query,
		    ri->query_len, " \"");
	}
	line[n++] = '"';
	field(line, &n, status);
	field(line, &n, bytes);
	field(line, &n, qwait_us < 0 ? -1 : qwait_us / 1000);
	field(line, &n, total_ms);
	field(line, &n, pid);
	line[n++] = '\n';
	while ((w = write(A.fd, line, n)) == -1 && errno == EINTR)
		;
	if (w == (ssize_t)n)
		return;
	STAT_ADD(access_log_errors, 1);
	log_warnx_limited(&A.lim, "--access-log: a line lost (%s)", w == -1 ?
	    strerror(errno) : "a short write");
}
