/*
 * incident.c: the rings of the last incidents (incident.h).
 *
 * The writer makes seq odd, fills the entry, makes seq even (release);
 * then bumps n.  The reader reads seq (acquire), copies, and reads seq
 * again after an acquire fence: equal and even, the copy is whole.  A
 * reader never waits: an entry being written is left out of that page.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "incident.h"

static const char *const names[INC_KINDS] = {
	[INC_NONE] = "?",
	[INC_CRASH] = "crash",
	[INC_TIMEOUT] = "timeout",
	[INC_MALFORMED] = "malformed",
	[INC_OVERLOAD] = "overload",
	[INC_EXIT] = "exit",
	[INC_BACKOFF] = "backoff",
	[INC_RELOAD] = "reload",
};

const char *
incident_name(uint32_t kind)
{
	return kind < INC_KINDS ? names[kind] : "?";
}

void
incident_add(struct incident_ring *r, _Atomic uint64_t *counts,
    enum incident_kind kind, int32_t pid, unsigned status, const char *text)
{
	uint64_t	 n = atomic_load_explicit(&r->n, memory_order_relaxed);
	struct incident	*e = &r->e[n % INCIDENTS_MAX];
	uint32_t	 seq = atomic_load_explicit(&e->seq,
			    memory_order_relaxed);
	struct timespec	 ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		ts.tv_sec = ts.tv_nsec = 0;
	atomic_store_explicit(&e->seq, seq | 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	e->kind = kind;
	e->pid = pid;
	e->status = status;
	e->unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	(void)snprintf(e->text, sizeof(e->text), "%s", text != NULL ? text :
	    "");
	atomic_store_explicit(&e->seq, (seq | 1) + 1, memory_order_release);
	atomic_store_explicit(&r->n, n + 1, memory_order_release);
	if (kind < INC_KINDS)
		atomic_fetch_add_explicit(&counts[kind], 1,
		    memory_order_relaxed);
}

unsigned
incident_read(const struct incident_ring *r, struct incident *out,
    unsigned max)
{
	uint64_t	n = atomic_load_explicit(&r->n, memory_order_acquire);
	uint32_t	s1, s2;
	unsigned	i, k = 0;

	for (i = 0; i < INCIDENTS_MAX && i < n && k < max; i++) {
		const struct incident *e = &r->e[(n - 1 - i) % INCIDENTS_MAX];

		s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		out[k].kind = e->kind;
		out[k].pid = e->pid;
		out[k].status = e->status;
		out[k].unix_ms = e->unix_ms;
		memcpy(out[k].text, e->text, sizeof(out[k].text));
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&e->seq, memory_order_relaxed);
		if (s1 != s2 || out[k].kind == INC_NONE ||
		    out[k].kind >= INC_KINDS)
			continue;
		out[k].text[sizeof(out[k].text) - 1] = '\0';
		if (out[k].status > 999)
			out[k].status = 0;
		k++;
	}
	return k;
}
