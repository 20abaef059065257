/*
 * fcgiraw.c: a small raw FastCGI client for pipepool's hostile-input tests.
 *
 * It speaks FastCGI on its own (records written by hand from the spec, no
 * libfcgi) so that it can send what a well-behaved web server never would:
 * truncated headers, bad versions, lying lengths, garbage, huge parameter
 * sets, CVE-2025-23016-style name/value lengths, idle and half-finished
 * connections, clients that never read.  The tests then check that the
 * server survived and still answers a good request (tests/e2e/hostile.bats).
 *
 * usage: fcgiraw ADDR CASE [ARG...]
 *   ADDR  unix:/path/to/socket | HOST:PORT | [V6ADDR]:PORT
 *   CASE  good [PATH] [--keep N] [--idle SECS]
 *                                  well-formed GET (N requests on one
 *                                  connection with FCGI_KEEP_CONN; then
 *                                  wait up to SECS for the server to
 *                                  close it, as idle)
 *         post PATH FILE [--keep N]
 *                                  POST FILE's bytes as STDIN (N times on
 *                                  one kept connection, each answer 200)
 *         truncated                half a header, then close
 *         badversion               a whole request with version 2 headers
 *         hugelen                  a PARAMS header declaring 65535 bytes,
 *                                  a few bytes, then close
 *         random [N]               N (4096) bytes of /dev/urandom, then close
 *         novalue                  an empty value and a name length that
 *                                  claims more than the record holds
 *         manyparams [N]           N (10000) distinct params + a normal GET
 *         cve [K]                  4-byte lengths 0x7fffffff / 0xffffffff
 *                                  style in a small record: all variants
 *                                  on separate connections, or only the Kth
 *         idle [SECS]              send nothing, time the server's close
 *                                  (give up after SECS, default 30)
 *         midreq                   BEGIN_REQUEST + part of PARAMS, close
 *         shortbody [LEN [SENT]]   POST /echo declaring LEN (100000) body
 *                                  bytes, SENT (LEN / 2) of them, close
 *         noread [PATH]            good request, close without reading
 *         slowread [PATH [SECS]]   good request, read nothing for SECS (5)
 *                                  with a small receive buffer, then close
 *         keptcut [LEN [SECS]]     on one FCGI_KEEP_CONN connection with a
 *                                  small receive buffer: a good GET, then
 *                                  POST /echo of LEN (1 MiB) bytes, read
 *                                  nothing for SECS (3), then read on
 *         drip [SECS]              a good GET without FCGI_KEEP_CONN, its
 *                                  answer read, then a byte every 500 ms
 *                                  until a write fails: "closed after N
 *                                  ms (ERR)" or "still open" after SECS
 *         getvalues before|body [shut]
 *                                  an FCGI_GET_VALUES record declaring
 *                                  0x7ffffffe-byte lengths, before the
 *                                  BEGIN_REQUEST or amid a POST's STDIN
 *                                  (shut: before a GET /status, then
 *                                  shut down for writing)
 *         mgmt                     on one kept connection: FCGI_GET_VALUES
 *                                  (the three names, an unknown one),
 *                                  one naming FCGI_MAX_CONNS 20 times, an
 *                                  unknown management type (99), then a
 *                                  POST /echo with three management
 *                                  records amid its body (the names, the
 *                                  0x7ffffffe lengths, type 42), then a
 *                                  GET; prints each management answer as
 *                                  "answer: GET_VALUES_RESULT N=V ..." or
 *                                  "answer: UNKNOWN_TYPE T", then the
 *                                  echo's stdout and the GET's reaction
 *         length PATH CL FILE      POST (PUT under /kv) of FILE with
 *                                  CONTENT_LENGTH CL ("none": no such
 *                                  param); stdout as for post
 *         late IDLE DRIP [N]       connect, send nothing for IDLE ms, then
 *                                  a good GET (with N extra params, as
 *                                  manyparams) in 8 pieces over DRIP ms
 *                                  (exit as for good)
 *         slowbody PATH MS         POST PATH (any bytes) declaring a 5-byte
 *                                  body, sent MS ms after the params;
 *                                  stdout as for post
 *
 * Output: for good and post, stdout is the raw FCGI_STDOUT content (binary
 * safe) and a summary goes to stderr; for the other cases stdout holds a
 * short description of what was sent and how the server reacted (and any
 * STDOUT content it sent).  For idle the result line is exactly
 * "closed after N ms" or "still open".
 *
 * Exit: 0 the case ran as intended (the server's reaction is reported, not
 * judged, except for good); 1 usage error; 2 good did not get a correct
 * answer (END_REQUEST with FCGI_REQUEST_COMPLETE and STDOUT containing
 * "hello world from another process", for every request); 3 the case could
 * not be run at all (connect failed, out of memory, /dev/urandom).
 *
 * Every socket has SO_RCVTIMEO/SO_SNDTIMEO (35 s, or $FCGIRAW_TIMEOUT
 * seconds) and every wait is bounded, so the tool never hangs for ever.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
 *   -Wstrict-prototypes -Wmissing-prototypes -O2 -o fcgiraw fcgiraw.c
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

enum {
	EX_RAN = 0,
	EX_USAGE = 1,
	EX_BADANSWER = 2,
	EX_LOCAL = 3
};

#define FCGI_HEADER_LEN		8
#define FCGI_MAX_CONTENT	0xffff
#define FCGI_BEGIN_REQUEST	1
#define FCGI_ABORT_REQUEST	2
#define FCGI_END_REQUEST	3
#define FCGI_PARAMS		4
#define FCGI_STDIN		5
#define FCGI_STDOUT		6
#define FCGI_STDERR		7
#define FCGI_GET_VALUES_RESULT	10
#define FCGI_UNKNOWN_TYPE	11
#define FCGI_GET_VALUES		9
#define FCGI_RESPONDER		1
#define FCGI_KEEP_CONN		1
#define FCGI_REQUEST_COMPLETE	0

#define HELLO		"hello world from another process"
#define PEEK_MS		200	/* look at the server before a hostile close */
#define MAX_RANDOM	(64UL * 1024 * 1024)
#define MAX_PARAMS	2000000UL
#define MAX_KEEP	100000UL

static const char	*progname = "fcgiraw";
static int		 io_timeout_s = 35;

/* ---- small utilities ------------------------------------------------ */

static void die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void
die(int code, const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s ADDR CASE [ARG...]\n"
	    "  ADDR: unix:/path | HOST:PORT | [V6ADDR]:PORT\n"
	    "  CASE: good [PATH] [--keep N] [--idle SECS] |\n"
	    "        post PATH FILE [--keep N] | truncated |\n"
	    "        badversion | hugelen | random [N] | novalue |\n"
	    "        manyparams [N] | cve [K] | idle [SECS] | midreq |\n"
	    "        noread [PATH] | slowread [PATH [SECS]]\n"
	    "        keptcut [LEN [SECS]] | drip [SECS] |\n"
	    "        getvalues before|body [shut] | mgmt | length PATH CL FILE |\n"
	    "        late IDLE DRIP [N] | slowbody PATH MS\n",
	    progname);
	exit(EX_USAGE);
}

static unsigned long
parse_num(const char *s, unsigned long min, unsigned long max, const char *what)
{
	char		*end;
	unsigned long	 v;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+') {
		fprintf(stderr, "%s: %s: not a number: %s\n", progname, what,
		    s ? s : "(missing)");
		usage();
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "%s: %s must be %lu..%lu: %s\n", progname, what,
		    min, max, s);
		usage();
	}
	return v;
}

static long
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep for ms milliseconds, resuming after signals. */
static void
sleep_ms(long ms)
{
	struct timespec	ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A growable byte buffer; running out of memory ends the tool. */
struct buf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
};

static void
buf_reserve(struct buf *b, size_t more)
{
	size_t	 ncap;
	void	*np;

	if (b->len + more <= b->cap)
		return;
	if (more > SIZE_MAX / 2 - b->len)
		die(EX_LOCAL, "buffer too large");
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + more)
		ncap *= 2;
	if ((np = realloc(b->p, ncap)) == NULL)
		die(EX_LOCAL, "out of memory");
	b->p = np;
	b->cap = ncap;
}

static void
buf_add(struct buf *b, const void *data, size_t n)
{
	if (n == 0)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void
buf_byte(struct buf *b, unsigned int c)
{
	unsigned char	u = (unsigned char)c;

	buf_add(b, &u, 1);
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- FastCGI encoding ----------------------------------------------- */

static void
put_header(struct buf *b, unsigned int version, unsigned int type,
    unsigned int id, size_t clen, unsigned int pad)
{
	unsigned char	h[FCGI_HEADER_LEN];

	h[0] = (unsigned char)version;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(clen >> 8);
	h[5] = (unsigned char)clen;
	h[6] = (unsigned char)pad;
	h[7] = 0;
	buf_add(b, h, sizeof(h));
}

/* One record, content padded to a multiple of 8 as libfcgi does. */
static void
put_record(struct buf *b, unsigned int version, unsigned int type,
    unsigned int id, const void *data, size_t len)
{
	static const unsigned char	zero[8];
	unsigned int			pad = (unsigned int)((8 - len % 8) % 8);

	put_header(b, version, type, id, len, pad);
	buf_add(b, data, len);
	buf_add(b, zero, pad);
}

/*
 * A stream (PARAMS or STDIN) as records of at most 65528 bytes, followed
 * by the empty record that ends it when terminate is set.
 */
static void
put_stream(struct buf *b, unsigned int version, unsigned int type,
    unsigned int id, const unsigned char *data, size_t len, int terminate)
{
	const size_t	chunk = FCGI_MAX_CONTENT & ~(size_t)7;
	size_t		n;

	while (len > 0) {
		n = len < chunk ? len : chunk;
		put_record(b, version, type, id, data, n);
		data += n;
		len -= n;
	}
	if (terminate)
		put_record(b, version, type, id, NULL, 0);
}

static void
put_begin(struct buf *b, unsigned int version, unsigned int id,
    unsigned int flags)
{
	unsigned char	body[8] = { 0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0 };

	body[2] = (unsigned char)flags;
	put_record(b, version, FCGI_BEGIN_REQUEST, id, body, sizeof(body));
}

/* A name-value length: 1 byte below 128, else 4 bytes with the top bit. */
static void
put_nvlen(struct buf *b, size_t n)
{
	if (n < 128) {
		buf_byte(b, (unsigned int)n);
		return;
	}
	buf_byte(b, (unsigned int)((n >> 24) & 0x7f) | 0x80);
	buf_byte(b, (unsigned int)(n >> 16) & 0xff);
	buf_byte(b, (unsigned int)(n >> 8) & 0xff);
	buf_byte(b, (unsigned int)n & 0xff);
}

static void
put_nv(struct buf *b, const char *name, const char *value)
{
	size_t	nl = strlen(name), vl = strlen(value);

	put_nvlen(b, nl);
	put_nvlen(b, vl);
	buf_add(b, name, nl);
	buf_add(b, value, vl);
}

/* The CGI variables of a plain request, as nginx's fastcgi_params. */
static void
put_std_params(struct buf *pb, const char *method, const char *path,
    size_t content_length, int has_body)
{
	char	cl[32];

	snprintf(cl, sizeof(cl), "%zu", content_length);
	put_nv(pb, "REQUEST_METHOD", method);
	put_nv(pb, "SCRIPT_NAME", path);
	put_nv(pb, "DOCUMENT_URI", path);
	put_nv(pb, "REQUEST_URI", path);
	put_nv(pb, "QUERY_STRING", "");
	put_nv(pb, "SERVER_PROTOCOL", "HTTP/1.1");
	put_nv(pb, "GATEWAY_INTERFACE", "CGI/1.1");
	put_nv(pb, "SERVER_SOFTWARE", "fcgiraw");
	put_nv(pb, "SERVER_NAME", "localhost");
	put_nv(pb, "SERVER_PORT", "80");
	put_nv(pb, "REMOTE_ADDR", "127.0.0.1");
	put_nv(pb, "CONTENT_LENGTH", cl);
	if (has_body)
		put_nv(pb, "CONTENT_TYPE", "application/octet-stream");
}

/*
 * A whole request: BEGIN_REQUEST, PARAMS (extra params first, if any, each
 * stream record ending at a parameter boundary only by chance), the empty
 * PARAMS, STDIN with body, the empty STDIN.
 */
static void
put_request(struct buf *out, unsigned int version, unsigned int id,
    unsigned int flags, const char *method, const char *path,
    const unsigned char *body, size_t bodylen, const struct buf *extra)
{
	struct buf	pb = { 0 };

	put_begin(out, version, id, flags);
	if (extra != NULL)
		buf_add(&pb, extra->p, extra->len);
	put_std_params(&pb, method, path, bodylen, body != NULL);
	put_stream(out, version, FCGI_PARAMS, id, pb.p, pb.len, 1);
	put_stream(out, version, FCGI_STDIN, id, body, bodylen, 1);
	buf_free(&pb);
}

/* ---- connections ---------------------------------------------------- */

static void
set_timeouts(int fd)
{
	struct timeval	tv;

	tv.tv_sec = io_timeout_s;
	tv.tv_usec = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		die(EX_LOCAL, "setsockopt timeouts: %s", strerror(errno));
}

static int
connect_retry(int fd, const struct sockaddr *sa, socklen_t len)
{
	int	r;

	r = connect(fd, sa, len);
	if (r < 0 && errno == EINTR) {
		/* The connect goes on in the background: wait for it. */
		struct pollfd	pfd = { .fd = fd, .events = POLLOUT };
		int		err = 0;
		socklen_t	el = sizeof(err);

		while ((r = poll(&pfd, 1, io_timeout_s * 1000)) < 0 &&
		    errno == EINTR)
			;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (r < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			return -1;
		if (err != 0) {
			errno = err;
			return -1;
		}
		return 0;
	}
	return r;
}

static int	connect_fatal = 1;	/* 0: conn_open returns -1 instead */

/*
 * Connect to ADDR; rcvbuf > 0 shrinks the receive buffer first (slowread).
 * Failing to connect ends the tool with EX_LOCAL, unless connect_fatal is
 * cleared: then it returns -1 with errno set.
 */
static int
conn_open(const char *addr, int rcvbuf)
{
	int	fd = -1;

	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un	sun;
		const char		*path = addr + 5;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (*path == '\0' || strlen(path) >= sizeof(sun.sun_path))
			die(EX_USAGE, "bad unix socket path: %s", addr);
		memcpy(sun.sun_path, path, strlen(path));
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			die(EX_LOCAL, "socket: %s", strerror(errno));
		set_timeouts(fd);
		if (rcvbuf > 0)
			(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			    sizeof(rcvbuf));
		if (connect_retry(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) < 0) {
			int saved = errno;

			if (connect_fatal)
				die(EX_LOCAL, "connect %s: %s", addr,
				    strerror(saved));
			close(fd);
			errno = saved;
			return -1;
		}
		return fd;
	} else {
		struct addrinfo	 hints, *res, *ai;
		char		 host[256];
		const char	*port, *colon;
		size_t		 hl;
		int		 e, saved = 0;

		if (addr[0] == '[') {
			const char *rb = strchr(addr, ']');

			if (rb == NULL || rb[1] != ':')
				die(EX_USAGE, "bad address: %s", addr);
			hl = (size_t)(rb - addr - 1);
			if (hl >= sizeof(host))
				die(EX_USAGE, "bad address: %s", addr);
			memcpy(host, addr + 1, hl);
			port = rb + 2;
		} else {
			if ((colon = strrchr(addr, ':')) == NULL)
				die(EX_USAGE, "bad address (want unix:/path "
				    "or HOST:PORT): %s", addr);
			hl = (size_t)(colon - addr);
			if (hl >= sizeof(host))
				die(EX_USAGE, "bad address: %s", addr);
			memcpy(host, addr, hl);
			port = colon + 1;
		}
		host[hl] = '\0';
		if (*host == '\0' || *port == '\0')
			die(EX_USAGE, "bad address: %s", addr);
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		if ((e = getaddrinfo(host, port, &hints, &res)) != 0)
			die(EX_LOCAL, "%s: %s", addr, gai_strerror(e));
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0) {
				saved = errno;
				continue;
			}
			set_timeouts(fd);
			if (rcvbuf > 0)
				(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF,
				    &rcvbuf, sizeof(rcvbuf));
			if (connect_retry(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			saved = errno;
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0 && connect_fatal)
			die(EX_LOCAL, "connect %s: %s", addr, strerror(saved));
		if (fd < 0)
			errno = saved;
		return fd;
	}
}

/*
 * Write all of p, resuming after signals and short writes.  Returns the
 * number of bytes written; *err is 0 or the errno that stopped it (EAGAIN
 * after SO_SNDTIMEO).
 */
static size_t
write_all(int fd, const void *p, size_t n, int *err)
{
	const unsigned char	*c = p;
	size_t			 done = 0;
	ssize_t			 w;

	*err = 0;
	while (done < n) {
		w = send(fd, c + done, n - done, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			*err = errno;
			break;
		}
		done += (size_t)w;
	}
	return done;
}

static void
close_fd(int fd)
{
	/* close(2) is not retried on EINTR on Linux: the fd is gone. */
	(void)close(fd);
}

/* ---- reading answers ------------------------------------------------ */

struct conn {
	int		fd;
	struct buf	in;	/* bytes received, not yet parsed */
	size_t		inoff;
	int		eof;	/* server closed (or reset) the connection */
	int		rerr;	/* errno of the read that failed, or 0 */
	size_t		total;	/* bytes received on this connection */
	int		shut;	/* shut down for writing once all is sent
				 * (cleared then) */
};

struct resp {
	struct buf	out;		/* FCGI_STDOUT content */
	struct buf	err;		/* FCGI_STDERR content */
	int		got_end;
	uint32_t	app_status;
	int		proto_status;
	int		timed_out;
	int		werr;		/* errno that stopped our writing */
	size_t		sent, tosend;
	size_t		base;		/* c->total when this answer began */
	unsigned int	nrecords;
	unsigned int	nodd;		/* records not for our request */
	unsigned int	badversion;	/* records with version != 1 */
	unsigned int	lastodd;	/* type of the last odd record */
	unsigned int	nmgmt;		/* management answers (request id 0) */
	unsigned int	want_mgmt;	/* exchange with id 0: wait for these */
	long		t0, ms;
};

static void
resp_init(struct resp *r)
{
	memset(r, 0, sizeof(*r));
	r->t0 = now_ms();
}

static void
resp_free(struct resp *r)
{
	buf_free(&r->out);
	buf_free(&r->err);
}

/* What exchange waits for: the END_REQUEST for id, or for id 0 the
 * management answers asked for. */
static int
answered(unsigned int id, const struct resp *r)
{
	return id != 0 ? r->got_end : r->nmgmt >= r->want_mgmt;
}

/* A management answer (request id 0) as one line on stdout. */
static void
print_mgmt(unsigned int type, const unsigned char *b, size_t clen)
{
	size_t	off = 0, nl, vl;

	if (type == FCGI_UNKNOWN_TYPE) {
		printf("answer: UNKNOWN_TYPE %u\n", clen > 0 ? b[0] : 0);
		return;
	}
	printf("answer: GET_VALUES_RESULT");
	/* Our own lengths are 1 byte each: a longer one ends the line. */
	while (off + 2 <= clen && b[off] < 128 && b[off + 1] < 128) {
		nl = b[off];
		vl = b[off + 1];
		if (nl + vl > clen - off - 2)
			break;
		printf(" %.*s=%.*s", (int)nl, b + off + 2, (int)vl,
		    b + off + 2 + nl);
		off += 2 + nl + vl;
	}
	printf(off == clen ? "\n" : " (malformed)\n");
}

/* Parse whole records out of c->in until the END_REQUEST for id. */
static void
parse_records(struct conn *c, unsigned int id, struct resp *r)
{
	const unsigned char	*h;
	size_t			 avail, clen, plen;
	unsigned int		 type, rid;

	while (!answered(id, r)) {
		avail = c->in.len - c->inoff;
		if (avail < FCGI_HEADER_LEN)
			break;
		h = c->in.p + c->inoff;
		clen = ((size_t)h[4] << 8) | h[5];
		plen = h[6];
		if (avail < FCGI_HEADER_LEN + clen + plen)
			break;
		type = h[1];
		rid = ((unsigned int)h[2] << 8) | h[3];
		r->nrecords++;
		if (h[0] != 1)
			r->badversion++;
		if (rid == id && type == FCGI_STDOUT)
			buf_add(&r->out, h + FCGI_HEADER_LEN, clen);
		else if (rid == id && type == FCGI_STDERR)
			buf_add(&r->err, h + FCGI_HEADER_LEN, clen);
		else if (rid == id && type == FCGI_END_REQUEST && clen >= 8) {
			const unsigned char *b = h + FCGI_HEADER_LEN;

			r->app_status = ((uint32_t)b[0] << 24) |
			    ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
			r->proto_status = b[4];
			r->got_end = 1;
		} else if (rid == 0 && (type == FCGI_GET_VALUES_RESULT ||
		    type == FCGI_UNKNOWN_TYPE)) {
			print_mgmt(type, h + FCGI_HEADER_LEN, clen);
			r->nmgmt++;
		} else {
			r->nodd++;
			r->lastodd = type;
		}
		c->inoff += FCGI_HEADER_LEN + clen + plen;
	}
	if (c->inoff > 0 && c->inoff == c->in.len)
		c->in.len = c->inoff = 0;
	else if (c->inoff > 65536) {
		memmove(c->in.p, c->in.p + c->inoff, c->in.len - c->inoff);
		c->in.len -= c->inoff;
		c->inoff = 0;
	}
}

/*
 * Send out[0..outlen) while reading the answer, so that neither side can
 * block the other, until the END_REQUEST for id, EOF, a read error, or
 * io_timeout_s seconds without progress.  A failed write stops writing
 * but not reading: the server's reaction is what we want to see.
 */
static void
exchange(struct conn *c, const unsigned char *out, size_t outlen,
    unsigned int id, struct resp *r)
{
	unsigned char	tmp[65536];
	struct pollfd	pfd;
	ssize_t		n;
	int		pr;

	r->tosend = outlen;
	r->base = c->total;
	parse_records(c, id, r);	/* leftovers of a previous request */
	while (!answered(id, r) && !c->eof) {
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		if (r->sent < outlen && r->werr == 0)
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		pr = poll(&pfd, 1, io_timeout_s * 1000);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			die(EX_LOCAL, "poll: %s", strerror(errno));
		}
		if (pr == 0) {
			r->timed_out = 1;
			break;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
			if (n > 0) {
				c->total += (size_t)n;
				buf_add(&c->in, tmp, (size_t)n);
				parse_records(c, id, r);
				continue;
			} else if (n == 0) {
				c->eof = 1;
				break;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR) {
				c->rerr = errno;
				c->eof = 1;
				break;
			}
		}
		if ((pfd.revents & POLLOUT) && r->sent < outlen) {
			n = send(c->fd, out + r->sent, outlen - r->sent,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				r->sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR)
				r->werr = errno;
			if (c->shut && r->sent == outlen) {
				c->shut = 0;
				if (shutdown(c->fd, SHUT_WR) == -1)
					r->werr = errno;
			}
		}
	}
	r->ms = now_ms() - r->t0;
}

static const char *
errname(int e)
{
	switch (e) {
	case EPIPE:		return "EPIPE";
	case ECONNRESET:	return "ECONNRESET";
	case ECONNREFUSED:	return "ECONNREFUSED";
	case EAGAIN:		return "EAGAIN (timeout)";
	case ETIMEDOUT:		return "ETIMEDOUT";
	default:		return strerror(e);
	}
}

/* One line: how the server reacted to what we sent. */
static void
describe(FILE *fp, const char *label, const struct conn *c,
    const struct resp *r)
{
	fprintf(fp, "%s: ", label);
	if (r->got_end)
		fprintf(fp, "END_REQUEST app_status=%lu protocol_status=%d",
		    (unsigned long)r->app_status, r->proto_status);
	else if (c->eof && c->rerr)
		fprintf(fp, "connection failed (%s)", errname(c->rerr));
	else if (c->eof)
		fprintf(fp, "closed by server");
	else if (r->timed_out)
		fprintf(fp, "no reaction within %d s", io_timeout_s);
	fprintf(fp, " after %ld ms; received %zu bytes in %u records "
	    "(stdout %zu, stderr %zu", r->ms, c->total - r->base, r->nrecords,
	    r->out.len, r->err.len);
	if (r->nodd)
		fprintf(fp, ", %u other records, last type %u", r->nodd,
		    r->lastodd);
	if (r->badversion)
		fprintf(fp, ", %u with version != 1", r->badversion);
	fprintf(fp, ")");
	if (r->sent < r->tosend)
		fprintf(fp, "; sent only %zu of %zu bytes%s%s", r->sent,
		    r->tosend, r->werr ? ": " : "",
		    r->werr ? errname(r->werr) : "");
	fprintf(fp, "\n");
}

/*
 * Read and drop what the server sends on fd (counted in *got) until it
 * closes the connection or the deadline (now_ms) passes.  Returns 1 if it
 * closed (*err: 0 for EOF, else the read's errno), 0 at the deadline.
 */
static int
drain_until(int fd, long deadline, size_t *got, int *err)
{
	unsigned char	tmp[4096];
	struct pollfd	pfd;
	long		left;
	ssize_t		n;
	int		pr;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return 0;
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			die(EX_LOCAL, "poll: %s", strerror(errno));
		if (pr == 0)
			return 0;
		n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN ||
		    errno == EWOULDBLOCK))
			continue;
		*err = n < 0 ? errno : 0;
		return 1;
	}
}

/*
 * Before a deliberate close: has the server already reacted?  Looks for
 * up to ms milliseconds and reports, without judging.
 */
static void
peek_reaction(int fd, long ms)
{
	size_t	got = 0;
	int	err;

	if (drain_until(fd, now_ms() + ms, &got, &err)) {
		printf("server: %s within %ld ms (after sending %zu bytes)\n",
		    err == 0 ? "closed the connection" : errname(err), ms,
		    got);
		return;
	}
	if (got)
		printf("server: sent %zu bytes, connection still open after "
		    "%ld ms\n", got, ms);
	else
		printf("server: no reaction within %ld ms\n", ms);
}

/* Send raw bytes, look for a reaction, close. */
static int
send_and_close(const char *addr, const char *what, const struct buf *b)
{
	size_t	n;
	int	fd, err;

	fd = conn_open(addr, 0);
	n = write_all(fd, b->p, b->len, &err);
	if (err)
		printf("%s: sent %zu of %zu bytes, then %s\n", what, n,
		    b->len, errname(err));
	else
		printf("%s: sent %zu bytes\n", what, n);
	peek_reaction(fd, PEEK_MS);
	close_fd(fd);
	printf("closed\n");
	return EX_RAN;
}

/* Send a whole exchange on a new connection, print the reaction; shut
 * it down for writing once all of b is sent if shut (the server sees EOF
 * right behind the request). */
static int
send_shut_read(const char *addr, const char *what, const struct buf *b,
    int print_stdout, int shut)
{
	struct conn	c = { 0 };
	struct resp	r;

	c.shut = shut;
	if ((c.fd = conn_open(addr, 0)) < 0) {
		printf("%s: connect failed: %s (did the server die?)\n", what,
		    strerror(errno));
		return EX_RAN;
	}
	resp_init(&r);
	exchange(&c, b->p, b->len, 1, &r);
	describe(stdout, what, &c, &r);
	if (print_stdout && r.out.len > 0) {
		printf("--- stdout content ---\n");
		fwrite(r.out.p, 1, r.out.len, stdout);
		if (r.out.p[r.out.len - 1] != '\n')
			printf("\n");
		printf("--- end ---\n");
	}
	close_fd(c.fd);
	buf_free(&c.in);
	resp_free(&r);
	return EX_RAN;
}

static int
send_and_read(const char *addr, const char *what, const struct buf *b,
    int print_stdout)
{
	return send_shut_read(addr, what, b, print_stdout, 0);
}

/*
 * Wait up to secs for the server to close fd (data it sends meanwhile is
 * counted and dropped); prints "closed after N ms" (since t0) or "still
 * open".  Closes fd.
 */
static void
watch_close(int fd, long t0, unsigned long secs)
{
	size_t	got = 0;
	int	err;

	if (drain_until(fd, now_ms() + (long)secs * 1000, &got, &err)) {
		printf("closed after %ld ms\n", now_ms() - t0);
		if (err)
			fprintf(stderr, "idle: read error %s\n", errname(err));
		if (got)
			fprintf(stderr, "idle: server sent %zu bytes before "
			    "closing\n", got);
	} else {
		printf("still open\n");
		fprintf(stderr, "idle: still open after %lu s%s\n", secs,
		    got ? " (server sent data)" : "");
	}
	close_fd(fd);
}

/* A CGI head that says 200: a "Status: 200" line, or none (CGI's default). */
static int
answer_is_200(const struct buf *out)
{
	const unsigned char	*end;

	if (out->len >= 11 && memcmp(out->p, "Status: 200", 11) == 0)
		return 1;
	end = memmem(out->p, out->len, "\r\n\r\n", 4);
	return end != NULL && memmem(out->p, (size_t)(end - out->p),
	    "Status:", 7) == NULL;
}

/* ---- the cases ------------------------------------------------------ */

static int
case_good(const char *addr, const char *path, unsigned long keep,
    unsigned long idle)
{
	struct conn	c = { 0 };
	struct resp	r;
	struct buf	req = { 0 };
	unsigned long	i;
	int		ok = 1;

	c.fd = conn_open(addr, 0);
	for (i = 1; i <= keep; i++) {
		req.len = 0;
		put_request(&req, 1, 1, keep > 1 ? FCGI_KEEP_CONN : 0, "GET",
		    path, NULL, 0, NULL);
		resp_init(&r);
		exchange(&c, req.p, req.len, 1, &r);
		if (r.out.len > 0)
			fwrite(r.out.p, 1, r.out.len, stdout);
		fflush(stdout);
		if (keep > 1)
			fprintf(stderr, "request %lu/%lu: ", i, keep);
		describe(stderr, "good", &c, &r);
		if (!r.got_end) {
			fprintf(stderr, "%s: FAIL: no END_REQUEST%s\n",
			    progname, c.eof && i > 1 ?
			    " (the server closed a FCGI_KEEP_CONN connection)"
			    : "");
			ok = 0;
		} else if (r.proto_status != FCGI_REQUEST_COMPLETE) {
			fprintf(stderr, "%s: FAIL: protocol_status %d\n",
			    progname, r.proto_status);
			ok = 0;
		} else if (r.out.len == 0 ||
		    memmem(r.out.p, r.out.len, HELLO, strlen(HELLO)) == NULL) {
			fprintf(stderr, "%s: FAIL: stdout lacks \"%s\"\n",
			    progname, HELLO);
			ok = 0;
		}
		if (r.err.len > 0) {
			fprintf(stderr, "--- FCGI_STDERR ---\n");
			fwrite(r.err.p, 1, r.err.len, stderr);
			fprintf(stderr, "\n--- end ---\n");
		}
		resp_free(&r);
		if (!ok)
			break;
	}
	if (ok && idle > 0)
		watch_close(c.fd, now_ms(), idle);
	else
		close_fd(c.fd);
	buf_free(&c.in);
	buf_free(&req);
	return ok ? EX_RAN : EX_BADANSWER;
}

static int
case_post(const char *addr, const char *path, const char *file,
    unsigned long keep)
{
	struct conn	 c = { 0 };
	struct resp	 r;
	struct buf	 body = { 0 }, req = { 0 };
	unsigned char	 tmp[65536];
	unsigned long	 i;
	ssize_t		 n;
	int		 fd, ok = 1;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
		die(EX_USAGE, "%s: %s", file, strerror(errno));
	for (;;) {
		n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(EX_USAGE, "%s: %s", file, strerror(errno));
		if (n == 0)
			break;
		buf_add(&body, tmp, (size_t)n);
	}
	close_fd(fd);
	put_request(&req, 1, 1, keep > 1 ? FCGI_KEEP_CONN : 0, "POST", path,
	    body.p ? body.p : (const unsigned char *)"", body.len, NULL);
	c.fd = conn_open(addr, 0);
	if (keep == 1) {
		resp_init(&r);
		exchange(&c, req.p, req.len, 1, &r);
		if (r.out.len > 0)
			fwrite(r.out.p, 1, r.out.len, stdout);
		fflush(stdout);
		describe(stderr, "post", &c, &r);
		resp_free(&r);
	}
	/* --keep N: every answer must be whole and 200, on one connection. */
	for (i = 1; keep > 1 && i <= keep && ok; i++) {
		resp_init(&r);
		exchange(&c, req.p, req.len, 1, &r);
		if (!r.got_end || !answer_is_200(&r.out)) {
			fprintf(stderr, "post %lu/%lu: FAIL: ", i, keep);
			describe(stderr, "post", &c, &r);
			if (r.out.len > 0)
				fprintf(stderr, "%.*s\n", (int)(r.out.len > 200 ?
				    200 : r.out.len), (const char *)r.out.p);
			ok = 0;
		}
		resp_free(&r);
	}
	if (keep > 1 && ok)
		fprintf(stderr, "post: %lu answers, all 200, on one "
		    "connection\n", keep);
	close_fd(c.fd);
	buf_free(&c.in);
	buf_free(&req);
	buf_free(&body);
	return ok ? EX_RAN : EX_BADANSWER;
}

static int
case_truncated(const char *addr)
{
	struct buf	b = { 0 };
	int		rc;

	put_begin(&b, 1, 1, 0);
	b.len = FCGI_HEADER_LEN / 2;	/* half of the BEGIN_REQUEST header */
	rc = send_and_close(addr, "truncated: half a header", &b);
	buf_free(&b);
	return rc;
}

static int
case_badversion(const char *addr)
{
	struct buf	b = { 0 };
	int		rc;

	/* A whole, otherwise correct request, every header version 2. */
	put_request(&b, 2, 1, 0, "GET", "/", NULL, 0, NULL);
	rc = send_and_read(addr, "badversion: request with version 2 headers",
	    &b, 1);
	buf_free(&b);
	return rc;
}

static int
case_hugelen(const char *addr)
{
	struct buf	b = { 0 };
	int		rc;

	put_begin(&b, 1, 1, 0);
	/* Declares 65535 content + 255 padding; sends 5 bytes of it. */
	put_header(&b, 1, FCGI_PARAMS, 1, FCGI_MAX_CONTENT, 255);
	buf_add(&b, "\x04\x03GET", 5);
	rc = send_and_close(addr, "hugelen: PARAMS header declaring 65535 "
	    "bytes, 5 sent", &b);
	buf_free(&b);
	return rc;
}

static int
case_random(const char *addr, unsigned long n)
{
	struct buf	b = { 0 };
	char		what[64];
	ssize_t		r;
	int		fd, rc;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) < 0)
		die(EX_LOCAL, "/dev/urandom: %s", strerror(errno));
	buf_reserve(&b, n);
	while (b.len < n) {
		r = read(fd, b.p + b.len, n - b.len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die(EX_LOCAL, "/dev/urandom: %s",
			    r < 0 ? strerror(errno) : "EOF");
		b.len += (size_t)r;
	}
	close_fd(fd);
	snprintf(what, sizeof(what), "random: %lu random bytes", n);
	rc = send_and_close(addr, what, &b);
	buf_free(&b);
	return rc;
}

static int
case_novalue(const char *addr)
{
	struct buf	b = { 0 }, pb = { 0 };
	int		rc;

	put_begin(&b, 1, 1, 0);
	put_std_params(&pb, "GET", "/", 0, 0);
	put_nv(&pb, "HTTP_X_EMPTY", "");	/* value length 0 */
	/* A name length of 100 (1-byte form) with 3 bytes left in all. */
	buf_byte(&pb, 100);
	buf_byte(&pb, 1);
	buf_str(&pb, "AB");
	put_record(&b, 1, FCGI_PARAMS, 1, pb.p, pb.len);
	put_record(&b, 1, FCGI_PARAMS, 1, NULL, 0);
	put_record(&b, 1, FCGI_STDIN, 1, NULL, 0);
	rc = send_and_read(addr, "novalue: empty value + name length 100 "
	    "with 3 bytes left", &b, 1);
	buf_free(&pb);
	buf_free(&b);
	return rc;
}

/* n distinct params, HTTP_X_PARAM_i=value-i, onto out. */
static void
put_many(struct buf *out, unsigned long n)
{
	char		name[48], value[48];
	unsigned long	i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "HTTP_X_PARAM_%lu", i);
		snprintf(value, sizeof(value), "value-%lu", i);
		put_nv(out, name, value);
	}
}

static int
case_manyparams(const char *addr, unsigned long n)
{
	struct buf	b = { 0 }, extra = { 0 };
	char		what[64];
	int		rc;

	put_many(&extra, n);
	put_request(&b, 1, 1, 0, "GET", "/", NULL, 0, &extra);
	snprintf(what, sizeof(what), "manyparams: %lu params (%zu bytes)", n,
	    extra.len);
	rc = send_and_read(addr, what, &b, 1);
	buf_free(&extra);
	buf_free(&b);
	return rc;
}

/*
 * CVE-2025-23016 class: libfcgi's ReadParams added two lengths read in
 * the 4-byte form (up to 0x7fffffff each, or 0xffffffff where the top bit
 * is not masked) in an int and allocated the overflowed sum.  Each variant
 * is a small PARAMS record on its own connection, followed by the empty
 * PARAMS and STDIN, so a server that waits for the lengths it was told
 * about is caught by its read timeout and one that trusts them overflows.
 */
static int
case_cve(const char *addr, unsigned long only)
{
	static const struct {
		const char	*what;
		const char	*bytes;
		size_t		 len;
		unsigned int	 extra_records;	/* more PARAMS with 'A's */
	} v[] = {
		{ "name=value=ff ff ff ff (0x7fffffff, 0xffffffff unmasked)",
		  "\xff\xff\xff\xff\xff\xff\xff\xff" "AAAAAAAA", 16, 0 },
		{ "name=1 value=0x7fffffff (sum+2 overflows int)",
		  "\x01\xff\xff\xff\xff" "AB", 7, 0 },
		{ "name=0x7ffffff0 value=32",
		  "\xff\xff\xff\xf0\x20" "AAAAAAAAAAA", 16, 0 },
		{ "name=0x7fffffff value=0x7fffffff (sum+2 == 0 in 32 bits)",
		  "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 0 },
		{ "name=0x80000000 encoding (4-byte zero) value=1",
		  "\x80\x00\x00\x00\x01" "A", 6, 0 },
		{ "4-byte name length cut by the end of the record",
		  "\x05\x03" "NAMEVAL" "\xff\xff", 11, 0 },
		{ "name=0x7fffffff streamed over further PARAMS records",
		  "\xff\xff\xff\xff\x01" "AAAAAAAAAAA", 16, 3 },
	};
	struct buf	b = { 0 }, fill = { 0 };
	char		what[128];
	size_t		i;
	unsigned int	k;

	for (i = 0; i < 1000; i++)
		buf_byte(&fill, 'A');
	if (only > sizeof(v) / sizeof(v[0]))
		die(EX_USAGE, "cve K: K must be 1..%zu", sizeof(v) / sizeof(v[0]));
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (only != 0 && i + 1 != only)
			continue;
		b.len = 0;
		put_begin(&b, 1, 1, 0);
		put_record(&b, 1, FCGI_PARAMS, 1, v[i].bytes, v[i].len);
		for (k = 0; k < v[i].extra_records; k++)
			put_record(&b, 1, FCGI_PARAMS, 1, fill.p, fill.len);
		put_record(&b, 1, FCGI_PARAMS, 1, NULL, 0);
		put_record(&b, 1, FCGI_STDIN, 1, NULL, 0);
		snprintf(what, sizeof(what), "cve %zu: %s", i + 1, v[i].what);
		(void)send_and_read(addr, what, &b, 1);
		/* Connecting failed only if the server was never there. */
		connect_fatal = 0;
	}
	connect_fatal = 1;
	buf_free(&fill);
	buf_free(&b);
	return EX_RAN;
}

static int
case_idle(const char *addr, unsigned long secs)
{
	watch_close(conn_open(addr, 0), now_ms(), secs);
	return EX_RAN;
}

static int
case_shortbody(const char *addr, size_t len, size_t sent)
{
	struct buf	 b = { 0 }, pb = { 0 };
	unsigned char	*body;
	int		 rc;

	if (sent > len)
		sent = len;
	if ((body = calloc(1, len ? len : 1)) == NULL)
		die(EX_LOCAL, "out of memory");
	put_begin(&b, 1, 1, 0);
	put_std_params(&pb, "POST", "/echo", len, 1);
	put_stream(&b, 1, FCGI_PARAMS, 1, pb.p, pb.len, 1);
	/* Part of the body, and no end of STDIN. */
	put_stream(&b, 1, FCGI_STDIN, 1, body, sent, 0);
	rc = send_and_close(addr, "shortbody: part of a declared body", &b);
	free(body);
	buf_free(&pb);
	buf_free(&b);
	return rc;
}

static int
case_midreq(const char *addr)
{
	struct buf	b = { 0 }, pb = { 0 };
	size_t		half;
	int		rc;

	put_begin(&b, 1, 1, 0);
	put_std_params(&pb, "GET", "/", 0, 0);
	half = pb.len / 2;
	/* A complete first PARAMS record with half the params ... */
	put_record(&b, 1, FCGI_PARAMS, 1, pb.p, half);
	/* ... and the header plus half of the second one. */
	put_header(&b, 1, FCGI_PARAMS, 1, pb.len - half, 0);
	buf_add(&b, pb.p + half, (pb.len - half) / 2);
	rc = send_and_close(addr, "midreq: BEGIN_REQUEST + part of PARAMS",
	    &b);
	buf_free(&pb);
	buf_free(&b);
	return rc;
}

static int
case_noread(const char *addr, const char *path)
{
	struct buf	b = { 0 };
	size_t		n;
	int		fd, err;

	put_request(&b, 1, 1, 0, "GET", path, NULL, 0, NULL);
	fd = conn_open(addr, 0);
	n = write_all(fd, b.p, b.len, &err);
	if (err)
		printf("noread: sent %zu of %zu bytes, then %s\n", n, b.len,
		    errname(err));
	else
		printf("noread: sent a good request for %s (%zu bytes)\n",
		    path, n);
	close_fd(fd);
	printf("closed without reading\n");
	buf_free(&b);
	return EX_RAN;
}

static int
case_slowread(const char *addr, const char *path, unsigned long secs)
{
	struct buf	b = { 0 };
	size_t		n;
	int		fd, err, pending = 0;

	put_request(&b, 1, 1, 0, "GET", path, NULL, 0, NULL);
	fd = conn_open(addr, 4096);	/* small buffer: the server blocks */
	n = write_all(fd, b.p, b.len, &err);
	if (err)
		printf("slowread: sent %zu of %zu bytes, then %s\n", n, b.len,
		    errname(err));
	else
		printf("slowread: sent a good request for %s (%zu bytes)\n",
		    path, n);
	sleep_ms((long)secs * 1000);
	if (ioctl(fd, FIONREAD, &pending) < 0)
		pending = -1;
	printf("after %lu s without reading: %d bytes waiting unread\n",
	    secs, pending);
	close_fd(fd);
	printf("closed\n");
	buf_free(&b);
	return EX_RAN;
}

/*
 * A kept connection whose second answer, a large one, is not read for a
 * while: the server's writer blocks on it (a timeout may cut it short).
 */
static int
case_keptcut(const char *addr, size_t len, unsigned long secs)
{
	struct conn	 c = { 0 };
	struct resp	 r;
	struct buf	 req = { 0 };
	unsigned char	*body;
	size_t		 n;
	int		 err;

	if ((body = malloc(len + 1)) == NULL)
		die(EX_LOCAL, "out of memory");
	memset(body, 'x', len);
	c.fd = conn_open(addr, 4096);
	put_request(&req, 1, 1, FCGI_KEEP_CONN, "GET", "/", NULL, 0, NULL);
	resp_init(&r);
	exchange(&c, req.p, req.len, 1, &r);
	describe(stdout, "keptcut: first", &c, &r);
	resp_free(&r);
	req.len = 0;
	put_request(&req, 1, 1, FCGI_KEEP_CONN, "POST", "/echo", body, len,
	    NULL);
	n = write_all(c.fd, req.p, req.len, &err);
	printf("keptcut: sent %zu of %zu bytes of POST /echo%s%s\n", n,
	    req.len, err ? ", then " : "", err ? errname(err) : "");
	sleep_ms((long)secs * 1000);
	resp_init(&r);
	exchange(&c, NULL, 0, 1, &r);
	describe(stdout, "keptcut: second", &c, &r);
	resp_free(&r);
	close_fd(c.fd);
	buf_free(&c.in);
	buf_free(&req);
	free(body);
	return EX_RAN;
}

/*
 * After a request that does not keep the connection, keep sending: a byte
 * every 500 ms, as a client that lingers would, until the server closes.
 */
static int
case_drip(const char *addr, unsigned long secs)
{
	struct conn	c = { 0 };
	struct resp	r;
	struct buf	req = { 0 };
	long		t0, deadline;
	int		err = 0;

	c.fd = conn_open(addr, 0);
	put_request(&req, 1, 1, 0, "GET", "/", NULL, 0, NULL);
	resp_init(&r);
	exchange(&c, req.p, req.len, 1, &r);
	describe(stdout, "drip: request", &c, &r);
	/* A server that shuts down only its sending side (EOF here) still
	 * reads: the connection is closed when a write fails. */
	t0 = now_ms();
	deadline = t0 + (long)secs * 1000;
	for (;;) {
		if (write_all(c.fd, "x", 1, &err) != 1) {
			printf("closed after %ld ms (%s)\n", now_ms() - t0,
			    errname(err));
			break;
		}
		if (now_ms() >= deadline) {
			printf("still open\n");
			break;
		}
		sleep_ms(500);
	}
	resp_free(&r);
	close_fd(c.fd);
	buf_free(&c.in);
	buf_free(&req);
	return EX_RAN;
}

/*
 * libfcgi answers FCGI_GET_VALUES (request id 0) itself, wherever it
 * comes, parsing its pairs as it parses params.  One declaring names of
 * 0x7fffffff bytes, before the request or between two STDIN records of a
 * POST /echo.
 */
static int
case_getvalues(const char *addr, int in_body, int shut)
{
	static const char	absurd[] = "\xff\xff\xff\xfe\xff\xff\xff\xfe"
	    "FCGI_MAX_CONNS";
	struct buf		b = { 0 }, pb = { 0 };
	int			rc;

	if (!in_body)
		put_record(&b, 1, FCGI_GET_VALUES, 0, absurd,
		    sizeof(absurd) - 1);
	put_begin(&b, 1, 1, 0);
	/* shut: the front's own page, answered though nginx is gone (a
	 * worker's request would leave the line unanswered). */
	if (shut)
		put_std_params(&pb, "GET", "/status", 0, 0);
	else
		put_std_params(&pb, "POST", "/echo", 10, 1);
	put_stream(&b, 1, FCGI_PARAMS, 1, pb.p, pb.len, 1);
	if (!shut)
		put_record(&b, 1, FCGI_STDIN, 1, "hello", 5);
	if (in_body)
		put_record(&b, 1, FCGI_GET_VALUES, 0, absurd,
		    sizeof(absurd) - 1);
	if (!shut)
		put_record(&b, 1, FCGI_STDIN, 1, "world", 5);
	put_record(&b, 1, FCGI_STDIN, 1, NULL, 0);
	rc = send_shut_read(addr, in_body ? "getvalues amid the body" :
	    "getvalues before the request", &b, 1, shut);
	buf_free(&pb);
	buf_free(&b);
	return rc;
}

/* One exchange of case_mgmt on c: out sent, until id's END_REQUEST (or
 * want management answers, for id 0); its reaction described. */
static int
mgmt_step(struct conn *c, const char *what, const struct buf *out,
    unsigned int id, unsigned int want)
{
	struct resp	r;
	int		ok;

	resp_init(&r);
	r.want_mgmt = want;
	exchange(c, out->p, out->len, id, &r);
	fflush(stdout);
	ok = answered(id, &r) && r.nmgmt >= want;
	if (r.out.len > 0) {
		printf("--- stdout content ---\n");
		fwrite(r.out.p, 1, r.out.len, stdout);
		printf("\n--- end ---\n");
	}
	describe(stdout, what, c, &r);
	resp_free(&r);
	return ok;
}

static int
case_mgmt(const char *addr)
{
	static const char	absurd[] = "\xff\xff\xff\xfe\xff\xff\xff\xfe"
	    "FCGI_MAX_CONNS";
	struct conn		c = { 0 };
	struct buf		b = { 0 }, nv = { 0 }, pb = { 0 };
	int			i, ok = 1;

	c.fd = conn_open(addr, 0);
	put_nv(&nv, "FCGI_MAX_CONNS", "");
	put_nv(&nv, "FCGI_MAX_REQS", "");
	put_nv(&nv, "FCGI_MPXS_CONNS", "");
	put_nv(&nv, "FCGI_NO_SUCH_NAME", "");
	put_record(&b, 1, FCGI_GET_VALUES, 0, nv.p, nv.len);
	ok &= mgmt_step(&c, "get_values", &b, 0, 1);
	b.len = nv.len = 0;
	for (i = 0; i < 20; i++)
		put_nv(&nv, "FCGI_MAX_CONNS", "");
	put_record(&b, 1, FCGI_GET_VALUES, 0, nv.p, nv.len);
	ok &= mgmt_step(&c, "get_values x20", &b, 0, 1);
	b.len = 0;
	put_record(&b, 1, 99, 0, "x", 1);
	ok &= mgmt_step(&c, "type 99", &b, 0, 1);
	b.len = nv.len = 0;
	put_begin(&b, 1, 1, FCGI_KEEP_CONN);
	put_std_params(&pb, "POST", "/echo", 10, 1);
	put_stream(&b, 1, FCGI_PARAMS, 1, pb.p, pb.len, 1);
	put_record(&b, 1, FCGI_STDIN, 1, "hello", 5);
	put_nv(&nv, "FCGI_MPXS_CONNS", "");
	put_record(&b, 1, FCGI_GET_VALUES, 0, nv.p, nv.len);
	put_record(&b, 1, FCGI_GET_VALUES, 0, absurd, sizeof(absurd) - 1);
	put_record(&b, 1, 42, 0, NULL, 0);
	put_record(&b, 1, FCGI_STDIN, 1, "world", 5);
	put_record(&b, 1, FCGI_STDIN, 1, NULL, 0);
	ok &= mgmt_step(&c, "echo", &b, 1, 3);
	b.len = 0;
	put_request(&b, 1, 1, FCGI_KEEP_CONN, "GET", "/", NULL, 0, NULL);
	ok &= mgmt_step(&c, "get", &b, 1, 0);
	close_fd(c.fd);
	buf_free(&c.in);
	buf_free(&b);
	buf_free(&nv);
	buf_free(&pb);
	return ok ? EX_RAN : EX_BADANSWER;
}

/* POST (PUT to /kv) of file with CONTENT_LENGTH cl, or none. */
static int
case_length(const char *addr, const char *path, const char *cl,
    const char *file)
{
	struct buf	 b = { 0 }, pb = { 0 }, body = { 0 };
	struct conn	 c = { 0 };
	struct resp	 r;
	unsigned char	 tmp[65536];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(file, O_RDONLY)) < 0)
		die(EX_LOCAL, "%s: %s", file, strerror(errno));
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_add(&body, tmp, (size_t)n);
	close_fd(fd);
	put_nv(&pb, "REQUEST_METHOD", strncmp(path, "/kv", 3) == 0 ? "PUT" :
	    "POST");
	put_nv(&pb, "DOCUMENT_URI", path);
	put_nv(&pb, "QUERY_STRING", "");
	if (strcmp(cl, "none") != 0)
		put_nv(&pb, "CONTENT_LENGTH", cl);
	put_begin(&b, 1, 1, 0);
	put_stream(&b, 1, FCGI_PARAMS, 1, pb.p, pb.len, 1);
	put_stream(&b, 1, FCGI_STDIN, 1, body.p, body.len, 1);
	c.fd = conn_open(addr, 0);
	resp_init(&r);
	exchange(&c, b.p, b.len, 1, &r);
	fwrite(r.out.p, 1, r.out.len, stdout);
	describe(stderr, "length", &c, &r);
	resp_free(&r);
	close_fd(c.fd);
	buf_free(&c.in);
	buf_free(&body);
	buf_free(&pb);
	buf_free(&b);
	return EX_RAN;
}

/* A connection idle for idle ms, then a request with n extra params
 * dripped over drip ms. */
static int
case_late(const char *addr, unsigned long idle, unsigned long drip,
    unsigned long n)
{
	struct buf	b = { 0 }, extra = { 0 };
	struct conn	c = { 0 };
	struct resp	r;
	size_t		off = 0, piece;
	int		err, i, ok;

	put_many(&extra, n);
	put_request(&b, 1, 1, 0, "GET", "/", NULL, 0, &extra);
	buf_free(&extra);
	c.fd = conn_open(addr, 0);
	sleep_ms((long)idle);
	piece = b.len / 8 + 1;
	for (i = 0; i < 8 && off < b.len; i++) {
		if (i > 0)
			sleep_ms((long)drip / 7);
		piece = b.len - off < piece ? b.len - off : piece;
		if (write_all(c.fd, b.p + off, piece, &err) != piece)
			break;
		off += piece;
	}
	resp_init(&r);
	exchange(&c, b.p + off, b.len - off, 1, &r);
	fwrite(r.out.p, 1, r.out.len, stdout);
	describe(stderr, "late", &c, &r);
	ok = r.got_end && r.out.len > 0 && memmem(r.out.p, r.out.len, HELLO,
	    strlen(HELLO)) != NULL;
	resp_free(&r);
	close_fd(c.fd);
	buf_free(&c.in);
	buf_free(&b);
	return ok ? EX_RAN : EX_BADANSWER;
}

/* A request whose body comes ms after its params (a slow request). */
static int
case_slowbody(const char *addr, const char *path, unsigned long ms)
{
	struct buf	b = { 0 }, pb = { 0 };
	struct conn	c = { 0 };
	struct resp	r;
	size_t		n;
	int		err;

	put_begin(&b, 1, 1, 0);
	put_std_params(&pb, "POST", path, 5, 1);
	put_stream(&b, 1, FCGI_PARAMS, 1, pb.p, pb.len, 1);
	c.fd = conn_open(addr, 0);
	if ((n = write_all(c.fd, b.p, b.len, &err)) != b.len)
		die(EX_LOCAL, "slowbody: sent %zu of %zu bytes: %s", n, b.len,
		    errname(err));
	sleep_ms((long)ms);
	b.len = 0;
	put_record(&b, 1, FCGI_STDIN, 1, "hello", 5);
	put_record(&b, 1, FCGI_STDIN, 1, NULL, 0);
	resp_init(&r);
	exchange(&c, b.p, b.len, 1, &r);
	fwrite(r.out.p, 1, r.out.len, stdout);
	describe(stderr, "slowbody", &c, &r);
	resp_free(&r);
	close_fd(c.fd);
	buf_free(&c.in);
	buf_free(&pb);
	buf_free(&b);
	return EX_RAN;
}

/* ---- main ----------------------------------------------------------- */

int
main(int argc, char *argv[])
{
	const char	*addr, *cs, *env;
	int		 i;

	if (argc > 0 && argv[0] && *argv[0]) {
		const char *s = strrchr(argv[0], '/');

		progname = s ? s + 1 : argv[0];
	}
	if (argc < 3)
		usage();
	if ((env = getenv("FCGIRAW_TIMEOUT")) != NULL && *env != '\0')
		io_timeout_s = (int)parse_num(env, 1, 3600, "FCGIRAW_TIMEOUT");
	(void)signal(SIGPIPE, SIG_IGN);
	addr = argv[1];
	cs = argv[2];
	argc -= 3;
	argv += 3;

	if (strcmp(cs, "good") == 0) {
		const char	*path = NULL;
		unsigned long	 keep = 1, idle = 0;

		for (i = 0; i < argc; i++) {
			if (strcmp(argv[i], "--keep") == 0) {
				if (i + 1 >= argc)
					usage();
				keep = parse_num(argv[++i], 1, MAX_KEEP,
				    "--keep");
			} else if (strcmp(argv[i], "--idle") == 0) {
				if (i + 1 >= argc)
					usage();
				idle = parse_num(argv[++i], 1, 3600, "--idle");
			} else if (path == NULL && argv[i][0] != '-')
				path = argv[i];
			else
				usage();
		}
		return case_good(addr, path ? path : "/", keep, idle);
	}
	if (strcmp(cs, "post") == 0) {
		if (argc == 4 && strcmp(argv[2], "--keep") == 0)
			return case_post(addr, argv[0], argv[1],
			    parse_num(argv[3], 1, MAX_KEEP, "--keep"));
		if (argc != 2)
			usage();
		return case_post(addr, argv[0], argv[1], 1);
	}
	if (strcmp(cs, "truncated") == 0 && argc == 0)
		return case_truncated(addr);
	if (strcmp(cs, "badversion") == 0 && argc == 0)
		return case_badversion(addr);
	if (strcmp(cs, "hugelen") == 0 && argc == 0)
		return case_hugelen(addr);
	if (strcmp(cs, "random") == 0 && argc <= 1)
		return case_random(addr, argc ? parse_num(argv[0], 1,
		    MAX_RANDOM, "random N") : 4096);
	if (strcmp(cs, "novalue") == 0 && argc == 0)
		return case_novalue(addr);
	if (strcmp(cs, "manyparams") == 0 && argc <= 1)
		return case_manyparams(addr, argc ? parse_num(argv[0], 1,
		    MAX_PARAMS, "manyparams N") : 10000);
	if (strcmp(cs, "cve") == 0 && argc <= 1)
		return case_cve(addr, argc ? parse_num(argv[0], 1, 100,
		    "cve K") : 0);
	if (strcmp(cs, "idle") == 0 && argc <= 1)
		return case_idle(addr, argc ? parse_num(argv[0], 1, 3600,
		    "idle SECS") : 30);
	if (strcmp(cs, "midreq") == 0 && argc == 0)
		return case_midreq(addr);
	if (strcmp(cs, "keptcut") == 0 && argc <= 2)
		return case_keptcut(addr, argc > 0 ? parse_num(argv[0], 1,
		    1 << 26, "keptcut LEN") : 1 << 20, argc > 1 ?
		    parse_num(argv[1], 0, 3600, "keptcut SECS") : 3);
	if (strcmp(cs, "shortbody") == 0 && argc <= 2) {
		size_t len = argc ? parse_num(argv[0], 0, 1 << 26,
		    "shortbody LEN") : 100000;

		return case_shortbody(addr, len, argc > 1 ? parse_num(argv[1],
		    0, 1 << 26, "shortbody SENT") : len / 2);
	}
	if (strcmp(cs, "drip") == 0 && argc <= 1)
		return case_drip(addr, argc ? parse_num(argv[0], 1, 3600,
		    "drip SECS") : 30);
	if (strcmp(cs, "getvalues") == 0 && argc >= 1 && argc <= 2 &&
	    (strcmp(argv[0], "before") == 0 || strcmp(argv[0], "body") == 0) &&
	    (argc == 1 || strcmp(argv[1], "shut") == 0))
		return case_getvalues(addr, strcmp(argv[0], "body") == 0,
		    argc == 2);
	if (strcmp(cs, "mgmt") == 0 && argc == 0)
		return case_mgmt(addr);
	if (strcmp(cs, "late") == 0 && (argc == 2 || argc == 3))
		return case_late(addr, parse_num(argv[0], 0, 60000, "late IDLE"),
		    parse_num(argv[1], 0, 60000, "late DRIP"), argc == 3 ?
		    parse_num(argv[2], 0, 100000, "late N") : 0);
	if (strcmp(cs, "slowbody") == 0 && argc == 2)
		return case_slowbody(addr, argv[0], parse_num(argv[1], 0, 60000,
		    "slowbody MS"));
	if (strcmp(cs, "length") == 0 && argc == 3)
		return case_length(addr, argv[0], argv[1], argv[2]);
	if (strcmp(cs, "noread") == 0 && argc <= 1)
		return case_noread(addr, argc ? argv[0] : "/");
	if (strcmp(cs, "slowread") == 0 && argc <= 2)
		return case_slowread(addr, argc ? argv[0] : "/",
		    argc > 1 ? parse_num(argv[1], 0, 3600, "slowread SECS") :
		    5);
	usage();
}
