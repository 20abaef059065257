#!/usr/bin/env bats
# The core path: nginx -> front -> dispatch queue -> worker, its answers,
# its modes (socket, fd 0, CGI), its options and a clean stop.

load helpers

setup() { pp_tmp; }
teardown() { [ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs; pp_cleanup; }

@test "GET / answers hello from a worker, not from the front" {
	pp_start --workers 2
	ng_start
	run curl -s -D "$T/h" -o "$T/b" "$URL/"
	[ "$status" -eq 0 ]
	grep -q '^HTTP/1.1 200' "$T/h"
	grep -qi '^Content-Type: text/plain; charset=utf-8' "$T/h"
	printf 'hello world from another process\n' | cmp - "$T/b"
	pid=$(tr -d '\r' <"$T/h" | awk -F': ' 'tolower($1)=="x-worker-pid"{print $2}')
	[ -n "$pid" ]
	[ "$pid" != "$PP_FRONT" ]
	[ "$pid" != "$PP_PID" ]
	pp_workers | grep -qx "$pid"
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^pipepool: worker [12]'
}

@test "the log names each lifecycle event with time, level and pid" {
	pp_start --workers 2
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
	grep -Eq '^[0-9T:.-]+Z info pid=[0-9]+ master: listening on unix:' "$PP_LOG"
	grep -Eq 'master: pipepool .* started: 2 workers' "$PP_LOG"
	grep -Eq 'master: worker 1 spawned, pid [0-9]+' "$PP_LOG"
	grep -Eq 'master: worker 2 \(pid [0-9]+\) exited with status 0' "$PP_LOG"
	grep -Eq 'master: stopped$' "$PP_LOG"
}

@test "ps shows each process's role" {
	pp_start --workers 3
	tr '\0' ' ' <"/proc/$PP_PID/cmdline" | grep -q '^pipepool: master'
	tr '\0' ' ' <"/proc/$PP_FRONT/cmdline" | grep -q '^pipepool: front'
	for n in 1 2 3; do
		pp_workers | while read -r w; do tr '\0' ' ' <"/proc/$w/cmdline"; echo; done |
		    grep -q "^pipepool: worker $n"
	done
}

@test "several workers answer 50 requests sent 8 at a time" {
	pp_start --workers 4
	ng_start
	seq 50 | xargs -P 8 -I{} curl -s -D - -o /dev/null "$URL/?n={}" |
	    tr -d '\r' | awk -F': ' 'tolower($1)=="x-worker-pid"{print $2}' >"$T/pids"
	[ "$(wc -l <"$T/pids")" -eq 50 ]
	[ "$(sort -u "$T/pids" | wc -l)" -ge 2 ]
	! grep -qx "$PP_FRONT" "$T/pids" || false
}

@test "HEAD gets the same status and headers and no body" {
	pp_start
	ng_start
	run curl -s -I "$URL/"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^HTTP/1.1 200'
	echo "$output" | grep -qi '^Content-Length: 33'
	echo "$output" | grep -qi '^X-Worker-Pid: [0-9]'
	curl -s -X HEAD -o "$T/b" "$URL/" --max-time 5 || true
	[ ! -s "$T/b" ]
}

@test "any path gets hello; the query string takes no part in routing" {
	pp_start
	ng_start
	[ "$(curl -s "$URL/some/where/else.php")" = "hello world from another process" ]
	[ "$(curl -s "$URL/echo?x=1" -o /dev/null -w '%{http_code}')" = 405 ]
	[ "$(curl -s "$URL/?/echo" )" = "hello world from another process" ]
}

@test "methods other than GET and HEAD on hello get 405 with Allow" {
	pp_start
	ng_start
	run curl -s -D - -o /dev/null -X DELETE "$URL/"
	echo "$output" | grep -q '^HTTP/1.1 405'
	echo "$output" | grep -qi '^Allow: GET, HEAD'
}

@test "POST /echo returns 0 B, 1 B, 64 KiB and 1 MiB binary bodies intact" {
	pp_start
	ng_start
	: >"$T/0"
	printf '\0' >"$T/1"
	head -c 65536 /dev/urandom >"$T/64k"
	head -c 1048576 /dev/urandom >"$T/1m"
	for f in 0 1 64k 1m; do
		curl -s -D "$T/h" -o "$T/out" --data-binary "@$T/$f" \
		    -H 'Content-Type: application/octet-stream' "$URL/echo"
		grep -q '^HTTP/1.1 200' "$T/h"
		grep -qi '^Content-Type: application/octet-stream' "$T/h"
		cmp "$T/$f" "$T/out"
	done
}

@test "a body over --max-body gets 413 without reaching a worker" {
	pp_start --max-body 1000
	ng_start
	head -c 1001 /dev/urandom >"$T/big"
	curl -s -D "$T/h" -o "$T/out" --data-binary "@$T/big" "$URL/echo"
	grep -q '^HTTP/1.1 413' "$T/h"
	! grep -qi '^X-Worker-Pid' "$T/h" || false
	grep -q 'max-body' "$T/out"
	head -c 1000 /dev/urandom >"$T/ok"
	curl -s -o "$T/out" --data-binary "@$T/ok" "$URL/echo"
	cmp "$T/ok" "$T/out"
}

@test "--max-body 0 means no body" {
	pp_start --max-body 0
	ng_start
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/echo")" = 200 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' --data x "$URL/echo")" = 413 ]
}

@test "/echo with other methods gets 405 with Allow: POST" {
	pp_start
	ng_start
	run curl -s -D - -o /dev/null "$URL/echo"
	echo "$output" | grep -q '^HTTP/1.1 405'
	echo "$output" | grep -qi '^Allow: POST'
}

@test "500 requests from 32 parallel clients are all answered correctly" {
	pp_start --workers 4
	ng_start
	seq 500 | xargs -P 32 -I{} curl -s -o "$T/r.{}" -w '%{http_code}\n' "$URL/{}" >"$T/codes"
	[ "$(grep -c '^200$' "$T/codes")" -eq 500 ]
	for i in $(seq 500); do
		[ "$(cat "$T/r.$i")" = "hello world from another process" ] || { echo "bad body $i"; false; }
	done
}

@test "CGI mode answers one request from the shell, through a worker" {
	run env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET \
	    SCRIPT_NAME=/x QUERY_STRING= "$PIPEPOOL_BIN" </dev/null
	[ "$status" -eq 0 ]
	# 200 is CGI's default: no Status line.
	! echo "$output" | grep -q '^Status:' || false
	echo "$output" | grep -q '^Content-Type: text/plain'
	echo "$output" | grep -q '^hello world from another process'
	wpid=$(echo "$output" | tr -d '\r' | awk -F': ' '/^X-Worker-Pid/{print $2}')
	[ -n "$wpid" ]
	printf 'abc\0def' >"$T/in"
	run env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
	    SCRIPT_NAME=/echo CONTENT_LENGTH=7 "$PIPEPOOL_BIN" <"$T/in"
	[ "$status" -eq 0 ]
	! echo "$output" | grep -q '^Status:' || false
	echo "$output" | grep -q '^Content-Type: application/octet-stream'
	run env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=DELETE \
	    SCRIPT_NAME=/ "$PIPEPOOL_BIN" </dev/null
	echo "$output" | grep -q '^Status: 405 Method Not Allowed'
}

@test "fd-0 mode under spawn-fcgi" {
	spawn-fcgi -n -s "$T/pp.sock" -M 0600 -- "$PIPEPOOL_BIN" --allow-root --workers 2 2>"$T/pp.log" &
	PP_PID=$!
	PP_SOCK=$T/pp.sock PP_LOG=$T/pp.log
	wait_for 10 grep -q 'listening on the socket on fd 0' "$PP_LOG"
	wait_for 10 pp_has_workers 2
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
}

@test "with no socket and no CGI environment it exits 64 naming --listen" {
	run env -i PATH="$PATH" "$PIPEPOOL_BIN" --allow-root </dev/null
	[ "$status" -eq 64 ]
	[ "${#lines[@]}" -eq 1 ]
	echo "$output" | grep -q -- '--listen'
}

@test "each bad option value exits 64 with one line naming it" {
	bad() {
		run "$PIPEPOOL_BIN" --allow-root --listen "unix:$T/x.sock" "$@"
		[ "$status" -eq 64 ] || { echo "status $status for $*: $output"; return 1; }
		[ "${#lines[@]}" -eq 1 ] || { echo "lines for $*: $output"; return 1; }
		echo "$output" | grep -q -- "${1%%=*}" || { echo "no name for $*: $output"; return 1; }
	}
	bad --workers 0
	bad --workers 1025
	bad --workers abc
	bad --workers=-1
	bad --max-body -1
	bad --max-body 1x
	bad --timeout 0
	bad --timeout -2
	bad --timeout abc
	bad --read-timeout 0
	bad --grace nan
	bad --queue 70000
	bad --max-requests -3
	bad --socket-mode 999
	bad --sync sometimes
	bad --sched fifo
	bad --cpu-affinity 1-x
	bad --cpu-affinity 3-1
	bad --worker-rlimit-as 18446744073709551615
	bad --worker-rlimit-as 72057594037927937
	bad --frobnicate
	bad --workers
	bad --cpu-affinity 1023	# a CPU list of no CPU this machine has
	bad --socket-owner no-such-user-here
	bad --socket-group no-such-group-here
	# --listen comes first here, so "bad" finds its name in the line.
	lbad() {
		run "$PIPEPOOL_BIN" --allow-root --listen "$1"
		[ "$status" -eq 64 ] || { echo "status $status for $1: $output"; return 1; }
		[ "${#lines[@]}" -eq 1 ] || { echo "lines for $1: $output"; return 1; }
		echo "$output" | grep -q -- '--listen' || { echo "no name for $1: $output"; return 1; }
	}
	lbad garbage
	lbad unix:relative/path
	lbad "unix:/$(head -c 200 /dev/zero | tr '\0' a)"
	lbad :0
	lbad 127.0.0.1:65536
	lbad '[::1:80'
	touch "$T/file"
	lbad "unix:$T/file"		# exists and is no socket
	[ -f "$T/file" ]
	[ ! -e "$T/x.sock" ]
}

@test "--worker-rlimit-as: the largest value does not wrap; workers serve under it" {
	# 2^56 plus the dispatch area, well below RLIM_INFINITY: never a sum
	# that wraps to a limit smaller than the worker's own mapping.
	pp_start --workers 1 --worker-rlimit-as 72057594037927936
	w=$(pp_workers)
	lim=$(awk '/^Max address space/{print $4}' "/proc/$w/limits")
	echo "limit $lim"
	[ "$lim" != unlimited ]
	[ "${#lim}" -eq 17 ] && [[ $lim > 72057594037927936 ]]
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
}

@test "long options take both --opt value and --opt=value; --help and --version" {
	run "$PIPEPOOL_BIN" --help
	[ "$status" -eq 0 ]
	echo "$output" | grep -q -- '--workers N'
	echo "$output" | grep -q -- '--max-body BYTES'
	run "$PIPEPOOL_BIN" --version
	[ "$status" -eq 0 ]
	echo "$output" | grep -Eq '^pipepool [0-9]+\.[0-9]+'
	pp_start --workers=3 --max-body=10
	grep -q 'started: 3 workers, max body 10,' "$PP_LOG"
}

@test "--listen HOST:PORT and :PORT serve over TCP" {
	port=$(free_port)
	pp_start --listen "127.0.0.1:$port"
	PP_SOCK=
	grep -q "listening on 127.0.0.1:$port" "$PP_LOG"
	# A port in use is no bad value: exit 1 with the reason.
	run "$PIPEPOOL_BIN" --allow-root --listen "127.0.0.1:$port"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q -- "--listen: 127.0.0.1:$port: Address already in use"
	ng_start "127.0.0.1:$port"
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	pp_stop
	port2=$(free_port)
	pp_start --listen ":$port2"
	grep -q "listening on :$port2" "$PP_LOG"
}

@test "--cpu-affinity puts every process on those CPUs" {
	pp_start --cpu-affinity 0
	for p in "$PP_PID" $(pgrep -P "$PP_PID"); do
		grep -Eq '^Cpus_allowed_list:[[:space:]]+0$' "/proc/$p/status"
	done
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
}

# The policy is field 41 of /proc/PID/task/TID/stat (3: SCHED_BATCH,
# 0: SCHED_OTHER); the command name (field 2) may hold spaces.
policies() {
	local p t
	for p in "$PP_PID" $(pgrep -P "$PP_PID"); do
		for t in /proc/"$p"/task/*/stat; do
			sed 's/^.*) //' "$t" | awk '{ print $39 }'
		done
	done | sort | uniq -c
}

@test "--sched batch (the default) puts every process and thread under SCHED_BATCH; normal does not" {
	pp_start
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	policies
	# master, front (its threads too), workers, store: all batch
	[ "$(policies | awk '$2 != 3' | wc -l)" -eq 0 ]
	[ "$(policies | awk '$2 == 3 { print $1 }')" -ge 6 ]
	pp_stop
	pp_start --sched normal
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	[ "$(policies | awk '$2 != 0' | wc -l)" -eq 0 ]
	[ "$(policies | awk '$2 == 0 { print $1 }')" -ge 6 ]
}

@test "a unix socket gets mode 0660 unless --socket-mode; a live one is not stolen" {
	pp_start
	[ "$(stat -c %a "$T/pp.sock")" = 660 ]
	run "$PIPEPOOL_BIN" --allow-root --listen "unix:$T/pp.sock"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q 'in use'
	pp_alive
	pp_stop
	pp_start --socket-mode 0600
	[ "$(stat -c %a "$T/pp.sock")" = 600 ]
}

@test "refuses to run as root without --user or --allow-root" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	run "$PIPEPOOL_BIN" --listen "unix:$T/x.sock"
	[ "$status" -eq 64 ]
	echo "$output" | grep -q -- '--user'
	echo "$output" | grep -q -- '--allow-root'
	[ ! -e "$T/x.sock" ]
}

@test "a clean stop leaves no process, pid or socket behind" {
	pp_start --workers 3
	ng_start
	curl -s "$URL/" >/dev/null
	kids=$(pgrep -P "$PP_PID")
	[ "$(echo "$kids" | wc -w)" -eq 5 ]	# front, 3 workers, store
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
	[ ! -e "$T/pp.sock" ]
	# Each child's end is logged as a stop, not as an ordered kill.
	[ "$(grep -c 'exited with status 0 (stopped at shutdown)' "$PP_LOG")" -eq 5 ]
	! grep -q "on the front's request" "$PP_LOG" || false
	for k in $kids; do
		if kill -0 "$k" 2>/dev/null; then echo "left running: $k"; false; fi
	done
}

# fcgiraw (tests/tools/fcgiraw.c), the raw FastCGI client, built into $T.
fcgiraw_build() {
	FCGIRAW=$T/fcgiraw
	cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -o "$FCGIRAW" \
	    "$REPO/tests/tools/fcgiraw.c"
}

@test "a client dripping bytes after a request without keep-conn is dropped and holds no thread" {
	local ms
	fcgiraw_build
	pp_start --threads 1 --read-timeout 1
	"$FCGIRAW" "unix:$PP_SOCK" drip 10 >"$T/drip" 2>&1 &
	local drip=$!
	wait_for 5 grep -q 'drip: request: END_REQUEST' "$T/drip"
	# The only thread is free for another client at once (libfcgi's
	# lingering close held it for 2 s after each byte).
	run "$FCGIRAW" "unix:$PP_SOCK" good
	echo "$output"
	[ "$status" -eq 0 ]
	ms=$(echo "$output" | sed -n 's/^good: END_REQUEST.* after \([0-9]*\) ms;.*/\1/p')
	[ -n "$ms" ]
	[ "$ms" -le 2000 ]
	wait "$drip"
	cat "$T/drip"
	ms=$(sed -n 's/^closed after \([0-9]*\) ms.*/\1/p' "$T/drip")
	[ -n "$ms" ]
	[ "$ms" -le 2000 ]
}

@test "a missing, empty or negative CONTENT_LENGTH (Caddy's -1) reads the body to its end, within --max-body" {
	fcgiraw_build
	pp_start --max-body 100000
	head -c 70000 /dev/urandom >"$T/body"
	for cl in -1 none ""; do
		"$FCGIRAW" "unix:$PP_SOCK" length /echo "$cl" "$T/body" >"$T/out"
		# 200 carries no Status line; the head ends at the first blank line.
		! grep -qa '^Status:' "$T/out" || false
		tail -c 70000 "$T/out" | cmp - "$T/body"
		"$FCGIRAW" "unix:$PP_SOCK" length /kv/k "$cl" "$T/body" >"$T/out"
		grep -qa '^Status: 20[14] ' "$T/out"
		"$FCGIRAW" "unix:$PP_SOCK" good /kv/k >"$T/out" 2>/dev/null || true
		tail -c 70000 "$T/out" | cmp - "$T/body"
	done
	head -c 100001 /dev/urandom >"$T/big"
	for p in /echo /kv/k; do
		"$FCGIRAW" "unix:$PP_SOCK" length "$p" -1 "$T/big" >"$T/out"
		grep -qa '^Status: 413' "$T/out"
	done
	"$FCGIRAW" "unix:$PP_SOCK" length /echo -x "$T/body" >"$T/out"
	grep -qa '^Status: 400' "$T/out"
	grep -qa 'CONTENT_LENGTH is not a number' "$T/out"
}

@test "a path with %0A and %1B in it is logged escaped, on one line" {
	fcgiraw_build
	pp_start --slow 50
	# As nginx passes it, decoded: "/a%0Ab%1Bc%5Cd".
	"$FCGIRAW" "unix:$PP_SOCK" slowbody $'/a\nb\x1bc\\d' 200 >"$T/out"
	wait_for 5 grep -q 'slow request: POST ' "$PP_LOG"
	cat "$PP_LOG"
	[ "$(grep -c 'slow request: POST ' "$PP_LOG")" -eq 1 ]
	grep -qF 'slow request: POST /a\x0ab\x1bc\x5cd took' "$PP_LOG"
	# Every line is a log line: nothing was forged.
	! grep -qvE '^[0-9T:.-]+Z [a-z]+ pid=[0-9]+ [a-z0-9 ]+: ' "$PP_LOG" || false
	! grep -q $'\x1b' "$PP_LOG" || false
}

@test "a request that starts arriving on an idle connection gets its own --read-timeout" {
	fcgiraw_build
	pp_start --read-timeout 3
	# Idle 1.5 s, then 2 s to send the request: 3.5 s in all, past
	# --read-timeout, but the request itself took 2 s.
	run "$FCGIRAW" "unix:$PP_SOCK" late 1500 2000
	echo "$output"
	[ "$status" -eq 0 ]
	! grep -q 'took over --read-timeout' "$PP_LOG" || false
}

@test "a request whose params pass 2 KiB, arriving in pieces, is answered whole" {
	fcgiraw_build
	pp_start
	# The front reads the first 2 KiB of a request itself and peeks at
	# the rest (fcgi/conn.c); 120 params (4.6 KiB) in 8 pieces over
	# 700 ms cross that line mid-arrival.  fcgiraw exits 0 only for
	# hello, so a byte lost or doubled where libfcgi takes over fails.
	run "$FCGIRAW" "unix:$PP_SOCK" late 0 700 120
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *'hello world from another process'* ]]
	! grep -q 'dropped a FastCGI connection' "$PP_LOG" || false
}
