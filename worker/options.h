/* options.h: pipepool's settings, from the command line and --config. */
#ifndef PP_OPTIONS_H
#define PP_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define PP_VERSION	"0.1.0"
#define PP_WORKERS_MAX	1024
/* --max-body's ceiling: also the most a body is drained to keep a
 * connection, and the largest value the store can answer. */
#define PP_BODY_MAX	(64u << 20)
#define PP_THREADS_MAX	4096
#define PP_EX_BADOPT	64	/* EX_USAGE */

struct options {
	char		listen[512];	/* "" = fd 0, CGI, or LISTEN_FDS */
	unsigned	socket_mode;
	char		socket_owner[64];
	char		socket_group[64];
	unsigned	workers;	/* --workers N, or MIN of MIN:MAX */
	unsigned	workers_max;	/* MAX; = workers: a fixed pool.  Must
					 * follow workers (parse_workers) */
	unsigned	spare;		/* idle workers a MIN:MAX pool keeps */
	double		idle_timeout;	/* seconds */
	uint64_t	max_body;
	double		timeout;	/* seconds */
	double		read_timeout;
	double		grace;
	unsigned	queue;
	unsigned	queue_target_ms;	/* 0: off */
	unsigned	max_requests;
	uint64_t	max_memory;	/* --worker-max-memory; 0: none */
	unsigned	threads;	/* most FastCGI connections at once */
	unsigned	slow_ms;	/* 0: no slow log */
	char		access_log[512];	/* "": none, "-": stderr */
	uint64_t	access_log_buffer;	/* bytes; 0: a write a line */
	int		debug_routes;
	char		app[512];	/* --app FILE.so; "" = the built-in one */
	char		exec[1024];	/* --exec "PROGRAM ARGS"; "" = none */
	int		cgi;		/* --cgi: run SCRIPT_FILENAME */
	char		cgi_root[512];	/* --cgi-root DIR; "" = anywhere */
	char		db[512];
	int		sync_full;
	int		batch;		/* bench-only: 0 = one txn per request */
	char		config[512];
	char		user[64];
	char		group[64];
	int		allow_root;
	uint64_t	rlimit_as;	/* 0: unchanged */
	uint64_t	rlimit_nofile;
	char		cpu_affinity[256];	/* "" = any CPU */
	int		sched_batch;	/* --sched batch: SCHED_BATCH */
};

_Static_assert(offsetof(struct options, workers_max) ==
    offsetof(struct options, workers) + sizeof(unsigned),
    "parse_workers writes workers and workers_max as a pair");

void	options_defaults(struct options *);
void	options_parse(struct options *, int, char **);
int	options_load(struct options *, const char *file, char *err,
	    size_t errlen);
int	options_reload(struct options *, int, char **, char *, size_t);
int	options_set(struct options *, const char *name, const char *value,
	    char *err, size_t errlen);

#endif
