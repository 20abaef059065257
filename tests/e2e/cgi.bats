#!/usr/bin/env bats
# --cgi: each request's SCRIPT_FILENAME run as a CGI program, in place of
# fcgiwrap.  Through a real nginx running conf/nginx-cgi.conf (the site
# fcgiwrap's users run) with its paths pointed at the test's directory;
# the programs are tests/cgi/*.cgi, copied to $T/root/cgi-bin.

load helpers

setup() {
	pp_tmp
	mkdir -p "$T/root/cgi-bin" "$T/outside"
	for f in "$REPO"/tests/cgi/*.cgi; do
		install -m 755 "$f" "$T/root/cgi-bin/"
	done
	BIN=$T/root/cgi-bin
}
teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs
	pp_cleanup
}

# cgi_nginx: nginx with conf/nginx-cgi.conf as it ships, but for its
# port, socket and paths.
cgi_nginx() {
	NG_PORT=$(free_port)
	sed -e "s|listen 80;|listen 127.0.0.1:$NG_PORT;|" -e '/listen \[::\]:80;/d' \
	    -e "s|/run/pipepool/cgi.sock|$PP_SOCK|" \
	    -e "s|root /usr/lib;|root $T/root;|" -e "s|/srv/git|$T/git|" \
	    -e "s|/etc/cgitrc|$T/cgitrc|" \
	    "$REPO/conf/nginx-cgi.conf" >"$T/site.conf"
	sed -e "s|@PREFIX@|$T|g" -e "s|@USER@|$(id -un)|" \
	    -e "s|@SITE@|$T/site.conf|" "$REPO/tests/cgi/nginx.conf" >"$T/nginx.conf"
	nginx -p "$T" -c "$T/nginx.conf" -e "$T/nginx-error.log" 2>"$T/nginx.out" &
	NG_PID=$!
	URL=http://127.0.0.1:$NG_PORT
	wait_for 10 curl -s -o /dev/null "$URL/status"
}

# cgi_start [ARGS...]: pipepool --cgi --cgi-root $T/root, and nginx.
cgi_start() {
	pp_start --cgi --cgi-root "$T/root" "$@"
	cgi_nginx
}

# The pids a fork.cgi run NAME wrote: "program helper".
pids_of() { cat "$T/$1.pids" 2>/dev/null; }
# No process among the workers' children is a zombie.
no_zombies() {
	local w c
	for w in $(pp_workers); do
		for c in $(pgrep -P "$w"); do
			[ "$(sed 's/.*) //' "/proc/$c/stat" | cut -d' ' -f1)" != Z ] || return 1
		done
	done
}

@test "cgi: a shell CGI gets the request's meta-variables, not pipepool's environment" {
	cgi_start --timeout 20
	run curl -s -D "$T/h" -o "$T/b" -H 'X-Test: yes' -H 'Proxy: http://evil:1' \
	    "$URL/cgi-bin/sh.cgi/extra/path?a=1&b=%20two"
	[ "$status" -eq 0 ]
	grep -q '^HTTP/1.1 200' "$T/h"
	grep -qi '^Content-Type: text/plain; charset=us-ascii' "$T/h"
	grep -qi '^X-Cgi-Test: shell' "$T/h"
	[ "$(grep -ci '^Set-Cookie: [ab]=[12]' "$T/h")" -eq 2 ]
	cat "$T/b"
	grep -qx 'METHOD=GET' "$T/b"
	grep -qx 'QUERY=a=1&b=%20two' "$T/b"
	grep -qx 'PATH_INFO=/extra/path' "$T/b"
	grep -qx 'SCRIPT_NAME=/cgi-bin/sh.cgi' "$T/b"
	grep -qx "SCRIPT_FILENAME=$BIN/sh.cgi" "$T/b"
	grep -qx 'GATEWAY=CGI/1.1' "$T/b"
	grep -qx 'HEADER=yes' "$T/b"
	# httpoxy: a client's Proxy header never becomes HTTP_PROXY.
	grep -qx 'PROXY=unset' "$T/b"
	# pipepool's own environment (HOME) is not the program's.
	grep -qx 'HOME=unset' "$T/b"
	grep -qx "PWD=$BIN" "$T/b"
	grep -qx "ARGV0=$BIN/sh.cgi" "$T/b"
	d=$(sed -n 's/^DEADLINE=//p' "$T/b")
	[ "$d" -gt 15000 ] && [ "$d" -le 20000 ]
	# Its stderr, in pipepool's log, naming it.
	wait_for 5 log_has "$BIN/sh.cgi: sh.cgi says hello on stderr"
}

@test "cgi: Status, client and local redirects, and an exit status in the log" {
	cgi_start
	run curl -s -D "$T/h" -o "$T/b" "$URL/cgi-bin/sh.cgi?status=418"
	grep -q '^HTTP/1.1 418' "$T/h"
	grep -qx 'status chosen' "$T/b"
	run curl -s -D "$T/h" -o /dev/null "$URL/cgi-bin/sh.cgi?redirect"
	grep -q '^HTTP/1.1 302' "$T/h"
	grep -qi '^Location: http://example.org/elsewhere' "$T/h"
	# A local redirect (a path) goes to the client as a 302 too.
	run curl -s -D "$T/h" -o /dev/null "$URL/cgi-bin/sh.cgi?local"
	grep -q '^HTTP/1.1 302' "$T/h"
	grep -qi "^Location: http://127.0.0.1:$NG_PORT/cgi-bin/sh.cgi/after\|^Location: /cgi-bin/sh.cgi/after" "$T/h"
	[ "$(code "$URL/cgi-bin/sh.cgi?fail")" = 200 ]
	wait_for 5 log_has "cgi: $BIN/sh.cgi (pid [0-9]*) exited with status 3"
	# HEAD: the head only.
	run curl -s -I "$URL/cgi-bin/sh.cgi"
	echo "$output" | grep -qi '^X-Cgi-Test: shell'
}

@test "cgi: the program has the worker's rlimits and no_new_privs, no signal blocked or ignored" {
	# Started with signals 32 and 33 ignored, which glibc's sigaction
	# cannot reset (its own, SIGCANCEL and SIGSETXID) and execve keeps.
	[ "$(uname -m)" = x86_64 ] || skip "rt_sigaction's number is x86_64's"
	cat >"$T/ign.py" <<-'EOF'
	import ctypes, os, sys
	libc = ctypes.CDLL(None, use_errno=True)
	ign = (ctypes.c_ulong * 4)(1, 0, 0, 0)	# SIG_IGN, no flags, no mask
	for s in (32, 33):
	    assert libc.syscall(13, s, ign, None, 8) == 0, ctypes.get_errno()
	os.execv(sys.argv[1], sys.argv[1:])
	EOF
	printf '#!/bin/sh\nexec python3 %s %s "$@"\n' "$T/ign.py" "$PIPEPOOL_BIN" >"$T/pipepool"
	chmod +x "$T/pipepool"
	PIPEPOOL_BIN=$T/pipepool cgi_start --workers 1 --worker-rlimit-nofile 64
	grep -q 'SigIgn:.*18' "/proc/$PP_PID/status"	# really ignored there
	run curl -s "$URL/cgi-bin/sh.cgi?limits"
	echo "$output"
	echo "$output" | grep -Eqx 'NoNewPrivs:[[:space:]]+1'
	echo "$output" | grep -Eqx 'SigBlk:[[:space:]]+0+'
	echo "$output" | grep -Eqx 'SigIgn:[[:space:]]+0+'
	echo "$output" | grep -qx 'NOFILE=64'
}

@test "cgi: a Python CGI: query string, a 1 MiB body in and back byte for byte" {
	cgi_start --max-body 4194304
	run curl -s "$URL/cgi-bin/py.cgi?x=1&y=2"
	[ "$output" = "<p>python GET x=1&y=2</p>" ]
	head -c 1048576 /dev/urandom >"$T/in"
	run curl -s -D "$T/h" -o "$T/out" --data-binary "@$T/in" \
	    -H 'Content-Type: application/octet-stream' "$URL/cgi-bin/py.cgi/echo"
	[ "$status" -eq 0 ]
	grep -qi '^X-Got: 1048576' "$T/h"
	cmp "$T/in" "$T/out"
}

@test "cgi: a 50 MiB answer streams out byte for byte" {
	cgi_start --timeout 60
	python3 -c 'import sys; b = bytes(range(256)) * 4096
for _ in range(50): sys.stdout.buffer.write(b)' >"$T/want"
	run curl -s --max-time 60 -o "$T/got" "$URL/cgi-bin/py.cgi/big?50"
	[ "$status" -eq 0 ]
	cmp "$T/want" "$T/got"
	# Streamed: neither the worker nor the front held it whole.
	for p in $(pp_workers) $(pp_front); do
		hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status")
		echo "pid $p VmHWM $hwm kB"
		[ "$hwm" -lt 32768 ]
	done
}

# refused URLPATH CODE REASON SCRIPT: the client gets CODE with REASON
# as the body, and the log a line naming SCRIPT with both.
refused() {
	run curl -s -D "$T/h" "$URL$1"
	grep -q "^HTTP/1.1 $2" "$T/h"
	[ "$output" = "$3" ]
	wait_for 5 log_has "cgi: $4: $3 ($2)"
}

@test "cgi: an answer reaches the client as the program writes it, not when it ends" {
	cgi_start
	curl -sN "$URL/cgi-bin/sh.cgi?trickle" >"$T/trickle" &
	c=$!
	wait_for 5 grep -qx first "$T/trickle"
	# (the program still waits for $T/go: the line came while it ran)
	run grep -c second "$T/trickle"
	[ "$output" = 0 ]
	touch "$T/go"
	wait "$c"
	[ "$(grep -v '^ *$' "$T/trickle")" = "$(printf 'first\nsecond')" ]
}

@test "cgi: missing 404, not executable 403, bad header 502, each with a reason and a log line" {
	cgi_start
	refused /cgi-bin/nothere.cgi 404 "no such program" "$BIN/nothere.cgi"
	chmod 644 "$BIN/sh.cgi"
	refused /cgi-bin/sh.cgi 403 "not executable" "$BIN/sh.cgi"
	refused /cgi-bin/badhead.cgi 502 "the program gave no valid header block" "$BIN/badhead.cgi"
	# A head that never ends, and one over 64 KiB.
	printf '#!/bin/sh\nprintf "Content-Type: text/plain\\n"\n' >"$BIN/noend.cgi"
	printf '#!/bin/sh\nprintf "Content-Type: text/plain\\n"\nhead -c 70000 /dev/zero | tr "\\\\0" x\n' >"$BIN/huge.cgi"
	chmod 755 "$BIN/noend.cgi" "$BIN/huge.cgi"
	[ "$(code "$URL/cgi-bin/noend.cgi")" = 502 ]
	[ "$(code "$URL/cgi-bin/huge.cgi")" = 502 ]
	wait_for 5 log_has "huge.cgi: the program's header block passed 64 KiB (502)"
	# The pool is whole: the next request is answered.
	[ "$(code "$URL/cgi-bin/py.cgi")" = 200 ]
}

@test "cgi: outside --cgi-root 403 and never runs, a symbolic link out of it too" {
	cgi_start
	# conf/nginx-cgi.conf's git location names git-http-backend, which
	# is outside $T/root.
	refused /git/repo.git/info/refs 403 "outside --cgi-root" /usr/lib/git-core/git-http-backend
	printf '#!/bin/sh\ntouch "%s/ran"\nprintf "Content-Type: text/plain\\n\\nescaped\\n"\n' "$T" >"$T/outside/evil.cgi"
	chmod 755 "$T/outside/evil.cgi"
	ln -s "$T/outside/evil.cgi" "$BIN/escape.cgi"
	run curl -s -D "$T/h" "$URL/cgi-bin/escape.cgi"
	grep -q '^HTTP/1.1 403' "$T/h"
	[ "$output" = "outside --cgi-root" ]
	[ ! -e "$T/ran" ]
	# A link that stays inside the root runs.
	ln -s sh.cgi "$BIN/inside.cgi"
	[ "$(code "$URL/cgi-bin/inside.cgi")" = 200 ]
}

@test "cgi: past --timeout a forking CGI and its helper are killed (504), the worker respawns" {
	cgi_start --workers 1 --timeout 2
	before=$(pp_workers)
	[ "$(code "$URL/cgi-bin/fork.cgi?t1")" = 504 ]
	set -- $(pids_of t1)
	[ -n "$1" ] && [ -n "$2" ]
	wait_for 10 gone "$1"
	wait_for 10 gone "$2"
	wait_for 10 workers_changed "$before"
	[ "$(code "$URL/cgi-bin/sh.cgi")" = 200 ]
}

@test "cgi: a program that printed its head, then hangs past --timeout, gets 504, not a cut 200" {
	cgi_start --workers 1 --timeout 2
	run curl -s -o "$T/b" -w '%{http_code}' "$URL/cgi-bin/sh.cgi?headsleep"
	[ "$output" = 504 ]
	[ "$status" -eq 0 ]	# a whole answer, not a cut one (curl 18)
	[ "$(code "$URL/cgi-bin/sh.cgi")" = 200 ]
}

@test "cgi: an orphaned helper is reaped by its worker, never a zombie" {
	cgi_start --workers 1
	w=$(pp_workers)
	run curl -s "$URL/cgi-bin/orphan.cgi"
	[ "$output" = "left one behind" ]
	h=$(cat "$T/orphan.pid")
	# While it runs, the worker (a child subreaper) is its parent.
	if [ -e "/proc/$h" ]; then
		pp=$(sed 's/.*) //' "/proc/$h/stat" | cut -d' ' -f2)
		[ "$pp" = "$w" ] || [ ! -e "/proc/$h" ]
	fi
	# Then it is reaped: gone from /proc altogether, not a zombie.
	wait_for 10 eval '[ ! -e /proc/$h ]'
	no_zombies
	for i in 1 2 3 4 5; do [ "$(code "$URL/cgi-bin/orphan.cgi")" = 200 ]; done
	wait_for 10 no_zombies
	[ "$(pp_workers)" = "$w" ]
}

@test "cgi: a SIGKILLed master takes every CGI and its helpers with it" {
	cgi_start --workers 2 --timeout 60
	curl -s --max-time 60 -o /dev/null "$URL/cgi-bin/fork.cgi?k1" &
	c1=$!
	curl -s --max-time 60 -o /dev/null "$URL/cgi-bin/fork.cgi?k2" &
	c2=$!
	wait_for 10 eval '[ -n "$(pids_of k1)" ] && [ -n "$(pids_of k2)" ]'
	all="$(pids_of k1) $(pids_of k2) $(pp_workers)"
	kill -KILL "$PP_PID"
	wait "$PP_PID" 2>/dev/null || true
	PP_PID=
	for p in $all; do wait_for 10 gone "$p"; done
	kill "$c1" "$c2" 2>/dev/null || true
	wait "$c1" "$c2" 2>/dev/null || true
}

@test "cgi: /status shows the running program (pid, script, elapsed)" {
	cgi_start --workers 2 --timeout 60
	curl -s --max-time 60 -o /dev/null "$URL/cgi-bin/fork.cgi?s1" &
	c=$!
	wait_for 10 eval '[ -n "$(pids_of s1)" ]'
	set -- $(pids_of s1)
	run curl -s "$URL/status"
	echo "$output"
	echo "$output" | python3 -c '
import json, sys
pid, script = int(sys.argv[1]), sys.argv[2]
s = json.load(sys.stdin)
c = [w["cgi"] for w in s["workers"] if w.get("cgi")]
assert len(c) == 1, c
assert c[0]["pid"] == pid and c[0]["script"] == script, c
assert 0 <= c[0]["elapsed_ms"] < 60000, c' "$1" "$BIN/fork.cgi"
	curl -s "$URL/metrics" | grep -qx 'pipepool_cgi_programs 1'
	run curl -s "$URL/status?html"
	echo "$output" | grep -q "<td class=\"l\">$BIN/fork.cgi (pid $1, [0-9]* ms)</td>"
	# Once it ends (with its foreground sleep, which holds its stdout),
	# it is listed no more.
	pkill -KILL -P "$1" || true
	kill -KILL "$1" "$2" 2>/dev/null || true
	wait_for 10 eval '! curl -s "$URL/status" | grep -q "\"cgi\""'
	curl -s "$URL/metrics" | grep -qx 'pipepool_cgi_programs 0'
	kill "$c" 2>/dev/null || true
	wait "$c" 2>/dev/null || true
}

@test "cgi: --cgi with --app or --exec, a --cgi-root missing or no directory: exit 64, one line" {
	pp_start_fails --cgi --exec /bin/cat
	[ "$status" -eq 64 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"--cgi cannot be combined with --exec"* ]]
	pp_start_fails --cgi --app "$REPO/build/hello.so"
	[ "$status" -eq 64 ]
	[[ "$output" == *"--cgi cannot be combined with --app"* ]]
	printf '#!/bin/sh\necho x\n' >"$T/notadir"
	pp_start_fails --cgi --cgi-root "$T/notadir"
	[ "$status" -eq 64 ]
	[[ "$output" == *"--cgi-root '$T/notadir': not a directory"* ]]
	pp_start_fails --cgi --cgi-root "$T/nothere"
	[ "$status" -eq 64 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"--cgi-root '$T/nothere': No such file or directory"* ]]
}

# A git identity and settings of the test's own, in $T/home.
git_env() {
	export HOME=$T/home GIT_CONFIG_NOSYSTEM=1
	mkdir -p "$HOME"
	git config --global user.name "pipepool test"
	git config --global user.email "test@pipepool.invalid"
	git config --global init.defaultBranch main
	git config --global advice.detachedHead false
}

# commits DIR FROM TO: one commit each, a text and a binary file.
commits() {
	local i
	for i in $(seq "$2" "$3"); do
		echo "line $i" >>"$1/notes.txt"
		head -c 4096 /dev/urandom >"$1/blob$i.bin"
		git -C "$1" add -A
		git -C "$1" commit -q -m "commit $i"
	done
}

# make_repo: $T/git/repo.git (bare, push over HTTP allowed) with 20
# commits and a tag, from the work tree $T/seed.
make_repo() {
	git_env
	mkdir -p "$T/git"
	git init -q --bare "$T/git/repo.git"
	git -C "$T/git/repo.git" config http.receivepack true
	git init -q "$T/seed"
	commits "$T/seed" 1 20
	git -C "$T/seed" tag v1
	git -C "$T/seed" push -q "$T/git/repo.git" main v1
}

# Every object reachable from any ref, sorted.
objects() { git -C "$1" rev-list --all --objects | sort; }

@test "cgi: git over HTTP (git-http-backend): clone, fetch, push; fsck, same refs and objects" {
	pp_start --cgi --cgi-root /usr/lib --max-body 67108864 --timeout 60
	cgi_nginx
	make_repo
	git clone -q "$URL/git/repo.git" "$T/clone"
	[ "$(git -C "$T/clone" rev-parse HEAD)" = "$(git -C "$T/seed" rev-parse HEAD)" ]
	[ "$(git -C "$T/clone" rev-list --count HEAD)" -eq 20 ]
	git -C "$T/clone" rev-parse -q --verify refs/tags/v1
	# New commits on the server's side, fetched over HTTP.
	commits "$T/seed" 21 25
	git -C "$T/seed" push -q "$T/git/repo.git" main
	git -C "$T/clone" fetch -q origin
	[ "$(git -C "$T/clone" rev-parse origin/main)" = "$(git -C "$T/seed" rev-parse HEAD)" ]
	# New commits of the clone's, pushed over HTTP (receive-pack).
	git -C "$T/clone" merge -q --ff-only origin/main
	commits "$T/clone" 26 30
	git -C "$T/clone" push -q origin main
	git -C "$T/git/repo.git" fsck --strict --no-dangling
	[ "$(git -C "$T/git/repo.git" rev-parse main)" = "$(git -C "$T/clone" rev-parse HEAD)" ]
	[ "$(git -C "$T/git/repo.git" rev-list --count main)" -eq 30 ]
	# The refs through HTTP are the server's, and the objects agree.
	git ls-remote "$URL/git/repo.git" | grep -v 'HEAD$' >"$T/refs.http"
	git -C "$T/git/repo.git" show-ref -d | awk '{ print $1 "\t" $2 }' >"$T/refs.disk"
	diff "$T/refs.disk" "$T/refs.http"
	git -C "$T/clone" fetch -q origin
	[ "$(objects "$T/git/repo.git")" = "$(objects "$T/clone")" ]
	git -C "$T/clone" fsck --strict --no-dangling
	# Nothing of git's outlived its requests, nothing left a zombie.
	no_zombies
}

@test "cgi: cgit serves its index and a repository's log" {
	pp_start --cgi --cgi-root /usr/lib --timeout 30
	cgi_nginx
	make_repo
	cat >"$T/cgitrc" <<-EOF2
	css=/cgit-css/cgit.css
	logo=/cgit-css/cgit.png
	virtual-root=/cgit/
	cache-size=0
	repo.url=repo
	repo.path=$T/git/repo.git
	repo.desc=the pipepool test repository
	EOF2
	run curl -s -D "$T/h" "$URL/cgit/"
	grep -q '^HTTP/1.1 200' "$T/h"
	grep -qi '^Content-Type: text/html' "$T/h"
	echo "$output" | grep -q 'the pipepool test repository'
	echo "$output" | grep -q "href='/cgit/repo/'"
	run curl -s -D "$T/h" "$URL/cgit/repo/log/"
	grep -q '^HTTP/1.1 200' "$T/h"
	for i in 20 15 11; do echo "$output" | grep -q "commit $i<"; done
	[ "$(code "$URL/cgit-css/cgit.css")" = 200 ]
}
