#!/bin/sh
# make run: pipepool and an nginx in front of it on http://127.0.0.1:$PORT/
# (default 8080), in the foreground.  Ctrl-C or SIGTERM stops both and
# leaves no process, pid file or socket behind.
set -eu
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
BIN=${PIPEPOOL_BIN:-build/pipepool}
run=$(mktemp -d /tmp/pipepool-run.XXXXXX)
pp=
ng=

cleanup() {
	trap - INT TERM EXIT
	[ -n "$ng" ] && kill -TERM "$ng" 2>/dev/null
	[ -n "$pp" ] && kill -TERM "$pp" 2>/dev/null
	[ -n "$ng" ] && wait "$ng" 2>/dev/null
	[ -n "$pp" ] && wait "$pp" 2>/dev/null
	rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

root=
[ "$(id -u)" -eq 0 ] && root=--allow-root
# shellcheck disable=SC2086
"$BIN" $root --listen "unix:$run/pipepool.sock" --db "${DB:-pipepool.db}" \
    ${PIPEPOOL_ARGS:-} &
pp=$!
sed -e "s|@PORT@|$PORT|" -e "s|@SOCKET@|$run/pipepool.sock|" \
    -e "s|@PREFIX@|$run|g" -e "s|@USER@|$(id -un)|" conf/nginx.conf \
    >"$run/nginx.conf"
i=0
until [ -S "$run/pipepool.sock" ]; do
	i=$((i + 1))
	if [ $i -gt 250 ] || ! kill -0 "$pp" 2>/dev/null; then
		echo "pipepool did not start" >&2
		exit 1
	fi
	sleep 0.02
done
nginx -p "$run" -c "$run/nginx.conf" -e "$run/nginx-error.log" &
ng=$!
echo "pipepool is serving on http://127.0.0.1:$PORT/ (Ctrl-C stops it)"
# Wait for either to exit; a signal interrupts wait and runs cleanup.
while kill -0 "$pp" 2>/dev/null && kill -0 "$ng" 2>/dev/null; do
	wait "$pp" 2>/dev/null || true
done
