#!/usr/bin/env bats
# --app FILE.so: each worker loads a C application (worker/app/pipepool.h)
# after fork.  Through a real nginx, with tests/apps/good.c: what reaches
# it, what it answers, its faults; every kind of file that cannot serve,
# at start and at reload; and code deploys (rename + SIGHUP) under load.

load helpers

setup() {
	pp_tmp
	A=$T/apps
	"$REPO/tests/apps/build.sh" "$A" v1 v2 v3 v4 v5 >"$T/build.log" 2>&1 ||
	    { cat "$T/build.log"; false; }
	# What --app names; a deploy renames another build over it.
	cp "$A/good-v1.so" "$A/app.so"
}
teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs
	[ -z "${WRK:-}" ] || { kill "$WRK" 2>/dev/null; wait "$WRK" 2>/dev/null; } || true
	[ -z "${LOAD:-}" ] || { kill "$LOAD" 2>/dev/null; wait "$LOAD" 2>/dev/null; } || true
	pp_cleanup
}

# --max-time: a request the server never answers fails the test, not hangs it.
# deploy FILE: put FILE in place of app.so the way the README says, by
# rename (a worker that has the old one mapped keeps its inode).
deploy() { cp "$1" "$A/app.so.new" && mv "$A/app.so.new" "$A/app.so"; }
answers() { [ "$(curl -s --max-time 5 "$URL/")" = "$1" ]; }
# Every worker answers version V: N answers in a row say so.
all_answer() {
	local i
	for i in 1 2 3 4 5 6 7 8; do answers "good $1" || return 1; done
}

@test "app: params and headers reach the application; its status and headers reach the client" {
	pp_start --workers 2 --app "$A/app.so"
	ng_start
	run curl -s -D "$T/h" -H 'X-Test: one two' "$URL/params?a=1&b=%20"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q '^HTTP/1.1 201' "$T/h"
	grep -qi '^X-App: c' "$T/h"
	grep -qi '^X-Version: v1' "$T/h"
	grep -qi '^X-Echo-Test: one two' "$T/h"
	grep -qi '^Content-Type: text/plain' "$T/h"
	echo "$output" | grep -qx 'method=GET'
	echo "$output" | grep -qx 'path=/params'
	echo "$output" | grep -qx 'query=a=1&b=%20'
	echo "$output" | grep -qx 'HTTP_X_TEST=one two'
	echo "$output" | grep -qx 'REMOTE_ADDR=127.0.0.1'
	# The iterator sees every param nginx sent.
	run curl -s -H 'X-Test: it' "$URL/all"
	echo "$output" | grep -qx 'HTTP_X_TEST=it'
	echo "$output" | grep -qx 'REQUEST_METHOD=GET'
	echo "$output" | grep -qx 'SERVER_NAME=.*'
	# init was given each worker's number, 1-based.
	for i in $(seq 10); do curl -s "$URL/worker"; done | sort -u >"$T/nums"
	grep -Eqx '[12]' "$T/nums"
	! grep -qx 0 "$T/nums" || false
}

@test "app: a 1 MiB binary body comes back byte for byte" {
	pp_start --workers 1 --app "$A/app.so"
	ng_start
	head -c 1048576 /dev/urandom >"$T/in"
	curl -s --max-time 30 --data-binary @"$T/in" -H 'Content-Type: application/octet-stream' \
	    -o "$T/out" "$URL/echo"
	cmp "$T/in" "$T/out"
	: >"$T/empty"
	curl -s --max-time 30 --data-binary @"$T/empty" -o "$T/out0" "$URL/echo"
	cmp "$T/empty" "$T/out0"
}

# The sha256 of /big?mb=N: byte i is i mod 251.
big_sha() {
	python3 -c '
import hashlib, sys
h = hashlib.sha256(); c = bytes(i % 251 for i in range(251 * 4096))
n = int(sys.argv[1]) << 20
while n > 0:
    k = min(n, len(c)); h.update(c[:k]); n -= k
print(h.hexdigest())' "$1"
}

@test "app: a 100 MiB answer streams through whole, byte for byte, never held whole" {
	pp_start --workers 1 --app "$A/app.so"
	ng_start
	got=$(curl -s --max-time 120 "$URL/big?mb=100" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$(big_sha 100)" ]
	# Again on nginx's kept connection: the worker writes the records
	# itself (a direct answer) instead of passing pieces to the front.
	want=$(big_sha 8)
	for i in 1 2 3; do
		got=$(curl -s --max-time 60 "$URL/big?mb=8" | sha256sum | cut -d' ' -f1)
		[ "$got" = "$want" ]
	done
	# Neither the worker nor the front held an answer whole.
	for p in $(pp_workers) $(pp_front); do
		hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status")
		echo "pid $p VmHWM $hwm kB"
		[ "$hwm" -lt 65536 ]
	done
	! log_has 'does not fit'
	answers "good v1"
}

@test "app: a handler that fails once its answer streamed has it cut short; the worker goes on" {
	pp_start --workers 1 --app "$A/app.so"
	ng_start
	before=$(pp_workers)
	run curl -s --max-time 30 -o "$T/out" "$URL/big?mb=4&fail=1"
	echo "curl exit $status"
	# Cut short (curl 18: the transfer closed with data outstanding), or
	# nginx's 502 if it had sent nothing yet: never a whole answer.
	[ "$status" -ne 0 ] || grep -q '502' "$T/out"
	wait_for 5 log_has 'the application failed after its answer began (good fails after its answer began); cutting it short'
	[ "$(pp_workers)" = "$before" ]
	answers "good v1"
}

@test "app: a handler error is a 500 with its reason; the worker goes on" {
	pp_start --workers 1 --app "$A/app.so"
	ng_start
	before=$(pp_workers)
	run curl -s -D "$T/h" "$URL/error"
	grep -q '^HTTP/1.1 500' "$T/h"
	echo "$output" | grep -q 'good fails on purpose'
	[ "$(pp_workers)" = "$before" ]
	answers "good v1"
}

@test "app: a crash mid-request is a 502; the worker is respawned" {
	pp_start --workers 1 --app "$A/app.so"
	ng_start
	before=$(pp_workers)
	[ "$(code "$URL/crash")" = 502 ]
	wait_for 5 grep -Eq 'worker 1 \(pid [0-9]+\) killed by signal 6' "$PP_LOG"
	wait_for 10 workers_changed "$before"
	answers "good v1"
}

@test "app: a hang is a 504 within --timeout; the worker is killed and respawned" {
	pp_start --workers 1 --timeout 1 --app "$A/app.so"
	ng_start
	before=$(pp_workers)
	t0=$(date +%s%N)
	[ "$(code "$URL/hang")" = 504 ]
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	echo "504 after $ms ms"
	[ "$ms" -lt 3000 ]
	wait_for 10 workers_changed "$before"
	answers "good v1"
	# The deadline the handler sees is what is left of --timeout.
	d=$(curl -s "$URL/deadline")
	[ "$d" -gt 0 ] && [ "$d" -le 1000 ]
}

@test "app: each file that cannot serve stops the start with exit 1 and the reason" {
	pp_start_fails --app "$A/missing.so"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -qx "pipepool: --app $A/missing.so: $A/missing.so: cannot open shared object file: No such file or directory"
	pp_start_fails --app "$A/notso.so"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "^pipepool: --app $A/notso.so: $A/notso.so: "
	pp_start_fails --app "$A/noabi.so"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "^pipepool: --app $A/noabi.so: .*pipepool_app"
	pp_start_fails --app "$A/wrongabi.so"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "^pipepool: --app $A/wrongabi.so: .*ABI 99"
	pp_start_fails --app "$A/initfail.so"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "^pipepool: --app $A/initfail.so: .*init"
	pp_start_fails --app "$A/diesinit.so"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "^pipepool: --app $A/diesinit.so: .*signal 6"
	# Nothing was left behind: no socket file, no process.
	[ ! -e "$T/pp.sock" ]
}

@test "app: a reload to a file that cannot serve is logged; the old code keeps serving" {
	pp_start --workers 2 --app "$A/app.so"
	ng_start
	old=$(pp_workers | sort)
	n=0
	for bad in notso noabi wrongabi initfail diesinit; do
		deploy "$A/$bad.so"
		kill -HUP "$PP_PID"
		n=$((n + 1))
		wait_for 20 log_count_ge 'reload refused' "$n"
		for i in $(seq 10); do answers "good v1"; done
		[ "$(pp_workers | sort)" = "$old" ]
	done
	grep 'reload refused' "$PP_LOG"
	grep -q "reload refused.*--app $A/app.so: .*ABI 99" "$PP_LOG"
	grep -q "reload refused.*--app $A/app.so: .*signal 6" "$PP_LOG"
	rm "$A/app.so"
	kill -HUP "$PP_PID"
	wait_for 20 log_count_ge 'reload refused' 6
	log_has "reload refused.*cannot open shared object file"
	answers "good v1"
	# A good file again: the next reload takes it.
	deploy "$A/good-v2.so"
	kill -HUP "$PP_PID"
	wait_for 15 all_answer v2
	wait_for 10 workers_changed "$old" 2
}

@test "app: a reload keeps the old workers serving until the new ones are up" {
	export GOOD_INIT_MS=1500
	pp_start --workers 2 --app "$A/app.so"
	unset GOOD_INIT_MS
	ng_start
	old=$(pp_workers | sort)
	deploy "$A/good-v2.so"
	kill -HUP "$PP_PID"
	# The probe and then the new workers take 1.5 s each to start; every
	# answer meanwhile is prompt and from the old code.
	t0=$(date +%s%N)
	while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 2500 ]; do
		t=$(curl -s --max-time 5 -D "$T/h" -o "$T/b" -w '%{time_total}' "$URL/")
		grep -Eq '^good v[12]$' "$T/b"
		# Prompt: well under the 1.5 s a new worker takes to start.
		python3 -c "import sys; sys.exit(float('$t') > 1.0)"
		# An old answer comes from an old worker (each old one leaves
		# once its own successor is up, which may be just after it
		# answered: its pid, not its being alive now, is checked).
		if grep -q v1 "$T/b"; then
			w=$(tr -d '\r' <"$T/h" | awk -F': ' 'tolower($1) == "x-worker-pid" { print $2 }')
			echo "$old" | grep -qx "$w"
		fi
	done
	wait_for 10 all_answer v2
	wait_for 10 workers_changed "$old" 2
}

@test "app: five code deploys under load: no error, no non-2xx, the new code answers" {
	pp_start --workers 2 --app "$A/app.so"
	ng_start
	if command -v wrk >/dev/null; then
		wrk -t2 -c32 -d12s -s "$BATS_TEST_DIRNAME/codes.lua" "$URL/" >"$T/wrk" 2>&1 &
		WRK=$!
	else
		# 32 curl loops in parallel; each line a status code.
		(for c in $(seq 32); do
			(end=$((SECONDS + 12)); while [ $SECONDS -lt $end ]; do
				code "$URL/"; echo; done) &
		done; wait) >"$T/codes" &
		LOAD=$!
	fi
	for v in v2 v3 v4 v5 v1; do
		old=$(pp_workers | sort)
		deploy "$A/good-$v.so"
		kill -HUP "$PP_PID"
		wait_for 15 all_answer "$v"
		wait_for 10 workers_changed "$old" 2
	done
	if [ -n "${WRK:-}" ]; then
		wait "$WRK"
		WRK=
		cat "$T/wrk"
		! grep -q 'Non-2xx' "$T/wrk" || false
		! grep -q 'Socket errors' "$T/wrk" || false
		grep -Eq '^codes 200=[0-9]+$' "$T/wrk"
	else
		wait "$LOAD"
		LOAD=
		sort "$T/codes" | uniq -c
		[ "$(grep -cvx 200 "$T/codes")" -eq 0 ]
	fi
	[ "$(grep -c 'reloading' "$PP_LOG")" -eq 5 ]
	! log_has 'reload refused' || false
	all_answer v1
}

# The master's side of a deploy, with the built-in application: runs
# without --app.  PIPEPOOL_DEBUG_FAIL_AT_START fails a worker's start
# when debug-routes is on, so a reload that turns it on makes every new
# worker die at start, as one whose application's init fails does.
@test "reload: new workers that die at start leave the old ones serving; the next good reload replaces them" {
	printf 'debug-routes = no\n' >"$T/pp.conf"
	export PIPEPOOL_DEBUG_FAIL_AT_START=1
	pp_start --workers 2 --config "$T/pp.conf"
	unset PIPEPOOL_DEBUG_FAIL_AT_START
	ng_start
	old=$(pp_workers | sort)
	printf 'debug-routes = yes\n' >"$T/pp.conf"
	kill -HUP "$PP_PID"
	wait_for 10 grep -q 'died 2 times in a row' "$PP_LOG"
	for i in $(seq 20); do [ "$(code "$URL/")" = 200 ]; done
	for w in $old; do kill -0 "$w"; done
	! log_has 'retired after' || false
	printf 'debug-routes = no\n' >"$T/pp.conf"
	kill -HUP "$PP_PID"
	wait_for 10 log_count_ge 'retired after' 2
	wait_for 10 workers_changed "$old" 2
	[ "$(code "$URL/")" = 200 ]
}

@test "app: README's example builds as README says and answers" {
	awk '/^## Write an application/{w=1} w && /^```c$/{c=1; next}
	    c && /^```$/{exit} c' "$REPO/README.md" >"$T/greet.c"
	[ -s "$T/greet.c" ]
	# The installed header is worker/app/pipepool.h (conf/install.sh).
	cc -shared -fPIC -O2 -std=c11 -Wall -Wextra -Werror \
	    -I"$REPO/worker/app" -o "$T/greet.so" "$T/greet.c"
	pp_start --workers 1 --app "$T/greet.so"
	ng_start
	[ "$(curl -s "$URL/greet?world")" = "hello world" ]
	printf 'a\0b' >"$T/in"
	curl -s --data-binary @"$T/in" -o "$T/out" "$URL/echo"
	cmp "$T/in" "$T/out"
	[ "$(code "$URL/nothing")" = 404 ]
}

@test "app: a probe whose init hangs dies with a master SIGKILLed meanwhile" {
	GOOD_INIT_MS=60000 "$PIPEPOOL_BIN" --allow-root \
	    --listen "unix:$T/pp.sock" --db "$T/pp.db" --workers 1 \
	    --app "$A/app.so" 2>"$T/pp.log" &
	m=$!
	wait_for 10 pgrep -P "$m" -f 'pipepool: probe'
	probe=$(pgrep -P "$m" -f 'pipepool: probe')
	kill -KILL "$m"
	wait "$m" 2>/dev/null || true
	# Reparented, a zombie until its new parent reaps it: gone either way.
	wait_for 5 gone "$probe" || { kill -KILL "$probe"; false; }
}
