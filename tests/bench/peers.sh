#!/bin/sh
# tests/bench/peers.sh - the bench-only install step (`make bench` runs it
# before tests/bench/run.sh): the servers pipepool is compared with.
# `make test` never needs them.  As root it apt-get installs the missing
# ones; otherwise it prints the line to run.  Either way it exits 0: a peer
# that is not there is skipped by run.sh, whose report says so.
set -eu
# gunicorn, uWSGI (+ its python3 plugin): the WSGI comparison (apps.sh);
# php-fpm and fcgiwrap: the hello comparison points of run.sh.
PKGS="gunicorn python3-gunicorn uwsgi-core uwsgi-plugin-python3 php8.2-fpm \
fcgiwrap"
# shellcheck disable=SC2086
missing=$(sh "$(dirname "$0")/../deps.sh" --missing $PKGS)
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "bench: these peers are not installed and will be skipped; to" \
	    "measure them, run:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 0
fi
echo "bench: installing peers:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! { apt-get update -qq >/dev/null &&
    apt-get install -y -qq --no-install-recommends $missing >/dev/null; }; then
	echo "bench: WARNING: could not install$missing; run.sh skips them" >&2
	exit 0
fi
# Their packages may start system services of their own; the bench starts
# its own instances, so stop those if they came up.
if command -v service >/dev/null 2>&1; then
	for s in php8.2-fpm fcgiwrap; do
		service "$s" stop >/dev/null 2>&1 || true
	done
fi
exit 0
