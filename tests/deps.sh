#!/bin/sh
# Install the Debian packages that building, running and testing pipepool
# need.  As root it runs apt-get; otherwise it prints the one line to run.
set -eu
# libfcgi before Debian's 2.4.2-2+deb12u1 has CVE-2025-23016 (integer
# overflow in its param parser): refuse to build against it.
FCGI_FIXED=2.4.2-2+deb12u1
if [ "${1:-}" = --check-libfcgi ]; then
	v=$(dpkg-query -W -f='${Version}' libfcgi0ldbl 2>/dev/null || true)
	if [ -z "$v" ]; then
		echo "warning: cannot tell the libfcgi version (no dpkg record)" >&2
		exit 0
	fi
	if dpkg --compare-versions "$v" lt "$FCGI_FIXED"; then
		echo "libfcgi $v has CVE-2025-23016; need $FCGI_FIXED or later" \
		    "(apt-get install libfcgi0ldbl libfcgi-dev)" >&2
		exit 1
	fi
	exit 0
fi
# The packages of "$@" that are not installed, on one line (for
# tests/bench/peers.sh too: `sh tests/deps.sh --missing PKG...`).
missing_of() {
	m=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q 'install ok installed' || m="$m $p"
	done
	echo "$m"
}
if [ "${1:-}" = --missing ]; then
	shift
	missing_of "$@"
	exit 0
fi
PKGS="build-essential pkg-config libfcgi-dev libinih-dev libsqlite3-dev \
libpq-dev postgresql-15 nginx-light bats spawn-fcgi curl wrk procps psmisc libclang-rt-14-dev \
clang valgrind python3 \
prometheus chromium fonts-dejavu-core docker-compose libfcgi-bin systemd \
man-db groff-base git cgit docker.io debootstrap gettext-base"
# shellcheck disable=SC2086
missing=$(missing_of $PKGS)
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "pipepool needs these Debian packages; run:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian's nginx package may start its own server on port 80, and its
# postgresql package a cluster on 5432; we start ours per test
# (tests/tools/pg.sh), so stop those if they came up.
if command -v service >/dev/null 2>&1; then
	service nginx stop >/dev/null 2>&1 || true
	service postgresql stop >/dev/null 2>&1 || true
fi
