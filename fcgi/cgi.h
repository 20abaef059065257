/* cgi.h: running as a plain CGI program (one request, still via a worker). */
#ifndef PP_CGI_H
#define PP_CGI_H

#include "options.h"

int	cgi_main(const struct options *);

#endif
