/*
 * test_direct.c: a worker's cache of the front's connections
 * (worker/direct.c) and its channel protocol with the front, played by
 * this process: a connection is asked for once and kept, a late answer to
 * an earlier ask is dropped, a gone connection and a closed channel give
 * -1, and a tiny RLIMIT_NOFILE makes the worker answer through the front
 * without asking.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#include "chan.h"
#include "check.h"
#include "direct.h"
#include "msg.h"

/* The front's side: read one ask, expect (mb, gen). */
static void
expect_ask(int chan, uint32_t mb, uint32_t gen)
{
	struct msg_hdr	h;
	struct msg_conn	mc;
	int		fds[1], nfds = 1;

	CHECK(chan_recv(chan, &h, &mc, sizeof(mc), fds, &nfds) == 1);
	CHECK(h.type == MSG_CONN_ASK && nfds == 0);
	CHECK(mc.mbox == mb && mc.gen == gen);
}

static void
answer(int chan, uint32_t mb, uint32_t gen, int fd)
{
	struct msg_conn	mc = { mb, gen };

	CHECK(chan_send(chan, MSG_CONN, 0, &mc, sizeof(mc),
	    fd >= 0 ? &fd : NULL, fd >= 0) == 0);
}

/* No message comes on fd within 100 ms (EOF is no message). */
static int
quiet(int fd)
{
	struct pollfd	pfd = { fd, POLLIN, 0 };
	char		b[64];

	return poll(&pfd, 1, 100) == 0 || recv(fd, b, sizeof(b),
	    MSG_DONTWAIT) == 0;
}

/*
 * The worker (a child) asks for mailbox 3's connection 7 twice, then for
 * connection 8, then 9 after the front has closed its channel; it writes
 * a byte on each fd it gets, and exits with how many it got.
 */
static void
test_channel(void)
{
	int	sv[2], conn[2], st, fd, got = 0;
	char	c;
	pid_t	pid;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, conn) == 0);
	if ((pid = check_fork()) == 0) {
		close(sv[0]);
		close(conn[0]);
		close(conn[1]);
		if (direct_init(sv[1], 8) == -1)
			_exit(100);
		if ((fd = direct_fd(3, 7)) >= 0 && write(fd, "a", 1) == 1)
			got++;
		if ((fd = direct_fd(3, 7)) >= 0 && write(fd, "b", 1) == 1)
			got++;	/* kept: no second ask */
		if (direct_fd(3, 8) == -1)
			got += 10;	/* gone */
		if (direct_fd(3, 9) == -1)
			got += 100;	/* channel closed */
		_exit(got);
	}
	close(sv[1]);
	expect_ask(sv[0], 3, 7);
	answer(sv[0], 3, 6, conn[1]);	/* a late answer to another ask */
	answer(sv[0], 3, 7, conn[1]);
	CHECK(read(conn[0], &c, 1) == 1 && c == 'a');
	CHECK(read(conn[0], &c, 1) == 1 && c == 'b');
	expect_ask(sv[0], 3, 8);
	CHECK(quiet(sv[0]));
	answer(sv[0], 3, 8, -1);
	close(sv[0]);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
	CHECK(WEXITSTATUS(st) == 112);
	close(conn[0]);
	close(conn[1]);
}

/* With RLIMIT_NOFILE too small to keep connections, nothing is asked. */
static void
test_nofile(void)
{
	struct rlimit	rl = { 12, 12 };
	int		sv[2], st;
	pid_t		pid;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	if ((pid = check_fork()) == 0) {
		close(sv[0]);
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			_exit(100);	/* valgrind refuses to lower it */
		if (direct_init(sv[1], 8) == -1)
			_exit(101);
		_exit(direct_fd(0, 1) == -1 ? 0 : 1);
	}
	close(sv[1]);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
	if (WEXITSTATUS(st) == 100)
		printf("test_direct: RLIMIT_NOFILE cannot be lowered here "
		    "(valgrind): that case is skipped\n");
	else
		CHECK(WEXITSTATUS(st) == 0);
	CHECK(quiet(sv[0]));
	close(sv[0]);
}

int
main(void)
{
	test_channel();
	test_nofile();
	return check_done("test_direct");
}
