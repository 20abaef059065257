/*
 * reply.h: an answer as a CGI response (head and body), the status texts,
 * and the one builder of a CGI head and of a short plain-text answer.
 */
#ifndef PP_REPLY_H
#define PP_REPLY_H

#include <stddef.h>

#include "msg.h"

#define REPLY_TEXT_TYPE	"text/plain; charset=utf-8"
#define REPLY_LEN_NONE	((size_t)-1)	/* reply_head: no Content-Length */

/*
 * A route's answer: its status, its CGI head (built in headbuf, or a
 * prebuilt one) and its body, which is not copied: it points at static
 * bytes, reply_text's buffer or the request's own body.
 */
struct reply {
	struct msg_reply r;
	char		 headbuf[MSG_REPLY_HEAD_MAX];
	const char	*head;		/* headbuf or a prebuilt head */
	size_t		 head_len;
	const char	*body;
	size_t		 body_len;
};

/* A short plain-text answer, built whole (reply_plain()). */
struct reply_plain {
	char	head[512];
	char	body[512];
	size_t	head_len;
	size_t	body_len;
};

/* A worker or the store, once after fork: the pid its replies name. */
void		 reply_init(void);
const char	*reply_pid_header(void);
void		 reply_text(struct reply *, unsigned status, const char *extra,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void		 reply_bytes(struct reply *, unsigned status, const char *ctype,
		    const char *body, size_t len, int head_only);
size_t		 reply_head(char *, size_t, unsigned status, const char *ctype,
		    size_t body_len, const char *extra);
int		 reply_plain(struct reply_plain *, unsigned status,
		    const char *extra, const char *why);
const char	*reply_status_text(unsigned);
/* Room for reply_status_line()'s line. */
#define REPLY_STATUS_LINE_MAX	64
const char	*reply_status_line(char *, size_t, unsigned);

#endif
