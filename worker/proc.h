/* proc.h: process titles, child fd hygiene and small time helpers. */
#ifndef PP_PROC_H
#define PP_PROC_H

#include <sched.h>
#include <stdint.h>

void	proc_title_init(int argc, char **argv);
void	proc_title(const char *title);
int	proc_keep_fds(const int *fds, int nfds);
int	proc_child_signals(void);
int64_t	now_ms_mono(void);
int	proc_cpulist(const char *, cpu_set_t *);

#endif
