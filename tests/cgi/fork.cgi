#!/bin/sh
# A CGI that forks a helper and hangs (tests/e2e/cgi.bats): past
# --timeout both must die.  Their pids go to $QUERY_STRING.pids.
sleep 1000 &
echo "$$ $!" >"$DOCUMENT_ROOT/../$QUERY_STRING.pids"
sleep 1000
