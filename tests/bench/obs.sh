# shellcheck shell=bash
# tests/bench/obs.sh - sourced by tests/bench/run.sh: what the observability
# costs, issue #17 (`BENCH_ONLY=obs make bench` runs it alone).  Two
# pipepools with the core section's options (--workers BENCH_WORKERS
# BENCH_PP_ARGS), each behind the same nginx of their own with kept FastCGI
# connections:
#   pp-obs-off  nothing more
#   pp-obs-on   --access-log $TMP/obs-access.log (one line per request)
#               --slow 1 (logs every request over 1 ms, into its log)
#               and, during each of its measured rounds, a poller that
#               fetches /status and /metrics through that nginx every
#               BENCH_OBS_POLL_MS (default 100) ms, as a Prometheus scrape
#               and an operator's status page would: one curl, one kept
#               connection (as a scraper keeps one), --rate.
#               pp-obs-off's rounds have the same poller fetching GET /
#               (the scraper shares these 2 CPUs: its cost is not the
#               pages').
# Load: GET / (hello) at BENCH_CONNS connections, rounds interleaved (off,
# on, then on, off, ...), medians; targets on/off: req/s >= 0.95, p99 <=
# 1.10.  Each round's req/s ratio is shown too, and the access log's lines
# for GET / over the requests wrk counted (about 1.00: the "on" figures are
# really on), the slow log's lines and the poller's fetches.
# Environment: BENCH_OBS=0 leaves it out; BENCH_OBS_ROUNDS (default
# BENCH_ROUNDS), BENCH_OBS_POLL_MS, BENCH_SECONDS, BENCH_CONNS;
# BENCH_OBS_PARTS (default "access slow poll"): which of the three "on"
# has, to take the cost apart (the targets are for all three; without
# access the lines are not counted).

OBS_POLL_MS=${BENCH_OBS_POLL_MS:-100}
OBS_PARTS=" ${BENCH_OBS_PARTS:-access slow poll} "
OBS_SERVERS=(pp-obs-off pp-obs-on)

# The section's nginx.conf, on stdout.
obs_conf() {
    local name
    nginx_head nginx-obs
    for name in "${OBS_SERVERS[@]}"; do
        kept_server "$name"
    done
    echo '}'
}

# obs_counts: "hello polls polls_bad slow" so far: the access log's lines
# for GET /, for the poller's GET /status and /metrics and those of them
# not 200, and pp-obs-on's slow log lines.
obs_counts() {
    awk '$2 == "\"GET" && $3 == "/\"" { h++ }
        $2 == "\"GET" && ($3 == "/status\"" || $3 == "/metrics\"") { p++; if ($4 != 200) b++ }
        END { printf "%d %d %d ", h, p, b }' "$TMP/obs-access.log"
    grep -c 'slow request: ' "$TMP/pp-obs-on.log" || true
}

# obs_round ROUND CONNS TARGET: one measured round; for pp-obs-on with the
# poller running throughout, and the log lines it added counted.
obs_round() {
    local round=$1 c=$2 t=$3 url poller='' h0 p0 b0 s0 h1 p1 b1 s1 reqs n i
    local -a pages
    url="http://127.0.0.1:${PORT[$t]}"
    if [[ $t == pp-obs-on && $OBS_PARTS == *" access "* ]]; then
        read -r h0 p0 b0 s0 < <(obs_counts)
    fi
    if [[ $OBS_PARTS == *" poll "* ]]; then
        # enough fetches for the round and 2 s more; stopped when wrk ends.
        # The off rounds get the same poller fetching GET / instead: the
        # scraper is a process on these same 2 CPUs (Prometheus seldom
        # is), and its own wake-ups and CPU land in the tail of whichever
        # server it runs beside; what is left is what the pages cost.
        pages=(/status /metrics)
        [[ $t == pp-obs-on ]] || pages=(/ /)
        n=$(((DURATION + 2) * 1000 / OBS_POLL_MS))
        for ((i = 0; i < n; i++)); do
            printf 'url = "%s%s"\noutput = "/dev/null"\nurl = "%s%s"\noutput = "/dev/null"\n' \
                "$url" "${pages[0]}" "$url" "${pages[1]}"
        done >"$TMP/obs-poll.conf"
        # (what it got is read from the access log: curl's -w output would
        # be lost in its buffer when it is stopped)
        curl -s --rate "$((2 * 60000 / OBS_POLL_MS))/m" -K "$TMP/obs-poll.conf" >/dev/null 2>&1 &
        poller=$!
    fi
    measure obs "$c" "$t" "$round" "$url/"
    if [[ -n $poller ]]; then
        stop_pid "$poller"
        wait "$poller" 2>/dev/null || true
    fi
    [[ $t == pp-obs-on && $OBS_PARTS == *" access "* ]] || return 0
    # the lines of requests still in flight when wrk stopped land a little
    # later, and the buffer (--access-log-buffer) goes out within a second
    reqs=$(awk '/ requests in / { print $1 }' "$TMP/wrk-obs-$c-$t-$round.txt")
    for ((i = 0; i < 30; i++)); do
        read -r h1 p1 b1 s1 < <(obs_counts)
        ((h1 - h0 >= ${reqs:-0})) && break
        sleep 0.1
    done
    echo "$c $round $((h1 - h0)) ${reqs:-0} $((s1 - s0)) $((p1 - p0)) $((b1 - b0))" >>"$TMP/obs-on.txt"
}

bench_obs() {
    local rounds=${BENCH_OBS_ROUNDS:-$ROUNDS} busy after round t c name label order
    local -a on
    local -a extra=(--workers "$WORKERS")
    # shellcheck disable=SC2206
    extra+=($PP_EXTRA)
    # what median() and stall_line() read, while in here
    local RESULTS=$TMP/obs-results.txt ROUNDS=$rounds

    if [[ ${BENCH_OBS:-1} == 0 ]]; then
        echo "skipped: observability cost (BENCH_OBS=0)"
        return 0
    fi
    if ! pp_has '--access-log' || ! pp_has '--slow '; then
        echo "skipped: observability cost ($PIPEPOOL_BIN has no --access-log/--slow)"
        return 0
    fi
    : >"$RESULTS"
    : >"$TMP/obs-on.txt"
    pp_start pp-obs-off "${extra[@]}"
    on=()
    [[ $OBS_PARTS == *" access "* ]] && on+=(--access-log "$TMP/obs-access.log")
    [[ $OBS_PARTS == *" slow "* ]] && on+=(--slow 1)
    pp_start pp-obs-on "${extra[@]}" "${on[@]}"
    servers_up nginx-obs obs_conf "${OBS_SERVERS[@]}"
    for name in status metrics; do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
            "http://127.0.0.1:${PORT[pp-obs-on]}/$name") == 200 ]] ||
            log "bench: WARNING: pp-obs-on: /$name does not answer 200"
    done
    log "bench: ${OBS_SERVERS[*]} up behind nginx"
    busy=$(cpu_busy_pct)
    # warm-up, not counted
    for t in "${OBS_SERVERS[@]}"; do
        wrk -t2 -c16 -d1s "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
    done
    for ((round = 1; round <= rounds; round++)); do
        for c in $CONNS; do
            # alternate who goes first, so drift does not favour one side
            order=(pp-obs-off pp-obs-on)
            ((round % 2 == 1)) || order=(pp-obs-on pp-obs-off)
            for t in "${order[@]}"; do
                obs_round "$round" "$c" "$t"
            done
        done
    done
    # other work that started meanwhile shows here (ours has stopped)
    after=$(cpu_busy_pct)

    echo
    echo "== observability cost (median of $rounds x ${DURATION}s, wrk -t2, own nginx keep_conn; pipepool ${extra[*]}; on:${OBS_PARTS% } (access: --access-log FILE on $(stat -f -c %T "$TMP" 2>/dev/null || echo '?'), slow: --slow 1, poll: /status and /metrics every ${OBS_POLL_MS} ms through nginx); off: none of it; GET /)"
    busy_warning "$busy" "before the observability load"
    busy_warning "$after" "after the observability load"
    for c in $CONNS; do
        label="obs c=$c"
        figure "$label" rps on "$(median obs "$c" pp-obs-on 5)" \
            off "$(median obs "$c" pp-obs-off 5)" "" ">=" 0.95
        echo "$label rps ratio of each round: $(pool_pairs obs "$c" pp-obs-on pp-obs-off)"
        figure "$label" p50 on "$(median obs "$c" pp-obs-on 6)" \
            off "$(median obs "$c" pp-obs-off 6)" us
        figure "$label" p99 on "$(median obs "$c" pp-obs-on 7)" \
            off "$(median obs "$c" pp-obs-off 7)" us "<=" 1.10
        awk -v c="$c" -v label="$label" -v ms="$OBS_POLL_MS" -v d="$DURATION" '$1 == c {
                l += $3; q += $4; s += $5; p += $6; bad += $7; n++
                each = each sprintf(" %.2f", $4 > 0 ? $3 / $4 : 0) }
            END {
                r = q > 0 ? l / q : 0
                printf "%-12s log access-log lines/requests on=%d/%d=%.2f (each round:%s) target 0.99..1.01 %s\n",
                    label, l, q, r, each, (r >= 0.99 && r <= 1.01) ? "PASS" : "MISS"
                printf "%-12s log slow-log lines on=%d (%.1f%% of requests over 1 ms); poller %d fetches of /status + /metrics (%.1f/s, %.0f/s wanted), %d not 200\n",
                    label, s, (q > 0 ? 100 * s / q : 0), p, (n > 0 ? p / (n * d) : 0), 2000 / ms, bad }' "$TMP/obs-on.txt"
        stall_line "$label" obs "$c" pp-obs-on
        stall_line "$label" obs "$c" pp-obs-off
    done
    bad_rounds "obs "

    stop_section nginx-obs pp-obs-on pp-obs-off
    if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf -- "$TMP"/pp-obs-off.* "$TMP"/pp-obs-on.* "$TMP"/nginx-obs* \
            "$TMP"/wrk-obs-* "$TMP"/obs-* "$RESULTS"
    fi
}
