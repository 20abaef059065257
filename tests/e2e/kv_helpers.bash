# Helpers of the /kv suites (kv.bats, kv_faults.bats): start pipepool and
# nginx once the store answers, and send requests with their status checked.
#
# The suites run on either backend: SQLite in $T/kv.db, or, with
# KV_BACKEND=pg (tests/run.sh runs them a second time so), PostgreSQL: a
# server of the file's own (tests/tools/pg.sh, setup_file) and a new
# database for each test.  $KV_DB is the test's --db either way.

PG_SH=$REPO/tests/tools/pg.sh

kv_setup_file() {
	[ "${KV_BACKEND:-}" = pg ] || return 0
	PG_DIR=$(mktemp -d /tmp/pp-pg.XXXXXX)
	PG_PORT=$(free_port)
	export PG_DIR PG_PORT
	sh "$PG_SH" start "$PG_DIR" "$PG_PORT"
}

kv_teardown_file() {
	[ -n "${PG_DIR:-}" ] || return 0
	sh "$PG_SH" stop "$PG_DIR"
	rm -rf "$PG_DIR"
}

# In setup, after pp_tmp: the test's database.
kv_db_new() {
	if [ "${KV_BACKEND:-}" = pg ]; then
		sh "$PG_SH" sql "$PG_PORT" "CREATE DATABASE t$BATS_TEST_NUMBER"
		KV_DB=postgresql://postgres@127.0.0.1:$PG_PORT/t$BATS_TEST_NUMBER
	else
		KV_DB=$T/kv.db
	fi
}

# A test of SQLite's file under the store (a full disk, chattr +i).
kv_sqlite_only() {
	[ "${KV_BACKEND:-}" != pg ] || skip "SQLite only: $1"
}

# kv_sql SQL: its rows from the test's database.
kv_sql() {
	if [ "${KV_BACKEND:-}" = pg ]; then
		PGDATABASE=t$BATS_TEST_NUMBER sh "$PG_SH" sql "$PG_PORT" "$1"
	else
		sqlite3 "$KV_DB" "$1"
	fi
}

# The database is sound (SQLite: integrity_check; PostgreSQL checks its
# own pages, and a query of every row must work).
kv_integrity_ok() {
	if [ "${KV_BACKEND:-}" = pg ]; then
		kv_sql 'SELECT count(*) FROM kv' >/dev/null
	else
		[ "$(sqlite3 "$KV_DB" 'PRAGMA integrity_check')" = ok ]
	fi
}

# kv_refused STATUS PATTERN DB: pipepool refuses --db DB at start with
# STATUS and one line matching PATTERN, and never listens.
kv_refused() {
	run timeout 10 "$PIPEPOOL_BIN" --allow-root --listen "unix:$T/no.sock" \
	    --db "$3"
	echo "$output"
	[ "$status" -eq "$1" ]
	[ "$(echo "$output" | wc -l)" -eq 1 ]
	echo "$output" | grep -q -- "$2"
	[ ! -e "$T/no.sock" ]
}

# kv_start [ARGS...]: pipepool (with --db $KV_DB unless ARGS has --db)
# and nginx, once the store answers.
kv_start() {
	case " $* " in
	*" --db"*) pp_start "$@" ;;
	*) pp_start --db "$KV_DB" "$@" ;;
	esac
	ng_start
	wait_for 10 store_up
}
store_up() { [ "$(code "$URL/kv/")" = 200 ]; }
store_pid() { pp_kids "$PP_PID" 'pipepool: store'; }

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# req METHOD PATH [CURL ARGS...]: prints the status; the body is in
# $T/body and the response head in $T/head.
req() {
	local m=$1 p=$2
	shift 2
	if [ "$m" = HEAD ]; then
		: >"$T/body"	# curl -I reads no body, whatever is sent
		curl -s --path-as-is -I -o /dev/null -D "$T/head" \
		    -w '%{http_code}' "$@" "$URL$p"
	else
		curl -s --path-as-is -X "$m" -o "$T/body" -D "$T/head" \
		    -w '%{http_code}' "$@" "$URL$p"
	fi
}
body() { cat "$T/body"; }
# is WANT_STATUS METHOD PATH [CURL ARGS...]
is() {
	local want=$1 got
	shift
	got=$(req "$@")
	if [ "$got" != "$want" ]; then
		echo "$* -> $got, want $want: $(head -c 300 "$T/body")" >&2
		return 1
	fi
}
put() { is "$1" PUT "/kv/$2" --data-binary "$3"; }

# The client side of the concurrency and durability tests, in Python
# threads with kept connections (http.client), one per thread.
kv_py() {
	cat <<'EOF'
import http.client, sys, threading, urllib.parse

url = urllib.parse.urlsplit(sys.argv[2])

class Client:
    def __init__(self):
        self.c = None
    def req(self, method, path, body=None):
        for attempt in range(2):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
                self.c.request(method, path, body=body)
                r = self.c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                if self.c is not None:
                    self.c.close()
                self.c = None
                if attempt == 1:
                    return 0, b''
        return 0, b''

def run(nthreads, n, fn):
    lock = threading.Lock()
    def body(t):
        c = Client()
        for i in range(t, n, nthreads):
            fn(c, i, lock)
    ts = [threading.Thread(target=body, args=(t,)) for t in range(nthreads)]
    for t in ts: t.start()
    for t in ts: t.join()

mode = sys.argv[1]
if mode == 'incr':           # incr URL KEY N THREADS: print each new value
    key, n, nt = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    out, bad = [], []
    def f(c, i, lock):
        st, b = c.req('POST', '/kv/' + key + '?incr=1')
        with lock:
            (out if st == 200 else bad).append(b.decode().strip() if st == 200 else st)
    run(nt, n, f)
    print('\n'.join(out))
    if bad:
        print('failed:', bad[:10], file=sys.stderr)
        sys.exit(1)
elif mode == 'puts':         # puts URL PREFIX N THREADS ACKS STATUSES
    pre, n, nt = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    acks, sts = open(sys.argv[6], 'a'), open(sys.argv[7], 'a')
    def f(c, i, lock):
        key = '%s%05d' % (pre, i)
        val = ('%s=%d;' % (key, i * 7919)) * (1 + i % 9)
        st, b = c.req('PUT', '/kv/' + key, val.encode())
        with lock:
            sts.write('%d\n' % st); sts.flush()
            if st in (201, 204):
                acks.write('%s %s\n' % (key, val)); acks.flush()
    run(nt, n, f)
elif mode == 'check':        # check URL ACKS THREADS: every ack holds
    lines = [l.split(' ', 1) for l in open(sys.argv[3]).read().splitlines()]
    nt, bad = int(sys.argv[4]), []
    def f(c, i, lock):
        key, val = lines[i]
        st, b = c.req('GET', '/kv/' + key)
        if st != 200 or b != val.encode():
            with lock:
                bad.append((key, st, b[:40]))
    run(nt, len(lines), f)
    print('checked %d, bad %d %s' % (len(lines), len(bad), bad[:5]))
    sys.exit(1 if bad or not lines else 0)
elif mode == 'ryw':          # ryw URL THREADS N: each write read back
    nt, n, bad = int(sys.argv[3]), int(sys.argv[4]), []
    def f(c, i, lock):
        key = 'ryw%d' % (i % nt)
        val = b'value %d' % i
        st1, _ = c.req('PUT', '/kv/' + key, val)
        st2, b = c.req('GET', '/kv/' + key)
        st3, n3 = c.req('POST', '/kv/cnt%d' % (i % nt))
        st4, n4 = c.req('GET', '/kv/cnt%d' % (i % nt))
        if st1 not in (201, 204) or st2 != 200 or b != val or \
           st3 != 200 or st4 != 200 or n3.strip() != n4:
            with lock:
                bad.append((i, st1, st2, b, st3, n3, st4, n4))
    run(nt, n, f)
    print('bad:', bad[:5])
    sys.exit(1 if bad else 0)
EOF
}
