/*
 * log.c: the one error idiom.  Every line goes to stderr in one write(2)
 * (atomic for lines under PIPE_BUF), so lines from several processes and
 * threads never interleave:  TIME LEVEL pid=N ROLE: message
 * log_warn appends strerror(errno); fatal/fatalx log and exit(1) and are
 * for start-up errors and broken invariants only.  Control bytes, DEL and
 * backslash in a message are written \xHH (log_escape), so a message may
 * quote anything a client or a worker sent.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

static const char *log_role = "pipepool";

void
log_init(const char *role)
{
	log_role = role;
}

void
log_setrole(const char *role)
{
	static char	buf[64];

	/* A copy: callers reuse their buffer (for the process title). */
	snprintf(buf, sizeof(buf), "%s", role);
	log_role = buf;
}

/*
 * Append s[0..n) to line[*at..size - 2) with each control byte, DEL,
 * backslash and any byte of also written \xHH, so that no string in a
 * message (a client's decoded path, a worker's text) can end the line or
 * forge another, and the line still says exactly what it held.  An
 * escape that does not fit whole is cut.
 */
void
log_escape(char *line, size_t size, size_t *at, const char *s, size_t n,
    const char *also)
{
	static const char	hex[] = "0123456789abcdef";
	unsigned char		b;
	size_t			i, o = *at;

	for (i = 0; i < n; i++) {
		b = (unsigned char)s[i];
		if (b >= 0x20 && b != 0x7f && b != '\\' && (b == 0 ||
		    strchr(also, b) == NULL)) {
			if (o + 1 > size - 2)
				break;
			line[o++] = (char)b;
		} else {
			if (o + 4 > size - 2)
				break;
			line[o++] = '\\';
			line[o++] = 'x';
			line[o++] = hex[b >> 4];
			line[o++] = hex[b & 0xf];
		}
	}
	*at = o;
}

/* Now, as 2026-12-02T06:40:00.123Z, into buf: its length (0 if size is
 * below 32). */
/* The second's text is made once a second a thread: gmtime_r and
 * strftime cost more than all the rest of an access log line. */
size_t
log_stamp(char *buf, size_t size)
{
	static _Thread_local time_t	sec = -1;
	static _Thread_local char	text[32];
	static _Thread_local size_t	len;
	struct timespec	ts;
	struct tm	tm;
	long		ms;

	if (size < 32)
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != sec) {
		gmtime_r(&ts.tv_sec, &tm);
		len = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
		sec = ts.tv_sec;
	}
	memcpy(buf, text, len);
	ms = ts.tv_nsec / 1000000;
	buf[len] = '.';
	buf[len + 1] = (char)('0' + ms / 100);
	buf[len + 2] = (char)('0' + ms / 10 % 10);
	buf[len + 3] = (char)('0' + ms % 10);
	buf[len + 4] = 'Z';
	buf[len + 5] = '\0';
	return len + 5;
}

static void
vlog(const char *level, int errnum, const char *fmt, va_list ap)
{
	char		 line[1024], msg[1024];
	size_t		 n;
	int		 r;

	n = log_stamp(line, sizeof(line));
	r = snprintf(line + n, sizeof(line) - n, " %s pid=%ld %s: ", level,
	    (long)getpid(), log_role);
	if (r > 0 && (size_t)r < sizeof(line) - n)
		n += (size_t)r;
	/* The message is escaped as a whole: callers pass what they have. */
	r = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (r > 0)
		log_escape(line, sizeof(line), &n, msg, (size_t)r < sizeof(msg) ?
		    (size_t)r : sizeof(msg) - 1, "");
	if (errnum && n < sizeof(line) - 1) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(errnum));
		if (r > 0)
			n = n + (size_t)r < sizeof(line) ? n + (size_t)r :
			    sizeof(line) - 1;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* A log line that cannot be written has nowhere else to go. */
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

void
log_info(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vlog("info", 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vlog("warn", saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vlog("warn", 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vlog("fatal", saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog("fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * Rate-limited warnings, for lines an untrusted peer can cause as often
 * as it likes (a bad message on a channel).  One mutex for every limit:
 * such lines are rare unless there is a flood, and then most are dropped
 * before any formatting.
 */
static pthread_mutex_t	log_limit_lk = PTHREAD_MUTEX_INITIALIZER;

/* Report what l dropped, if anything.  Called with log_limit_lk held. */
static void
limit_report(struct log_limit *l)
{
	if (l->suppressed == 0)
		return;
	log_warnx("suppressed %llu similar lines (more than %d a second)",
	    (unsigned long long)l->suppressed, LOG_LIMIT_PER_SEC);
	l->suppressed = 0;
}

void
log_warnx_limited(struct log_limit *l, const char *fmt, ...)
{
	va_list	ap;
	int64_t	sec = proc_now_ms() / 1000;
	int	saved = errno, pass;

	pthread_mutex_lock(&log_limit_lk);
	if (sec != l->sec) {
		limit_report(l);
		l->sec = sec;
		l->n = 0;
	}
	pass = l->n < LOG_LIMIT_PER_SEC;
	if (pass)
		l->n++;
	else
		l->suppressed++;
	pthread_mutex_unlock(&log_limit_lk);
	if (pass) {
		va_start(ap, fmt);
		vlog("warn", 0, fmt, ap);
		va_end(ap);
	}
	errno = saved;
}

void
log_limit_flush(struct log_limit *l)
{
	int	saved = errno;

	pthread_mutex_lock(&log_limit_lk);
	limit_report(l);
	pthread_mutex_unlock(&log_limit_lk);
	errno = saved;
}
