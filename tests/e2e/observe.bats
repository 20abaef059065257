#!/usr/bin/env bats
# What operators see of each request: the access log (--access-log).

load helpers

setup() { pp_tmp; }
teardown() { [ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs; pp_cleanup; }

# Check every line of the access log $1: the format README gives, and
# print them as JSON, one object a line, for the test to look at.
parse_log() {
	python3 - "$1" <<'PY'
import json, re, sys
pat = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) "([^" ]+) ([^" ]*)" '
                 r'(\d{3}) (\d+|-) (\d+|-) (\d+) (\d+)$')
for line in open(sys.argv[1], encoding="ascii"):
    m = pat.match(line.rstrip("\n"))
    if not m:
        sys.exit("bad line: %r" % line)
    t, meth, uri, st, b, q, tot, pid = m.groups()
    print(json.dumps({"method": meth, "uri": uri, "status": int(st),
                      "bytes": b, "queue": q, "total": int(tot),
                      "pid": int(pid)}))
PY
}

@test "access log: one line per request, field by field, a %0A in a path escaped" {
	pp_start --workers 1 --debug-routes --access-log "$T/access.log"
	ng_start
	curl -s -o /dev/null "$URL/hello?a=1"
	curl -s -o /dev/null "$URL/bad%0Aline%20x%22q"
	curl -s -o /dev/null "$URL/status"
	curl -s -o /dev/null -X POST --data-binary @/dev/null "$URL/"
	wait_for 5 eval '[ "$(wc -l <"$T/access.log")" -ge 5 ]'	# ng_start's too
	cat "$T/access.log"
	parse_log "$T/access.log" >"$T/parsed"
	w=$(pp_workers)
	python3 - "$T/parsed" "$w" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
w = int(sys.argv[2])
by = {r["uri"]: r for r in rows}
h = by["/hello?a=1"]
assert h["method"] == "GET" and h["status"] == 200 and h["pid"] == w, h
assert h["queue"] != "-" and h["total"] >= 0, h
# The decoded path's newline, space and quote are escaped: one line.
b = by["/bad\\x0aline\\x20x\\x22q"]
assert b["status"] == 200 and b["method"] == "GET", b
s = by["/status"]
assert s["pid"] == 0 and s["queue"] == "-" and int(s["bytes"]) > 100, s
p = [r for r in rows if r["method"] == "POST"][0]
assert p["status"] == 405, p
PY
	! grep -q 'line lost' "$PP_LOG"
}

@test "access log: SIGUSR1 reopens it after logrotate moves it" {
	pp_start --workers 1 --access-log "$T/access.log"
	ng_start
	curl -s -o /dev/null "$URL/before"
	wait_for 5 grep -q '"GET /before"' "$T/access.log"
	mv "$T/access.log" "$T/access.log.1"
	kill -USR1 "$PP_PID"
	# The next line goes to a new file; every line is in one of them.
	curl -s -o /dev/null "$URL/after"
	wait_for 5 grep -q '"GET /after"' "$T/access.log"
	! grep -q '"GET /after"' "$T/access.log.1"
	grep -q '"GET /before"' "$T/access.log.1"
	pp_alive
	[ -n "$(pp_workers)" ]	# no worker died of the signal
}

@test "access log: a disk that fails loses lines, never requests, and counts them" {
	pp_start --workers 1 --access-log /dev/full
	ng_start
	for i in 1 2 3; do
		[ "$(curl -s "$URL/")" = "hello world from another process" ]
	done
	# The buffer goes out within a second: 4 lines or more lost then.
	lost() { curl -s "$URL/metrics" |
	    sed -n 's/^pipepool_access_log_errors_total //p'; }
	wait_for 5 eval '[ "$(lost)" -ge 4 ]'
	wait_for 5 log_has '--access-log: [0-9]* lines\{0,1\} lost (No space left on device)'
	pp_alive
}

@test "access log: unbuffered, each line is written before the next request" {
	pp_start --workers 1 --access-log "$T/access.log" --access-log-buffer 0
	ng_start
	for i in 1 2 3; do
		curl -s -o /dev/null "$URL/n$i"
		# The line is written when the request ends, which can be
		# just after curl has its answer.
		wait_for 5 grep -q "\"GET /n$i\"" "$T/access.log"
	done
	[ "$(grep -c '"GET /n' "$T/access.log")" -eq 3 ]
}

@test "access log: a stopping front writes out what its buffer holds" {
	pp_start --workers 1 --access-log "$T/access.log" --access-log-buffer 1048576
	ng_start
	for i in $(seq 20); do curl -s -o /dev/null "$URL/s$i"; done
	kill -TERM "$PP_PID"
	wait_for 20 eval '! pp_alive'
	[ "$(grep -c '"GET /s' "$T/access.log")" -eq 20 ]
	parse_log "$T/access.log" >/dev/null
}

@test "access log: small buffers handed to the flusher under load lose no line" {
	# 4 KiB holds some fifty lines: 800 requests from 8 clients fill
	# it again and again while the flusher thread writes the other one.
	pp_start --workers 2 --access-log "$T/access.log" --access-log-buffer 4096
	ng_start
	seq 800 | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$URL/h{}" \
		>"$T/codes"
	[ "$(grep -c '^200$' "$T/codes")" -eq 800 ]
	wait_for 10 eval '[ "$(grep -c "\"GET /h" "$T/access.log")" -ge 800 ]'
	parse_log "$T/access.log" >"$T/parsed"
	# Each request once, every line whole.
	[ "$(grep -o '"uri": "/h[0-9]*"' "$T/parsed" | sort -u | wc -l)" -eq 800 ]
	[ "$(grep -c '"uri": "/h[0-9]' "$T/parsed")" -eq 800 ]
	! grep -q 'line lost' "$PP_LOG"
}

@test "no access log unless asked" {
	pp_start --workers 1
	ng_start
	curl -s -o /dev/null "$URL/"
	[ "$(curl -s "$URL/metrics" | sed -n 's/^pipepool_access_log_errors_total //p')" = 0 ]
	! ls "$T" | grep -q access
}
