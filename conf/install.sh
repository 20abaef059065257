#!/bin/sh
# install.sh: what `make install` and `make uninstall` run.
#
#   sh conf/install.sh install      # or: make install
#   sh conf/install.sh uninstall    # or: make uninstall
#
# PREFIX (default /usr/local) and DESTDIR (default empty, for staging
# into a package root) come from the environment.  Installs exactly these
# files, and uninstall removes exactly those (and the folders it made, if
# they are left empty):
#   $DESTDIR$PREFIX/sbin/pipepool
#   $DESTDIR$PREFIX/share/man/man8/pipepool.8
#   $DESTDIR$PREFIX/share/doc/pipepool/pipepool.conf
#   $DESTDIR$PREFIX/share/doc/pipepool/nginx-cgi.conf  the --cgi nginx site
#   $DESTDIR$PREFIX/include/pipepool.h          the application interface
#   $DESTDIR$PREFIX/share/pkgconfig/pipepool.pc  pkg-config --cflags pipepool
#   $DESTDIR$PREFIX/share/pipepool/examples/*   conf/examples (--app, --exec)
# The .pc file names PREFIX, not DESTDIR: it is read where it is installed.
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
CGICONF=$DOCDIR/nginx-cgi.conf
HDR=$root/include/pipepool.h
PCDIR=$root/share/pkgconfig
PC=$PCDIR/pipepool.pc
EXDIR=$root/share/pipepool/examples
# What ships: the examples' sources, never what running them left (a
# __pycache__ from a test run).
EXAMPLES=$(cd conf/examples && find . -maxdepth 1 -type f \( -name '*.py' -o \
    -name '*.c' -o -name '*.md' \) | sed 's|^\./||' | sort)

case ${1:-} in
install)
	if [ ! -x build/rel/pipepool ]; then
		echo "install.sh: build/rel/pipepool is missing: run make first" >&2
		exit 1
	fi
	install -d "$root/sbin" "$root/share/man/man8" "$DOCDIR" \
	    "$root/include" "$PCDIR" "$EXDIR"
	install -m 0755 build/rel/pipepool "$BIN"
	install -m 0644 conf/pipepool.8 "$MAN"
	install -m 0644 conf/pipepool.conf "$DOC"
	install -m 0644 conf/nginx-cgi.conf "$CGICONF"
	install -m 0644 worker/app/pipepool.h "$HDR"
	version=$(sed -n 's/^#define PP_VERSION[[:space:]]*"\(.*\)"/\1/p' \
	    worker/options.h)
	abi=$(sed -n 's/^#define PIPEPOOL_ABI[[:space:]]*\([0-9]*\).*/\1/p' \
	    worker/app/pipepool.h)
	sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$version|" \
	    -e "s|@ABI@|$abi|g" conf/pipepool.pc.in >"$PC.tmp"
	chmod 0644 "$PC.tmp"
	mv "$PC.tmp" "$PC"
	for f in $EXAMPLES; do
		install -m 0644 "conf/examples/$f" "$EXDIR/$f"
	done
	echo "installed $BIN, $MAN, $DOC, $CGICONF, $HDR, $PC, $EXDIR/"
	;;
uninstall)
	rm -f "$BIN" "$MAN" "$DOC" "$CGICONF" "$HDR" "$PC"
	for f in $EXAMPLES; do
		rm -f "$EXDIR/$f"
	done
	for d in "$DOCDIR" "$PCDIR" "$EXDIR" "$root/share/pipepool" \
	    "$root/include"; do
		rmdir "$d" 2>/dev/null || true
	done
	echo "removed $BIN, $MAN, $DOC, $CGICONF, $HDR, $PC, $EXDIR/"
	;;
*)
	echo "usage: [PREFIX=/usr/local] [DESTDIR=] sh conf/install.sh install|uninstall" >&2
	exit 64
	;;
esac
