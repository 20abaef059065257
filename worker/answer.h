/*
 * answer.h: how a worker gives a request's answer back: whole in the
 * mailbox, whole on nginx's connection (a direct request, dispatch.h), or
 * streamed in pieces, as the application writes it (app.h's sink): as
 * FastCGI records on the connection, or through the front, a piece at a
 * time in the mailbox.
 */
#ifndef PP_ANSWER_H
#define PP_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "dispatch.h"
#include "msg.h"
#include "reply.h"

/* The request in hand. */
struct job {
	unsigned		 mb;	/* its mailbox */
	unsigned char		*d;	/* its data: the mailbox's, or the
					 * large body's buffer */
	uint64_t		 id;	/* its message id */
	size_t			 msg_len;	/* its message's bytes in d */
	struct msg_request_view	 v;	/* points into d */
	int64_t			 took_ms;	/* when the worker took it */
	struct reply		 rp;
	/* A streamed answer (answer.c's; answer_sink sets them). */
	struct app_sink		 sink;
	int			 how;	/* ANSWER_*: how it goes out */
	int			 fd;	/* ANSWER_RECORDS: the connection */
	int			 direct;	/* mc is its connection */
	struct mb_conn		 mc;
	int			 failed;	/* the way out is shut */
	int			 lost;	/* the mailbox is no longer ours */
	int			 noted;	/* the front was told of a piece */
};

/* Once at start: the worker's tag, the mailbox's capacity, --slow-ms,
 * and its pid (for the stats of the answers it counts itself). */
void	answer_init(uint32_t tag, size_t cap, unsigned slow_ms, unsigned pid);
/* Before the application runs on j: j's sink, for app_handle. */
const struct app_sink *answer_sink(struct job *j);
/* After: give j's answer back, as app_handle said it went (APP_*). */
void	answer(struct job *j, int how);

#endif
