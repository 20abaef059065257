/*
 * test_workers.c: unit tests of fcgi/workers.c's kill rule: a kill asked
 * for a worker the front knows goes to the master at once; one asked for a
 * tag the front does not know yet (a new worker that broke the rules
 * before the master's word that it is up came) goes when that word comes;
 * a tag that never comes, or the slot's previous worker, kills no one.
 * The master's end is a socketpair read here.  The front's connection
 * table and store client are not part of this rule: stubbed.
 * Exits 1 on any failure.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "check.h"
#include "dispatch.h"
#include "front_int.h"
#include "msg.h"
#include "proc.h"

struct conn *conn_at(uint32_t mbox) { (void)mbox; return NULL; }
void conn_wake(struct conn *c) { (void)c; }
void conn_wake_all(void) { }
void
store_client_up(const struct msg_hdr *h, const struct msg_worker *mw,
    int *fds)
{
	(void)h; (void)mw; (void)fds;
}

static int	master = -1;	/* our end of the front's ctl socket */

/* The id of the MSG_KILL the master got, 0 if none is waiting. */
static uint64_t
killed(pid_t *pid)
{
	struct msg_hdr		h;
	struct msg_worker	mw;
	int			fds[4], nfds = 4;

	if (chan_recv(master, &h, &mw, sizeof(mw), fds, &nfds) != 1 ||
	    h.type != MSG_KILL || h.len != sizeof(mw))
		return 0;
	*pid = (pid_t)mw.pid;
	return h.id;
}

/* The master's word that worker id is up in slot, as pid. */
static void
up(uint32_t slot, uint64_t id, pid_t pid)
{
	struct msg_hdr		h;
	struct msg_worker	mw;
	int			fds[2] = { -1, -1 };

	memset(&h, 0, sizeof(h));
	memset(&mw, 0, sizeof(mw));
	h.type = MSG_WORKER_UP;
	h.id = id;
	mw.slot = slot;
	mw.pid = pid;
	mw.number = slot;
	mw.role = ROLE_WORKER;
	CHECK((fds[0] = open("/dev/null", O_RDONLY)) != -1);
	workers_up(&h, &mw, fds);
}

int
main(void)
{
	int	sv[2];
	pid_t	pid = 0;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
	master = sv[1];
	workers_init(sv[0]);

	/* Known: killed at once, by its id and pid. */
	up(2, 10, 1010);
	workers_kill(dispatch_tag(2, 10));
	CHECK(killed(&pid) == 10 && pid == 1010);

	/* Not known yet: nothing now, the kill when it is up. */
	workers_kill(dispatch_tag(3, 11));
	CHECK(killed(&pid) == 0 && errno == EAGAIN);
	up(3, 11, 1111);
	CHECK(killed(&pid) == 11 && pid == 1111);
	CHECK(killed(&pid) == 0);	/* once */

	/* A tag that never comes (a lie): the next worker lives. */
	workers_kill(dispatch_tag(4, 99));
	up(4, 12, 1212);
	CHECK(killed(&pid) == 0);
	/* ...and the one after too: the claim went with the first. */
	up(4, 13, 1313);
	CHECK(killed(&pid) == 0);

	/* The slot's previous worker: named, never killed (its pid may be
	 * reaped), and no kill waits for it. */
	workers_kill(dispatch_tag(4, 12));
	CHECK(killed(&pid) == 0);
	up(4, 14, 1414);
	CHECK(killed(&pid) == 0);
	CHECK(workers_at(dispatch_tag(4, 13)).pid == 1313 &&
	    !workers_at(dispatch_tag(4, 13)).used);

	/* Beyond the table: nothing. */
	workers_kill(PROC_SLOTS);
	CHECK(killed(&pid) == 0);
	return check_done("test_workers");
}
