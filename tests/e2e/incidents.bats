#!/usr/bin/env bats
# Incidents: each kind of fault leaves one in /status (JSON and the HTML
# page) with its time, the worker's pid, the request line it held and
# what the client got, and a count by kind in /metrics.

load helpers

setup() { pp_tmp; }
teardown() { [ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs; pp_cleanup; }

# incidents_hold PY: the check PY (a python expression over inc, the
# list of incidents, and by(kind), those of a kind) holds on /status now.
incidents_hold() {
	curl -s -o "$T/s.json" "$URL/status" &&
	    python3 -c 'import json,sys
inc = json.load(open(sys.argv[1]))["incidents"]
by = lambda k: [i for i in inc if i["kind"] == k]
sys.exit(0 if eval(sys.argv[2]) else 1)' "$T/s.json" "$1"
}

metric() { curl -s "$URL/metrics" | sed -n "s/^$1 //p"; }

@test "each kind of fault leaves an incident with the worker's pid, the request line it held and what the client got" {
	pp_start --workers 2 --debug-routes --timeout 2 --queue 0
	ng_start
	before=$(pp_workers | tr '\n' ,)
	[ "$(code "$URL/debug/crash?who=c")" = 502 ]
	wait_for 10 pp_has_workers 2
	[ "$(code "$URL/debug/garbage?who=g")" = 502 ]
	wait_for 10 pp_has_workers 2
	[ "$(code "$URL/debug/sleep?ms=5000&who=t")" = 504 ]
	wait_for 10 pp_has_workers 2
	# Both workers busy and no room in line: 503, an overload burst.
	for i in 1 2; do
		curl -s -o /dev/null "$URL/debug/sleep?ms=1500&who=busy$i" 3>&- &
		eval "busy$i=\$!"
	done
	wait_for 5 eval '[ "$(curl -s "$URL/status" | grep -o "\"state\":\"busy\"" | wc -l)" -ge 2 ]'
	[ "$(code "$URL/?who=o")" = 503 ]
	wait "$busy1" "$busy2"
	kill -HUP "$PP_PID"
	wait_for 10 incidents_hold 'by("reload")'
	cat "$T/s.json"
	# The crash: the client's 502, the request line, the worker that
	# held it, which the master saw die by its signal.
	incidents_hold "[(i['request'], i['status']) for i in by('crash')] == [('GET /debug/crash?who=c', 502)] and str(by('crash')[0]['pid']) in '$before'.split(',')"
	incidents_hold "any(i['pid'] == by('crash')[0]['pid'] and 'signal' in i['what'] for i in by('exit'))"
	# (nginx may try a request again on a new connection when the
	# first broke: each try is one.)
	incidents_hold "by('malformed') and all((i['request'], i['status']) == ('GET /debug/garbage?who=g', 502) and i['pid'] > 0 for i in by('malformed'))"
	incidents_hold "[(i['request'], i['status']) for i in by('timeout')] == [('GET /debug/sleep?ms=5000&who=t', 504)] and by('timeout')[0]['pid'] > 0"
	incidents_hold "[(i['request'], i['status']) for i in by('overload')] == [('GET /?who=o', 503)]"
	incidents_hold "'2 to 2 workers' in by('reload')[0]['what']"
	# Newest first.
	incidents_hold 'all(a["time_unix_ms"] >= b["time_unix_ms"] for a, b in zip(inc, inc[1:]))'
	for k in crash timeout overload reload; do
		[ "$(metric "pipepool_incidents_total{kind=\"$k\"}")" = 1 ]
	done
	[ "$(metric 'pipepool_incidents_total{kind="malformed"}')" -ge 1 ]
	[ "$(metric 'pipepool_incidents_total{kind="exit"}')" -ge 1 ]
	# The HTML page lists them too.
	curl -s -o "$T/s.html" "$URL/status?html"
	grep -q '<table id="incidents">' "$T/s.html"
	grep -q '<td class="l">crash</td><td>[0-9]*</td><td class="l">GET /debug/crash?who=c</td><td>502</td>' "$T/s.html"
	grep -q '<td class="l">GET /debug/sleep?ms=5000&amp;who=t</td><td>504</td>' "$T/s.html"
}

@test "a worker that keeps dying at start leaves back-off incidents" {
	PIPEPOOL_DEBUG_FAIL_AT_START=1 "$PIPEPOOL_BIN" --allow-root --debug-routes \
	    --listen "unix:$T/pp.sock" --db "$T/pp.db" --workers 1 2>"$T/pp.log" &
	PP_PID=$! PP_LOG=$T/pp.log PP_SOCK=$T/pp.sock
	wait_for 10 grep -q 'listening on' "$PP_LOG"
	ng_start
	wait_for 10 incidents_hold 'len(by("backoff")) >= 2'
	cat "$T/s.json"
	incidents_hold "'worker 1 died' in by('backoff')[0]['what'] and 'respawning in' in by('backoff')[0]['what']"
	incidents_hold 'len(by("exit")) >= 2'
	[ "$(metric 'pipepool_incidents_total{kind="backoff"}')" -ge 2 ]
}

@test "a refused reload is an incident, and says why" {
	printf 'workers = 2\n' >"$T/pp.conf"
	pp_start --config "$T/pp.conf"
	ng_start
	printf 'workers = many\n' >"$T/pp.conf"
	kill -HUP "$PP_PID"
	wait_for 10 incidents_hold 'by("reload")'
	cat "$T/s.json"
	incidents_hold "by('reload')[0]['what'].startswith('refused: ') and 'workers' in by('reload')[0]['what']"
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
}
