#!/usr/bin/env bash
# make test: the C unit tests, then the bats end-to-end suite against a
# real nginx, then one line "N passed, M failed" counting both.
set -u
B=${1:-build/rel}
cd "$(dirname "$0")/.."
export PIPEPOOL_BIN=$PWD/$B/pipepool
# The --exec examples run from conf/examples: leave no __pycache__ there.
export PYTHONDONTWRITEBYTECODE=1
case $B in *san*) export PP_SANITIZED=1 ;; esac
# Sanitizer builds: leaks are checked by valgrind on the unit tests; the
# servers' intentional crashes and exits must not be turned into reports.
# allocator_may_return_null: a hostile client's absurd param lengths must
# reach libfcgi's own check (see fcgi/conn.c, peek_params), not ASan's.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pass=0 fail=0

echo "== unit tests ($B)"
for t in "$B"/tests/*; do
	[ -x "$t" ] || continue
	if "$t"; then
		echo "ok   unit $(basename "$t")"; pass=$((pass + 1))
	else
		echo "FAIL unit $(basename "$t")"; fail=$((fail + 1))
	fi
done
if [ "${VALGRIND:-1}" = 1 ] && [ "$B" = build/rel ] && command -v valgrind >/dev/null; then
	for t in "$B"/tests/*; do
		[ -x "$t" ] || continue
		case $(basename "$t") in fuzz_*) continue ;; esac
		if valgrind -q --leak-check=full --errors-for-leak-kinds=all \
		    --error-exitcode=99 "$t" >/dev/null 2>"$B/valgrind.$(basename "$t").log"; then
			echo "ok   valgrind $(basename "$t")"; pass=$((pass + 1))
		else
			echo "FAIL valgrind $(basename "$t") (see $B/valgrind.$(basename "$t").log)"
			fail=$((fail + 1))
		fi
	done
fi

# libFuzzer targets, a bounded time each, from a scratch corpus.
for f in build/fuzz/*; do
	[ "$B" = build/rel ] || break	# once per make test run is enough
	[ -x "$f" ] || continue
	corpus=$(mktemp -d)
	if "$f" -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=1024 \
	    -artifact_prefix="$corpus/" "$corpus" >"$corpus.log" 2>&1; then
		echo "ok   fuzz $(basename "$f") ($(grep -o 'Done [0-9]* runs' "$corpus.log"))"
		pass=$((pass + 1))
	else
		echo "FAIL fuzz $(basename "$f")"; tail -30 "$corpus.log"
		fail=$((fail + 1))
	fi
	rm -rf "$corpus" "$corpus.log"
done

# bats_count FILE...: run them, count their tests into pass and fail.
bats_count() {
	local out rc p f
	out=$(mktemp)
	bats --tap ${BATS_FILTER:+--filter "$BATS_FILTER"} "$@" | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^ok ' "$out")
	f=$(grep -c '^not ok ' "$out")
	# bats itself failing (a broken file) counts as a failure too.
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	rm -f "$out"
	pass=$((pass + p)); fail=$((fail + f))
}

echo "== end-to-end tests"
bats_count tests/e2e/*.bats
# The /kv suites once more, on PostgreSQL (kv_helpers.bash); once per
# make test run is enough (kv_pg.bats, in both builds, runs the
# PostgreSQL backend under the sanitizers).
if [ "$B" = build/rel ]; then
	echo "== end-to-end tests of /kv on PostgreSQL"
	KV_BACKEND=pg bats_count tests/e2e/kv.bats tests/e2e/kv_faults.bats
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
