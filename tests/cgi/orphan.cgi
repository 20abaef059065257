#!/bin/sh
# A CGI that leaves a helper behind that ends a moment later
# (tests/e2e/cgi.bats): it must be reaped, never a zombie.
( sleep 0.5; exit 0 ) >/dev/null 2>&1 &
echo "$!" >"$DOCUMENT_ROOT/../orphan.pid"
printf 'Content-Type: text/plain\n\nleft one behind\n'
