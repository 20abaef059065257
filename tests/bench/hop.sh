#!/usr/bin/env bash
# tests/bench/hop.sh - run build/hop (tests/bench/hop.c), the worker-hop
# microbenchmark, over a small grid and print a table of its figures.
#
# Each cell is one hop run: W forked pipepool workers, T client threads
# through the real dispatch queue, GET / (hello) or, with HOP_BODY, POST /echo
# with that many body bytes.  The table gives req/s, the mean round trip, the
# CPU per request of the client side and of the workers, and the CPU per
# request the hop adds over the inline baseline (target <= 15 us).
#
# Environment:
#   HOP_BIN       the binary (default build/hop; `make build/hop`)
#   HOP_WORKERS   worker counts (default "1 2 4")
#   HOP_THREADS   client thread counts (default "1 4 16")
#   HOP_REQUESTS  requests per cell (default 50000)
#   HOP_SECONDS   time limit per cell, whichever comes first (default 3)
#   HOP_BODY      echo body bytes, 0 = hello (default 0)
# It is a report: it exits 0 whatever the figures, 1 if a run fails.
set -euo pipefail

HOP_BIN=${HOP_BIN:-build/hop}
WORKERS=${HOP_WORKERS:-1 2 4}
THREADS=${HOP_THREADS:-1 4 16}
REQUESTS=${HOP_REQUESTS:-50000}
SECONDS_MAX=${HOP_SECONDS:-3}
BODY=${HOP_BODY:-0}

[[ -x $HOP_BIN ]] || { echo "hop: no executable $HOP_BIN (make build/hop)" >&2; exit 1; }

# field OUTPUT LABEL: the first number after "LABEL:" in hop's output
field() {
    awk -v l="$2:" 'index($0, l) == 1 { s = substr($0, length(l) + 1)
        if (match(s, /-?[0-9.]+/)) { print substr(s, RSTART, RLENGTH); exit } }' <<<"$1"
}

if ((BODY > 0)); then
    what="POST /echo ${BODY} bytes"
else
    what="GET / hello"
fi
echo "== hop: $what, up to $REQUESTS requests or ${SECONDS_MAX}s per cell"
printf '%-3s %-3s %9s %9s %9s %9s %9s %9s %s\n' W T req/s rtt_us \
    cli_us wrk_us inl_us added_us verdict
for w in $WORKERS; do
    for t in $THREADS; do
        args=(-w "$w" -t "$t" -n "$REQUESTS" -d "$SECONDS_MAX")
        ((BODY > 0)) && args+=(-b "$BODY")
        out=$("$HOP_BIN" "${args[@]}") || { echo "hop: $HOP_BIN ${args[*]} failed" >&2; exit 1; }
        verdict=$(awk '/^hop cpu added per request:/ { print $NF }' <<<"$out")
        printf '%-3s %-3s %9.0f %9.1f %9.2f %9.2f %9.3f %9.2f %s\n' "$w" "$t" \
            "$(field "$out" 'hop requests per second')" \
            "$(field "$out" 'hop round trip mean')" \
            "$(field "$out" 'hop cpu client per request')" \
            "$(field "$out" 'hop cpu workers per request')" \
            "$(field "$out" 'inline cpu per request')" \
            "$(field "$out" 'hop cpu added per request')" "$verdict"
    done
done
