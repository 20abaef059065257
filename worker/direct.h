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

/*
 * Larger answers go through the front even on a kept connection: a socket
 * takes this much at once (a unix socket's default buffer is 208 KiB, and
 * nginx, buffering as conf/ ships it, reads its upstream at once), so a
 * worker never waits on a slow client; the front's thread does instead.
 */
#define DIRECT_ANSWER_MAX	(128u * 1024)

int	direct_init(int chan, unsigned nmbox);
int	direct_fd(unsigned mb, uint32_t gen);
void	direct_note(unsigned mb, uint32_t gen);
int	direct_probe(unsigned mb, uint32_t gen);
int	direct_write(int fd, unsigned fcgi_id, const void *head, size_t hlen,
	    const void *body, size_t blen);

#endif
