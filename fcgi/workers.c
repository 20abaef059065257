/*
 * workers.c: the front's view of the children behind it.  The table of
 * workers by master slot (their ids, dispatch tags, pids), their
 * channels to the front (worker/direct.h), what the master says of them
 * (up, gone, retired), and asking the master to kill a child: the
 * master still owns its pid, so the front never signals one itself.
 *
 * The table is read by any thread (workers_at, under wlk); the channels
 * are the control thread's alone.  A tag read from the dispatch area is
 * a worker's claim: it may name no worker we know, and then workers_at
 * returns an entry with used 0.
 *
 * The rule for worker -> front: a message on a worker's channel that is
 * malformed, unexpected or carries fds is that worker's fault; the front
 * has the master kill it (which fails the request it held, and only
 * that one) and closes its channel, so one bad message is one log line.
 * The relay applies the same rule to what a worker writes in the
 * dispatch area (relay.c), and store_client.c to the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "dispatch.h"
#include "front_int.h"
#include "log.h"
#include "msg.h"
#include "proc.h"
#include "status.h"

static struct fworker	 wtab[PROC_SLOTS];
/* The one each slot had before: a relay that learns of a death after the
 * successor is up still names the worker that died (workers_at). */
static struct fworker	 wprev[PROC_SLOTS];
/* A kill asked for a tag of no worker we know yet, by slot: a new worker
 * may take a request (and break the rules on it) before the master's word
 * that it is up reaches the control thread.  Asked for when that word
 * comes (workers_up), so no worker escapes its kill by being quick.  One
 * per slot: a later claim replaces it (a tag read from the area may be a
 * lie, and then it never comes). */
static uint32_t		 wkill[PROC_SLOTS];
static pthread_mutex_t	 wlk = PTHREAD_MUTEX_INITIALIZER;
/* Each worker's channel, by slot; -1 when none.  Only the control
 * thread touches them. */
static int		 wchan[PROC_SLOTS];
static int		 ctl_fd = -1;	/* the master's socket, for MSG_KILL */

/* At start-up: cfd is the master's socket (front.c reads it). */
void
workers_init(int cfd)
{
	unsigned	i;

	ctl_fd = cfd;
	for (i = 0; i < PROC_SLOTS; i++)
		wchan[i] = -1;
}

/* Ask the master to kill a child (it still owns the pid: no reuse). */
void
workers_ask_kill(uint64_t id, uint32_t mslot, pid_t pid, unsigned number,
    enum role kind)
{
	struct msg_worker	mw;

	memset(&mw, 0, sizeof(mw));
	mw.slot = mslot;
	mw.pid = pid;
	mw.number = number;
	mw.role = kind;
	/* SOCK_SEQPACKET: each message is one atomic packet, so any thread
	 * may send; only the control thread reads. */
	if (chan_send(ctl_fd, MSG_KILL, id, &mw, sizeof(mw), NULL,
	    0) == -1)
		log_warn("asking the master to kill pid %ld", (long)pid);
}

/* Under wlk, w = MB_SLOT(tag) < PROC_SLOTS: *f is a copy of the entry of
 * the worker with this tag, the slot's previous worker with used 0 (named,
 * never killed); -1 and *f zero when we know no such worker (a tag read
 * from the area may name none, or one not up yet). */
static int
lookup(uint32_t w, uint32_t tag, struct fworker *f)
{
	memset(f, 0, sizeof(*f));
	if (wtab[w].used && wtab[w].tag == tag)
		*f = wtab[w];
	else if (wprev[w].tag == tag) {
		*f = wprev[w];
		f->used = 0;
	} else
		return -1;
	return 0;
}

/* A copy of the entry of the worker with this tag (lookup; zero when
 * none). */
struct fworker
workers_at(uint32_t tag)
{
	struct fworker	f;
	uint32_t	w = MB_SLOT(tag);

	memset(&f, 0, sizeof(f));
	if (w < PROC_SLOTS) {
		pthread_mutex_lock(&wlk);
		(void)lookup(w, tag, &f);
		pthread_mutex_unlock(&wlk);
	}
	return f;
}

/* Ask the master to kill the worker with this tag, if it is still there,
 * or once it is up if the front does not know it yet (wkill). */
void
workers_kill(uint32_t tag)
{
	struct fworker	f;
	uint32_t	w = MB_SLOT(tag);

	if (w >= PROC_SLOTS)
		return;
	pthread_mutex_lock(&wlk);
	if (lookup(w, tag, &f) == -1)
		wkill[w] = tag;
	pthread_mutex_unlock(&wlk);
	if (f.used)
		workers_ask_kill(f.id, w, f.pid, f.number, ROLE_WORKER);
}

/*
 * The master started a child (ctl_message checked its slot, its role and
 * its two fds): a worker, with its channel end and its stats page,
 * or the store, with its two pipe ends (store_client.c).  The fds are
 * ours.
 */
void
workers_up(const struct msg_hdr *h, const struct msg_worker *mw, int *fds)
{
	int	doomed;

	if (mw->role == ROLE_STORE) {
		(void)status_attach(mw->slot, -1, mw->pid);
		store_client_up(h, mw, fds);
		return;
	}
	/* Its stats page, after its channel end (master.c). */
	if (status_attach(mw->slot, fds[1], mw->pid) == -1)
		log_warn("mapping worker %u's stats page", mw->number);
	pthread_mutex_lock(&wlk);
	if (wtab[mw->slot].used)
		wprev[mw->slot] = wtab[mw->slot];
	wtab[mw->slot].used = 1;
	wtab[mw->slot].id = h->id;
	wtab[mw->slot].tag = dispatch_tag(mw->slot, h->id);
	wtab[mw->slot].pid = mw->pid;
	wtab[mw->slot].number = mw->number;
	doomed = wkill[mw->slot] == wtab[mw->slot].tag;
	wkill[mw->slot] = 0;
	pthread_mutex_unlock(&wlk);
	if (doomed) {
		log_warnx("worker %u (pid %ld) broke the rules before the front "
		    "knew it; killing it", mw->number, (long)mw->pid);
		workers_ask_kill(h->id, mw->slot, mw->pid, mw->number,
		    ROLE_WORKER);
	}
	if (wchan[mw->slot] != -1)
		close(wchan[mw->slot]);	/* its last worker's */
	wchan[mw->slot] = -1;
	/* Never block the control thread on a worker. */
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1) {
		log_warn("fcntl O_NONBLOCK on a worker's channel");
		close(fds[0]);
	} else
		wchan[mw->slot] = fds[0];
}

/*
 * The master reaped the child in this slot whose id this is.  A hello
 * worker: fail the request it held (its tag names exactly it), or put it
 * back in line if it had not started on it, and wake the threads that
 * wait for a direct answer to look.  Its entry stays for
 * the log until a new worker takes the slot.  The store's end is seen by
 * its reader thread (store_client.c).
 */
void
workers_gone(const struct msg_hdr *h, const struct msg_worker *mw)
{
	struct fworker	wk;
	uint32_t	tag = dispatch_tag(mw->slot, h->id);

	if (mw->role != ROLE_WORKER)
		return;
	if (dispatch_gone(tag) > 0) {
		wk = workers_at(tag);
		log_warnx("worker %u (pid %ld) died before starting on the "
		    "request it took; it is back in line for another",
		    wk.number, (long)wk.pid);
	}
	conn_wake_all();
}

/* The master retired a worker: it takes no more requests (a store is
 * never retired this way). */
void
workers_retire(const struct msg_hdr *h, const struct msg_worker *mw)
{
	dispatch_retire(dispatch_tag(mw->slot, h->id));
}

/* The open channels, for the control thread's poll: their pollfds and
 * slots.  Returns how many (at most PROC_SLOTS). */
int
workers_pollfds(struct pollfd *pfd, uint32_t *slot)
{
	int	n, i;

	for (n = 0, i = 0; i < PROC_SLOTS; i++)
		if (wchan[i] != -1) {
			pfd[n].fd = wchan[i];
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			slot[n++] = (uint32_t)i;
		}
	return n;
}

/* A worker broke the rule for worker -> front (why): see the top. */
static void
chan_bad(uint32_t w, const char *why)
{
	struct fworker	f;

	pthread_mutex_lock(&wlk);
	f = wtab[w];
	pthread_mutex_unlock(&wlk);
	log_warnx("worker %u (pid %ld) sent %s on its channel; killing it",
	    f.number, (long)f.pid, why);
	if (f.used)
		workers_ask_kill(f.id, w, f.pid, f.number, ROLE_WORKER);
	close(wchan[w]);
	wchan[w] = -1;
}

/*
 * May the worker with this tag have c's connection?  Only while c's
 * direct request is with that worker, as far as the mailbox says and as
 * c's thread knows (c->relaying, set by the relay), and only the first
 * worker that asks during that request.  Called with c->lk held.
 */
static int
may_give(struct conn *c, const struct msg_conn *mc, uint32_t tag)
{
	uint32_t	s;

	if (c->gen != mc->gen || c->dupfd == -1 || c->relaying != 1)
		return 0;
	if (c->fd_given != 0 && c->fd_given != tag)
		return 0;
	s = dispatch_state(c->idx);
	if ((MB_KIND(s) != MB_CLAIMED && MB_KIND(s) != MB_RUNNING) ||
	    MB_WORKER(s) != tag)
		return 0;
	c->fd_given = tag;
	return 1;
}

/*
 * A message from the worker in slot w: it asks for a connection's
 * fd (may_give), or its answer is in its mailbox after all.
 */
void
workers_chan(uint32_t w)
{
	struct msg_hdr	 h;
	struct msg_conn	 mc;
	struct conn	*c;
	uint32_t	 tag;
	int		 fds[1], nfds = 1, give;
	ssize_t		 r;

	r = chan_recv(wchan[w], &h, &mc, sizeof(mc), fds, &nfds);
	if (r == -1 && errno == EAGAIN)
		return;
	if (r == 0 || (r == -1 && errno != EPROTO)) {
		close(wchan[w]);	/* the worker is gone */
		wchan[w] = -1;
		return;
	}
	if (nfds > 0) {
		close(fds[0]);
		chan_bad(w, "an fd");
		return;
	}
	if (r == -1 || h.len != sizeof(mc) || (h.type != MSG_CONN_ASK &&
	    h.type != MSG_REPLIED)) {
		chan_bad(w, r == -1 ? "a malformed message" :
		    "an unexpected message");
		return;
	}
	pthread_mutex_lock(&wlk);
	tag = wtab[w].tag;
	pthread_mutex_unlock(&wlk);
	c = conn_at(mc.mbox);
	if (h.type == MSG_REPLIED) {
		if (c != NULL)
			conn_wake(c);
		return;
	}
	if (c != NULL)
		pthread_mutex_lock(&c->lk);
	give = c != NULL && may_give(c, &mc, tag);
	if (chan_send(wchan[w], MSG_CONN, 0, &mc, sizeof(mc),
	    give ? &c->dupfd : NULL, give) == -1)
		log_warn("answering a worker's ask for a connection");
	if (c != NULL)
		pthread_mutex_unlock(&c->lk);
}
