#!/usr/bin/env bats
#
# kv.bats: the /kv key-value API served by the store process, through the
# real nginx.  Every status and error of the API; binary, empty and 1 MiB
# values; no lost update under 32 concurrent incrementing clients;
# read-your-writes; durability of every acknowledged write across SIGKILL
# of every pipepool process; the store crashing or being killed (502 for
# what it had, respawn, data intact, integrity_check ok); and a full disk,
# a read-only file system and an I/O error under the database (these
# mount a tmpfs or a loop device and skip when mounting is not allowed).
# With KV_BACKEND=pg the same tests run on PostgreSQL (kv_helpers.bash),
# but for those of SQLite's file.

load helpers
load kv_helpers

setup_file() { kv_setup_file; }
teardown_file() { kv_teardown_file; }

setup() {
	pp_tmp
	MNT= LOOP=
	kv_db_new
	kv_py >"$T/kv.py"
}

teardown() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] || dump_logs
	pp_cleanup
	if [ -n "${MNT:-}" ]; then
		if mountpoint -q "$MNT"; then
			umount "$MNT" 2>/dev/null || umount -l "$MNT" || true
		fi
		rmdir "$MNT" 2>/dev/null || true
	fi
	if [ -n "${LOOP:-}" ]; then
		losetup -d "$LOOP" 2>/dev/null || true
		rm -f "$LOOP_IMG"
	fi
	MNT= LOOP=
}


# Mount a small tmpfs for the database; skip the test if not allowed.
mount_tmpfs() {
	MNT=$(mktemp -d /tmp/pp-kv-mnt.XXXXXX)
	if ! mount -t tmpfs -o "size=$1" tmpfs "$MNT" 2>"$T/mount.err"; then
		skip "cannot mount a tmpfs here: $(head -n1 "$T/mount.err")"
	fi
}

# Every status the loader got is one of the arguments (with a count).
no_other_status() {
	local bad re
	re="^($(IFS='|'; echo "$*"))\$"
	bad=$(grep -Ev "$re" "$T/statuses" | sort | uniq -c)
	[ -z "$bad" ] || { echo "unexpected statuses: $bad" >&2; return 1; }
}
lines_at_least() { [ "$(wc -l <"$1")" -ge "$2" ]; }
integrity_ok() {
	if [ "$1" = "$KV_DB" ]; then kv_integrity_ok; else
		[ "$(sqlite3 "$1" 'PRAGMA integrity_check')" = ok ]; fi
}

# --- the API ----------------------------------------------------------

@test "PUT creates (201) then replaces (204, no body); GET, HEAD, DELETE" {
	kv_start
	is 404 GET /kv/k1
	put 201 k1 v1
	is 200 GET /kv/k1
	[ "$(body)" = v1 ]
	grep -qi '^content-type: application/octet-stream' "$T/head"
	grep -qi '^x-worker-pid: ' "$T/head"
	put 204 k1 v22
	[ ! -s "$T/body" ]
	is 200 GET /kv/k1
	[ "$(body)" = v22 ]
	is 200 HEAD /kv/k1
	grep -qi '^content-length: 3' "$T/head"
	is 404 HEAD /kv/nope
	is 204 DELETE /kv/k1
	[ ! -s "$T/body" ]
	is 404 DELETE /kv/k1
	is 404 GET /kv/k1
	body | grep -q 'no such key'
}

@test "incr: default 1, signed N, missing key is 0, 409 not a number, 400 bad N or overflow" {
	kv_start
	is 200 POST /kv/n
	[ "$(body)" = 1 ]
	is 200 POST '/kv/n?incr=41'
	[ "$(body)" = 42 ]
	is 200 POST '/kv/n?incr=-50'
	[ "$(body)" = -8 ]
	is 200 GET /kv/n
	[ "$(body)" = -8 ]
	is 200 POST '/kv/fresh?incr=-3'
	[ "$(body)" = -3 ]
	for q in 'incr=' 'incr=x' 'incr=1.5' 'incr=%201' 'incr=99999999999999999999'; do
		is 400 POST "/kv/n?$q"
	done
	put 201 max 9223372036854775807
	is 400 POST /kv/max
	body | grep -q 'does not fit'
	put 201 min -9223372036854775808
	is 400 POST '/kv/min?incr=-1'
	is 200 POST '/kv/min?incr=9223372036854775807'
	[ "$(body)" = -1 ]
	put 201 word hello
	is 409 POST /kv/word
	body | grep -q 'not a decimal integer'
	put 201 empty ''
	is 409 POST /kv/empty
	is 200 GET /kv/word
	[ "$(body)" = hello ]
}

@test "key listing: sorted bytewise, prefix, limit (default 1000, 1..10000)" {
	kv_start
	is 200 GET /kv/
	[ ! -s "$T/body" ]
	for k in b a B _x ab a.c a-z 0 '~' Z; do put 201 "$k" 1; done
	is 200 GET /kv/
	[ "$(body | tr '\n' ' ')" = "0 B Z _x a a-z a.c ab b ~ " ]
	is 200 GET /kv
	[ "$(body | tr '\n' ' ')" = "0 B Z _x a a-z a.c ab b ~ " ]
	grep -qi '^content-type: text/plain' "$T/head"
	is 200 GET '/kv/?prefix=a'
	[ "$(body | tr '\n' ' ')" = "a a-z a.c ab " ]
	is 200 GET '/kv/?prefix=a&limit=2'
	[ "$(body | tr '\n' ' ')" = "a a-z " ]
	is 200 GET '/kv/?prefix=%7E'
	[ "$(body)" = '~' ]
	is 200 GET '/kv/?prefix=zzz'
	[ ! -s "$T/body" ]
	is 200 HEAD '/kv/?prefix=a'
	grep -qi '^content-length: 13' "$T/head"
	for q in limit=0 limit=10001 limit=-1 limit=x limit= 'prefix=a/b' 'prefix=%zz'; do
		is 400 GET "/kv/?$q"
	done
	is 200 GET '/kv/?limit=10000'
	is 200 GET '/kv/?limit=1'
	[ "$(body)" = 0 ]
	# The default limit is 1000 keys.
	python3 - "$URL" <<'EOF'
import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
for i in range(1100):
    c.request('PUT', '/kv/many%04d' % i, body=b'x')
    assert c.getresponse().read() is not None
EOF
	is 200 GET '/kv/?prefix=many'
	[ "$(body | wc -l)" -eq 1000 ]
	is 200 GET '/kv/?prefix=many&limit=5000'
	[ "$(body | wc -l)" -eq 1100 ]
}

@test "keys: 1..250 bytes of [A-Za-z0-9._~-] after percent-decoding, else 400" {
	kv_start
	k250=$(printf 'k%.0s' $(seq 250))
	put 201 "$k250" long
	is 200 GET "/kv/$k250"
	[ "$(body)" = long ]
	is 400 GET "/kv/${k250}k"
	body | grep -q '1 to 250 bytes'
	put 201 'Az09._~-' sym
	is 200 GET '/kv/%41z09._%7E-'
	[ "$(body)" = sym ]
	# (nginx itself refuses %00 in a path.)
	for p in '/kv/a%2Fb' '/kv/a/b' '/kv/a%20b' '/kv/a+b' '/kv/%C3%A9' '/kv/a:b' \
	    '/kv/a%2525'; do
		is 400 GET "$p"
		[ "$(body | wc -l)" -eq 1 ]
	done
	is 400 PUT '/kv/bad*key' --data-binary x
}

@test "other methods: 405 with Allow" {
	kv_start
	is 405 PATCH /kv/k
	grep -qi '^allow: GET, HEAD, PUT, DELETE, POST' "$T/head"
	is 405 OPTIONS /kv/k
	grep -qi '^allow: GET, HEAD, PUT, DELETE, POST' "$T/head"
	is 405 PUT /kv/ --data-binary x
	grep -qi '^allow: GET, HEAD' "$T/head"
	is 405 POST /kv
	grep -qi '^allow: GET, HEAD' "$T/head"
	is 405 DELETE /kv/
}

@test "values are binary-safe: NUL bytes, empty, exactly 1 MiB; 413 above --max-body" {
	kv_start
	printf 'a\0b\0\0\377\r\n\0end' >"$T/bin"
	is 201 PUT /kv/bin --data-binary "@$T/bin"
	is 200 GET /kv/bin
	cmp "$T/bin" "$T/body"
	: >"$T/empty"
	is 201 PUT /kv/empty --data-binary "@$T/empty"
	is 200 GET /kv/empty
	[ ! -s "$T/body" ]
	grep -qi '^content-length: 0' "$T/head"
	head -c 1048576 /dev/urandom >"$T/big"
	is 201 PUT /kv/big --data-binary "@$T/big"
	is 200 GET /kv/big
	cmp "$T/big" "$T/body"
	is 200 HEAD /kv/big
	grep -qi '^content-length: 1048576' "$T/head"
	head -c 1048577 /dev/urandom >"$T/toobig"
	is 413 PUT /kv/toobig --data-binary "@$T/toobig"
	is 404 GET /kv/toobig
	is 200 GET /kv/big
	cmp "$T/big" "$T/body"
}

# --- concurrency ------------------------------------------------------

@test "no lost update: 32 clients, 2000 incr, ends at 2000 with 2000 distinct answers" {
	kv_start
	python3 "$T/kv.py" incr "$URL" counter 2000 32 >"$T/values"
	[ "$(wc -l <"$T/values")" -eq 2000 ]
	[ "$(sort -n "$T/values" | uniq | wc -l)" -eq 2000 ]
	[ "$(sort -n "$T/values" | head -n1)" -eq 1 ]
	[ "$(sort -n "$T/values" | tail -n1)" -eq 2000 ]
	is 200 GET /kv/counter
	[ "$(body)" = 2000 ]
}

@test "no lost update with --batch 0 either (one transaction per request)" {
	kv_start --batch 0
	python3 "$T/kv.py" incr "$URL" counter 500 16 >"$T/values"
	[ "$(sort -n "$T/values" | uniq | wc -l)" -eq 500 ]
	is 200 GET /kv/counter
	[ "$(body)" = 500 ]
}

@test "read-your-writes: 16 clients, each write read back at once" {
	kv_start
	python3 "$T/kv.py" ryw "$URL" 16 1600
}

# --- durability and crashes -------------------------------------------

@test "durability: every acknowledged PUT survives SIGKILL of every pipepool process" {
	kv_start
	: >"$T/acks"
	python3 "$T/kv.py" puts "$URL" d 5000 16 "$T/acks" "$T/statuses" &
	loader=$!
	wait_for 60 lines_at_least "$T/acks" 1500
	kill -STOP "$PP_PID"		# no respawns while we kill
	pkill -KILL -P "$PP_PID"
	kill -KILL "$PP_PID"
	kill -CONT "$PP_PID" 2>/dev/null || true
	wait "$PP_PID" 2>/dev/null || true
	PP_PID=
	wait "$loader"
	acked=$(wc -l <"$T/acks")
	echo "# $acked of 5000 PUTs acknowledged before the kill" >&3
	[ "$acked" -ge 1500 ]
	# Only 201/204 (before) and gateway errors (after) were answered.
	[ -z "$(grep -Ev '^(201|204|502|503|504|0)$' "$T/statuses")" ]
	grep -Eq '^(502|503|504|0)$' "$T/statuses"
	integrity_ok "$KV_DB"
	pp_start --db "$KV_DB"
	wait_for 10 store_up
	python3 "$T/kv.py" check "$URL" "$T/acks" 16
	pp_stop		# the store holds the database's lock while it runs
	integrity_ok "$KV_DB"
}

@test "store crash (/debug/store-crash): 502 in flight, store respawned, committed data intact" {
	kv_start --debug-routes
	put 201 before kept
	: >"$T/acks"
	python3 "$T/kv.py" puts "$URL" c 6000 16 "$T/acks" "$T/statuses" &
	loader=$!
	# Three crashes under load, each in the middle of some batch.
	for n in 1 2 3; do
		old=$(store_pid)
		[ -n "$old" ]
		wait_for 30 lines_at_least "$T/acks" $((n * 400))
		is 502 GET /debug/store-crash
		body | grep -q 'store'	# died, or could not be sent to
		wait_for 10 eval '[ -n "$(store_pid)" ] && [ "$(store_pid)" != "$old" ]'
		wait_for 5 grep -Eq "store \(pid $old\) killed by signal 6" "$PP_LOG"
	done
	wait "$loader"
	no_other_status 201 204 502
	wait_for 10 store_up
	is 200 GET /kv/before
	[ "$(body)" = kept ]
	python3 "$T/kv.py" check "$URL" "$T/acks" 16
	put 204 before again
	is 200 GET /kv/before
	[ "$(body)" = again ]
	pp_stop		# the store holds the database's lock while it runs
	integrity_ok "$KV_DB"
}

@test "store SIGKILLed under load: 502 for what it had, respawned, data intact" {
	kv_start
	put 201 before kept
	old=$(store_pid)
	[ -n "$old" ]
	: >"$T/acks"
	python3 "$T/kv.py" puts "$URL" s 3000 16 "$T/acks" "$T/statuses" &
	loader=$!
	wait_for 30 lines_at_least "$T/acks" 300
	kill -KILL "$old"
	wait "$loader"
	no_other_status 201 204 502
	wait_for 10 eval '[ -n "$(store_pid)" ] && [ "$(store_pid)" != "$old" ]'
	wait_for 10 store_up
	wait_for 5 grep -Eq "store \(pid $old\) killed by signal 9" "$PP_LOG"
	is 200 GET /kv/before
	[ "$(body)" = kept ]
	python3 "$T/kv.py" check "$URL" "$T/acks" 16
	pp_alive
	pp_stop
	integrity_ok "$KV_DB"
}

# --- the disk under the database --------------------------------------

@test "disk full: PUT 503 with a reason, reads still 200, server stays up, recovers" {
	kv_sqlite_only "the disk under the database file"
	mount_tmpfs 1M
	kv_start --db "$MNT/kv.db"
	put 201 k v
	head -c 20000 /dev/urandom >"$T/val"
	dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null || true
	is 503 PUT /kv/big --data-binary "@$T/val"
	body | grep -q 'full'
	[ "$(body | wc -l)" -eq 1 ]
	is 503 PUT /kv/k --data-binary small
	is 503 POST /kv/n
	is 503 DELETE /kv/k
	is 200 GET /kv/k
	[ "$(body)" = v ]
	is 200 GET /kv/
	[ "$(body)" = k ]
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	pp_alive
	[ -n "$(store_pid)" ]
	log_has 'answered 503: store: .*full'
	rm -f "$MNT/filler"
	is 201 PUT /kv/big --data-binary "@$T/val"
	is 204 PUT /kv/k --data-binary v2
	is 200 GET /kv/big
	cmp "$T/val" "$T/body"
	wait_for 5 log_has 'writes commit again'
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
	integrity_ok "$MNT/kv.db"
}

@test "read-only file system: start-up refuses the database in one line, exit 1" {
	kv_sqlite_only "the disk under the database file"
	mount_tmpfs 4M
	kv_start --db "$MNT/kv.db"
	put 201 k v
	# The kernel refuses a read-only remount while the store has the
	# file open for writing; when it allows it, writes must fail 503.
	if mount -o remount,ro "$MNT" 2>/dev/null; then
		is 503 PUT /kv/k --data-binary x
		is 200 GET /kv/k
		[ "$(body)" = v ]
		mount -o remount,rw "$MNT"
	fi
	pp_stop
	[ "$PP_STATUS" -eq 0 ]
	mount -o remount,ro "$MNT"
	kv_refused 1 "--db: .*$MNT/kv.db.*read-only" "$MNT/kv.db"
	mount -o remount,rw "$MNT"
	kv_start --db "$MNT/kv.db"
	is 200 GET /kv/k
	[ "$(body)" = v ]
}

@test "I/O error (ext4 shut down under the store): PUT 503 with a reason, server stays up" {
	kv_sqlite_only "the disk under the database file"
	command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null ||
		skip "no mkfs.ext4 or losetup"
	LOOP_IMG=$(mktemp /tmp/pp-kv-img.XXXXXX)
	truncate -s 16M "$LOOP_IMG"
	mkfs.ext4 -q -F "$LOOP_IMG" >/dev/null 2>&1 || skip "mkfs.ext4 failed"
	LOOP=$(losetup -f --show "$LOOP_IMG" 2>/dev/null) || { LOOP=; skip "no loop device"; }
	MNT=$(mktemp -d /tmp/pp-kv-mnt.XXXXXX)
	mount "$LOOP" "$MNT" 2>/dev/null || skip "cannot mount a loop device"
	kv_start --db "$MNT/kv.db"
	put 201 k v
	# EXT4_IOC_SHUTDOWN (no log flush): every later I/O fails with EIO.
	python3 -c 'import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, 0x8004587D, struct.pack("I", 2))' "$MNT" ||
		skip "EXT4_IOC_SHUTDOWN not allowed"
	is 503 PUT /kv/k2 --data-binary x
	body | grep -qi 'I/O error'
	is 503 PUT /kv/k3 --data-binary y
	[ "$(curl -s "$URL/")" = "hello world from another process" ]
	pp_alive
	[ -n "$(store_pid)" ]
}
