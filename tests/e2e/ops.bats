#!/usr/bin/env bats
# Operations: the deployment files in conf/ (nginx site, systemd units,
# Dockerfile, compose file, man page, example config, install script,
# demo) and what an operator looks at: /status (JSON and HTML), /metrics
# and the slow log.  Tests that need an optional tool (chromium, promtool,
# docker-compose, systemd-analyze, cgi-fcgi) skip with the reason when it
# is missing; tests/deps.sh is where CI gets them.

load helpers

setup() { pp_tmp; DEMO_PID='' DEMO_ALL='' DEMO_PG=''; }
teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || { dump_logs; dump_demo; }
	demo_cleanup
	pp_cleanup
	if [ -n "$DEMO_PG" ]; then
		sh "$REPO/tests/tools/pg.sh" stop "$DEMO_PG"
		rm -rf "$DEMO_PG"
	fi
}

# --- helpers for this file ------------------------------------------

# Parent pid of a pid (field 4 of /proc/PID/stat, after "(comm)").
ppid_of() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $2}'; }

# A pid that runs (a zombie left to a parent that never reaps is gone).
alive() {
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $1}')
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Every descendant of a pid, depth first.
descendants() {
	local c
	for c in $(pgrep -P "$1" 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}

# X-Worker-Pid of each of N GETs of URL.
worker_pids() {
	local url=$1 n=$2 i
	for i in $(seq "$n"); do
		curl -s -D - -o /dev/null "$url/?i=$i"
	done | tr -d '\r' | awk -F': ' 'tolower($1)=="x-worker-pid"{print $2}'
}

# A free port not in the list given.
other_port() {
	local p
	while :; do
		p=$(free_port)
		case " $* " in *" $p "*) continue ;; esac
		echo "$p"
		return
	done
}

need() {
	command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed (Debian package $2)"
}

# python3 -c CHECK on the JSON in FILE (as j), exit 0 if it holds.
json_check() {
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"
}

# nginx -t on a main config that includes FILE inside http {}.
ng_wrap() {
	local site=$1
	mkdir -p "$T/ng"
	cp /etc/nginx/fastcgi_params "$T/ng/"
	cat >"$T/ng/nginx.conf" <<-EOF
	user $(id -un);
	worker_processes 1;
	daemon off;
	pid $T/ng/nginx.pid;
	error_log $T/ng/error.log warn;
	events { worker_connections 64; }
	http {
	    access_log off;
	    client_body_temp_path $T/ng/client_body;
	    proxy_temp_path $T/ng/proxy;
	    fastcgi_temp_path $T/ng/fastcgi;
	    uwsgi_temp_path $T/ng/uwsgi;
	    scgi_temp_path $T/ng/scgi;
	    include $site;
	}
	EOF
}

demo_cleanup() {
	local p
	[ -n "${DEMO_PID:-}" ] || return 0
	kill -TERM "$DEMO_PID" 2>/dev/null || true
	wait_for 30 eval '! kill -0 $DEMO_PID' || kill -KILL "$DEMO_PID" 2>/dev/null || true
	for p in $DEMO_ALL; do kill -KILL "$p" 2>/dev/null || true; done
	wait "$DEMO_PID" 2>/dev/null || true
	DEMO_PID=
}

dump_demo() {
	[ -f "$T/demo.err" ] && sed 's/^/# demo: /' "$T/demo.err" >&3 || true
}

# --- nginx site -------------------------------------------------------

@test "nginx-site.conf: nginx -t accepts it inside a main config" {
	need nginx nginx-light
	ng_wrap "$REPO/conf/nginx-site.conf"
	run nginx -t -p "$T/ng" -c "$T/ng/nginx.conf"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q 'server unix:/run/pipepool/pipepool.sock;' "$REPO/conf/nginx-site.conf"
	grep -Eq '^\s*keepalive [0-9]+;' "$REPO/conf/nginx-site.conf"
	grep -q 'fastcgi_keep_conn on;' "$REPO/conf/nginx-site.conf"
}

@test "nginx-site.conf serves pipepool; /status and /metrics only from loopback" {
	need nginx nginx-light
	pp_start --workers 2 --debug-routes
	port=$(free_port)
	sed -e "s|listen 80;|listen 127.0.0.1:$port;|" -e '/listen \[::\]:80;/d' \
	    -e "s|unix:/run/pipepool/pipepool.sock|unix:$PP_SOCK|" \
	    "$REPO/conf/nginx-site.conf" >"$T/site.conf"
	ng_wrap "$T/site.conf"
	nginx -p "$T/ng" -c "$T/ng/nginx.conf" 2>"$T/nginx.out" &
	# shellcheck disable=SC2034 # pp_cleanup stops it
	NG_PID=$!
	url=http://127.0.0.1:$port
	wait_for 10 curl -sf -o /dev/null "$url/"
	[ "$(curl -s "$url/")" = "hello world from another process" ]
	# From 127.0.0.1: allowed.  From another loopback address: denied.
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/status")" = 200 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/metrics")" = 200 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "$url/status")" = 403 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "$url/metrics")" = 403 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "$url/")" = 200 ]
	# Fault routes never pass, even with --debug-routes.
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/debug/sleep?ms=1")" = 404 ]
	# nginx kept its FastCGI connections: one front thread served them.
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/?again")" = 200 ]
}

# --- systemd ----------------------------------------------------------

@test "systemd units: systemd-analyze verify accepts them" {
	need systemd-analyze systemd
	mkdir -p "$T/sbin" "$T/units"
	cp "$PIPEPOOL_BIN" "$T/sbin/pipepool"
	sed "s|/usr/local/sbin/pipepool|$T/sbin/pipepool|" \
	    "$REPO/conf/pipepool.service" >"$T/units/pipepool.service"
	cp "$REPO/conf/pipepool.socket" "$T/units/"
	run systemd-analyze verify --man=no "$T/units/pipepool.socket" \
	    "$T/units/pipepool.service"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	s=$REPO/conf/pipepool.socket u=$REPO/conf/pipepool.service
	grep -qx 'ListenStream=/run/pipepool/pipepool.sock' "$s"
	grep -qx 'SocketUser=www-data' "$s"
	grep -qx 'SocketGroup=www-data' "$s"
	grep -qx 'SocketMode=0660' "$s"
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$u"
	grep -qx 'StateDirectory=pipepool' "$u"
	grep -qx 'NoNewPrivileges=yes' "$u"
	grep -qx 'ProtectSystem=strict' "$u"
	run grep -c -- '--listen' "$u"
	[ "$output" = 0 ]	# the socket comes from systemd
}

@test "systemd units: ExecStart serves on a socket passed as systemd does" {
	need systemd-socket-activate systemd
	need nginx nginx-light
	# The unit's command line, on this host's paths, as root.
	cmd=$(sed -n 's/^ExecStart=//p' "$REPO/conf/pipepool.service")
	cmd=${cmd//\/usr\/local\/sbin\/pipepool/$PIPEPOOL_BIN}
	cmd=${cmd//\/etc\/pipepool\/pipepool.conf/$REPO/conf/pipepool.conf}
	cmd=${cmd//\/var\/lib\/pipepool/$T}
	# It passes on only LISTEN_*: keep the sanitizers' settings.
	envs=()
	for v in ASAN_OPTIONS UBSAN_OPTIONS; do
		[ -n "${!v:-}" ] && envs+=(-E "$v=${!v}")
	done
	# shellcheck disable=SC2086
	systemd-socket-activate "${envs[@]}" -l "$T/pp.sock" $cmd --allow-root \
	    --workers 2 2>"$T/pp.log" &
	PP_PID=$!
	PP_SOCK=$T/pp.sock PP_LOG=$T/pp.log
	wait_for 10 test -S "$T/pp.sock"
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	grep -q 'listening on the socket from systemd' "$PP_LOG"
	[ -f "$T/pipepool.db" ]
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
}

# --- containers ---------------------------------------------------------

@test "Dockerfile: two bookworm-slim stages, non-root, serves :9000" {
	f=$REPO/conf/Dockerfile
	[ "$(grep -c '^FROM debian:bookworm-slim' "$f")" -eq 2 ]
	grep -q '^FROM debian:bookworm-slim AS build' "$f"
	grep -q -- '--from=build /src/build/rel/pipepool' "$f"
	user=$(sed -n 's/^USER //p' "$f")
	[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ]
	grep -q '^CMD \["--listen", ":9000"' "$f"
	grep -q '^EXPOSE 9000' "$f"
	for p in build-essential pkg-config libfcgi-dev libinih-dev \
	    libsqlite3-dev libpq-dev libfcgi0ldbl libinih1 libsqlite3-0 libpq5; do
		grep -Eq "(^|[[:space:]])$p([[:space:]]|\\\\|$)" "$f"
	done
}

@test "Dockerfile: the build stage's context builds, the runtime packages cover the binary" {
	need make make
	f=$REPO/conf/Dockerfile
	# Copy exactly what the build stage COPYs from the context, then build
	# the way its RUN line does.
	mkdir -p "$T/ctx"
	awk '/^FROM .* AS build/{b=1; next} /^FROM /{b=0}
	    b && /^COPY / && !/--from/ && NF == 3 { print $2, $3 }' "$f" >"$T/copies"
	[ -s "$T/copies" ]
	while read -r src dest; do
		d=$T/ctx/$dest
		if [ -d "$REPO/$src" ]; then
			mkdir -p "$d"
			cp -r "$REPO/${src%/}/." "$d"
		elif [ "${dest%/}" != "$dest" ]; then
			mkdir -p "$d"
			cp "$REPO/$src" "$d"
		else
			mkdir -p "$(dirname "$d")"
			cp "$REPO/$src" "$d"
		fi
	done <"$T/copies"
	(cd "$T/ctx" && env -u MAKEFLAGS -u MAKELEVEL -u SAN make -j2 SAN= build/pipepool >"$T/build.log" 2>&1) || {
		cat "$T/build.log"; false; }
	"$T/ctx/build/rel/pipepool" --version | grep -q '^pipepool '
	# Every shared library the binary names (NEEDED, outside libc) comes
	# from a runtime package; apt brings what those need in turn (libpq5
	# brings libssl3, ...).
	rt=$(awk '/^FROM /{s++} s==2' "$f")
	bin=$T/ctx/build/rel/pipepool
	needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' |
	    tr '\n' ' ')
	libs=$(ldd "$bin" | awk -v n=" $needed" \
	    '/=>/ && index(n, " " $1 " ") { print $3 }')
	# libfcgi, libinih, libsqlite3 at least.
	[ "$(echo "$libs" | grep -c .)" -ge 3 ]
	for lib in $libs; do
		pkg=
		for p in "$(readlink -f "$lib")" "$lib"; do
			pkg=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1)
			[ -n "$pkg" ] && break
		done
		[ -n "$pkg" ] || { echo "no package has $lib"; false; }
		case $pkg in libc6 | libgcc-s1) continue ;; esac
		echo "$lib from $pkg"
		echo "$rt" | grep -qw -- "$pkg"
	done
	# compose.bats builds the image itself, in a real engine.
}

@test "Dockerfile: the HEALTHCHECK command passes against a live pipepool" {
	need cgi-fcgi libfcgi-bin
	port=$(free_port)
	pp_start --listen "127.0.0.1:$port" --workers 1
	hc=$(awk '/^HEALTHCHECK/{h=1} h{l=$0; more=sub(/\\$/, "", l); printf "%s ", l; if (!more) h=0}' \
	    "$REPO/conf/Dockerfile" | sed 's/.* CMD //')
	[ -n "$hc" ]
	hc=${hc//127.0.0.1:9000/127.0.0.1:$port}
	run sh -c "$hc"
	[ "$status" -eq 0 ]
	pp_stop
	run sh -c "$hc"
	[ "$status" -ne 0 ]
}

@test "docker-compose.yml: docker-compose config accepts it, with either override" {
	if command -v docker-compose >/dev/null 2>&1; then
		dc=(docker-compose)
	elif docker compose version >/dev/null 2>&1; then
		dc=(docker compose)
	else
		skip "docker-compose is not installed (Debian package docker-compose)"
	fi
	# In conf/ without -f: docker-compose.yml and docker-compose.override.yml.
	run sh -c "cd '$REPO/conf' && ${dc[*]} config"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '127.0.0.1:8080:80\|host_ip: 127.0.0.1'
	for f in docker-compose.yml docker-compose.host.yml; do
		run "${dc[@]}" -f "$REPO/conf/docker-compose.yml" \
		    -f "$REPO/conf/$f" config -q
		echo "$output"
		[ "$status" -eq 0 ]
	done
	run "${dc[@]}" -f "$REPO/conf/docker-compose.yml" config --services
	[ "$(echo "$output" | sort | tr '\n' ' ')" = "nginx pipepool1 pipepool2 postgres " ]
	# The host override: every service on the host network.
	run "${dc[@]}" -f "$REPO/conf/docker-compose.yml" \
	    -f "$REPO/conf/docker-compose.host.yml" config
	[ "$(echo "$output" | grep -c 'network_mode: host')" -eq 4 ]
}

@test "compose-nginx.conf: nginx -t accepts it filled in; the upstream has both replicas" {
	need nginx nginx-light
	need envsubst gettext-base
	f=$REPO/conf/compose-nginx.conf
	grep -q 'server ${PIPEPOOL1} max_fails=1 fail_timeout=2s;' "$f"
	grep -q 'server ${PIPEPOOL2} max_fails=1 fail_timeout=2s;' "$f"
	grep -q 'fastcgi_next_upstream error timeout;' "$f"
	# As conf/Dockerfile.nginx fills it in, on loopback here.
	NGINX_LISTEN=127.0.0.1:80 PIPEPOOL1=127.0.0.1:9000 PIPEPOOL2=127.0.0.1:9001 \
	    envsubst '${NGINX_LISTEN} ${PIPEPOOL1} ${PIPEPOOL2}' <"$f" >"$T/compose-site.conf"
	! grep -q '${NGINX_LISTEN}\|${PIPEPOOL' "$T/compose-site.conf"
	grep -q 'add_header X-Upstream $upstream_addr always;' "$T/compose-site.conf"
	ng_wrap "$T/compose-site.conf"
	run nginx -t -p "$T/ng" -c "$T/ng/nginx.conf"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "Dockerfile.nginx and Dockerfile.postgres: bookworm-slim, Debian's packages, what compose fills in" {
	n=$REPO/conf/Dockerfile.nginx
	p=$REPO/conf/Dockerfile.postgres
	[ "$(grep -c '^FROM ' "$n")" -eq 1 ] && grep -q '^FROM debian:bookworm-slim$' "$n"
	[ "$(grep -c '^FROM ' "$p")" -eq 1 ] && grep -q '^FROM debian:bookworm-slim$' "$p"
	grep -q 'apt-get install -y --no-install-recommends nginx-light' "$n"
	grep -q 'apt-get install -y --no-install-recommends postgresql-15' "$p"
	# The variables the nginx image fills in are the ones the site has.
	cmd=$(sed -n 's/^CMD .*envsubst .\([^<]*\). <.*/\1/p' "$n")
	[ "$cmd" = '${NGINX_LISTEN} ${PIPEPOOL1} ${PIPEPOOL2}' ]
	[ "$(grep -o '${[A-Z0-9_]*}' "$REPO/conf/compose-nginx.conf" | sort -u | tr '\n' ' ')" = \
	    '${NGINX_LISTEN} ${PIPEPOOL1} ${PIPEPOOL2} ' ]
	grep -q '^USER postgres' "$p"
	grep -q '^STOPSIGNAL SIGINT' "$p"
	grep -q '^COPY conf/compose-postgres.sh ' "$p"
	[ -x "$REPO/conf/compose-postgres.sh" ]
	sh -n "$REPO/conf/compose-postgres.sh"
}

# --- man page -----------------------------------------------------------

@test "pipepool.8 renders without warnings and names every option" {
	need man man-db
	run env MANWIDTH=80 sh -c "man -l '$REPO/conf/pipepool.8' 2>&1 >/dev/null"
	echo "$output"
	[ -z "$output" ]
	if command -v groff >/dev/null 2>&1; then
		run groff -man -ww -z "$REPO/conf/pipepool.8"
		echo "$output"
		[ -z "$output" ]
	fi
	MANWIDTH=80 man -l "$REPO/conf/pipepool.8" 2>/dev/null | col -b >"$T/man.txt"
	for s in SYNOPSIS OPTIONS SIGNALS FILES "EXIT STATUS" ROUTES SIGHUP \
	    SIGTERM SIGINT /echo /kv /status /metrics /debug/; do
		grep -q -- "$s" "$T/man.txt" || { echo "man page lacks $s"; false; }
	done
	"$PIPEPOOL_BIN" --help | grep -oE '^  --[a-z-]+' | tr -d ' ' >"$T/opts"
	[ "$(wc -l <"$T/opts")" -ge 20 ]
	while read -r o; do
		grep -Eq "^ +$o( |$)" "$T/man.txt" || { echo "man page lacks $o"; false; }
	done <"$T/opts"
}

# --- example config -----------------------------------------------------

@test "pipepool.conf: documents every option, and runs as shipped" {
	"$PIPEPOOL_BIN" --help | grep -oE '^  --[a-z-]+' | sed 's/^  --//' |
	    grep -vx -e config -e help -e version >"$T/opts"
	while read -r o; do
		grep -Eq "^#$o = " "$REPO/conf/pipepool.conf" ||
		    { echo "pipepool.conf lacks $o"; false; }
	done <"$T/opts"
	# Nothing is set as shipped: every setting line is commented out.
	run grep -Ec '^[a-z-]+ *=' "$REPO/conf/pipepool.conf"
	[ "$output" = 0 ]
	pp_start --config "$REPO/conf/pipepool.conf" --workers 2
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
}

@test "pipepool.conf: every documented value is valid" {
	# Uncommented in full it must parse: start-up then stops at the bad
	# --listen below, not at a line of the file.
	# (user and group as the example names them may not exist here.)
	sed -E -e 's/^#([a-z-]+ = )/\1/' -e "s/^user = .*/user = $(id -un)/" \
	    -e "s/^group = .*/group = $(id -gn)/" "$REPO/conf/pipepool.conf" >"$T/all.conf"
	grep -q '^workers = ' "$T/all.conf"
	run "$PIPEPOOL_BIN" --config "$T/all.conf" --allow-root --listen unix:relative
	echo "$output"
	[ "$status" -eq 64 ]
	[[ "$output" == "pipepool: --listen: 'unix:relative' is not an absolute path"* ]]
	# And with what this host can run, it serves (the app and exec
	# examples name installed files, which the start now probes).
	sed -E -e 's/^#([a-z-]+ = )/\1/' \
	    -e '/^(listen|user|group|socket-owner|socket-group|worker-rlimit-as|app|exec) =/d' \
	    "$REPO/conf/pipepool.conf" >"$T/run.conf"
	pp_start --config "$T/run.conf" --workers 2
	ng_start
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
}

@test "config file: an unknown key exits 64 naming FILE:LINE" {
	printf '# a comment\nworkers = 2\nno-such-option = 1\n' >"$T/bad.conf"
	run "$PIPEPOOL_BIN" --config "$T/bad.conf" --allow-root --listen "unix:$T/x.sock"
	echo "$output"
	[ "$status" -eq 64 ]
	[[ "$output" == *"$T/bad.conf:3: "*"no-such-option"* ]]
	[ ! -e "$T/x.sock" ]
}

@test "config file: a bad value exits 64 naming FILE:LINE and the value" {
	printf '[pipepool]\n\nworkers = 2\ntimeout = soon\n' >"$T/bad.conf"
	run "$PIPEPOOL_BIN" --config "$T/bad.conf" --allow-root --listen "unix:$T/x.sock"
	echo "$output"
	[ "$status" -eq 64 ]
	[[ "$output" == *"$T/bad.conf:4: "*"timeout"*"soon"* ]]
	printf 'workers = 0\n' >"$T/bad2.conf"
	run "$PIPEPOOL_BIN" --config "$T/bad2.conf" --allow-root --listen "unix:$T/x.sock"
	[ "$status" -eq 64 ]
	[[ "$output" == *"$T/bad2.conf:1: "*"workers"* ]]
}

@test "config file: a missing file exits 64 naming it" {
	run "$PIPEPOOL_BIN" --config "$T/nope.conf" --allow-root --listen "unix:$T/x.sock"
	echo "$output"
	[ "$status" -eq 64 ]
	[[ "$output" == *"$T/nope.conf"* ]]
	[ "$(echo "$output" | wc -l)" -eq 1 ]
}

@test "config file: a directory, a NUL byte or an over-long line exits 64 naming FILE" {
	cfg() {
		run "$PIPEPOOL_BIN" --config "$1" --allow-root --listen "unix:$T/x.sock"
		echo "$output"
		[ "$status" -eq 64 ]
		[ "${#lines[@]}" -eq 1 ]
		[[ "$output" == *"$2"* ]]
	}
	mkdir "$T/dir.conf"
	cfg "$T/dir.conf" "--config: '$T/dir.conf' is not a regular file"
	# libinih would end the line at the NUL and take 'workers = 2' alone.
	printf 'workers = 2\000junk = 1\n' >"$T/nul.conf"
	cfg "$T/nul.conf" "$T/nul.conf:1: a NUL byte"
	# libinih would cut it at 200 bytes and take a truncated --db.
	{ printf 'workers = 2\ndb = /tmp/'; head -c 300 /dev/zero | tr '\0' a; echo; } >"$T/long.conf"
	cfg "$T/long.conf" "$T/long.conf:2: longer than 198 bytes"
	[ ! -e "$T/x.sock" ]
}

# --- install ------------------------------------------------------------

@test "install.sh installs its files under DESTDIR/PREFIX and uninstall removes them" {
	[ -x "$REPO/build/rel/pipepool" ] || skip "no release build (make)"
	mkdir -p "$T/root/usr/local/share/doc/other"
	touch "$T/root/usr/local/share/doc/other/keep"
	run env DESTDIR="$T/root" PREFIX=/usr/local sh "$REPO/conf/install.sh" install
	echo "$output"
	[ "$status" -eq 0 ]
	r=$T/root/usr/local
	[ "$(stat -c %a "$r/sbin/pipepool")" = 755 ]
	[ "$(stat -c %a "$r/share/man/man8/pipepool.8")" = 644 ]
	[ "$(stat -c %a "$r/share/doc/pipepool/pipepool.conf")" = 644 ]
	"$r/sbin/pipepool" --version | grep -q '^pipepool '
	cmp "$REPO/conf/pipepool.8" "$r/share/man/man8/pipepool.8"
	cmp "$REPO/conf/pipepool.conf" "$r/share/doc/pipepool/pipepool.conf"
	cmp "$REPO/conf/nginx-cgi.conf" "$r/share/doc/pipepool/nginx-cgi.conf"
	cmp "$REPO/worker/app/pipepool.h" "$r/include/pipepool.h"
	[ "$(stat -c %a "$r/share/pkgconfig/pipepool.pc")" = 644 ]
	grep -qx 'prefix=/usr/local' "$r/share/pkgconfig/pipepool.pc"
	n=0
	for f in "$REPO"/conf/examples/*; do
		[ -f "$f" ] || continue		# a __pycache__ is not shipped
		cmp "$f" "$r/share/pipepool/examples/$(basename "$f")"
		n=$((n + 1))
	done
	[ "$(find "$T/root" -type f | wc -l)" -eq $((7 + n)) ]
	run env DESTDIR="$T/root" PREFIX=/usr/local sh "$REPO/conf/install.sh" uninstall
	[ "$status" -eq 0 ]
	[ "$(find "$T/root" -type f)" = "$r/share/doc/other/keep" ]
	[ ! -e "$r/share/doc/pipepool" ]
	[ ! -e "$r/share/pipepool" ]
	[ ! -e "$r/share/pkgconfig" ]
	[ ! -e "$r/include" ]
	# Another PREFIX, and no argument is a usage error.
	run env DESTDIR="$T/root2" PREFIX=/opt/pp sh "$REPO/conf/install.sh" install
	[ "$status" -eq 0 ]
	[ -x "$T/root2/opt/pp/sbin/pipepool" ]
	run sh "$REPO/conf/install.sh"
	[ "$status" -eq 64 ]
}

@test "install: an application builds against the installed pipepool.h with pkg-config, and starts" {
	[ -x "$REPO/build/rel/pipepool" ] || skip "no release build (make)"
	need pkg-config pkg-config
	run env PREFIX="$T/pp" sh "$REPO/conf/install.sh" install
	echo "$output"
	[ "$status" -eq 0 ]
	export PKG_CONFIG_PATH=$T/pp/share/pkgconfig
	[ "$(pkg-config --modversion pipepool)" = "$("$T/pp/sbin/pipepool" --version | cut -d' ' -f2)" ]
	[ "$(pkg-config --variable=abi pipepool)" = 1 ]
	cflags=$(pkg-config --cflags pipepool)
	[ "$(echo $cflags)" = "-I$T/pp/include" ]
	# Not the source tree's header: only the installed one is in reach.
	cp "$REPO/tests/apps/good.c" "$T/app.c"
	cc -shared -fPIC -std=c11 -Wall -Wextra -Werror $cflags -o "$T/app.so" "$T/app.c"
	nm -D "$T/app.so" | grep -q ' pipepool_app$'
	# The installed pipepool takes it: its start (which loads it in a
	# probe first) gets as far as listening.
	"$T/pp/sbin/pipepool" --allow-root --listen "unix:$T/pp.sock" \
	    --db "$T/pp.db" --workers 1 --app "$T/app.so" 2>"$T/pp.log" &
	PP_PID=$! PP_LOG=$T/pp.log
	wait_for 10 grep -q 'listening on' "$PP_LOG"
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
}

@test "make install and make uninstall use install.sh" {
	grep -q '^install:' "$REPO/Makefile" || skip "the Makefile has no install target yet"
	run make -C "$REPO" install DESTDIR="$T/root" PREFIX=/usr
	echo "$output"
	[ "$status" -eq 0 ]
	[ -x "$T/root/usr/sbin/pipepool" ]
	[ -f "$T/root/usr/share/man/man8/pipepool.8" ]
	[ -f "$T/root/usr/share/doc/pipepool/pipepool.conf" ]
	run make -C "$REPO" uninstall DESTDIR="$T/root" PREFIX=/usr
	[ "$status" -eq 0 ]
	[ -z "$(find "$T/root" -type f)" ]
}

# --- demo ---------------------------------------------------------------

# demo_ready: wait for demo.sh's "demo: ready" line in $T/demo.out; set
# ng, m1, m2 (nginx's and the masters' pids) and dir from it.
demo_ready() {
	local line
	wait_for 20 grep -q '^demo: ready' "$T/demo.out"
	line=$(grep '^demo: ready' "$T/demo.out")
	ng=$(echo "$line" | sed -E 's/.* nginx=([0-9]+).*/\1/')
	m1=$(echo "$line" | sed -E 's/.* pp1=([0-9]+).*/\1/')
	m2=$(echo "$line" | sed -E 's/.* pp2=([0-9]+).*/\1/')
	dir=$(echo "$line" | sed -E 's/.* dir=([^ ]+).*/\1/')
}

@test "demo: nginx over two instances; one killed, the other answers; SIGTERM leaves nothing" {
	need nginx nginx-light
	p0=$(free_port); p1=$(other_port "$p0"); p2=$(other_port "$p0" "$p1")
	DEMO_PORT=$p0 DEMO_PP1_PORT=$p1 DEMO_PP2_PORT=$p2 \
	    PIPEPOOL_BIN=$PIPEPOOL_BIN sh "$REPO/conf/demo.sh" \
	    >"$T/demo.out" 2>"$T/demo.err" 3>&- &
	DEMO_PID=$!
	demo_ready
	[ -d "$dir" ]
	grep -q "http://127.0.0.1:$p0/" "$T/demo.out"
	DEMO_ALL=$(descendants "$DEMO_PID")
	for p in "$ng" "$m1" "$m2"; do echo "$DEMO_ALL" | grep -qx "$p"; done
	url=http://127.0.0.1:$p0

	# Both instances answer: worker pids from two different masters.
	worker_pids "$url" 30 >"$T/pids"
	[ "$(wc -l <"$T/pids")" -eq 30 ]
	while read -r w; do ppid_of "$w"; done <"$T/pids" | sort -u >"$T/masters"
	printf '%s\n' "$m1" "$m2" | sort | cmp - "$T/masters"

	# Kill instance 1 outright: its master and all its children.
	kids=$(pgrep -P "$m1")
	[ -n "$kids" ]
	# shellcheck disable=SC2086 # one pid per word
	kill -KILL "$m1" $kids
	wait_for 5 eval '! alive $m1'
	for i in $(seq 20); do
		curl -s -D "$T/h" -o /dev/null -w '%{http_code}\n' "$url/?after=$i" >>"$T/codes"
		tr -d '\r' <"$T/h" | awk -F': ' 'tolower($1)=="x-worker-pid"{print $2}' >>"$T/pids2"
	done
	[ "$(sort -u "$T/codes")" = 200 ]
	[ "$(wc -l <"$T/pids2")" -eq 20 ]
	while read -r w; do ppid_of "$w"; done <"$T/pids2" | sort -u >"$T/masters2"
	[ "$(cat "$T/masters2")" = "$m2" ]

	# SIGTERM stops the rest and removes the folder; no pid is left.
	DEMO_ALL="$DEMO_ALL $(descendants "$DEMO_PID")"
	kill -TERM "$DEMO_PID"
	wait_for 30 eval '! kill -0 $DEMO_PID'
	wait "$DEMO_PID" && rc=0 || rc=$?
	DEMO_PID=
	[ "$rc" -eq 0 ]
	for p in $DEMO_ALL; do
		if alive "$p"; then
			echo "pid $p is left: $(tr '\0' ' ' <"/proc/$p/cmdline")"
			false
		fi
	done
	[ ! -e "$dir" ]
	grep -q 'demo: stopped' "$T/demo.err"
}

@test "demo: PORT picks nginx's port, as for make run" {
	need nginx nginx-light
	p0=$(free_port); p1=$(other_port "$p0"); p2=$(other_port "$p0" "$p1")
	env -u DEMO_PORT PORT="$p0" DEMO_PP1_PORT="$p1" DEMO_PP2_PORT="$p2" \
	    DEMO_QUIET=1 PIPEPOOL_BIN="$PIPEPOOL_BIN" sh "$REPO/conf/demo.sh" \
	    >"$T/demo.out" 2>"$T/demo.err" 3>&- &
	DEMO_PID=$!
	wait_for 20 grep -q '^demo: ready' "$T/demo.out"
	grep -q "^pipepool demo: http://127.0.0.1:$p0/" "$T/demo.out"
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p0/")" = 200 ]
	DEMO_ALL=$(descendants "$DEMO_PID")
	kill -TERM "$DEMO_PID"
	wait_for 30 eval '! kill -0 $DEMO_PID'
	wait "$DEMO_PID" && rc=0 || rc=$?
	DEMO_PID=
	[ "$rc" -eq 0 ]
}

@test "demo: DEMO_DB puts both instances on one PostgreSQL: a key written through one is read through the other" {
	need nginx nginx-light
	DEMO_PG=$(mktemp -d /tmp/pp-pg.XXXXXX)
	pg=$(free_port)
	sh "$REPO/tests/tools/pg.sh" start "$DEMO_PG" "$pg"
	p0=$(other_port "$pg"); p1=$(other_port "$pg" "$p0")
	p2=$(other_port "$pg" "$p0" "$p1")
	DEMO_PORT=$p0 DEMO_PP1_PORT=$p1 DEMO_PP2_PORT=$p2 DEMO_QUIET=1 \
	    DEMO_DB="postgresql://postgres@127.0.0.1:$pg/postgres" \
	    DEMO_ARGS="--access-log - --access-log-buffer 0" \
	    PIPEPOOL_BIN=$PIPEPOOL_BIN sh "$REPO/conf/demo.sh" \
	    >"$T/demo.out" 2>"$T/demo.err" 3>&- &
	DEMO_PID=$!
	demo_ready
	url=http://127.0.0.1:$p0
	# nginx spreads the writes over both instances ...
	for i in $(seq 10); do
		[ "$(code -X PUT --data-binary "v$i" "$url/kv/k$i")" = 201 ]
	done
	# (each instance's access log says it took some)
	wait_for 5 grep -q '"PUT /kv/k' "$dir/pp1.log"
	wait_for 5 grep -q '"PUT /kv/k' "$dir/pp2.log"
	# ... and with instance 1 gone, every key is read through the other.
	kids=$(pgrep -P "$m1")
	# shellcheck disable=SC2086 # one pid per word
	kill -KILL "$m1" $kids
	wait_for 5 eval '! alive $m1'
	for i in $(seq 10); do
		[ "$(curl -s "$url/kv/k$i")" = "v$i" ]
	done
	alive "$m2"
	DEMO_ALL=$(descendants "$DEMO_PID")
	kill -TERM "$DEMO_PID"
	wait_for 30 eval '! kill -0 $DEMO_PID'
	DEMO_PID=
}

# --- status, metrics, slow log -----------------------------------------

@test "/status: JSON with the pool's figures" {
	pp_start --workers 2
	ng_start
	for i in 1 2 3 4 5; do curl -s -o /dev/null "$URL/?n=$i"; done
	curl -s -D "$T/h" -o "$T/s.json" "$URL/status"
	grep -q '^HTTP/1.1 200' "$T/h"
	grep -qi '^Content-Type: application/json' "$T/h"
	cat "$T/s.json"
	json_check "$T/s.json" 'isinstance(j["version"], str) and j["version"]'
	json_check "$T/s.json" "j['pid'] == $PP_PID"
	json_check "$T/s.json" 'isinstance(j["uptime_s"], int) and 0 <= j["uptime_s"] < 600'
	json_check "$T/s.json" 'j["queue"]["capacity"] == 128 and j["queue"]["depth"] >= 0'
	json_check "$T/s.json" 'all(isinstance(j["counters"][k], int) for k in
	    ("accepted", "completed", "status_2xx", "status_3xx", "status_4xx",
	     "status_5xx", "rejected_overload", "timeouts", "worker_crashes",
	     "respawns"))'
	json_check "$T/s.json" 'j["counters"]["status_2xx"] >= 5'
	json_check "$T/s.json" 'j["counters"]["accepted"] >= j["counters"]["completed"] >= 5'
	json_check "$T/s.json" 'all(w["state"] in ("idle", "busy", "starting") and
	    w["kind"] in ("worker", "store") and isinstance(w["id"], int) and
	    w["requests"] >= 0 and w["started_unix"] > 1600000000 for w in j["workers"])'
	# The listed workers are exactly the running ones (not the front).
	python3 -c 'import json,sys
print("\n".join(str(w["pid"]) for w in json.load(open(sys.argv[1]))["workers"]
    if w["kind"] == "worker"))' "$T/s.json" | sort >"$T/listed"
	pp_workers | sort | cmp - "$T/listed"
	json_check "$T/s.json" "$PP_FRONT not in [w['pid'] for w in j['workers']]"
	json_check "$T/s.json" 'sum(w["requests"] for w in j["workers"] if w["kind"] == "worker") >= 5'
}

# status_holds CHECK: /status, fetched now into $T/s.json, passes
# json_check CHECK.
status_holds() { curl -s -o "$T/s.json" "$URL/status" && json_check "$T/s.json" "$1"; }

@test "/status answers at once while every worker is busy" {
	pp_start --workers 1 --debug-routes
	ng_start
	curl -s -o "$T/sleep.out" "$URL/debug/sleep?ms=6000" 3>&- &
	sleeper=$!
	wait_for 5 status_holds '[w["state"] for w in j["workers"] if w["kind"] == "worker"] == ["busy"]'
	t=$(curl -s -o "$T/s2.json" -w '%{http_code} %{time_total}' "$URL/status")
	echo "$t"
	[ "${t% *}" = 200 ]
	# Not after the sleep (the worker is still busy: checked below);
	# the margin is for a loaded machine, seeing busy late.
	awk -v t="${t#* }" 'BEGIN { exit !(t < 3.0) }'
	json_check "$T/s2.json" '[w["state"] for w in j["workers"] if w["kind"] == "worker"] == ["busy"]'
	# The metrics too.
	[ "$(curl -s -o /dev/null -w '%{http_code}' -m 1 "$URL/metrics")" = 200 ]
	wait "$sleeper"
	grep -q 'slept 6000 ms' "$T/sleep.out"
	curl -s -o "$T/s3.json" "$URL/status"
	json_check "$T/s3.json" '[w["state"] for w in j["workers"] if w["kind"] == "worker"] == ["idle"]'
}

@test "/status: each worker's row shows the request it runs, and its PSS; the store is its own object" {
	pp_start --workers 3 --debug-routes
	ng_start
	curl -s -o "$T/sleep.out" "$URL/debug/sleep?ms=8000&who=row" 3>&- &
	sleeper=$!
	# The master samples PSS once a second; the sleeper must be taken.
	wait_for 5 status_holds '[w["request"]["line"] for w in j["workers"] if w["request"]] == ["GET /debug/sleep?ms=8000&who=row"] and all(isinstance(w["pss_kib"], int) and w["pss_kib"] > 0 for w in j["workers"])'
	cat "$T/s.json"
	# The HTML page now, while the request surely runs (a loaded
	# machine takes seconds over the checks below); read further down.
	curl -s -o "$T/s.html" "$URL/status?html"
	# Exactly the three workers, the busy one holding the request.
	json_check "$T/s.json" 'len(j["workers"]) == 3 and all(w["kind"] == "worker" for w in j["workers"])'
	json_check "$T/s.json" '[w["state"] for w in j["workers"] if w["request"]] == ["busy"]'
	json_check "$T/s.json" '0 <= [w["request"]["elapsed_ms"] for w in j["workers"] if w["request"]][0] < 9000'
	# The store: its own object, its pid the store process's.
	store=$(pp_kids "$PP_PID" 'pipepool: store')
	json_check "$T/s.json" "j['store']['pid'] == $store and j['store']['kind'] == 'store' and j['store']['state'] in ('idle', 'busy')"
	# /metrics counts three workers, and the store apart.
	curl -s -o "$T/m.txt" "$URL/metrics"
	[ "$(awk '/^pipepool_workers\{/ { n += $2 } END { print n }' "$T/m.txt")" = 3 ]
	grep -qx 'pipepool_store_up 1' "$T/m.txt"
	awk '$1 == "pipepool_workers_memory_pss_bytes" { exit !($2 > 0) }' "$T/m.txt"
	# The HTML page, as a browser builds it (from the page taken while
	# the request ran: a browser takes seconds to start): the request
	# in the workers' table, the store in a table of its own.
	dom="$T/s.html"
	if command -v chromium >/dev/null 2>&1; then
		timeout 120 chromium --headless --no-sandbox --disable-gpu \
		    --disable-background-networking --disable-component-update \
		    --disable-sync --no-first-run --user-data-dir="$T/chrome" \
		    --dump-dom "file://$T/s.html" >"$T/dom.html" 2>"$T/chrome.err"
		grep -q '<table id="workers">' "$T/dom.html"
		dom="$T/dom.html"
	fi
	python3 - "$dom" "$store" <<-'EOF'
	import sys
	from html.parser import HTMLParser
	class P(HTMLParser):
	    def __init__(self):
	        super().__init__(); self.tables = {}; self.t = None; self.cell = None
	    def handle_starttag(self, tag, a):
	        a = dict(a)
	        if tag == "table": self.t = self.tables.setdefault(a.get("id"), [])
	        if tag == "tr" and self.t is not None: self.t.append([])
	        if tag in ("td", "th") and self.t is not None: self.cell = ""
	    def handle_data(self, d):
	        if self.cell is not None: self.cell += d
	    def handle_endtag(self, tag):
	        if tag in ("td", "th") and self.cell is not None:
	            self.t[-1].append(self.cell); self.cell = None
	        if tag == "table": self.t = None
	p = P(); p.feed(open(sys.argv[1]).read())
	w = p.tables["workers"]
	head, rows = w[0], w[1:]
	assert len(rows) == 3, rows
	req = head.index("request")
	busy = [r for r in rows if r[req]]
	assert [r[req] for r in busy] == ["GET /debug/sleep?ms=8000&who=row"], rows
	assert int(busy[0][head.index("for (ms)")]) >= 0
	assert all(int(r[head.index("PSS (KiB)")]) > 0 for r in rows), rows
	s = p.tables["store"][1:]
	assert len(s) == 1 and s[0][1] == sys.argv[2], s
	EOF
	wait "$sleeper"
	grep -q 'slept 8000 ms' "$T/sleep.out"
	curl -s -o "$T/s2.json" "$URL/status"
	json_check "$T/s2.json" 'all(w["request"] is None for w in j["workers"])'
}

@test "/status?html renders in headless Chromium" {
	pp_start --workers 2
	ng_start
	curl -s -D "$T/h" -o "$T/s.html" "$URL/status?html"
	grep -q '^HTTP/1.1 200' "$T/h"
	grep -qi '^Content-Type: text/html' "$T/h"
	grep -q '<meta http-equiv="refresh" content="2">' "$T/s.html"
	grep -q '</html>' "$T/s.html"
	for w in $(pp_workers); do grep -q "<td>$w</td>" "$T/s.html"; done
	command -v chromium >/dev/null 2>&1 ||
	    skip "chromium is not installed (Debian package chromium): page checked, no screenshot"
	run timeout 120 chromium --headless --no-sandbox --disable-gpu \
	    --disable-background-networking --disable-component-update \
	    --disable-sync --no-first-run --user-data-dir="$T/chrome" \
	    --screenshot="$T/status.png" --window-size=800,600 "$URL/status?html"
	[ -s "$T/status.png" ] || { echo "$output"; false; }
	# An 800x600 PNG with more than a blank page in it.
	python3 - "$T/status.png" <<-'EOF'
	import struct, sys, zlib
	d = open(sys.argv[1], "rb").read()
	assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
	w, h = struct.unpack(">II", d[16:24])
	assert (w, h) == (800, 600), (w, h)
	i, idat = 8, b""
	while i < len(d):
	    n, t = struct.unpack(">I4s", d[i:i + 8])
	    if t == b"IDAT":
	        idat += d[i + 8:i + 8 + n]
	    i += 12 + n
	raw = zlib.decompress(idat)
	assert len(set(raw)) > 16, "the page looks blank"
	EOF
	mkdir -p "$REPO/build/test-output"
	cp "$T/status.png" "$REPO/build/test-output/status.png"
}

@test "/metrics: Prometheus text format that promtool accepts" {
	pp_start --workers 2
	ng_start
	for i in 1 2 3 4 5 6 7; do curl -s -o /dev/null "$URL/?n=$i"; done
	curl -s -o /dev/null "$URL/no-such-method" -X DELETE
	curl -s -D "$T/h" -o "$T/m.txt" "$URL/metrics"
	grep -q '^HTTP/1.1 200' "$T/h"
	grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/h"
	cat "$T/m.txt"
	val() { awk -v k="$1" '$1 == k { print $2 }' "$T/m.txt"; }
	[ "$(val 'pipepool_requests_total{code="200"}')" -ge 7 ]
	[ "$(val 'pipepool_requests_total{code="405"}')" -ge 1 ]
	[ "$(val 'pipepool_workers{state="idle"}')" -ge 2 ]
	[ "$(val pipepool_queue_capacity)" -eq 128 ]
	[ "$(val pipepool_queue_depth)" -eq 0 ]
	[ -n "$(val pipepool_worker_restarts_total)" ]
	[ -n "$(val pipepool_worker_crashes_total)" ]
	[ -n "$(val pipepool_timeouts_total)" ]
	[ -n "$(val pipepool_rejected_overload_total)" ]
	count=$(val pipepool_request_duration_seconds_count)
	[ "$count" -ge 8 ]
	[ "$(val 'pipepool_request_duration_seconds_bucket{le="+Inf"}')" -eq "$count" ]
	# Buckets are cumulative, in each histogram.
	grep '_bucket{' "$T/m.txt" | awk '{ n = $1; sub(/\{.*/, "", n)
	    if (n == name && $2 < last) exit 1; name = n; last = $2 }'
	command -v promtool >/dev/null 2>&1 ||
	    skip "promtool is not installed (Debian package prometheus): format checked by hand only"
	run promtool check metrics <"$T/m.txt"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "--slow logs a slow request with method, path, duration and worker pid" {
	pp_start --workers 1 --debug-routes --slow 100
	ng_start
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/")" = 200 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/debug/sleep?ms=300")" = 200 ]
	wait_for 5 log_has 'slow request: GET /debug/sleep'
	grep 'slow request:' "$PP_LOG"
	# Only requests over 100 ms are logged (GET / normally is not).
	grep 'slow request:' "$PP_LOG" | sed -E 's/.* took ([0-9]+) ms.*/\1/' |
	    awk '{ if ($1 <= 100) exit 1 }'
	line=$(grep 'slow request: GET /debug/sleep' "$PP_LOG")
	[ "$(echo "$line" | wc -l)" -eq 1 ]
	ms=$(echo "$line" | sed -E 's/.* took ([0-9]+) ms.*/\1/')
	[ "$ms" -ge 300 ] && [ "$ms" -lt 5000 ]
	w=$(echo "$line" | sed -E 's/.*worker pid ([0-9]+).*/\1/')
	pp_workers | grep -qx "$w"
	# Logged by whoever answered: the front, or the worker that sent its
	# answer on nginx's connection itself (then that very worker).
	echo "$line" | grep -Eq "pid=[0-9]+ front: |pid=$w worker [0-9]+: "
}
