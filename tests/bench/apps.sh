# shellcheck shell=bash disable=SC2034  # STOP_SIG, PORT...: run.sh's
# tests/bench/apps.sh - sourced by tests/bench/run.sh: the application
# figures (`BENCH_ONLY=apps make bench` runs them alone).  Through an nginx
# of their own, every server with the same number of processes (N =
# BENCH_APPS_WORKERS, default BENCH_WORKERS), rounds interleaved, medians:
#   * app: GET / from the hello application loaded as a module (pipepool
#     --app build/hello.so) against the built-in hello, both with the same
#     options (--workers N and BENCH_PP_ARGS, as the core section's
#     pipepool); target app/built-in req/s >= 0.95.
#   * wsgi: one WSGI application, conf/examples/hello_wsgi.py, unchanged,
#     three ways, GET / (hello) and POST /echo (BENCH_APPS_BODY bytes,
#     default 1024):
#       pp-exec   pipepool --workers N --exec "python3 hello_wsgi.py" (its
#                 adapter conf/examples/pipepool_exec.py), nginx
#                 fastcgi_pass with kept connections, as the core section;
#                 not pinned (BENCH_APPS_PP_ARGS, default none: the
#                 Python programs need both CPUs, like the peers')
#       gunicorn  gunicorn --workers N, sync workers, on a unix socket;
#                 nginx proxy_pass, HTTP/1.1, upstream keepalive 64,
#                 Connection "" (a sync worker still closes every
#                 connection: that is how it serves)
#       uwsgi     uwsgi --master --processes N --plugin python3, request
#                 logging off (gunicorn logs no access by default, nor
#                 does pipepool); nginx uwsgi_pass (a connection per
#                 request: the uwsgi protocol has no keep-alive)
#     all three with /usr/bin/python3 (BENCH_PYTHON) and without writing
#     bytecode; targets: pp-exec/gunicorn req/s >= 1.5, pp-exec/uwsgi
#     req/s >= 1.0, p99 pp-exec/peer <= 1.0 against each.
# A peer that is not installed (tests/bench/peers.sh installs them) is
# skipped and the report says so.
# Environment: BENCH_APPS=0 leaves it out; BENCH_APPS_ROUNDS (default
# BENCH_ROUNDS), BENCH_APPS_CONNS (default 32), BENCH_SECONDS, and the above.

APPS_PY=${BENCH_PYTHON:-/usr/bin/python3}
APPS_APP=$ROOT/conf/examples/hello_wsgi.py
APPS_SO=${BENCH_APP_SO:-build/hello.so}
[[ $APPS_SO == /* ]] || APPS_SO=$ROOT/$APPS_SO
# Debian's, not whatever is first on PATH (pip's, a pyenv shim)
GUNICORN=${BENCH_GUNICORN:-/usr/bin/gunicorn}
UWSGI=${BENCH_UWSGI:-/usr/bin/uwsgi}
UWSGI_PLUGIN=/usr/lib/uwsgi/plugins/python3_plugin.so
APPS_UP=()      # the servers of the section that started
APPS_SKIPPED=() # one line each: what was not measured, and why

# The section's nginx.conf, on stdout: a block per server in APPS_UP.
apps_conf() {
    local name
    nginx_head nginx-apps
    for name in "${APPS_UP[@]}"; do
        case $name in
        pp-*) kept_server "$name" ;;
        gunicorn) cat <<EOF
    upstream gunicorn {
        server unix:$TMP/gunicorn.sock;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${PORT[gunicorn]};
        location / {
            proxy_pass http://gunicorn;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
EOF
            ;;
        uwsgi) cat <<EOF
    server {
        listen 127.0.0.1:${PORT[uwsgi]};
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:$TMP/uwsgi.sock;
        }
    }
EOF
            ;;
        esac
    done
    echo '}'
}

# apps_start N: start the section's servers, N processes each; those that
# cannot run here go to APPS_SKIPPED.
apps_start() {
    local n=$1 name
    local -a pp_extra exec_extra
    # shellcheck disable=SC2206
    pp_extra=($PP_EXTRA)
    # shellcheck disable=SC2206
    exec_extra=(${BENCH_APPS_PP_ARGS:-})
    if ! pp_has '--app '; then
        APPS_SKIPPED+=("app: $PIPEPOOL_BIN has no --app")
    elif [[ ! -f $APPS_SO ]]; then
        APPS_SKIPPED+=("app: no $APPS_SO (make build/hello.so)")
    else
        pp_start pp-builtin --workers "$n" "${pp_extra[@]}"
        pp_start pp-app --workers "$n" "${pp_extra[@]}" --app "$APPS_SO"
    fi
    if ! pp_has '--exec '; then
        APPS_SKIPPED+=("wsgi: $PIPEPOOL_BIN has no --exec")
        return 0
    fi
    pp_start pp-exec --workers "$n" "${exec_extra[@]}" --exec "$APPS_PY $APPS_APP"
    if [[ -x $GUNICORN ]]; then
        start_bg gunicorn "$GUNICORN" --workers "$n" --worker-class sync \
            --bind "unix:$TMP/gunicorn.sock" --chdir "${APPS_APP%/*}" hello_wsgi:app
        # SIGINT: its quick shutdown (SIGTERM waits for a graceful one)
        STOP_SIG[gunicorn]=INT
    else
        APPS_SKIPPED+=("wsgi: gunicorn not installed (tests/bench/peers.sh)")
    fi
    if [[ -x $UWSGI && -e $UWSGI_PLUGIN ]]; then
        start_bg uwsgi "$UWSGI" --plugin python3 --master --processes "$n" \
            --socket "$TMP/uwsgi.sock" --wsgi-file "$APPS_APP" --need-app \
            --disable-logging
        # Debian's uWSGI reloads on SIGTERM; SIGINT stops it
        STOP_SIG[uwsgi]=INT
    else
        APPS_SKIPPED+=("wsgi: uwsgi-core or uwsgi-plugin-python3 not installed (tests/bench/peers.sh)")
    fi
    for name in pp-builtin pp-app pp-exec gunicorn uwsgi; do
        [[ -n ${PID[$name]:-} ]] || continue
        wait_socket "$name" "$TMP/$name.sock"
        APPS_UP+=("$name")
    done
}

# apps_check BODY: every WSGI server echoes BODY (the hello was checked by
# wait_answer).
apps_check() {
    local name
    for name in pp-exec gunicorn uwsgi; do
        [[ -n ${PID[$name]:-} ]] || continue
        curl -s -o "$TMP/apps-echo.out" --max-time 5 --data-binary "@$1" \
            -H 'Content-Type: application/octet-stream' \
            "http://127.0.0.1:${PORT[$name]}/echo" || true
        if cmp -s "$1" "$TMP/apps-echo.out"; then
            log "bench: $name runs hello_wsgi.py (hello and echo)"
        else
            log "bench: WARNING: $name: POST /echo did not echo the body"
        fi
    done
}

# apps_round ROUND CONNS: one round of every scenario, each server in turn
# (the order changes from round to round, so drift favours no one).
apps_round() {
    local round=$1 c=$2 scen t i k
    local -a order wsgi=() args
    if [[ -n ${PID[pp-app]:-} ]]; then
        order=(pp-app pp-builtin)
        ((round % 2 == 1)) || order=(pp-builtin pp-app)
        for t in "${order[@]}"; do
            measure app-hello "$c" "$t" "$round" "http://127.0.0.1:${PORT[$t]}/"
        done
    fi
    for t in pp-exec gunicorn uwsgi; do
        [[ -n ${PID[$t]:-} ]] && wsgi+=("$t")
    done
    k=${#wsgi[@]}
    ((k > 0)) || return 0
    for scen in hello echo; do
        for ((i = 0; i < k; i++)); do
            t=${wsgi[(i + round) % k]}
            args=("http://127.0.0.1:${PORT[$t]}/")
            [[ $scen == echo ]] && args=(-s "$BENCH_DIR/echo.lua" "${args[0]}echo")
            measure "wsgi-$scen" "$c" "$t" "$round" "${args[@]}"
        done
    done
}

# apps_report CONNS: the section's figures against their targets.
apps_report() {
    local c=$1 scen peer label rps p99 target
    if [[ -n ${PID[pp-app]:-} ]]; then
        label="app-hello c=$c"
        figure "$label" rps pp-app "$(median app-hello "$c" pp-app 5)" \
            pp-builtin "$(median app-hello "$c" pp-builtin 5)" "" ">=" 0.95
        figure "$label" p99 pp-app "$(median app-hello "$c" pp-app 7)" \
            pp-builtin "$(median app-hello "$c" pp-builtin 7)" us
        stall_line "$label" app-hello "$c" pp-app
        stall_line "$label" app-hello "$c" pp-builtin
    fi
    [[ -n ${PID[pp-exec]:-} ]] || return 0
    for scen in wsgi-hello wsgi-echo; do
        label="$scen c=$c"
        rps=$(median "$scen" "$c" pp-exec 5)
        p99=$(median "$scen" "$c" pp-exec 7)
        for peer in gunicorn uwsgi; do
            [[ -n ${PID[$peer]:-} ]] || continue
            target=1.00
            [[ $peer == gunicorn ]] && target=1.50
            figure "$label" rps pp-exec "$rps" "$peer" "$(median "$scen" "$c" "$peer" 5)" \
                "" ">=" "$target"
            figure "$label" p99 pp-exec "$p99" "$peer" "$(median "$scen" "$c" "$peer" 7)" \
                us "<=" 1.00
        done
        for peer in pp-exec gunicorn uwsgi; do
            [[ -n ${PID[$peer]:-} ]] && stall_line "$label" "$scen" "$c" "$peer"
        done
    done
}

bench_apps() {
    local rounds=${BENCH_APPS_ROUNDS:-$ROUNDS} conns=${BENCH_APPS_CONNS:-32}
    local n=${BENCH_APPS_WORKERS:-$WORKERS} busy after round c t line
    local -x PYTHONDONTWRITEBYTECODE=1 BENCH_BODY_BYTES=${BENCH_APPS_BODY:-1024}
    # what median() and stall_line() read, while in here
    local RESULTS=$TMP/apps-results.txt ROUNDS=$rounds

    if [[ ${BENCH_APPS:-1} == 0 ]]; then
        echo "skipped: application figures (BENCH_APPS=0)"
        return 0
    fi
    : >"$RESULTS"
    apps_start "$n"
    if ((${#APPS_UP[@]} == 0)); then
        printf 'skipped: %s\n' "${APPS_SKIPPED[@]}"
        return 0
    fi
    nginx_up nginx-apps apps_conf "${APPS_UP[@]}"
    for t in "${APPS_UP[@]}"; do
        wait_answer "$t"
    done
    head -c "$BENCH_BODY_BYTES" /dev/urandom >"$TMP/apps-body.bin"
    apps_check "$TMP/apps-body.bin"
    log "bench: ${APPS_UP[*]} up behind nginx"
    busy=$(cpu_busy_pct)
    # warm-up, not counted
    for t in "${APPS_UP[@]}"; do
        wrk -t2 -c16 -d1s "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
    done
    for ((round = 1; round <= rounds; round++)); do
        for c in $conns; do
            apps_round "$round" "$c"
        done
    done
    # other work that started meanwhile shows here (ours has stopped)
    after=$(cpu_busy_pct)

    echo
    echo "== applications (median of $rounds x ${DURATION}s, wrk -t2, own nginx; $n processes each; app: pipepool --workers $n $PP_EXTRA; wsgi: $APPS_PY, pp-exec: pipepool --workers $n ${BENCH_APPS_PP_ARGS:-} --exec, gunicorn sync via proxy_pass + keepalive, uwsgi --master via uwsgi_pass; echo: ${BENCH_BODY_BYTES}-byte body)"
    busy_warning "$busy" "before the application load"
    busy_warning "$after" "after the application load"
    for c in $conns; do
        apps_report "$c"
    done
    bad_rounds "application "
    for line in "${APPS_SKIPPED[@]}"; do
        echo "skipped: $line"
    done

    stop_section nginx-apps pp-exec gunicorn uwsgi pp-app pp-builtin
    if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf -- "$TMP"/pp-* "$TMP"/gunicorn.* "$TMP"/uwsgi.* "$TMP"/nginx-apps* \
            "$TMP"/wrk-app-* "$TMP"/wrk-wsgi-* "$TMP"/apps-* "$RESULTS"
    fi
}
