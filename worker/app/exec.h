/*
 * exec.h: the exec adapter (`--exec "PROGRAM ARGS"`), an application in
 * the sense of pipepool.h that hands each request to one long-running
 * program per worker over two pipes, and the wire format they speak
 * (conf/examples/PROTOCOL.md is its description for program authors).
 *
 * The program reads frames on fd EXEC_REQUEST_FD and writes frames on
 * fd EXEC_REPLY_FD (named in its environment as PIPEPOOL_REQUEST_FD and
 * PIPEPOOL_REPLY_FD); its stdout and stderr go to pipepool's log.  Every
 * frame is a struct exec_hdr in host byte order, then len payload bytes.
 */
#ifndef PP_EXEC_H
#define PP_EXEC_H

#include <stdint.h>

#include "pipepool.h"

#define EXEC_VERSION	1	/* READY's payload */
#define EXEC_REQUEST_FD	3
#define EXEC_REPLY_FD	4
/* The most payload a frame from the program may carry.  A REQUEST is one
 * frame whatever its size (up to --max-body of body): the limit is
 * pipepool's protection against the program, not the other way. */
#define EXEC_FRAME_MAX	(1024u * 1024)

struct exec_hdr {
	uint32_t	type;	/* enum exec_type */
	uint32_t	len;	/* payload bytes after the header */
	uint64_t	id;	/* the request's, from 1; READY's is 0 */
};

enum exec_type {
	EXEC_READY = 1,	/* program: uint32 version, once, first */
	EXEC_REQUEST,	/* pipepool: uint32 deadline_ms, uint32 nparams,
			 * nparams x {uint32 name_len, uint32 value_len,
			 * name, value}, then the body to the end */
	EXEC_HEAD,	/* program: uint32 status (100..599), uint32 n,
			 * n x {uint32 name_len, uint32 value_len, name,
			 * value}; at most once, before any BODY */
	EXEC_BODY,	/* program: body bytes; any number of frames */
	EXEC_END,	/* program: empty; the answer is complete */
	EXEC_ERROR	/* program: a short reason; the client gets 500 */
};

/*
 * The descriptor of an application that runs cmdline in each worker.
 * cmdline is split into words as the shell would split them (quotes,
 * backslashes, $VAR and ~), without running any command (wordexp(3)
 * WRDE_NOCMD); it is kept, not copied, so it must outlive the worker.
 * The descriptor's init must run on the worker's main thread: the
 * program is killed (PR_SET_PDEATHSIG) when the thread that started it
 * ends.  The worker must ignore SIGPIPE, as proc_child_signals() has it.
 */
const struct pp_app *exec_app(const char *cmdline);

#endif
