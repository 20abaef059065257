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
 * Lines go to one of two buffers of --access-log-buffer bytes each
 * (default 64 KiB, as nginx's access_log buffer=).  When the next line
 * would not fit, the full buffer is handed to a flusher thread and lines
 * go on into the other one, so a request's thread never makes the
 * write(2) (it waits only if the flusher is still writing the previous
 * buffer: the disk is slower than the lines).  The flusher also writes
 * out what a buffer holds ACCESS_FLUSH_MS after a line came (nginx's
 * flush=).  A request costs a memcpy under a mutex, not a system call on
 * the file's inode lock.  Buffers go out whole and in order, so lines
 * never interleave or reorder.  The price: a front that is SIGKILLed or
 * crashes loses what the buffers held (at most a second of lines); a
 * stopping front writes them out.  --access-log-buffer 0 writes each line
 * at once.  A failed write (ENOSPC, EIO) loses its lines, never a
 * request: counted (pipepool_access_log_errors_total, in lines) and
 * logged at most LOG_LIMIT_PER_SEC a second.  SIGUSR1 (the master passes
 * it on) makes the flusher (or, unbuffered, the next line) write out
 * what came before and reopen the file; the new fd replaces the old one
 * in place (dup2), so a write in flight lands in one file or the other,
 * never in a stranger's fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "front_int.h"
#include "log.h"
#include "request.h"
#include "stats.h"

#define ACCESS_LINE_MAX	4096
#define ACCESS_FLUSH_MS	1000	/* longest a line waits in the buffer */

struct accbuf {
	char			*p;
	size_t			 len;		/* bytes held */
	unsigned		 lines;		/* lines held */
};

static struct {
	int			 fd;		/* -1: off */
	char			 path[512];	/* "" for stderr */
	volatile sig_atomic_t	 rotate;
	pthread_mutex_t		 lk;		/* what follows; reopening */
	pthread_cond_t		 cv;		/* out taken or given back */
	struct log_limit	 lim;
	struct accbuf		 b[2];		/* b[cur]: lines go there */
	int			 cur;
	int			 out;		/* handed to the flusher: 1 */
	size_t			 size;		/* each buffer's room; 0: a
						 * write a line */
} A = { -1, "", 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
    { 0, 0, 0 }, { { NULL, 0, 0 }, { NULL, 0, 0 } }, 0, 0, 0 };

static int
open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void	*flusher(void *);

void
access_open(const char *path, size_t buffer)
{
	pthread_condattr_t	ca;

	if (path[0] == '\0')
		return;
	if (buffer > 0) {
		if (buffer < ACCESS_LINE_MAX)
			buffer = ACCESS_LINE_MAX;	/* a whole line fits */
		if ((A.b[0].p = malloc(buffer)) == NULL ||
		    (A.b[1].p = malloc(buffer)) == NULL)
			fatal("--access-log-buffer");
		A.size = buffer;
		/* the flusher's timed wait on a clock no one sets */
		if (pthread_condattr_init(&ca) != 0 ||
		    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
		    pthread_cond_init(&A.cv, &ca) != 0)
			fatalx("the access log's condition variable");
		(void)pthread_condattr_destroy(&ca);
		if (front_start_thread(NULL, flusher, NULL) == -1)
			fatal("the access log's flusher thread");
	}
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

/* Write n bytes holding `lines` lines; a failure loses them, counted. */
static void
put(const char *p, size_t n, unsigned lines)
{
	ssize_t	w;

	while ((w = write(A.fd, p, n)) == -1 && errno == EINTR)
		;
	if (w == (ssize_t)n)
		return;
	STAT_ADD(access_log_errors, lines);
	log_warnx_limited(&A.lim, "--access-log: %u line%s lost (%s)", lines,
	    lines == 1 ? "" : "s", w == -1 ? strerror(errno) :
	    "a short write");
}

/* With lk held, after what came before SIGUSR1 went out: the file
 * again. */
static void
reopen(void)
{
	int	fd;

	if (!A.rotate || A.path[0] == '\0')
		return;
	A.rotate = 0;
	if ((fd = open_log(A.path)) == -1)
		log_warn("reopening --access-log %s", A.path);
	else {
		if (dup2(fd, A.fd) == -1)
			log_warn("dup2 for --access-log %s", A.path);
		(void)close(fd);
	}
}

/* With lk held: wait until the flusher has written the buffer it was
 * handed (one write(2) at most). */
static void
wait_out(void)
{
	while (A.out)
		pthread_cond_wait(&A.cv, &A.lk);
}

/* With lk held and no buffer out: hand b[cur] to the flusher, lines go
 * to the other one. */
static void
hand_out(void)
{
	A.out = 1;
	A.cur ^= 1;
	A.b[A.cur].len = 0;
	A.b[A.cur].lines = 0;
	/* Only the flusher can be waiting: threads wait in wait_out() only
	 * while a buffer is out, and none is. */
	pthread_cond_signal(&A.cv);
}

void
access_flush(void)
{
	struct accbuf	*b;

	if (A.fd == -1)
		return;
	pthread_mutex_lock(&A.lk);
	if (A.size == 0) {
		reopen();
		pthread_mutex_unlock(&A.lk);
		return;
	}
	wait_out();
	b = &A.b[A.cur];
	if (b->len > 0)
		put(b->p, b->len, b->lines);
	b->len = 0;
	b->lines = 0;
	reopen();
	pthread_mutex_unlock(&A.lk);
}

/* A buffered log's thread: writes each buffer it is handed, outside lk;
 * each ACCESS_FLUSH_MS it takes what b[cur] holds itself, and sees a
 * SIGUSR1 then even with no request. */
static void *
flusher(void *arg)
{
	struct accbuf	*b;
	struct timespec	 at;
	int		 r;

	(void)arg;
	pthread_mutex_lock(&A.lk);
	for (;;) {
		if (clock_gettime(CLOCK_MONOTONIC, &at) == -1)
			fatal("clock_gettime");
		at.tv_sec += ACCESS_FLUSH_MS / 1000;
		r = 0;
		while (!A.out && r != ETIMEDOUT)
			r = pthread_cond_timedwait(&A.cv, &A.lk, &at);
		if (!A.out && (A.b[A.cur].len > 0 || A.rotate))
			hand_out();
		if (!A.out)
			continue;
		b = &A.b[A.cur ^ 1];
		pthread_mutex_unlock(&A.lk);
		if (b->len > 0)
			put(b->p, b->len, b->lines);
		pthread_mutex_lock(&A.lk);
		/* Lines that came after the hand-off are the new file's. */
		reopen();
		A.out = 0;
		pthread_cond_broadcast(&A.cv);
	}
	return NULL;
}

/* " N", or " -" when v is negative (unknown); the caller keeps room for
 * it (21 bytes).  By hand: snprintf was a third of a line's cost. */
static void
field(char *line, size_t *n, int64_t v)
{
	char		d[20];
	size_t		k = 0;
	uint64_t	u;

	line[(*n)++] = ' ';
	if (v < 0) {
		line[(*n)++] = '-';
		return;
	}
	u = (uint64_t)v;
	do {
		d[k++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	while (k > 0)
		line[(*n)++] = d[--k];
}

/*
 * access_line's work, apart: its line buffer takes a page of the calling
 * thread's stack, and a page a connection thread touches stays resident
 * for the thread's life (conn.c), so only a front with an access log
 * pays it.
 */
static __attribute__((noinline)) void
write_line(const struct reqinfo *ri, unsigned status, int64_t bytes,
    int64_t qwait_us, int64_t total_ms, unsigned pid)
{
	struct accbuf	*b;
	char		 line[ACCESS_LINE_MAX];
	size_t		 n, tail = 128;	/* room kept for the fields after the URI */

	n = log_stamp(line, sizeof(line));
	line[n++] = ' ';
	line[n++] = '"';
	log_escape(line, sizeof(line) - tail, &n, ri->method, ri->method_len,
	    " \"");
	line[n++] = ' ';
	log_escape(line, sizeof(line) - tail, &n, ri->path, ri->path_len,
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
	if (A.size == 0) {
		if (A.rotate) {			/* one thread reopens */
			pthread_mutex_lock(&A.lk);
			reopen();
			pthread_mutex_unlock(&A.lk);
		}
		put(line, n, 1);
		return;
	}
	pthread_mutex_lock(&A.lk);
	/* After a SIGUSR1 what came before goes to the old file first, and
	 * this line into the buffer the new file will have. */
	if (A.b[A.cur].len + n > A.size) {
		wait_out();
		hand_out();
	} else if (A.rotate && !A.out)
		hand_out();
	b = &A.b[A.cur];
	memcpy(b->p + b->len, line, n);
	b->len += n;
	b->lines++;
	pthread_mutex_unlock(&A.lk);
}

void
access_line(const struct reqinfo *ri, unsigned status, int64_t bytes,
    int64_t qwait_us, int64_t total_ms, unsigned pid)
{
	if (A.fd != -1)
		write_line(ri, status, bytes, qwait_us, total_ms, pid);
}
