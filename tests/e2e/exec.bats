#!/usr/bin/env bats
# --exec "PROGRAM ARGS": each worker runs one long-running program and
# hands it requests over two pipes (conf/examples/PROTOCOL.md).  Through
# a real nginx, with conf/examples/hello_wsgi.py as the program: what
# reaches it, what it answers, and every fault it can commit.
# (Named .pending until the exec adapter is wired into the worker; rename
# to exec.bats then.)

load helpers

setup() { pp_tmp; }
teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs
	[ -z "${WRK:-}" ] || { kill "$WRK" 2>/dev/null; wait "$WRK" 2>/dev/null; } || true
	pp_cleanup
}

APP="python3 $REPO/conf/examples/hello_wsgi.py"
HELLO="hello world from another process"

# --max-time: a request the server never answers fails the test, not hangs it.
# The program's own pid, as it says (one worker: always the same program).
app_pid() { curl -s --max-time 10 "$URL/pid"; }
# The programs: the children of pipepool's workers.
pp_programs() { local w; for w in $(pp_workers); do pgrep -P "$w"; done; }
pp_nprograms() { pp_programs | wc -l; }

@test "exec: the examples speak the protocol on their own (exec_drive.py)" {
	run python3 "$REPO/tests/tools/exec_drive.py" --big-mb 20 -- $APP
	echo "$output"
	[ "$status" -eq 0 ]
	cc -O2 -o "$T/hello_exec" "$REPO/conf/examples/hello_exec.c"
	run python3 "$REPO/tests/tools/exec_drive.py" \
	    --checks ready,hello,sequence,echo,echo0,eof -- "$T/hello_exec"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "exec: each worker runs one program, which answers hello" {
	pp_start --workers 2 --exec "$APP"
	ng_start
	run curl -s -D "$T/h" -o "$T/b" "$URL/some/where"
	[ "$status" -eq 0 ]
	grep -q '^HTTP/1.1 200' "$T/h"
	grep -qi '^Content-Type: text/plain; charset=utf-8' "$T/h"
	printf '%s\n' "$HELLO" | cmp - "$T/b"
	wait_for 5 eval '[ "$(pp_nprograms)" -eq 2 ]'
	for p in $(pp_programs); do
		tr '\0' ' ' <"/proc/$p/cmdline" | grep -q 'hello_wsgi.py'
	done
	grep -Eq 'exec: worker 1 runs python3 .*hello_wsgi.py \(pid [0-9]+\)' "$PP_LOG"
	grep -Eq 'exec: worker 2 runs python3 .*hello_wsgi.py \(pid [0-9]+\)' "$PP_LOG"
}

@test "exec: the program gets fds 0-4 only, PIPEPOOL_* and its worker's process group" {
	pp_start --workers 2 --exec "$APP"
	# Each program has said READY (the log line comes after it), so it
	# is past exec and its start-up: look at it only then.
	wait_for 20 sh -c '[ "$(grep -c "exec: worker [1-9][0-9]* runs" \
	    "$1")" -ge 2 ]' sh "$PP_LOG"
	for w in $(pp_workers); do
		p=$(pgrep -P "$w")
		[ "$(ls "/proc/$p/fd" | sort -n | tr '\n' ' ')" = "0 1 2 3 4 " ]
		[ "$(readlink "/proc/$p/fd/0")" = /dev/null ]
		readlink "/proc/$p/fd/1" | grep -q '^pipe:'
		tr '\0' '\n' <"/proc/$p/environ" | grep -qx 'PIPEPOOL_REQUEST_FD=3'
		tr '\0' '\n' <"/proc/$p/environ" | grep -qx 'PIPEPOOL_REPLY_FD=4'
		n=$(tr '\0' ' ' <"/proc/$w/cmdline" | sed 's/^pipepool: worker \([0-9]*\).*/\1/')
		tr '\0' '\n' <"/proc/$p/environ" | grep -qx "PIPEPOOL_WORKER=$n"
		[ "$(ps -o pgid= -p "$p")" = "$(ps -o pgid= -p "$w")" ]
	done
}

@test "exec: request headers and params reach the program; its status and headers reach the client" {
	pp_start --workers 1 --timeout 7 --exec "$APP"
	ng_start
	curl -s -D "$T/h" -o "$T/b" -H 'X-Test: abc 1' "$URL/headers?status=203&q=%20x"
	grep -q '^HTTP/1.1 203' "$T/h"
	grep -qi '^X-App: exec' "$T/h"
	grep -qx 'HTTP_X_TEST=abc 1' "$T/b"
	grep -qx 'REQUEST_METHOD=GET' "$T/b"
	grep -qx 'PATH_INFO=/headers' "$T/b"
	grep -qx 'PIPEPOOL_PATH=/headers' "$T/b"
	grep -qx 'QUERY_STRING=status=203&q=%20x' "$T/b"
	grep -qx 'REMOTE_ADDR=127.0.0.1' "$T/b"
	grep -qx "SERVER_PORT=$NG_PORT" "$T/b"
	grep -qx 'pipepool.worker=1' "$T/b"
	# The deadline: --timeout from the request's arrival.
	d=$(sed -n 's/^pipepool.deadline_ms=//p' "$T/b")
	[ "$d" -gt 5000 ] && [ "$d" -le 7000 ]
	# Another method and a body reach it too.
	curl -s -o "$T/b" -X PUT --data-binary 'xyz' -H 'Content-Type: text/x-test' "$URL/headers"
	grep -qx 'REQUEST_METHOD=PUT' "$T/b"
	grep -qx 'CONTENT_TYPE=text/x-test' "$T/b"
	grep -qx 'CONTENT_LENGTH=3' "$T/b"
}

@test "exec: 0 B, 1 B, 64 KiB and 1 MiB binary bodies come back byte for byte" {
	pp_start --exec "$APP"
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

@test "exec: a 100 MiB answer streams through whole, never held whole by a worker" {
	pp_start --workers 1 --exec "$APP"
	ng_start
	want=$(python3 -c "import sys; sys.path.insert(0, '$REPO/tests/tools'); import exec_drive; print(exec_drive.big_sha(100))")
	got=$(curl -s --max-time 60 "$URL/big?mb=100" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ]
	w=$(pp_workers)
	hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$w/status")
	echo "worker VmHWM $hwm kB"
	[ "$hwm" -lt 65536 ]
	[ "$(curl -s "$URL/")" = "$HELLO" ]
}

@test "exec: an exception in the program is a 500 with the reason; the program goes on" {
	pp_start --workers 1 --exec "$APP"
	ng_start
	p=$(app_pid)
	run curl -s -D "$T/h" "$URL/error"
	grep -q '^HTTP/1.1 500' "$T/h"
	echo "$output" | grep -q 'the application raised RuntimeError'
	wait_for 2 grep -Eq "exec\[$p\] stderr: RuntimeError: hello_wsgi fails on purpose" "$PP_LOG"
	[ "$(app_pid)" = "$p" ]
	[ "$(curl -s "$URL/")" = "$HELLO" ]
}

@test "exec: a program that crashes mid-request: 502, its worker respawned with a new program" {
	pp_start --workers 1 --exec "$APP"
	ng_start
	p=$(app_pid)
	before=$(pp_workers)
	[ "$(code "$URL/crash")" = 502 ]
	wait_for 5 grep -Eq "exec: python3 \(pid $p\) exited with status 3 while answering a request" "$PP_LOG"
	wait_for 5 grep -Eq 'worker 1 \(pid [0-9]+\) exited with status 2' "$PP_LOG"
	wait_for 10 workers_changed "$before"
	[ "$(curl -s "$URL/")" = "$HELLO" ]
	[ "$(app_pid)" != "$p" ]
	gone "$p"
}

@test "exec: a program that hangs: 504 within --timeout, killed with its worker's process group" {
	pp_start --workers 1 --timeout 1 --exec "$APP"
	ng_start
	p=$(app_pid)
	before=$(pp_workers)
	t0=$(date +%s%N)
	[ "$(code "$URL/hang")" = 504 ]
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	echo "504 after $ms ms"
	[ "$ms" -lt 3000 ]
	wait_for 5 gone "$p"
	wait_for 10 workers_changed "$before"
	[ "$(curl -s "$URL/")" = "$HELLO" ]
	[ "$(app_pid)" != "$p" ]
}

@test "exec: a malformed frame: 502, the program and its worker killed and replaced" {
	pp_start --workers 1 --exec "$APP"
	ng_start
	p=$(app_pid)
	before=$(pp_workers)
	[ "$(code "$URL/garbage")" = 502 ]
	wait_for 5 grep -Eq "exec: python3 \(pid $p\): malformed frame \(type 9\); killing it" "$PP_LOG"
	wait_for 5 gone "$p"
	wait_for 10 workers_changed "$before"
	[ "$(curl -s "$URL/")" = "$HELLO" ]
}

@test "exec: a program that dies between requests is replaced before a request meets it" {
	pp_start --workers 1 --exec "$APP"
	ng_start
	p=$(app_pid)
	before=$(pp_workers)
	kill -KILL "$p"
	wait_for 5 grep -Eq "exec: python3 \(pid $p\) was killed by signal 9 \(Killed\) between requests" "$PP_LOG"
	wait_for 10 workers_changed "$before"
	wait_for 10 eval '[ "$(pp_nprograms)" -eq 1 ]'
	[ "$(code "$URL/")" = 200 ]
}

@test "exec: what the program prints goes to the log line by line, never to a client" {
	pp_start --workers 1 --exec "$APP"
	ng_start
	curl -s -o "$T/b" "$URL/print"
	printf 'printed\n' | cmp - "$T/b"
	wait_for 2 grep -Eq 'exec\[[0-9]+\] stdout: a stray print on stdout$' "$PP_LOG"
	wait_for 2 grep -Eq 'exec\[[0-9]+\] stderr: a stray print on stderr$' "$PP_LOG"
	[ "$(curl -s "$URL/")" = "$HELLO" ]
}

@test "exec: a program that cannot start stops pipepool's start with exit 1 and the reason" {
	pp_start_fails --exec "$T/no-such-program --flag"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "exec: cannot run $T/no-such-program: No such file or directory"
	pp_start_fails --exec "no-such-program-in-path"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q 'exec: no-such-program-in-path: not found in PATH'
	pp_start_fails --exec "python3 $T/missing.py"
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "stderr: .*can't open file '$T/missing.py'"
	echo "$output" | grep -Eq 'exec: python3 \(pid [0-9]+\) exited with status 2 before it was READY'
	pp_start_fails --exec "true"
	[ "$status" -eq 1 ]
	echo "$output" | grep -Eq 'exec: true \(pid [0-9]+\) exited with status 0 before it was READY'
	pp_start_fails --exec 'python3 "unbalanced'
	[ "$status" -eq 1 ]
	echo "$output" | grep -q 'unbalanced quote'
	pp_start_fails --exec 'python3 app.py | tee x'
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "sh -c"
	[ ! -e "$T/x" ]
}

@test "exec: SIGHUP restarts the programs gracefully: 5 reloads under wrk, no errors, no non-2xx" {
	pp_start --workers 2 --exec "$APP"
	ng_start
	wrk -t2 -c32 -d8s -s "$BATS_TEST_DIRNAME/codes.lua" "$URL/" >"$T/wrk" 2>&1 &
	WRK=$!
	for i in 1 2 3 4 5; do
		kill -HUP "$PP_PID"
		wait_for 10 log_count_ge 'reloading' "$i"
		wait_for 10 log_count_ge 'exec: worker [12] runs' $((2 + 2 * i))
		wait_for 10 pp_has_workers 2
	done
	wait "$WRK"
	WRK=
	cat "$T/wrk"
	! grep -q 'Non-2xx' "$T/wrk" || false
	! grep -q 'Socket errors' "$T/wrk" || false
	grep -Eq '^codes 200=[0-9]+$' "$T/wrk"
	# The old programs left when asked (their request pipe's end), in time.
	wait_for 5 log_count_ge 'exec: python3 (pid [0-9]*) exited with status 0$' 10
	! log_has 'did not exit within' || false
	wait_for 5 eval '[ "$(pp_nprograms)" -eq 2 ]'
}

@test "exec: a reload whose program fails to start keeps the old programs serving" {
	cp "$REPO/conf/examples/hello_wsgi.py" "$REPO/conf/examples/pipepool_exec.py" "$T/"
	pp_start --workers 2 --exec "python3 $T/hello_wsgi.py"
	ng_start
	old=$(pp_programs | sort)
	printf 'import sys\nprint("broken on purpose", file=sys.stderr)\nsys.exit(5)\n' >"$T/new.py"
	mv "$T/new.py" "$T/hello_wsgi.py"
	kill -HUP "$PP_PID"
	wait_for 10 grep -Eq 'exec: python3 \(pid [0-9]+\) exited with status 5 before it was READY' "$PP_LOG"
	log_has 'stderr: broken on purpose'
	for i in $(seq 20); do [ "$(curl -s "$URL/")" = "$HELLO" ]; done
	[ "$(pp_programs | sort)" = "$old" ]
	# A good program again: the next reload takes it.
	cp "$REPO/conf/examples/hello_wsgi.py" "$T/new.py"
	mv "$T/new.py" "$T/hello_wsgi.py"
	kill -HUP "$PP_PID"
	wait_for 15 eval '[ "$(pp_programs | sort)" != "$old" ] && [ "$(pp_nprograms)" -eq 2 ]'
	[ "$(curl -s "$URL/")" = "$HELLO" ]
}

@test "exec: the C example serves hello and echo" {
	cc -O2 -o "$T/hello_exec" "$REPO/conf/examples/hello_exec.c"
	pp_start --exec "$T/hello_exec" --max-body 4194304
	ng_start
	[ "$(curl -s "$URL/")" = "$HELLO" ]
	head -c 3000000 /dev/urandom >"$T/3m"
	curl -s -o "$T/out" --data-binary "@$T/3m" "$URL/echo"
	cmp "$T/3m" "$T/out"
}

@test "exec: programs leave with pipepool's stop; none is left behind" {
	pp_start --workers 3 --exec "$APP"
	ng_start
	[ "$(curl -s "$URL/")" = "$HELLO" ]
	progs=$(pp_programs)
	[ "$(echo "$progs" | wc -l)" -eq 3 ]
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
	for p in $progs; do wait_for 2 gone "$p"; done
}
