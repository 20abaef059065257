/*
 * main.c: pipepool's entry point.  Reads the settings, chooses the mode
 * (--listen, an inherited socket, or CGI), opens the socket, maps the
 * shared counters and becomes the master.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgi.h"
#include "listen.h"
#include "dispatch.h"
#include "log.h"
#include "master.h"
#include "options.h"
#include "proc.h"
#include "stats.h"
#include "store.h"

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

	*code = EX_BADOPT;
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

/* A start that fails after binding: remove the socket file we made. */
static void
start_failed(char *unix_path)
{
	if (unix_path != NULL)
		(void)unlink(unix_path);
	free(unix_path);
}

int
main(int argc, char **argv)
{
	struct options	 o;
	char		 desc[600], err[700];
	char		*unix_path = NULL;
	int		 fd = -1, code;

	proc_title_init(argc, argv);
	log_init("master");
	options_parse(&o, argc, argv);

	if (o.listen[0] == '\0' && (fd = listen_inherited(desc,
	    sizeof(desc))) == -1) {
		if (getenv("GATEWAY_INTERFACE") != NULL)
			return cgi_main(&o);
		fprintf(stderr, "pipepool: no socket to serve: give --listen "
		    "(unix:/path, HOST:PORT or :PORT), or start with a "
		    "listening socket on fd 0, or run as a CGI program\n");
		return EX_BADOPT;
	}
	if (geteuid() == 0 && o.user[0] == '\0' && !o.allow_root) {
		fprintf(stderr, "pipepool: refusing to run as root: give --user "
		    "(and --group) to drop privileges, or --allow-root\n");
		return EX_BADOPT;
	}
	if (o.listen[0] != '\0' && (fd = listen_open(&o, &unix_path, desc,
	    sizeof(desc), err, sizeof(err), &code)) == -1) {
		fprintf(stderr, "pipepool: %s\n", err);
		return code;
	}
	if (drop_privileges(&o, err, sizeof(err), &code) == -1) {
		fprintf(stderr, "pipepool: %s\n", err);
		start_failed(unix_path);
		return code;
	}
	/* The dispatch area must fit in the address space (and, under strict
	 * overcommit, in the commit limit): try it once before serving. */
	if (dispatch_map(o.threads, dispatch_nbuf_for(o.workers, o.threads),
	    o.max_body) == -1) {
		fprintf(stderr, "pipepool: cannot map the dispatch area for "
		    "--threads %u and --max-body %llu (%s): lower one of them\n",
		    o.threads, (unsigned long long)o.max_body, strerror(errno));
		start_failed(unix_path);
		return 1;
	}
	dispatch_unmap();
	if (store_check_db(o.db, err, sizeof(err)) == -1) {
		fprintf(stderr, "pipepool: --db: %s\n", err);
		start_failed(unix_path);
		return 1;
	}
	if (o.cpu_affinity[0] != '\0') {
		cpu_set_t	set;

		/* Checked by the option parser; children inherit it.
		 * EINVAL: none of those CPUs is online and allowed to us,
		 * the value's fault; any other error is the system's. */
		if (proc_cpulist(o.cpu_affinity, &set) == -1 ||
		    sched_setaffinity(0, sizeof(set), &set) == -1) {
			code = errno == EINVAL ? EX_BADOPT : 1;
			fprintf(stderr, "pipepool: --cpu-affinity: cannot run "
			    "on CPUs '%s': %s\n", o.cpu_affinity,
			    strerror(errno));
			start_failed(unix_path);
			return code;
		}
	}
	if (stats_map() == -1)
		fatal("mmap");
	log_info("listening on %s", desc);
	return master_main(&o, fd, unix_path, argc, argv);
}
