# shellcheck shell=bash
# tests/bench/rivals.sh - sourced by tests/bench/run.sh: pipepool against
# two more peers, issue #19 (`BENCH_ONLY=rivals make bench` runs it alone).
# GET / (hello) at BENCH_CONNS connections through one nginx of its own,
# rounds interleaved (the order reversed every other round), medians, of:
#   pipepool      pipepool --workers BENCH_WORKERS BENCH_PP_ARGS (what
#                 conf/ ships, as the core section runs it); kept FastCGI
#                 connections, upstream keepalive >= the largest count
#   uwsgi-route   Debian's uWSGI (uwsgi-core) with no plugin at all:
#                 --master --processes BENCH_WORKERS, each worker answers
#                 from uWSGI's internal routing (--route-run send: the
#                 whole answer, then break:), --thunder-lock (one worker
#                 woken per connection; a little quicker here),
#                 --disable-logging (pipepool logs no request either).
#                 nginx reaches it with uwsgi_pass, a connection per
#                 request: uWSGI 2.0 closes the connection after every
#                 request on its uwsgi and its FastCGI sockets alike
#                 (proto_base_close; only its http11 socket keeps one, and
#                 pins a worker to it), so no kept connection exists for
#                 it.  Through --fastcgi-socket with fastcgi_keep_conn,
#                 nginx keeps the connections uWSGI has closed and pays a
#                 failed write and a retry for them (16.7k against 20.7k
#                 req/s for uwsgi_pass in a probe at 64 connections):
#                 uwsgi_pass, its own protocol, is its best.
#   php-fpm-kept  php-fpm8.2 pm = static, pm.max_children = BENCH_WORKERS
#                 (run.sh's write_php_conf), tests/bench/hello.php, kept
#                 connections (fastcgi_keep_conn on, upstream keepalive as
#                 pipepool's).  A child serves one kept connection until
#                 nginx closes it, and nginx keeps them all: beyond
#                 BENCH_WORKERS connections the others wait unaccepted
#                 through the round, so the stall line says how few were
#                 served, and its p99 is of those few only.
#   php-fpm-ping  the same pool, the same upstream (one set of kept
#                 connections, as two would each hold children from the
#                 other), GET /ping: ping.path = /ping answered by php-fpm
#                 itself, no script; ping.response is the hello text (its
#                 Content-Type is php-fpm's own, text/plain;charset=UTF-8,
#                 chunked).
# Every rival's status and body are checked to be pipepool's, byte for
# byte, before the load (the run dies otherwise).  Targets, pipepool over
# the rival: uwsgi-route req/s >= 1.20 and p99 <= 1.00; php-fpm-kept and
# php-fpm-ping req/s >= 2.50.  CPU per request of each server's processes
# and of nginx are shown (cpu, ngx), no target.  A rival not installed is
# skipped, and said so.
# Environment: BENCH_RIVALS=0 leaves it out; BENCH_RIVALS_ROUNDS (default
# BENCH_ROUNDS), BENCH_CONNS, BENCH_SECONDS, BENCH_WORKERS, BENCH_UWSGI.

# Debian's uwsgi-core installs uwsgi-core; /usr/bin/uwsgi is an
# alternatives link to it that may be missing.
RIVALS_UWSGI=${BENCH_UWSGI:-$(command -v uwsgi || command -v uwsgi-core || echo /usr/bin/uwsgi)}

# The kept pool: the largest count in CONNS, at least conf/'s 64.
rivals_pool() {
    local max
    max=$(SCALE_CONNS=$CONNS scale_max)
    echo $((max > 64 ? max : 64))
}

# rivals_php_location PATH SCRIPT: a location of php-fpm-kept's server,
# SCRIPT as its script, on the kept upstream.
rivals_php_location() {
    cat <<EOF
        location $1 {
$(fcgi_common)
            fastcgi_param SCRIPT_FILENAME $2;
            fastcgi_param SCRIPT_NAME /${2##*/};
            fastcgi_keep_conn on;
            fastcgi_pass php-fpm-kept;
        }
EOF
}

# The section's nginx.conf, on stdout.
rivals_conf() {
    local pool
    pool=$(rivals_pool)
    nginx_head nginx-rivals
    KEPT_POOL=$pool kept_server pp-rivals
    if [[ -n ${PORT[uwsgi-route]:-} ]]; then
        cat <<EOF
    server {
        listen 127.0.0.1:${PORT[uwsgi-route]};
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:$TMP/uwsgi-route.sock;
        }
    }
EOF
    fi
    if [[ -n ${PORT[php-fpm-kept]:-} ]]; then
        cat <<EOF
    upstream php-fpm-kept {
        server unix:$TMP/php-fpm-kept.sock;
        keepalive $pool;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${PORT[php-fpm-kept]};
$(rivals_php_location '= /ping' /ping)
$(rivals_php_location / "$BENCH_DIR/hello.php")
    }
EOF
    fi
    echo '}'
}

# rivals_uwsgi: start uwsgi-route on $TMP/uwsgi-route.sock.  The routes
# write the whole answer (the uwsgi protocol's HTTP status line, the
# headers pipepool's hello has, the body): addheader: alone sends nothing,
# as no plugin prepares a status, and return: has its own body.
rivals_uwsgi() {
    local answer
    # ${uwsgi[pid]} is uWSGI's routing variable: the worker's pid
    # shellcheck disable=SC2016
    printf -v answer 'HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Worker-Pid: ${uwsgi[pid]}\r\nContent-Length: %d\r\n\r\n%s\n' \
        $((${#HELLO_BODY} + 1)) "$HELLO_BODY"
    start_bg uwsgi-route "$RIVALS_UWSGI" --master --processes "$WORKERS" \
        --thunder-lock --disable-logging --uwsgi-socket "$TMP/uwsgi-route.sock" \
        --route-run "send:$answer" --route-run 'break:'
    # Debian's uWSGI reloads on SIGTERM; SIGINT stops it (run.sh's stop_tree)
    # shellcheck disable=SC2034
    STOP_SIG[uwsgi-route]=INT
}

# rivals_php: start php-fpm-kept on $TMP/php-fpm-kept.sock: run.sh's pool
# (write_php_conf, written aside so as to leave the core section's files
# be) on this section's paths, and the ping answer (the hello text with its
# newline, which php-fpm's ini takes only from the environment).
rivals_php() {
    local dir=$TMP/rivals-php
    local -a args=(-F -y "$TMP/php-fpm-kept.conf")
    mkdir -p "$dir"
    TMP=$dir write_php_conf
    sed "s|$dir/php|$TMP/php-fpm-kept|" "$dir/php-fpm.conf" >"$TMP/php-fpm-kept.conf"
    rm -rf -- "$dir"
    # shellcheck disable=SC2016  # php-fpm expands ${RIVALS_PING}
    printf 'ping.path = /ping\nping.response = ${RIVALS_PING}\n' >>"$TMP/php-fpm-kept.conf"
    ((EUID == 0)) && args+=(-R)
    start_bg php-fpm-kept env "RIVALS_PING=$HELLO_BODY"$'\n' "$PHP_FPM" "${args[@]}"
}

# rivals_answer NAME URL: fetch URL into $TMP/rivals-NAME.{body,hdr}; print
# its status.  The headers kept are those an answer is compared on.
rivals_answer() {
    local code
    code=$(curl -s -D "$TMP/rivals-$1.raw" -o "$TMP/rivals-$1.body" -w '%{http_code}' \
        --max-time 5 "$2") || true
    tr -d '\r' <"$TMP/rivals-$1.raw" |
        awk 'tolower($1) ~ /^(content-type|content-length|transfer-encoding):$/ { $1 = tolower($1); print }
             tolower($1) == "x-worker-pid:" && $2 ~ /^[0-9]+$/ { print "x-worker-pid: a pid" }' |
        sort >"$TMP/rivals-$1.hdr"
    echo "$code"
}

# rivals_same NAME URL: die unless NAME answers URL with pipepool's status
# and body, byte for byte; say so when its headers differ.
rivals_same() {
    local code
    code=$(rivals_answer "$1" "$2")
    if [[ $code != "$RIVALS_CODE" ]] || ! cmp -s "$TMP/rivals-pipepool.body" "$TMP/rivals-$1.body"; then
        log "bench: $1 answers $2 with $code and:"
        od -c "$TMP/rivals-$1.body" | head -n 5 >&2
        die "$1 does not answer as pipepool ($RIVALS_CODE, $(wc -c <"$TMP/rivals-pipepool.body") bytes)"
    fi
    if cmp -s "$TMP/rivals-pipepool.hdr" "$TMP/rivals-$1.hdr"; then
        log "bench: $1 answers as pipepool does, headers too"
    else
        RIVALS_NOTES+=("note: $1 answers pipepool's status and body, its headers differ: $(paste -sd ';' "$TMP/rivals-$1.hdr" | tr -s ' ') (pipepool: $(paste -sd ';' "$TMP/rivals-pipepool.hdr"))")
    fi
}

# rivals_ticks PID: cpu_ticks of PID's tree and of this section's nginx
# (in the subshell, PID[nginx] is nginx-rivals).
rivals_ticks() {
    PID["nginx"]=${PID["nginx-rivals"]}
    cpu_ticks "$1"
}

# rivals_round ROUND CONNS TARGET: one measured round, then the CPU time
# per request of TARGET's server processes and of nginx, as a "cpu" line of
# $RESULTS (fields 10 and 11, as run_one's).
rivals_round() {
    local round=$1 c=$2 t=$3 pid=${PID[${RIVALS_PROC[$3]}]} cpu0 web0 cpu1 web1 rps
    read -r cpu0 web0 < <(rivals_ticks "$pid")
    measure rivals "$c" "$t" "$round" "${RIVALS_URL[$t]}"
    read -r cpu1 web1 < <(rivals_ticks "$pid")
    rps=$(tail -n 1 "$RESULTS" | awk '{ print $5 }')
    awk -v c="$c" -v t="$t" -v r="$round" -v s=$((cpu1 - cpu0)) -v w=$((web1 - web0)) \
        -v hz="$CLK_TCK" -v rps="$rps" -v d="$DURATION" 'BEGIN {
        n = rps * d; if (n < 1) n = 1
        printf "cpu %s %s %s 0 0 0 0 0 %.1f %.1f\n", c, t, r, s * 1000000 / hz / n, w * 1000000 / hz / n }' >>"$RESULTS"
}

bench_rivals() {
    local rounds=${BENCH_RIVALS_ROUNDS:-$ROUNDS} busy round c t label order skipped=() i
    local prps pp99
    local -a extra=(--workers "$WORKERS") servers=(pp-rivals) targets=(pipepool)
    # shellcheck disable=SC2206
    extra+=($PP_EXTRA)
    # what median() and stall_line() read, while in here
    local RESULTS=$TMP/rivals-results.txt ROUNDS=$rounds RIVALS_CODE
    # target -> its URL, and the process whose tree serves it
    local -A RIVALS_URL=() RIVALS_PROC=([pipepool]=pp-rivals)
    # rivals_same's notes for the report
    local -a RIVALS_NOTES=()

    if [[ ${BENCH_RIVALS:-1} == 0 ]]; then
        echo "skipped: rivals (BENCH_RIVALS=0)"
        return 0
    fi
    : >"$RESULTS"
    pp_start pp-rivals "${extra[@]}"
    if [[ -x $RIVALS_UWSGI ]]; then
        rivals_uwsgi
        servers+=(uwsgi-route)
        targets+=(uwsgi-route)
        RIVALS_PROC[uwsgi-route]=uwsgi-route
    else
        skipped+=("skipped: uwsgi-route (no uWSGI at $RIVALS_UWSGI: uwsgi-core, tests/bench/peers.sh)")
    fi
    if command -v "$PHP_FPM" >/dev/null; then
        rivals_php
        servers+=(php-fpm-kept)
        targets+=(php-fpm-kept php-fpm-ping)
        RIVALS_PROC[php-fpm-kept]=php-fpm-kept
        RIVALS_PROC[php-fpm-ping]=php-fpm-kept
    else
        skipped+=("skipped: php-fpm-kept and php-fpm-ping ($PHP_FPM not installed: php8.2-fpm, tests/bench/peers.sh)")
    fi
    servers_up nginx-rivals rivals_conf "${servers[@]}"
    RIVALS_URL[pipepool]="http://127.0.0.1:${PORT[pp-rivals]}/"
    RIVALS_URL[uwsgi-route]="http://127.0.0.1:${PORT[uwsgi-route]:-0}/"
    RIVALS_URL[php-fpm-kept]="http://127.0.0.1:${PORT[php-fpm-kept]:-0}/"
    RIVALS_URL[php-fpm-ping]="http://127.0.0.1:${PORT[php-fpm-kept]:-0}/ping"
    RIVALS_CODE=$(rivals_answer pipepool "${RIVALS_URL[pipepool]}")
    for t in "${targets[@]:1}"; do
        rivals_same "$t" "${RIVALS_URL[$t]}"
    done
    log "bench: ${targets[*]} up behind nginx (kept pool $(rivals_pool))"
    busy=$(cpu_busy_pct)
    # warm-up at the largest count, not counted: the kept connections open
    for t in "${targets[@]}"; do
        wrk -t2 -c"$(SCALE_CONNS=$CONNS scale_max)" -d1s "${RIVALS_URL[$t]}" >/dev/null 2>&1 || true
    done
    for ((round = 1; round <= rounds; round++)); do
        for c in $CONNS; do
            read -r -a order <<<"$(in_turn "$round" "${targets[@]}")"
            for t in "${order[@]}"; do
                rivals_round "$round" "$c" "$t"
            done
        done
    done

    echo
    local -A what=(
        [uwsgi-route]="uwsgi-route: $RIVALS_UWSGI --master --processes $WORKERS --thunder-lock, no plugin, --route-run send:+break:, uwsgi_pass (uWSGI closes every connection)"
        [php-fpm-kept]="php-fpm-kept: $PHP_FPM pm static $WORKERS children, hello.php, kept"
        [php-fpm-ping]="php-fpm-ping: its ping.path, no script, GET /ping")
    printf '== rivals (median of %s x %ss, wrk -t2, own nginx; pipepool %s, kept, keepalive %s, GET /' \
        "$rounds" "$DURATION" "${extra[*]}" "$(rivals_pool)"
    for t in "${targets[@]:1}"; do
        printf '; %s' "${what[$t]}"
    done
    echo ')'

    busy_warning "$busy" "before the rivals load"
    for c in $CONNS; do
        label="rivals c=$c"
        prps=$(median rivals "$c" pipepool 5)
        pp99=$(median rivals "$c" pipepool 7)
        for t in "${targets[@]:1}"; do
            case $t in
            uwsgi-route)
                figure "$label" rps pipepool "$prps" "$t" "$(median rivals "$c" "$t" 5)" "" ">=" 1.20
                figure "$label" p99 pipepool "$pp99" "$t" "$(median rivals "$c" "$t" 7)" us "<=" 1.00
                ;;
            *)
                figure "$label" rps pipepool "$prps" "$t" "$(median rivals "$c" "$t" 5)" "" ">=" 2.50
                figure "$label" p99 pipepool "$pp99" "$t" "$(median rivals "$c" "$t" 7)" us
                ;;
            esac
            figure "$label" cpu pipepool "$(median cpu "$c" pipepool 10)" \
                "$t" "$(median cpu "$c" "$t" 10)" us/req
            figure "$label" ngx pipepool "$(median cpu "$c" pipepool 11)" \
                "$t" "$(median cpu "$c" "$t" 11)" us/req
        done
        for t in "${targets[@]}"; do
            stall_line "$label" rivals "$c" "$t"
        done
    done
    for i in "${RIVALS_NOTES[@]}" "${skipped[@]}"; do
        echo "$i"
    done
    bad_rounds "rivals "

    stop_section nginx-rivals "${servers[@]}"
    if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf -- "$TMP"/pp-rivals.* "$TMP"/uwsgi-route.* "$TMP"/php-fpm-kept* \
            "$TMP"/nginx-rivals* "$TMP"/wrk-rivals-* "$TMP"/rivals-* "$RESULTS"
    fi
}
