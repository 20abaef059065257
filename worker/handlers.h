/* handlers.h: the routes a hello worker answers. */
#ifndef PP_HANDLERS_H
#define PP_HANDLERS_H

#include <stddef.h>

#include "msg.h"
#include "options.h"

enum action { ACT_REPLY, ACT_GARBAGE };

/* A reply: CGI head in head[], body pointing at static or request bytes. */
struct reply {
	struct msg_reply r;
	char		 headbuf[MSG_REPLY_HEAD_MAX];
	const char	*head;		/* headbuf or a prebuilt head */
	size_t		 head_len;
	const char	*body;
	size_t		 body_len;
};

void		 handlers_init(void);
enum action	 handlers_route(const struct options *, const struct msg_request_view *,
		    struct reply *);
void		 reply_text(struct reply *, unsigned status, const char *extra,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void		 reply_bytes(struct reply *, unsigned status, const char *ctype,
		    const char *body, size_t len, int head_only);
const char	*status_text(unsigned);
/* Room for status_line()'s line. */
#define STATUS_LINE_MAX	64
const char	*status_line(char *, size_t, unsigned);
int		 view_path_is(const struct msg_request_view *, const char *);
int		 view_method_is(const struct msg_request_view *, const char *);

#endif
