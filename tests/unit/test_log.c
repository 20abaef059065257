/*
 * test_log.c: the rate limit for warnings a peer can cause.  A flood of
 * lines from one call site becomes at most LOG_LIMIT_PER_SEC lines a
 * second and one "suppressed K" line; two limits count apart; errno is
 * kept; threads may share one limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "proc.h"

#define FLOOD	1000
#define THREADS	4

static char	path[] = "/tmp/pp-test-log.XXXXXX";
static int	saved_stderr;

static struct log_limit	shared;

/* Send stderr to a fresh temporary file. */
static void
capture(void)
{
	int	fd;

	CHECK((fd = open(path, O_WRONLY | O_TRUNC)) != -1);
	CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	close(fd);
}

/* Lines of the captured log containing what. */
static int
count(const char *what)
{
	FILE	*f;
	char	 line[1200];
	int	 n = 0;

	CHECK((f = fopen(path, "r")) != NULL);
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, what) != NULL)
			n++;
	fclose(f);
	return n;
}

/* Lines the captured log says were suppressed, in all. */
static long
suppressed(void)
{
	FILE	*f;
	char	 line[1200], *p;
	long	 n = 0;

	CHECK((f = fopen(path, "r")) != NULL);
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if ((p = strstr(line, "suppressed ")) != NULL)
			n += strtol(p + 11, NULL, 10);
	fclose(f);
	return n;
}

/* Wait (polling the clock, at most 3 s) until a new second begins. */
static void
next_second(void)
{
	int64_t	sec = proc_now_ms() / 1000, end = proc_now_ms() + 3000;

	while (proc_now_ms() / 1000 == sec && proc_now_ms() < end)
		usleep(5000);
	CHECK(proc_now_ms() / 1000 != sec);
}

static void
test_flood(void)
{
	struct log_limit	a, b;
	int			i, seen;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	capture();
	next_second();	/* most of a second ahead for the flood */
	for (i = 0; i < FLOOD; i++) {
		errno = EPIPE;
		log_warnx_limited(&a, "flood line %d", i);
		CHECK(errno == EPIPE);
	}
	/* Another limit is not used up by the first one's flood. */
	log_warnx_limited(&b, "other site");
	seen = count("flood line");
	/* The flood is quick: one second, two if it crossed a boundary. */
	CHECK(seen >= LOG_LIMIT_PER_SEC && seen <= 2 * LOG_LIMIT_PER_SEC);
	CHECK(count("other site") == 1);
	/* The next second: the count comes first, then the line. */
	next_second();
	log_warnx_limited(&a, "after the flood");
	CHECK(count("after the flood") == 1);
	/* Every line is either logged or counted, none lost. */
	CHECK(suppressed() == FLOOD - seen);
	CHECK(count("similar lines (more than 10 a second)") >= 1);
	/* Nothing more to report; flush adds no line. */
	i = count("suppressed");
	log_limit_flush(&a);
	CHECK(count("suppressed") == i);
}

static void *
flooder(void *arg)
{
	int	i;

	(void)arg;
	for (i = 0; i < FLOOD; i++)
		log_warnx_limited(&shared, "thread line");
	return NULL;
}

static void
test_threads(void)
{
	pthread_t	t[THREADS];
	int		i, seen;

	capture();
	next_second();
	for (i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, flooder, NULL) == 0);
	for (i = 0; i < THREADS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	seen = count("thread line");
	CHECK(seen >= LOG_LIMIT_PER_SEC && seen <= 2 * LOG_LIMIT_PER_SEC);
	/* Every line is either logged or counted, none lost. */
	log_limit_flush(&shared);
	CHECK(suppressed() == THREADS * FLOOD - seen);
}

int
main(void)
{
	int	fd;

	CHECK((fd = mkstemp(path)) != -1);
	close(fd);
	CHECK((saved_stderr = dup(STDERR_FILENO)) != -1);
	log_init("test");
	test_flood();
	test_threads();
	dup2(saved_stderr, STDERR_FILENO);
	unlink(path);
	return check_done("test_log");
}
