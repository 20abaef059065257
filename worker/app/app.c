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
 * The answer: status and headers are kept until the body begins to go
 * out, the body is appended to a buffer of this worker's (kept from
 * request to request, at most app_answer_max bytes).  The CGI head: the
 * Status line (none for 200), Content-Type (the handler's, else
 * APP_TYPE), Content-Length, X-Worker-Pid, then the handler's headers in
 * order.  A HEAD request's body is counted in Content-Length but not
 * sent: a handler answers HEAD as it answers GET.
 *
 * An answer that fits the buffer is given whole, with its length, when
 * the handler returns.  One that does not streams: each time the buffer
 * is full it goes to the caller's sink as a piece (the first with the
 * head, which then has no Content-Length: nginx sends such an answer
 * chunked), so an answer of any size is never held whole.  Once a piece
 * went out the status and headers are fixed, and a handler that fails
 * can only have the answer cut short (APP_CUT).
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
	int		 too_large;	/* the body passed app_answer_max, and
					 * there is no sink to stream it */
	int		 streaming;	/* a piece went to the sink */
	int		 gone;		/* the sink takes no more */
	int		 head_only;	/* HEAD: pieces carry no body */
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
	const struct app_sink *sink;	/* this request's, or NULL */
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
	if (res->wrote || res->streaming || status < 100 || status > 599) {
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

	if (res->wrote || res->streaming || !is_token(name) ||
	    strpbrk(value, "\r\n") != NULL ||
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
 * The head of res's answer into buf[cap], for a body of len bytes
 * (REPLY_LEN_NONE: streamed).  Its length; 0 if it does not fit (it
 * cannot: pp_header keeps the head within bounds).
 */
static size_t
answer_head(const struct pp_response *res, size_t len, char *buf, size_t cap)
{
	return reply_head(buf, cap, res->status, res->type_len > 0 ?
	    res->type : APP_TYPE, len, res->hdrs);
}

/*
 * n body bytes at p to the sink, as the next piece of a streamed answer
 * (the first carries the head).  0; -1 with EPIPE once the sink takes no
 * more (nobody reads the answer), or EFBIG if there is no sink (the
 * answer is refused: app_handle answers 500).
 */
static int
send_piece(struct pp_response *res, const void *p, size_t n)
{
	char	head[MSG_REPLY_HEAD_MAX];
	size_t	hl = 0;

	if (S.sink == NULL) {
		res->too_large = 1;
		errno = EFBIG;
		return -1;
	}
	if (!res->streaming) {
		if ((hl = answer_head(res, REPLY_LEN_NONE, head,
		    sizeof(head))) == 0) {
			res->gone = 1;	/* cannot be: pp_header bounds it */
			errno = EPIPE;
			return -1;
		}
		res->streaming = 1;
	}
	if (res->head_only)
		n = 0;
	if (res->gone || S.sink->piece(S.sink->arg, res->status, head, hl, p,
	    n) == -1) {
		res->gone = 1;
		errno = EPIPE;
		return -1;
	}
	return 0;
}

/* Room in the buffer for S.len + n bytes (n <= S.max - S.len). */
static int
grow(size_t n)
{
	unsigned char	*nb;
	size_t		 ncap;

	if (S.len + n <= S.cap)
		return 0;
	ncap = S.cap > 0 ? S.cap : APP_BUF_MIN;
	while (ncap < S.len + n)
		ncap *= 2;
	if (ncap > S.max)
		ncap = S.max;
	if ((nb = realloc(S.body, ncap)) == NULL) {
		log_warn("realloc");
		return -1;
	}
	S.body = nb;
	S.cap = ncap;
	return 0;
}

/*
 * Append to the buffer; each time it is full, it goes out as a piece.  A
 * write as large as the buffer with the buffer empty goes out from the
 * caller's bytes, not copied.
 */
int
pp_write(struct pp_response *res, const void *p, size_t n)
{
	const unsigned char	*b = p;
	size_t			 k;

	res->wrote = 1;
	if (n == 0)
		return 0;	/* the buffer may be NULL yet */
	res->wanted += n;
	if (res->too_large || res->gone) {
		errno = res->gone ? EPIPE : EFBIG;
		return -1;
	}
	while (n > S.max - S.len) {
		if (S.len == 0) {
			k = S.max;
			if (send_piece(res, b, k) == -1)
				return -1;
		} else {
			k = S.max - S.len;
			if (grow(k) == -1)
				goto fail;
			memcpy(S.body + S.len, b, k);
			S.len += k;
			if (send_piece(res, S.body, S.len) == -1)
				return -1;
			S.len = 0;
		}
		b += k;
		n -= k;
	}
	if (grow(n) == -1)
		goto fail;
	memcpy(S.body + S.len, b, n);
	S.len += n;
	return 0;
fail:
	res->too_large = 1;	/* no memory: the answer is refused */
	errno = ENOMEM;
	return -1;
}

size_t
app_held(void)
{
	return S.len;
}

int
app_flush(struct pp_response *res)
{
	if (res->too_large || res->gone) {
		errno = res->gone ? EPIPE : EFBIG;
		return -1;
	}
	if (S.len == 0 && res->streaming)
		return 0;	/* nothing new to say */
	if (send_piece(res, S.body, S.len) == -1)
		return -1;
	S.len = 0;
	return 0;
}

void
pp_error(struct pp_response *res, const char *why)
{
	(void)strncpy(res->why, why, sizeof(res->why) - 1);
	res->why[sizeof(res->why) - 1] = '\0';
}

/* Make rp the answer the handler gave in res, whole. */
static void
answer(struct pp_response *res, struct reply *rp)
{
	rp->r.status = res->status;
	rp->head = rp->headbuf;
	rp->head_len = answer_head(res, S.len, rp->headbuf,
	    sizeof(rp->headbuf));
	if (rp->head_len == 0) {	/* pp_header kept it within bounds */
		reply_text(rp, 500, NULL, "the answer's head was too long");
		return;
	}
	rp->body = res->head_only ? NULL : (const char *)S.body;
	rp->body_len = res->head_only ? 0 : S.len;
}

/*
 * The end of a streamed answer: its last piece.  APP_STREAMED, or APP_CUT
 * if the handler failed after the answer began (nothing better can be
 * said: the client sees it cut short) or nobody takes it any more.
 */
static int
answer_end(struct pp_response *res, int failed)
{
	if (res->gone)
		return APP_CUT;		/* said once, by the sink */
	if (failed || res->too_large) {
		log_warnx("the application failed after its answer began "
		    "(%s); cutting it short", res->why[0] != '\0' ? res->why :
		    res->too_large ? "out of memory" : "no reason given");
		return APP_CUT;
	}
	if (S.len > 0 && send_piece(res, S.body, S.len) == -1)
		return APP_CUT;
	S.len = 0;
	return res->gone ? APP_CUT : APP_STREAMED;
}

/* The response's state for a new request of method HEAD (or not). */
static void
response_reset(struct pp_response *res, int head_only)
{
	const char	*pid = reply_pid_header();

	res->status = 200;
	res->wrote = res->too_large = res->streaming = res->gone = 0;
	res->head_only = head_only;
	res->type_len = 0;
	res->type[0] = '\0';
	res->why[0] = '\0';
	res->wanted = 0;
	if (res->pid_len == 0) {	/* the same for the worker's life */
		res->pid_len = strlen(pid);
		memcpy(res->hdrs, pid, res->pid_len + 1);
	}
	res->hdrs_len = res->pid_len;
	res->hdrs[res->hdrs_len] = '\0';
	S.len = 0;
}

int
app_handle(const struct msg_request_view *v, int64_t deadline_ms,
    struct reply *rp, const struct app_sink *sink)
{
	static struct pp_response	 res;
	struct pp_request		 q;
	const struct pp_app		*a = app_current();
	int				 failed, how;

	memset(&q, 0, sizeof(q));
	q.v = v;
	q.deadline_ms = deadline_ms;
	response_reset(&res, msg_view_method_is(v, "HEAD"));
	S.sink = sink;
	failed = a->handle(&q, &res) == -1;
	rp->r.status = res.status;
	if (res.streaming) {
		how = answer_end(&res, failed);
		S.sink = NULL;
		return how;
	}
	S.sink = NULL;
	if (res.too_large) {
		log_warnx("a reply of %zu bytes does not fit the %zu-byte "
		    "mailbox", res.wanted, S.max);
		reply_text(rp, 500, NULL, "the answer was too large");
	} else if (failed)
		reply_text(rp, 500, NULL, "%s", res.why[0] != '\0' ? res.why :
		    "the application failed");
	else
		answer(&res, rp);
	return APP_WHOLE;
}
