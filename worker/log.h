/* log.h: one line per event on stderr, with time, level, pid and role. */
#ifndef PP_LOG_H
#define PP_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include <stddef.h>

void	log_init(const char *role);
/* Now in UTC, ISO 8601 with ms ("...T06:40:00.123Z"); its length. */
size_t	log_stamp(char *, size_t);
/* s[0..n) appended to line[*at..size - 2), escaped (log.c). */
void	log_escape(char *line, size_t size, size_t *at, const char *s,
	    size_t n, const char *also);
void	log_setrole(const char *role);
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * A rate limit for warnings a peer can trigger at will (bad messages on a
 * channel), so a flood cannot fill the disk.  log_warnx_limited() logs
 * like log_warnx() at most LOG_LIMIT_PER_SEC times per monotonic second
 * for each struct log_limit and counts the rest; the count is logged as
 * one "suppressed K similar lines" line before the next line that gets
 * through, or by log_limit_flush() (for a caller with a periodic tick
 * that wants it sooner).  A zeroed struct is ready (static, or memset);
 * use one per call site or kind of fault.  Thread-safe: any thread may
 * pass the same struct.  Keeps errno.
 */
#define LOG_LIMIT_PER_SEC	10

struct log_limit {
	int64_t		sec;		/* the second being counted */
	unsigned	n;		/* lines logged in it */
	uint64_t	suppressed;	/* dropped since the last report */
};

void	log_warnx_limited(struct log_limit *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_limit_flush(struct log_limit *);

#endif
