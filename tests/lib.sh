# tests/lib.sh — TAP helpers for program tests (sourced by tests/t/*.sh), in the manner of git's t/test-lib.sh.
#
#   . "$MEDMOE_TOP/tests/lib.sh"
#   need_shared                     # skip the whole script, loudly, when ../shared is absent
#   ok "what it checks" 'cmd && cmd'
#   ok_fails 65 "bad input" 'cmd'  # expects this exit status
#   done_testing
#
# Each script runs in its own scratch directory ($SCRATCH) with the programs first on PATH.
set -u
: "${MEDMOE_TOP:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${MEDMOE_BIN:=$MEDMOE_TOP/bin}"
: "${MEDMOE_SHARED:=$MEDMOE_TOP/../shared}"
PATH="$MEDMOE_BIN:$PATH"
export PATH
SHARED=$MEDMOE_SHARED
FIXTURES=$MEDMOE_TOP/tests/fixtures
test_name=$(basename "$0" .sh)
SCRATCH="${MEDMOE_BUILD:-$MEDMOE_TOP/build}/trash/$test_name"
rm -rf "$SCRATCH"; mkdir -p "$SCRATCH"; cd "$SCRATCH" || exit 1
n_test=0
n_fail=0

need_shared() {
	if [ ! -d "$SHARED/tokenizers" ] || [ ! -d "$SHARED/data" ]; then
		echo "1..0 # SKIP MEDMOE_SHARED=$SHARED is absent: no real tokenizers or data"
		exit 0
	fi
}

ok() {
	n_test=$((n_test + 1))
	desc=$1; shift
	if ( eval "$*" ) > "out.$n_test" 2> "err.$n_test"; then
		echo "ok $n_test - $desc"
	else
		rc=$?
		n_fail=$((n_fail + 1))
		echo "not ok $n_test - $desc (exit $rc)"
		sed 's/^/# out: /' "out.$n_test" | head -20
		sed 's/^/# err: /' "err.$n_test" | head -20
	fi
}

# ok_fails STATUS DESC CMD: the command must exit with STATUS and print a one-line error.
ok_fails() {
	n_test=$((n_test + 1))
	want=$1; desc=$2; shift 2
	( eval "$*" ) > "out.$n_test" 2> "err.$n_test"
	rc=$?
	if [ "$rc" -eq "$want" ] && [ -s "err.$n_test" ]; then
		echo "ok $n_test - $desc"
		sed 's/^/# /' "err.$n_test" | head -3
	else
		n_fail=$((n_fail + 1))
		echo "not ok $n_test - $desc (exit $rc, wanted $want)"
		sed 's/^/# err: /' "err.$n_test" | head -20
	fi
}

skip() {
	n_test=$((n_test + 1))
	echo "ok $n_test - $1 # SKIP $2"
}

done_testing() {
	echo "1..$n_test"
	[ "$n_fail" -eq 0 ]
}
