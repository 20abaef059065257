# Helpers of compose.bats: a Docker engine of the test's own (or one that
# already runs), the base image debian:bookworm-slim made with debootstrap
# when the engine has none, and the compose project on loopback ports.
#
# Our machines reach no image registry, and the tests use no network but
# the Debian archive apt is configured with: nothing here pulls an image.

# dk_start: use an engine that answers (DOCKER_HOST, or the default
# socket) as it is; otherwise start dockerd in DK_DIR, with no bridge
# and no iptables rules, so that nothing reaches a bridge network.  Its
# pid is DK_PID (empty when the engine is not ours).
dk_start() {
	DK_PID='' DK_DIR=''
	if docker info >/dev/null 2>&1; then
		return 0
	fi
	[ "$(id -u)" -eq 0 ] || {
		echo "no Docker engine answers, and only root may start dockerd" >&2
		return 1
	}
	DK_DIR=$(mktemp -d /tmp/pp-dockerd.XXXXXX)
	export DOCKER_HOST=unix://$DK_DIR/docker.sock
	# fd 3 closed: bats waits for every holder of it to exit.
	dockerd --data-root "$DK_DIR/data" --exec-root "$DK_DIR/exec" \
	    --pidfile "$DK_DIR/dockerd.pid" --host "$DOCKER_HOST" \
	    --bridge=none --iptables=false --ip6tables=false \
	    >"$DK_DIR/dockerd.log" 2>&1 3>&- &
	DK_PID=$!
	export DOCKER_HOST DK_PID DK_DIR
	wait_for 60 dk_up
	dk_answers || { tail -20 "$DK_DIR/dockerd.log" >&2; dk_stop; return 1; }
}
# The engine answers, or its dockerd is gone (then waiting is pointless).
dk_up() { docker info || ! kill -0 "$DK_PID"; } 2>/dev/null
dk_answers() { docker info >/dev/null 2>&1; }

# dk_stop: our dockerd (if we started one) stopped by pid, then its
# directory removed.  dockerd stops the containerd it started; after a
# SIGKILL that containerd is stopped by its own pid file.
dk_stop() {
	local cd_pid
	[ -n "${DK_PID:-}" ] || return 0
	kill -TERM "$DK_PID" 2>/dev/null || true
	if ! wait_for 30 gone "$DK_PID"; then
		kill -KILL "$DK_PID" 2>/dev/null || true
		cd_pid=$(cat "$DK_DIR/exec/containerd/containerd.pid" 2>/dev/null)
		[ -n "$cd_pid" ] && kill -KILL "$cd_pid" 2>/dev/null
	fi
	wait "$DK_PID" 2>/dev/null || true
	rm_tree "$DK_DIR"
	DK_PID='' DK_DIR=''
}

# rm_tree DIR: DIR removed, after unmounting whatever is still mounted
# under it (an overlay of a dockerd that died, debootstrap's /proc), and
# never across into another file system.
rm_tree() {
	local m
	[ -n "$1" ] && [ -d "$1" ] || return 0
	awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts |
	    sort -r | while read -r m; do
		umount -l "$m" || true
	done
	rm -rf --one-file-system "$1"
}

# apt_mirror: the first Debian archive that apt on this machine takes
# bookworm from: a "deb URI bookworm ..." line of sources.list or
# sources.list.d/*.list, or a deb822 stanza of sources.list.d/*.sources
# (Types: deb, Suites: bookworm, not Enabled: no).
apt_mirror() {
	python3 - /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
	    /etc/apt/sources.list.d/*.sources <<'EOF'
import re, sys
for path in sys.argv[1:]:
    try:
        text = open(path).read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            f = {}
            for line in stanza.splitlines():
                m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
                if m and not line.startswith("#"):
                    f[m.group(1).lower()] = m.group(2).split()
            if ("deb" in f.get("types", []) and
                    "bookworm" in f.get("suites", []) and
                    f.get("enabled", ["yes"])[0] != "no" and f.get("uris")):
                print(f["uris"][0])
                sys.exit(0)
    else:
        for line in text.splitlines():
            w = re.sub(r"\[[^]]*\]", " ", line.split("#")[0]).split()
            if len(w) >= 3 and w[0] == "deb" and w[2] == "bookworm":
                print(w[1])
                sys.exit(0)
sys.exit(1)
EOF
}

# dk_base: debian:bookworm-slim in the engine.  One it has is used as it
# is; otherwise debootstrap (minbase) makes it from apt's Debian archive,
# bounded by 10 minutes, and `docker import` takes it.
dk_base() {
	local mirror root
	docker image inspect debian:bookworm-slim >/dev/null 2>&1 && return 0
	mirror=$(apt_mirror) || {
		echo "apt has no Debian archive for bookworm" >&2
		return 1
	}
	root=$(mktemp -d /tmp/pp-rootfs.XXXXXX)
	if ! timeout 600 debootstrap --variant=minbase bookworm "$root/fs" \
	    "$mirror" >"$root/log" 2>&1; then
		tail -20 "$root/log" >&2
		rm_tree "$root"
		return 1
	fi
	tar -C "$root/fs" -c . | docker import - debian:bookworm-slim >/dev/null
	local rc=$?
	rm_tree "$root"
	return "$rc"
}

# dc ARGS...: docker-compose in conf/, on the files and project that
# compose.bats exports (COMPOSE_FILE, COMPOSE_PROJECT_NAME), bounded by
# DC_TIMEOUT seconds (default 120).
dc() {
	(cd "$REPO/conf" && timeout "${DC_TIMEOUT:-120}" docker-compose "$@")
}

# dc_ids [SERVICE]: the project's containers (any state), or those of
# SERVICE, by compose's labels (docker ps answers faster than
# docker-compose ps).
# shellcheck disable=SC2120 # compose.bats passes SERVICE
dc_ids() {
	docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
	    ${1:+--filter "label=com.docker.compose.service=$1"}
}

# healthy N: the project has N containers, every one healthy.
healthy() {
	local ids
	ids=$(dc_ids "")
	[ "$(echo "$ids" | grep -c .)" -eq "$1" ] || return 1
	# shellcheck disable=SC2086
	[ "$(docker inspect -f '{{.State.Health.Status}}' $ids | sort -u)" = healthy ]
}
# compose_clean: the project's state and last log lines printed, if it
# has containers, then down -v; then our dockerd stopped.
compose_clean() {
	if dk_answers && [ -n "$(dc_ids "")" ]; then
		dc ps 2>&1
		dc logs --no-color --tail 30 2>&1
		dc down -v >/dev/null 2>&1
	fi
	dk_stop
}
# A container's field (docker inspect -f).
dk_field() { docker inspect -f "$2" "$1"; }
not_running() { [ "$(dk_field "$1" '{{.State.Running}}')" = false ]; }
restarted_healthy() {
	[ "$(dk_field "$1" '{{.RestartCount}}')" -gt "$2" ] &&
	    [ "$(dk_field "$1" '{{.State.Health.Status}}')" = healthy ]
}

# hello_from N: N GETs of / through nginx, each 200 with the hello page;
# prints the replica (X-Upstream's last address) of each, one a line.
hello_from() {
	local h
	for _ in $(seq "$1"); do
		h=$(curl -s --max-time 10 -D - -o "$BATS_FILE_TMPDIR/body" "$URL/") ||
			return 1
		echo "$h" | head -1 | grep -q ' 200 ' || { echo "$h" >&2; return 1; }
		[ "$(cat "$BATS_FILE_TMPDIR/body")" = "hello world from another process" ] ||
			return 1
		echo "$h" | tr -d '\r' | sed -n 's/^X-Upstream: //ip' | sed 's/.*, //'
	done
}
