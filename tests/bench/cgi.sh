#!/usr/bin/env bash
# tests/bench/cgi.sh: pipepool --cgi against fcgiwrap, behind one nginx
# running conf/nginx-cgi.conf for each (two server blocks, the same
# locations), in one run:
#   * a C CGI hello (tests/bench/cgi.sh writes and builds it), wrk at
#     BENCH_CONNS connections, rounds interleaved; median req/s and p99;
#     targets: pipepool/fcgiwrap req/s >= 1.2, p99 no worse (<= 1.0)
#   * git clone of a repository of about BENCH_GIT_MB MB through
#     git-http-backend; median seconds; target: pipepool no slower (<= 1.0)
# Both servers run BENCH_WORKERS children (pipepool --workers N, fcgiwrap
# -c N).  fcgiwrap is a bench-only peer: installed here (apt-get, as root)
# if missing, never by tests/deps.sh.  A report: exits 0 when a figure
# MISSes, non-zero only when something fails to start.
#
# Environment: PIPEPOOL_BIN (default build/pipepool), BENCH_WORKERS (4),
# BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_CONNS (16), BENCH_GIT_MB (50),
# BENCH_KEEP_TMP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
PP=${PIPEPOOL_BIN:-$REPO/build/pipepool}
N=${BENCH_WORKERS:-4}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNS:-16}
GIT_MB=${BENCH_GIT_MB:-50}
FCGIWRAP=/usr/sbin/fcgiwrap
PIDS=()

log() { printf '%s\n' "$*" >&2; }
die() { log "bench cgi: $*"; exit 1; }

if [ ! -x "$FCGIWRAP" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		log "installing fcgiwrap (bench-only peer)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fcgiwrap >/dev/null ||
		    die "cannot install fcgiwrap"
	else
		echo "skipped: fcgiwrap is not installed (apt-get install fcgiwrap)"
		exit 0
	fi
fi
for t in nginx wrk git cc python3; do
	command -v "$t" >/dev/null || die "$t is missing (tests/deps.sh)"
done
[ -x "$PP" ] || die "$PP is missing (make)"

TMP=$(mktemp -d /tmp/pp-bench-cgi.XXXXXX)
cleanup() {
	local p
	# fcgiwrap's children outlive a SIGTERMed parent: its whole group.
	[ -z "${FW_PID:-}" ] || kill -TERM -- "-$FW_PID" 2>/dev/null || true
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ "${BENCH_KEEP_TMP:-0}" = 1 ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap "exit 130" INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {	# SECONDS CMD...
	local i=0 n=$(($1 * 50))
	shift
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt "$n" ] || die "timed out: $* (see $TMP)"
		sleep 0.02
	done
}

# The C CGI hello.
mkdir -p "$TMP/root/cgi-bin" "$TMP/git"
cat >"$TMP/hello.c" <<'EOF'
#include <stdio.h>
int
main(void)
{
	fputs("Content-Type: text/plain\r\n\r\nhello from a C CGI\n", stdout);
	return 0;
}
EOF
cc -O2 -o "$TMP/root/cgi-bin/hello" "$TMP/hello.c"

# conf/nginx-cgi.conf once per server: NAME PORT SOCKET.
site() {
	sed -e "s|listen 80;|listen 127.0.0.1:$2;|" -e '/listen \[::\]:80;/d' \
	    -e "s|/run/pipepool/cgi.sock|$3|" -e "s|pipepool_cgi|up_$1|g" \
	    -e "s|root /usr/lib;|root $TMP/root;|" -e "s|/srv/git|$TMP/git|" \
	    -e "s|/etc/cgitrc|$TMP/cgitrc|" "$REPO/conf/nginx-cgi.conf"
}
P_PP=$(port)
P_FW=$(port)
{ site pp "$P_PP" "$TMP/pp.sock"; site fw "$P_FW" "$TMP/fw.sock"; } >"$TMP/site.conf"
sed -e "s|@PREFIX@|$TMP|g" -e "s|@USER@|$(id -un)|" -e "s|@SITE@|$TMP/site.conf|" \
    "$REPO/tests/cgi/nginx.conf" >"$TMP/nginx.conf"

"$PP" --allow-root --cgi --listen "unix:$TMP/pp.sock" --workers "$N" \
    --db "$TMP/pp.db" --max-body 67108864 --timeout 120 2>"$TMP/pp.log" &
PIDS+=($!)
setsid "$FCGIWRAP" -c "$N" -s "unix:$TMP/fw.sock" 2>"$TMP/fw.log" &
FW_PID=$!
PIDS+=($!)
nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" 2>"$TMP/nginx.out" &
PIDS+=($!)
declare -A URL=([pipepool]="http://127.0.0.1:$P_PP" [fcgiwrap]="http://127.0.0.1:$P_FW")
for s in pipepool fcgiwrap; do
	wait_for 10 sh -c "curl -sf '${URL[$s]}/cgi-bin/hello' | grep -q hello"
done

parse_wrk() {	# "rps p99_us"
	awk 'function us(v) {
		if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000
		if (v ~ /s$/) return v * 1000000; return v + 0 }
	$1 == "99%" { p99 = us($2) }
	/^Requests\/sec:/ { rps = $2 }
	/Non-2xx or 3xx responses:/ { bad += $NF }
	END { printf "%.1f %.0f %d\n", rps, p99, bad }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
verdict() {	# RATIO OP TARGET
	awk -v r="$1" -v t="$3" -v op="$2" 'BEGIN {
		ok = op == ">=" ? r >= t : r <= t; print ok ? "PASS" : "MISS" }'
}

# Hello: interleaved rounds, the order swapped each round.
: >"$TMP/hello.res"
for r in $(seq 1 "$ROUNDS"); do
	order="pipepool fcgiwrap"
	[ $((r % 2)) -eq 0 ] && order="fcgiwrap pipepool"
	for s in $order; do
		wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "${URL[$s]}/cgi-bin/hello" |
		    parse_wrk | sed "s/^/$s /" >>"$TMP/hello.res"
	done
done
fig() { awk -v s="$1" -v c="$2" '$1 == s { print $c }' "$TMP/hello.res" | median; }
rps_pp=$(fig pipepool 2) rps_fw=$(fig fcgiwrap 2)
p99_pp=$(fig pipepool 3) p99_fw=$(fig fcgiwrap 3)
bad=$(awk '{ b += $4 } END { print b + 0 }' "$TMP/hello.res")

# git clone of a repository of about GIT_MB MB (incompressible blobs).
git init -q --bare "$TMP/git/big.git"
git init -q "$TMP/seed"
for i in $(seq 1 "$GIT_MB"); do head -c 1048576 /dev/urandom >"$TMP/seed/blob$i"; done
git -C "$TMP/seed" add -A
git -C "$TMP/seed" -c user.name=b -c user.email=b@b commit -q -m big
git -C "$TMP/seed" push -q "$TMP/git/big.git" HEAD:refs/heads/main
: >"$TMP/clone.res"
for r in $(seq 1 "$ROUNDS"); do
	for s in pipepool fcgiwrap; do
		rm -rf "$TMP/clone"
		t0=$(date +%s%N)
		if git clone -q "${URL[$s]}/git/big.git" "$TMP/clone" 2>>"$TMP/clone.err"; then
			echo "$s $(( ($(date +%s%N) - t0) / 1000000 ))" >>"$TMP/clone.res"
		else
			echo "$s failed" >>"$TMP/clone.res"
		fi
	done
done
clone_ms() { awk -v s="$1" '$1 == s && $2 != "failed" { print $2 }' "$TMP/clone.res" | median; }
cl_pp=$(clone_ms pipepool) cl_fw=$(clone_ms fcgiwrap)

echo "== CGI: pipepool --cgi vs fcgiwrap, $N children each, one nginx (conf/nginx-cgi.conf), $ROUNDS rounds"
printf '%-34s %12s %12s %7s %8s %s\n' figure pipepool fcgiwrap ratio target verdict
r=$(ratio "$rps_pp" "$rps_fw")
printf '%-34s %12s %12s %7s %8s %s\n' "C hello req/s (c=$CONNS)" "$rps_pp" "$rps_fw" "$r" ">= 1.20" "$(verdict "$r" ">=" 1.2)"
r=$(ratio "$p99_pp" "$p99_fw")
printf '%-34s %12s %12s %7s %8s %s\n' "C hello p99 us" "$p99_pp" "$p99_fw" "$r" "<= 1.00" "$(verdict "$r" "<=" 1.0)"
if [ -n "$cl_pp" ] && [ -n "$cl_fw" ]; then
	r=$(ratio "$cl_pp" "$cl_fw")
	printf '%-34s %12s %12s %7s %8s %s\n' "git clone ${GIT_MB} MB, ms" "$cl_pp" "$cl_fw" "$r" "<= 1.00" "$(verdict "$r" "<=" 1.0)"
else
	printf '%-34s %12s %12s %7s %8s %s\n' "git clone ${GIT_MB} MB, ms" "${cl_pp:-failed}" "${cl_fw:-failed}" - "<= 1.00" MISS
	sed 's/^/# /' "$TMP/clone.err" | tail -5
fi
echo "non-2xx or socket errors in the hello rounds: $bad"
