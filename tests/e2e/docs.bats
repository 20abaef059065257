#!/usr/bin/env bats
# The README as a map: its options table names every option --help prints,
# and its Files section names every source file of the tree (and no file
# that is gone), so a newcomer reading it first is not misled.

load helpers

setup() { pp_tmp; }
teardown() { rm -rf "$T"; }

@test "README's options table lists every option --help prints" {
	run "$PIPEPOOL_BIN" --help
	[ "$status" -eq 0 ]
	local opts o missing=''
	opts=$(printf '%s\n' "$output" | grep -Eo '^  --[a-z-]+' | sed 's/^  //')
	[ -n "$opts" ]
	for o in $opts; do
		grep -Eq "^\| [^|]*\`$o( |\`)" "$REPO/README.md" ||
		    missing="$missing $o"
	done
	[ -z "$missing" ] || { echo "README's options table lacks:$missing"; false; }
}

@test "README's Files section names every source file, and only those" {
	local files f missing='' gone=''
	files=$(cd "$REPO" && git ls-files 'fcgi/*.c' 'worker/*.c' \
	    'worker/*/*.c' 2>/dev/null || (cd "$REPO" && ls fcgi/*.c \
	    worker/*.c worker/*/*.c))
	[ -n "$files" ]
	sed -n '/^## Files$/,/^## /p' "$REPO/README.md" >"$T/files.md"
	for f in $files; do
		grep -qF "$(basename "$f")\`" "$T/files.md" ||
		    missing="$missing $f"
	done
	for f in $(grep -Eo '`(fcgi|worker)/[a-z_/]+\.c`' "$T/files.md" |
	    tr -d '`'); do
		[ -e "$REPO/$f" ] || gone="$gone $f"
	done
	[ -z "$missing" ] || { echo "Files lacks:$missing"; false; }
	[ -z "$gone" ] || { echo "Files names files that are gone:$gone"; false; }
}
