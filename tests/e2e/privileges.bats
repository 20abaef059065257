#!/usr/bin/env bats
# Privileges: started as root with --user, pipepool binds first and then
# every process runs as that user; workers cannot gain privileges and take
# the rlimits they are given.

load helpers

setup() {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	pp_tmp
	chmod 755 "$T"
	mkdir "$T/db"
	chown nobody "$T/db"
}
teardown() { [ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs; pp_cleanup; }

user_of() { ps -o user= -p "$1" | tr -d ' '; }

@test "--user: master, front, workers and store all run as that user" {
	pp_start --user nobody --group nogroup --socket-owner nobody \
	    --socket-group nogroup --db "$T/db/pp.db"
	[ "$(user_of "$PP_PID")" = nobody ]
	for k in $(pgrep -P "$PP_PID"); do
		[ "$(user_of "$k")" = nobody ]
		[ "$(ps -o group= -p "$k" | tr -d ' ')" = nogroup ]
	done
	[ "$(stat -c %U:%G "$T/pp.sock")" = nobody:nogroup ]
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data v "$URL/kv/k")" = 201 ]
}

@test "workers run with no_new_privs and the given rlimits" {
	# ASan's shadow memory does not fit in a small address space.
	as=()
	[ -n "${PP_SANITIZED:-}" ] || as=(--worker-rlimit-as 268435456)
	pp_start --workers 1 --worker-rlimit-nofile 64 "${as[@]}"
	w=$(pp_workers)
	grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$w/status"
	grep -Eq '^Max open files +64 +64' "/proc/$w/limits"
	# The limit is 256 MiB on top of the shared dispatch area (the largest
	# shared mapping: a mailbox per front thread, --max-body each).
	if [ -z "${PP_SANITIZED:-}" ]; then
		area=0
		while read -r range perms _ _ _ path _; do
			[[ $perms == *s && $path == /dev/zero* ]] || continue
			n=$((16#${range#*-} - 16#${range%-*}))
			((n > area)) && area=$n
		done <"/proc/$w/maps"
		want=$((268435456 + area))
		echo "area $area, limit wanted $want"
		grep -Eq "^Max address space +$want +$want" "/proc/$w/limits"
		[ "$area" -gt 268435456 ]	# so the limit alone would not fit
	fi
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
}

@test "--user with an unknown user or --group alone exits 64 naming it" {
	run "$PIPEPOOL_BIN" --listen "unix:$T/x.sock" --user no-such-user-here
	[ "$status" -eq 64 ]
	echo "$output" | grep -q -- '--user'
	run "$PIPEPOOL_BIN" --allow-root --listen "unix:$T/x.sock" --group nogroup
	[ "$status" -eq 64 ]
	echo "$output" | grep -q -- '--group'
	[ ! -e "$T/x.sock" ]
}

@test "a --db that cannot be opened stops the start with exit 1 and a clear message" {
	run "$PIPEPOOL_BIN" --allow-root --listen "unix:$T/x.sock" --db "$T/no/such/dir/x.db"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q -- '--db'
	[ ! -e "$T/x.sock" ]
}

@test "a dispatch area that does not fit stops the start with exit 1 naming --threads and --max-body" {
	# ASan reserves terabytes of shadow memory: no small address space.
	[ -z "${PP_SANITIZED:-}" ] || skip "an ASan build cannot run under ulimit -v"
	# 1 GiB of address space; the area wants --threads x --max-body.
	run bash -c 'ulimit -v 1048576 && exec "$0" "$@"' "$PIPEPOOL_BIN" \
	    --allow-root --listen "unix:$T/x.sock" --threads 512 \
	    --max-body 4194304
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q -- 'cannot map the dispatch area for --threads 512 and --max-body 4194304'
	[ ! -e "$T/x.sock" ]
	# Lower, it fits: the server starts, and stops cleanly.
	(ulimit -v 1048576 && exec "$PIPEPOOL_BIN" --allow-root \
	    --listen "unix:$T/y.sock" --threads 16 --max-body 65536 \
	    --db "$T/pp.db" --workers 1) 2>"$T/y.log" &
	y=$!
	wait_for 10 grep -q 'listening on' "$T/y.log"
	kill -TERM "$y"
	wait "$y"
	! grep -q 'cannot map' "$T/y.log"
}

@test "a process of the workers' user cannot ptrace or read the master or the front; a worker stays debuggable" {
	command -v setpriv >/dev/null || skip "setpriv is not installed (Debian package util-linux)"
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
	# Started as that user itself (as systemd's User= does), not as root
	# with --user, whose change of user alone would make it undumpable.
	PP_LOG=$T/db/log
	# (setpriv itself, not the function: $! must be pipepool's pid.)
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$PIPEPOOL_BIN" \
	    --listen "unix:$T/db/pp.sock" --workers 1 --db "$T/db/pp.db" \
	    2>"$PP_LOG" &
	PP_PID=$!
	wait_for 10 grep -q 'listening on' "$PP_LOG"
	wait_for 10 pp_has_workers 1
	front=$(pp_front)
	worker=$(pp_workers)
	[ "$(user_of "$front")" = nobody ]
	[ "$(user_of "$worker")" = nobody ]
	# /proc/PID/environ and mem need the same access as ptrace.
	run as_nobody cat "/proc/$front/environ"
	[ "$status" -ne 0 ]
	run as_nobody cat "/proc/$PP_PID/environ"
	[ "$status" -ne 0 ]
	run as_nobody cat "/proc/$worker/environ"
	[ "$status" -eq 0 ]
}
