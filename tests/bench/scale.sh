# shellcheck shell=bash
# tests/bench/scale.sh - sourced by tests/bench/run.sh: how pipepool holds up
# as the client connections grow, issue #19 (`BENCH_ONLY=scale make bench`
# runs it alone).  GET / (hello) at BENCH_SCALE_CONNS (default "16 64 256
# 1024") client connections, through an nginx of its own whose upstream
# keepalive pool holds the largest count (so every client connection has a
# kept FastCGI connection, as the issue asks), against:
#   pp-scale      pipepool --workers BENCH_WORKERS BENCH_PP_ARGS --threads
#                 BENCH_SCALE_THREADS (default 2048: a FastCGI connection
#                 is a front thread, and the shipped 512 is fewer than the
#                 pool; conf/nginx-site.conf says to raise it so) --queue
#                 the largest count (else the shipped 128 answers 503 to
#                 what waits beyond it, as it should)
#   inline-scale  the inline responder with the poll before each read
#                 (inline.c -w), as many threads (a reference, no target)
# Rounds interleaved, medians.  Reported per count: req/s and p99 of each,
# and the PSS of all pipepool's processes (one sample half-way through each
# round, the largest), and the resident stack of a front thread (the
# median; a thread per kept connection, so each page is 4 MiB at 1,024;
# no target, two pages since the access log's line left the hot path).
# Targets: pipepool's req/s at the largest count
# within 10 % of its req/s at 64 (>= 0.90), and its PSS <= 16 MiB there.
# Environment: BENCH_SCALE=0 leaves it out; BENCH_SCALE_ROUNDS (default
# BENCH_ROUNDS), BENCH_SCALE_CONNS, BENCH_SCALE_THREADS, BENCH_SECONDS.

SCALE_CONNS=${BENCH_SCALE_CONNS:-16 64 256 1024}
SCALE_THREADS=${BENCH_SCALE_THREADS:-2048}
SCALE_PSS_KIB=16384
SCALE_SERVERS=(pp-scale inline-scale)

# The largest count in SCALE_CONNS.
scale_max() {
    local c max=0
    for c in $SCALE_CONNS; do
        ((c > max)) && max=$c
    done
    echo "$max"
}

# The section's nginx.conf, on stdout: kept pools as large as the load.
scale_conf() {
    local name pool
    pool=$(scale_max)
    nginx_head nginx-scale
    for name in "${SCALE_SERVERS[@]}"; do
        KEPT_POOL=$pool kept_server "$name"
    done
    echo '}'
}

# scale_pss CONNS: the largest PSS sample (KiB) of pipepool at CONNS, 0 if
# none.
scale_pss() {
    awk -v c="$1" '$1 == c && $2 > m { m = $2 } END { print m + 0 }' "$TMP/scale-pss.txt"
}

# front_stacks PIDS...: the median resident KiB of the front's thread
# stacks (its anonymous 256 KiB mappings, fcgi/front.c's THREAD_STACK; a
# malloc arena of that size is one among a thousand), then their count.
# A thread per kept connection: two pages each is what fcgi/conn.c keeps.
front_stacks() {
    local pid title
    for pid in "$@"; do
        title=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
        [[ $title == 'pipepool: front'* ]] || continue
        awk '/^[0-9a-f]+-[0-9a-f]+ / { anon = NF == 5 }
             /^Size:/ { size = $2 }
             /^Rss:/ && anon && size == 256 { print $2 }' "/proc/$pid/smaps" 2>/dev/null |
            sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)], NR }'
        return 0
    done
}

# scale_round ROUND CONNS TARGET: one measured round; pipepool's PSS is
# sampled half-way through it.
scale_round() {
    local round=$1 c=$2 t=$3 sampler='' pids
    if [[ $t == pp-scale ]]; then
        (
            sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"
            pids=$(proc_tree "${PID[pp-scale]}")
            # shellcheck disable=SC2086  # a pid list
            pss_of $pids | awk -v c="$c" '{ print c, $1 }' >>"$TMP/scale-pss.txt"
            # shellcheck disable=SC2086
            front_stacks $pids | awk -v c="$c" '{ print c, $1, $2 }' >>"$TMP/scale-stack.txt"
        ) &
        sampler=$!
    fi
    measure scale "$c" "$t" "$round" "http://127.0.0.1:${PORT[$t]}/"
    [[ -z $sampler ]] || wait "$sampler" || true
}

bench_scale() {
    local rounds=${BENCH_SCALE_ROUNDS:-$ROUNDS} round c t label order
    local max rps64 rpsmax pss
    local -a extra
    local RESULTS=$TMP/scale-results.txt ROUNDS=$rounds

    if [[ ${BENCH_SCALE:-1} == 0 ]]; then
        echo "skipped: connection scaling (BENCH_SCALE=0)"
        return 0
    fi
    max=$(scale_max)
    extra=(--workers "$WORKERS" --threads "$SCALE_THREADS" --queue "$max")
    # shellcheck disable=SC2206
    extra+=($PP_EXTRA)
    : >"$RESULTS"
    : >"$TMP/scale-pss.txt"
    : >"$TMP/scale-stack.txt"
    [[ -x $TMP/inline ]] || build_inline
    pp_start pp-scale "${extra[@]}"
    start_bg inline-scale "$TMP/inline" -w -s "$TMP/inline-scale.sock" \
        -t "$SCALE_THREADS" -p 1
    servers_up nginx-scale scale_conf "${SCALE_SERVERS[@]}"
    log "bench: ${SCALE_SERVERS[*]} up behind nginx (kept pool $max)"
    # warm-up at the largest count: every kept connection opened once
    for t in "${SCALE_SERVERS[@]}"; do
        wrk -t2 -c"$max" -d1s "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
    done
    for ((round = 1; round <= rounds; round++)); do
        for c in $SCALE_CONNS; do
            read -r -a order <<<"$(in_turn "$round" "${SCALE_SERVERS[@]}")"
            for t in "${order[@]}"; do
                scale_round "$round" "$c" "$t"
            done
        done
    done

    echo
    echo "== connection scaling (median of $rounds x ${DURATION}s, wrk -t2, own nginx keep_conn, upstream keepalive $max; pp-scale: pipepool ${extra[*]}; inline-scale: inline -w, $SCALE_THREADS threads; GET /)"
    for c in $SCALE_CONNS; do
        label="scale c=$c"
        figure "$label" rps pipepool "$(median scale "$c" pp-scale 5)" \
            inline-poll "$(median scale "$c" inline-scale 5)" ""
        figure "$label" p99 pipepool "$(median scale "$c" pp-scale 7)" \
            inline-poll "$(median scale "$c" inline-scale 7)" us
        pss=$(scale_pss "$c")
        printf '%-12s pss pipepool=%sKiB (largest of one sample per round, half-way through)\n' \
            "$label" "$pss"
        awk -v c="$c" -v l="$label" '$1 == c { k = $2; n = $3 }
            END { if (n) printf "%-12s stack pipepool=%sKiB per front thread (median of %s, last sample)\n", l, k, n }' \
            "$TMP/scale-stack.txt"
        stall_line "$label" scale "$c" pp-scale
        stall_line "$label" scale "$c" inline-scale
    done
    rps64=$(median scale 64 pp-scale 5)
    rpsmax=$(median scale "$max" pp-scale 5)
    figure "scale c=$max" rps "c$max" "$rpsmax" c64 "$rps64" "" ">=" 0.90
    pss=$(scale_pss "$max")
    printf '%-12s pss pipepool=%sKiB target<=%sKiB %s\n' "scale c=$max" "$pss" \
        "$SCALE_PSS_KIB" "$( ((pss > 0 && pss <= SCALE_PSS_KIB)) && echo PASS || echo MISS)"
    bad_rounds "scale "

    stop_section nginx-scale "${SCALE_SERVERS[@]}"
    if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf -- "$TMP"/pp-scale.* "$TMP"/inline-scale.* "$TMP"/nginx-scale* \
            "$TMP"/wrk-scale-* "$TMP"/scale-* "$RESULTS"
    fi
}
