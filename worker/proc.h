/*
 * proc.h: the process model (the roles and the master's slots), process
 * titles, child fd hygiene and the one clock.
 */
#ifndef PP_PROC_H
#define PP_PROC_H

#include <sched.h>
#include <stdint.h>

#include "options.h"

/* What a process is, as ps, /status and /metrics name it. */
enum role { ROLE_FRONT, ROLE_WORKER, ROLE_STORE };

/* The master's slots: every child it supervises, new and retiring. */
#define PROC_SLOTS	(2 * PP_WORKERS_MAX + 8)

void	proc_title_init(int argc, char **argv);
void	proc_title(const char *title);
int	proc_keep_fds(const int *fds, int nfds);
int	proc_child_signals(void);
int64_t	now_ms_mono(void);
int	proc_cpulist(const char *, cpu_set_t *);

#endif
