/*
 * cgi.h: running as a plain CGI program (one request from the
 * environment and stdin, answered by a worker all the same).
 */
#ifndef PP_CGI_H
#define PP_CGI_H

#include "options.h"

/* The answer on stdout; the exit status: 0, or 1 if an error answer
 * could not be written. */
int	cgi_main(const struct options *);

#endif
