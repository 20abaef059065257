#!/usr/bin/env bats
# Supervision and fault tolerance: every request gets an answer, promptly,
# whatever a worker does; the server stays up and leaks nothing.

load helpers

setup() { pp_tmp; }
teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs
	[ -z "${KILLER:-}" ] || { kill "$KILLER" 2>/dev/null; wait "$KILLER" 2>/dev/null; } || true
	pp_cleanup
}

# --max-time: a request the server never answers fails the test, not hangs it.

# The syscall a process is blocked in (first field of /proc/PID/syscall).
in_syscall() { [ "$(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null)" = "$2" ]; }
# A worker sleeping in /debug/sleep (clock_nanosleep = 230 on x86_64).
some_worker_sleeps() {
	local w
	for w in $(pp_workers); do in_syscall "$w" 230 && return 0; done
	return 1
}
queue_depth_is() {
	[ "$(curl -s "$URL/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queue"]["depth"])')" = "$1" ]
}
no_zombies() { ! ps -o stat= --ppid "$PP_PID" | grep -q Z; }
# The one worker is ready: /status lists one, idle (waiting on the line).
# A worker that was just counted by pid may still be starting, and with
# --timeout 1 a request that waits for it would get the front's 504.
one_idle_worker() {
	curl -s --max-time 2 "$URL/status" | python3 -c '
import json, sys
w = [x for x in json.load(sys.stdin)["workers"] if x["kind"] == "worker"]
sys.exit(0 if len(w) == 1 and w[0]["state"] == "idle" else 1)'
}
# replaced OLD: the worker OLD is gone and its successor is ready.
replaced() { wait_for 10 workers_changed "$1" && wait_for 10 one_idle_worker; }

@test "debug routes are 404 unless --debug-routes" {
	pp_start
	ng_start
	for r in crash exit garbage 'sleep?ms=1'; do
		[ "$(code "$URL/debug/$r")" = 404 ]
	done
	[ "$(pp_nworkers)" -eq 2 ]
}

@test "a worker that crashes mid-request: 502, respawned, logged with its signal" {
	pp_start --workers 2 --debug-routes
	ng_start
	before=$(pp_workers | sort)
	run curl -s -D "$T/h" "$URL/debug/crash"
	grep -q '^HTTP/1.1 502' "$T/h"
	echo "$output" | grep -q 'died'
	wait_for 1 pp_has_workers 2
	[ "$(pp_workers | sort)" != "$before" ]
	wait_for 2 grep -Eq 'worker [12] \(pid [0-9]+\) killed by signal 6 \(Aborted\)' "$PP_LOG"
	log_has 'died while handling GET /debug/crash'
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	no_zombies
}

@test "a worker that exits mid-request: 502 and its status in the log" {
	pp_start --workers 2 --debug-routes
	ng_start
	[ "$(code "$URL/debug/exit")" = 502 ]
	wait_for 2 grep -Eq 'worker [12] \(pid [0-9]+\) exited with status 3' "$PP_LOG"
	wait_for 1 pp_has_workers 2
}

@test "a worker that sends garbage is killed: 502, respawned" {
	pp_start --workers 2 --debug-routes
	ng_start
	run curl -s -D "$T/h" "$URL/debug/garbage"
	grep -q '^HTTP/1.1 502' "$T/h"
	echo "$output" | grep -q 'malformed'
	wait_for 2 grep -Eq 'worker [12] \(pid [0-9]+\) killed by signal 9' "$PP_LOG"
	log_has 'sent a malformed reply; killing it'
	wait_for 1 pp_has_workers 2
	[ "$(code "$URL/")" = 200 ]
}

@test "on a kept connection the worker answers itself; its crash, garbage and timeout still get 502/504" {
	pp_start --workers 1 --debug-routes --timeout 1 --slow 20
	ng_start
	# nginx keeps its connection: from its second request on, the worker
	# writes the answer on it (the slow log line is then the worker's).
	[ "$(code "$URL/debug/sleep?ms=40")" = 200 ]
	w=$(pp_workers)
	wait_for 2 log_has "pid=$w worker 1: slow request: GET /debug/sleep"
	[ "$(code "$URL/debug/crash")" = 502 ]
	log_has 'died while handling GET /debug/crash'
	replaced "$w"
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	w=$(pp_workers)
	[ "$(code "$URL/debug/garbage")" = 502 ]
	wait_for 2 log_has "worker 1 (pid $w) sent a malformed reply; killing it"
	replaced "$w"
	w=$(pp_workers)
	[ "$(code "$URL/debug/sleep?ms=3000")" = 504 ]
	wait_for 2 log_has "worker 1 (pid $w) took longer than --timeout on GET /debug/sleep; killed it"
	replaced "$w"
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	# The new worker answers on the connection itself again.
	[ "$(code "$URL/debug/sleep?ms=40")" = 200 ]
	w=$(pp_workers)
	wait_for 2 log_has "pid=$w worker 1: slow request: GET /debug/sleep"
	no_zombies
}

@test "other requests in flight are unaffected by a crash" {
	pp_start --workers 4 --debug-routes
	ng_start
	curl -s -o "$T/slow" -w '%{http_code}' "$URL/debug/sleep?ms=800" >"$T/slow.code" &
	slow=$!
	wait_for 5 some_worker_sleeps
	[ "$(code "$URL/debug/crash")" = 502 ]
	wait "$slow"
	[ "$(cat "$T/slow.code")" = 200 ]
	grep -q 'slept 800 ms' "$T/slow"
}

@test "workers dying at start are respawned with back-off, and the log says so" {
	PIPEPOOL_DEBUG_FAIL_AT_START=1 "$PIPEPOOL_BIN" --allow-root --debug-routes \
	    --listen "unix:$T/pp.sock" --db "$T/pp.db" --workers 1 2>"$T/pp.log" &
	PP_PID=$! PP_LOG=$T/pp.log
	wait_for 10 grep -q 'respawning in [0-9]* ms (back-off)' "$PP_LOG"
	wait_for 10 grep -q 'died 5 times in a row' "$PP_LOG"
	# Back-off doubles: 5 failures take 100+200+400 ms of waiting at
	# least, so a tight loop would have logged far more spawns by now.
	[ "$(grep -c 'worker 1 spawned' "$PP_LOG")" -lt 20 ]
	pp_alive
}

# Kill every worker of $PP_PID as soon as it shows for $1 seconds, as the
# OOM killer would; sets KILLER (cleaned up in teardown by pid).
kill_workers_for() {
	(
		set +e	# a process that ends under our feet is no error
		end=$((${EPOCHREALTIME/./} + $1 * 1000000))
		# Builtins only, so a new worker is found within a few ms.
		while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
			kids=()
			read -r -a kids <"/proc/$PP_PID/task/$PP_PID/children"
			for k in "${kids[@]}"; do
				title=
				read -r -d '' title <"/proc/$k/cmdline" 2>/dev/null
				[[ $title == "pipepool: worker"* ]] && kill -KILL "$k" 2>/dev/null
			done
			sleep 0.002	# the killer's pace, not synchronisation
		done
	) &
	KILLER=$!
}

@test "workers SIGKILLed at every start are respawned with back-off, not in a loop" {
	pp_start --workers 1
	ng_start
	before=$(grep -c 'worker 1 spawned' "$PP_LOG")
	kill_workers_for 3
	wait "$KILLER"
	KILLER=
	spawns=$(($(grep -c 'worker 1 spawned' "$PP_LOG") - before))
	echo "spawns while killed: $spawns"
	grep -q 'worker 1 died [0-9]* times in a row .*(back-off)' "$PP_LOG"
	# A loop would respawn hundreds of times in 3 s; back-off a handful.
	[ "$spawns" -ge 3 ] && [ "$spawns" -lt 30 ]
	# Once the killing stops the worker comes back (back-off <= 5 s).
	wait_for 10 pp_has_workers 1
	[ "$(code "$URL/")" = 200 ]
	pp_alive
}

@test "a request past --timeout gets 504; the worker is killed; its late answer reaches nobody" {
	pp_start --workers 2 --debug-routes --timeout 0.5
	ng_start
	run curl -s -D "$T/h" "$URL/debug/sleep?ms=3000"
	grep -q '^HTTP/1.1 504' "$T/h"
	echo "$output" | grep -q 'timeout'
	log_has 'took longer than --timeout on GET /debug/sleep'
	wait_for 2 grep -Eq 'killed by signal 9 \(Killed\) \(killed by the master' "$PP_LOG"
	wait_for 1 pp_has_workers 2
	for i in $(seq 20); do
		[ "$(curl -s "$URL/")" = "hello world from another process" ]
	done
}

@test "overload: with every worker busy and the queue full, 503 Retry-After: 1 at once" {
	pp_start --workers 1 --queue 0 --debug-routes
	ng_start
	curl -s -o /dev/null -w '%{http_code}' "$URL/debug/sleep?ms=3000" >"$T/slow.code" &
	slow=$!
	wait_for 5 some_worker_sleeps
	run curl -s -D "$T/h" "$URL/"
	grep -q '^HTTP/1.1 503' "$T/h"
	grep -qi '^Retry-After: 1' "$T/h"
	# Answered while the sleeping request is still in flight.
	kill -0 "$slow"
	wait "$slow"
	[ "$(cat "$T/slow.code")" = 200 ]
}

@test "overload: --queue N lets N wait; the next is refused" {
	pp_start --workers 1 --queue 1 --debug-routes
	ng_start
	curl -s -o /dev/null -w '%{http_code}' "$URL/debug/sleep?ms=4000" >"$T/a" &
	a=$!
	wait_for 5 some_worker_sleeps
	curl -s -o /dev/null -w '%{http_code}' "$URL/" >"$T/b" &
	b=$!
	# Wait until the second request waits in the queue.
	wait_for 5 queue_depth_is 1
	run curl -s -D - -o /dev/null "$URL/"
	echo "$output" | grep -q '^HTTP/1.1 503'
	kill -0 "$b"
	wait "$a" "$b"
	[ "$(cat "$T/a")" = 200 ]
	[ "$(cat "$T/b")" = 200 ]
}

@test "--max-requests N: workers retire and are replaced without a failed request" {
	pp_start --workers 1 --max-requests 3
	ng_start
	for i in $(seq 10); do
		curl -s -D - -o "$T/b" "$URL/" | tr -d '\r' |
		    awk -F': ' 'tolower($1)=="x-worker-pid"{print $2}' >>"$T/pids"
		[ "$(cat "$T/b")" = "hello world from another process" ]
	done
	[ "$(sort -u "$T/pids" | wc -l)" -eq 4 ]
	log_has 'served 3 requests (--max-requests), retiring'
}

@test "SIGHUP reloads gracefully: 5 reloads under wrk, no errors, no non-2xx" {
	pp_start --workers 2
	ng_start
	wrk -t2 -c32 -d8s -s "$BATS_TEST_DIRNAME/codes.lua" "$URL/" >"$T/wrk" 2>&1 &
	wrk=$!
	for i in 1 2 3 4 5; do
		kill -HUP "$PP_PID"
		wait_for 10 log_count_ge 'reloading' "$i"
		# New workers up, the old ones gone.
		wait_for 10 log_count_ge 'worker [12] spawned' $((2 + 2 * i))
		wait_for 10 pp_has_workers 2
	done
	wait "$wrk"
	cat "$T/wrk"
	! grep -q 'Non-2xx' "$T/wrk" || false
	! grep -q 'Socket errors' "$T/wrk" || false
	grep -Eq '^codes 200=[0-9]+$' "$T/wrk"
}

@test "SIGHUP with a bad config file keeps the running settings" {
	printf 'workers = 2\n' >"$T/pp.conf"
	pp_start --config "$T/pp.conf"
	ng_start
	printf 'workers = zero\n' >"$T/pp.conf"
	kill -HUP "$PP_PID"
	wait_for 5 grep -q "reload refused, keeping the running settings: $T/pp.conf:1:" "$PP_LOG"
	[ "$(code "$URL/")" = 200 ]
	printf 'workers = 3\n' >"$T/pp.conf"
	kill -HUP "$PP_PID"
	wait_for 10 pp_has_workers 3
	[ "$(code "$URL/")" = 200 ]
}

@test "SIGTERM: a request in flight completes with 200, then exit 0" {
	pp_start --workers 2 --debug-routes
	ng_start
	curl -s -o "$T/out" -w '%{http_code}' "$URL/debug/sleep?ms=2000" >"$T/code" &
	c=$!
	wait_for 5 some_worker_sleeps
	kill -TERM "$PP_PID"
	wait_for 5 log_has 'stopping'
	# The listening socket is closed: new connections are refused.
	wait_for 5 sh -c "! curl -s -o /dev/null --unix-socket $T/pp.sock http://x/"
	wait "$c"
	[ "$(cat "$T/code")" = 200 ]
	grep -q 'slept 2000 ms' "$T/out"
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
}

@test "SIGINT stops like SIGTERM" {
	pp_start
	kill -INT "$PP_PID"
	wait_for 10 eval '! kill -0 $PP_PID'
	wait "$PP_PID" && st=0 || st=$?
	PP_PID=
	[ "$st" -eq 0 ]
	grep -q 'master: stopped' "$T/pp.log"
}

@test "SIGTERM: a request longer than --grace is cut off and the stop completes" {
	pp_start --workers 1 --debug-routes --grace 0.5
	ng_start
	curl -s -o /dev/null "$URL/debug/sleep?ms=60000" &
	c=$!
	wait_for 5 some_worker_sleeps
	kill -TERM "$PP_PID"
	wait_for 10 eval '! kill -0 $PP_PID'
	log_has 'still running after --grace; sending SIGTERM'
	# The log says what the master did, not a kill the front asked for.
	log_has 'killed by signal 15 (Terminated) (stopping: sent SIGTERM after --grace)'
	! log_has "on the front's request" || false
	wait "$c" || true
	PP_PID=
}

@test "SIGKILL of the master: the front and every worker exit within 1 s" {
	pp_start --workers 3
	kids=$(pgrep -P "$PP_PID")
	[ "$(echo "$kids" | wc -w)" -eq 5 ]	# front, 3 workers, store
	kill -KILL "$PP_PID"
	wait "$PP_PID" 2>/dev/null || true
	PP_PID=
	# Exited: gone, or a zombie waiting for whoever inherited it (the
	# master is dead, so reaping them is no longer ours to do).
	gone() {
		for k in $kids; do
			st=$(ps -o stat= -p "$k" 2>/dev/null) || continue
			case $st in Z*) ;; *) return 1 ;; esac
		done
	}
	wait_for 1 gone
}

@test "a front that dies is replaced, with new workers on a new dispatch area" {
	pp_start --workers 2 --debug-routes
	ng_start
	front=$(pp_front)
	old=$(pp_workers | sort)
	[ -n "$front" ] && [ "$(echo "$old" | wc -l)" -eq 2 ]
	# A request in flight when the front dies.
	curl -s -o /dev/null -w '%{http_code}' "$URL/debug/sleep?ms=3000" \
	    >"$T/slow.code" &
	slow=$!
	one_busy() { curl -s "$URL/status" | grep -q '"state": *"busy"'; }
	wait_for 5 one_busy
	kill -KILL "$front"
	wait "$slow" || true
	# nginx saw the connection close before any answer: a 502, or, the
	# request being a GET, an answer from the new front when nginx tried
	# it again (fastcgi_next_upstream error; the listening socket stays
	# with the master).  Which one depends on nginx's timing; never a
	# hang or anything else.
	code=$(cat "$T/slow.code")
	echo "in flight when the front died: $code"
	[ "$code" = 200 ] || [ "$code" = 502 ]
	wait_for 5 log_has "front (pid $front) killed by signal 9"
	old_gone() {
		for w in $old; do
			kill -0 "$w" 2>/dev/null && return 1
		done
		return 0
	}
	wait_for 5 old_gone
	wait_for 5 pp_has_workers 2
	[ "$(pp_front)" != "$front" ]
	# The new workers answer through the new front, many times over.
	for i in $(seq 20); do
		[ "$(curl -s "$URL/")" = "hello world from another process" ]
	done
	wpid=$(curl -s -D - -o /dev/null "$URL/" | tr -d '\r' |
	    awk -F': ' 'tolower($1)=="x-worker-pid"{print $2}')
	pp_workers | grep -qx "$wpid"
	! echo "$old" | grep -qx "$wpid"
}

@test "open fds of the front and master return to their baseline after faults" {
	pp_start --workers 2 --debug-routes
	ng_start
	curl -s "$URL/" >/dev/null
	front0=$(pp_fds "$PP_FRONT")
	master0=$(pp_fds "$PP_PID")
	for r in crash exit garbage crash; do
		[ "$(code "$URL/debug/$r")" = 502 ]
		wait_for 2 pp_has_workers 2
	done
	curl -s "$URL/" >/dev/null
	wait_for 5 fds_eq "$PP_FRONT" "$front0"
	wait_for 5 fds_eq "$PP_PID" "$master0"
	no_zombies
}

@test "chaos: wrk for 10 s while a worker is SIGKILLed every 200 ms" {
	pp_start --workers 4 --timeout 5
	ng_start
	wrk -t2 -c32 -d10s --timeout 8s -s "$BATS_TEST_DIRNAME/codes.lua" "$URL/" >"$T/wrk" 2>&1 &
	wrk=$!
	for i in $(seq 45); do
		w=$(pp_workers | shuf -n 1)
		[ -n "$w" ] && kill -KILL "$w" 2>/dev/null || true
		sleep 0.2	# pacing of the chaos, not synchronisation
	done
	wait "$wrk"
	cat "$T/wrk"
	line=$(grep '^codes' "$T/wrk")
	# Only 200 and 502 were seen, and mostly 200.
	[ -z "$(echo "$line" | tr ' ' '\n' | grep '=' | grep -Ev '^(200|502)=')" ]
	echo "$line" | grep -q ' 200='
	! grep -q 'Socket errors' "$T/wrk" || false
	# No request took longer than --timeout (5 s).
	max=$(awk '/^max_latency_us/{print int($2)}' "$T/wrk")
	[ "$max" -lt 5000000 ]
	wait_for 5 pp_has_workers 4
	[ "$(code "$URL/")" = 200 ]
	no_zombies
}
