/*
 * main.c: pipepool's entry point and its table of roles.  Reads the
 * settings, chooses the mode (--listen, an inherited socket, or CGI),
 * opens the socket, checks what would fail later (privileges, the
 * dispatch area, the database, the CPUs), maps the shared counters and
 * becomes the master, handing it the role table.
 *
 * The table lives here, not in master.c or a roles.c: this is the one
 * file that names every role's entry function (the program's parts are
 * put together here, as the CGI mode is chosen here), so the master
 * supervises the rows it is handed and knows no role's internals (it
 * includes no front.h, worker.h or store.h), and master.o links against
 * no role: a test of the master needs none.  A new role is an enum role
 * value (proc.h), an entry below and a row.
 */
#include <sys/mman.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "cgi.h"
#include "dispatch.h"
#include "front.h"
#include "kvdb.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "options.h"
#include "proc.h"
#include "stats.h"
#include "store.h"
#include "worker.h"

/* Each role's entry: its main function, given its fds by number. */
static void __attribute__((noreturn))
start_front(const struct options *o, const struct proc_start *ps)
{
	(void)ps;
	front_main(o, FRONT_LISTEN_FD, FRONT_CTL_FD);
}

static void __attribute__((noreturn))
start_worker(const struct options *o, const struct proc_start *ps)
{
	worker_main(o, ps->number, WORKER_LIFE_FD, WORKER_CHAN_FD,
	    dispatch_tag(ps->slot, ps->id));
}

static void __attribute__((noreturn))
start_store(const struct options *o, const struct proc_start *ps)
{
	(void)ps;
	store_main(o, STORE_LIFE_FD);
}

static unsigned
count_workers(const struct options *o)
{
	return o->workers;
}

static unsigned
count_workers_max(const struct options *o)
{
	return o->workers_max;
}

/*
 * In the probe's child: start the application as a worker would (as
 * worker 0), then stop it.  It runs our user's code, so first it loses
 * what a worker must not touch either: the dispatch area goes, and the
 * counters become a private read-only page of zeros (writable or not, a
 * store reaches nobody).
 */
static int
probe_app(const struct options *o, char *err, size_t errlen)
{
	log_setrole("probe");
	dispatch_unmap();
	if (stats != NULL && mmap(stats, sizeof(*stats), PROT_READ,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
		snprintf(err, errlen, "unmapping the counters: %s",
		    strerror(errno));
		return -1;
	}
	if (app_start(o, 0, err, errlen) == -1)
		return -1;
	app_stop();
	return 0;
}

/*
 * A worker's probe: would --app or --exec start?  Tried in a child of
 * its own (proc_probe), never here: the master and the front run none of
 * the application's code.  The built-in application needs no probe.
 */
static int
probe_workers(const struct options *o, char *err, size_t errlen)
{
	char	why[600];

	if (o->app[0] == '\0' && o->exec[0] == '\0')
		return 0;
	if (proc_probe(probe_app, o, PROC_PROBE_MS, why, sizeof(why)) == 0)
		return 0;
	if (o->app[0] != '\0')
		snprintf(err, errlen, "--app %s: %s", o->app, why);
	else
		snprintf(err, errlen, "--exec \"%s\": %s", o->exec, why);
	return -1;
}

/*
 * The roles, in the order the master starts them.  The front first: the
 * others talk to it, and none starts while it is down.
 */
static const struct proc_role roles[ROLE_COUNT] = {
	[ROLE_FRONT] = {
		.name = "front",
		.entry = start_front,
		.fds = {
			[FRONT_LISTEN_FD] = PROC_FD_LISTEN,
			[FRONT_CTL_FD] = PROC_FD_CTL,
		},
		.flags = PROC_HUB,
		.quick_ms = PROC_QUICK_MS,
		.backoff_max_ms = PROC_BACKOFF_MAX_MS,
		.settings = front_settings,
	},
	[ROLE_WORKER] = {
		.name = "worker",
		.entry = start_worker,
		.count = count_workers,
		.count_max = count_workers_max,
		.fds = {
			[WORKER_LIFE_FD] = PROC_FD_LIFE,
			[WORKER_CHAN_FD] = PROC_FD_CHAN,
		},
		.flags = PROC_AREA | PROC_PAGE | PROC_RELOAD | PROC_GONE_ANY |
		    PROC_GROUP,
		.quick_ms = PROC_QUICK_MS,
		.backoff_max_ms = PROC_BACKOFF_MAX_MS,
		.probe = probe_workers,
	},
	[ROLE_STORE] = {
		.name = "store",
		.entry = start_store,
		.fds = {
			[STORE_REQ_FD] = PROC_FD_REQ,
			[STORE_REP_FD] = PROC_FD_REP,
			[STORE_LIFE_FD] = PROC_FD_LIFE,
		},
		.quick_ms = PROC_QUICK_MS,
		.backoff_max_ms = PROC_BACKOFF_MAX_MS,
	},
};

/*
 * Started as root with --user: become that user (and --group, or the
 * user's group) for good, after the socket is bound.  Returns -1 with a
 * reason; exit status 64 for a bad name, 1 for a failing system call.
 */
static int
drop_privileges(const struct options *o, char *err, size_t errlen,
    int *code)
{
	struct passwd	*pw;
	struct group	*gr;
	gid_t		 gid;

	*code = PP_EX_BADOPT;
	if (o->user[0] == '\0') {
		if (o->group[0] != '\0') {
			snprintf(err, errlen, "--group: needs --user");
			return -1;
		}
		return 0;
	}
	errno = 0;
	if ((pw = getpwnam(o->user)) == NULL) {
		snprintf(err, errlen, "--user: no user '%s'", o->user);
		return -1;
	}
	gid = pw->pw_gid;
	if (o->group[0] != '\0') {
		if ((gr = getgrnam(o->group)) == NULL) {
			snprintf(err, errlen, "--group: no group '%s'",
			    o->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (pw->pw_uid == geteuid() && gid == getegid())
			return 0;
		snprintf(err, errlen, "--user: becoming '%s' needs root",
		    o->user);
		return -1;
	}
	*code = 1;
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1) {
		snprintf(err, errlen, "cannot become user %s: %s", o->user,
		    strerror(errno));
		return -1;
	}
	if (pw->pw_uid != 0 && setuid(0) != -1) {
		snprintf(err, errlen, "could regain root after dropping it");
		return -1;
	}
	return 0;
}

/*
 * What would fail once serving, tried before: the dispatch area must fit
 * in the address space (and, under strict overcommit, in the commit
 * limit), the database must open, the CPUs must be ours, and each role's
 * probe (--app, --exec) must pass.  0, or the exit status after one line
 * on stderr.
 */
static int
start_checks(const struct options *o)
{
	char		err[700];
	unsigned	r;
	int		code;

	if (dispatch_map(o->threads, dispatch_nbuf_for(o->workers_max, o->threads),
	    o->max_body) == -1) {
		fprintf(stderr, "pipepool: cannot map the dispatch area for "
		    "--threads %u and --max-body %llu (%s): lower one of them\n",
		    o->threads, (unsigned long long)o->max_body, strerror(errno));
		return 1;
	}
	dispatch_unmap();
	if ((code = store_check_db(o->db, err, sizeof(err))) < 0) {
		fprintf(stderr, "pipepool: --db: %s\n", err);
		/* PostgreSQL's -1 is a malformed string; -2, no libpq. */
		return code == -1 && kvdb_is_pg(o->db) ? PP_EX_BADOPT : 1;
	}
	if (o->cpu_affinity[0] != '\0') {
		cpu_set_t	set;

		/* Checked by the option parser; children inherit it.
		 * EINVAL: none of those CPUs is online and allowed to us,
		 * the value's fault; any other error is the system's. */
		if (proc_cpulist(o->cpu_affinity, &set) == -1 ||
		    sched_setaffinity(0, sizeof(set), &set) == -1) {
			code = errno == EINVAL ? PP_EX_BADOPT : 1;
			fprintf(stderr, "pipepool: --cpu-affinity: cannot run "
			    "on CPUs '%s': %s\n", o->cpu_affinity,
			    strerror(errno));
			return code;
		}
	}
	if (o->sched_batch) {
		struct sched_param	sp = { 0 };

		/*
		 * SCHED_BATCH: a woken thread does not preempt the one running
		 * on its CPU (often its waker), so nginx hands the front a
		 * batch of requests before a front thread runs, and a front
		 * thread is asleep again before the worker it woke runs; the
		 * CPU share is SCHED_OTHER's.  Measured in make bench.
		 * Every child and thread inherits it.  Not fatal: pipepool is
		 * only slower without it.
		 */
		if (sched_setscheduler(0, SCHED_BATCH, &sp) == -1)
			fprintf(stderr, "pipepool: --sched batch: %s; running "
			    "under the normal policy\n", strerror(errno));
	}
	for (r = 0; r < ROLE_COUNT; r++)
		if (roles[r].probe != NULL &&
		    roles[r].probe(o, err, sizeof(err)) == -1) {
			fprintf(stderr, "pipepool: %s\n", err);
			return 1;
		}
	return 0;
}

/*
 * The socket to serve: --listen, else an inherited one.  -1 with the exit
 * status in *code (after one line on stderr), or -1 with *code 0 to run as
 * a CGI program.  *unix_path: the socket file we made, if any.
 */
static int
open_socket(const struct options *o, char **unix_path, char *desc,
    size_t desclen, int *code)
{
	char	err[700];
	int	fd = -1;

	*unix_path = NULL;
	*code = 0;
	if (o->listen[0] == '\0' &&
	    (fd = listen_inherited(desc, desclen)) == -1) {
		if (getenv("GATEWAY_INTERFACE") != NULL)
			return -1;
		fprintf(stderr, "pipepool: no socket to serve: give --listen "
		    "(unix:/path, HOST:PORT or :PORT), or start with a "
		    "listening socket on fd 0, or run as a CGI program\n");
		*code = PP_EX_BADOPT;
		return -1;
	}
	if (geteuid() == 0 && o->user[0] == '\0' && !o->allow_root) {
		fprintf(stderr, "pipepool: refusing to run as root: give --user "
		    "(and --group) to drop privileges, or --allow-root\n");
		*code = PP_EX_BADOPT;
		return -1;
	}
	if (o->listen[0] != '\0' && (fd = listen_open(o, unix_path, desc,
	    desclen, err, sizeof(err), code)) == -1) {
		fprintf(stderr, "pipepool: %s\n", err);
		return -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	struct options	 o;
	char		 desc[600], err[700];
	char		*unix_path;
	int		 fd, code;

	proc_title_init(argc, argv);
	log_init("master");
	options_parse(&o, argc, argv);

	if ((fd = open_socket(&o, &unix_path, desc, sizeof(desc),
	    &code)) == -1)
		return code == 0 ? cgi_main(&o) : code;
	if (drop_privileges(&o, err, sizeof(err), &code) == -1) {
		fprintf(stderr, "pipepool: %s\n", err);
		goto fail;
	}
	if ((code = start_checks(&o)) != 0)
		goto fail;
	if (stats_map() == -1)
		fatal("mmap");
	log_info("listening on %s", desc);
	return master_main(&o, roles, fd, unix_path, argc, argv);
fail:
	/* A start that fails after binding: remove the socket file we made. */
	if (unix_path != NULL)
		(void)unlink(unix_path);
	free(unix_path);
	return code;
}
