#!/bin/sh
# A PostgreSQL server of the tests' own (Debian's postgresql-15), in a
# directory it owns, on a loopback port and a unix socket in that
# directory.  As root, the server runs as the postgres user (it refuses
# root).  Stopped by the pid in its postmaster.pid, never by name.
#
#   pg.sh start DIR PORT [-c NAME=VALUE ...]
#	initdb DIR/data (if new), start, wait until it accepts connections
#   pg.sh standby PRIMARY_PORT DIR PORT NAME [-c ...]
#	pg_basebackup -R from the primary into DIR/data, as NAME
#	(its application_name, for synchronous_standby_names), start
#   pg.sh pid DIR	the postmaster's pid
#   pg.sh stop DIR	fast shutdown by pid, wait until it is gone
#   pg.sh sql PORT SQL	run SQL as the postgres user, print rows
#
# DIR must be new or made by this script: it becomes the postgres
# user's (the caller removes it after stop).
set -eu
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

own() {
	mkdir -p "$1"
	[ "$(id -u)" -ne 0 ] || chown postgres: "$1"
	chmod 700 "$1"
}

# start DIR PORT [OPTIONS...]: the server on DIR/data.
run() {
	dir=$1 port=$2
	shift 2
	as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
	    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $*" start \
	    >/dev/null
}

pidof_dir() { head -n1 "$1/data/postmaster.pid"; }

case ${1:-} in
start)
	dir=$2 port=$3
	shift 3
	own "$dir"
	if [ ! -d "$dir/data" ]; then
		as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres \
		    --no-locale -E UTF8 >"$dir/initdb.log" 2>&1 ||
		    { cat "$dir/initdb.log" >&2; exit 1; }
	fi
	run "$dir" "$port" "$@"
	;;
standby)
	pport=$2 dir=$3 port=$4 name=$5
	shift 5
	own "$dir"
	as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres \
	    -D "$dir/data" -R -X stream >"$dir/basebackup.log" 2>&1 ||
	    { cat "$dir/basebackup.log" >&2; exit 1; }
	# Its WAL receiver's application_name is cluster_name.
	run "$dir" "$port" -c "cluster_name=$name" "$@"
	;;
pid)
	pidof_dir "$2"
	;;
stop)
	dir=$2
	[ -f "$dir/data/postmaster.pid" ] || exit 0
	pid=$(pidof_dir "$dir")
	kill -INT "$pid" 2>/dev/null || exit 0
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -lt 1500 ] || { kill -KILL "$pid" 2>/dev/null; break; }
		sleep 0.02
	done
	;;
sql)
	psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$2" -U postgres \
	    -d "${PGDATABASE:-postgres}" -c "$3"
	;;
*)
	echo "usage: pg.sh start|standby|pid|stop|sql ..." >&2
	exit 64
	;;
esac
