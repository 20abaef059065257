/*
 * listen.c: opening the listening socket.  --listen unix:/path (mode
 * --socket-mode, a stale socket file is replaced, a live one is not),
 * HOST:PORT, [V6]:PORT or :PORT (all IPv4 addresses).  Without --listen,
 * a socket passed by systemd (LISTEN_FDS) or on fd 0 (spawn-fcgi) is used.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"

#define BACKLOG	1024

/* --socket-owner and --socket-group as ids; -1 (none) when not given. */
static int
socket_ids(const struct options *o, uid_t *uid, gid_t *gid, char *err,
    size_t errlen)
{
	struct passwd	*pw;
	struct group	*gr;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (o->socket_owner[0]) {
		if ((pw = getpwnam(o->socket_owner)) == NULL) {
			snprintf(err, errlen, "--socket-owner: no user '%s'",
			    o->socket_owner);
			return -1;
		}
		*uid = pw->pw_uid;
	}
	if (o->socket_group[0]) {
		if ((gr = getgrnam(o->socket_group)) == NULL) {
			snprintf(err, errlen, "--socket-group: no group '%s'",
			    o->socket_group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

/*
 * Something at path already: a socket nobody listens on is stale and
 * removed; anything else is refused, *code 1 for a running server.
 */
static int
clear_path(const char *path, const struct sockaddr_un *sun, char *err,
    size_t errlen, int *code)
{
	struct stat	st;
	int		probe;

	if (lstat(path, &st) == -1)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "--listen: %s exists and is not a socket",
		    path);
		return -1;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe != -1 && connect(probe, (const struct sockaddr *)sun,
	    sizeof(*sun)) == 0) {
		close(probe);
		snprintf(err, errlen, "--listen: %s is in use by a running "
		    "server", path);
		*code = 1;
		return -1;
	}
	if (probe != -1)
		close(probe);
	(void)unlink(path);	/* stale: nobody listens on it */
	return 0;
}

static int
open_unix(const struct options *o, const char *path, char **unix_path,
    char *err, size_t errlen, int *code)
{
	struct sockaddr_un	 sun;
	uid_t			 uid;
	gid_t			 gid;
	int			 fd = -1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	*code = PP_EX_BADOPT;	/* until the checks of the value pass */
	if (*path != '/' || strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "--listen: 'unix:%s' is not an absolute "
		    "path shorter than %zu bytes", path, sizeof(sun.sun_path));
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (socket_ids(o, &uid, &gid, err, errlen) == -1 ||
	    clear_path(path, &sun, err, errlen, code) == -1)
		return -1;
	*code = 1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		goto fail;
	if (chmod(path, o->socket_mode) == -1 ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    chown(path, uid, gid) == -1) || listen(fd, BACKLOG) == -1) {
		int e = errno;

		(void)unlink(path);
		errno = e;
		goto fail;
	}
	if ((*unix_path = strdup(path)) == NULL)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "--listen: unix:%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * Split HOST:PORT, [V6]:PORT or :PORT into host (hostlen bytes; "" for
 * all IPv4 addresses, brackets removed) and *port, a pointer into host's
 * buffer.  -1 if spec is none of those, with a port from 1 to 65535.
 */
static int
split_spec(const char *spec, char *host, size_t hostlen, const char **port)
{
	char	*colon, *end;
	long	 pn;
	size_t	 n;

	if (strlen(spec) >= hostlen)
		return -1;
	strcpy(host, spec);
	if ((colon = strrchr(host, ':')) == NULL)
		return -1;
	*colon = '\0';
	*port = colon + 1;
	pn = strtol(*port, &end, 10);
	if (**port == '\0' || *end != '\0' || pn < 1 || pn > 65535)
		return -1;
	if (host[0] == '[') {
		n = strlen(host);
		if (n < 3 || host[n - 1] != ']')
			return -1;
		host[n - 1] = '\0';
		memmove(host, host + 1, n - 1);
	}
	return 0;
}

static int
open_inet(const char *spec, char *err, size_t errlen, int *code)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	char		 host[256];
	const char	*port;
	int		 fd = -1, one = 1, r, e = 0;

	if (split_spec(spec, host, sizeof(host), &port) == -1) {
		*code = PP_EX_BADOPT;
		snprintf(err, errlen, "--listen: '%s' is not unix:/path, "
		    "HOST:PORT, [IPV6]:PORT or :PORT with a port from 1 to "
		    "65535", spec);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = host[0] ? AF_UNSPEC : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0) {
		/* No such host is the value's fault; a failing resolver
		 * (EAI_AGAIN, EAI_FAIL, EAI_SYSTEM) is not. */
		if (r == EAI_NONAME || r == EAI_FAMILY)
			*code = PP_EX_BADOPT;
		snprintf(err, errlen, "--listen: '%s': %s", spec,
		    gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			e = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, BACKLOG) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(err, errlen, "--listen: %s: %s", spec, strerror(e));
	return fd;
}

/*
 * Open --listen.  Returns the fd, or -1 with a one-line reason in err and
 * the exit status in *code: PP_EX_BADOPT when the value (or --socket-owner,
 * --socket-group) is wrong, 1 when the system refuses (in use, bind).
 */
int
listen_open(const struct options *o, char **unix_path, char *desc,
    size_t desclen, char *err, size_t errlen, int *code)
{
	*unix_path = NULL;
	*code = 1;
	snprintf(desc, desclen, "%s", o->listen);
	if (strncmp(o->listen, "unix:", 5) == 0)
		return open_unix(o, o->listen + 5, unix_path, err, errlen,
		    code);
	return open_inet(o->listen, err, errlen, code);
}

static int
is_listening(int fd)
{
	int		on = 0;
	socklen_t	len = sizeof(on);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 &&
	    on;
}

/*
 * A socket handed to us: systemd's first LISTEN_FDS fd (3), or fd 0 as
 * spawn-fcgi passes it.  Returns a close-on-exec duplicate (fd 0 is then
 * /dev/null), or -1 if there is none.
 */
int
listen_inherited(char *desc, size_t desclen)
{
	const char	*lp = getenv("LISTEN_PID"), *lf = getenv("LISTEN_FDS");
	int		 fd, src = -1, null;

	if (lp != NULL && lf != NULL && atol(lp) == (long)getpid() &&
	    atoi(lf) >= 1 && is_listening(3)) {
		src = 3;
		snprintf(desc, desclen, "the socket from systemd (fd 3)");
	} else if (is_listening(0)) {
		src = 0;
		snprintf(desc, desclen, "the socket on fd 0");
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (src == -1)
		return -1;
	if ((fd = fcntl(src, F_DUPFD_CLOEXEC, 10)) == -1)
		return -1;
	if (src == 0) {
		if ((null = open("/dev/null", O_RDONLY)) == -1 ||
		    dup2(null, 0) == -1)
			return -1;
		if (null != 0)
			close(null);
	} else
		close(src);
	return fd;
}
