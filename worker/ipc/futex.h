/*
 * futex.h: futex waits on a 32-bit word.  shared: the word is in a
 * MAP_SHARED region and the waker may be another process.
 */
#ifndef PP_FUTEX_H
#define PP_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

int	futex_wait(_Atomic uint32_t *, uint32_t val, int64_t deadline_ms,
	    int shared);
void	futex_wake(_Atomic uint32_t *, int n, int shared);

#endif
