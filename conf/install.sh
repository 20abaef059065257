#!/bin/sh
# install.sh: what `make install` and `make uninstall` run.
#
#   sh conf/install.sh install      # or: make install
#   sh conf/install.sh uninstall    # or: make uninstall
#
# PREFIX (default /usr/local) and DESTDIR (default empty, for staging
# into a package root) come from the environment.  Installs exactly three
# files, and uninstall removes exactly those (and the doc folder if it is
# left empty):
#   $DESTDIR$PREFIX/sbin/pipepool
#   $DESTDIR$PREFIX/share/man/man8/pipepool.8
#   $DESTDIR$PREFIX/share/doc/pipepool/pipepool.conf
# The systemd units and the nginx site in conf/ are for an administrator
# to copy into /etc (see their comments); nothing here touches /etc.
set -eu

cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
root=$DESTDIR$PREFIX
BIN=$root/sbin/pipepool
MAN=$root/share/man/man8/pipepool.8
DOCDIR=$root/share/doc/pipepool
DOC=$DOCDIR/pipepool.conf

case ${1:-} in
install)
	if [ ! -x build/rel/pipepool ]; then
		echo "install.sh: build/rel/pipepool is missing: run make first" >&2
		exit 1
	fi
	install -d "$root/sbin" "$root/share/man/man8" "$DOCDIR"
	install -m 0755 build/rel/pipepool "$BIN"
	install -m 0644 conf/pipepool.8 "$MAN"
	install -m 0644 conf/pipepool.conf "$DOC"
	echo "installed $BIN, $MAN, $DOC"
	;;
uninstall)
	rm -f "$BIN" "$MAN" "$DOC"
	rmdir "$DOCDIR" 2>/dev/null || true
	echo "removed $BIN, $MAN, $DOC"
	;;
*)
	echo "usage: [PREFIX=/usr/local] [DESTDIR=] sh conf/install.sh install|uninstall" >&2
	exit 64
	;;
esac
