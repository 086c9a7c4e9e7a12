#!/bin/sh
# The one test runner: every cmocka unit binary (TAP output) and every program test script
# tests/t/*.sh (TAP, git t/ style), run two at a time.  Ends with "N passed, N failed, N skipped".
# Environment: MEDMOE_BIN (programs), MEDMOE_UNIT (unit binaries), MEDMOE_SHARED (default ../shared).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
: "${MEDMOE_BIN:=$top/bin}" "${MEDMOE_UNIT:=$top/build/tests}" "${MEDMOE_BUILD:=$top/build}"
: "${MEDMOE_SHARED:=$top/../shared}"
export MEDMOE_BIN MEDMOE_UNIT MEDMOE_SHARED MEDMOE_TOP="$top"
# Two test jobs share the two cores, so OpenMP threads must sleep, not spin, while they wait: spinning
# threads of one job starve the other (measured: a training step 5x slower with the default policy).
: "${OMP_WAIT_POLICY:=passive}"
export OMP_WAIT_POLICY
[ -d "$MEDMOE_SHARED" ] && MEDMOE_SHARED=$(cd "$MEDMOE_SHARED" && pwd)
logdir="$MEDMOE_BUILD/test-logs"
rm -rf "$logdir"; mkdir -p "$logdir"

if [ ! -d "$MEDMOE_SHARED" ]; then
	echo "#"
	echo "# WARNING: MEDMOE_SHARED=$MEDMOE_SHARED is absent: every test on the real tokenizers and data SKIPS"
	echo "#"
fi

# One job per line: "name<TAB>command".
jobs="$logdir/jobs"
: > "$jobs"
for b in "$MEDMOE_UNIT"/test_*; do
	[ -x "$b" ] || continue
	printf 'unit/%s\tCMOCKA_MESSAGE_OUTPUT=TAP %s\n' "$(basename "$b")" "$b" >> "$jobs"
done
for t in "$top"/tests/t/*.sh; do
	[ -f "$t" ] || continue
	printf 't/%s\tsh %s\n' "$(basename "$t" .sh)" "$t" >> "$jobs"
done

run_one() {
	name=$1; shift
	log="$logdir/$(echo "$name" | tr / _).log"
	( eval "$*" ) > "$log" 2>&1
	echo $? > "$log.rc"
}

# Two at a time: the machines have two cores.
n_par=${MEDMOE_TEST_JOBS:-2}
i=0
while IFS="$(printf '\t')" read -r name cmd; do
	run_one "$name" "$cmd" &
	i=$((i + 1))
	if [ $((i % n_par)) -eq 0 ]; then wait; fi
done < "$jobs"
wait

passed=0; failed=0; skipped=0
while IFS="$(printf '\t')" read -r name cmd; do
	log="$logdir/$(echo "$name" | tr / _).log"
	rc=$(cat "$log.rc")
	p=$(grep -cE '^ok ' "$log" | head -1); p=${p:-0}
	# cmocka's skip() prints "not ok N # SKIP": a skip, not a failure.
	s=$(grep -cE '^(not )?ok .*# *(SKIP|skip)' "$log"); s=${s:-0}
	f=$(grep -E '^not ok ' "$log" | grep -cvE '# *(SKIP|skip)'); f=${f:-0}
	s_ok=$(grep -cE '^ok .*# *(SKIP|skip)' "$log"); s_ok=${s_ok:-0}
	plan_skip=$(grep -cE '^1\.\.0 # *(SKIP|skip)' "$log")
	p=$((p - s_ok))
	if [ "$plan_skip" -gt 0 ]; then
		skipped=$((skipped + 1))
		echo "SKIP $name: $(grep -E '^1\.\.0' "$log" | head -1 | sed 's/^1\.\.0 # *//')"
		continue
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1  # a crash or a bad exit counts as a failure even without a "not ok" line
		echo "FAIL $name: exited $rc"
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	if [ "$f" -gt 0 ]; then
		echo "FAIL $name ($f failed, $p passed) — log: $log"
		grep -E '^not ok|^#' "$log" | head -40 | sed 's/^/    /'
	else
		if [ "$s" -gt 0 ]; then echo "ok   $name ($p passed, $s skipped)"; else echo "ok   $name ($p passed)"; fi
	fi
	grep -E '^(not )?ok .*# *(SKIP|skip)' "$log" | sed 's/^/    /'
done < "$jobs"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
