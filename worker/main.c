/*
 * main.c: pipepool's entry point.  Reads the settings, chooses the mode
 * (--listen, an inherited socket, or CGI), opens the socket, maps the
 * shared counters and becomes the master.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgi.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "options.h"
#include "proc.h"
#include "stats.h"

int
main(int argc, char **argv)
{
	struct options	 o;
	char		 desc[600], err[700];
	char		*unix_path = NULL;
	int		 fd = -1;

	proc_title_init(argc, argv);
	log_init("master");
	options_parse(&o, argc, argv);

	if (o.listen[0] == '\0' && (fd = listen_inherited(desc,
	    sizeof(desc))) == -1) {
		if (getenv("GATEWAY_INTERFACE") != NULL)
			return cgi_main(&o);
		fprintf(stderr, "pipepool: no socket to serve: give --listen "
		    "(unix:/path, HOST:PORT or :PORT), or start with a "
		    "listening socket on fd 0, or run as a CGI program\n");
		return EX_BADOPT;
	}
	if (geteuid() == 0 && o.user[0] == '\0' && !o.allow_root) {
		fprintf(stderr, "pipepool: refusing to run as root: give --user "
		    "(and --group) to drop privileges, or --allow-root\n");
		return EX_BADOPT;
	}
	if (o.listen[0] != '\0' && (fd = listen_open(&o, &unix_path, desc,
	    sizeof(desc), err, sizeof(err))) == -1) {
		fprintf(stderr, "pipepool: %s\n", err);
		return 1;
	}
	if (stats_map() == -1)
		fatal("mmap");
	log_info("listening on %s", desc);
	return master_main(&o, fd, unix_path, argc, argv);
}
