#!/usr/bin/env bats
# The pool's size and its workers' lives: recycling a worker that grew
# (--worker-max-memory), with no request failed.

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
