#!/usr/bin/env bash
# tests/bench/run.sh - `make bench`: pipepool against an inline libfcgi baseline.
#
# What it measures, all through one nginx (one worker, fastcgi_keep_conn on,
# upstream keepalive) on 127.0.0.1, load from wrk:
#   * GET /        ("hello", 33-byte answer) at 16 and 64 connections
#   * POST /echo   with a 64 KiB body, at 16 and 64 connections
# for pipepool (build/pipepool --workers 4, as conf/ ships it) and for tests/bench/inline.c, a
# minimal threaded libfcgi responder that gives the same answers in-process.
# Rounds are interleaved (pipepool, inline, inline, pipepool, ...); the report
# gives the median req/s, p50 and p99 of each and the pipepool/inline ratios
# against the targets (hello req/s >= 0.90, hello p99 <= 1.3, echo req/s >=
# 0.80), then the PSS of all pipepool's processes (target <= 8192 KiB) idle,
# under load (sampled half-way through each round) and after it, and a
# soak (BENCH_SOAK_SECONDS of mixed load, tests/bench/mix.lua) that checks
# the PSS does not grow.  If php-fpm8.2 and/or fcgiwrap are installed, they are run as
# extra comparison points (pipepool/php-fpm hello req/s target >= 2.0), and so
# is inline.c -w (inline-poll: the inline responder with the poll(2) before
# each read that pipepool's front does; a reference, no target).
# Also shown, without targets: server CPU time per request (from /proc), and a
# stall check (wrk hides connections that never get an answer; see parse_wrk).
# Then, each through an nginx of its own: the worker hop alone (report_hop),
# the store (bench_kv; on PostgreSQL: tests/bench/kvpg.sh) and the
# applications (tests/bench/apps.sh: hello as
# an --app module against the built-in; one WSGI application under pipepool
# --exec, gunicorn and uWSGI), and a pool sized to the load
# (tests/bench/pool.sh: --workers MIN:MAX at rest against a fixed pool of
# MIN, under a step load against a fixed pool of MAX), and what the
# observability costs (tests/bench/obs.sh: hello with --access-log, --slow 1
# and /status + /metrics polled every 100 ms, against none of it), and CGI
# programs under pipepool --cgi against fcgiwrap (tests/bench/cgi.sh: a C
# CGI hello, and a git clone through git-http-backend), and the client
# connections from 16 to 1,024 (tests/bench/scale.sh), and hello against
# uWSGI's internal routing and php-fpm on kept connections
# (tests/bench/rivals.sh).
#
# It is a report: it exits 0 when a figure MISSes, non-zero only when something
# fails to start (or a server dies under load).  It installs nothing: `make
# bench` runs tests/bench/peers.sh first, which installs the peers it
# compares with (a peer not installed is skipped, and the report says so).
#
# Environment:
#   PIPEPOOL_BIN          server binary (default build/pipepool)
#   BENCH_ROUNDS          rounds per scenario and server (default 3)
#   BENCH_SECONDS         wrk duration of each round (default 3)
#   BENCH_CONNS           wrk connection counts (default "16 64")
#   BENCH_WORKERS         pipepool --workers, php-fpm/fcgiwrap children (default 4)
#   BENCH_PP_ARGS         more pipepool options (default none: what conf/ ships)
#   BENCH_INLINE_THREADS  threads of the inline responder (default 128, see below)
#   BENCH_INLINE_PROCS    processes of the inline responder (default 1)
#   BENCH_EXTRAS=0        leave out inline-poll, php-fpm and fcgiwrap
#   BENCH_SOAK_SECONDS    memory soak length (default 60, 0 = none)
#   BENCH_KEEP_TMP=1      keep the temp dir (nginx.conf, logs, wrk output)
#   BENCH_ONLY            the sections to run, of "core hop kv kvpg apps pool
#                         obs cgi scale rivals" (default all; e.g. BENCH_ONLY=apps);
#                         BENCH_KV=0, BENCH_KVPG=0, BENCH_APPS=0, BENCH_POOL=0,
#                         BENCH_OBS=0, BENCH_CGI=0, BENCH_SCALE=0 and
#                         BENCH_RIVALS=0 leave one out.  Each section's own
#                         knobs are in its comment (bench_kv, kvpg.sh,
#                         apps.sh, pool.sh, obs.sh, cgi.sh, scale.sh, rivals.sh).
set -euo pipefail

ROOT=$(pwd)
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PIPEPOOL_BIN=${PIPEPOOL_BIN:-build/pipepool}
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_SECONDS:-3}
CONNS=${BENCH_CONNS:-16 64}
WORKERS=${BENCH_WORKERS:-4}
# What users get: the options conf/ ships, none (issue #19).  With
# BENCH_EXTRAS, pipepool-pinned shows the one setting measured to change
# hello here: the whole tree on the last CPU (--cpu-affinity), its
# front/worker hand-offs same-CPU wake-ups and the other CPUs left to nginx
# and wrk; not the default, as it caps an application at one CPU.
PP_EXTRA=${BENCH_PP_ARGS-}
PP_PINNED="--cpu-affinity $(($(nproc) - 1))"
# Inline responder size.  pipepool runs a master plus WORKERS workers; the
# inline responder cannot be sized the same way: with fastcgi_keep_conn a
# libfcgi thread stays on its connection (blocked reading the next request)
# until nginx closes it, so it needs one thread per upstream connection nginx
# may hold open (up to the client concurrency plus the keepalive cache),
# otherwise requests wait unaccepted in the listen backlog.  Idle threads cost
# nothing but a stack; CPU use is the same 2 cores.  128 threads in 1 process
# covers 64 client connections + keepalive 64.
INLINE_THREADS=${BENCH_INLINE_THREADS:-128}
INLINE_PROCS=${BENCH_INLINE_PROCS:-1}
NGINX=${NGINX:-/usr/sbin/nginx}
EXTRAS=${BENCH_EXTRAS:-1}
PHP_FPM=php-fpm8.2
FCGIWRAP=/usr/sbin/fcgiwrap
START_TIMEOUT=${BENCH_START_TIMEOUT:-15}
MEM_TARGET_KIB=8192
SOAK=${BENCH_SOAK_SECONDS:-60}

HELLO_BODY='hello world from another process'

TMP=
declare -A PID=()      # name -> pid of each process this script started
declare -A STOP_SIG=() # name -> its stop signal, when not TERM
START_ORDER=()         # names, in start order
PP_TREE=               # pipepool master + descendants, seen last

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

# ---------------------------------------------------------------- processes

# Start NAME CMD...: run CMD in the background, output into $TMP/NAME.log.
start_bg() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    START_ORDER+=("$name")
}

# Is pid $1 running (a zombie is not)?
alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Print PID and all its descendants (walks the ppid field of /proc/*/stat).
proc_tree() {
    local root=$1 f pid rest ppid k
    local -A kids=()
    for f in /proc/[0-9]*/stat; do
        pid=${f#/proc/}
        pid=${pid%/stat}
        rest=
        { read -r rest <"$f"; } 2>/dev/null || continue
        rest=${rest##*) }           # drop "pid (comm) ", comm may hold spaces
        ppid=${rest#* }
        ppid=${ppid%% *}
        kids[$ppid]+="$pid "
    done
    alive "$root" || return 0
    local queue=("$root") out=()
    while ((${#queue[@]} > 0)); do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        out+=("$pid")
        for k in ${kids[$pid]:-}; do
            queue+=("$k")
        done
    done
    echo "${out[@]}"
}

# Terminate one process we started: signal SIG (default TERM), up to 5 s,
# then SIGKILL.
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    alive "$pid" || return 0
    kill -"$sig" "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "bench: pid $pid ignored SIG$sig, killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# stop_tree NAME [PID...]: stop process NAME that we started (its
# STOP_SIG), then whichever of its descendants (seen before it stopped) and
# of the PIDs given outlive it, by pid.
stop_tree() {
    local name=$1 top=${PID[$1]} tree pid
    shift
    tree="$(proc_tree "$top") $*"
    stop_pid "$top" "${STOP_SIG[$name]:-TERM}"
    wait "$top" 2>/dev/null || true
    for pid in $tree; do
        [[ $pid == "$top" ]] && continue
        if alive "$pid"; then
            # fcgiwrap's children do; the others' should not
            [[ $name == fcgiwrap* ]] ||
                log "bench: $name process $pid outlived it, stopping it"
            stop_pid "$pid"
        fi
    done
}

# stop_section NAME...: stop what a section started, in the order given,
# and forget it.
stop_section() {
    local name keep=()
    for name in "$@"; do
        [[ -n ${PID[$name]:-} ]] || continue
        stop_tree "$name"
        unset "PID[$name]"
    done
    for name in "${START_ORDER[@]}"; do
        [[ -n ${PID[$name]:-} ]] && keep+=("$name")
    done
    START_ORDER=("${keep[@]}")
}

cleanup() {
    local rc=$? i name
    trap - EXIT INT TERM
    for ((i = ${#START_ORDER[@]} - 1; i >= 0; i--)); do
        name=${START_ORDER[i]}
        if [[ $name == pipepool ]]; then
            # shellcheck disable=SC2086  # a pid list
            stop_tree "$name" $PP_TREE
        else
            stop_tree "$name"
        fi
    done
    # the kvpg section's PostgreSQL, if it was cut short
    if [[ -n ${KVPG_DIR:-} ]]; then
        sh "$ROOT/tests/tools/pg.sh" stop "$KVPG_DIR" || true
        rm -rf -- "$KVPG_DIR"
    fi
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
            log "bench: kept $TMP"
        else
            rm -rf -- "$TMP"
        fi
    fi
    exit "$rc"
}

# ---------------------------------------------------------------- setup

check_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    [[ -x $NGINX ]] || missing+=(nginx-light)
    command -v curl >/dev/null || missing+=(curl)
    command -v gcc >/dev/null || missing+=(gcc)
    [[ -e /usr/include/fcgiapp.h ]] || missing+=(libfcgi-dev)
    if ((${#missing[@]} > 0)); then
        log "bench: missing tools; install them with:"
        log "  apt-get update && apt-get install -y ${missing[*]}"
        exit 1
    fi
    [[ -x $PIPEPOOL_BIN ]] || die "no executable $PIPEPOOL_BIN (run make first)"
}

build_inline() {
    gcc -std=c11 -Wall -Wextra -Werror -O2 -o "$TMP/inline" \
        "$BENCH_DIR/inline.c" -lfcgi -lpthread ||
        die "cannot build tests/bench/inline.c"
}

# Is TCP port $1 listening on any address?  (/proc/net/tcp{,6}, state 0A)
port_in_use() {
    local hex
    printf -v hex '%04X' "$1"
    awk -v h=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h { f = 1 }
                      END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Print a free port not in the space-separated list $1.
pick_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 30000))
        [[ " $1 " == *" $p "* ]] && continue
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "no free TCP port found"
}

# Server blocks: name -> port.  TARGETS lists the servers under test.
declare -A PORT=()
TARGETS=(pipepool inline)

# fastcgi location body shared by every server block.
fcgi_common() {
    echo "            include /etc/nginx/fastcgi_params;"
    # Debian's fastcgi_params sends DOCUMENT_URI already; never send it twice
    grep -q DOCUMENT_URI /etc/nginx/fastcgi_params ||
        echo "            fastcgi_param DOCUMENT_URI \$document_uri;"
    # room for the 64 KiB echo answer in memory (no temp file)
    echo "            fastcgi_buffer_size 16k;"
    echo "            fastcgi_buffers 16 16k;"
}

# nginx_head NAME: the top of an nginx.conf whose files are $TMP/NAME*,
# up to the open http block.
nginx_head() {
    local n=$1
    echo "# generated by tests/bench/run.sh"
    ((EUID == 0)) && echo 'user root;'
    cat <<EOF
worker_processes 1;
pid $TMP/$n.pid;
error_log $TMP/$n-error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/$n-body;
    fastcgi_temp_path $TMP/$n-fastcgi;
    proxy_temp_path $TMP/$n-proxy;
    uwsgi_temp_path $TMP/$n-uwsgi;
    scgi_temp_path $TMP/$n-scgi;
EOF
}

# kept_server NAME: an upstream on $TMP/NAME.sock with kept connections,
# and the server block on PORT[NAME] that uses it.  The pool holds
# KEPT_POOL (default 64, as in conf/nginx.conf): enough for the largest
# client concurrency, so that neither server is handed a new connection per request once warm (both
# serve a new connection more slowly than a kept one).
kept_server() {
    local name=$1
    cat <<EOF
    upstream $name {
        server unix:$TMP/$name.sock;
        keepalive ${KEPT_POOL:-64};
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${PORT[$name]};
        location / {
$(fcgi_common)
            fastcgi_keep_conn on;
            fastcgi_pass $name;
        }
    }
EOF
}

# plain_server NAME SCRIPT SOCKET: one connection per request, the usual
# deployment of php-fpm and fcgiwrap (both run one request per child on a
# connection, so a kept connection would pin a child like a libfcgi
# thread).
plain_server() {
    cat <<EOF
    server {
        listen 127.0.0.1:${PORT[$1]};
        location / {
$(fcgi_common)
            fastcgi_param SCRIPT_FILENAME $2;
            fastcgi_param SCRIPT_NAME /${2##*/};
            fastcgi_pass unix:$3;
        }
    }
EOF
}

# The main nginx.conf, on stdout.
write_nginx_conf() {
    local name
    nginx_head nginx
    cat <<EOF
    # the 64 KiB echo body stays in memory, both ways
    client_body_buffer_size 128k;
    client_max_body_size 1m;
EOF
    for name in pipepool inline; do
        kept_server "$name"
    done
    for name in inline-poll pipepool-pinned; do
        [[ -z ${PORT[$name]:-} ]] || kept_server "$name"
    done
    if [[ -n ${PORT[php-fpm]:-} ]]; then
        plain_server php-fpm "$BENCH_DIR/hello.php" "$TMP/php.sock"
    fi
    if [[ -n ${PORT[fcgiwrap]:-} ]]; then
        plain_server fcgiwrap "$TMP/hello.cgi" "$TMP/cgi.sock"
    fi
    echo '}'
}

# servers_up NGINX WRITE SERVER...: once each SERVER has its socket
# $TMP/SERVER.sock, start nginx NGINX (nginx_up), then wait until each
# SERVER answers through it (wait_answer).
servers_up() {
    local n=$1 write=$2 name
    shift 2
    for name in "$@"; do
        wait_socket "$name" "$TMP/$name.sock"
    done
    nginx_up "$n" "$write" "$@"
    for name in "$@"; do
        wait_answer "$name"
    done
}

# nginx_up NAME WRITE SERVER...: start nginx NAME with the config that the
# function WRITE prints (into $TMP/NAME.conf), one fresh port per SERVER
# (PORT[SERVER]); wait until it gives any HTTP answer (even 502) on the
# first SERVER's port.  Retried on fresh ports when one was taken meanwhile.
nginx_up() {
    local n=$1 write=$2 attempt name used i
    shift 2
    for ((attempt = 1; attempt <= 5; attempt++)); do
        used=
        for name in "$@"; do
            PORT[$name]=$(pick_port "$used")
            used+=" ${PORT[$name]}"
        done
        "$write" >"$TMP/$n.conf"
        "$NGINX" -p "$TMP" -c "$TMP/$n.conf" -t >"$TMP/$n-test.log" 2>&1 || {
            cat "$TMP/$n-test.log" >&2
            die "nginx ($n) rejected the generated config"
        }
        start_bg "$n" "$NGINX" -p "$TMP" -c "$TMP/$n.conf" -g 'daemon off;'
        for ((i = 0; i < START_TIMEOUT * 10; i++)); do
            if ! alive "${PID[$n]}"; then
                wait "${PID[$n]}" 2>/dev/null || true
                if grep -q 'Address already in use' "$TMP/$n.log" "$TMP/$n-error.log" 2>/dev/null; then
                    unset 'START_ORDER[-1]'
                    continue 2
                fi
                cat "$TMP/$n.log" "$TMP/$n-error.log" >&2 2>/dev/null || true
                die "nginx ($n) failed to start"
            fi
            # any HTTP answer (even 502) means nginx listens
            if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
                "http://127.0.0.1:${PORT[$1]}/" 2>/dev/null) != 000 ]]; then
                return 0
            fi
            sleep 0.1
        done
        die "nginx ($n) did not answer within ${START_TIMEOUT}s"
    done
    die "nginx ($n) could not bind free ports"
}

# Wait until socket $2 exists for server $1 (pid alive meanwhile).
wait_socket() {
    local name=$1 sock=$2 i
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        [[ -S $sock ]] && return 0
        if ! alive "${PID[$name]}"; then
            cat "$TMP/$name.log" >&2 || true
            die "$name exited before creating $sock"
        fi
        sleep 0.1
    done
    cat "$TMP/$name.log" >&2 || true
    die "$name did not create $sock within ${START_TIMEOUT}s"
}

# Wait until GET / through nginx to server $1 gives 200 and the hello body.
wait_answer() {
    local name=$1 i code
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        code=$(curl -s -o "$TMP/ready.body" -w '%{http_code}' --max-time 2 \
            "http://127.0.0.1:${PORT[$name]}/" 2>/dev/null) || true
        if [[ $code == 200 ]] && grep -qx "$HELLO_BODY" "$TMP/ready.body"; then
            return 0
        fi
        alive "${PID[$name]}" || {
            cat "$TMP/$name.log" >&2 || true
            die "$name exited during start-up"
        }
        sleep 0.1
    done
    cat "$TMP/$name.log" "$TMP/nginx-error.log" >&2 2>/dev/null || true
    die "$name did not answer GET / with 200 within ${START_TIMEOUT}s (last status $code)"
}

# One-off correctness check of server $1: hello headers/body, 64 KiB echo.
check_answers() {
    local name=$1 url="http://127.0.0.1:${PORT[$1]}" ok=1
    curl -s -D "$TMP/check.hdr" -o "$TMP/check.body" --max-time 5 "$url/" || true
    if ! grep -qx "$HELLO_BODY" "$TMP/check.body" ||
        ! grep -qi '^content-type: text/plain; charset=utf-8' "$TMP/check.hdr" ||
        ! grep -qi '^x-worker-pid: [0-9]' "$TMP/check.hdr" ||
        ! grep -qi '^content-length: 33' "$TMP/check.hdr"; then
        log "bench: WARNING: $name: GET / answer differs from the expected hello"
        ok=0
    fi
    if [[ $name == pipepool* || $name == inline ]]; then
        curl -s -o "$TMP/check.echo" --max-time 5 --data-binary "@$TMP/body.bin" \
            -H 'Content-Type: application/octet-stream' "$url/echo" || true
        if ! cmp -s "$TMP/body.bin" "$TMP/check.echo"; then
            log "bench: WARNING: $name: POST /echo (64 KiB) did not echo the body"
            ok=0
        fi
    fi
    ((ok == 1)) && log "bench: $name answers correctly"
    return 0
}

start_servers() {
    # shellcheck disable=SC2086
    pp_start pipepool --workers "$WORKERS" $PP_EXTRA
    start_bg inline "$TMP/inline" -s "$TMP/inline.sock" \
        -t "$INLINE_THREADS" -p "$INLINE_PROCS"
    wait_socket pipepool "$TMP/pipepool.sock"
    wait_socket inline "$TMP/inline.sock"

    if [[ $EXTRAS == 1 ]]; then
        # For reference: the inline responder with pipepool's poll before
        # each read (inline.c -w); no target.
        start_bg inline-poll "$TMP/inline" -w -s "$TMP/inline-poll.sock" \
            -t "$INLINE_THREADS" -p "$INLINE_PROCS"
        wait_socket inline-poll "$TMP/inline-poll.sock"
        TARGETS+=(inline-poll)
        # shellcheck disable=SC2086
        pp_start pipepool-pinned --workers "$WORKERS" $PP_EXTRA $PP_PINNED
        wait_socket pipepool-pinned "$TMP/pipepool-pinned.sock"
        TARGETS+=(pipepool-pinned)
    fi

    if [[ $EXTRAS == 1 ]] && command -v "$PHP_FPM" >/dev/null; then
        write_php_conf
        local php_args=(-F -y "$TMP/php-fpm.conf")
        ((EUID == 0)) && php_args+=(-R)
        start_bg php-fpm "$PHP_FPM" "${php_args[@]}"
        wait_socket php-fpm "$TMP/php.sock"
        TARGETS+=(php-fpm)
    fi
    if [[ $EXTRAS == 1 && -x $FCGIWRAP ]]; then
        cat >"$TMP/hello.cgi" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain; charset=utf-8\r\nX-Worker-Pid: %s\r\nContent-Length: 33\r\n\r\nhello world from another process\n' "$$"
EOF
        chmod 755 "$TMP/hello.cgi"
        start_bg fcgiwrap "$FCGIWRAP" -c "$WORKERS" -s "unix:$TMP/cgi.sock"
        wait_socket fcgiwrap "$TMP/cgi.sock"
        TARGETS+=(fcgiwrap)
    fi

    nginx_up nginx write_nginx_conf "${TARGETS[@]}"
    local name
    for name in "${TARGETS[@]}"; do
        wait_answer "$name"
    done
    head -c 65536 /dev/urandom >"$TMP/body.bin"
    for name in "${TARGETS[@]}"; do
        check_answers "$name"
    done
}

write_php_conf() {
    local user_lines=
    ((EUID == 0)) && user_lines=$'user = root\ngroup = root'
    cat >"$TMP/php-fpm.conf" <<EOF
[global]
pid = $TMP/php-fpm.pid
error_log = $TMP/php-fpm-error.log
daemonize = no

[bench]
$user_lines
listen = $TMP/php.sock
pm = static
pm.max_children = $WORKERS
EOF
}

# ---------------------------------------------------------------- load

# wrk output on stdin -> "rps p50_us p99_us bad active"
#   bad:    non-2xx answers + socket errors
#   active: connections that really had a request in flight, by Little's law
#           (req/s x mean latency).  wrk counts a timeout only when a late
#           answer finally arrives, so a connection whose request is never
#           answered (a server thread pinned to another kept connection,
#           the request parked in the listen backlog) shows in no error
#           count; its latency is just missing and the percentiles describe
#           the few connections that did get served.  active << c shows it.
parse_wrk() {
    awk '
    function us(v) {
        if (v ~ /us$/) return v + 0
        if (v ~ /ms$/) return v * 1000
        if (v ~ /m$/)  return v * 60000000
        if (v ~ /h$/)  return v * 3600000000
        if (v ~ /s$/)  return v * 1000000
        return v + 0
    }
    $1 == "Latency" && NF > 2 { avg = us($2) }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad += $NF }
    /Socket errors:/ { for (i = 3; i <= NF; i += 2) { v = $(i + 1); sub(/,/, "", v); bad += v } }
    END { printf "%.2f %.1f %.1f %d %.1f\n", rps + 0, p50 + 0, p99 + 0, bad + 0, rps * avg / 1000000 }'
}

BUSY_BEFORE=0
CLK_TCK=$(getconf CLK_TCK)
RESULTS=    # file: "scenario conns target round rps p50 p99 bad active cpu_us nginx_us"

# CPU time (clock ticks, user + system, all threads) of pid $1 and its
# descendants, then of nginx: "server_ticks nginx_ticks".
cpu_ticks() {
    local pid stat server=0 web=0 f
    for pid in $(proc_tree "$1"); do
        { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || continue
        stat=${stat##*) }
        # after "pid (comm) ": state is field 1, utime 12, stime 13
        read -r -a f <<<"$stat"
        server=$((server + f[11] + f[12]))
    done
    for pid in $(proc_tree "${PID[nginx]}"); do
        { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || continue
        stat=${stat##*) }
        read -r -a f <<<"$stat"
        web=$((web + f[11] + f[12]))
    done
    echo "$server $web"
}

# run_one SCENARIO CONNS TARGET ROUND
run_one() {
    local scen=$1 c=$2 target=$3 round=$4 out url args=() rps p50 p99 bad active note=
    local cpu0 web0 cpu1 web1 cpu_us web_us
    url="http://127.0.0.1:${PORT[$target]}/"
    if [[ $scen == echo ]]; then
        url+="echo"
        args=(-s "$BENCH_DIR/echo.lua")
    fi
    out=$TMP/wrk-$scen-$c-$target-$round.txt
    read -r cpu0 web0 < <(cpu_ticks "${PID[$target]}")
    wrk -t2 -c"$c" -d"${DURATION}s" --latency "${args[@]}" "$url" >"$out" 2>&1 &
    local wrk_pid=$!
    if [[ $target == pipepool ]]; then
        # PSS under load: one sample half-way through the round
        sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"
        pss_of $(proc_tree "${PID[pipepool]}") | awk '{ print $1 }' >>"$TMP/pss-load-$scen"
    fi
    if ! wait "$wrk_pid"; then
        log "bench: WARNING: wrk failed for $target $scen c=$c:"
        cat "$out" >&2 || true
    fi
    read -r cpu1 web1 < <(cpu_ticks "${PID[$target]}")
    read -r rps p50 p99 bad active < <(parse_wrk <"$out")
    # server and nginx CPU per request, in microseconds
    read -r cpu_us web_us < <(awk -v s=$((cpu1 - cpu0)) -v w=$((web1 - web0)) \
        -v hz="$CLK_TCK" -v r="$rps" -v d="$DURATION" 'BEGIN {
        n = r * d; if (n < 1) n = 1
        printf "%.1f %.1f\n", s * 1000000 / hz / n, w * 1000000 / hz / n }')
    echo "$scen $c $target $round $rps $p50 $p99 $bad $active $cpu_us $web_us" >>"$RESULTS"
    ((bad > 0)) && note+="  ($bad errors/non-2xx)"
    stalled "$active" "$c" && note+="  (only $(fmt_us "$active") of $c connections served)"
    printf 'round %s/%s %-5s c=%-3s %-9s %10.0f req/s  p50=%sus p99=%sus  cpu/req server=%sus nginx=%sus%s\n' \
        "$round" "$ROUNDS" "$scen" "$c" "$target" "$rps" "$(fmt_us "$p50")" \
        "$(fmt_us "$p99")" "$(fmt_us "$cpu_us")" "$(fmt_us "$web_us")" "$note" >&2
    local t
    for t in "${TARGETS[@]}" nginx; do
        alive "${PID[$t]}" || {
            cat "$TMP/$t.log" >&2 || true
            die "$t (pid ${PID[$t]}) died under load"
        }
    done
}

fmt_us() { printf '%.0f' "$1"; }

# stalled ACTIVE CONNS: true when fewer than 3/4 of the connections were served.
stalled() { awk -v a="$1" -v c="$2" 'BEGIN { exit !(a < 0.75 * c) }'; }

run_load() {
    local round scen c t order
    RESULTS=$TMP/results.txt
    : >"$RESULTS"
    # short warm-up, not counted
    for t in "${TARGETS[@]}"; do
        wrk -t2 -c16 -d1s "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for scen in hello echo; do
            for c in $CONNS; do
                # alternate who goes first, so drift does not favour one side
                if ((round % 2 == 1)); then
                    order=(pipepool inline)
                else
                    order=(inline pipepool)
                fi
                if [[ $scen == hello ]]; then
                    for t in "${TARGETS[@]:2}"; do
                        order+=("$t")
                    done
                fi
                for t in "${order[@]}"; do
                    run_one "$scen" "$c" "$t" "$round"
                done
            done
        done
    done
}

# ---------------------------------------------------------------- report

# median SCEN CONNS TARGET FIELD(5=rps 6=p50 7=p99 10=server cpu/req)
# in_turn ROUND NAME...: the names in the order round ROUND runs them:
# as given, reversed every other round, so drift favours no side.
in_turn() {
    local round=$1 i
    shift
    local names=("$@")
    if ((round % 2 == 1)); then
        echo "${names[@]}"
        return
    fi
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do
        printf '%s ' "${names[i]}"
    done
    echo
}

median() {
    awk -v s="$1" -v c="$2" -v t="$3" -v f="$4" '$1 == s && $2 == c && $3 == t { print $f }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 }
            END { if (NR == 0) print 0
                  else if (NR % 2) print v[(NR + 1) / 2]
                  else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# figure LABEL WHAT A_NAME A B_NAME B UNIT [OP TARGET]
figure() {
    local label=$1 what=$2 an=$3 a=$4 bn=$5 b=$6 unit=$7 op=${8:-} target=${9:-}
    awk -v label="$label" -v what="$what" -v an="$an" -v a="$a" -v bn="$bn" -v b="$b" \
        -v unit="$unit" -v op="$op" -v target="$target" 'BEGIN {
        line = sprintf("%-12s %-3s %s=%.0f%s %s=%.0f%s", label, what, an, a, unit, bn, b, unit)
        if (b > 0) { r = a / b; line = line sprintf(" ratio=%.2f", r) } else { line = line " ratio=n/a" }
        if (op != "") {
            ok = (b > 0 && a > 0) && ((op == ">=") ? (r >= target) : (r <= target))
            line = line sprintf(" target%s%.2f %s", op, target, ok ? "PASS" : "MISS")
        }
        print line }'
}

# stall_line LABEL SCEN CONNS TARGET: say so when TARGET left connections
# unanswered in some round (see parse_wrk); for pipepool that is a MISS, as
# its percentiles then only describe the connections it served.
stall_line() {
    local label=$1 scen=$2 c=$3 t=$4 n min verdict=
    read -r n min < <(awk -v s="$scen" -v c="$c" -v t="$t" '
        $1 == s && $2 == c && $3 == t && $9 < 0.75 * c { n++; if (min == "" || $9 < min) min = $9 }
        END { printf "%d %.0f\n", n, min }' "$RESULTS")
    ((n > 0)) || return 0
    if [[ $t == pipepool || $t == pp-* ]]; then
        verdict=" MISS"
    elif [[ $t == inline ]]; then
        verdict=" (baseline too small: raise BENCH_INLINE_THREADS)"
    fi
    printf '%-12s stall %s: %s/%s rounds answered only %s of %s connections%s\n' \
        "$label" "$t" "$n" "$ROUNDS" "$min" "$c" "$verdict"
}

report() {
    local scen c label t
    echo
    echo "== pipepool vs inline libfcgi (median of $ROUNDS x ${DURATION}s, wrk -t2, nginx keep_conn; inline: $INLINE_PROCS proc x $INLINE_THREADS threads; pipepool: --workers $WORKERS $PP_EXTRA)"
    if ldd "$PIPEPOOL_BIN" 2>/dev/null | grep -q -e libasan -e libtsan -e libubsan; then
        echo "== WARNING: $PIPEPOOL_BIN is a sanitizer build: its figures mean nothing (make without SAN=1)"
    fi
    busy_warning "$BUSY_BEFORE" "before the load"
    if ((${#TARGETS[@]} > 2)); then
        echo "== also: ${TARGETS[*]:2} (inline-poll: inline with a poll(2) before each read, as pipepool's front, keep_conn, the hop alone: targets rps >= 1.00, p99 <= 1.30, cpu <= 1.20 (#19); pipepool-pinned: pipepool $PP_PINNED, no target; php-fpm and fcgiwrap: $WORKERS children each, php-fpm pm static, a connection per request, no keep_conn)"
    fi
    for scen in hello echo; do
        for c in $CONNS; do
            label="$scen c=$c"
            local prps irps pp50 ip50 pp99 ip99
            prps=$(median "$scen" "$c" pipepool 5)
            irps=$(median "$scen" "$c" inline 5)
            pp50=$(median "$scen" "$c" pipepool 6)
            ip50=$(median "$scen" "$c" inline 6)
            pp99=$(median "$scen" "$c" pipepool 7)
            ip99=$(median "$scen" "$c" inline 7)
            if [[ $scen == hello ]]; then
                figure "$label" rps pipepool "$prps" inline "$irps" "" ">=" 0.90
                figure "$label" p50 pipepool "$pp50" inline "$ip50" us
                figure "$label" p99 pipepool "$pp99" inline "$ip99" us "<=" 1.30
            else
                figure "$label" rps pipepool "$prps" inline "$irps" "" ">=" 0.80
                figure "$label" p50 pipepool "$pp50" inline "$ip50" us
                figure "$label" p99 pipepool "$pp99" inline "$ip99" us
            fi
            figure "$label" cpu pipepool "$(median "$scen" "$c" pipepool 10)" \
                inline "$(median "$scen" "$c" inline 10)" us/req
            for t in "${TARGETS[@]:2}"; do
                [[ $scen == hello ]] || continue
                if [[ $t == php-fpm ]]; then
                    figure "$label" rps pipepool "$prps" "$t" "$(median "$scen" "$c" "$t" 5)" "" ">=" 2.00
                    figure "$label" p99 pipepool "$pp99" "$t" "$(median "$scen" "$c" "$t" 7)" us
                elif [[ $t == inline-poll ]]; then
                    figure "$label" rps pipepool "$prps" "$t" "$(median "$scen" "$c" "$t" 5)" "" ">=" 1.00
                    figure "$label" p99 pipepool "$pp99" "$t" "$(median "$scen" "$c" "$t" 7)" us "<=" 1.30
                    figure "$label" cpu pipepool "$(median "$scen" "$c" pipepool 10)" \
                        "$t" "$(median "$scen" "$c" "$t" 10)" us/req "<=" 1.20
                else
                    figure "$label" rps pipepool "$prps" "$t" "$(median "$scen" "$c" "$t" 5)" ""
                    figure "$label" p99 pipepool "$pp99" "$t" "$(median "$scen" "$c" "$t" 7)" us
                fi
            done
            for t in "${TARGETS[@]}"; do
                stall_line "$label" "$scen" "$c" "$t"
            done
        done
    done
    bad_rounds ""
    if [[ $EXTRAS != 1 ]]; then
        echo "skipped: inline-poll, php-fpm and fcgiwrap (BENCH_EXTRAS=0)"
    elif ! command -v "$PHP_FPM" >/dev/null; then
        echo "skipped: php-fpm not installed (apt-get install php-fpm)"
    fi
    if [[ $EXTRAS == 1 && ! -x $FCGIWRAP ]]; then
        echo "skipped: fcgiwrap not installed (apt-get install fcgiwrap)"
    fi
}

# PSS in KiB of each pid given; prints "total count detail", the detail
# being name:KiB per process, the name from its title ("pipepool: front").
pss_of() {
    local pid kib title total=0 detail=() n=0
    for pid in "$@"; do
        kib=$(awk '/^Pss:/ { print $2; exit }' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
        [[ -n $kib ]] || continue
        title=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || title=
        title=${title#pipepool: }
        title=${title%% *}
        title=${title##*/}
        total=$((total + kib))
        n=$((n + 1))
        detail+=("${title:-$pid}:${kib}")
    done
    echo "$total $n ${detail[*]}"
}

# mem_line WHAT KIB DETAIL: one memory figure against the target.
mem_line() {
    local verdict=MISS
    (($2 > 0 && $2 <= MEM_TARGET_KIB)) && verdict=PASS
    printf 'memory       pss %-10s pipepool=%sKiB%s target<=%sKiB %s\n' \
        "$1" "$2" "${3:+ ($3)}" "$MEM_TARGET_KIB" "$verdict"
}

# max_of FILE: the largest number in FILE (0 if none).
max_of() { sort -n "$1" 2>/dev/null | tail -n 1 | grep . || echo 0; }

report_memory() {
    local total n detail tree scen
    mem_line idle "$MEM_IDLE" "$MEM_IDLE_DETAIL"
    for scen in hello echo; do
        mem_line "load-$scen" "$(max_of "$TMP/pss-load-$scen")" \
            "largest of one sample per round, half-way through"
    done
    tree=$(proc_tree "${PID[pipepool]}")
    PP_TREE=$tree
    # shellcheck disable=SC2086  # word splitting of the pid list is wanted
    read -r total n detail < <(pss_of $tree)
    mem_line after "$total" "$n processes, KiB each: $detail"
    tree=$(proc_tree "${PID[inline]}")
    # shellcheck disable=SC2086
    read -r total n detail < <(pss_of $tree)
    printf 'memory       pss after      inline=%sKiB (%s processes, for reference)\n' "$total" "$n"
}

# No growth: SOAK seconds of mixed load (hello, and every 8th request a
# 64 KiB /echo) at 64 connections, PSS sampled every 5 s.  Growth is the
# median of the last three samples less the median of the first three;
# the target allows 256 KiB of noise (buffers of requests in flight).
report_soak() {
    local secs=$SOAK s=0 wrk_pid first last max growth verdict=MISS samples=()
    if ((secs < 20)); then
        echo "skipped: memory soak (BENCH_SOAK_SECONDS=$secs, needs >= 20)"
        return 0
    fi
    wrk -t2 -c64 -d"${secs}s" -s "$BENCH_DIR/mix.lua" \
        "http://127.0.0.1:${PORT[pipepool]}/" >"$TMP/wrk-soak.txt" 2>&1 &
    wrk_pid=$!
    while ((s + 5 < secs)); do
        sleep 5
        s=$((s + 5))
        samples+=("$(pss_of $(proc_tree "${PID[pipepool]}") | awk '{ print $1 }')")
    done
    wait "$wrk_pid" || log "bench: WARNING: wrk failed in the memory soak"
    alive "${PID[pipepool]}" || die "pipepool died in the memory soak"
    first=$(printf '%s\n' "${samples[@]:0:3}" | sort -n | sed -n 2p)
    last=$(printf '%s\n' "${samples[@]: -3}" | sort -n | sed -n 2p)
    max=$(printf '%s\n' "${samples[@]}" | sort -n | tail -n 1)
    growth=$((last - first))
    ((growth <= 256 && max <= MEM_TARGET_KIB)) && verdict=PASS
    echo "memory       soak ${secs}s mixed load: $(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$TMP/wrk-soak.txt") req/s, PSS KiB every 5 s: ${samples[*]}"
    echo "memory       growth pipepool=${growth}KiB (${first} -> ${last}) max=${max}KiB target<=256KiB growth, <=${MEM_TARGET_KIB}KiB max $verdict"
}

# Percent of CPU time the machine spent busy over 1 s (before our load: other
# work on the machine skews every figure).
cpu_busy_pct() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
        busy = y[1] - x[1]; idle = y[2] - x[2]
        printf "%.0f\n", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0 }'
}

# busy_warning PCT WHEN: the report's warning when the machine was busy.
busy_warning() {
    (($1 > 10)) || return 0
    echo "== WARNING: the machine was $1% busy $2 (other work): figures are skewed"
}

# ---------------------------------------------------------------- sections

# pp_has OPTION: does $PIPEPOOL_BIN's --help list OPTION?
PP_HELP=
pp_has() {
    [[ -n $PP_HELP ]] || PP_HELP=$(timeout 5 "$PIPEPOOL_BIN" --help </dev/null 2>&1) || true
    grep -q -- "$1" <<<"$PP_HELP"
}

# pp_start NAME OPTION...: start a pipepool NAME listening on $TMP/NAME.sock,
# its store in $TMP/NAME.db (out of the work tree).
pp_start() {
    local name=$1
    local -a args=(--listen "unix:$TMP/$name.sock")
    shift
    pp_has --allow-root && args+=(--allow-root)
    pp_has '--db ' && args+=(--db "$TMP/$name.db")
    start_bg "$name" "$PIPEPOOL_BIN" "${args[@]}" "$@"
}

# measure SCEN CONNS TARGET ROUND WRK-ARGS...: one wrk round of a section
# (WRK-ARGS: the URL, any script and its arguments): a line into $RESULTS
# ("SCEN CONNS TARGET ROUND rps p50 p99 bad active 0 0", as run_one's,
# without CPU figures) and one on stderr.  Dies when anything we started
# died meanwhile.
measure() {
    local scen=$1 c=$2 t=$3 round=$4 out rps p50 p99 bad active note='' name
    shift 4
    out=$TMP/wrk-$scen-$c-$t-$round.txt
    if ! wrk -t2 -c"$c" -d"${DURATION}s" --latency "$@" >"$out" 2>&1; then
        log "bench: WARNING: wrk failed for $scen $t:"
        cat "$out" >&2 || true
    fi
    read -r rps p50 p99 bad active < <(parse_wrk <"$out")
    echo "$scen $c $t $round $rps $p50 $p99 $bad $active 0 0" >>"$RESULTS"
    ((bad > 0)) && note+="  ($bad errors/non-2xx)"
    stalled "$active" "$c" && note+="  (only $(fmt_us "$active") of $c connections served)"
    printf 'round %s/%s %-10s c=%-3s %-10s %10.0f req/s  p50=%sus p99=%sus%s\n' \
        "$round" "$ROUNDS" "$scen" "$c" "$t" "$rps" "$(fmt_us "$p50")" \
        "$(fmt_us "$p99")" "$note" >&2
    for name in "${START_ORDER[@]}"; do
        alive "${PID[$name]}" || {
            cat "$TMP/$name.log" >&2 || true
            die "$name (pid ${PID[$name]}) died under load"
        }
    done
}

# bad_rounds WHAT: list the rounds of $RESULTS with errors, if any.
bad_rounds() {
    local bad
    bad=$(awk '$8 > 0 { print "  " $3 " " $1 " c=" $2 " round " $4 ": " $8 }' "$RESULTS")
    [[ -z $bad ]] && return 0
    echo "note: $1rounds with socket errors or non-2xx answers (their req/s is suspect):"
    echo "$bad"
}

# ---------------------------------------------------------------- store (/kv)

# The store's figures, at 32 connections, through a second nginx of their own
# (the servers above are left as they were):
#   * PUT /kv/<new key> (tests/bench/put.lua, 100-byte body) with --sync full:
#     group commit (the default) against --batch 0 (one transaction, so one
#     fsync, per request); target: batch/nobatch req/s >= 10.
#   * GET /kv/<one pre-loaded key> against GET / hello, same pipepool, no
#     target.
# Each configuration is its own pipepool (--workers BENCH_WORKERS) on a fresh
# DB in the temp dir; rounds are interleaved, the figures are medians.
# Environment: BENCH_KV=0 leaves it out; BENCH_KV_ROUNDS (default
# BENCH_ROUNDS, at most 3) and BENCH_SECONDS size it (4 wrk runs per round).
kv_conf() {
    local name
    nginx_head nginx-kv
    for name in kv-batch kv-nobatch; do
        kept_server "$name"
    done
    echo '}'
}

bench_kv() {
    local rounds=${BENCH_KV_ROUNDS:-$((ROUNDS < 3 ? ROUNDS : 3))}
    local c=32 bytes=100 fs busy name t scen round code base_url
    local pb pn bp99 np99 kg kh
    local -a pp_args=(--workers "$WORKERS" --sync full) order args
    # shellcheck disable=SC2206
    pp_args+=($PP_EXTRA)
    local -A url=()
    # what median() and stall_line() read, while in here
    local RESULTS=$TMP/kv-results.txt ROUNDS=$rounds

    if [[ ${BENCH_KV:-1} == 0 ]]; then
        echo "skipped: store figures (BENCH_KV=0)"
        return 0
    fi
    if ! pp_has '--sync '; then
        echo "skipped: store figures ($PIPEPOOL_BIN has no --db/--sync)"
        return 0
    fi
    : >"$RESULTS"
    pp_start kv-batch "${pp_args[@]}"
    pp_start kv-nobatch "${pp_args[@]}" --batch 0
    # a second nginx, one server block per configuration
    servers_up nginx-kv kv_conf kv-batch kv-nobatch

    # pre-load the GET key (and check a PUT reads back) on each
    head -c "$bytes" /dev/zero | tr '\0' v >"$TMP/kv-value.bin"
    for name in kv-batch kv-nobatch; do
        base_url="http://127.0.0.1:${PORT[$name]}"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X PUT \
            -H 'Content-Type: application/octet-stream' \
            --data-binary "@$TMP/kv-value.bin" "$base_url/kv/get-key") || true
        curl -s -o "$TMP/kv-check.body" --max-time 5 "$base_url/kv/get-key" || true
        if [[ $code == 201 ]] && cmp -s "$TMP/kv-value.bin" "$TMP/kv-check.body"; then
            log "bench: $name stores and reads back a key"
        else
            log "bench: WARNING: $name: PUT /kv/get-key gave $code or did not read back"
        fi
    done
    url[kv-batch]="http://127.0.0.1:${PORT[kv-batch]}/"
    url[kv-nobatch]="http://127.0.0.1:${PORT[kv-nobatch]}/"
    url[kv]="http://127.0.0.1:${PORT[kv-batch]}/kv/get-key"
    url[hello]="http://127.0.0.1:${PORT[kv-batch]}/"
    fs=$(stat -f -c %T "$TMP" 2>/dev/null) || fs=unknown
    busy=$(cpu_busy_pct)

    for ((round = 1; round <= rounds; round++)); do
        for scen in put get; do
            if [[ $scen == put ]]; then
                order=(kv-batch kv-nobatch)
            else
                order=(kv hello)
            fi
            # alternate who goes first, so drift does not favour one side
            ((round % 2 == 1)) || order=("${order[1]}" "${order[0]}")
            for t in "${order[@]}"; do
                args=("${url[$t]}")
                # keys of each round and configuration are new
                [[ $scen == put ]] &&
                    args=(-s "$BENCH_DIR/put.lua" "${url[$t]}" -- "r$round" "$bytes")
                measure "kv-$scen" "$c" "$t" "$round" "${args[@]}"
            done
        done
    done

    echo
    echo "== store /kv (median of $rounds x ${DURATION}s, wrk -t2 -c$c, own nginx; pipepool --workers $WORKERS --sync full, DB on $fs; put: new keys, ${bytes}-byte body)"
    busy_warning "$busy" "before the store load"
    if [[ $fs == tmpfs || $fs == ramfs ]]; then
        echo "== WARNING: the temp dir is on $fs, where fsync costs nothing: the batch ratio says little (set TMPDIR to a disk)"
    fi
    pb=$(median kv-put "$c" kv-batch 5)
    pn=$(median kv-put "$c" kv-nobatch 5)
    bp99=$(median kv-put "$c" kv-batch 7)
    np99=$(median kv-put "$c" kv-nobatch 7)
    kg=$(median kv-get "$c" kv 5)
    kh=$(median kv-get "$c" hello 5)
    awk -v c="$c" -v b="$pb" -v n="$pn" -v bp="$bp99" -v np="$np99" -v g="$kg" -v h="$kh" 'BEGIN {
        if (n > 0) { r = b / n; rs = sprintf("%.2f", r) } else rs = "n/a"
        printf "kv put c=%d rps batch=%.0f nobatch=%.0f ratio=%s target>=10 %s\n",
            c, b, n, rs, (n > 0 && b > 0 && r >= 10) ? "PASS" : "MISS"
        printf "kv put c=%d p99 batch=%.0fus nobatch=%.0fus\n", c, bp, np
        printf "kv get c=%d rps kv=%.0f hello=%.0f ratio=%s\n",
            c, g, h, (h > 0) ? sprintf("%.2f", g / h) : "n/a" }'
    for t in kv-batch kv-nobatch kv hello; do
        scen="put"
        [[ $t == kv || $t == hello ]] && scen="get"
        stall_line "kv $scen c=$c" "kv-$scen" "$c" "$t"
    done
    bad_rounds "store "

    # done with them: stop what this section started and drop its files
    stop_section nginx-kv kv-nobatch kv-batch
    if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf -- "$TMP"/kv-batch.* "$TMP"/kv-nobatch.* "$TMP"/nginx-kv* "$TMP"/wrk-kv-* \
            "$TMP"/kv-value.bin "$TMP"/kv-check.body "$RESULTS"
    fi
}

# The worker hop alone, no nginx (tests/bench/hop.c): CPU a request costs
# for going through a worker, against answering in-process.
report_hop() {
    local hop=${HOP_BIN:-build/hop}
    if [[ ! -x $hop ]]; then
        echo "skipped: hop microbenchmark (no $hop: make build/hop)"
        return 0
    fi
    echo "== worker hop alone (no nginx; --workers $WORKERS, 4 client threads)"
    "$hop" -w "$WORKERS" -t 4 -n 200000 -d 5 || log "bench: WARNING: $hop failed"
    "$hop" -w "$WORKERS" -t 4 -n 20000 -d 4 -b 65536 || log "bench: WARNING: $hop -b 65536 failed"
}

# BENCH_ONLY: the sections to run, any of "core" (pipepool against inline
# and the extras, its memory and soak), "hop", "kv", "kvpg", "apps", "pool",
# "obs", "cgi", "scale" and "rivals"; default all.
SECTIONS="core hop kv kvpg apps pool obs cgi scale rivals"
want() { [[ " ${BENCH_ONLY:-$SECTIONS} " == *" $1 "* ]]; }

main() {
    local s
    for s in ${BENCH_ONLY:-}; do
        [[ " $SECTIONS " == *" $s "* ]] ||
            die "BENCH_ONLY: no section '$s' (sections: $SECTIONS)"
    done
    check_tools
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/pipepool-bench.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cd "$ROOT"
    if want core; then
        build_inline
        start_servers
        log "bench: ${TARGETS[*]} up behind nginx (ports: $(for t in "${TARGETS[@]}"; do printf '%s=%s ' "$t" "${PORT[$t]}"; done))"
        BUSY_BEFORE=$(cpu_busy_pct)
        # idle: started, answered one request each (wait_answer), no load yet
        read -r MEM_IDLE _ MEM_IDLE_DETAIL < <(pss_of $(proc_tree "${PID[pipepool]}"))
        run_load
        report
        report_memory
        report_soak
    fi
    if want hop; then
        report_hop
    fi
    if want kv; then
        bench_kv
    fi
    if want kvpg; then
        bench_kvpg
    fi
    if want apps; then
        bench_apps
    fi
    if want pool; then
        bench_pool
    fi
    if want obs; then
        bench_obs
    fi
    if want cgi; then
        bench_cgi
    fi
    if want scale; then
        bench_scale
    fi
    if want rivals; then
        bench_rivals
    fi
}

# the application figures: bench_apps
# shellcheck source=tests/bench/apps.sh
. "$BENCH_DIR/apps.sh"
# the pool figures: bench_pool
# shellcheck source=tests/bench/pool.sh
. "$BENCH_DIR/pool.sh"
# the observability cost: bench_obs (uses pool.sh's pool_pairs)
# shellcheck source=tests/bench/obs.sh
. "$BENCH_DIR/obs.sh"
# pipepool --cgi against fcgiwrap: bench_cgi
# shellcheck source=tests/bench/cgi.sh
. "$BENCH_DIR/cgi.sh"
# the client connections from 16 to 1,024: bench_scale
# shellcheck source=tests/bench/scale.sh
. "$BENCH_DIR/scale.sh"
# hello against uWSGI's routing and php-fpm, kept: bench_rivals (uses
# scale.sh's scale_max)
# shellcheck source=tests/bench/rivals.sh
. "$BENCH_DIR/rivals.sh"
# the store on PostgreSQL: bench_kvpg
# shellcheck source=tests/bench/kvpg.sh
. "$BENCH_DIR/kvpg.sh"

main "$@"
