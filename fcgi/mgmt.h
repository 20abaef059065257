/*
 * mgmt.h: FastCGI management records (request id 0), answered by the
 * front itself: FCGI_GET_VALUES with the front's true limits, any other
 * type with FCGI_UNKNOWN_TYPE.  libfcgi never sees one: the front takes
 * them out of what libfcgi reads (mgmt_read, under libfcgi's OS_Read)
 * and out of what it reads before a request (mgmt_pending).
 */
#ifndef PP_MGMT_H
#define PP_MGMT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The content of a management record that is kept and answered; the rest
 * of a longer one is read and dropped (three names take 45 bytes). */
#define MGMT_CONTENT_MAX	1024
/* The longest answer: a header, three pairs, padding. */
#define MGMT_ANSWER_MAX		128

/*
 * Where a connection is in the stream of records libfcgi reads: the
 * header being read, or the bytes left of the record it belongs to.
 * Reset at each request (libfcgi starts each request's reading afresh).
 */
struct mgmt_filter {
	unsigned char	hdr[8];
	unsigned	hlen;		/* header bytes held back */
	uint32_t	pass;		/* bytes left of a record for libfcgi */
	uint32_t	take;		/* bytes left of a management record */
	uint32_t	clen;		/* its content length */
	unsigned	pad;		/* and padding */
	unsigned	type;
	size_t		mlen;		/* its content kept in mbuf */
	/* MGMT_CONTENT_MAX bytes, allocated at the first management
	 * record and kept: nginx sends none, and a filter is in every
	 * connection's struct (1 KiB each is 1 MiB at 1,024). */
	unsigned char	*mbuf;
	const unsigned char *held;	/* read for libfcgi already */
	size_t		hold_len;	/* (mgmt_hold) */
};

/* The values FCGI_GET_VALUES reports: FCGI_MAX_CONNS and FCGI_MAX_REQS
 * are --threads (one request per connection), FCGI_MPXS_CONNS is 0. */
void	mgmt_init(unsigned threads);
/* A filter starts zeroed; reset before each request.  mgmt_free gives
 * back its buffer. */
void	mgmt_reset(struct mgmt_filter *);
void	mgmt_free(struct mgmt_filter *);

/*
 * The answer to a management record of type with content c[0..clen):
 * written into out (MGMT_ANSWER_MAX bytes), its length returned.  Only
 * the names asked for, each once; unknown names are left out, and so are
 * the pairs from the first malformed one on.  Pure: for the unit test.
 */
size_t	mgmt_answer(unsigned type, const unsigned char *c, size_t clen,
	    unsigned char *out);

/*
 * read(2) for libfcgi on fd: what it returns is what a read returned
 * with every management record taken out (and answered on fd).  Blocks
 * as read(2) would when only management records came.
 */
ssize_t	mgmt_read(struct mgmt_filter *, int fd, void *buf, size_t len);

/*
 * Bytes of fd the front has read already, from a record boundary: the
 * next mgmt_read calls take them, filtered, instead of reading fd, and
 * p[0..n) must stay valid until mgmt_held() says 0.  libfcgi reads 8 KiB
 * at a time, so its first read takes up to 8 KiB less a header.
 */
void	mgmt_hold(struct mgmt_filter *, const unsigned char *p, size_t n);
size_t	mgmt_held(const struct mgmt_filter *);

/*
 * Before a request: how many of the n bytes read (or peeked) at p belong
 * to management records at its head (to be fed to mgmt_take, after a recv
 * of them if peeked), 0 if none.
 */
size_t	mgmt_pending(const struct mgmt_filter *, const unsigned char *p,
	    size_t n);
/* Feed n bytes read at a record boundary or inside a management record,
 * all of them management records' bytes (mgmt_pending): -1 if an answer
 * could not be written. */
int	mgmt_take(struct mgmt_filter *, int fd, const unsigned char *p,
	    size_t n);

#endif
