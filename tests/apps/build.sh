#!/bin/sh
# build.sh DIR [VERSION...]: build the test applications into DIR:
#   good.so (VERSION "dev"), good-VERSION.so for each VERSION given,
#   noabi.so, wrongabi.so, initfail.so, diesinit.so, and notso.so (a
#   text file, not a shared object).
# CFLAGS_APP: how to find pipepool.h (default: the source tree's;
# an installed one: CFLAGS_APP="$(pkg-config --cflags pipepool)").
set -eu
[ $# -ge 1 ] || { echo "usage: tests/apps/build.sh DIR [VERSION...]" >&2; exit 64; }
src=$(cd "$(dirname "$0")" && pwd)
out=$1
shift
mkdir -p "$out"
CC=${CC:-cc}
CFLAGS_APP=${CFLAGS_APP:--I$src/../../worker/app}
so() {	# so OUT SRC [FLAGS...]
	o=$1 s=$2
	shift 2
	$CC -shared -fPIC -O2 -std=c11 -Wall -Wextra -Werror $CFLAGS_APP "$@" \
	    -o "$out/$o.tmp" "$src/$s"
	mv "$out/$o.tmp" "$out/$o"	# by rename, as a deploy must
}
so good.so good.c
for v in "$@"; do
	so "good-$v.so" good.c "-DVERSION=\"$v\""
done
for b in noabi wrongabi initfail diesinit; do
	so "$b.so" "$b.c"
done
echo "this is not a shared object" >"$out/notso.so"
