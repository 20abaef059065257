#!/usr/bin/env bats
# The counters' trust boundary: a worker cannot write the master's or the
# front's counters (the kernel refuses it), and what it reports of itself
# in its own page is read once and clamped by the front.

load helpers

setup() { pp_tmp; }
teardown() { [ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs; pp_cleanup; }

# The value of the /metrics sample named $1 in $T/m.txt.
val() { awk -v k="$1" '$1 == k { print $2 }' "$T/m.txt"; }

@test "every request counted exactly, direct answers included" {
	pp_start --workers 2
	ng_start
	curl -s -o "$T/m.txt" "$URL/metrics"
	a1=$(val pipepool_requests_accepted_total)
	ok1=$(val 'pipepool_requests_total{code="200"}')
	# Every request but this very one is counted.
	[ "$(val pipepool_request_duration_seconds_count)" -eq $((a1 - 1)) ]
	q1=$(val pipepool_queue_wait_seconds_count)
	# nginx keeps its connections: from the second request on, a worker
	# answers on nginx's connection itself and counts it in its page.
	for i in $(seq 20); do [ "$(code "$URL/?n=$i")" = 200 ]; done
	curl -s -o "$T/m.txt" "$URL/metrics"
	cat "$T/m.txt"
	[ "$(val pipepool_requests_accepted_total)" -eq $((a1 + 21)) ]
	[ "$(val 'pipepool_requests_total{code="200"}')" -eq $((ok1 + 21)) ]
	[ "$(val pipepool_request_duration_seconds_count)" -eq $((a1 + 20)) ]
	# Every one of them waited in line for a worker, and was counted.
	[ "$(val pipepool_queue_wait_seconds_count)" -eq $((q1 + 20)) ]
	curl -s -o "$T/s.json" "$URL/status"
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
c = j["counters"]
assert c["accepted"] == int(sys.argv[2]) + 22, c
assert c["completed"] == c["accepted"] - 1, c
assert sum(w["requests"] for w in j["workers"] if w["kind"] == "worker") >= 20, j' "$T/s.json" "$a1"
}

@test "a worker that scribbles on the counters dies of SIGSEGV and forges nothing" {
	pp_start --workers 1 --debug-routes
	ng_start
	for i in $(seq 5); do [ "$(code "$URL/?n=$i")" = 200 ]; done
	# Its own page gets 0xff everywhere (allowed), then mprotect must fail
	# and the store into the global region kill it.
	[ "$(code "$URL/debug/scribble-stats")" = 502 ]
	wait_for 2 grep -Eq 'worker 1 \(pid [0-9]+\) killed by signal 11' "$PP_LOG"
	! log_has 'mprotect made the counters writable'
	wait_for 1 pp_has_workers 1
	for i in $(seq 5); do [ "$(code "$URL/?again=$i")" = 200 ]; done
	# Twice more, on relayed and direct requests alike.
	[ "$(code "$URL/debug/scribble-stats")" = 502 ]
	wait_for 1 pp_has_workers 1
	[ "$(code "$URL/debug/scribble-stats")" = 502 ]
	wait_for 1 pp_has_workers 1
	[ "$(code "$URL/")" = 200 ]
	curl -s -o "$T/m.txt" "$URL/metrics"
	cat "$T/m.txt"
	if command -v promtool >/dev/null 2>&1; then
		promtool check metrics <"$T/m.txt"
	fi
	acc=$(val pipepool_requests_accepted_total)
	[ "$acc" -ge 14 ] && [ "$acc" -lt 100 ]
	# No sample beyond what the front itself accepted (a scribbling
	# worker may take credit for a request in flight: + 1 each time);
	# PSS is in bytes, and the master's reading of /proc, not a page's.
	awk -v max=$((acc + 3)) '!/^#/ && $1 !~ /^pipepool_(start_time_seconds|queue_capacity|(workers|store)_memory_pss_bytes)$/ &&
	    $2 + 0 > max { print "forged: " $0; bad = 1 } END { exit bad }' "$T/m.txt"
	awk '$1 == "pipepool_request_duration_seconds_sum" { exit !($2 < 60) }' "$T/m.txt"
	[ "$(val pipepool_worker_crashes_total)" -eq 3 ]
	curl -s -o "$T/s.json" "$URL/status"
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
c = j["counters"]
assert all(0 <= v <= c["accepted"] + 3 for v in c.values()), c
assert all(w["state"] in ("idle", "busy", "starting") and
    0 <= w["requests"] <= c["accepted"] for w in j["workers"]), j' "$T/s.json"
	[ "$(code "$URL/")" = 200 ]
}

# A worker sleeping in /debug/sleep (clock_nanosleep = 230 on x86_64).
some_worker_sleeps() {
	local w
	for w in $(pp_workers); do
		[ "$(cut -d' ' -f1 "/proc/$w/syscall" 2>/dev/null)" = 230 ] &&
		    return 0
	done
	return 1
}

@test "each status code counted exactly: a 504 from a timeout, a 502 from a crash, a 503 from overload" {
	pp_start --workers 1 --queue 0 --timeout 1 --debug-routes
	ng_start
	curl -s -o "$T/m.txt" "$URL/metrics"
	local b200 b502 b503 b504
	b200=$(val 'pipepool_requests_total{code="200"}')
	b502=$(val 'pipepool_requests_total{code="502"}')
	b503=$(val 'pipepool_requests_total{code="503"}')
	b504=$(val 'pipepool_requests_total{code="504"}')
	local bq
	bq=$(val pipepool_queue_wait_seconds_count)
	[ "$(code "$URL/debug/sleep?ms=3000")" = 504 ]
	wait_for 5 pp_has_workers 1
	[ "$(code "$URL/debug/crash")" = 502 ]
	wait_for 5 pp_has_workers 1
	code "$URL/debug/sleep?ms=700" >"$T/slow.code" &
	local slow=$!
	wait_for 5 some_worker_sleeps
	[ "$(code "$URL/")" = 503 ]
	wait "$slow"
	[ "$(cat "$T/slow.code")" = 200 ]
	curl -s -o "$T/m.txt" "$URL/metrics"
	cat "$T/m.txt"
	promtool check metrics <"$T/m.txt"
	# The first /metrics and the slow request.
	[ "$(val 'pipepool_requests_total{code="200"}')" -eq $((b200 + 2)) ]
	[ "$(val 'pipepool_requests_total{code="502"}')" -eq $((b502 + 1)) ]
	[ "$(val 'pipepool_requests_total{code="503"}')" -eq $((b503 + 1)) ]
	[ "$(val 'pipepool_requests_total{code="504"}')" -eq $((b504 + 1)) ]
	[ "$(val 'pipepool_requests_total{code="5xx"}')" -eq 0 ]
	# Workers took three of them: the 503 never reached one.
	[ "$(val pipepool_queue_wait_seconds_count)" -eq $((bq + 3)) ]
	curl -s -o "$T/s.json" "$URL/status"
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
c = j["status_codes"]
assert c.get("502") == 1 and c.get("503") == 1 and c.get("504") == 1, c
assert j["counters"]["status_5xx"] == 3, j' "$T/s.json"
}

# /status's figure for the oldest request in line.
oldest_wait() {
	curl -s "$URL/status" | python3 -c 'import json,sys
print(json.load(sys.stdin)["queue"]["oldest_wait_ms"])'
}
oldest_wait_ge() { [ "$(oldest_wait)" -ge "$1" ]; }
# For wait_for: looks again at each poll.
oldest_wait_is() { [ "$(oldest_wait)" -eq "$1" ]; }

@test "queue time: the oldest waiting request's age in /status, its wait in the histogram" {
	pp_start --workers 1 --queue 4 --debug-routes
	ng_start
	[ "$(oldest_wait)" -eq 0 ]
	curl -s -o "$T/m.txt" "$URL/metrics"
	local q1 s1
	q1=$(val pipepool_queue_wait_seconds_count)
	s1=$(val 'pipepool_queue_wait_seconds_bucket{le="0.25"}')
	code "$URL/debug/sleep?ms=1500" >"$T/a" &
	local a=$!
	wait_for 5 some_worker_sleeps
	code "$URL/?waits" >"$T/b" &
	local b=$!
	wait_for 5 oldest_wait_ge 300
	wait "$a" "$b"
	[ "$(cat "$T/a")" = 200 ] && [ "$(cat "$T/b")" = 200 ]
	wait_for 2 oldest_wait_is 0
	curl -s -o "$T/m.txt" "$URL/metrics"
	cat "$T/m.txt"
	promtool check metrics <"$T/m.txt"
	[ "$(val pipepool_queue_wait_seconds_count)" -eq $((q1 + 2)) ]
	# The second waited over 0.25 s, the first did not.
	[ "$(val 'pipepool_queue_wait_seconds_bucket{le="0.25"}')" -eq $((s1 + 1)) ]
	awk '$1 == "pipepool_queue_wait_seconds_sum" { exit !($2 >= 0.3 && $2 < 2) }' "$T/m.txt"
}
