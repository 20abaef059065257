#!/usr/bin/env bats
# The trust boundary against a hostile worker: a worker runs code we did
# not write, so whatever it writes where it can (the shared dispatch area,
# its channel to the front) must never crash, hang or corrupt the master
# or the front.  /debug/hostile (worker/hostile.c) plays that worker.

load helpers

setup() { pp_tmp; }
teardown() { [ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs; pp_cleanup; }

# A request that is never answered fails the test, not hangs it.
code() { curl -s --max-time 20 -o /dev/null -w '%{http_code}' "$@"; }
hello_ok() { [ "$(curl -s --max-time 2 "$URL/")" = "hello world from another process" ]; }

# A client load in the background: N requests, each line "code exit".
load_start() {
	local n=$1
	(
		for i in $(seq "$n"); do
			c=$(curl -s --max-time 8 -o /dev/null -w '%{http_code}' \
			    "$URL/?$i")
			echo "$c $?"
		done
	) >"$T/load" &
	LOAD_PID=$!
}

@test "a worker scribbling over the whole dispatch area never takes down the master or the front, and nobody waits past --timeout" {
	pp_start --workers 3 --debug-routes --timeout 2
	ng_start
	master=$PP_PID
	load_start 300
	for seed in 1 2 3 4 5 6; do
		for how in words bytes ff; do
			code "$URL/debug/hostile?do=$how&seed=$seed" >/dev/null || true
			# The master is never hurt; the front survives, or
			# exits and is replaced, and hello answers again.
			kill -0 "$master"
			wait_for 3 hello_ok
		done
	done
	wait "$LOAD_PID"
	[ "$(wc -l <"$T/load")" -eq 300 ]
	# curl's exit 28: no answer within 8 s (--timeout is 2 s).
	! grep -q ' 28$' "$T/load"
	! grep -q '^000 ' "$T/load"
	kill -0 "$master"
	[ "$PP_PID" = "$master" ]
	# The master never read what the workers wrote: it never died.
	! log_has 'master.*fatal'
	wait_for 3 hello_ok
}

@test "forged mailbox states are the worker's fault: it is killed, only its requests fail, and the service goes on" {
	pp_start --workers 2 --debug-routes --timeout 2
	ng_start
	# Requests in flight while another worker forges every mailbox's
	# words: the front checks each state against what it knows.
	pids=
	for i in 1 2 3 4; do
		curl -s --max-time 8 -o /dev/null -w '%{http_code}\n' \
		    "$URL/debug/sleep?ms=300" >>"$T/inflight" &
		pids="$pids $!"
	done
	wait_for 5 some_worker_busy
	code "$URL/debug/hostile?do=words&seed=7" >/dev/null || true
	for p in $pids; do wait "$p" || true; done
	[ "$(wc -l <"$T/inflight")" -eq 4 ]
	! grep -q '^000' "$T/inflight"
	pp_alive
	wait_for 3 hello_ok
}

worker_served_ge() {
	curl -s --max-time 2 "$URL/status" | python3 -c '
import json, sys
w = [x for x in json.load(sys.stdin)["workers"] if x["kind"] == "worker"]
sys.exit(0 if sum(x["requests"] for x in w) >= int(sys.argv[1]) else 1)' "$1"
}

some_worker_busy() {
	curl -s --max-time 2 "$URL/status" | grep -q '"state":"busy"'
}

@test "a worker asking for connections it does not hold gets none" {
	pp_start --workers 2 --debug-routes --threads 16
	ng_start
	# Kept connections, idle and with a request in flight at a worker.
	for i in 1 2 3 4 5 6; do curl -s -o /dev/null "$URL/"; done
	curl -s --max-time 8 -o /dev/null "$URL/debug/sleep?ms=1500" &
	sleeper=$!
	wait_for 5 some_worker_busy
	run curl -s --max-time 10 "$URL/debug/hostile?do=ask"
	[ "$status" -eq 0 ]
	echo "$output"
	[ "$output" = "granted 0" ]
	wait "$sleeper"
	# Direct answers still work for the workers that hold the request.
	for i in 1 2 3 4 5 6; do hello_ok; done
}

@test "a worker flooding its channel with bad messages is killed at the first, with one log line" {
	pp_start --workers 2 --debug-routes
	ng_start
	before=$(pp_workers | sort)
	code "$URL/debug/hostile?do=badmsg" >/dev/null || true
	wait_for 5 log_has 'sent an unexpected message on its channel; killing it'
	wait_for 5 pp_has_workers 2
	[ "$(grep -c 'on its channel; killing it' "$PP_LOG")" -eq 1 ]
	[ "$(pp_workers | sort)" != "$before" ]
	pp_alive
	wait_for 3 hello_ok
}

@test "a slow reader of a large answer never holds the only worker: another client's GET / is not delayed" {
	pp_start --workers 1 --max-body 4194304
	ng_start
	head -c 3145728 /dev/urandom >"$T/big"
	# 3 MiB back at 256 KiB/s: about 12 s, cut at 6 s.
	curl -s --max-time 6 --limit-rate 256k -o /dev/null \
	    --data-binary @"$T/big" "$URL/echo" &
	slow=$!
	# The worker has answered it (nginx now feeds the slow client).
	wait_for 10 worker_served_ge 1
	for i in 1 2 3 4 5; do
		t=$(curl -s --max-time 10 -o /dev/null -w '%{time_total}' "$URL/")
		echo "GET / took $t s"
		python3 -c "import sys; sys.exit(0 if float('$t') < 1.0 else 1)"
	done
	wait "$slow" || true
	pp_alive
}

# A streamed answer whose worker breaks the rules once a piece went out:
# pipepool can no longer answer 502 (a status went to nginx), so it closes
# the connection: the client sees an answer cut short, or nginx's own 502
# if it had sent the client nothing yet; never an answer that looks whole.
cut_short_answer() {
	run curl -s --max-time 10 -o "$T/cut" -w '%{http_code}' \
	    "$URL/debug/hostile?do=$1"
	echo "curl exit $status, HTTP $output"
	[ "$status" -ne 28 ]
	[ "$status" -ne 0 ] || [ "$output" = 502 ]
}

@test "a worker streaming pieces that lie or forge their length is killed at once, its answer cut, and the service goes on" {
	pp_start --workers 2 --debug-routes --timeout 10
	ng_start
	n=0
	for how in pieces-lie pieces-forge pieces-lie pieces-forge; do
		cut_short_answer "$how"
		n=$((n + 1))
		wait_for 5 log_count_ge 'sent a malformed reply; killing it' "$n"
		wait_for 5 pp_has_workers 2
		wait_for 3 hello_ok
	done
	pp_alive
}

@test "a worker streaming pieces for ever is killed at --timeout and its answer cut" {
	pp_start --workers 1 --debug-routes --timeout 2
	ng_start
	before=$(pp_workers | sort)
	cut_short_answer pieces-spin
	wait_for 5 log_has 'took longer than --timeout on GET /debug/hostile; killed it (its answer is cut short)'
	wait_for 5 workers_changed "$before"
	wait_for 3 hello_ok
	pp_alive
}
