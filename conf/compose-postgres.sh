#!/bin/sh
# Entrypoint of conf/Dockerfile.postgres: on the first start (an empty
# $PGDATA) make the cluster, the role "pipepool" with $POSTGRES_PASSWORD
# and its database "pipepool"; then run postgres with "$@".  A cluster
# already there is used as it is (its password is not changed); so is
# one whose first start failed after initdb, without the role: remove
# the volume then (docker-compose down -v).
set -eu
: "${PGDATA:?}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	# The superuser has no password: only the container's own user
	# reaches it, over the unix socket (peer).
	initdb -D "$PGDATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
	    --auth-local=peer --auth-host=scram-sha-256
	# The replicas connect from other containers (or, on the host
	# network, from loopback): any address, with the password.
	echo 'host pipepool pipepool all scram-sha-256' >>"$PGDATA/pg_hba.conf"
	# Single-user mode opens no socket while the role is being made;
	# exit_on_error makes a failing statement its exit status.
	q=$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")
	printf '%s\n' \
	    "CREATE ROLE pipepool LOGIN PASSWORD '$q';" \
	    "CREATE DATABASE pipepool OWNER pipepool;" |
	    postgres --single -c exit_on_error=on -D "$PGDATA" postgres >/dev/null
fi
exec postgres -D "$PGDATA" "$@"
