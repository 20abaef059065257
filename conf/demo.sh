#!/bin/sh
# demo.sh: what `make demo` runs.  Brings up, natively on loopback, the
# topology of conf/docker-compose.yml: one nginx (conf/demo-nginx.conf) in
# front of two pipepool instances over TCP, each with its own SQLite
# database, or both on one PostgreSQL database (DEMO_DB), as the compose
# demo's replicas are.
# Stays in the foreground, copying new log lines to stderr; Ctrl-C or
# SIGTERM stops everything it started (by pid) and removes its temporary
# folder.  Kill one instance and the other keeps answering: nginx retries
# on it and takes the dead one out.
#
# Environment:
#   DEMO_PORT       nginx's port (default $PORT, as make run, else 8081)
#   DEMO_PP1_PORT   first pipepool's port (default 9081)
#   DEMO_PP2_PORT   second pipepool's port (default 9082)
#   DEMO_WORKERS    workers of each instance (default 2)
#   DEMO_DB         --db of both instances, e.g. postgresql://host/db
#                   (default: a SQLite file each, so /kv differs by host)
#   DEMO_ARGS       more pipepool options for both (default none)
#   DEMO_QUIET=1    do not copy the logs to stderr
#   PIPEPOOL_BIN    the binary (default build/pipepool)
# shellcheck disable=SC2317 # cleanup and ok run from a trap and wait_until
set -u

cd "$(dirname "$0")/.." || exit 1
PORT=${DEMO_PORT:-${PORT:-8081}}
PP1=${DEMO_PP1_PORT:-9081}
PP2=${DEMO_PP2_PORT:-9082}
WORKERS=${DEMO_WORKERS:-2}
BIN=${PIPEPOOL_BIN:-build/pipepool}
URL=http://127.0.0.1:$PORT

die() {
	echo "demo: $*" >&2
	exit 1
}

[ -x "$BIN" ] || die "no $BIN: run make first"
command -v nginx >/dev/null 2>&1 || die "nginx is not installed (make deps)"
command -v curl >/dev/null 2>&1 || die "curl is not installed (make deps)"
for p in "$PORT" "$PP1" "$PP2"; do
	case $p in
	'' | *[!0-9]*) die "'$p' is not a port number" ;;
	esac
done

D=$(mktemp -d /tmp/pipepool-demo.XXXXXX) || die "mktemp failed"
NG='' M1='' M2='' TAILPID=''

# Whether a pid runs (a child that ended but is not reaped yet does not).
running() {
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Stop what we started, by pid: SIGTERM, a bounded wait, then SIGKILL.
cleanup() {
	trap '' INT TERM HUP
	for p in $NG $M1 $M2; do
		kill -TERM "$p" 2>/dev/null
	done
	i=0
	while [ "$i" -lt 200 ]; do
		alive=
		for p in $NG $M1 $M2; do
			running "$p" && alive=1
		done
		[ -z "$alive" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	for p in $NG $M1 $M2; do
		if running "$p"; then
			kill -KILL "$p" 2>/dev/null
			echo "demo: pid $p did not stop; killed" >&2
		fi
	done
	# Give the logs a moment to reach the terminal, then stop copying.
	[ -n "$TAILPID" ] && { sleep 0.2; kill -TERM "$TAILPID" 2>/dev/null; }
	wait 2>/dev/null
	rm -rf "$D"
	echo "demo: stopped" >&2
}
trap cleanup EXIT
trap 'exit 0' INT TERM HUP

ROOT=
[ "$(id -u)" -eq 0 ] && ROOT=--allow-root

# shellcheck disable=SC2086 # DEMO_ARGS and ROOT split on purpose
"$BIN" --listen "127.0.0.1:$PP1" --db "${DEMO_DB:-$D/pp1.db}" --workers "$WORKERS" \
    $ROOT ${DEMO_ARGS:-} 2>"$D/pp1.log" &
M1=$!
# shellcheck disable=SC2086
"$BIN" --listen "127.0.0.1:$PP2" --db "${DEMO_DB:-$D/pp2.db}" --workers "$WORKERS" \
    $ROOT ${DEMO_ARGS:-} 2>"$D/pp2.log" &
M2=$!

# wait_until SECONDS CMD...: poll CMD every 50 ms.
wait_until() {
	n=$(($1 * 20))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -le 0 ] && return 1
		sleep 0.05
	done
}
# Up (listening) or dead.
settled() { grep -q 'listening on' "$D/pp$1.log" || ! running "$2"; }
m=''
for i in 1 2; do
	eval "m=\$M$i"
	wait_until 10 settled "$i" "$m"
	if ! grep -q 'listening on' "$D/pp$i.log" || ! running "$m"; then
		cat "$D/pp$i.log" >&2
		die "pipepool $i did not start (log above)"
	fi
done

if [ "$(id -u)" -eq 0 ]; then
	user="user $(id -un);"
else
	user=
fi
sed -e "s|@PORT@|$PORT|" -e "s|@PP1@|$PP1|" -e "s|@PP2@|$PP2|" \
    -e "s|@PREFIX@|$D|g" -e "s|^user @USER@;|$user|" \
    conf/demo-nginx.conf >"$D/nginx.conf"
nginx -p "$D" -c "$D/nginx.conf" -e "$D/nginx-error.log" 2>"$D/nginx.out" &
NG=$!
ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/")" = 200 ]; }
if ! wait_until 10 ok; then
	cat "$D/nginx.out" "$D/nginx-error.log" >&2 2>/dev/null
	die "nginx did not answer on $URL (log above)"
fi

if [ "${DEMO_QUIET:-0}" != 1 ]; then
	tail -n 0 -F "$D/pp1.log" "$D/pp2.log" "$D/nginx-error.log" >&2 2>/dev/null &
	TAILPID=$!
fi

cat <<EOF
pipepool demo: $URL/
  nginx (pid $NG) -> 127.0.0.1:$PP1 (pipepool master pid $M1)
                  -> 127.0.0.1:$PP2 (pipepool master pid $M2)
  try:  curl -i $URL/     curl $URL/status     curl $URL/metrics
        kill -KILL $M1    (the other instance keeps answering)
  files: $D
  Ctrl-C stops everything.
demo: ready nginx=$NG pp1=$M1 pp2=$M2 dir=$D
EOF

# In the foreground until nginx ends or a signal comes (the trap exits).
while kill -0 "$NG" 2>/dev/null; do
	wait "$NG"
done
echo "demo: nginx exited; stopping" >&2
exit 1
