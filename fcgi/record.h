/*
 * record.h: the FastCGI records a worker writes on nginx's connection to
 * answer a direct request (dispatch.h) itself.  libfcgi writes records
 * only for a request it read itself, so these are built here, with
 * libfcgi's fastcgi.h.
 */
#ifndef PP_RECORD_H
#define PP_RECORD_H

#include <stddef.h>

#define RECORD_CONTENT_MAX	65535u	/* the most a record may carry */

int	record_answer(int fd, unsigned fcgi_id, const void *head, size_t hlen,
	    const void *body, size_t blen, int last);

#endif
