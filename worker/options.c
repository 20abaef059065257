/*
 * options.c: one table of settings serves the command line (GNU long
 * options, --name VALUE or --name=VALUE) and --config files (INI, one
 * "name = value" per option, parsed by libinih).  Every value is checked;
 * a bad one is reported in one line naming the option, the value and what
 * is accepted.  Command-line options win over the file.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "proc.h"

#define CONFIG_MAX	(1 << 20)	/* a settings file is small */
#define CONFIG_LINE_MAX	198	/* libinih's INI_MAX_LINE 200, less "\n\0" */

enum kind { K_UINT, K_SIZE, K_SECONDS, K_STRING, K_FLAG, K_MODE, K_SYNC,
    K_CPUS, K_WORKERS, K_SCHED };

static const struct opt {
	const char	*name;
	enum kind	 kind;
	size_t		 off;
	size_t		 size;		/* K_STRING buffer */
	uint64_t	 min, max;
	const char	*arg;
	const char	*help;
} opts[] = {
#define O(f)	offsetof(struct options, f)
#define S(f)	sizeof(((struct options *)0)->f)
	{ "listen", K_STRING, O(listen), S(listen), 1, 0, "ADDR",
	    "unix:/path, HOST:PORT or :PORT (default: socket on fd 0)" },
	{ "socket-mode", K_MODE, O(socket_mode), 0, 0, 0777, "MODE",
	    "octal mode of a unix socket (default 0660)" },
	{ "socket-owner", K_STRING, O(socket_owner), S(socket_owner), 1, 0,
	    "USER", "owner of a unix socket" },
	{ "socket-group", K_STRING, O(socket_group), S(socket_group), 1, 0,
	    "GROUP", "group of a unix socket" },
	{ "workers", K_WORKERS, O(workers), 0, 1, PP_WORKERS_MAX, "N|MIN:MAX",
	    "worker processes, 1..1024, or a pool sized to the load between "
	    "MIN and MAX (default: number of CPUs)" },
	{ "spare", K_UINT, O(spare), 0, 0, PP_WORKERS_MAX, "N",
	    "a MIN:MAX pool keeps N workers idle, ready (default 1)" },
	{ "idle-timeout", K_SECONDS, O(idle_timeout), 0, 0, 86400, "SECONDS",
	    "a MIN:MAX pool retires workers idle beyond --spare this long "
	    "(default 10)" },
	{ "max-body", K_SIZE, O(max_body), 0, 0, PP_BODY_MAX, "BYTES",
	    "largest request body, 0..67108864 (default 1048576)" },
	{ "timeout", K_SECONDS, O(timeout), 0, 0, 86400, "SECONDS",
	    "longest a worker may take on a request (default 30)" },
	{ "read-timeout", K_SECONDS, O(read_timeout), 0, 0, 86400, "SECONDS",
	    "longest wait for a client's next bytes (default 10)" },
	{ "grace", K_SECONDS, O(grace), 0, 0, 86400, "SECONDS",
	    "on stop, longest wait for requests in flight (default 10)" },
	{ "queue", K_UINT, O(queue), 0, 0, 65536, "N",
	    "requests that may wait for a worker, 0..65536 (default 128)" },
	{ "queue-target-ms", K_UINT, O(queue_target_ms), 0, 0, 600000, "MS",
	    "answer new requests 503 while those workers take have waited "
	    "over MS for 100 ms (CoDel), 0 = off (default 0)" },
	{ "max-requests", K_UINT, O(max_requests), 0, 0, UINT32_MAX, "N",
	    "retire a worker after N requests, 0 = never (default 0)" },
	{ "worker-max-memory", K_SIZE, O(max_memory), 0, 0, 1ULL << 56,
	    "BYTES", "replace a worker whose PSS passes BYTES, once its "
	    "request is done, 0 = never (default 0)" },
	{ "threads", K_UINT, O(threads), 0, 1, PP_THREADS_MAX, "N",
	    "most FastCGI connections served at once, 1..4096 (default 512)" },
	{ "access-log", K_STRING, O(access_log), S(access_log), 1, 0, "FILE",
	    "one line per request to FILE (- for stderr), reopened on SIGUSR1 "
	    "(default none)" },
	{ "access-log-buffer", K_SIZE, O(access_log_buffer), 0, 0, 1 << 24,
	    "BYTES", "hold access log lines in BYTES, written out when full "
	    "and each second, 0 = a write per line (default 65536)" },
	{ "slow", K_UINT, O(slow_ms), 0, 0, UINT32_MAX, "MS",
	    "log requests slower than MS milliseconds, 0 = off (default 0)" },
	{ "app", K_STRING, O(app), S(app), 1, 0, "FILE.so",
	    "run this application in every worker (default: the built-in)" },
	{ "exec", K_STRING, O(exec), S(exec), 1, 0, "\"PROGRAM ARGS\"",
	    "each worker runs this program and relays requests to it" },
	{ "cgi", K_FLAG, O(cgi), 0, 0, 1, NULL,
	    "run each request's SCRIPT_FILENAME as a CGI program (fcgiwrap)" },
	{ "cgi-root", K_STRING, O(cgi_root), S(cgi_root), 1, 0, "DIR",
	    "with --cgi: run only programs inside DIR (default: any)" },
	{ "debug-routes", K_FLAG, O(debug_routes), 0, 0, 1, NULL,
	    "enable /debug/... fault routes (for tests)" },
	{ "db", K_STRING, O(db), S(db), 1, 0, "PATH",
	    "the store's database: a SQLite file, or a PostgreSQL connection "
	    "string (default pipepool.db)" },
	{ "sync", K_SYNC, O(sync_full), 0, 0, 1, "full|normal",
	    "SQLite synchronous mode of the store (default full)" },
	{ "batch", K_UINT, O(batch), 0, 0, 1, "0|1",
	    "bench only: 0 commits each store request alone (default 1)" },
	{ "config", K_STRING, O(config), S(config), 1, 0, "FILE",
	    "read settings from an INI file (re-read on SIGHUP)" },
	{ "user", K_STRING, O(user), S(user), 1, 0, "USER",
	    "run as this user after binding (when started as root)" },
	{ "group", K_STRING, O(group), S(group), 1, 0, "GROUP",
	    "run as this group (default: the user's group)" },
	{ "allow-root", K_FLAG, O(allow_root), 0, 0, 1, NULL,
	    "allow running as root without --user" },
	/* At most 2^56, the largest user address space of any 64-bit Linux
	 * (x86-64 with 5-level paging): a larger limit limits nothing. */
	{ "worker-rlimit-as", K_SIZE, O(rlimit_as), 0, 1 << 20, 1ULL << 56,
	    "BYTES", "address-space limit of each worker, besides the "
	    "shared dispatch area (default none)" },
	{ "worker-rlimit-nofile", K_SIZE, O(rlimit_nofile), 0, 16, 1 << 20,
	    "N", "open-file limit of each worker (default none)" },
	{ "cpu-affinity", K_CPUS, O(cpu_affinity), S(cpu_affinity), 0, 0,
	    "CPUS", "run every process on these CPUs, as taskset -c (0-3,5)" },
	{ "sched", K_SCHED, O(sched_batch), 0, 0, 1, "batch|normal",
	    "scheduling policy of every process, set at start: batch "
	    "(SCHED_BATCH) or normal (default batch)" },
#undef O
#undef S
};
#define NOPTS	(sizeof(opts) / sizeof(opts[0]))

void
options_defaults(struct options *o)
{
	long	ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	memset(o, 0, sizeof(*o));
	o->socket_mode = 0660;
	o->workers = ncpu < 1 ? 1 : ncpu > PP_WORKERS_MAX ? PP_WORKERS_MAX :
	    (unsigned)ncpu;
	o->workers_max = o->workers;
	o->spare = 1;
	o->idle_timeout = 10;
	o->max_body = 1u << 20;
	o->timeout = 30;
	o->read_timeout = 10;
	o->grace = 10;
	o->queue = 128;
	o->access_log_buffer = 64 * 1024;
	o->threads = 512;
	o->sync_full = 1;
	o->batch = 1;
	o->sched_batch = 1;
	strcpy(o->db, "pipepool.db");
}

static const struct opt *
opt_find(const char *name)
{
	size_t	i;

	for (i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

/* A whole number in base, digits only, from op->min to op->max. */
static int
parse_u64(const struct opt *op, const char *s, int base, uint64_t *v)
{
	char			*end;
	unsigned long long	 n;

	if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	n = strtoull(s, &end, base);
	if (errno != 0 || *end != '\0' || n < op->min || n > op->max)
		return -1;
	*v = n;
	return 0;
}

/*
 * One parser per kind of value: set the field at p from value (NULL for
 * a flag given without one), or -1 if value is not one the option takes.
 */
static int
parse_flag(const struct opt *op, const char *value, char *p)
{
	(void)op;
	if (value == NULL || strcmp(value, "1") == 0 ||
	    strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 ||
	    strcmp(value, "on") == 0)
		*(int *)(void *)p = 1;
	else if (strcmp(value, "0") == 0 || strcmp(value, "no") == 0 ||
	    strcmp(value, "false") == 0 || strcmp(value, "off") == 0)
		*(int *)(void *)p = 0;
	else
		return -1;
	return 0;
}

static int
parse_uint(const struct opt *op, const char *value, char *p)
{
	uint64_t	u;

	if (parse_u64(op, value, 10, &u) == -1)
		return -1;
	if (op->max <= 1)
		*(int *)(void *)p = (int)u;
	else
		*(unsigned *)(void *)p = (unsigned)u;
	return 0;
}

static int
parse_size(const struct opt *op, const char *value, char *p)
{
	return parse_u64(op, value, 10, (uint64_t *)(void *)p);
}

static int
parse_mode(const struct opt *op, const char *value, char *p)
{
	uint64_t	u;

	if (parse_u64(op, value, 8, &u) == -1)
		return -1;
	*(unsigned *)(void *)p = (unsigned)u;
	return 0;
}

/* Seconds, fractions allowed: more than min, at most max. */
static int
parse_seconds(const struct opt *op, const char *value, char *p)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(value, &end);
	if (*value == '\0' || *end != '\0' || errno != 0 || !isfinite(d) ||
	    d <= (double)op->min || d > (double)op->max)
		return -1;
	*(double *)(void *)p = d;
	return 0;
}

/* N (a fixed pool: workers_max = workers = N) or MIN:MAX, each in
 * [min, max], MIN <= MAX; workers_max follows workers (options.h). */
static int
parse_workers(const struct opt *op, const char *value, char *p)
{
	char		 lo[24];
	const char	*colon = strchr(value, ':');
	uint64_t	 a, b;
	size_t		 n;

	if (colon == NULL) {
		if (parse_u64(op, value, 10, &a) == -1)
			return -1;
		b = a;
	} else {
		if ((n = (size_t)(colon - value)) >= sizeof(lo))
			return -1;
		memcpy(lo, value, n);
		lo[n] = '\0';
		if (parse_u64(op, lo, 10, &a) == -1 ||
		    parse_u64(op, colon + 1, 10, &b) == -1 || a > b)
			return -1;
	}
	((unsigned *)(void *)p)[0] = (unsigned)a;
	((unsigned *)(void *)p)[1] = (unsigned)b;
	return 0;
}

static int
parse_string(const struct opt *op, const char *value, char *p)
{
	if (*value == '\0' || strlen(value) >= op->size)
		return -1;
	memcpy(p, value, strlen(value) + 1);
	return 0;
}

static int
parse_cpus(const struct opt *op, const char *value, char *p)
{
	cpu_set_t	set;

	if (strlen(value) >= op->size || proc_cpulist(value, &set) == -1)
		return -1;
	memcpy(p, value, strlen(value) + 1);
	return 0;
}

/* One of two words: 1 for the first, 0 for the second. */
static int
parse_either(const char *value, const char *one, const char *zero, char *p)
{
	if (strcmp(value, one) == 0)
		*(int *)(void *)p = 1;
	else if (strcmp(value, zero) == 0)
		*(int *)(void *)p = 0;
	else
		return -1;
	return 0;
}

/* --sync: full (1) or normal (0). */
static int
parse_sync(const struct opt *op, const char *value, char *p)
{
	(void)op;
	return parse_either(value, "full", "normal", p);
}

/* --sched: batch (1) or normal (0). */
static int
parse_sched(const struct opt *op, const char *value, char *p)
{
	(void)op;
	return parse_either(value, "batch", "normal", p);
}

/*
 * Each kind's parser, and what it accepts, for the message naming a bad
 * value: a format of two unsigned long longs, the option's min and max
 * (a string kind's first is its buffer size instead).
 */
static const struct parser {
	int		(*parse)(const struct opt *, const char *, char *);
	const char	*accepts;
} parsers[] = {
	[K_FLAG] = { parse_flag, "yes or no" },
	[K_UINT] = { parse_uint, "a whole number from %llu to %llu" },
	[K_SIZE] = { parse_size, "a whole number from %llu to %llu" },
	[K_MODE] = { parse_mode, "an octal mode from %#llo to %#llo" },
	[K_SECONDS] = { parse_seconds,
	    "a number of seconds greater than %llu and at most %llu" },
	[K_STRING] = { parse_string,
	    "a non-empty value shorter than %llu bytes" },
	[K_SYNC] = { parse_sync, "one of: full, normal" },
	[K_CPUS] = { parse_cpus, "a CPU list like 1, 0-3 or 0,2-3" },
	[K_SCHED] = { parse_sched, "one of: batch, normal" },
	[K_WORKERS] = { parse_workers, "a whole number from %llu to %llu, or "
	    "MIN:MAX of them with MIN <= MAX" },
};

/* Set one option from text.  -1 with a one-line reason in err. */
int
options_set(struct options *o, const char *name, const char *value,
    char *err, size_t errlen)
{
	const struct opt	*op;
	char			 accepts[128];

	if ((op = opt_find(name)) == NULL) {
		snprintf(err, errlen, "unknown option '%s'", name);
		return -1;
	}
	if (op->kind != K_FLAG && value == NULL) {
		snprintf(err, errlen, "--%s needs a value (%s)", name,
		    op->arg);
		return -1;
	}
	if (parsers[op->kind].parse(op, value, (char *)o + op->off) == 0)
		return 0;
	snprintf(accepts, sizeof(accepts), parsers[op->kind].accepts,
	    (unsigned long long)(op->size != 0 ? op->size : op->min),
	    (unsigned long long)op->max);
	snprintf(err, errlen, "--%s: '%s' is not %s", name, value, accepts);
	return -1;
}

struct ini_ctx {
	struct options	*o;
	const char	*file;
	char		 why[400];
	int		 failed;
};

/* Debian's libinih passes no line number; ini_parse() returns the first
 * failing line, and we keep the reason for it. */
static int
ini_line(void *user, const char *section, const char *name,
    const char *value)
{
	struct ini_ctx	*c = user;
	char		 why[400];

	if (c->failed)
		return 0;
	if (*section != '\0' && strcmp(section, "pipepool") != 0)
		snprintf(why, sizeof(why), "unknown section [%s]", section);
	else if (strcmp(name, "config") == 0)
		snprintf(why, sizeof(why), "'config' cannot be set in a file");
	else if (options_set(c->o, name, value, why, sizeof(why)) == 0)
		return 1;
	snprintf(c->why, sizeof(c->why), "%s", why);
	c->failed = 1;
	return 0;
}

/*
 * Read fd to the end into buf (room for max + 1 bytes, one more than
 * allowed, to see a file that is too large).  The length, or -1.
 */
static ssize_t
read_whole(int fd, char *buf, size_t max)
{
	size_t	len = 0;
	ssize_t	n;

	while (len <= max) {
		n = read(fd, buf + len, max + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return (ssize_t)len;
}

/* What libinih would misread: a NUL byte, a line it would cut in two. */
static int
check_text(const char *file, const char *buf, size_t len, char *err,
    size_t errlen)
{
	size_t	i, col = 0;
	int	line = 1;

	for (i = 0; i < len; i++, col++) {
		if (buf[i] == '\0') {
			snprintf(err, errlen, "%s:%d: a NUL byte", file, line);
			return -1;
		}
		if (buf[i] == '\n') {
			line++;
			col = (size_t)-1;
		} else if (col >= CONFIG_LINE_MAX) {
			snprintf(err, errlen, "%s:%d: longer than %d bytes",
			    file, line, CONFIG_LINE_MAX);
			return -1;
		}
	}
	return 0;
}

/*
 * Read a config file whole, NUL-terminated (the caller frees it): a
 * regular file of at most CONFIG_MAX bytes, with no NUL byte and no line
 * longer than CONFIG_LINE_MAX, which libinih would silently cut in two.
 * NULL with the reason in err.
 */
static char *
config_read(const char *file, char *err, size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	ssize_t		 len;
	int		 fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "--config: cannot read '%s': %s", file,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "--config: '%s' is not a regular file",
		    file);
		goto fail;
	}
	if ((buf = malloc(CONFIG_MAX + 1)) == NULL) {
		snprintf(err, errlen, "--config: out of memory reading '%s'",
		    file);
		goto fail;
	}
	if ((len = read_whole(fd, buf, CONFIG_MAX)) == -1) {
		snprintf(err, errlen, "--config: cannot read '%s': %s", file,
		    strerror(errno));
		goto fail;
	}
	if (len > CONFIG_MAX) {
		snprintf(err, errlen, "--config: '%s' is larger than %d bytes",
		    file, CONFIG_MAX);
		goto fail;
	}
	if (check_text(file, buf, (size_t)len, err, errlen) == -1)
		goto fail;
	buf[len] = '\0';
	close(fd);
	return buf;
fail:
	free(buf);
	if (fd != -1)
		close(fd);
	return NULL;
}

/* Apply a config file.  -1 with "FILE:LINE: reason" (or why) in err. */
int
options_load(struct options *o, const char *file, char *err, size_t errlen)
{
	struct ini_ctx	 c;
	char		*text;
	int		 r;

	if ((text = config_read(file, err, errlen)) == NULL)
		return -1;
	memset(&c, 0, sizeof(c));
	c.o = o;
	c.file = file;
	r = ini_parse_string(text, ini_line, &c);
	free(text);
	if (r == -2) {
		snprintf(err, errlen, "--config: out of memory reading '%s'",
		    file);
		return -1;
	}
	if (r > 0)
		snprintf(err, errlen, "%s:%d: %s", file, r, c.failed ? c.why :
		    "not a 'name = value' line");
	return r == 0 ? 0 : -1;
}

static void
usage(FILE *f)
{
	size_t	i;
	char	left[64];

	fprintf(f, "usage: pipepool [options]\n"
	    "A FastCGI application server: a front takes requests from a web "
	    "server\nand a pool of worker processes answers them.\n\n");
	for (i = 0; i < NOPTS; i++) {
		if (strcmp(opts[i].name, "batch") == 0)
			continue;	/* bench only */
		snprintf(left, sizeof(left), "--%s%s%s", opts[i].name,
		    opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
		fprintf(f, "  %-30s %s\n", left, opts[i].help);
	}
	fprintf(f, "  %-30s %s\n  %-30s %s\n", "--help", "show this help",
	    "--version", "show the version");
}

static void
badopt(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "pipepool: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n");
	exit(PP_EX_BADOPT);
}

/* getopt_long's table: every option of opts[], then --help and --version. */
static void
long_options(struct option *lo)
{
	size_t	i;

	for (i = 0; i < NOPTS; i++) {
		lo[i].name = opts[i].name;
		lo[i].has_arg = opts[i].kind == K_FLAG ? no_argument :
		    required_argument;
		lo[i].flag = NULL;
		lo[i].val = 0;
	}
	lo[NOPTS] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[NOPTS + 1] = (struct option){ "version", no_argument, NULL, 'V' };
	memset(&lo[NOPTS + 2], 0, sizeof(lo[0]));
}

/*
 * One pass over the command line: pass 0 finds --config (and at start-up
 * answers --help and --version: exit 0), pass 1 applies the rest.  -1
 * with the reason in why.
 */
static int
parse_pass(struct options *o, int argc, char **argv, const struct option *lo,
    int pass, int startup, const char **config, char *why, size_t whylen)
{
	int	c, idx;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:", lo, &idx)) != -1) {
		const char *bad = argv[optind - 1];

		if (c == 'h' || c == 'V') {
			if (pass == 1 || !startup)
				continue;
			if (c == 'h')
				usage(stdout);
			else
				printf("pipepool %s\n", PP_VERSION);
			exit(0);
		}
		if (c == '?' || c == ':') {
			snprintf(why, whylen, c == ':' ? "option '%s' needs a "
			    "value" : "unknown option '%s'", bad);
			return -1;
		}
		if (pass == 0) {
			if (strcmp(lo[idx].name, "config") == 0)
				*config = optarg;
			continue;
		}
		if (options_set(o, lo[idx].name, optarg, why, whylen) == -1)
			return -1;
	}
	if (optind < argc) {
		snprintf(why, whylen, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}

/*
 * Options that cannot go together, or name what must exist: --cgi is an
 * application of its own (no --app, no --exec), and its --cgi-root a
 * directory (resolved again by each worker: it may move later).
 * Without --cgi, --cgi-root means nothing and is not looked at.
 */
static int
combine(const struct options *o, char *why, size_t whylen)
{
	struct stat	st;

	if (!o->cgi)
		return 0;
	if (o->app[0] != '\0' || o->exec[0] != '\0') {
		snprintf(why, whylen, "--cgi cannot be combined with %s",
		    o->app[0] != '\0' ? "--app" : "--exec");
		return -1;
	}
	if (o->cgi_root[0] == '\0')
		return 0;
	if (stat(o->cgi_root, &st) == -1) {
		snprintf(why, whylen, "--cgi-root '%s': %s", o->cgi_root,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "--cgi-root '%s': not a directory",
		    o->cgi_root);
		return -1;
	}
	return 0;
}

/*
 * Build the settings: defaults, then the --config file, then the command
 * line.  -1 with the reason in err.  startup: --help and --version print
 * and exit 0 (a reload, through options_reload(), ignores them).
 */
static int
build(struct options *o, int argc, char **argv, int startup, char *err,
    size_t errlen)
{
	struct option	 lo[NOPTS + 3];
	const char	*config = NULL;
	char		 why[600];

	long_options(lo);
	options_defaults(o);
	if (parse_pass(o, argc, argv, lo, 0, startup, &config, why,
	    sizeof(why)) == -1 ||
	    (config != NULL && options_load(o, config, why,
	    sizeof(why)) == -1) ||
	    parse_pass(o, argc, argv, lo, 1, startup, &config, why,
	    sizeof(why)) == -1 || combine(o, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	return 0;
}

void
options_parse(struct options *o, int argc, char **argv)
{
	char	err[700];

	if (build(o, argc, argv, 1, err, sizeof(err)) == -1)
		badopt("%s%s (see --help)", err, "");
}

/* For reloads: the same build, never exits.  -1 with the reason. */
int
options_reload(struct options *o, int argc, char **argv, char *err,
    size_t errlen)
{
	return build(o, argc, argv, 0, err, errlen);
}
