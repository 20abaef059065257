# Helpers of the /kv suites (kv.bats, kv_faults.bats): start pipepool and
# nginx once the store answers, and send requests with their status checked.

# kv_start [ARGS...]: pipepool (with --db $T/kv.db unless ARGS has --db)
# and nginx, once the store answers.
kv_start() {
	case " $* " in
	*" --db"*) pp_start "$@" ;;
	*) pp_start --db "$T/kv.db" "$@" ;;
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
