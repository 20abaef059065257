/*
 * msg.h: the framing of every message between pipepool's processes.
 * A message is a fixed header {type, len, id} and len bytes of payload.
 * Readers check the header (type known, len within that type's bounds and
 * the reader's limit) before buffering any payload.
 */
#ifndef PP_MSG_H
#define PP_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct msg_hdr {
	uint32_t	type;
	uint32_t	len;	/* payload bytes after the header */
	uint64_t	id;	/* request id (sequence) or worker id */
};

/* A header for a payload of len bytes (the caller bounds len). */
static inline struct msg_hdr
msg_hdr_make(uint32_t type, size_t len, uint64_t id)
{
	struct msg_hdr	h = { type, (uint32_t)len, id };

	return h;
}

enum msg_type {
	MSG_REQUEST = 1,	/* front -> worker: msg_request + bytes */
	MSG_REPLY,		/* worker -> front: msg_reply + CGI response */
	MSG_WORKER_UP,		/* master -> front: msg_worker + fds (the
				 * store's 2 pipe ends, a worker's channel) */
	MSG_WORKER_GONE,	/* master -> front: msg_worker */
	MSG_RETIRE,		/* master -> front: msg_worker, stop using it */
	MSG_KILL,		/* front -> master: msg_worker, kill it */
	MSG_STOP,		/* master -> front: stop accepting, drain */
	MSG_SETTINGS,		/* master -> front: msg_settings (reload) */
	MSG_CONN_ASK,		/* worker -> front: msg_conn, its fd please */
	MSG_CONN,		/* front -> worker: msg_conn + 1 fd, or none
				 * if that connection is gone */
	MSG_REPLIED,		/* worker -> front: msg_conn, the answer is
				 * in the mailbox, not sent */
	MSG_STORE_STATE,	/* store -> front: msg_store_state, on its
				 * reply pipe, when it changes */
	MSG_TYPE_MAX
};

/* Bounds on request fields; longer ones are refused by the front (414). */
#define MSG_METHOD_MAX	32
#define MSG_PATH_MAX	8192
#define MSG_QUERY_MAX	8192
/* A request's FastCGI params, as "NAME=VALUE\0" strings one after the
 * other (libfcgi's envp, flattened); the front's bound on the params it
 * reads (REQ_PARAMS_MAX, fcgi/request.h) bounds them too. */
#define MSG_PARAMS_MAX	(64u * 1024)
/* Room for CGI headers that a worker puts before a reply body. */
#define MSG_REPLY_HEAD_MAX	4096

/* MSG_REQUEST payload: this struct, then method, path, query, params
 * (0, or a block of NUL-ended strings whose last byte is NUL), body. */
struct msg_request {
	uint16_t	method_len;
	uint16_t	path_len;
	uint16_t	query_len;
	uint16_t	flags;		/* the store's (STORE_F_*), else 0 */
	uint32_t	body_len;
	uint32_t	params_len;	/* up to MSG_PARAMS_MAX; the store's
					 * requests have none */
};

/* A parsed MSG_REQUEST: pointers into the payload, not copies. */
struct msg_request_view {
	uint16_t	 flags;
	const char	*method;
	size_t		 method_len;
	const char	*path;
	size_t		 path_len;
	const char	*query;
	size_t		 query_len;
	const char	*params;	/* "NAME=VALUE\0"..., params_len bytes */
	size_t		 params_len;
	const char	*body;
	size_t		 body_len;
};

/* MSG_REPLY payload: this struct, then a CGI response (headers, body). */
struct msg_reply {
	uint32_t	status;		/* HTTP status, 100..599 */
};

/* MSG_STORE_STATE payload: the store's database, for /status. */
struct msg_store_state {
	uint32_t	backend;	/* 0: SQLite, 1: PostgreSQL */
	uint32_t	conn;		/* enum kvdb_conn (kvdb.h) */
	uint64_t	reconnects;	/* this store's, so far */
};

/* MSG_WORKER_UP / GONE / RETIRE / KILL payload. */
struct msg_worker {
	uint32_t	slot;
	uint32_t	role;		/* ROLE_WORKER, ROLE_STORE */
	int32_t		pid;
	uint32_t	number;		/* 1-based, as in "pipepool: worker N" */
};

/* MSG_CONN_ASK / CONN / REPLIED payload: a front connection, named by
 * its mailbox and the count of connections that mailbox's thread took. */
struct msg_conn {
	uint32_t	mbox;
	uint32_t	gen;
};

/* MSG_SETTINGS payload: the front's settings that a reload may change. */
struct msg_settings {
	uint64_t	max_body;
	uint32_t	timeout_ms;
	uint32_t	read_timeout_ms;
	uint32_t	queue;
	uint32_t	slow_ms;
	uint32_t	debug_routes;
	uint32_t	queue_target_ms;	/* 0: off */
};

/* The largest payload any message may carry, whatever a reader allows. */
#define MSG_PAYLOAD_HARD_MAX	(256u * 1024 * 1024)

/* Buffered reader for a byte stream (pipe) carrying messages. */
struct msgbuf {
	unsigned char	*buf;
	size_t		 cap;
	size_t		 start;		/* first unconsumed byte */
	size_t		 end;		/* one past the last byte read */
	size_t		 max_payload;	/* this reader's limit */
};

int	msg_check(const struct msg_hdr *, size_t max_payload);
const char *msg_typename(uint32_t);

int	msgbuf_init(struct msgbuf *, size_t initial, size_t max_payload);
void	msgbuf_free(struct msgbuf *);
int	msg_next(struct msgbuf *, struct msg_hdr *, const unsigned char **);
ssize_t	msg_fill(int fd, struct msgbuf *);
int	msg_read(int fd, struct msgbuf *, struct msg_hdr *,
	    const unsigned char **, int timeout_ms);

int	msg_write(int fd, uint32_t type, uint64_t id, const struct iovec *,
	    int iovcnt);
int	msg_writev_all(int fd, struct iovec *, int iovcnt);
size_t	msg_frame(unsigned char *, size_t cap, uint32_t type, uint64_t id,
	    const struct iovec *, int iovcnt);
const unsigned char *msg_unframe(const unsigned char *, size_t cap,
	    uint32_t type, struct msg_hdr *);
int	msg_write_all(int fd, const void *, size_t);

size_t	msg_request_pack(struct msg_request *, const char *method, size_t, const char *path, size_t,
	    const char *query, size_t, size_t body_len, struct iovec *iov);
size_t	msg_params_size(char *const *envp);
void	msg_params_put(struct msg_request *, char *const *envp, size_t len,
	    unsigned char *dst, struct iovec *iov);
int	msg_request_parse(const unsigned char *, size_t,
	    struct msg_request_view *);
/* A parsed request's path or method is exactly this string. */
int	msg_view_path_is(const struct msg_request_view *, const char *);
int	msg_view_method_is(const struct msg_request_view *, const char *);


#endif
