/*
 * direct.h: a hello worker's side of direct answers (dispatch.h): the
 * front's FastCGI connections it holds, got over its channel to the front
 * once per connection, and the FastCGI records it writes on them.
 */
#ifndef PP_DIRECT_H
#define PP_DIRECT_H

#include <stddef.h>
#include <stdint.h>

#define DIRECT_ASK_MS	2000	/* the front answers at once; past this,
				 * answer through the front instead */

int	direct_init(int chan, unsigned nmbox);
int	direct_fd(unsigned mb, uint32_t gen);
void	direct_note(unsigned mb, uint32_t gen);
int	direct_write(int fd, unsigned fcgi_id, const void *head, size_t hlen,
	    const void *body, size_t blen);

#endif
