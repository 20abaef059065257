#!/bin/sh
# A shell CGI (tests/e2e/cgi.bats): its environment, a status, a redirect
# and a line on stderr, chosen by the query string.
echo "sh.cgi says hello on stderr" >&2
case $QUERY_STRING in
status=*)
	printf 'Status: %s Teapot\r\nContent-Type: text/plain\r\n\r\n' "${QUERY_STRING#status=}"
	echo "status chosen"
	exit 0 ;;
redirect)
	printf 'Location: http://example.org/elsewhere\n\n'
	exit 0 ;;
local)
	printf 'Location: /cgi-bin/sh.cgi/after\n\n'
	exit 0 ;;
fail)
	printf 'Content-Type: text/plain\n\nfailing\n'
	exit 3 ;;
trickle)
	# a line now (and 4 KiB: nginx holds less, postpone_output), the
	# next once the test makes $T/go (10 s at most)
	printf 'Content-Type: text/plain\n\nfirst\n'
	printf '%4096s\n' ''
	i=0
	while [ ! -e "$DOCUMENT_ROOT/../go" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	echo second
	exit 0 ;;
headsleep)
	# the head at once, then nothing until --timeout has passed
	printf 'Content-Type: text/plain\n\n'
	exec sleep 30 ;;
limits)
	printf 'Content-Type: text/plain\n\n'
	echo "NOFILE=$(ulimit -n)"
	# Not the shell's /proc/$$: dash blocks every signal while it forks a
	# command (grep reading it then sees them all blocked).  A mask and
	# ignored signals survive execve: grep has what the CGI was given.
	exec grep -E '^(NoNewPrivs|SigBlk|SigIgn):' /proc/self/status ;;
esac
printf 'Content-Type: text/plain; charset=us-ascii\n'
printf 'X-Cgi-Test: shell\n'
printf 'Set-Cookie: a=1\n'
printf 'Set-Cookie: b=2\n'
printf '\n'
echo "METHOD=$REQUEST_METHOD"
echo "QUERY=$QUERY_STRING"
echo "PATH_INFO=$PATH_INFO"
echo "SCRIPT_NAME=$SCRIPT_NAME"
echo "SCRIPT_FILENAME=$SCRIPT_FILENAME"
echo "GATEWAY=$GATEWAY_INTERFACE"
echo "HEADER=$HTTP_X_TEST"
echo "PROXY=${HTTP_PROXY-unset}"
echo "DEADLINE=$PIPEPOOL_DEADLINE_MS"
echo "PWD=$(pwd)"
echo "ARGV0=$0"
echo "HOME=${HOME-unset}"
