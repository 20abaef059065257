# shellcheck shell=bash
# tests/bench/kvpg.sh - sourced by tests/bench/run.sh: the store on
# PostgreSQL, issue #18 (`BENCH_ONLY=kvpg make bench` runs it alone).  A
# PostgreSQL 15 of its own (tests/tools/pg.sh: loopback TCP, fsync and
# synchronous_commit on, as installed) and three pipepools with the core
# section's options (--workers BENCH_WORKERS BENCH_PP_ARGS) behind one
# nginx of their own with kept FastCGI connections:
#   kvpg-batch    --db postgresql://.../b (group commit, the default)
#   kvpg-nobatch  --db postgresql://.../n --batch 0 (a transaction each)
#   kvpg-lite     --db a SQLite file in the temp dir, --sync full
# Load at 32 connections: PUT /kv/<new key> (tests/bench/put.lua, 100-byte
# body) on all three, and GET /kv/<one key> on kvpg-batch and kvpg-lite;
# rounds interleaved, medians.  Targets: none (a report: PostgreSQL
# against SQLite, group commit against a transaction per request).
# Environment: BENCH_KVPG=0 leaves it out; BENCH_KVPG_ROUNDS (default
# BENCH_ROUNDS, at most 3) and BENCH_SECONDS size it.

KVPG_SERVERS=(kvpg-batch kvpg-nobatch kvpg-lite)

kvpg_conf() {
    local name
    nginx_head nginx-kvpg
    for name in "${KVPG_SERVERS[@]}"; do
        kept_server "$name"
    done
    echo '}'
}

bench_kvpg() {
    local rounds=${BENCH_KVPG_ROUNDS:-$((ROUNDS < 3 ? ROUNDS : 3))}
    local c=32 bytes=100 round t scen pgdir pgport uri name
    local -a extra=(--workers "$WORKERS") order args
    # shellcheck disable=SC2206
    extra+=($PP_EXTRA)
    local RESULTS=$TMP/kvpg-results.txt ROUNDS=$rounds

    if [[ ${BENCH_KVPG:-1} == 0 ]]; then
        echo "skipped: store on PostgreSQL (BENCH_KVPG=0)"
        return 0
    fi
    if [[ ! -x /usr/lib/postgresql/15/bin/initdb ]]; then
        echo "skipped: store on PostgreSQL (no postgresql-15: sh tests/deps.sh)"
        return 0
    fi
    : >"$RESULTS"
    # Its own directory: the postgres user must reach it ($TMP is ours).
    pgdir=$(mktemp -d /tmp/pp-bench-pg.XXXXXX)
    pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    KVPG_DIR=$pgdir
    sh "$ROOT/tests/tools/pg.sh" start "$pgdir" "$pgport"
    uri=postgresql://postgres@127.0.0.1:$pgport
    sh "$ROOT/tests/tools/pg.sh" sql "$pgport" "CREATE DATABASE b"
    sh "$ROOT/tests/tools/pg.sh" sql "$pgport" "CREATE DATABASE n"
    pp_start kvpg-batch "${extra[@]}" --db "$uri/b"
    pp_start kvpg-nobatch "${extra[@]}" --db "$uri/n" --batch 0
    pp_start kvpg-lite "${extra[@]}" --sync full
    for name in "${KVPG_SERVERS[@]}"; do
        wait_socket "$name" "$TMP/$name.sock"
    done
    nginx_up nginx-kvpg kvpg_conf "${KVPG_SERVERS[@]}"
    head -c "$bytes" /dev/zero | tr '\0' v >"$TMP/kvpg-value.bin"
    for name in "${KVPG_SERVERS[@]}"; do
        wait_answer "$name"
        # the GET key, and a check that the store writes (PostgreSQL may
        # take a moment to connect)
        for _ in $(seq 100); do
            [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X PUT \
                --data-binary "@$TMP/kvpg-value.bin" \
                "http://127.0.0.1:${PORT[$name]}/kv/get-key") == 20[14] ]] && break
            sleep 0.1
        done
    done

    for ((round = 1; round <= rounds; round++)); do
        for scen in put get; do
            if [[ $scen == put ]]; then
                order=(kvpg-batch kvpg-nobatch kvpg-lite)
            else
                order=(kvpg-batch kvpg-lite)
            fi
            ((round % 2 == 1)) || order=($(printf '%s\n' "${order[@]}" | tac))
            for t in "${order[@]}"; do
                args=("http://127.0.0.1:${PORT[$t]}/kv/get-key")
                [[ $scen == put ]] && args=(-s "$BENCH_DIR/put.lua"
                    "http://127.0.0.1:${PORT[$t]}/" -- "r$round" "$bytes")
                measure "kvpg-$scen" "$c" "$t" "$round" "${args[@]}"
            done
        done
    done

    echo
    echo "== store on PostgreSQL (median of $rounds x ${DURATION}s, wrk -t2 -c$c, own nginx keep_conn; pipepool ${extra[*]}; PostgreSQL 15 on loopback TCP, synchronous_commit on; SQLite --sync full on $(stat -f -c %T "$TMP" 2>/dev/null || echo '?'); put: new keys, ${bytes}-byte body)"
    figure "kvpg put" rps pg-batch "$(median kvpg-put "$c" kvpg-batch 5)" \
        pg-nobatch "$(median kvpg-put "$c" kvpg-nobatch 5)" ""
    figure "kvpg put" rps pg "$(median kvpg-put "$c" kvpg-batch 5)" \
        sqlite "$(median kvpg-put "$c" kvpg-lite 5)" ""
    figure "kvpg put" p99 pg-batch "$(median kvpg-put "$c" kvpg-batch 7)" \
        pg-nobatch "$(median kvpg-put "$c" kvpg-nobatch 7)" us
    figure "kvpg get" rps pg "$(median kvpg-get "$c" kvpg-batch 5)" \
        sqlite "$(median kvpg-get "$c" kvpg-lite 5)" ""
    figure "kvpg get" p99 pg "$(median kvpg-get "$c" kvpg-batch 7)" \
        sqlite "$(median kvpg-get "$c" kvpg-lite 7)" us
    bad_rounds "store on PostgreSQL "

    stop_section nginx-kvpg kvpg-lite kvpg-nobatch kvpg-batch
    sh "$ROOT/tests/tools/pg.sh" stop "$pgdir"
    rm -rf -- "$pgdir"
    KVPG_DIR=
    if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf -- "$TMP"/kvpg-* "$TMP"/nginx-kvpg* "$TMP"/wrk-kvpg-* "$RESULTS"
    fi
}
