/*
 * status.h: rendering of the front's own pages, /status (JSON or, with
 * ?html, a small self-refreshing HTML page) and /metrics (Prometheus text
 * exposition format 0.0.4), from the shared counters (stats.h).
 *
 * Each function writes into buf (room cap) and returns the length written,
 * not counting the terminating NUL it also writes, or 0 if the page did
 * not fit (cap must be at least the length + 1).  They read the counters
 * with relaxed atomic loads, never block on I/O, never allocate, and may
 * be called from any thread at once (a mutex is held while the workers'
 * pages are folded in, and one while a page is rendered, see status.c).
 */
#ifndef PP_STATUS_H
#define PP_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Room that always fits any page, even with every slot of stats->w[] in
 * use, every worker holding a request, every number at its largest. */
#define STATUS_BUF_MAX	(4 * 1024 * 1024)

#define STATUS_CT_JSON		"application/json"
#define STATUS_CT_HTML		"text/html; charset=utf-8"
#define STATUS_CT_METRICS	"text/plain; version=0.0.4; charset=utf-8"

size_t	status_json(char *buf, size_t cap);
size_t	status_html(char *buf, size_t cap);
size_t	status_metrics(char *buf, size_t cap);

/*
 * The front: master slot `slot` now belongs to the worker pid, whose own
 * page is fd (read-only; -1: none, the store).  The slot's last page, if
 * any, is counted a last time and unmapped.  fd is closed.  -1: the page
 * could not be mapped (the worker is then shown from the master's state
 * word, and what it answers itself is not counted).
 */
int	status_attach(uint32_t slot, int fd, int32_t pid);

/* A request a worker holds now: its row on the pages. */
#define HELD_LINE_MAX	160	/* "METHOD PATH?QUERY", cut to fit */
struct held {
	pid_t		 pid;		/* the worker's */
	int64_t		 elapsed_ms;	/* since it took the request */
	char		 line[HELD_LINE_MAX];
};
/*
 * Where the pages learn the requests workers hold (the front's
 * conn_held): fn fills up to max and returns how many.  Until it is set,
 * no row shows a request.
 */
void	status_held_source(unsigned (*fn)(struct held *, unsigned max));

#endif
