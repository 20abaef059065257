/* log.h: one line per event on stderr, with time, level, pid and role. */
#ifndef PP_LOG_H
#define PP_LOG_H

#include <stdarg.h>

void	log_init(const char *role);
void	log_setrole(const char *role);
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
