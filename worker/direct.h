/*
 * direct.h: a worker's side of direct answers (dispatch.h): the front's
 * FastCGI connections it holds, got over its channel to the front once
 * per connection (the records it writes on them: fcgi/record.h), and the
 * word to the front when an answer goes through the mailbox instead.
 */
#ifndef PP_DIRECT_H
#define PP_DIRECT_H

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

#endif
