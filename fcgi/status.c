/*
 * status.c: renders /status (JSON, or a small self-refreshing HTML page)
 * and /metrics (Prometheus text exposition 0.0.4) from the shared counters
 * in stats.h.  The front calls these on its own threads, so they never
 * block on I/O and never allocate: output goes through a bounded appender
 * over the caller's buffer, and a page that does not fit is reported as 0
 * rather than cut short.
 *
 * Workers are the slots with a pid that are not the front; retiring ones
 * (on their way out after a reload or --max-requests) are left out, so
 * each listed worker is "starting", "idle" or "busy".
 *
 * Each worker's own page (stats.h) is untrusted.  Before each page is
 * rendered, and once more when its slot goes to a new worker, every page
 * is folded into the global counters, each field read once: what has been
 * counted of a page only grows, its requests by no more than the front
 * accepted and nobody has counted yet (accepted - completed), its status
 * classes and histogram buckets each to no more in sum than its counted
 * requests, its duration sum to no more than those buckets' bounds allow.
 * So a lying worker cannot make any total jump, go back, or exceed
 * "accepted" by more than the requests in flight, and its state word
 * shows as idle, busy or starting, nothing else.  Folding and the page
 * table are under one mutex, held for the fold and the counters' copy
 * only, never across I/O.
 */
#include <sys/mman.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "stats.h"
#include "status.h"

#define LOAD(x)	atomic_load_explicit(&(x), memory_order_relaxed)

/* A bounded appender: once something does not fit, it stays full. */
struct out {
	char	*p;
	size_t	 cap;
	size_t	 len;
	int	 full;
};

/* One read of every figure, so a page agrees with itself. */
struct snap {
	int64_t		now;
	int64_t		started;
	int32_t		master_pid;
	uint64_t	accepted, completed, cls[6];	/* sums of codes[] */
	uint64_t	codes[STATS_CODES];
	uint64_t	rejected, timeouts, crashes, respawns, abandoned;
	uint64_t	shed, shed_spells;
	uint64_t	alog_errors;
	uint32_t	qdepth, qcap;
	uint32_t	pmin, pmax, ptarget;	/* --workers */
	unsigned	npool;		/* the pool's workers up or starting */
	uint64_t	hist[STATS_HIST + 1];
	uint64_t	dur_us;
	uint64_t	qhist[STATS_QHIST + 1], qwait_us;
	uint32_t	qoldest_ms;
	unsigned	nstarting, nidle, nbusy;	/* workers only */
	int		store;		/* the store's slot, -1: none up */
	uint32_t	store_backend, store_db;	/* see stats.h */
	uint64_t	store_reconnects;
	uint8_t		st[PROC_SLOTS];	/* enum wstate; WS_EMPTY: hidden */
	uint64_t	req[PROC_SLOTS];	/* requests served, by slot */
	int64_t		pss[PROC_SLOTS];	/* KiB (the master's), -1 */
	uint64_t	pss_workers;	/* their sum, KiB */
	/* The last incidents of both rings, newest first. */
	struct incident	inc[2 * INCIDENTS_MAX];
	unsigned	ninc;
	uint64_t	inc_counts[INC_KINDS];
	/* The requests workers hold now: held[nheld], the one buffer,
	 * whose lock the snap holds until snap_done. */
	const struct held *held;
	unsigned	nheld;
};

/* The largest --timeout in microseconds: a worker past it is killed, so
 * no request it answered itself took longer. */
#define DUR_MAX_US	(86400ULL * 1000000)

/* What has been counted of one worker's page so far. */
struct counted {
	uint64_t	req, codes[STATS_CODES], hist[STATS_HIST + 1], dur;
	uint64_t	qhist[STATS_QHIST + 1], qdur;
};

static pthread_mutex_t		 pages_lk = PTHREAD_MUTEX_INITIALIZER;
static const struct stats_page	*pages[PROC_SLOTS];	/* read-only maps */
static int32_t			 page_pid[PROC_SLOTS];
static struct counted		 counted[PROC_SLOTS];
/* The requests workers hold, for the page being rendered (under held_lk,
 * from snap_take to snap_done: one page at a time), and their source. */
static pthread_mutex_t		 held_lk = PTHREAD_MUTEX_INITIALIZER;
static struct held		 held_buf[PP_WORKERS_MAX];
static unsigned			(*_Atomic held_fn)(struct held *, unsigned);

/* The counters of the JSON "counters" object, in order. */
#define NCOUNTERS	10

static void	out_printf(struct out *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
out_init(struct out *o, char *buf, size_t cap)
{
	o->p = buf;
	o->cap = cap;
	o->len = 0;
	o->full = 0;
}

static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list	ap;
	size_t	room;
	int	n;

	if (o->full)
		return;
	room = o->cap - o->len;
	if (room == 0) {
		o->full = 1;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		o->full = 1;
		return;
	}
	o->len += (size_t)n;
}

static size_t
out_end(struct out *o)
{
	if (o->full || o->len == 0) {
		if (o->cap > 0)
			o->p[0] = '\0';
		return 0;
	}
	return o->len;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	uint64_t	r;

	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static void
add_sat(_Atomic uint64_t *x, uint64_t d)
{
	uint64_t	o = LOAD(*x);

	while (!atomic_compare_exchange_weak_explicit(x, &o, sat_add(o, d),
	    memory_order_relaxed, memory_order_relaxed))
		;
}

/*
 * Raise have[k] towards src[k] (each read once), in order, keeping their
 * sum within limit, and add what was granted to dst[k].  What is not
 * granted now may be later, once limit has grown.
 */
static void
grant(const _Atomic uint64_t *src, uint64_t *have, _Atomic uint64_t *dst,
    int n, uint64_t limit)
{
	uint64_t	sum = 0, v, d;
	int		k;

	for (k = 0; k < n; k++)
		sum += have[k];		/* never more than limit */
	for (k = 0; k < n; k++) {
		v = LOAD(src[k]);
		d = v > have[k] ? v - have[k] : 0;
		if (d > limit - sum)
			d = limit - sum;
		if (d == 0)
			continue;
		have[k] += d;
		sum += d;
		atomic_fetch_add_explicit(&dst[k], d, memory_order_relaxed);
	}
}

/*
 * A page's sum of times, read once: no more than its granted buckets'
 * bounds allow (the last bucket's bound: DUR_MAX_US), added to *dst as
 * far as it grew past *have.
 */
static void
grant_sum(const _Atomic uint64_t *src, uint64_t *have, _Atomic uint64_t *dst,
    const uint64_t *h, const uint64_t *bounds_us, int n)
{
	uint64_t	v, cap = 0;
	int		k;

	for (k = 0; k <= n; k++)
		cap = sat_add(cap, sat_mul(h[k], k < n ? bounds_us[k] :
		    DUR_MAX_US));
	if ((v = LOAD(*src)) > cap)
		v = cap;
	if (v > *have) {
		add_sat(dst, v - *have);
		*have = v;
	}
}

/* Count what is new in slot i's page (see the top); under pages_lk. */
static void
fold(unsigned i)
{
	const struct stats_page	*p = pages[i];
	struct counted		*c = &counted[i];
	uint64_t		 v, room;

	v = atomic_load_explicit(&p->requests, memory_order_acquire);
	room = LOAD(stats->completed);
	room = LOAD(stats->accepted) > room ? LOAD(stats->accepted) - room :
	    0;
	if (v > c->req) {
		v = v - c->req < room ? v - c->req : room;
		c->req += v;
		STAT_ADD(completed, v);
	}
	grant(p->codes, c->codes, stats->codes, STATS_CODES, c->req);
	grant(p->hist, c->hist, stats->hist, STATS_HIST + 1, c->req);
	grant_sum(&p->duration_us_sum, &c->dur, &stats->duration_us_sum,
	    c->hist, stats_hist_bounds_us, STATS_HIST);
	grant(p->qhist, c->qhist, stats->qhist, STATS_QHIST + 1, c->req);
	grant_sum(&p->qwait_us_sum, &c->qdur, &stats->qwait_us_sum, c->qhist,
	    stats_qhist_bounds_us, STATS_QHIST);
}

int
status_attach(uint32_t slot, int fd, int32_t pid)
{
	const struct stats_page	*p = NULL, *old;
	int			 rc = 0;

	if (fd != -1) {
		p = mmap(NULL, sizeof(*p), PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (p == MAP_FAILED) {
			p = NULL;
			rc = -1;
		}
	}
	if (slot >= PROC_SLOTS) {
		if (p != NULL)
			munmap((void *)(uintptr_t)p, sizeof(*p));
		return -1;
	}
	pthread_mutex_lock(&pages_lk);
	if ((old = pages[slot]) != NULL)
		fold(slot);	/* its worker is gone: these are its last */
	pages[slot] = p;
	page_pid[slot] = pid;
	memset(&counted[slot], 0, sizeof(counted[slot]));
	pthread_mutex_unlock(&pages_lk);
	if (old != NULL)
		munmap((void *)(uintptr_t)old, sizeof(*old));
	return rc;
}

/* Slot i's page, if it belongs to the worker now in the slot. */
static const struct stats_page *
slot_page(unsigned i, int32_t pid)
{
	return pages[i] != NULL && page_pid[i] == pid ? pages[i] : NULL;
}

/* The state shown for slot i (WS_EMPTY: not listed); under pages_lk. */
static uint8_t
slot_state(unsigned i)
{
	const struct stats_worker	*w = &stats->w[i];
	const struct stats_page		*p;
	int32_t				 pid = LOAD(w->pid);
	uint32_t			 st = LOAD(w->state);

	if (pid == 0 || LOAD(w->role) == ROLE_FRONT)
		return WS_EMPTY;
	if (st != WS_STARTING && st != WS_IDLE && st != WS_BUSY)
		return WS_EMPTY;	/* empty or retiring */
	if ((p = slot_page(i, pid)) != NULL) {
		/* The worker's word: anything else is a worker that has
		 * not reached its loop yet (or lies about itself). */
		st = atomic_load_explicit(&p->state, memory_order_relaxed);
		if (st != WS_IDLE && st != WS_BUSY)
			st = WS_STARTING;
	}
	return (uint8_t)st;
}

/* A --cgi worker's program, as its page says: untrusted, bounded. */
struct cgi_info {
	int32_t	pid;
	int64_t	elapsed_ms;		/* clamped to 0..--timeout's max */
	char	script[STATS_SCRIPT_MAX];	/* NUL-ended */
};

/*
 * Slot i's running program, each field read once under the page's
 * seqlock (stats.h): 1, or 0 if none, or if the page was being written
 * (or lies: an odd or moving sequence).
 */
static int
cgi_take(unsigned i, int32_t pid, struct cgi_info *c)
{
	const struct stats_page	*p;
	struct timespec		 ts;
	uint32_t		 s1 = 1, s2 = 0;
	int64_t			 started = 0, now;

	c->pid = 0;
	pthread_mutex_lock(&pages_lk);
	if ((p = slot_page(i, pid)) != NULL) {
		s1 = atomic_load(&p->cgi_seq);
		c->pid = LOAD(p->cgi_pid);
		started = LOAD(p->cgi_started_ms);
		memcpy(c->script, p->cgi_script, sizeof(c->script));
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load(&p->cgi_seq);
	}
	pthread_mutex_unlock(&pages_lk);
	if (s1 != s2 || (s1 & 1) || c->pid <= 0)
		return 0;
	c->script[sizeof(c->script) - 1] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	c->elapsed_ms = started > 0 && started <= now ? now - started : 0;
	if (c->elapsed_ms > (int64_t)(DUR_MAX_US / 1000))
		c->elapsed_ms = (int64_t)(DUR_MAX_US / 1000);
	return 1;
}

/* s in a JSON string: '"', '\\' and every byte but printable ASCII
 * as \u00XX (a path is bytes, not UTF-8). */
static void
out_json_str(struct out *o, const char *s)
{
	unsigned char	b;

	for (; (b = (unsigned char)*s) != '\0'; s++)
		if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\')
			out_printf(o, "%c", b);
		else
			out_printf(o, "\\u%04x", b);
}

/* s in HTML text: the five specials as entities, other bytes outside
 * printable ASCII as '?'. */
static void
out_html_str(struct out *o, const char *s)
{
	unsigned char	b;

	for (; (b = (unsigned char)*s) != '\0'; s++)
		switch (b) {
		case '&': out_printf(o, "&amp;"); break;
		case '<': out_printf(o, "&lt;"); break;
		case '>': out_printf(o, "&gt;"); break;
		case '"': out_printf(o, "&quot;"); break;
		case '\'': out_printf(o, "&#39;"); break;
		default:
			out_printf(o, "%c", b >= 0x20 && b < 0x7f ? b : '?');
		}
}

static const char *
state_name(uint8_t st)
{
	return st == WS_STARTING ? "starting" : st == WS_IDLE ? "idle" :
	    "busy";
}

static const char *
slot_kind(const struct stats_worker *w)
{
	return LOAD(w->role) == ROLE_STORE ? "store" : "worker";
}

/* Both rings, merged newest first, and the counts by kind. */
static void
incidents_take(struct snap *s)
{
	struct incident	m[INCIDENTS_MAX], f[INCIDENTS_MAX];
	unsigned	nm, nf, i = 0, j = 0;

	nm = incident_read(&stats->inc_master, m, INCIDENTS_MAX);
	nf = incident_read(&stats->inc_front, f, INCIDENTS_MAX);
	s->ninc = 0;
	while (i < nm || j < nf)
		s->inc[s->ninc++] = j >= nf || (i < nm &&
		    m[i].unix_ms >= f[j].unix_ms) ? m[i++] : f[j++];
	for (i = 0; i < INC_KINDS; i++)
		s->inc_counts[i] = LOAD(stats->incidents[i]);
}

/* One read of every figure; rows: also the requests workers hold (the
 * pages' rows; /metrics shows none, and so walks no connection). */
static void
snap_take(struct snap *s, int rows)
{
	const struct stats_page	*p;
	unsigned		 i;
	unsigned		(*fn)(struct held *, unsigned);

	pthread_mutex_lock(&pages_lk);
	for (i = 0; i < PROC_SLOTS; i++)
		if (pages[i] != NULL)
			fold(i);
	s->now = (int64_t)time(NULL);
	s->started = LOAD(stats->started_unix);
	s->master_pid = LOAD(stats->master_pid);
	s->accepted = LOAD(stats->accepted);
	s->completed = LOAD(stats->completed);
	memset(s->cls, 0, sizeof(s->cls));
	for (i = 0; i < STATS_CODES; i++) {
		s->codes[i] = LOAD(stats->codes[i]);
		s->cls[stats_codes[i] / 100] = sat_add(s->cls[stats_codes[i] /
		    100], s->codes[i]);
	}
	s->rejected = LOAD(stats->rejected_overload);
	s->abandoned = LOAD(stats->abandoned);
	s->shed = LOAD(stats->shed);
	s->shed_spells = LOAD(stats->shed_spells);
	s->store_backend = LOAD(stats->store_backend);
	s->store_db = LOAD(stats->store_db);
	s->store_reconnects = LOAD(stats->store_reconnects);
	s->alog_errors = LOAD(stats->access_log_errors);
	s->timeouts = LOAD(stats->timeouts);
	s->crashes = LOAD(stats->worker_crashes);
	s->respawns = LOAD(stats->respawns);
	s->qdepth = LOAD(stats->queue_depth);
	s->qcap = LOAD(stats->queue_capacity);
	s->pmin = LOAD(stats->pool_min);
	s->pmax = LOAD(stats->pool_max);
	s->ptarget = LOAD(stats->pool_target);
	for (i = 0; i <= STATS_HIST; i++)
		s->hist[i] = LOAD(stats->hist[i]);
	s->dur_us = LOAD(stats->duration_us_sum);
	for (i = 0; i <= STATS_QHIST; i++)
		s->qhist[i] = LOAD(stats->qhist[i]);
	s->qwait_us = LOAD(stats->qwait_us_sum);
	s->qoldest_ms = LOAD(stats->queue_oldest_ms);
	s->nstarting = s->nidle = s->nbusy = s->npool = 0;
	s->store = -1;
	s->pss_workers = 0;
	for (i = 0; i < PROC_SLOTS; i++) {
		/* Relayed requests (the front's count), plus those the
		 * worker answered itself, as counted by fold(). */
		s->req[i] = LOAD(stats->w[i].requests);
		if ((p = slot_page(i, LOAD(stats->w[i].pid))) != NULL)
			s->req[i] = sat_add(s->req[i], counted[i].req);
		s->st[i] = slot_state(i);
		s->pss[i] = LOAD(stats->w[i].pss_kib);
		if (s->st[i] == WS_EMPTY)
			continue;
		if (LOAD(stats->w[i].role) != ROLE_WORKER) {
			s->store = (int)i;	/* the only other role shown */
			continue;
		}
		s->npool++;
		if (s->pss[i] > 0)
			s->pss_workers = sat_add(s->pss_workers,
			    (uint64_t)s->pss[i]);
		switch (s->st[i]) {
		case WS_STARTING:
			s->nstarting++;
			break;
		case WS_IDLE:
			s->nidle++;
			break;
		case WS_BUSY:
			s->nbusy++;
			break;
		}
	}
	pthread_mutex_unlock(&pages_lk);
	incidents_take(s);
	s->held = held_buf;
	s->nheld = 0;
	if (!rows)
		return;
	pthread_mutex_lock(&held_lk);
	if ((fn = atomic_load(&held_fn)) != NULL &&
	    (s->nheld = fn(held_buf, PP_WORKERS_MAX)) > PP_WORKERS_MAX)
		s->nheld = PP_WORKERS_MAX;
}

static void
snap_done(struct snap *s, int rows)
{
	s->held = NULL;
	s->nheld = 0;
	if (rows)
		pthread_mutex_unlock(&held_lk);
}

void
status_held_source(unsigned (*fn)(struct held *, unsigned max))
{
	atomic_store(&held_fn, fn);
}

/* The request the worker pid holds now, or NULL. */
static const struct held *
held_of(const struct snap *s, int32_t pid)
{
	unsigned	i;

	for (i = 0; i < s->nheld; i++)
		if (s->held[i].pid == pid)
			return &s->held[i];
	return NULL;
}

static int64_t
uptime(const struct snap *s)
{
	/* No subtraction that could overflow on a nonsense start time. */
	if (s->started <= 0 || s->now <= s->started)
		return 0;
	return s->now - s->started;
}

/* The label of codes[i]: "503", or "4xx" for a class bucket. */
static const char *
code_label(int i, char *buf)
{
	if (i >= STATS_CODES_EXACT)
		(void)snprintf(buf, 8, "%dxx", stats_codes[i] / 100);
	else
		(void)snprintf(buf, 8, "%u", (unsigned)stats_codes[i]);
	return buf;
}

/* "status_codes": every code counted so far, by its label. */
static void
json_codes(struct out *o, const struct snap *s)
{
	char	label[8];
	int	i, first = 1;

	out_printf(o, ",\"status_codes\":{");
	for (i = 0; i < STATS_CODES; i++) {
		if (s->codes[i] == 0)
			continue;
		out_printf(o, "%s\"%s\":%llu", first ? "" : ",",
		    code_label(i, label), (unsigned long long)s->codes[i]);
		first = 0;
	}
	out_printf(o, "}");
}

static void
counters(const struct snap *s, const char **names, uint64_t *vals)
{
	static const char *const n[NCOUNTERS] = {
		"accepted", "completed", "status_2xx", "status_3xx",
		"status_4xx", "status_5xx", "rejected_overload", "timeouts",
		"worker_crashes", "respawns"
	};
	int	i;

	for (i = 0; i < NCOUNTERS; i++)
		names[i] = n[i];
	vals[0] = s->accepted;
	vals[1] = s->completed;
	vals[2] = s->cls[2];
	vals[3] = s->cls[3];
	vals[4] = s->cls[4];
	vals[5] = s->cls[5];
	vals[6] = s->rejected;
	vals[7] = s->timeouts;
	vals[8] = s->crashes;
	vals[9] = s->respawns;
}

/* The front's kinds say what a request's client got; the master's what
 * happened to a worker. */
static int
incident_of_request(uint32_t kind)
{
	return kind == INC_CRASH || kind == INC_TIMEOUT ||
	    kind == INC_MALFORMED || kind == INC_OVERLOAD;
}

static void
json_incidents(struct out *o, const struct snap *s)
{
	const struct incident	*e;
	unsigned		 i;

	out_printf(o, ",\"incidents\":[");
	for (i = 0; i < s->ninc; i++) {
		e = &s->inc[i];
		out_printf(o, "%s{\"time_unix_ms\":%lld,\"kind\":\"%s\","
		    "\"pid\":%ld,", i ? "," : "", (long long)e->unix_ms,
		    incident_name(e->kind), (long)e->pid);
		if (incident_of_request(e->kind)) {
			out_printf(o, "\"request\":\"");
			out_json_str(o, e->text);
			out_printf(o, "\",\"status\":%u}", e->status);
		} else {
			out_printf(o, "\"what\":\"");
			out_json_str(o, e->text);
			out_printf(o, "\"}");
		}
	}
	out_printf(o, "]");
}

/* The store's database: its backend, state and reconnects. */
static const char *
db_backend(const struct snap *s)
{
	return s->store_backend == 1 ? "postgresql" : "sqlite";
}

static const char *
db_state(const struct snap *s)
{
	return s->store < 0 || s->store_db == 0 ? "down" : s->store_db == 1 ?
	    "up" : "read-only";
}

/* One process's object in /status: a worker's row, or the store. */
static void
json_proc(struct out *o, const struct snap *s, unsigned i)
{
	const struct stats_worker	*w = &stats->w[i];
	const struct held		*h;
	struct cgi_info			 c;
	int32_t				 pid = LOAD(w->pid);

	out_printf(o, "{\"id\":%u,\"pid\":%ld,\"state\":\"%s\","
	    "\"requests\":%llu,\"started_unix\":%lld,\"kind\":\"%s\"",
	    (unsigned)LOAD(w->number), (long)pid, state_name(s->st[i]),
	    (unsigned long long)s->req[i], (long long)LOAD(w->started_unix),
	    slot_kind(w));
	if (s->pss[i] >= 0)
		out_printf(o, ",\"pss_kib\":%lld", (long long)s->pss[i]);
	else
		out_printf(o, ",\"pss_kib\":null");
	if ((h = held_of(s, pid)) != NULL) {
		out_printf(o, ",\"request\":{\"line\":\"");
		out_json_str(o, h->line);
		out_printf(o, "\",\"elapsed_ms\":%lld}",
		    (long long)h->elapsed_ms);
	} else if ((int)i != s->store)
		out_printf(o, ",\"request\":null");
	if ((int)i == s->store)
		out_printf(o, ",\"db\":{\"backend\":\"%s\",\"state\":\"%s\","
		    "\"reconnects\":%llu}", db_backend(s), db_state(s),
		    (unsigned long long)s->store_reconnects);
	if (cgi_take(i, pid, &c)) {
		out_printf(o, ",\"cgi\":{\"pid\":%ld,\"script\":\"",
		    (long)c.pid);
		out_json_str(o, c.script);
		out_printf(o, "\",\"elapsed_ms\":%lld}",
		    (long long)c.elapsed_ms);
	}
	out_printf(o, "}");
}

size_t
status_json(char *buf, size_t cap)
{
	struct out		 o;
	struct snap		 s;
	const char		*names[NCOUNTERS];
	uint64_t		 vals[NCOUNTERS];
	int			 i, first = 1;

	out_init(&o, buf, cap);
	snap_take(&s, 1);
	out_printf(&o, "{\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%lld,"
	    "\"workers\":[", PP_VERSION, (long)s.master_pid,
	    (long long)uptime(&s));
	for (i = 0; i < PROC_SLOTS && !o.full; i++) {
		if (s.st[i] == WS_EMPTY || i == s.store)
			continue;
		out_printf(&o, "%s", first ? "" : ",");
		json_proc(&o, &s, (unsigned)i);
		first = 0;
	}
	out_printf(&o, "],\"store\":");
	if (s.store >= 0)
		json_proc(&o, &s, (unsigned)s.store);
	else
		out_printf(&o, "null");
	out_printf(&o, ",\"pool\":{\"min\":%u,\"max\":%u,\"target\":%u,"
	    "\"size\":%u},\"queue\":{\"depth\":%u,\"capacity\":%u,"
	    "\"oldest_wait_ms\":%u,\"shed\":%llu},\"counters\":{",
	    (unsigned)s.pmin, (unsigned)s.pmax, (unsigned)s.ptarget, s.npool,
	    (unsigned)s.qdepth, (unsigned)s.qcap, (unsigned)s.qoldest_ms,
	    (unsigned long long)s.shed);
	counters(&s, names, vals);
	for (i = 0; i < NCOUNTERS; i++)
		out_printf(&o, "%s\"%s\":%llu", i ? "," : "", names[i],
		    (unsigned long long)vals[i]);
	out_printf(&o, "}");
	json_codes(&o, &s);
	json_incidents(&o, &s);
	out_printf(&o, "}\n");
	snap_done(&s, 1);
	return out_end(&o);
}

/* The incidents' table, newest first. */
static void
html_incidents(struct out *o, const struct snap *s)
{
	const struct incident	*e;
	struct tm		 tm;
	time_t			 t;
	unsigned		 i;

	out_printf(o, "<h2>Incidents</h2>\n<table id=\"incidents\">\n"
	    "<tr><th class=\"l\">time (UTC)</th><th class=\"l\">kind</th>"
	    "<th>pid</th><th class=\"l\">request, or what happened</th>"
	    "<th>client got</th></tr>\n");
	for (i = 0; i < s->ninc; i++) {
		e = &s->inc[i];
		t = (time_t)(e->unix_ms / 1000);
		if (gmtime_r(&t, &tm) == NULL)
			memset(&tm, 0, sizeof(tm));
		out_printf(o, "<tr><td class=\"l\">%04d-%02d-%02d %02d:%02d:"
		    "%02d.%03d</td><td class=\"l\">%s</td><td>%ld</td>"
		    "<td class=\"l\">", tm.tm_year + 1900, tm.tm_mon + 1,
		    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		    (int)(e->unix_ms % 1000 + 1000) % 1000,
		    incident_name(e->kind), (long)e->pid);
		out_html_str(o, e->text);
		if (incident_of_request(e->kind))
			out_printf(o, "</td><td>%u</td></tr>\n", e->status);
		else
			out_printf(o, "</td><td></td></tr>\n");
	}
	if (s->ninc == 0)
		out_printf(o, "<tr><td class=\"l\" colspan=\"5\">none</td>"
		    "</tr>\n");
	out_printf(o, "</table>\n");
}

#define HTML_PROC_HEAD	"<tr><th>id</th><th>pid</th><th class=\"l\">kind</th>" \
	"<th class=\"l\">state</th><th>requests</th><th>started (unix)</th>" \
	"<th>PSS (KiB)</th><th class=\"l\">request</th><th>for (ms)</th>" \
	"<th class=\"l\">program (--cgi)</th></tr>\n"

/* One row of the workers' table (or the store's): slot i. */
static void
html_worker(struct out *o, const struct snap *s, unsigned i)
{
	const struct stats_worker	*w = &stats->w[i];
	const char			*st = state_name(s->st[i]);
	const struct held		*h;
	struct cgi_info			 c;
	int32_t				 pid = LOAD(w->pid);

	out_printf(o, "<tr><td>%u</td><td>%ld</td><td class=\"l\">%s</td>"
	    "<td class=\"l %s\">%s</td><td>%llu</td><td>%lld</td><td>",
	    (unsigned)LOAD(w->number), (long)pid, slot_kind(w), st, st,
	    (unsigned long long)s->req[i], (long long)LOAD(w->started_unix));
	if (s->pss[i] >= 0)
		out_printf(o, "%lld", (long long)s->pss[i]);
	out_printf(o, "</td><td class=\"l req\">");
	if ((h = held_of(s, pid)) != NULL) {
		out_html_str(o, h->line);
		out_printf(o, "</td><td>%lld", (long long)h->elapsed_ms);
	} else
		out_printf(o, "</td><td>");
	out_printf(o, "</td><td class=\"l\">");
	if (cgi_take(i, pid, &c)) {
		out_html_str(o, c.script);
		out_printf(o, " (pid %ld, %lld ms)", (long)c.pid,
		    (long long)c.elapsed_ms);
	}
	out_printf(o, "</td></tr>\n");
}

size_t
status_html(char *buf, size_t cap)
{
	struct out		 o;
	struct snap		 s;
	const char		*names[NCOUNTERS];
	uint64_t		 vals[NCOUNTERS];
	int			 i, n = 0;

	out_init(&o, buf, cap);
	snap_take(&s, 1);
	out_printf(&o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
	    "<meta charset=\"utf-8\">\n"
	    "<meta http-equiv=\"refresh\" content=\"2\">\n"
	    "<title>pipepool status</title>\n<style>\n"
	    "body{font-family:sans-serif;margin:1em 1.5em;color:#222}\n"
	    "h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.1em}\n"
	    ".cols{display:flex;flex-wrap:wrap;gap:0 2em;"
	    "align-items:flex-start}\n"
	    "table{border-collapse:collapse;margin:0 0 1em;font-size:.9em}\n"
	    "th,td{border:1px solid #bbb;padding:.2em .6em;text-align:right}\n"
	    "th{background:#eee}\ntd.l,th.l{text-align:left}\n"
	    ".idle{color:#070}.busy{color:#b60}.starting{color:#777}\n"
	    "</style>\n</head>\n<body>\n<h1>pipepool status</h1>\n"
	    "<p>version %s, master pid %ld, up %lld s; refreshes every 2 s "
	    "(<a href=\"?\">JSON</a>, <a href=\"metrics\">metrics</a>)</p>\n"
	    "<div class=\"cols\">\n<section>\n",
	    PP_VERSION, (long)s.master_pid, (long long)uptime(&s));
	out_printf(&o, "<h2>Workers: %u idle, %u busy, %u starting</h2>\n"
	    "<table id=\"workers\">\n%s", s.nidle, s.nbusy, s.nstarting,
	    HTML_PROC_HEAD);
	for (i = 0; i < PROC_SLOTS && !o.full; i++) {
		if (s.st[i] == WS_EMPTY || i == s.store)
			continue;
		html_worker(&o, &s, (unsigned)i);
		n++;
	}
	if (n == 0)
		out_printf(&o, "<tr><td class=\"l\" colspan=\"10\">none</td>"
		    "</tr>\n");
	out_printf(&o, "</table>\n<h2>Store</h2>\n<table id=\"store\">\n%s",
	    HTML_PROC_HEAD);
	if (s.store >= 0)
		html_worker(&o, &s, (unsigned)s.store);
	else
		out_printf(&o, "<tr><td class=\"l\" colspan=\"10\">not running"
		    "</td></tr>\n");
	out_printf(&o, "</table>\n<p id=\"db\">database: %s, %s, %llu "
	    "reconnects</p>\n", db_backend(&s), db_state(&s),
	    (unsigned long long)s.store_reconnects);
	html_incidents(&o, &s);
	out_printf(&o, "</section>\n<section>\n<h2>Pool</h2>\n"
	    "<table>\n<tr><th class=\"l\">workers</th><td>%u to %u</td></tr>\n"
	    "<tr><th class=\"l\">target</th><td>%u</td></tr>\n</table>\n"
	    "<h2>Queue</h2>\n"
	    "<table>\n<tr><th class=\"l\">depth</th><td>%u</td></tr>\n"
	    "<tr><th class=\"l\">capacity</th><td>%u</td></tr>\n</table>\n"
	    "<h2>Counters</h2>\n<table>\n", (unsigned)s.pmin, (unsigned)s.pmax,
	    (unsigned)s.ptarget, (unsigned)s.qdepth, (unsigned)s.qcap);
	counters(&s, names, vals);
	for (i = 0; i < NCOUNTERS; i++)
		out_printf(&o, "<tr><th class=\"l\">%s</th><td>%llu</td></tr>\n",
		    names[i], (unsigned long long)vals[i]);
	out_printf(&o, "</table>\n</section>\n</div>\n</body>\n</html>\n");
	snap_done(&s, 1);
	return out_end(&o);
}

static uint64_t
kib_bytes(uint64_t kib)
{
	return kib > UINT64_MAX / 1024 ? UINT64_MAX : kib * 1024;
}

static void
metric_head(struct out *o, const char *name, const char *type,
    const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
metric_u64(struct out *o, const char *name, const char *type,
    const char *help, uint64_t v)
{
	metric_head(o, name, type, help);
	out_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

/* A histogram of n buckets (h[n]: past the last bound), its sum in us. */
static void
metric_hist(struct out *o, const char *name, const char *help,
    const uint64_t *h, const double *bounds, int n, uint64_t sum_us)
{
	uint64_t	cum = 0;
	int		i;

	metric_head(o, name, "histogram", help);
	for (i = 0; i < n; i++) {
		cum += h[i];
		out_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
		    (unsigned long long)cum);
	}
	cum += h[n];
	out_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %llu.%06llu\n"
	    "%s_count %llu\n", name, (unsigned long long)cum, name,
	    (unsigned long long)(sum_us / 1000000),
	    (unsigned long long)(sum_us % 1000000), name,
	    (unsigned long long)cum);
}

/* How many listed workers run a CGI program now. */
static uint64_t
cgi_count(const struct snap *s)
{
	struct cgi_info	c;
	uint64_t	n = 0;
	unsigned	i;

	for (i = 0; i < PROC_SLOTS; i++)
		if (s->st[i] != WS_EMPTY && cgi_take(i, LOAD(stats->w[i].pid),
		    &c))
			n++;
	return n;
}

size_t
status_metrics(char *buf, size_t cap)
{
	struct out	o;
	struct snap	s;
	char		label[8];
	int		i;

	out_init(&o, buf, cap);
	snap_take(&s, 0);
	metric_head(&o, "pipepool_info", "gauge", "Version of the running "
	    "pipepool (always 1).");
	out_printf(&o, "pipepool_info{version=\"%s\"} 1\n", PP_VERSION);
	metric_head(&o, "pipepool_start_time_seconds", "gauge", "Unix time "
	    "at which the master started.");
	out_printf(&o, "pipepool_start_time_seconds %lld\n",
	    (long long)s.started);
	metric_u64(&o, "pipepool_requests_accepted_total", "counter",
	    "Requests read from the web server.", s.accepted);
	metric_head(&o, "pipepool_requests_total", "counter", "Requests "
	    "answered, by status code (the codes pipepool(8) lists exactly, "
	    "any other by its class, 4xx).");
	for (i = 0; i < STATS_CODES; i++)
		out_printf(&o, "pipepool_requests_total{code=\"%s\"} %llu\n",
		    code_label(i, label), (unsigned long long)s.codes[i]);
	metric_head(&o, "pipepool_workers", "gauge", "Worker processes by "
	    "state (retiring ones are not counted).");
	out_printf(&o, "pipepool_workers{state=\"idle\"} %u\n"
	    "pipepool_workers{state=\"busy\"} %u\n"
	    "pipepool_workers{state=\"starting\"} %u\n", s.nidle, s.nbusy,
	    s.nstarting);
	metric_head(&o, "pipepool_incidents_total", "counter", "Incidents by "
	    "kind: crash, timeout, malformed and overload (the first 503 of "
	    "a burst) as a request's client saw them; exit, backoff and "
	    "reload as the master saw them.");
	for (i = INC_NONE + 1; i < INC_KINDS; i++)
		out_printf(&o, "pipepool_incidents_total{kind=\"%s\"} %llu\n",
		    incident_name((uint32_t)i),
		    (unsigned long long)s.inc_counts[i]);
	metric_u64(&o, "pipepool_workers_memory_pss_bytes", "gauge",
	    "Proportional set size of the workers, each with its process "
	    "group, summed (sampled by the master once a second).",
	    kib_bytes(s.pss_workers));
	metric_u64(&o, "pipepool_store_up", "gauge", "Whether the store "
	    "process runs (1) or not (0).", s.store >= 0);
	metric_u64(&o, "pipepool_store_memory_pss_bytes", "gauge",
	    "Proportional set size of the store (0: unknown).",
	    s.store >= 0 && s.pss[s.store] > 0 ?
	    kib_bytes((uint64_t)s.pss[s.store]) : 0);
	metric_head(&o, "pipepool_store_db_up", "gauge", "Whether the store "
	    "can write its database (1) or not (0), by backend.");
	out_printf(&o, "pipepool_store_db_up{backend=\"%s\"} %d\n",
	    db_backend(&s), strcmp(db_state(&s), "up") == 0);
	metric_u64(&o, "pipepool_store_db_reconnects_total", "counter",
	    "Connections to the database the store made again after one was "
	    "lost or refused (PostgreSQL).", s.store_reconnects);
	metric_u64(&o, "pipepool_workers_target", "gauge", "Workers the pool "
	    "wants now (--workers N: N; MIN:MAX: between them).", s.ptarget);
	metric_u64(&o, "pipepool_workers_min", "gauge", "The least workers "
	    "the pool runs (--workers).", s.pmin);
	metric_u64(&o, "pipepool_workers_max", "gauge", "The most workers "
	    "the pool runs (--workers).", s.pmax);
	metric_u64(&o, "pipepool_cgi_programs", "gauge", "CGI programs "
	    "running now (--cgi).", cgi_count(&s));
	metric_u64(&o, "pipepool_queue_depth", "gauge", "Requests waiting "
	    "for a free worker.", s.qdepth);
	metric_u64(&o, "pipepool_queue_capacity", "gauge", "Most requests "
	    "that may wait for a worker (--queue).", s.qcap);
	metric_u64(&o, "pipepool_worker_restarts_total", "counter",
	    "Worker processes started again after one exited.", s.respawns);
	metric_u64(&o, "pipepool_worker_crashes_total", "counter",
	    "Worker processes that died abnormally.", s.crashes);
	metric_u64(&o, "pipepool_timeouts_total", "counter", "Requests "
	    "answered 504 because of --timeout.", s.timeouts);
	metric_u64(&o, "pipepool_rejected_overload_total", "counter",
	    "Requests answered 503 because the queue was full.", s.rejected);
	metric_u64(&o, "pipepool_requests_shed_total", "counter",
	    "Requests answered 503 at once because those workers took had "
	    "waited over --queue-target-ms.", s.shed);
	metric_u64(&o, "pipepool_shed_spells_total", "counter",
	    "Times the front began shedding for --queue-target-ms.",
	    s.shed_spells);
	metric_u64(&o, "pipepool_requests_abandoned_total", "counter",
	    "Requests taken out of the queue before any worker had them, "
	    "because nginx closed their connection (the client gave up) or "
	    "aborted them.", s.abandoned);
	metric_u64(&o, "pipepool_access_log_errors_total", "counter",
	    "Access log lines lost (a failed write: a full or failing disk).",
	    s.alog_errors);
	metric_hist(&o, "pipepool_request_duration_seconds", "Time from "
	    "reading a request to its answer.", s.hist, stats_hist_bounds,
	    STATS_HIST, s.dur_us);
	metric_hist(&o, "pipepool_queue_wait_seconds", "Time from the front's "
	    "having a request to a worker taking it, for every request a "
	    "worker took.", s.qhist, stats_qhist_bounds, STATS_QHIST,
	    s.qwait_us);
	metric_head(&o, "pipepool_queue_oldest_wait_seconds", "gauge", "Age "
	    "of the oldest request waiting for a worker (sampled every "
	    "100 ms; 0: none waits).");
	out_printf(&o, "pipepool_queue_oldest_wait_seconds %u.%03u\n",
	    (unsigned)(s.qoldest_ms / 1000), (unsigned)(s.qoldest_ms % 1000));
	snap_done(&s, 0);
	return out_end(&o);
}
