# shellcheck shell=bash
# tests/bench/cgi.sh - sourced by tests/bench/run.sh: pipepool --cgi
# against fcgiwrap, issue #15 (`BENCH_ONLY=cgi make bench` runs it alone).
# One nginx of their own, a server block per server, each
# conf/nginx-cgi.conf as it ships but for its port and socket:
#   pp-cgi         pipepool --cgi --workers BENCH_WORKERS, with the kept
#                  FastCGI connections conf/nginx-cgi.conf has (no
#                  BENCH_PP_ARGS: --cpu-affinity would put every program on
#                  one CPU)
#   fcgiwrap-cgi   fcgiwrap -c BENCH_WORKERS as it is deployed (Debian's
#                  /etc/nginx/fcgiwrap.conf): a connection per request, the
#                  block without keepalive and fastcgi_keep_conn
#   fcgiwrap-cgi-kept  the same fcgiwrap with the block as pipepool's: hello
#                  only, for reference.  A child serves one connection until
#                  nginx closes it, so only BENCH_WORKERS of the connections
#                  are served (its stall line says so) and its figures
#                  describe those alone.
# Load, rounds interleaved (the order reversed every other round), medians:
#   * hello: a C CGI (written and built here) at BENCH_CGI_CONNS (default
#     16) connections; targets pp-cgi/fcgiwrap-cgi: req/s >= 1.20, p99 <= 1.00
#   * clone: `git clone --bare` through git-http-backend of a repository of
#     BENCH_CGI_GIT_MB (default 50) MB of incompressible blobs, repacked
#     with a bitmap as a served repository is after `git gc` (otherwise
#     pack-objects' delta search, the same work for both, costs seconds of
#     CPU a clone here and swamps the rest), BENCH_CGI_CLONES (default 9)
#     times each; target: time <= 1.00 (the median of the rounds' ratios).
# Environment: BENCH_CGI=0 leaves it out; BENCH_CGI_ROUNDS (default
# BENCH_ROUNDS), BENCH_SECONDS, and the above.

CGI_CONNS=${BENCH_CGI_CONNS:-16}
CGI_GIT_MB=${BENCH_CGI_GIT_MB:-50}
# Clones: each takes 0.7-2 s here, most of it git's own work on both
# sides, and two clones in a row differ by up to a quarter: so more rounds
# than the hello's, for a steady median.
CGI_CLONES=${BENCH_CGI_CLONES:-9}
CGI_SERVERS=(pp-cgi fcgiwrap-cgi fcgiwrap-cgi-kept)

# cgi_site NAME [plain]: conf/nginx-cgi.conf for server NAME on PORT[NAME]
# and $TMP/NAME.sock; plain: no kept connections.
cgi_site() {
    sed -e "s|listen 80;|listen 127.0.0.1:${PORT[$1]};|" -e '/listen \[::\]:80;/d' \
        -e "s|/run/pipepool/cgi.sock|$TMP/$1.sock|" -e "s|pipepool_cgi|up_${1//-/_}|g" \
        -e "s|root /usr/lib;|root $TMP/cgi-root;|" -e "s|/srv/git|$TMP/cgi-git|" \
        -e "s|/etc/cgitrc|$TMP/cgitrc|" "$ROOT/conf/nginx-cgi.conf" |
        if [[ ${2:-} == plain ]]; then
            sed -e '/keepalive/d' -e '/fastcgi_keep_conn/d'
        else
            cat
        fi
}

# The section's nginx.conf, on stdout.
cgi_conf() {
    nginx_head nginx-cgi
    cgi_site pp-cgi
    cgi_site fcgiwrap-cgi plain
    cgi_site fcgiwrap-cgi-kept
    echo '}'
}

# cgi_files: the hello program and the repository to clone.
cgi_files() {
    local i
    mkdir -p "$TMP/cgi-root/cgi-bin" "$TMP/cgi-git" "$TMP/cgi-seed"
    cat >"$TMP/cgi-hello.c" <<'EOF'
#include <stdio.h>

int
main(void)
{
	fputs("Content-Type: text/plain\r\n\r\nhello from a C CGI\n", stdout);
	return 0;
}
EOF
    gcc -O2 -o "$TMP/cgi-root/cgi-bin/hello" "$TMP/cgi-hello.c" ||
        die "cannot build the C CGI hello"
    git init -q --bare "$TMP/cgi-git/big.git"
    git init -q "$TMP/cgi-seed"
    for ((i = 1; i <= CGI_GIT_MB; i++)); do
        head -c 1048576 /dev/urandom >"$TMP/cgi-seed/blob$i"
    done
    git -C "$TMP/cgi-seed" add -A
    git -C "$TMP/cgi-seed" -c user.name=bench -c user.email=bench@localhost \
        commit -q -m "$CGI_GIT_MB MB"
    git -C "$TMP/cgi-seed" push -q "$TMP/cgi-git/big.git" HEAD:refs/heads/main
    git -C "$TMP/cgi-git/big.git" repack -adbq
    rm -rf -- "$TMP/cgi-seed"
}

# cgi_clone ROUND TARGET: one clone, its milliseconds and the CPU the
# server's own processes used for it (utime + stime of the server and the
# processes it has then: not the CGI programs, which have ended, so git's
# work on the server's side is left out) into $RESULTS as
# "clone 1 TARGET ROUND ms cpu_ms" (failed: a line on stderr, no figure).
cgi_clone() {
    local round=$1 t=$2 t0 t1 c0 c1
    rm -rf -- "$TMP/cgi-clone"
    read -r c0 _ < <(cpu_ticks "${PID[$t]}")
    t0=$(date +%s%N)
    if ! git clone -q --bare "http://127.0.0.1:${PORT[$t]}/git/big.git" \
        "$TMP/cgi-clone" 2>"$TMP/cgi-clone.err"; then
        log "bench: WARNING: git clone through $t failed: $(tail -n 1 "$TMP/cgi-clone.err")"
        return 0
    fi
    t1=$(date +%s%N)
    read -r c1 _ < <(cpu_ticks "${PID[$t]}")
    c1=$(((c1 - c0) * 1000 / $(getconf CLK_TCK)))
    echo "clone 1 $t $round $(((t1 - t0) / 1000000)) $c1" >>"$RESULTS"
    printf 'round %s/%s clone      %-13s %6s ms, server CPU %s ms\n' "$round" \
        "$CGI_CLONES" "$t" "$(((t1 - t0) / 1000000))" "$c1" >&2
}

# cgi_median TARGET [FIELD]: the median clone time (FIELD 5, the default)
# or server CPU (6) of TARGET (0: none).
cgi_median() {
    awk -v t="$1" -v f="${2:-5}" '$1 == "clone" && $3 == t { print $f }' "$RESULTS" | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) print 0
            else if (NR % 2) print v[(NR + 1) / 2]
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# cgi_paired: the median over rounds of pipepool's clone time over
# fcgiwrap's in the same round (the two clones of a round run back to
# back, their order swapped every other round), with the target.  The
# machine drifts over a section (page cache, other load): a round's two
# clones see the same machine, so their ratio is the steadier figure; the
# medians' ratio above is printed beside it.
cgi_paired() {
    awk '$1 == "clone" { t[$3, $4] = $5; if ($4 > n) n = $4 }
        END { for (i = 1; i <= n; i++)
            if (t["pp-cgi", i] > 0 && t["fcgiwrap-cgi", i] > 0)
                print t["pp-cgi", i] / t["fcgiwrap-cgi", i] }' "$RESULTS" | sort -n |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "cgi clone    ms  per round: no pairs MISS"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "cgi clone    ms  per round pipepool/fcgiwrap: median of %d ratio=%.2f (%.2f-%.2f) target<=1.00 %s\n",
                NR, m, v[1], v[NR], m <= 1.00 ? "PASS" : "MISS" }'
}

bench_cgi() {
    local rounds=${BENCH_CGI_ROUNDS:-$ROUNDS} busy after round t name order
    local c=$CGI_CONNS label
    # what median() and stall_line() read, while in here
    local RESULTS=$TMP/cgi-results.txt ROUNDS=$rounds

    if [[ ${BENCH_CGI:-1} == 0 ]]; then
        echo "skipped: CGI figures (BENCH_CGI=0)"
        return 0
    fi
    if [[ ! -x $FCGIWRAP ]]; then
        echo "skipped: CGI figures (fcgiwrap not installed: apt-get install fcgiwrap)"
        return 0
    fi
    if ! pp_has '--cgi '; then
        echo "skipped: CGI figures ($PIPEPOOL_BIN has no --cgi)"
        return 0
    fi
    command -v git >/dev/null || die "git is missing (tests/deps.sh installs it)"
    : >"$RESULTS"
    cgi_files
    pp_start pp-cgi --cgi --workers "$WORKERS"
    start_bg fcgiwrap-cgi "$FCGIWRAP" -c "$WORKERS" -s "unix:$TMP/fcgiwrap-cgi.sock"
    start_bg fcgiwrap-cgi-kept "$FCGIWRAP" -c "$WORKERS" \
        -s "unix:$TMP/fcgiwrap-cgi-kept.sock"
    for name in "${CGI_SERVERS[@]}"; do
        wait_socket "$name" "$TMP/$name.sock"
    done
    nginx_up nginx-cgi cgi_conf "${CGI_SERVERS[@]}"
    for name in "${CGI_SERVERS[@]}"; do
        [[ $(curl -s --max-time 5 "http://127.0.0.1:${PORT[$name]}/cgi-bin/hello") == \
            "hello from a C CGI" ]] || die "$name does not run the C CGI hello"
    done
    log "bench: ${CGI_SERVERS[*]} up behind nginx"
    busy=$(cpu_busy_pct)
    # warm-up, not counted
    for t in "${CGI_SERVERS[@]}"; do
        wrk -t2 -c"$c" -d1s "http://127.0.0.1:${PORT[$t]}/cgi-bin/hello" >/dev/null 2>&1 || true
    done
    for ((round = 1; round <= rounds; round++)); do
        read -r -a order <<<"$(in_turn "$round" "${CGI_SERVERS[@]}")"
        for t in "${order[@]}"; do
            measure cgi-hello "$c" "$t" "$round" "http://127.0.0.1:${PORT[$t]}/cgi-bin/hello"
        done
    done
    for ((round = 1; round <= CGI_CLONES; round++)); do
        read -r -a order <<<"$(in_turn "$round" pp-cgi fcgiwrap-cgi)"
        for t in "${order[@]}"; do
            cgi_clone "$round" "$t"
        done
    done
    # other work that started meanwhile shows here (ours has stopped)
    after=$(cpu_busy_pct)

    echo
    echo "== CGI: pipepool --cgi --workers $WORKERS against fcgiwrap -c $WORKERS (hello: median of $rounds x ${DURATION}s, wrk -t2; own nginx with conf/nginx-cgi.conf: pipepool with its kept connections, fcgiwrap with a connection per request, fcgiwrap-kept with kept ones)"
    busy_warning "$busy" "before the CGI load"
    busy_warning "$after" "after the CGI load"
    label="cgi c=$c"
    figure "$label" rps pipepool "$(median cgi-hello "$c" pp-cgi 5)" \
        fcgiwrap "$(median cgi-hello "$c" fcgiwrap-cgi 5)" "" ">=" 1.20
    figure "$label" p50 pipepool "$(median cgi-hello "$c" pp-cgi 6)" \
        fcgiwrap "$(median cgi-hello "$c" fcgiwrap-cgi 6)" us
    figure "$label" p99 pipepool "$(median cgi-hello "$c" pp-cgi 7)" \
        fcgiwrap "$(median cgi-hello "$c" fcgiwrap-cgi 7)" us "<=" 1.00
    figure "$label" rps pipepool "$(median cgi-hello "$c" pp-cgi 5)" \
        fcgiwrap-kept "$(median cgi-hello "$c" fcgiwrap-cgi-kept 5)" ""
    figure "$label" p99 pipepool "$(median cgi-hello "$c" pp-cgi 7)" \
        fcgiwrap-kept "$(median cgi-hello "$c" fcgiwrap-cgi-kept 7)" us
    for t in "${CGI_SERVERS[@]}"; do
        stall_line "$label" cgi-hello "$c" "$t"
    done
    echo "cgi clone    (median of $CGI_CLONES clones each, interleaved)"
    figure "cgi clone" ms pipepool "$(cgi_median pp-cgi)" \
        fcgiwrap "$(cgi_median fcgiwrap-cgi)" ms
    cgi_paired
    figure "cgi clone" cpu pipepool "$(cgi_median pp-cgi 6)" \
        fcgiwrap "$(cgi_median fcgiwrap-cgi 6)" ms
    echo "cgi clone    git clone --bare of ${CGI_GIT_MB} MB; each round (ms): $(awk '$1 == "clone" { printf " %s=%s", $3, $5 }' "$RESULTS")"
    bad_rounds "cgi "

    stop_section nginx-cgi fcgiwrap-cgi-kept fcgiwrap-cgi pp-cgi
    if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf -- "$TMP"/pp-cgi.* "$TMP"/fcgiwrap-cgi* \
            "$TMP"/nginx-cgi* "$TMP"/wrk-cgi-* "$TMP"/cgi-* "$RESULTS"
    fi
}
