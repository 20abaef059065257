# Shared helpers for the end-to-end suite: start pipepool and a real nginx
# in front of it, wait on conditions (never on bare sleeps), and clean up
# every process by pid and every file.
#
# Every test gets its own directory $T (sockets, logs, nginx prefix).
# PIPEPOOL_BIN picks the binary (tests/run.sh sets it for SAN=1 builds).

PIPEPOOL_BIN=${PIPEPOOL_BIN:-$BATS_TEST_DIRNAME/../../build/pipepool}
REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

pp_tmp() {
	T=$(mktemp -d /tmp/pp-e2e.XXXXXX)
	PP_PID= NG_PID=
}

# wait_for SECONDS CMD...: run CMD every 20 ms until it succeeds.
wait_for() {
	local limit=$1 i=0 n
	shift
	n=$((limit * 50))
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -ge "$n" ] && { echo "timed out after ${limit}s: $*" >&2; return 1; }
		sleep 0.02
	done
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Children of a pid, by role text in their args ("pipepool: worker").
pp_kids() {
	local pid=$1 pat=${2:-pipepool:}
	local c
	for c in $(pgrep -P "$pid" 2>/dev/null); do
		if tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null | grep -q -- "$pat"; then
			echo "$c"
		fi
	done
}
pp_front() { pp_kids "$PP_PID" 'pipepool: front'; }
pp_workers() { pp_kids "$PP_PID" 'pipepool: worker'; }
pp_nworkers() { pp_workers | wc -l; }
pp_has_workers() { [ "$(pp_nworkers)" -eq "$1" ]; }
# workers_changed BEFORE [N]: the sorted worker pids differ from BEFORE,
# and N workers (default 1) are up.
workers_changed() { [ "$(pp_workers | sort)" != "$1" ] && pp_has_workers "${2:-1}"; }

# A process is gone: no such pid, or a zombie (an orphan's new parent may
# never reap it).  The state is the field after the ")" of comm.
gone() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
	[ -z "$st" ] || [ "$st" = Z ]
}

# code URL...: the HTTP status curl got (000: no answer within 30 s).
code() { curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$@"; }

# pipepool's start alone, expected to fail: sets status and output.
pp_start_fails() {
	run timeout 60 "$PIPEPOOL_BIN" --allow-root --listen "unix:$T/pp.sock" \
	    --db "$T/pp.db" --workers 2 "$@"
}

# pp_start [ARGS...]: pipepool on $T/pp.sock unless ARGS has --listen.
pp_start() {
	local args=("$@") want=2 a prev=
	local spare=1
	for a in "${args[@]}"; do
		[ "$prev" = --workers ] && want=$a
		[ "$prev" = --spare ] && spare=$a
		case $a in --workers=*) want=${a#--workers=} ;; esac
		prev=$a
	done
	# A MIN:MAX pool starts with --spare workers (default 1), within it.
	case $want in *:*)
		local lo=${want%%:*} hi=${want#*:}
		want=$((spare > lo ? spare : lo))
		want=$((want > hi ? hi : want)) ;;
	esac
	case " ${args[*]} " in
	*" --listen"*) ;;
	*) args=(--listen "unix:$T/pp.sock" "${args[@]}") ;;
	esac
	case " ${args[*]} " in
	*" --workers"* | *" --config"*) ;;
	*) args+=(--workers 2) ;;
	esac
	case " ${args[*]} " in
	*" --db"*) ;;
	*) args+=(--db "$T/pp.db") ;;
	esac
	PP_SOCK=$T/pp.sock
	PP_LOG=$T/pp.log
	"$PIPEPOOL_BIN" --allow-root "${args[@]}" 2>"$PP_LOG" &
	PP_PID=$!
	wait_for 10 grep -q 'listening on' "$PP_LOG"
	wait_for 10 pp_has_workers "$want"
	PP_FRONT=$(pp_front)
	[ -n "$PP_FRONT" ]
}

# ng_start [UPSTREAM]: nginx from conf/nginx.conf on a free port, to
# UPSTREAM (default: unix:$PP_SOCK; or HOST:PORT).
ng_start() {
	local up=${1:-unix:$PP_SOCK}
	NG_PORT=$(free_port)
	sed -e "s|@PORT@|$NG_PORT|" -e "s|unix:@SOCKET@|$up|" \
	    -e "s|@PREFIX@|$T|g" -e "s|@USER@|$(id -un)|" \
	    "$REPO/conf/nginx.conf" >"$T/nginx.conf"
	nginx -p "$T" -c "$T/nginx.conf" -e "$T/nginx-error.log" 2>"$T/nginx.out" &
	NG_PID=$!
	URL=http://127.0.0.1:$NG_PORT
	wait_for 10 curl -s -o /dev/null "$URL/"
}

pp_alive() { kill -0 "$PP_PID" 2>/dev/null; }

# pp_stop: SIGTERM and wait; sets PP_STATUS.  Fails if it does not exit.
pp_stop() {
	[ -n "$PP_PID" ] || return 0
	kill -TERM "$PP_PID" 2>/dev/null || true
	wait_for 20 eval '! kill -0 $PP_PID'
	wait "$PP_PID" 2>/dev/null && PP_STATUS=0 || PP_STATUS=$?
	PP_PID=
}

# Open fds of a process, for leak checks.
pp_fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# Log lines of the running pipepool matching a pattern.
log_has() { grep -q -- "$1" "$PP_LOG"; }
# For wait_for: these look again at each poll (a "$(...)" argument to
# wait_for would be worked out once, before the first).
log_count_ge() { [ "$(grep -c -- "$1" "$PP_LOG")" -ge "$2" ]; }
fds_eq() { [ "$(pp_fds "$1")" -eq "$2" ]; }

# Cleanup: everything this test started, by pid, then its files.
pp_cleanup() {
	local kids=""
	if [ -n "${PP_PID:-}" ]; then
		kids=$(pgrep -P "$PP_PID" 2>/dev/null || true)
		kill -TERM "$PP_PID" 2>/dev/null || true
		wait_for 5 eval '! kill -0 $PP_PID' || kill -KILL "$PP_PID" 2>/dev/null || true
		for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
		wait "$PP_PID" 2>/dev/null || true
	fi
	if [ -n "${NG_PID:-}" ]; then
		kill -TERM "$NG_PID" 2>/dev/null || true
		wait "$NG_PID" 2>/dev/null || true
	fi
	# Any other nginx a test started on this directory (by its pid).
	if [ -n "${T:-}" ]; then
		for k in $(pgrep -f "nginx: master process .*-p $T " || true); do
			kill -TERM "$k" 2>/dev/null || true
		done
		rm -rf "$T"
	fi
	PP_PID= NG_PID= T=
}

# A test's stderr on failure: the pipepool log helps most.
dump_logs() {
	[ -n "${PP_LOG:-}" ] && [ -f "$PP_LOG" ] && sed 's/^/# pp: /' "$PP_LOG" >&3 || true
}
