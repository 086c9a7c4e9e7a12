#!/bin/sh
# make bench: every bench/*.sh in turn; each prints a table with the peer it is compared against.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for b in "$here"/*.sh; do
	[ "$(basename "$b")" = run.sh ] && continue
	echo "== $(basename "$b" .sh)"
	sh "$b" || echo "(bench $(basename "$b") failed: $?)"
	echo
done
