#!/usr/bin/env bats
#
# kv_faults.bats: the store under faults that used to hang or crash-loop
# it (issue 12): large concurrent GETs and PUTs whose requests and replies
# are larger than a pipe (no deadlock, every request answered within
# --timeout), the store dying between COMMIT and its reply (an
# Idempotency-Key makes the retry safe), and a database that turns
# read-only under the running store (reads go on, writes 503, recovery).
# With KV_BACKEND=pg the same tests run on PostgreSQL (kv_helpers.bash),
# but for those of SQLite's file.

load helpers
load kv_helpers

setup_file() { kv_setup_file; }
teardown_file() { kv_teardown_file; }

setup() {
	pp_tmp
	IMMUTABLE=
	kv_db_new
}

teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs
	if [ -n "${IMMUTABLE:-}" ]; then
		chattr -i $IMMUTABLE 2>/dev/null || true
	fi
	IMMUTABLE=
	pp_cleanup
}

@test "4 GETs of a 3 MiB value while 4 PUT 3 MiB values: all answered within --timeout, /kv answers after" {
	kv_start --max-body 4194304 --timeout 8
	head -c 3145728 /dev/urandom >"$T/big"
	is 201 PUT /kv/big --data-binary "@$T/big"
	cat >"$T/load.py" <<'EOF'
import http.client, sys, threading, time, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
big = open(sys.argv[2], 'rb').read()
rounds, res, lock = int(sys.argv[3]), [], threading.Lock()
def client(i):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    for r in range(rounds):
        t = time.monotonic()
        try:
            if i < 4:
                c.request('GET', '/kv/big')
            else:
                c.request('PUT', '/kv/p%d' % i, big)
            resp = c.getresponse()
            b = resp.read()
            st = resp.status
            ok = (st == 200 and b == big) if i < 4 else st in (201, 204)
        except Exception as e:
            st, ok = repr(e), False
            c.close()
            c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        with lock:
            res.append((i, st, ok, time.monotonic() - t))
ts = [threading.Thread(target=client, args=(i,)) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()
slow = [x for x in res if x[3] > 10]
bad = [x for x in res if not x[2]]
print('%d answers, max %.2f s, bad %s, slow %s' % (len(res),
    max(x[3] for x in res), bad[:5], slow[:5]))
sys.exit(1 if slow or bad or len(res) != 8 * rounds else 0)
EOF
	run timeout 60 python3 "$T/load.py" "$URL" "$T/big" 5
	echo "$output"
	[ "$status" -eq 0 ]
	is 200 GET /kv/
	is 200 GET /kv/big
	cmp "$T/big" "$T/body"
	is 204 PUT /kv/big --data-binary small
	pp_alive
}

@test "a stopped store: large PUTs get 504 (or 502 when the killed store took them) within --timeout, the store is replaced, /kv answers" {
	kv_start --max-body 4194304 --timeout 2
	head -c 3145728 /dev/urandom >"$T/big"
	old=$(store_pid)
	[ -n "$old" ]
	kill -STOP "$old"
	pids=
	for i in 1 2 3; do
		curl -s -m 20 -o /dev/null -w '%{http_code} %{time_total}\n' \
		    -X PUT --data-binary "@$T/big" "$URL/kv/s$i" >"$T/put$i" &
		pids="$pids $!"
	done
	wait $pids
	cat "$T"/put*
	# The first deadline gets 504 and the store killed; a request sent to
	# that store whose own deadline had not passed yet fails with it (502).
	grep -q '^504 ' "$T"/put1 "$T"/put2 "$T"/put3
	for i in 1 2 3; do
		read -r st secs <"$T/put$i"
		[ "$st" = 504 ] || [ "$st" = 502 ]
		# --timeout 2 plus a generous margin.
		python3 -c "import sys; sys.exit(0 if float('$secs') < 6 else 1)"
	done
	wait_for 10 eval '[ -n "$(store_pid)" ] && [ "$(store_pid)" != "$old" ]'
	wait_for 10 store_up
	is 201 PUT /kv/after --data-binary ok
	pp_alive
}

# Make the database and its directory immutable (chattr +i), or skip.
db_freeze() {
	local f
	IMMUTABLE="$T/db"
	for f in "$T"/db/kv.db*; do IMMUTABLE="$IMMUTABLE $f"; done
	# shellcheck disable=SC2086
	chattr +i $IMMUTABLE 2>"$T/chattr.err" ||
		skip "chattr +i is not supported here: $(head -n1 "$T/chattr.err")"
}
db_thaw() {
	# shellcheck disable=SC2086
	chattr -i $IMMUTABLE
	IMMUTABLE=
}
spawns() { grep -c 'master: store spawned' "$PP_LOG"; }

@test "database turns read-only (chattr +i) under the store: reads 200, writes 503 + Retry-After, no crash, writes resume" {
	kv_sqlite_only "the database file turns immutable"
	mkdir "$T/db"
	pp_start --db "$T/db/kv.db"
	ng_start
	wait_for 10 store_up
	is 201 PUT /kv/k --data-binary v
	is 200 POST /kv/n
	pid=$(store_pid)
	db_freeze
	is 503 PUT /kv/k --data-binary x
	grep -qi '^Retry-After: 1' "$T/head"
	body | grep -Eqi 'store: .*(I/O|read-only)'
	is 503 POST /kv/n
	is 503 DELETE /kv/k
	for i in 1 2 3; do
		is 200 GET /kv/k
		[ "$(body)" = v ]
	done
	is 200 GET /kv/
	[ "$(store_pid)" = "$pid" ]
	! grep -q 'store (pid .*) killed by signal' "$PP_LOG"
	db_thaw
	is 204 PUT /kv/k --data-binary v2
	is 200 POST /kv/n
	[ "$(body)" = 2 ]
	is 200 GET /kv/k
	[ "$(body)" = v2 ]
	[ "$(store_pid)" = "$pid" ]
	[ "$(spawns)" -eq 1 ]
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
	[ "$(sqlite3 "$T/db/kv.db" 'PRAGMA integrity_check')" = ok ]
}

@test "a store started on a database that cannot be opened answers 503, does not crash-loop, and opens it once it can" {
	kv_sqlite_only "the database file turns immutable"
	mkdir "$T/db"
	pp_start --db "$T/db/kv.db"
	ng_start
	wait_for 10 store_up
	is 201 PUT /kv/k --data-binary v
	old=$(store_pid)
	kill -KILL "$old"
	wait_for 10 eval '[ -n "$(store_pid)" ] && [ "$(store_pid)" != "$old" ]'
	db_freeze
	kill -KILL "$(store_pid)"
	wait_for 10 eval '[ -n "$(store_pid)" ] && [ "$(spawns)" -eq 3 ]'
	pid=$(store_pid)
	# Immutable with a WAL to read: no connection can use it (a
	# read-only one would need to write a lock or the -shm file).
	for i in $(seq 20); do
		st=$(req GET /kv/k)
		case $st in 200 | 503) ;; *) echo "GET -> $st" >&2; false ;; esac
		is 503 PUT /kv/k --data-binary x
		grep -qi '^Retry-After: 1' "$T/head"
	done
	[ "$(store_pid)" = "$pid" ]
	[ "$(spawns)" -eq 3 ]
	log_has 'store: .*answering 503 until it opens\|serving it read-only'
	db_thaw
	wait_for 5 eval '[ "$(req PUT /kv/k --data-binary v2)" = 204 ]'
	is 200 GET /kv/k
	[ "$(body)" = v2 ]
	[ "$(store_pid)" = "$pid" ]
}

@test "Idempotency-Key: the store dies between COMMIT and the reply (502), the write is durable, a retry answers the first reply and applies once" {
	kv_start --debug-routes
	old=$(store_pid)
	is 502 POST '/kv/c?incr=5' -H 'Idempotency-Key: op-1' \
	    -H 'X-Pipepool-Debug-Store: crash-after-commit'
	wait_for 10 eval '[ -n "$(store_pid)" ] && [ "$(store_pid)" != "$old" ]'
	wait_for 5 grep -q "store (pid $old) killed by signal 6" "$PP_LOG"
	log_has 'dying between COMMIT and the replies'
	wait_for 10 store_up
	is 200 GET /kv/c
	[ "$(body)" = 5 ]			# durable
	is 200 POST '/kv/c?incr=5' -H 'Idempotency-Key: op-1'
	[ "$(body)" = 5 ]			# the first reply, not 10
	grep -qi '^Idempotent-Replayed: true' "$T/head"
	is 200 GET /kv/c
	[ "$(body)" = 5 ]			# applied once
	# A new key applies; its retry does not.
	is 200 POST '/kv/c?incr=5' -H 'Idempotency-Key: op-2'
	[ "$(body)" = 10 ]
	! grep -qi '^Idempotent-Replayed' "$T/head"
	is 200 POST '/kv/c?incr=5' -H 'Idempotency-Key: op-2'
	[ "$(body)" = 10 ]
	is 201 PUT /kv/p -H 'Idempotency-Key: put-1' --data-binary one
	is 201 PUT /kv/p -H 'Idempotency-Key: put-1' --data-binary one
	is 200 GET /kv/p
	[ "$(body)" = one ]
	# Several retries of one key in one batch apply once.
	pids=
	for i in $(seq 8); do
		curl -s -o /dev/null -X POST -H 'Idempotency-Key: op-3' \
		    "$URL/kv/c?incr=1" &
		pids="$pids $!"
	done
	wait $pids
	is 200 GET /kv/c
	[ "$(body)" = 11 ]
	# The same key on another request, and bad keys.
	is 422 PUT /kv/c -H 'Idempotency-Key: op-1' --data-binary x
	is 400 POST /kv/c -H "Idempotency-Key: $(printf 'k%.0s' $(seq 129))"
	body | grep -q 'Idempotency-Key'
	is 400 POST /kv/c -H 'Idempotency-Key: a b'
	is 200 POST /kv/c -H "Idempotency-Key: $(printf 'k%.0s' $(seq 128))"
	[ "$(body)" = 12 ]
	is 200 GET /kv/c
	[ "$(body)" = 12 ]
	pp_stop
	[ "$(kv_sql 'SELECT count(*) FROM idem')" -eq 5 ]
}

@test "without --debug-routes the store ignores the crash-after-commit header" {
	kv_start
	pid=$(store_pid)
	is 200 POST '/kv/c?incr=1' -H 'Idempotency-Key: x-1' \
	    -H 'X-Pipepool-Debug-Store: crash-after-commit'
	[ "$(body)" = 1 ]
	[ "$(store_pid)" = "$pid" ]
}
