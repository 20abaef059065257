#!/usr/bin/env bats
#
# hostile.bats: pipepool must survive hostile FastCGI clients.
#
# Each test sends one kind of malformed, abusive or abandoned FastCGI
# traffic straight to pipepool's socket with tests/tools/fcgiraw (no nginx
# in between), then checks that the master is still alive, that the front
# was not replaced (a crashed front is a bug even if the master restarts
# it), and that a well-formed request right after still gets a correct
# answer.  The last test checks that the front's open fd count returns to
# its baseline once all of it is over (no leaked connections).
#
# One server serves the whole file, so the cases also pile up on it.
# PIPEPOOL_BIN picks the binary under test, as in helpers.bash (default
# build/pipepool; tests/run.sh sets it for SAN=1 builds).  PP_SLOW_PATH
# picks the path the slowread test requests (default /; a path with a
# large answer makes it a real back-pressure test).

# TODO: move to helpers.bash.  This file does not load it: its pp_start,
# pp_stop, pp_alive and pp_fds have the same names but start one server
# per test in $T, while this file keeps one server for all its tests,
# checks for leftover processes on stop and runs the server with its cwd
# in $PP_DIR.  Merge the two before adding "load helpers" here.

READ_TIMEOUT=2

pp_log_tail() {
	echo "--- last lines of $PP_LOG ---"
	tail -n 40 "$PP_LOG" 2>/dev/null
	echo "--- end ---"
}

# Is PID a live process (not gone, not a zombie)?
pp_alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) ||
		return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# All descendants of PID, one per line.
pp_descendants() {
	local c
	for c in $(pgrep -P "$1"); do
		echo "$c"
		pp_descendants "$c"
	done
}

# The pid of the front: a descendant of the master whose args begin with
# "pipepool: front".
pp_front_pid() {
	local p
	for p in $(pp_descendants "$PP_PID"); do
		if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null |
		    grep -q '^pipepool: front'; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# Number of open fds of PID.
pp_fds() {
	ls "/proc/$1/fd" 2>/dev/null | wc -l
}

# pp_fds PID once it gives the same number twice 100 ms apart (up to 3 s).
pp_fds_settled() {
	local a b _
	a=$(pp_fds "$1")
	for _ in $(seq 1 30); do
		sleep 0.1
		b=$(pp_fds "$1")
		[ "$a" = "$b" ] && break
		a=$b
	done
	echo "$a"
}

# Find the front (up to 5 s), send it one good request, and record its pid
# and its settled fd count (the baseline) in $PP_DIR/front for the tests
# that follow.  Run at start-up and again when a test finds the front
# replaced, so that one crash fails one test, not all that come after.
front_record() {
	local _ front=
	for _ in $(seq 1 50); do
		front=$(pp_front_pid) && break
		sleep 0.1
	done
	if [ -z "$front" ]; then
		echo "no 'pipepool: front' process under master $PP_PID" >&2
		ps -o pid,ppid,args --ppid "$PP_PID" >&2 || true
		return 1
	fi
	if ! "$FCGIRAW" "unix:$SOCK" good >/dev/null 2>&1; then
		echo "the front $front does not answer a good request" >&2
		return 1
	fi
	echo "$front $(pp_fds_settled "$front")" >"$PP_DIR/front"
}

# Sets FRONT_PID and FRONT_FDS_BASE from $PP_DIR/front.
front_load() {
	read -r FRONT_PID FRONT_FDS_BASE <"$PP_DIR/front"
}

pp_start() {
	local _
	PP_LOG="$PP_DIR/pipepool.log"
	# fd 3 is bats' own: the server must not keep it open.  It runs in
	# $PP_DIR so that files it makes relative to its cwd (the store's
	# default pipepool.db) land there and go with it.
	(cd "$PP_DIR" && exec "$PP_BIN" "$@") >"$PP_LOG" 2>&1 </dev/null 3>&- &
	PP_PID=$!
	export PP_LOG PP_PID
	for _ in $(seq 1 100); do
		if [ -S "$SOCK" ] && grep -q 'listening on' "$PP_LOG"; then
			return 0
		fi
		if ! pp_alive "$PP_PID"; then
			echo "pipepool exited during start-up" >&2
			pp_log_tail >&2
			return 1
		fi
		sleep 0.1
	done
	echo "pipepool not listening on $SOCK after 10 s" >&2
	pp_log_tail >&2
	return 1
}

# SIGTERM the master, wait up to 5 s for it and its children to go; kill
# (by pid) and complain about whatever is left.
pp_stop() {
	local kids p left _
	[ -n "${PP_PID:-}" ] || return 0
	kids=$(pp_descendants "$PP_PID")
	kill -TERM "$PP_PID" 2>/dev/null || true
	for _ in $(seq 1 50); do
		left=
		for p in $PP_PID $kids; do
			pp_alive "$p" && left="$left $p"
		done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	for p in $left; do
		kill -KILL "$p" 2>/dev/null || true
	done
	echo "still running 5 s after SIGTERM, killed:$left" >&2
	return 1
}

setup_file() {
	local repo
	repo=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	export PP_BIN="${PIPEPOOL_BIN:-$repo/build/pipepool}"
	if [ ! -x "$PP_BIN" ]; then
		echo "no server binary at $PP_BIN: build it first" >&2
		return 1
	fi
	# A short directory of our own: sun_path holds only 108 bytes.
	PP_DIR=$(mktemp -d /tmp/pp-hostile.XXXXXX)
	export PP_DIR
	export SOCK="$PP_DIR/pp.sock"
	export FCGIRAW="$BATS_FILE_TMPDIR/fcgiraw"
	cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	    -Wstrict-prototypes -Wmissing-prototypes -O2 -o "$FCGIRAW" \
	    "$repo/tests/tools/fcgiraw.c"

	local args=(--listen "unix:$SOCK" --workers 2
	    --read-timeout "$READ_TIMEOUT")
	if "$PP_BIN" --help 2>&1 | grep -q -- '--allow-root'; then
		args+=(--allow-root)
	fi
	pp_start "${args[@]}"

	front_record
}

teardown_file() {
	local rc=0
	pp_stop || rc=1
	if [ -n "${PP_DIR:-}" ]; then
		rm -rf "$PP_DIR"
	fi
	return "$rc"
}

setup() {
	# The server died in an earlier test: say so instead of a confusing
	# connect error.
	if ! pp_alive "$PP_PID"; then
		echo "master $PP_PID is gone (died in an earlier test)" >&2
		pp_log_tail >&2
		return 1
	fi
	front_load
}

# The server survived the hostile case: the master lives, the front is
# the same process, and a good request right now is answered correctly.
assert_survived() {
	local front
	if ! pp_alive "$PP_PID"; then
		echo "FAIL: master $PP_PID died" >&2
		pp_log_tail >&2
		return 1
	fi
	front=$(pp_front_pid) || front=none
	if [ "$front" != "$FRONT_PID" ]; then
		echo "FAIL: front $FRONT_PID was replaced by $front" \
		    "(it crashed or was restarted)" >&2
		pp_log_tail >&2
		# The next tests judge the new front on their own.
		front_record || true
		return 1
	fi
	run "$FCGIRAW" "unix:$SOCK" good
	if [ "$status" -ne 0 ]; then
		echo "FAIL: good request after the case: exit $status" >&2
		echo "$output" >&2
		pp_log_tail >&2
		return 1
	fi
}

# Run one fcgiraw case; it must have run (exit 0).  Its report is shown
# when the test fails.
raw() {
	run "$FCGIRAW" "unix:$SOCK" "$@"
	echo "fcgiraw $*: exit $status"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "good: a well-formed GET is answered" {
	raw good
	[[ "$output" == *"hello world from another process"* ]]
	assert_survived
}

@test "good --keep 5: five requests on one FCGI_KEEP_CONN connection" {
	raw good /keep --keep 5
	assert_survived
}

@test "post: 1 MiB of random bytes as STDIN" {
	head -c 1048576 /dev/urandom >"$BATS_TEST_TMPDIR/body"
	raw post / "$BATS_TEST_TMPDIR/body"
	assert_survived
}

@test "truncated: half a header, then close" {
	raw truncated
	assert_survived
}

@test "badversion: a request whose headers say version 2" {
	raw badversion
	assert_survived
}

@test "hugelen: header declares 65535 bytes, a few are sent, then close" {
	raw hugelen
	assert_survived
}

@test "random: 64 KiB of /dev/urandom, then close" {
	raw random 65536
	assert_survived
}

@test "novalue: empty value and a name length past the record's end" {
	raw novalue
	assert_survived
}

# Lines of $PP_LOG matching $1, now (for a before/after count).
log_count() { grep -c -- "$1" "$PP_LOG" || true; }

@test "manyparams: 1500 params (45 KiB) are answered; 10000 (288 KiB) are refused with a log line" {
	local before
	raw manyparams 1500
	[[ "$output" == *"hello world from another process"* ]]
	before=$(log_count 'dropped a FastCGI connection: the params do not end within 64 KiB')
	raw manyparams 10000
	[[ "$output" != *"hello world"* ]]
	[ "$(log_count 'the params do not end within 64 KiB')" -eq $((before + 1)) ]
	assert_survived
}

@test "cve: 0x7fffffff/0xffffffff 4-byte name-value lengths (CVE-2025-23016)" {
	local before
	before=$(log_count 'dropped a FastCGI connection: a param declares a length over 64 KiB')
	raw cve
	# Every variant got through to the server.
	[[ "$output" != *"connect failed"* ]]
	# Refused before libfcgi parsed them: 1-4 and 7 declare lengths
	# near 2^31 (5 and 6 declare small ones and get libfcgi's own error).
	[ "$(log_count 'a param declares a length over 64 KiB')" -eq $((before + 5)) ]
	assert_survived
}

@test "getvalues: FCGI_GET_VALUES declaring 2^31-byte pairs before a request is answered, not parsed by libfcgi" {
	raw getvalues before
	[[ "$output" == *"answer: GET_VALUES_RESULT"$'\n'* ]]
	[[ "$output" == *"END_REQUEST app_status=0 protocol_status=0"* ]]
	[[ "$output" == *"helloworld"* ]]
	assert_survived
}

@test "getvalues: a management record, the whole request behind it, then EOF: both answered" {
	# The front reads the request's head itself, the management record
	# with it; the request left in its buffer is judged before it reads
	# on, or the EOF behind it would drop a whole request.  /status is
	# the front's own page, answered with nginx gone (a worker's request
	# leaves the line when nginx hangs up).
	raw getvalues before shut
	[[ "$output" == *"answer: GET_VALUES_RESULT"$'\n'* ]]
	[[ "$output" == *"END_REQUEST app_status=0 protocol_status=0"* ]]
	[[ "$output" == *'"accepted"'* ]]
	assert_survived
}

@test "getvalues: FCGI_GET_VALUES declaring 2^31-byte pairs amid a body" {
	# libfcgi would parse such a record while the front reads the body,
	# after the peek at the params, and abort; the front takes it out
	# of what libfcgi reads (mgmt.c) and answers it (no pair it can
	# read: an empty result), and the echo goes on.
	raw getvalues body
	[[ "$output" == *"answer: GET_VALUES_RESULT"$'\n'* ]]
	[[ "$output" == *"END_REQUEST app_status=0 protocol_status=0"* ]]
	[[ "$output" == *"helloworld"* ]]
	assert_survived
}

@test "mgmt: FCGI_GET_VALUES answered with --threads, unknown types with FCGI_UNKNOWN_TYPE, before and amid a request" {
	# --threads is 512 here (the default).  libfcgi would answer 1 and
	# 1, and overflow its 64-byte answer on 20 names.
	raw mgmt
	[ "$(grep -c '^answer: ' <<<"$output")" -eq 6 ]
	local want=(
	    "answer: GET_VALUES_RESULT FCGI_MAX_CONNS=512 FCGI_MAX_REQS=512 FCGI_MPXS_CONNS=0"
	    "answer: GET_VALUES_RESULT FCGI_MAX_CONNS=512"
	    "answer: UNKNOWN_TYPE 99"
	    "answer: GET_VALUES_RESULT FCGI_MPXS_CONNS=0"
	    "answer: GET_VALUES_RESULT"
	    "answer: UNKNOWN_TYPE 42")
	local i=0 line
	while IFS= read -r line; do
		echo "want: ${want[$i]}"
		[ "$line" = "${want[$i]}" ]
		i=$((i + 1))
	done < <(grep '^answer: ' <<<"$output")
	[[ "$output" == *$'--- stdout content ---\n'*helloworld* ]]
	[[ "$output" == *"hello world from another process"* ]]
	[ "$(grep -c 'END_REQUEST app_status=0 protocol_status=0' \
	    <<<"$output")" -eq 2 ]
	assert_survived
}

@test "idle: a silent connection is closed after --read-timeout" {
	local ms min max
	# Another client must be served while the idle one waits.
	"$FCGIRAW" "unix:$SOCK" idle $((READ_TIMEOUT + 8)) \
	    >"$BATS_TEST_TMPDIR/idle.out" 2>&1 &
	local idle_pid=$!
	run "$FCGIRAW" "unix:$SOCK" good
	echo "good during idle: exit $status"
	local good_status=$status
	wait "$idle_pid" || true
	cat "$BATS_TEST_TMPDIR/idle.out"
	[ "$good_status" -eq 0 ]
	ms=$(sed -n 's/^closed after \([0-9]*\) ms$/\1/p' \
	    "$BATS_TEST_TMPDIR/idle.out")
	[ -n "$ms" ]
	min=$((READ_TIMEOUT * 1000 - 500))
	max=$(((READ_TIMEOUT + 2) * 1000))
	echo "closed after $ms ms; want $min..$max"
	[ "$ms" -ge "$min" ]
	[ "$ms" -le "$max" ]
	assert_survived
}

@test "midreq: BEGIN_REQUEST and part of PARAMS, then close" {
	raw midreq
	assert_survived
}

@test "shortbody: a worker waiting for a large body goes back when the client leaves" {
	local i
	# Two workers: each case leaves one of them waiting for the body,
	# which never comes; both must take requests again.
	for i in 1 2 3; do
		raw shortbody 100000 40000
	done
	head -c 70000 /dev/urandom >"$BATS_TEST_TMPDIR/body"
	"$FCGIRAW" "unix:$SOCK" post /echo "$BATS_TEST_TMPDIR/body" \
	    >"$BATS_TEST_TMPDIR/out"
	tail -c 70000 "$BATS_TEST_TMPDIR/out" | cmp - "$BATS_TEST_TMPDIR/body"
	# The front logs it right after handing the worker back.
	for i in $(seq 100); do
		grep -q "left before sending its body" "$PP_LOG" && break
		sleep 0.05
	done
	grep -q "left before sending its body" "$PP_LOG"
	! grep -q "died while handling" "$PP_LOG"
	assert_survived
}

@test "noread: a good request, closed without reading the answer" {
	raw noread /
	assert_survived
}

@test "slowread: a good request, answer unread for 3 s, then close" {
	# Others must be served while the slow reader holds its answer.
	"$FCGIRAW" "unix:$SOCK" slowread "${PP_SLOW_PATH:-/}" 3 \
	    >"$BATS_TEST_TMPDIR/slow.out" 2>&1 &
	local slow_pid=$!
	run "$FCGIRAW" "unix:$SOCK" good
	echo "good during slowread: exit $status"
	local good_status=$status
	local slow_status=0
	wait "$slow_pid" || slow_status=$?
	cat "$BATS_TEST_TMPDIR/slow.out"
	[ "$good_status" -eq 0 ]
	[ "$slow_status" -eq 0 ]
	assert_survived
}

# own_start NAME ARGS...: a server of the test's own in $PP_DIR/NAME (OWN,
# OWN_PID), with ARGS; own_stop: SIGTERM it, show its log, fail unless it
# exited 0.
own_start() {
	local _ args=(--listen "unix:$PP_DIR/$1/pp.sock" "${@:2}")
	OWN="$PP_DIR/$1"
	"$PP_BIN" --help 2>&1 | grep -q -- '--allow-root' && args+=(--allow-root)
	mkdir -p "$OWN"
	(cd "$OWN" && exec "$PP_BIN" "${args[@]}") >"$OWN/log" 2>&1 </dev/null 3>&- &
	OWN_PID=$!
	for _ in $(seq 1 100); do
		grep -q 'listening on' "$OWN/log" && return 0
		sleep 0.1
	done
	echo "pipepool in $OWN not listening after 10 s" >&2
	own_stop || true
	return 1
}

own_stop() {
	local rc=0
	kill -TERM "$OWN_PID" 2>/dev/null || true
	wait "$OWN_PID" || rc=$?
	cat "$OWN/log"
	return "$rc"
}

@test "keptcut: a large answer to a kept connection that does not read is the front's to send; the worker is neither held nor killed" {
	# A 1 s --timeout.  The second request on a kept connection would be
	# answered by the worker on the connection itself, but a 1 MiB answer
	# is over DIRECT_ANSWER_MAX: it goes through the front, whose thread
	# waits for the client (3 s) while the worker is free.
	local dir
	own_start cut --workers 1 --timeout 1
	dir=$OWN
	run "$FCGIRAW" "unix:$dir/pp.sock" keptcut $((1 << 20)) 3
	echo "$output"
	own_stop
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^keptcut: first: END_REQUEST app_status=0 protocol_status=0'
	echo "$output" | grep -Eq '^keptcut: second: END_REQUEST app_status=0 protocol_status=0 .*stdout 10486[0-9][0-9]'
	! grep -q 'killed by signal 9' "$dir/log"
	! grep -q 'took longer than --timeout' "$dir/log"
	rm -rf "$dir"
}

@test "kept: a worker that cannot keep connections answers through the front, at once" {
	# --worker-rlimit-nofile 16 leaves no room to keep a connection: each
	# answer goes into the mailbox and the worker tells the front.  With
	# --timeout 60 and fcgiraw giving up after 10 s, an answer left in the
	# mailbox unannounced would fail here, not pass late.
	local dir
	own_start nofile --workers 1 --timeout 60 --worker-rlimit-nofile 16
	dir=$OWN
	FCGIRAW_TIMEOUT=10 run "$FCGIRAW" "unix:$dir/pp.sock" good --keep 3
	echo "$output"
	own_stop
	[ "$status" -eq 0 ]
	grep -q 'answering through the front: RLIMIT_NOFILE leaves no room' "$dir/log"
	rm -rf "$dir"
}

@test "kept: 2100 large-body POSTs on one connection are all answered 200" {
	# Each large body takes a buffer of the pool (a few thousand of them);
	# after a direct answer the worker gives it back.  One not given back
	# would show as 503 "no buffer for a large body" before the end.
	head -c 20000 /dev/urandom >"$BATS_TEST_TMPDIR/body"
	raw post /echo "$BATS_TEST_TMPDIR/body" --keep 2100
	[ "$(grep -c 'no buffer for a large body' "$PP_LOG" || true)" -eq 0 ]
	assert_survived
}

@test "kept: 4 connections of 20000 back-to-back requests each, none cut" {
	# The next request can reach the front before the worker has marked
	# its answer sent: that must not end the connection.
	local pids=() p failed=
	for p in 1 2 3 4; do
		"$FCGIRAW" "unix:$SOCK" good --keep 20000 >/dev/null \
		    2>"$BATS_TEST_TMPDIR/keep$p.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || failed=1
	done
	if [ -n "$failed" ]; then
		tail -3 "$BATS_TEST_TMPDIR"/keep*.err
	fi
	[ -z "$failed" ]
	assert_survived
}

@test "kept: a connection silent after a direct answer is closed after --read-timeout" {
	local ms before
	before=$(grep -c 'took over --read-timeout to send a request' "$PP_LOG" || true)
	run "$FCGIRAW" "unix:$SOCK" good --keep 2 --idle $((READ_TIMEOUT + 8))
	echo "$output"
	[ "$status" -eq 0 ]
	ms=$(echo "$output" | sed -n 's/^closed after \([0-9]*\) ms$/\1/p')
	[ -n "$ms" ]
	[ "$ms" -ge $((READ_TIMEOUT * 1000 - 500)) ]
	[ "$(grep -c 'took over --read-timeout to send a request' "$PP_LOG")" -gt "$before" ]
	assert_survived
}

@test "front's open fds return to baseline after all hostile cases" {
	local pids=() p now c _ failed=
	head -c 65536 /dev/urandom >"$BATS_TEST_TMPDIR/body"
	# The slow ones side by side with the rest.
	"$FCGIRAW" "unix:$SOCK" idle $((READ_TIMEOUT + 8)) >/dev/null 2>&1 &
	pids+=($!)
	"$FCGIRAW" "unix:$SOCK" slowread / 2 >/dev/null 2>&1 &
	pids+=($!)
	for c in "good --keep 3" "post / $BATS_TEST_TMPDIR/body" truncated \
	    badversion hugelen "random 65536" novalue "manyparams 10000" cve \
	    midreq "noread /"; do
		# shellcheck disable=SC2086 # the case and its args, split
		"$FCGIRAW" "unix:$SOCK" $c >/dev/null 2>&1 || {
			echo "fcgiraw $c: exit $?"
			failed=1
		}
	done
	for p in "${pids[@]}"; do
		wait "$p" || {
			echo "fcgiraw idle/slowread (pid $p): exit $?"
			failed=1
		}
	done

	# Up to 5 s for the front to let go of them all.
	for _ in $(seq 1 50); do
		now=$(pp_fds "$FRONT_PID")
		[ "$now" -eq "$FRONT_FDS_BASE" ] && break
		sleep 0.1
	done
	echo "front $FRONT_PID: $now open fds, baseline $FRONT_FDS_BASE"
	# A front that crashed on the way has no fds to compare.
	assert_survived
	if [ "$now" -ne "$FRONT_FDS_BASE" ]; then
		ls -l "/proc/$FRONT_PID/fd" || true
	fi
	[ "$now" -eq "$FRONT_FDS_BASE" ]
	[ -z "$failed" ]
}

@test "lying length: a body longer than its small CONTENT_LENGTH gets 400 and never waits in line" {
	command -v cgi-fcgi >/dev/null || skip "cgi-fcgi is not installed (Debian package libfcgi-bin)"
	own_start lie --workers 1
	head -c 50000 /dev/zero >"$OWN/body"
	run sh -c "CONTENT_LENGTH=10 SCRIPT_NAME=/echo REQUEST_METHOD=POST DOCUMENT_URI=/echo cgi-fcgi -bind -connect '$OWN/pp.sock' <'$OWN/body'"
	own_stop
	echo "$output"
	echo "$output" | grep -q '^Status: 400'
	echo "$output" | grep -q 'longer than its CONTENT_LENGTH'
	rm -rf "$OWN"
}
