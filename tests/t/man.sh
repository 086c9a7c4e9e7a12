#!/bin/sh
# Every program has a man page, clean under mandoc -Tlint, and its --help names every option of the SYNOPSIS.
. "$MEDMOE_TOP/tests/lib.sh"
for src in "$MEDMOE_TOP"/tools/*.c; do
	prog=$(basename "$src" .c)
	page=$MEDMOE_TOP/man/$prog.1
	ok "$prog has a man page" "test -f $page"
	ok "$prog.1 is clean under mandoc -Tlint" "test -z \"\$(mandoc -Tlint -Wwarning $page 2>&1)\""
	ok "$prog --help exits 0 and names every SYNOPSIS option" "
		$prog --help > help.txt &&
		sed -n '/^\.Sh SYNOPSIS/,/^\.Sh/p' $page | grep -o 'Fl -[a-z0-9-]*' | sed 's/^Fl //' | sort -u > opts &&
		missing=\$(while read -r opt; do grep -q -- \"\$opt\" help.txt || echo \$opt; done < opts) &&
		test -z \"\$missing\" || { echo \"missing from --help: \$missing\"; false; }"
done
done_testing
