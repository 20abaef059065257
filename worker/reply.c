/*
 * reply.c: an answer as a CGI response, head and body.  The one place
 * that knows the status texts and builds a CGI head; the workers, the
 * store, the front's own answers and CGI mode all use it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "reply.h"

/* "X-Worker-Pid: N\r\n", set by reply_init() in a worker or the store. */
static char	pid_header[40];

void
reply_init(void)
{
	(void)snprintf(pid_header, sizeof(pid_header), "X-Worker-Pid: %ld\r\n",
	    (long)getpid());
}

const char *
reply_pid_header(void)
{
	return pid_header;
}

const char *
reply_status_text(unsigned s)
{
	switch (s) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

/*
 * The CGI head's Status line for status, in buf (REPLY_STATUS_LINE_MAX bytes):
 * none for 200, which CGI implies; a server such as Caddy passes a
 * "Status: 200 OK" line on to the client as a header.
 */
const char *
reply_status_line(char *buf, size_t len, unsigned status)
{
	if (status == 200)
		return "";
	(void)snprintf(buf, len, "Status: %u %s\r\n", status,
	    reply_status_text(status));
	return buf;
}

/*
 * A CGI head into buf[cap]: the Status line, Content-Type (ctype),
 * Content-Length, the extra header lines (may be NULL) and the blank
 * line.  Returns its length, or 0 if it does not fit (the caller then
 * has no answer to give, and says so its own way).
 */
size_t
reply_head(char *buf, size_t cap, unsigned status, const char *ctype,
    size_t body_len, const char *extra)
{
	char	sl[REPLY_STATUS_LINE_MAX];
	int	n;

	n = snprintf(buf, cap, "%sContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "%s\r\n", reply_status_line(sl, sizeof(sl), status), ctype,
	    body_len, extra ? extra : "");
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

/*
 * The plain-text answer of a server that has none better to give:
 * "503 Service Unavailable: why\n", extra header lines (may be NULL).
 * -1 if the head does not fit (the body is cut to fit).
 */
int
reply_plain(struct reply_plain *p, unsigned status, const char *extra,
    const char *why)
{
	int	b;

	/* The body first, so its length is counted, not worked out. */
	b = snprintf(p->body, sizeof(p->body), "%u %s: %s\n", status,
	    reply_status_text(status), why);
	if (b < 0)
		b = 0;
	if ((size_t)b >= sizeof(p->body))
		b = (int)sizeof(p->body) - 1;
	p->body_len = (size_t)b;
	p->head_len = reply_head(p->head, sizeof(p->head), status,
	    REPLY_TEXT_TYPE, p->body_len, extra);
	return p->head_len > 0 ? 0 : -1;
}

/*
 * A reply with a body of len bytes (body is not copied).  head_only keeps
 * Content-Length but sends no body (HEAD).
 */
void
reply_bytes(struct reply *rp, unsigned status, const char *ctype,
    const char *body, size_t len, int head_only)
{
	rp->r.status = status;
	rp->head = rp->headbuf;
	rp->head_len = reply_head(rp->headbuf, sizeof(rp->headbuf), status,
	    ctype, len, pid_header);
	rp->body = head_only ? NULL : body;
	rp->body_len = head_only ? 0 : len;
}

/* A short text reply; extra is more header lines ("Allow: POST\r\n"). */
void
reply_text(struct reply *rp, unsigned status, const char *extra,
    const char *fmt, ...)
{
	static __thread char	body[512];
	char			more[sizeof(pid_header) + 256];
	va_list			ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(body) - 2)
		n = (int)sizeof(body) - 2;
	body[n++] = '\n';
	(void)snprintf(more, sizeof(more), "%s%s", pid_header,
	    extra ? extra : "");
	rp->r.status = status;
	rp->head = rp->headbuf;
	rp->head_len = reply_head(rp->headbuf, sizeof(rp->headbuf), status,
	    REPLY_TEXT_TYPE, (size_t)n, more);
	rp->body = body;
	rp->body_len = (size_t)n;
}
