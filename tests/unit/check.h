/*
 * check.h: what every unit test shares.  CHECK and its kin count a failed
 * check and name its file and line on stderr, and the test carries on;
 * check_done() ends the test ("name: ok", or how many checks failed, and
 * exit status 1).  Header-only, so each test is one file linked with the
 * modules it tests.
 */
#ifndef PP_CHECK_H
#define PP_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Checks failed so far (a forked child counts its own). */
static int	check_failures;

static inline void	check_fail(const char *file, int line, const char *fmt,
			    ...) __attribute__((format(printf, 3, 4)));

/* Count a failure at file:line, saying why. */
static inline void
check_fail(const char *file, int line, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	check_failures++;
}

#define CHECK(cond) do {						\
	if (!(cond))							\
		check_fail(__FILE__, __LINE__, "check failed: %s", #cond); \
} while (0)

/* The string s holds sub, or does not. */
#define HAS(s, sub) do {						\
	if (strstr((s), (sub)) == NULL)					\
		check_fail(__FILE__, __LINE__, "missing: %s", (sub));	\
} while (0)
#define HASNT(s, sub) do {						\
	if (strstr((s), (sub)) != NULL)					\
		check_fail(__FILE__, __LINE__, "unexpected: %s", (sub)); \
} while (0)

/*
 * The value of the Prometheus sample line of text that starts with
 * prefix ("name{...} "); a failure and -1 if there is none.
 */
static inline double
check_sample(const char *text, const char *prefix)
{
	const char	*p = text;
	size_t		 n = strlen(prefix);

	while (p != NULL && *p != '\0') {
		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	fprintf(stderr, "no sample %s\n", prefix);
	check_failures++;
	return -1;
}

/* fork(2), or the test ends (exit 1): it cannot go on without it. */
static inline pid_t
check_fork(void)
{
	pid_t	pid;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		perror("fork");
		exit(1);
	}
	return pid;
}

/* The end of main: "name: ok" and 0, or the failures on stderr and 1. */
static inline int
check_done(const char *name)
{
	if (check_failures) {
		fprintf(stderr, "%s: %d failures\n", name, check_failures);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}

#endif
