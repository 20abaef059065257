/*
 * test_stats.c: unit tests of the counters' trust boundary (worker/ipc/stats.c,
 * fcgi/status.c).  This process plays the master and the front: it maps
 * the global region and makes a worker's page.  Forked children play
 * workers (stats_child()): a store into the global region must kill them
 * with SIGSEGV, mprotect(PROT_WRITE) must fail with EACCES, and their own
 * page must be writable.  Then a page full of 0xff bytes, and one that
 * goes backwards, must give bounded, self-consistent /status and
 * /metrics.  Exits 1 on any failure.
 */
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "stats.h"
#include "status.h"

#define SET(f, v)	atomic_store(&(f), (v))
#define GET(f)		atomic_load(&(f))

enum attempt { WRITE_GLOBAL, MPROTECT_GLOBAL, WRITE_PAGE, WRITE_SLOT };

/*
 * Fork a worker (page: its page's read-write fd, closed here) that tries
 * one thing; its wait status.  Exit codes: 0 the attempt worked, 10+errno
 * it failed, 2 stats_child() failed.
 */
static int
child(int page, enum attempt a)
{
	struct rlimit	rl = { 0, 0 };
	pid_t		pid;
	int		st;

	if ((pid = check_fork()) == 0) {
		(void)setrlimit(RLIMIT_CORE, &rl);	/* no core file */
		signal(SIGSEGV, SIG_DFL);		/* nor ASan's report */
		if (stats_child(page) == -1)
			_exit(2);
		switch (a) {
		case WRITE_GLOBAL:
			SET(stats->accepted, UINT64_MAX);
			break;
		case WRITE_SLOT:
			SET(stats->w[3].state, WS_BUSY);
			break;
		case MPROTECT_GLOBAL:
			if (mprotect(stats, sizeof(*stats), PROT_READ |
			    PROT_WRITE) == -1)
				_exit(10 + errno);
			break;
		case WRITE_PAGE:
			if (stats_page == NULL)
				_exit(3);
			stats_worker_state(WS_BUSY);
			stats_worker_request(200, 3, 0, NULL, 0);
			break;
		}
		_exit(0);
	}
	if (page != -1)
		close(page);
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR) {
			perror("waitpid");
			exit(1);
		}
	return st;
}

static void
test_kernel(void)
{
	int	st, rw, ro;

	SET(stats->accepted, 5);
	st = child(-1, WRITE_GLOBAL);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	st = child(-1, WRITE_SLOT);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	CHECK(GET(stats->accepted) == 5);
	CHECK(GET(stats->w[3].state) == WS_EMPTY);
	st = child(-1, MPROTECT_GLOBAL);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 10 + EACCES);

	/* Its own page: written by the child, seen read-only here. */
	CHECK(stats_page_new(&rw, &ro) == 0);
	st = child(rw, WRITE_PAGE);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	{
		const struct stats_page	*p;

		p = mmap(NULL, sizeof(*p), PROT_READ, MAP_SHARED, ro, 0);
		CHECK(p != MAP_FAILED);
		if (p != MAP_FAILED) {
			CHECK(GET(p->state) == WS_BUSY);
			CHECK(GET(p->requests) == 1);
			CHECK(GET(p->codes[stats_code_slot(200)]) == 1);
			CHECK(GET(p->hist[3]) == 1);	/* 3 ms: <= 5 ms */
			CHECK(GET(p->duration_us_sum) == 3000);
			/* Read-only here too: the front cannot write it. */
			CHECK(mprotect((void *)(uintptr_t)p, sizeof(*p),
			    PROT_READ | PROT_WRITE) == -1 && errno == EACCES);
			munmap((void *)(uintptr_t)p, sizeof(*p));
		}
		/* Sealed: nobody can shrink it under a reader (SIGBUS). */
		CHECK(ftruncate(ro, 0) == -1);
	}
	close(ro);
}

/* Every sample of /metrics except the start time is at most max. */
static int
samples_within(const char *m, double max)
{
	const char	*p, *sp;
	double		 v;

	for (p = m; *p != '\0'; p = strchr(p, '\n') + 1) {
		if (*p != '#' && strncmp(p, "pipepool_start_time", 19) != 0) {
			sp = strchr(p, ' ');
			v = strtod(sp + 1, NULL);
			if (v > max) {
				fprintf(stderr, "forged? %.*s\n",
				    (int)(strchr(p, '\n') - p), p);
				return 0;
			}
		}
		if (strchr(p, '\n') == NULL)
			break;
	}
	return 1;
}

/* A fresh page for slot 1, played by a worker of pid 101. */
static struct stats_page *
page_in_slot1(void)
{
	struct stats_page	*p;
	int			 rw, ro;

	if (stats_page_new(&rw, &ro) == -1) {
		perror("stats_page_new");
		exit(1);
	}
	p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
	close(rw);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	CHECK(status_attach(1, ro, 101) == 0);
	return p;
}

/*
 * The front's own counts for slot 1 (4 relayed requests) and an honest
 * page beside them (2 direct answers, one 200 and one 404), which add up.
 */
static struct stats_page *
clamp_honest(char *buf)
{
	struct stats_page	*p;

	memset(stats, 0, sizeof(*stats));
	SET(stats->w[1].pid, 101);
	SET(stats->w[1].role, ROLE_WORKER);
	SET(stats->w[1].state, WS_STARTING);
	SET(stats->w[1].number, 1);
	SET(stats->w[1].requests, 4);		/* relayed by the front */
	SET(stats->accepted, 10);
	SET(stats->completed, 4);
	SET(stats->codes[STATS_CODE_CLASS(2)], 4);
	SET(stats->hist[0], 4);
	p = page_in_slot1();
	SET(p->state, WS_BUSY);
	SET(p->codes[STATS_CODE_CLASS(2)], 1);
	SET(p->codes[STATS_CODE_CLASS(4)], 1);
	SET(p->hist[1], 2);
	SET(p->duration_us_sum, 1500);
	SET(p->requests, 2);
	CHECK(status_json(buf, STATUS_BUF_MAX) > 0);
	HAS(buf, "\"pid\":101,\"state\":\"busy\",\"requests\":6,");
	HAS(buf, "\"completed\":6,\"status_2xx\":5,\"status_3xx\":0,"
	    "\"status_4xx\":1,");
	return p;
}

/* The page lies: nothing past what the front accepted, nothing back. */
static void
clamp_forged(struct stats_page *p, char *buf)
{
	uint64_t	before;

	/* Every byte 0xff. */
	memset(p, 0xff, sizeof(*p));
	CHECK(status_metrics(buf, STATUS_BUF_MAX) > 0);
	CHECK(samples_within(buf, 10));
	CHECK(check_sample(buf, "pipepool_request_duration_seconds_count") <=
	    10);
	CHECK(check_sample(buf, "pipepool_request_duration_seconds_sum") <=
	    10 * 86400.0);
	CHECK(status_json(buf, STATUS_BUF_MAX) > 0);
	HAS(buf, "\"completed\":10,");
	/* 0xffffffff is no state: shown as starting. */
	HAS(buf, "\"pid\":101,\"state\":\"starting\",\"requests\":10,");

	/* Going back counts nothing back; totals never fall. */
	before = GET(stats->completed);
	memset(p, 0, sizeof(*p));
	SET(p->state, 7);
	(void)status_json(buf, STATUS_BUF_MAX);
	CHECK(GET(stats->completed) == before);
	HAS(buf, "\"state\":\"starting\"");

	/* Accepted grows: only as much as that may be counted. */
	memset(p, 0xff, sizeof(*p));
	SET(stats->accepted, 12);
	(void)status_metrics(buf, STATUS_BUF_MAX);
	CHECK(GET(stats->completed) == 12);
	CHECK(samples_within(buf, 12));
}

/*
 * The slot goes to a new worker: the old page (p) is unmapped, the
 * totals stay, the new row starts from the front's count.
 */
static void
clamp_new_worker(struct stats_page *p, char *buf)
{
	munmap(p, sizeof(*p));
	SET(stats->w[1].pid, 102);
	SET(stats->w[1].requests, 0);
	p = page_in_slot1();
	CHECK(status_attach(1, -1, 102) == 0);	/* as for the store */
	(void)status_json(buf, STATUS_BUF_MAX);
	CHECK(GET(stats->completed) == 12);
	HAS(buf, "\"pid\":102,\"state\":\"starting\",\"requests\":0,");
	munmap(p, sizeof(*p));
	CHECK(status_attach(PROC_SLOTS, -1, 1) == -1);
}

static void
test_clamp(char *buf)
{
	struct stats_page	*p;

	p = clamp_honest(buf);
	clamp_forged(p, buf);
	clamp_new_worker(p, buf);
}

int
main(void)
{
	char	*buf;

	if (stats_map() == -1) {
		perror("stats_map");
		return 1;
	}
	/* First, while nothing is allocated: under valgrind, each child's
	 * exit is checked for leaks too. */
	test_kernel();
	if ((buf = malloc(STATUS_BUF_MAX)) == NULL) {
		perror("malloc");
		return 1;
	}
	test_clamp(buf);
	free(buf);
	munmap(stats, sizeof(*stats));
	stats = NULL;
	return check_done("test_stats");
}
