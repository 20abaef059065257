#!/usr/bin/env bats
# The pool: its size, its workers' lives (recycling one that grew), and
# no work for requests nobody waits for; no request failed by any of it.

load helpers

setup() { pp_tmp; }
teardown() { [ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs; pp_cleanup; }

# A client load in the background: hello until $T/stop exists, each
# answer's code on a line of $T/load.
load_start() {
	(
		while [ ! -e "$T/stop" ]; do
			curl -s --max-time 8 -o /dev/null -w '%{http_code}\n' "$URL/"
		done
	) >"$T/load" &
	LOAD_PID=$!
}
load_stop() { : >"$T/stop"; wait "$LOAD_PID"; }

@test "a worker whose PSS passes --worker-max-memory finishes its request and is replaced; no request fails" {
	pp_start --workers 1 --debug-routes --worker-max-memory $((48 << 20))
	ng_start
	load_start
	# 64 MiB more, then 2 s more on the same request: the master sees the
	# PSS meanwhile, starts a successor, and the grown worker answers
	# before it leaves.
	run curl -s --max-time 20 -D "$T/h" "$URL/debug/leak?mb=64&ms=2000"
	[ "$status" -eq 0 ]
	[ "$output" = "leaked 64 MiB (64 in all)" ]
	grown=$(sed -n 's/^X-Worker-Pid: \([0-9]*\).*/\1/ip' "$T/h")
	[ -n "$grown" ]
	log_has "worker 1 (pid $grown) uses [0-9]* KiB (PSS), past --worker-max-memory $((48 << 20)): replacing it once its request is done"
	wait_for 5 gone "$grown"
	wait_for 5 pp_has_workers 1
	[ "$(pp_workers)" != "$grown" ]
	load_stop
	echo "load: $(sort "$T/load" | uniq -c)"
	[ -s "$T/load" ]
	! grep -qv '^200$' "$T/load"
	# The successor is small again, and is left alone.
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	[ "$(grep -c 'past --worker-max-memory' "$PP_LOG")" -eq 1 ]
}

@test "without --worker-max-memory a grown worker is kept" {
	pp_start --workers 1 --debug-routes
	ng_start
	w=$(pp_workers)
	[ "$(curl -s --max-time 20 "$URL/debug/leak?mb=64")" = "leaked 64 MiB (64 in all)" ]
	# The master would have looked within 1 s: give it 3 answers' time.
	for i in 1 2 3; do
		[ "$(curl -s "$URL/")" = "hello world from another process" ]
	done
	[ "$(pp_workers)" = "$w" ]
	! log_has 'past --worker-max-memory'
}

# The pool's figures in /status: min max target size.
pool_is() {
	curl -s --max-time 2 "$URL/status" | python3 -c '
import json, sys
p = json.load(sys.stdin)["pool"]
sys.exit(0 if [p["min"], p["max"], p["target"], p["size"]] == [int(a) for a in sys.argv[1:]] else 1)' "$@"
}

@test "a MIN:MAX pool grows to MAX under a step load and shrinks back within --idle-timeout, with no non-2xx" {
	pp_start --workers 1:4 --spare 0 --idle-timeout 1 --debug-routes
	ng_start
	wait_for 5 pool_is 1 4 1 1
	grep -q 'started: 1 to 4 workers' "$PP_LOG"
	[ "$(pp_nworkers)" -eq 1 ]
	# 64 connections of requests that each hold a worker 20 ms: the
	# queue fills, and the pool grows to MAX (it doubles at most every
	# 100 ms: 1, 2, 4).
	wrk -t2 -c64 -d4s -s "$BATS_TEST_DIRNAME/codes.lua" \
	    "$URL/debug/sleep?ms=20" >"$T/wrk" 2>&1 &
	wrk=$!
	wait_for 3 pool_is 1 4 4 4
	log_has 'pool: [0-9]* busy, [0-9]* waiting: growing to 4 workers'
	wait "$wrk"
	cat "$T/wrk"
	! grep -q 'Non-2xx' "$T/wrk"
	! grep -q 'Socket errors' "$T/wrk"
	grep -Eq '^codes 200=[0-9]+$' "$T/wrk"
	# Idle: back to MIN within --idle-timeout and a tick or two.
	wait_for 3 pool_is 1 4 1 1
	log_has 'pool: [0-9]* idle for 1 s: shrinking to 1 workers'
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	curl -s "$URL/metrics" | grep -q '^pipepool_workers_target 1$'
	curl -s "$URL/metrics" | grep -q '^pipepool_workers_max 4$'
}

@test "--spare keeps idle workers ready; a fixed pool never moves" {
	pp_start --workers 1:3 --spare 2 --idle-timeout 1
	ng_start
	wait_for 5 pool_is 1 3 2 2
	pp_stop
	pp_start --workers 2
	ng_start
	wait_for 5 pool_is 2 2 2 2
	! log_has 'pool:'
}

@test "--workers MIN:MAX must have MIN <= MAX" {
	run "$PIPEPOOL_BIN" --workers 3:2 --listen unix:"$T/x.sock"
	[ "$status" -eq 64 ]
	[ "${#lines[@]}" -eq 1 ]
	echo "$output" | grep -q "^pipepool: --workers: '3:2' is not a whole number from 1 to 1024, or MIN:MAX of them with MIN <= MAX"
	run "$PIPEPOOL_BIN" --workers 1:x --listen unix:"$T/x.sock"
	[ "$status" -eq 64 ]
}

workers_served() {
	curl -s --max-time 2 "$URL/status" | python3 -c '
import json, sys
w = [x for x in json.load(sys.stdin)["workers"] if x["kind"] == "worker"]
print(sum(x["requests"] for x in w))'
}
abandoned() { curl -s "$URL/metrics" | sed -n 's/^pipepool_requests_abandoned_total //p'; }

@test "a request whose client gives up while it waits in line never reaches a worker, and is counted" {
	pp_start --workers 1 --debug-routes
	ng_start
	[ "$(abandoned)" = 0 ]
	base=$(workers_served)	# ng_start's own hello
	# The only worker is busy for 3 s; two requests wait behind it, and
	# their clients give up after 0.5 s (nginx then closes the upstream
	# connection).
	curl -s --max-time 10 -o "$T/slow" "$URL/debug/sleep?ms=3000" &
	slow=$!
	wait_for 5 eval '[ "$(curl -s "$URL/status" | grep -c "\"state\":\"busy\"")" -ge 1 ]'
	for i in 1 2; do
		run curl -s --max-time 0.5 "$URL/?gave-up-$i"
		[ "$status" -eq 28 ]
	done
	wait_for 5 eval '[ "$(abandoned)" = 2 ]'
	wait "$slow"
	[ "$(cat "$T/slow")" = "slept 3000 ms" ]
	# The worker served the slow request and nothing else.
	[ "$(workers_served)" = $((base + 1)) ]
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	[ "$(workers_served)" = $((base + 2)) ]
}

@test "a request whose worker dies after taking it, before starting on it, is served by another worker" {
	export PIPEPOOL_DEBUG_CLAIM_DIE=$T/died
	pp_start --workers 2 --debug-routes
	unset PIPEPOOL_DEBUG_CLAIM_DIE
	ng_start
	before=$(pp_workers | sort)
	run curl -s --max-time 10 -D "$T/h" "$URL/debug/claim-die"
	[ "$status" -eq 0 ]
	[ "$output" = "started on by this worker" ]
	grep -q '^HTTP/1.1 200' "$T/h"
	[ -e "$T/died" ]	# the hook did kill one
	log_has 'died before starting on the request it took; it is back in line for another'
	wait_for 5 workers_changed "$before" 2
	# Once started on, a death is a 502 as before.
	[ "$(code "$URL/debug/crash")" = 502 ]
}

# curl's answer to one request: "CODE SECONDS".
code_time() { curl -s --max-time 30 -o /dev/null -w '%{http_code} %{time_total}' "$@"; }

@test "past --timeout the client gets 504 at once, even while its worker cannot be killed yet; its mailbox is taken back once it is gone" {
	pp_start --workers 1 --debug-routes --timeout 1
	ng_start
	w=$(pp_workers)
	# With the master stopped, nobody can kill the worker: the answer
	# must not wait for its death (it used to wait up to 2 s more).
	# The first request relays through the mailbox; nginx keeps its
	# connection, so the second is answered by the worker on it.
	for how in relayed direct; do
		kill -STOP "$PP_PID"
		got=$(code_time "$URL/debug/sleep?ms=20000")
		kill -CONT "$PP_PID"
		echo "$how: $got"
		[ "${got% *}" = 504 ]
		# Never later than --timeout after arrival (1 s), and well
		# before the 2 s the front would have waited for the death.
		awk -v t="${got#* }" 'BEGIN { exit !(t < 1.9) }'
		wait_for 5 gone "$w"
		wait_for 10 pp_has_workers 1
		w=$(pp_workers)
		[ "$(curl -s "$URL/")" = "hello world from another process" ]
	done
	[ "$(grep -c 'took longer than --timeout on GET /debug/sleep; killed it' "$PP_LOG")" -eq 2 ]
	# The worker never wrote on the connection after it was answered.
	! log_has 'wrote on a connection after it was answered'
}

@test "a worker that wakes to find its request answered past --timeout takes no other, and leaves" {
	pp_start --workers 1 --debug-routes --timeout 1
	ng_start
	w=$(pp_workers)
	# Nobody can kill it while the master is stopped: it wakes at 1.5 s
	# to a mailbox the front took back at 1 s.
	kill -STOP "$PP_PID"
	got=$(code_time "$URL/debug/sleep?ms=1500")
	[ "${got% *}" = 504 ]
	wait_for 5 log_has 'lost a request to --timeout; leaving'
	wait_for 5 gone "$w"
	kill -CONT "$PP_PID"
	wait_for 10 pp_has_workers 1
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	! log_has 'broke the dispatch area'
	! log_has 'wrote on a connection after it was answered'
}

metric() { curl -s "$URL/metrics" | sed -n "s/^$1 //p"; }

@test "--queue-target-ms: a slow pool's line holds about the target's worth of work; the rest get 503 with Retry-After at once" {
	pp_start --workers 1 --queue 512 --debug-routes --queue-target-ms 100 \
	    --access-log "$T/access" --access-log-buffer 0
	ng_start
	# One worker, 20 ms a request, 64 clients: without the target the
	# line would stand 63 deep, each request waiting 1.26 s.
	wrk -t2 -c64 -d3s -s "$BATS_TEST_DIRNAME/codes.lua" \
	    "$URL/debug/sleep?ms=20" >"$T/wrk" 2>&1 &
	wrk=$!
	wait_for 5 log_has 'requests have waited over --queue-target-ms 100 for 100 ms'
	# During the spell an arrival is refused at once, told when to retry.
	wait_for 5 eval 'curl -s -D "$T/h" -o "$T/b" "$URL/?during" && grep -q "^HTTP/1.1 503" "$T/h"'
	grep -qi '^Retry-After: 1' "$T/h"
	grep -q 'requests wait longer than --queue-target-ms for a worker' "$T/b"
	wait "$wrk"
	cat "$T/wrk"
	grep -Eq '^codes( (200|503)=[0-9]+)+$' "$T/wrk"
	grep -q ' 503=' "$T/wrk"
	# The requests served waited about the target, not the 1.26 s the
	# standing line would have made them wait: p99 of their total time
	# (the access log's 7th field) under half of that.
	awk '$4 == 200 && $3 ~ /sleep/ { print $7 }' "$T/access" | sort -n >"$T/served"
	n=$(wc -l <"$T/served")
	[ "$n" -ge 50 ]	# the worker was kept busy
	p99=$(sed -n "$(( (n * 99 + 99) / 100 ))p" "$T/served")
	echo "served $n, p99 $p99 ms"
	[ "$p99" -lt 630 ]
	[ "$(metric pipepool_requests_shed_total)" -gt 0 ]
	[ "$(metric pipepool_shed_spells_total)" -ge 1 ]
	# Once the load is gone, the next arrival ends the spell.
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	wait_for 5 log_has 'requests wait under --queue-target-ms 100 again'
}
