# shellcheck shell=bash
# tests/bench/pool.sh - sourced by tests/bench/run.sh: the figures of a
# pool sized to the load (`--workers MIN:MAX`), issue #16
# (`BENCH_ONLY=pool make bench` runs them alone).  Three pipepools, all
# with --debug-routes and the core section's options (BENCH_PP_ARGS),
# each behind an nginx of their own with kept FastCGI connections:
#   pp-fixed-min  --workers MIN
#   pp-dynamic    --workers MIN:MAX --idle-timeout BENCH_POOL_IDLE (default
#                 2 s, so it is back at MIN between rounds), --spare default
#   pp-fixed-max  --workers MAX
# with MIN:MAX = BENCH_POOL_WORKERS (default 2:8).  Rounds interleaved,
# medians:
#   * rest: GET / (hello) at BENCH_POOL_REST_CONNS connections (default 1:
#     with the default --spare 1 the dynamic pool wants 1 busy + 1 spare,
#     i.e. MIN, and should stay there), pp-dynamic against pp-fixed-min;
#     targets: req/s ratio >= 0.95, p99 ratio <= 1.10.  Each dynamic
#     round starts at MIN (polled on /status) and the report says whether
#     the pool stayed there (its log's "growing" lines, /status after).
#   * step: GET /debug/sleep?ms=BENCH_POOL_SLEEP_MS (default 20: a worker
#     is held that long, so the pool's size sets the req/s), wrk at 1
#     connection for 1 s and at once BENCH_POOL_STEP_CONNS (default 64) for
#     BENCH_SECONDS, the second run measured, pp-dynamic (at MIN when it
#     starts) against pp-fixed-max; target: req/s ratio >= 0.90, and no
#     non-2xx or socket error.  Also shown: how long the dynamic pool took
#     to have MAX workers up (/status polled every 50 ms from the step on).
# Environment: BENCH_POOL=0 leaves it out; BENCH_POOL_ROUNDS (default
# BENCH_ROUNDS), BENCH_SECONDS, and the above.

POOL_SPEC=${BENCH_POOL_WORKERS:-2:8}
POOL_MIN=${POOL_SPEC%%:*}
POOL_MAX=${POOL_SPEC##*:}
POOL_IDLE=${BENCH_POOL_IDLE:-2}
POOL_SLEEP_MS=${BENCH_POOL_SLEEP_MS:-20}
POOL_REST_CONNS=${BENCH_POOL_REST_CONNS:-1}
POOL_STEP_CONNS=${BENCH_POOL_STEP_CONNS:-64}
POOL_SERVERS=(pp-fixed-min pp-dynamic pp-fixed-max)

# The section's nginx.conf, on stdout.
pool_conf() {
    local name
    nginx_head nginx-pool
    for name in "${POOL_SERVERS[@]}"; do
        kept_server "$name"
    done
    echo '}'
}

# pool_state NAME: "size up" of server NAME's pool from its /status: the
# workers it counts (starting ones too) and those up (idle or busy); "0 0"
# when /status does not answer.
pool_state() {
    local json size up
    json=$(curl -s --max-time 2 "http://127.0.0.1:${PORT[$1]}/status" 2>/dev/null) || json=
    size=$(grep -o '"pool":{[^}]*}' <<<"$json" | sed -n 's/.*"size":\([0-9]*\).*/\1/p')
    up=$(grep -Eo '"state":"(idle|busy)"[^}]*"kind":"worker"' <<<"$json" | wc -l)
    echo "${size:-0} $up"
}

# pool_wait_min: wait until pp-dynamic is back at MIN workers (its
# --idle-timeout and a tick after a step round), up to 10 s more.
pool_wait_min() {
    local i size up
    for ((i = 0; i < (POOL_IDLE + 10) * 20; i++)); do
        read -r size up < <(pool_state pp-dynamic)
        ((size == POOL_MIN && up == POOL_MIN)) && return 0
        sleep 0.05
    done
    log "bench: WARNING: pp-dynamic still at $size workers ($up up) after $((POOL_IDLE + 10)) s"
}

# pool_grows: the dynamic pool's "growing" log lines so far.
pool_grows() { grep -c 'pool: .* growing to' "$TMP/pp-dynamic.log" || true; }

# pool_rest ROUND TARGET: one round of the low load.
pool_rest() {
    local round=$1 t=$2 g0 g1 size up
    local -a args=()
    # measure's wrk -t2 needs 2 connections; a later -t wins
    ((POOL_REST_CONNS < 2)) && args=(-t1)
    [[ $t == pp-dynamic ]] && { pool_wait_min; g0=$(pool_grows); }
    measure pool-rest "$POOL_REST_CONNS" "$t" "$round" "${args[@]}" "http://127.0.0.1:${PORT[$t]}/"
    [[ $t == pp-dynamic ]] || return 0
    g1=$(pool_grows)
    read -r size up < <(pool_state pp-dynamic)
    echo "$round $((g1 - g0)) $size" >>"$TMP/pool-rest-size.txt"
    ((g1 == g0 && size == POOL_MIN)) ||
        log "bench: pp-dynamic grew during the rest round ($((g1 - g0)) steps, $size workers after)"
}

# pool_step ROUND TARGET: 1 s at 1 connection, then the measured round at
# POOL_STEP_CONNS; for pp-dynamic, /status polled every 50 ms meanwhile
# (in the background, for at most the round and 2 s) until MAX are up.
pool_step() {
    local round=$1 t=$2 url bad poller=''
    url="http://127.0.0.1:${PORT[$t]}/debug/sleep?ms=$POOL_SLEEP_MS"
    [[ $t == pp-dynamic ]] && pool_wait_min
    wrk -t1 -c1 -d1s "$url" >"$TMP/wrk-pool-pre-$t-$round.txt" 2>&1 ||
        log "bench: WARNING: wrk failed for the step's first second ($t)"
    if [[ $t == pp-dynamic ]]; then
        (
            t0=$(date +%s%N)
            end=$((t0 + (DURATION + 2) * 1000000000))
            while (($(date +%s%N) < end)); do
                read -r _ up < <(pool_state pp-dynamic)
                if ((up >= POOL_MAX)); then
                    echo "$round $((($(date +%s%N) - t0) / 1000000))" >>"$TMP/pool-grow.txt"
                    exit 0
                fi
                sleep 0.05
            done
            echo "$round -1" >>"$TMP/pool-grow.txt"
        ) &
        poller=$!
    fi
    measure pool-step "$POOL_STEP_CONNS" "$t" "$round" "$url"
    [[ -n $poller ]] && wait "$poller" 2>/dev/null
    # the first second's errors count with the round's
    read -r _ _ _ bad _ < <(parse_wrk <"$TMP/wrk-pool-pre-$t-$round.txt")
    echo "$t $round $bad" >>"$TMP/pool-pre-bad.txt"
}

# pool_median: the median of the sorted numbers on stdin (nothing if none).
pool_median() {
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]
        else if (NR) print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# pool_pairs SCEN CONNS A B: the req/s ratio A/B of each round, and their
# median (the rounds of a pair ran back to back: drift between rounds,
# other work on the machine, cancels out there, not in a ratio of medians).
pool_pairs() {
    local r
    r=$(awk -v s="$1" -v c="$2" -v a="$3" -v b="$4" '$1 == s && $2 == c {
            if ($3 == a) x[$4] = $5; else if ($3 == b) y[$4] = $5 }
        END { for (r in x) if (y[r] > 0) printf "%d %.2f\n", r, x[r] / y[r] }' "$RESULTS" |
        sort -n | awk '{ print $2 }')
    [[ -n $r ]] || { echo n/a; return 0; }
    echo "$(tr '\n' ' ' <<<"$r")(median $(sort -g <<<"$r" | pool_median | xargs printf '%.2f'))"
}

bench_pool() {
    local rounds=${BENCH_POOL_ROUNDS:-$ROUNDS} busy after round t
    local label grew ms bad_dyn bad_max verdict
    local -a extra order
    # shellcheck disable=SC2206
    extra=($PP_EXTRA)
    # what median() and stall_line() read, while in here
    local RESULTS=$TMP/pool-results.txt ROUNDS=$rounds

    if [[ ${BENCH_POOL:-1} == 0 ]]; then
        echo "skipped: pool figures (BENCH_POOL=0)"
        return 0
    fi
    if ! pp_has '--idle-timeout'; then
        echo "skipped: pool figures ($PIPEPOOL_BIN has no --workers MIN:MAX)"
        return 0
    fi
    : >"$RESULTS"
    : >"$TMP/pool-rest-size.txt"
    : >"$TMP/pool-grow.txt"
    : >"$TMP/pool-pre-bad.txt"
    pp_start pp-fixed-min --workers "$POOL_MIN" --debug-routes "${extra[@]}"
    pp_start pp-dynamic --workers "$POOL_MIN:$POOL_MAX" --idle-timeout "$POOL_IDLE" \
        --debug-routes "${extra[@]}"
    pp_start pp-fixed-max --workers "$POOL_MAX" --debug-routes "${extra[@]}"
    servers_up nginx-pool pool_conf "${POOL_SERVERS[@]}"
    log "bench: ${POOL_SERVERS[*]} up behind nginx"
    busy=$(cpu_busy_pct)
    # warm-up, not counted (the dynamic pool grows, and is back at MIN
    # before its first round)
    for t in "${POOL_SERVERS[@]}"; do
        wrk -t2 -c16 -d1s "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
    done
    for ((round = 1; round <= rounds; round++)); do
        # alternate who goes first, so drift does not favour one side
        order=(pp-fixed-min pp-dynamic)
        ((round % 2 == 1)) || order=(pp-dynamic pp-fixed-min)
        for t in "${order[@]}"; do
            pool_rest "$round" "$t"
        done
        order=(pp-dynamic pp-fixed-max)
        ((round % 2 == 1)) || order=(pp-fixed-max pp-dynamic)
        for t in "${order[@]}"; do
            pool_step "$round" "$t"
        done
    done
    # other work that started meanwhile shows here (ours has stopped)
    after=$(cpu_busy_pct)

    echo
    echo "== pool sized to the load (median of $rounds x ${DURATION}s, wrk -t2 (-t1 at 1 connection), own nginx keep_conn; pipepool --debug-routes $PP_EXTRA; pp-fixed-min --workers $POOL_MIN, pp-dynamic --workers $POOL_MIN:$POOL_MAX --idle-timeout $POOL_IDLE, pp-fixed-max --workers $POOL_MAX; rest: GET / at c=$POOL_REST_CONNS; step: /debug/sleep?ms=$POOL_SLEEP_MS, 1 s at c=1 then c=$POOL_STEP_CONNS)"
    busy_warning "$busy" "before the pool load"
    busy_warning "$after" "after the pool load"
    label="pool-rest c=$POOL_REST_CONNS"
    figure "$label" rps pp-dynamic "$(median pool-rest "$POOL_REST_CONNS" pp-dynamic 5)" \
        pp-fixed-min "$(median pool-rest "$POOL_REST_CONNS" pp-fixed-min 5)" "" ">=" 0.95
    echo "$label rps ratio of each round: $(pool_pairs pool-rest "$POOL_REST_CONNS" pp-dynamic pp-fixed-min)"
    figure "$label" p50 pp-dynamic "$(median pool-rest "$POOL_REST_CONNS" pp-dynamic 6)" \
        pp-fixed-min "$(median pool-rest "$POOL_REST_CONNS" pp-fixed-min 6)" us
    figure "$label" p99 pp-dynamic "$(median pool-rest "$POOL_REST_CONNS" pp-dynamic 7)" \
        pp-fixed-min "$(median pool-rest "$POOL_REST_CONNS" pp-fixed-min 7)" us "<=" 1.10
    grew=$(awk -v m="$POOL_MIN" '$2 > 0 || $3 != m { printf " %s:%s->%s", $1, $2, $3 }' \
        "$TMP/pool-rest-size.txt")
    if [[ -z $grew ]]; then
        echo "$label size pp-dynamic stayed at $POOL_MIN workers in every round"
    else
        echo "$label size pp-dynamic did not stay at $POOL_MIN workers (round:grow steps->size after):$grew (the rest figures compare a larger pool)"
    fi
    stall_line "$label" pool-rest "$POOL_REST_CONNS" pp-dynamic
    stall_line "$label" pool-rest "$POOL_REST_CONNS" pp-fixed-min

    label="pool-step c=$POOL_STEP_CONNS"
    figure "$label" rps pp-dynamic "$(median pool-step "$POOL_STEP_CONNS" pp-dynamic 5)" \
        pp-fixed-max "$(median pool-step "$POOL_STEP_CONNS" pp-fixed-max 5)" "" ">=" 0.90
    echo "$label rps ratio of each round: $(pool_pairs pool-step "$POOL_STEP_CONNS" pp-dynamic pp-fixed-max)"
    figure "$label" p99 pp-dynamic "$(median pool-step "$POOL_STEP_CONNS" pp-dynamic 7)" \
        pp-fixed-max "$(median pool-step "$POOL_STEP_CONNS" pp-fixed-max 7)" us
    ms=$(awk '$2 >= 0 { print $2 }' "$TMP/pool-grow.txt" | sort -n | pool_median)
    if [[ -n $ms ]]; then ms="median $(printf '%.0f' "$ms")ms"; else ms=never; fi
    printf '%s grow pp-dynamic %s -> %s workers up: %s (rounds, ms: %s)\n' "$label" \
        "$POOL_MIN" "$POOL_MAX" "$ms" \
        "$(awk '{ printf "%s%s", (NR > 1 ? " " : ""), ($2 >= 0 ? $2 : "never") }' "$TMP/pool-grow.txt")"
    bad_dyn=$(awk '$1 == "pool-step" && $3 == "pp-dynamic" { b += $8 } END { print b + 0 }' "$RESULTS")
    bad_max=$(awk '$1 == "pool-step" && $3 == "pp-fixed-max" { b += $8 } END { print b + 0 }' "$RESULTS")
    bad_dyn=$((bad_dyn + $(awk '$1 == "pp-dynamic" { b += $3 } END { print b + 0 }' "$TMP/pool-pre-bad.txt")))
    bad_max=$((bad_max + $(awk '$1 == "pp-fixed-max" { b += $3 } END { print b + 0 }' "$TMP/pool-pre-bad.txt")))
    verdict=MISS
    ((bad_dyn == 0 && bad_max == 0)) && verdict=PASS
    echo "$label errors pp-dynamic=$bad_dyn pp-fixed-max=$bad_max (non-2xx + socket errors, both wrk runs) target=0 $verdict"
    stall_line "$label" pool-step "$POOL_STEP_CONNS" pp-dynamic
    stall_line "$label" pool-step "$POOL_STEP_CONNS" pp-fixed-max
    bad_rounds "pool "

    stop_section nginx-pool pp-fixed-max pp-dynamic pp-fixed-min
    if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf -- "$TMP"/pp-fixed-min.* "$TMP"/pp-dynamic.* "$TMP"/pp-fixed-max.* \
            "$TMP"/nginx-pool* "$TMP"/wrk-pool-* "$TMP"/pool-* "$RESULTS"
    fi
}
