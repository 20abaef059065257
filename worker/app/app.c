/*
 * app.c: the pp_* functions of pipepool.h over one request in a worker,
 * and app_handle, which runs the current application's handle on it and
 * turns what the handler did into a reply (reply.h).
 *
 * The request: method, path and query are NUL-ended copies made on first
 * use into this file's scratch (the mailbox holds them without NULs); the
 * params are copied whole on the first pp_param or pp_param_next, each
 * "NAME=VALUE" split at its first '=' (a string without one is skipped),
 * so a handler that reads none costs nothing, and what it reads cannot
 * change under it when another worker scribbles on the shared area.
 * The body is the mailbox's own bytes.
 *
 * The answer: status and headers are kept until the handler returns, the
 * body is appended to a buffer of this worker's (kept from request to
 * request).  The CGI head is built at the end: the Status line (none for
 * 200), Content-Type (the handler's, else APP_TYPE), Content-Length,
 * X-Worker-Pid, then the handler's headers in order.  A HEAD request's
 * body is counted in Content-Length but not sent: a handler answers HEAD
 * as it answers GET.
 *
 * Limit, admitted: the answer is bounded by what a mailbox holds
 * (app_answer_max); past it the client gets 500 "the answer was too
 * large", as for any answer too large.  Streaming a larger answer, to the
 * connection or through the front in pieces, goes where answer_full() is:
 * the seam where pp_write would flush what it holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "log.h"
#include "proc.h"

#define APP_TYPE	"text/plain; charset=utf-8"	/* none set */
#define APP_WHY_MAX	256	/* pp_error's reason */
#define APP_TYPE_MAX	512	/* a Content-Type value */
#define APP_BUF_MIN	(16u * 1024)
/* What a head takes besides the handler's headers: the Status line,
 * "Content-Type: \r\n", "Content-Length: " and 20 digits and "\r\n", the
 * final "\r\n" and snprintf's NUL. */
#define APP_HEAD_FIXED	(REPLY_STATUS_LINE_MAX + 16 + 38 + 2 + 1)

struct pp_request {
	const struct msg_request_view	*v;
	int64_t				 deadline_ms;
	const char			*method, *path, *query;	/* or NULL */
	size_t				 params_len;	/* the copy's */
	int				 params_split;
};

struct pp_response {
	unsigned	 status;
	int		 wrote;		/* a pp_write came: no more head */
	int		 too_large;	/* the body passed app_answer_max */
	char		 type[APP_TYPE_MAX];	/* "" if not set */
	size_t		 type_len;
	/* X-Worker-Pid's line, then the handler's header lines. */
	char		 hdrs[MSG_REPLY_HEAD_MAX];
	size_t		 hdrs_len, pid_len;
	size_t		 wanted;	/* body bytes written, all told */
	char		 why[APP_WHY_MAX];
};

static struct {
	char		 method[MSG_METHOD_MAX + 1];
	char		 path[MSG_PATH_MAX + 1];
	char		 query[MSG_QUERY_MAX + 1];
	char		 params[MSG_PARAMS_MAX];
	unsigned char	*body;		/* the answer's body */
	size_t		 len, cap;
	size_t		 max;		/* app_answer_max */
} S = { .max = 1024 * 1024 };

void
app_answer_max(size_t max)
{
	S.max = max;
}

void
app_free(void)
{
	free(S.body);
	S.body = NULL;
	S.len = S.cap = 0;
}

/* A NUL-ended copy of n bytes of p into dst, once per request. */
static const char *
copy_once(const char **cache, char *dst, const char *p, size_t n)
{
	if (*cache == NULL) {
		memcpy(dst, p, n);
		dst[n] = '\0';
		*cache = dst;
	}
	return *cache;
}

const char *
pp_method(const struct pp_request *rq)
{
	struct pp_request	*q = (struct pp_request *)(uintptr_t)rq;

	return copy_once(&q->method, S.method, q->v->method, q->v->method_len);
}

const char *
pp_path(const struct pp_request *rq)
{
	struct pp_request	*q = (struct pp_request *)(uintptr_t)rq;

	return copy_once(&q->path, S.path, q->v->path, q->v->path_len);
}

const char *
pp_query(const struct pp_request *rq)
{
	struct pp_request	*q = (struct pp_request *)(uintptr_t)rq;

	return copy_once(&q->query, S.query, q->v->query, q->v->query_len);
}

/*
 * The params block, copied into S.params as "NAME\0VALUE\0" pairs.  The
 * block is bounded (msg_request_parse) but the area is shared, so each
 * string is looked for within it, never past it.
 */
static void
split_params(struct pp_request *q)
{
	const char	*p = q->v->params, *end = p + q->v->params_len, *nul;
	const char	*eq;
	size_t		 n, o = 0;

	q->params_split = 1;
	while (p < end && (nul = memchr(p, '\0', (size_t)(end - p))) != NULL) {
		n = (size_t)(nul - p);
		if ((eq = memchr(p, '=', n)) != NULL && eq > p) {
			memcpy(S.params + o, p, n + 1);
			S.params[o + (size_t)(eq - p)] = '\0';
			o += n + 1;
		}
		p = nul + 1;
	}
	q->params_len = o;
}

int
pp_param_next(const struct pp_request *rq, size_t *it, const char **name,
    const char **value)
{
	struct pp_request	*q = (struct pp_request *)(uintptr_t)rq;
	size_t			 o = *it;

	if (!q->params_split)
		split_params(q);
	if (o >= q->params_len)
		return 0;
	*name = S.params + o;
	o += strlen(*name) + 1;
	*value = S.params + o;
	o += strlen(*value) + 1;
	*it = o;
	return 1;
}

const char *
pp_param(const struct pp_request *rq, const char *name)
{
	const char	*n, *v;
	size_t		 it = 0;

	while (pp_param_next(rq, &it, &n, &v))
		if (strcmp(n, name) == 0)
			return v;
	return NULL;
}

const void *
pp_body(const struct pp_request *rq, size_t *len)
{
	*len = rq->v->body_len;
	return rq->v->body_len > 0 ? rq->v->body : "";
}

int64_t
pp_deadline_ms(const struct pp_request *rq)
{
	return rq->deadline_ms - proc_now_ms();
}

int
pp_status(struct pp_response *res, unsigned status)
{
	if (res->wrote || status < 100 || status > 599) {
		errno = EINVAL;
		return -1;
	}
	res->status = status;
	return 0;
}

/* An HTTP token (RFC 9110 tchar): the only bytes of a header's name. */
static int
is_token(const char *s)
{
	static const char	tchar[] = "!#$%&'*+-.^_`|~";

	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr(tchar, *s) != NULL))
			return 0;
	return 1;
}

/*
 * A header line.  Content-Type replaces the default; Content-Length is
 * taken and dropped (pipepool counts the body it holds: WSGI and other
 * frameworks set one); Status is pp_status's: EINVAL, as for a name that
 * is no token, a CR or LF in the value, or a header after the body began.
 * ENOSPC when the head would pass MSG_REPLY_HEAD_MAX.
 */
int
pp_header(struct pp_response *res, const char *name, const char *value)
{
	size_t	nl, vl, room;

	if (res->wrote || !is_token(name) || strpbrk(value, "\r\n") != NULL ||
	    strcasecmp(name, "Status") == 0) {
		errno = EINVAL;
		return -1;
	}
	if (strcasecmp(name, "Content-Length") == 0)
		return 0;
	nl = strlen(name);
	vl = strlen(value);
	room = MSG_REPLY_HEAD_MAX - APP_HEAD_FIXED - res->hdrs_len;
	if (strcasecmp(name, "Content-Type") == 0) {
		if (vl >= sizeof(res->type) || vl > room) {
			errno = ENOSPC;
			return -1;
		}
		memcpy(res->type, value, vl + 1);
		res->type_len = vl;
		return 0;
	}
	if (nl + vl + 4 > room - res->type_len) {
		errno = ENOSPC;
		return -1;
	}
	memcpy(res->hdrs + res->hdrs_len, name, nl);
	memcpy(res->hdrs + res->hdrs_len + nl, ": ", 2);
	memcpy(res->hdrs + res->hdrs_len + nl + 2, value, vl);
	memcpy(res->hdrs + res->hdrs_len + nl + 2 + vl, "\r\n", 3);
	res->hdrs_len += nl + vl + 4;
	return 0;
}

/*
 * The answer's buffer cannot take n more bytes.  The seam for streaming:
 * here the bytes held would go out (as records on a direct connection,
 * through the front in pieces otherwise) and the buffer start over.  For
 * now the answer is refused: -1 with EFBIG, and app_handle answers 500.
 */
static int
answer_full(struct pp_response *res, size_t n)
{
	(void)n;
	res->too_large = 1;
	errno = EFBIG;
	return -1;
}

int
pp_write(struct pp_response *res, const void *p, size_t n)
{
	unsigned char	*nb;
	size_t		 ncap;

	res->wrote = 1;
	if (n == 0)
		return 0;	/* the buffer may be NULL yet */
	res->wanted += n;
	if (res->too_large || n > S.max - S.len)
		return answer_full(res, n);
	if (S.len + n > S.cap) {
		ncap = S.cap > 0 ? S.cap : APP_BUF_MIN;
		while (ncap < S.len + n)
			ncap *= 2;
		if (ncap > S.max)
			ncap = S.max;
		if ((nb = realloc(S.body, ncap)) == NULL) {
			log_warn("realloc");
			return answer_full(res, n);
		}
		S.body = nb;
		S.cap = ncap;
	}
	memcpy(S.body + S.len, p, n);
	S.len += n;
	return 0;
}

void
pp_error(struct pp_response *res, const char *why)
{
	(void)strncpy(res->why, why, sizeof(res->why) - 1);
	res->why[sizeof(res->why) - 1] = '\0';
}

/* Make rp the answer the handler gave in res, for request v. */
static void
answer(const struct msg_request_view *v, struct pp_response *res,
    struct reply *rp)
{
	rp->r.status = res->status;
	rp->head = rp->headbuf;
	rp->head_len = reply_head(rp->headbuf, sizeof(rp->headbuf),
	    res->status, res->type_len > 0 ? res->type : APP_TYPE, S.len,
	    res->hdrs);
	if (rp->head_len == 0) {	/* pp_header kept it within bounds */
		reply_text(rp, 500, NULL, "the answer's head was too long");
		return;
	}
	if (msg_view_method_is(v, "HEAD")) {
		rp->body = NULL;
		rp->body_len = 0;
	} else {
		rp->body = (const char *)S.body;
		rp->body_len = S.len;
	}
}

void
app_handle(const struct msg_request_view *v, int64_t deadline_ms,
    struct reply *rp)
{
	static struct pp_response	 res;
	struct pp_request		 q;
	const struct pp_app		*a = app_current();
	const char			*pid = reply_pid_header();

	memset(&q, 0, sizeof(q));
	q.v = v;
	q.deadline_ms = deadline_ms;
	res.status = 200;
	res.wrote = res.too_large = 0;
	res.type_len = 0;
	res.type[0] = '\0';
	res.why[0] = '\0';
	res.wanted = 0;
	if (res.pid_len == 0) {		/* the same for the worker's life */
		res.pid_len = strlen(pid);
		memcpy(res.hdrs, pid, res.pid_len + 1);
	}
	res.hdrs_len = res.pid_len;
	res.hdrs[res.hdrs_len] = '\0';
	S.len = 0;
	if (a->handle(&q, &res) == -1) {
		if (res.too_large)
			goto too_large;
		reply_text(rp, 500, NULL, "%s", res.why[0] != '\0' ? res.why :
		    "the application failed");
		return;
	}
	if (res.too_large)
		goto too_large;
	answer(v, &res, rp);
	return;
too_large:
	log_warnx("a reply of %zu bytes does not fit the %zu-byte mailbox",
	    res.wanted, S.max);
	reply_text(rp, 500, NULL, "the answer was too large");
}
