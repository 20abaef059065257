/*
 * cgirun.h: the CGI runner (`--cgi`, `--cgi-root DIR`), an application in
 * the sense of pipepool.h that runs each request's SCRIPT_FILENAME as a
 * CGI/1.1 program (RFC 3875), as fcgiwrap does: a drop-in for it behind
 * nginx.
 *
 * The program's environment is the request's params (the meta-variables
 * nginx sends with fastcgi_param, HTTP_* included, HTTP_PROXY dropped)
 * and PIPEPOOL_DEADLINE_MS, the milliseconds left before --timeout;
 * never pipepool's own environment.  Its stdin is the request's body, its
 * stdout the answer (a CGI response: a header block, then the document),
 * its stderr the log, one line at a time naming the script.
 *
 * The program stays in its worker's process group, so the master's kill
 * of a worker past --timeout takes it and every helper it forked.  The
 * runner's init makes the worker a child subreaper that reaps every
 * child (a helper orphaned by its CGI becomes the worker's, and never a
 * zombie); the worker must ignore SIGPIPE, as worker.c has it.
 */
#ifndef PP_CGIRUN_H
#define PP_CGIRUN_H

#include "pipepool.h"

/* The most bytes of a CGI response's header block. */
#define CGI_HEAD_MAX	(64 * 1024)

/*
 * The descriptor of the runner; root (kept, not copied: it must outlive
 * the worker) is --cgi-root, or "" to run any SCRIPT_FILENAME.
 */
const struct pp_app *cgi_app(const char *root);

#endif
