#!/usr/bin/env bats
#
# kv_pg.bats: the store on PostgreSQL (--db a connection string), where it
# differs from SQLite: one failing statement fails alone in its pipelined
# group; two pipepools share one database (a PUT through one is read
# through the other, and no increment is lost between them); the server
# going away and coming back (503 meanwhile, then writes resume, the
# reconnect on /status and /metrics); and a failover of a three-node
# cluster with synchronous replication under a write load: the primary
# SIGKILLed, a standby promoted, no acknowledged write lost, only 503 for
# what could not be written, writes again soon after the promotion.
# Also: a failure seen through an Idempotency-Key's look-up; a row
# locked past --timeout (503, the write never lands); a read-only
# database (503, /status read-only, a writable host found); a server
# that never speaks (503 within --timeout); a path with host= in it;
# libpq hidden (exit 1 naming it) and loaded only for PostgreSQL.
# (kv.bats and kv_faults.bats run on PostgreSQL too, from tests/run.sh.)

load helpers
load kv_helpers

setup() {
	pp_tmp
	PG_DIRS=
	PP2_PID= NG2_PID= SILENT=
	kv_py >"$T/kv.py"
}

teardown() {
	local d
	[ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs
	for p in $PP2_PID $NG2_PID $SILENT; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pp_cleanup
	for d in $PG_DIRS; do
		[ -n "${BATS_TEST_COMPLETED:-}" ] || sed 's/^/# pg: /' "$d/log" >&3 || true
		sh "$PG_SH" stop "$d"
		rm -rf "$d"
	done
}

# pg_new VAR PORTVAR: a new server; its directory and port in the two.
pg_new() {
	local d p
	d=$(mktemp -d /tmp/pp-pg.XXXXXX)
	p=$(free_port)
	PG_DIRS="$PG_DIRS $d"
	sh "$PG_SH" start "$d" "$p"
	eval "$1=\$d; $2=\$p"
}

# The store's database on /status, as "state reconnects".
db_status() {
	curl -s "$URL/status" | python3 -c 'import json, sys
d = json.load(sys.stdin)["store"]["db"]
print(d["backend"], d["state"], d["reconnects"])'
}
db_is() { [ "$(db_status | cut -d" " -f1-2)" = "postgresql $1" ]; }

# bad_mix N EVERY IKEY: N new keys PUT by 16 clients, every EVERY-th
# named bad... (which the test's CHECK refuses), with an Idempotency-Key
# if IKEY is 1: each good one 201, each bad one 500 naming no_bad.
bad_mix() {
	cat >"$T/mix.py" <<'EOF'
import http.client, sys, threading, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
n, every, ikey = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1'
res, lock = [], threading.Lock()
def client(t):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for i in range(t, n, 16):
        key, h = ('bad%d' if i % every == 0 else 'good%d') % i, {}
        if ikey and key.startswith('bad'):
            h['Idempotency-Key'] = 'ik%d' % i
        c.request('PUT', '/kv/' + key, body=b'v%d' % i, headers=h)
        r = c.getresponse()
        b = r.read()
        with lock:
            res.append((key, r.status, b))
ts = [threading.Thread(target=client, args=(t,)) for t in range(16)]
for t in ts: t.start()
for t in ts: t.join()
bad = [x for x in res if (x[1] == 201) != x[0].startswith('good')
       or (x[0].startswith('bad') and (x[1] != 500 or b'no_bad' not in x[2]))]
print(len(res), 'answers, wrong:', bad[:5])
sys.exit(1 if bad or len(res) != n else 0)
EOF
	python3 "$T/mix.py" "$URL" "$@"
}

@test "PostgreSQL: a malformed connection string: exit 64, one line naming --db, no password in it" {
	kv_refused 64 '--db: not a PostgreSQL connection string' \
	    'postgresql://u:secret@[::1'
	! echo "$output" | grep -q secret || false
}

# maps_libpq PID: the process has libpq mapped.
maps_libpq() { grep -q '/libpq\.so' "/proc/$1/maps"; }

@test "PostgreSQL: no libpq to load: exit 1, one line naming it" {
	# The library is hidden in a mount namespace of the test's own.
	lib=$(readlink -f "$(ldconfig -p | awk '/libpq\.so\.5 / {print $NF; exit}')")
	[ -f "$lib" ]
	run timeout 10 unshare -m sh -c 'mount --bind /dev/null "$1" &&
	    exec "$2" --allow-root --listen "unix:$3" --db "$4"' sh "$lib" \
	    "$PIPEPOOL_BIN" "$T/no.sock" postgresql://127.0.0.1:1/postgres
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$(echo "$output" | wc -l)" -eq 1 ]
	echo "$output" | grep -q -- '--db: cannot load libpq.so.5'
	[ ! -e "$T/no.sock" ]
}

# With --db postgresql:// the master loads libpq for its start-up check
# of the string, and its children inherit it; without, none has it.
@test "PostgreSQL: libpq is loaded only for --db postgresql://" {
	pp_start --db "$T/kv.db"
	wait_for 10 eval '[ -n "$(store_pid)" ]'
	[ "$(pgrep -P "$PP_PID" | wc -l)" -ge 3 ]	# front, worker, store
	for p in "$PP_PID" $(pgrep -P "$PP_PID"); do ! maps_libpq "$p" || false; done
	pp_stop
	pg_new D P
	kv_start --db "postgresql://postgres@127.0.0.1:$P/postgres"
	put 201 k v
	maps_libpq "$(store_pid)"
}

@test "PostgreSQL: a file's path with host= in it is SQLite's, not a connection string" {
	mkdir "$T/host=a"
	kv_start --db "$T/host=a/kv.db"
	put 201 k v
	[ -s "$T/host=a/kv.db" ]
	log_has "serving $T/host=a/kv.db"
}

@test "PostgreSQL: a failing statement fails alone, its group's other writes commit" {
	pg_new D P
	KV_DB=postgresql://postgres@127.0.0.1:$P/postgres
	kv_start
	is 201 PUT /kv/first --data-binary one
	# A rule of the database's own that some requests break.
	sh "$PG_SH" sql "$P" "ALTER TABLE kv ADD CONSTRAINT no_bad CHECK (key NOT LIKE 'bad%')"
	bad_mix 400 10 0
	log_has 'writes failed (23514: .*); each runs alone'
	[ "$(sh "$PG_SH" sql "$P" "SELECT count(*) FROM kv WHERE key LIKE 'good%'")" -eq 360 ]
	is 200 GET /kv/good7
	[ "$(body)" = v7 ]
	is 404 GET /kv/bad10
	is 200 GET /kv/first
	[ "$(body)" = one ]
}

@test "PostgreSQL: a failing write with an Idempotency-Key fails alone: no good neighbour gets an error" {
	pg_new D P
	KV_DB=postgresql://postgres@127.0.0.1:$P/postgres
	kv_start
	sh "$PG_SH" sql "$P" "ALTER TABLE kv ADD CONSTRAINT no_bad CHECK (key NOT LIKE 'bad%')"
	# The bad ones' failure is first seen through the key's look-up
	# (a flush, no sync): the group's rollback must still end it.
	bad_mix 800 5 1
	[ "$(sh "$PG_SH" sql "$P" "SELECT count(*) FROM kv WHERE key LIKE 'good%'")" -eq 640 ]
	is 404 GET /kv/bad10
}

@test "PostgreSQL: a row locked past --timeout: the PUT gets 503 from the store itself and never lands later" {
	pg_new D P
	KV_DB=postgresql://postgres@127.0.0.1:$P/postgres
	kv_start --timeout 1
	put 201 a v0
	# Another session holds key a's row for longer than --timeout.
	PGAPPNAME=holder psql -X -q -h 127.0.0.1 -p "$P" -U postgres -d postgres \
	    -c "BEGIN; SELECT key FROM kv WHERE key = 'a' FOR UPDATE; SELECT pg_sleep(60)" \
	    >/dev/null 2>&1 &
	HOLDER=$!
	held() { [ "$(sh "$PG_SH" sql "$P" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'holder' AND l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock'")" -eq 1 ]; }
	wait_for 10 held
	is 503 PUT /kv/a --data-binary v1
	grep -qi '^Retry-After: ' "$T/head"
	! log_has 'killing it' || false
	# The lock goes (the holder's session ends): the PUT did not land.
	sh "$PG_SH" sql "$P" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder'" >/dev/null
	wait "$HOLDER" || true
	is 200 GET /kv/a
	[ "$(body)" = v0 ]
	no_lock_wait() { [ "$(sh "$PG_SH" sql "$P" "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")" -eq 0 ]; }
	wait_for 5 no_lock_wait
	is 200 GET /kv/a
	[ "$(body)" = v0 ]
	# Writes go on.
	put 204 a v2
}

@test "PostgreSQL: the database turns read-only: writes 503 with Retry-After, reads go on, /status says read-only; writable again: writes resume" {
	pg_new D P
	KV_DB=postgresql://postgres@127.0.0.1:$P/postgres
	kv_start
	put 201 k v0
	ro() {
		PGOPTIONS="-c default_transaction_read_only=off" sh "$PG_SH" sql "$P" "ALTER SYSTEM SET default_transaction_read_only = $1"
		sh "$PG_SH" sql "$P" "SELECT pg_reload_conf()" >/dev/null
	}
	ro on
	is 503 PUT /kv/k --data-binary v1
	grep -qi '^Retry-After: 1' "$T/head"
	body | grep -q 'read-only'
	is 503 POST /kv/n
	is 200 GET /kv/k
	[ "$(body)" = v0 ]
	wait_for 5 db_is read-only
	ro off
	wait_for 10 eval '[ "$(req PUT /kv/k --data-binary v2)" = 204 ]'
	wait_for 5 db_is up
	is 200 GET /kv/k
	[ "$(body)" = v2 ]
	log_has 'the database is read-only'
}

@test "PostgreSQL: the primary turns read-only: the store connects again and target_session_attrs finds the writable one" {
	pg_new D1 P1
	pg_new D2 P2
	KV_DB="host=127.0.0.1,127.0.0.1 port=$P1,$P2 user=postgres dbname=postgres target_session_attrs=read-write"
	kv_start
	put 201 k one
	sh "$PG_SH" sql "$P1" "ALTER SYSTEM SET default_transaction_read_only = on"
	sh "$PG_SH" sql "$P1" "SELECT pg_reload_conf()" >/dev/null
	wait_for 15 eval '[ "$(req PUT /kv/k --data-binary two)" = 201 ]'
	[ "$(sh "$PG_SH" sql "$P2" "SELECT convert_from(value, 'UTF8') FROM kv WHERE key = 'k'")" = two ]
	wait_for 5 db_is up
	log_has "connected to PostgreSQL again (127.0.0.1 port $P2)"
}

@test "PostgreSQL: a server that accepts and never speaks: 503 within --timeout, the store is not killed" {
	LP=$(free_port)
	python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])' "$LP" &
	SILENT=$!
	wait_for 5 eval "python3 -c 'import socket, sys; socket.create_connection((\"127.0.0.1\", $LP), 1)'"
	# Its own connect_timeout (10 s) is longer than --timeout: the
	# store's clamp wins.
	pp_start --timeout 3 --db "postgresql://postgres@127.0.0.1:$LP/postgres?connect_timeout=10"
	ng_start
	wait_for 10 log_has 'cannot connect to PostgreSQL'
	for i in 1 2 3 4 5 6; do
		is 503 PUT /kv/k --data-binary v
		is 503 GET /kv/k
	done
	! log_has 'killing it' || false
	kill -TERM "$SILENT"
	wait "$SILENT" || true
	SILENT=
}

@test "PostgreSQL: two pipepools on one database: a PUT through one is read through the other; no increment lost between them" {
	pg_new D P
	KV_DB=postgresql://postgres@127.0.0.1:$P/postgres
	kv_start
	URL1=$URL
	# The second: its own socket and nginx, in a directory of its own.
	mkdir "$T/two"
	"$PIPEPOOL_BIN" --allow-root --listen "unix:$T/two/pp.sock" \
	    --workers 2 --db "$KV_DB" 2>"$T/two/pp.log" &
	PP2_PID=$!
	wait_for 10 grep -q 'connected to PostgreSQL' "$T/two/pp.log"
	NG1=$NG_PID
	T=$T/two ng_start "unix:$T/two/pp.sock"
	NG2_PID=$NG_PID URL2=$URL
	NG_PID=$NG1 URL=$URL1
	URL=$URL2 wait_for 10 store_up
	URL=$URL1 is 201 PUT /kv/shared --data-binary "from one"
	URL=$URL2 is 200 GET /kv/shared
	[ "$(body)" = "from one" ]
	URL=$URL2 is 204 PUT /kv/shared --data-binary "from two"
	URL=$URL1 is 200 GET /kv/shared
	[ "$(body)" = "from two" ]
	python3 "$T/kv.py" incr "$URL1" n 600 8 >"$T/v1" &
	a=$!
	python3 "$T/kv.py" incr "$URL2" n 600 8 >"$T/v2"
	wait "$a"
	[ "$(sort -n "$T/v1" "$T/v2" | uniq | wc -l)" -eq 1200 ]
	URL=$URL1 is 200 GET /kv/n
	[ "$(body)" = 1200 ]
	kill -TERM "$PP2_PID"
	wait "$PP2_PID"
	PP2_PID=
}

@test "PostgreSQL: the server stops: 503 with the reason, /status says down; it starts again: writes resume, one reconnect counted" {
	pg_new D P
	KV_DB=postgresql://postgres@127.0.0.1:$P/postgres
	kv_start
	put 201 k v
	wait_for 5 db_is up
	sh "$PG_SH" stop "$D"
	wait_for 10 db_is down
	is 503 PUT /kv/k --data-binary x
	grep -qi '^Retry-After: 1' "$T/head"
	body | grep -q 'PostgreSQL'
	# libpq's own reason names the host and port: the log's, not the
	# client's.
	! body | grep -q -e "$P" -e 127.0.0.1 || false
	is 503 GET /kv/k
	! body | grep -q -e "$P" -e 127.0.0.1 || false
	is 503 POST /kv/n
	pp_alive
	curl -s "$URL/metrics" | grep -qx 'pipepool_store_db_up{backend="postgresql"} 0'
	sh "$PG_SH" start "$D" "$P"
	wait_for 10 eval '[ "$(req PUT /kv/k --data-binary v2)" = 204 ]'
	is 200 GET /kv/k
	[ "$(body)" = v2 ]
	[ "$(db_status)" = "postgresql up 1" ]
	curl -s "$URL/metrics" >"$T/m.txt"
	grep -qx 'pipepool_store_db_up{backend="postgresql"} 1' "$T/m.txt"
	grep -qx 'pipepool_store_db_reconnects_total 1' "$T/m.txt"
	log_has 'connected to PostgreSQL again'
}

@test "PostgreSQL failover: primary SIGKILLed under writes, standby promoted: no acknowledged write lost, 503 meanwhile, writes again soon" {
	pg_new D0 P0
	# Two standbys; a commit waits for s1 (FIRST 1), so s1 has every
	# acknowledged write.  Set after the base backups: the new primary
	# does not wait for a standby of its own.
	D1=$(mktemp -d /tmp/pp-pg.XXXXXX) P1=$(free_port)
	D2=$(mktemp -d /tmp/pp-pg.XXXXXX) P2=$(free_port)
	PG_DIRS="$PG_DIRS $D1 $D2"
	sh "$PG_SH" standby "$P0" "$D1" "$P1" s1
	sh "$PG_SH" standby "$P0" "$D2" "$P2" s2
	sh "$PG_SH" sql "$P0" "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (s1, s2)'"
	sh "$PG_SH" sql "$P0" "SELECT pg_reload_conf()" >/dev/null
	wait_for 20 eval '[ "$(sh "$PG_SH" sql "$P0" "SELECT application_name || sync_state FROM pg_stat_replication ORDER BY 1" | tr "\n" " ")" = "s1sync s2potential " ]'
	KV_DB="postgresql://postgres@127.0.0.1:$P0,127.0.0.1:$P1,127.0.0.1:$P2/postgres?target_session_attrs=read-write&connect_timeout=2"
	kv_start
	wait_for 5 db_is up
	cat >"$T/load.py" <<'EOF'
import http.client, os, sys, threading, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
out, stop = open(sys.argv[2], 'a'), sys.argv[3]
lock = threading.Lock()
def client(t):
    c, i = None, 0
    while not os.path.exists(stop):
        i += 1
        if i % 2:
            m, p, b = 'PUT', '/kv/w%d_%d' % (t, i), b'v%d_%d' % (t, i)
        else:
            m, p, b = 'POST', '/kv/ctr', None
        try:
            if c is None:
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            c.request(m, p, body=b)
            r = c.getresponse()
            st, body = r.status, r.read().decode(errors='replace').strip()
        except (OSError, http.client.HTTPException) as e:
            c, st, body = None, 0, repr(e)
        with lock:
            out.write('%s %s %d %s\n' % (m, p, st, body.replace('\n', ' ')))
            out.flush()
for t in range(8):
    threading.Thread(target=client, args=(t,)).start()
EOF
	: >"$T/log"
	python3 "$T/load.py" "$URL" "$T/log" "$T/stop" &
	loader=$!
	acked() { grep -Ec ' (200|201) ' "$T/log"; }
	wait_for 30 eval '[ "$(acked)" -ge 400 ]'
	# The primary dies; writes fail 503 until a standby is promoted.
	pid0=$(sh "$PG_SH" pid "$D0")
	kill -KILL "$pid0"
	wait_for 10 gone "$pid0"
	rm -f "$D0/data/postmaster.pid"	# no stop by a pid that is gone
	wait_for 10 grep -q ' 503 ' "$T/log"
	before=$(acked)
	t0=$(date +%s%N)
	runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$D1/data" -w promote >/dev/null
	# Writes succeed again soon after (the store reconnects with back-off).
	wait_for 10 eval '[ "$(acked)" -gt "$before" ]'
	back_ms=$((($(date +%s%N) - t0) / 1000000))
	wait_for 30 eval '[ "$(acked)" -ge $((before + 400)) ]'
	touch "$T/stop"
	wait "$loader"
	# Only acknowledgements and 503 (never 500 or a gateway error).
	bad=$(awk '$3 !~ /^(200|201|503)$/' "$T/log" | head -n5)
	[ -z "$bad" ] || { echo "unexpected: $bad"; false; }
	grep -q ' 503 .*PostgreSQL' "$T/log"
	# Every acknowledged PUT is on the new primary.
	sh "$PG_SH" sql "$P1" "SELECT key || ' ' || convert_from(value, 'UTF8') FROM kv" | sort >"$T/have"
	awk '$1 == "PUT" && $3 == 201 { sub("/kv/", "", $2); print $2, "v" substr($2, 2) }' "$T/log" | sort >"$T/want"
	[ -s "$T/want" ]
	missing=$(comm -23 "$T/want" "$T/have" | head -n5)
	[ -z "$missing" ] || { echo "lost: $missing"; false; }
	# Every acknowledged increment answered a value of its own, and the
	# counter holds them all; at most the 503s' may have applied too.
	awk '$1 == "POST" && $3 == 200 { print $4 }' "$T/log" | sort -n >"$T/incr"
	[ "$(uniq -d "$T/incr" | wc -l)" -eq 0 ]
	final=$(sh "$PG_SH" sql "$P1" "SELECT convert_from(value, 'UTF8') FROM kv WHERE key = 'ctr'")
	unknown=$(awk '$1 == "POST" && $3 == 503' "$T/log" | wc -l)
	echo "# $(wc -l <"$T/want") PUTs and $(wc -l <"$T/incr") incr acknowledged, $unknown incr 503, counter $final; writes again ${back_ms} ms after pg_ctl promote began" >&3
	[ "$final" -ge "$(tail -n1 "$T/incr")" ]
	[ "$final" -ge "$(wc -l <"$T/incr")" ]
	[ "$final" -le $(($(wc -l <"$T/incr") + unknown)) ]
	# Through pipepool too, and /status counts the reconnect.
	is 200 GET /kv/ctr
	[ "$(body)" = "$final" ]
	wait_for 5 db_is up
	[ "$(db_status | cut -d' ' -f3)" -ge 1 ]
}
