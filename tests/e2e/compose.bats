#!/usr/bin/env bats
# The compose demo (conf/docker-compose.yml) in a real container engine:
# Debian's docker.io, a dockerd of the test's own unless one already
# answers, and docker-compose, with conf/docker-compose.host.yml added so
# that every service is on the host network on loopback ports.  These are
# the README's compose steps (Deployment), in its order: up --build -d,
# health checks healthy, hello from both replicas through nginx, a key
# written through one read through the other (one PostgreSQL), kill a
# replica and up -d again, a replica's process dying (Docker restarts
# it), down -v.
#
# It costs minutes (the base image by debootstrap when the engine has
# none, three image builds with apt), so it runs once per `make test`:
# in the release build's suite, not again under SAN=1 (it builds pipepool
# from source in its own image either way).  Every step is bounded.

load helpers
load compose_helpers

# Why the file's tests skip, if they do (bats 1.8 cannot skip from
# setup_file: each test's setup does).
skip_reason() {
	[ -z "${PP_SANITIZED:-}" ] ||
		{ echo "runs once, in the release build's make test"; return; }
	command -v docker-compose >/dev/null ||
		{ echo "docker-compose is not installed (Debian package docker-compose)"; return; }
	command -v dockerd >/dev/null ||
		{ echo "docker is not installed (Debian package docker.io)"; return; }
	command -v debootstrap >/dev/null ||
		{ echo "debootstrap is not installed (Debian package debootstrap)"; return; }
}

setup() { [ -z "$COMPOSE_SKIP" ] || skip "$COMPOSE_SKIP"; }

setup_file() {
	COMPOSE_SKIP=$(skip_reason)
	export COMPOSE_SKIP
	[ -z "$COMPOSE_SKIP" ] || return 0
	export COMPOSE_FILE=docker-compose.yml:docker-compose.host.yml
	export COMPOSE_PROJECT_NAME=pipepool-e2e
	local p ports=""
	while [ "$(echo "$ports" | wc -w)" -lt 4 ]; do
		p=$(free_port)
		case " $ports " in *" $p "*) ;; *) ports="$ports $p" ;; esac
	done
	# shellcheck disable=SC2086
	set -- $ports
	export PP_HTTP_PORT=$1 PP_PORT1=$2 PP_PORT2=$3 PP_PG_PORT=$4
	export URL=http://127.0.0.1:$PP_HTTP_PORT
	local t0=$SECONDS t1
	dk_start || return 1
	dk_base || { compose_clean >&2; return 1; }
	t1=$SECONDS
	if ! DC_TIMEOUT=1200 dc up --build -d >"$BATS_FILE_TMPDIR/up.log" 2>&1; then
		tail -40 "$BATS_FILE_TMPDIR/up.log" >&2
		compose_clean >&2
		return 1
	fi
	# Bounded: postgres starts in seconds, then the replicas, then nginx.
	wait_for 120 healthy 4 || { compose_clean >&2; return 1; }
	echo "# compose: engine and base image $((t1 - t0)) s," \
	    "up --build and healthy $((SECONDS - t1)) s" >&3
}

# Containers still there: a test failed before `down`; its logs say why.
teardown_file() {
	[ -z "$COMPOSE_SKIP" ] || return 0
	compose_clean >"$BATS_FILE_TMPDIR/clean.log" 2>&1
	sed 's/^/# /' "$BATS_FILE_TMPDIR/clean.log" >&3
}

# kv METHOD KEY [CURL ARGS...] through nginx: prints "STATUS REPLICA";
# the body is in $BATS_FILE_TMPDIR/kv.
kv() {
	local m=$1 k=$2 h
	shift 2
	h=$(curl -s --max-time 10 -X "$m" -D - -o "$BATS_FILE_TMPDIR/kv" \
	    -w '%{http_code}\n' "$@" "$URL/kv/$k" | tr -d '\r')
	echo "$(echo "$h" | tail -1) $(echo "$h" | sed -n 's/^X-Upstream: //ip' | sed 's/.*, //')"
}

# both_replicas: ten hellos through nginx, answered by both replicas.
both_replicas() {
	run hello_from 10
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | sort -u | tr '\n' ' ')" = \
	    "$(printf '127.0.0.1:%s\n' "$PP_PORT1" "$PP_PORT2" | sort | tr '\n' ' ')" ]
}

# back_in_rotation: a replica that was down answers again.  nginx keeps
# one that failed a request (a stale kept connection, or a try before it
# listened) out for fail_timeout (2 s, conf/compose-nginx.conf) even once
# Docker calls it healthy: poll for both, then check ten answers again.
back_in_rotation() {
	wait_for 15 both_replicas
	both_replicas
}

@test "compose up: PostgreSQL, both replicas and nginx are healthy by their checks" {
	local s id port
	healthy 4
	for s in postgres:$PP_PG_PORT pipepool1:$PP_PORT1 pipepool2:$PP_PORT2 \
	    nginx:$PP_HTTP_PORT; do
		port=${s#*:}
		id=$(dc_ids "${s%:*}")
		[ -n "$id" ]
		[ "$(dk_field "$id" '{{.State.Health.Status}}')" = healthy ]
		# The check that passed is the one on the service's loopback port.
		dk_field "$id" '{{.Config.Healthcheck.Test}}' | grep -q "$port"
	done
}

@test "hello through nginx is answered by both replicas" {
	both_replicas
}

@test "a key PUT through one replica is read through the other (one PostgreSQL)" {
	local k=compose-$RANDOM put_by get_by st
	read -r st put_by <<<"$(kv PUT "$k" --data-binary "v-$k")"
	[ "$st" = 201 ]
	# Round robin: within a few GETs one goes to the other replica.
	for _ in 1 2 3 4; do
		read -r st get_by <<<"$(kv GET "$k")"
		[ "$st" = 200 ]
		[ "$(cat "$BATS_FILE_TMPDIR/kv")" = "v-$k" ]
		[ "$get_by" != "$put_by" ] && break
	done
	[ -n "$put_by" ] && [ -n "$get_by" ] && [ "$get_by" != "$put_by" ]
}

@test "docker-compose kill of a replica: the other answers; up -d starts it again" {
	local id
	id=$(dc_ids pipepool1)
	[ -n "$id" ]
	dc kill pipepool1
	wait_for 30 not_running "$id"
	run hello_from 6
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | sort -u)" = "127.0.0.1:$PP_PORT2" ]
	dc up -d
	wait_for 60 healthy 4
	back_in_rotation
}

@test "a replica whose process dies is restarted by Docker (restart: unless-stopped)" {
	local id n pid
	id=$(dc_ids pipepool2)
	n=$(dk_field "$id" '{{.RestartCount}}')
	pid=$(dk_field "$id" '{{.State.Pid}}')
	[ "$pid" -gt 1 ]
	# The master, pid 1 of its container: the whole replica goes.
	kill -KILL "$pid"
	run hello_from 6
	[ "$status" -eq 0 ]
	wait_for 60 restarted_healthy "$id" "$n"
	back_in_rotation
}

@test "docker-compose down -v leaves no container and no volume" {
	local ids vols v
	ids=$(dc_ids)
	[ "$(echo "$ids" | grep -c .)" -eq 4 ]
	# shellcheck disable=SC2086
	vols=$(docker inspect -f '{{range .Mounts}}{{.Name}} {{end}}' $ids)
	[ -n "$vols" ]
	dc down -v
	[ -z "$(dc_ids)" ]
	for v in $vols; do
		run docker volume inspect "$v"
		[ "$status" -ne 0 ]
	done
	[ "$(code "$URL/")" = 000 ]
}
