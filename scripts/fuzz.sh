#!/bin/sh
# fuzz.sh — run libFuzzer targets one after another (make fuzz FUZZ_SECONDS=N [FUZZ_TARGETS="stream config"]).
#
# Each target runs FUZZ_SECONDS of CPU time in all, in rounds of at most FUZZ_ROUND seconds (default 60): the library
# reports bad input by dying, which a target turns into a longjmp, so whatever the dying code had allocated stays
# allocated; a fresh process per round keeps that from looking like a memory leak or an out-of-memory finding.
# The working corpus lives in $FUZZ_BUILD/corpus/NAME, seeded from tests/fuzz/corpus/NAME and
# tests/fuzz/regress/NAME; findings go to $FUZZ_BUILD/artifacts/NAME/ (crash-*, timeout-*, oom-*).  One process at
# a time, under nice: the machines are shared.  A summary table goes to stdout and $FUZZ_BUILD/results.tsv:
# runs (inputs tried), seconds (wall), CPU seconds, inputs refused cleanly (exit 65 in a program) and accepted,
# crashes, hangs (timeouts), out-of-memory; the exit status is 1 when any target found something.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
: "${FUZZ_BUILD:=$top/build-fuzz}" "${FUZZ_SECONDS:=60}" "${FUZZ_ROUND:=60}" "${FUZZ_MAX_LEN:=65536}"
case $FUZZ_BUILD in /*) ;; *) FUZZ_BUILD=$top/$FUZZ_BUILD ;; esac
results=$FUZZ_BUILD/results.tsv
# leaks at exit are not findings here (see above); the rest of ASan stays on
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
export ASAN_OPTIONS
printf 'target\truns\tseconds\tcpu_seconds\trefused\taccepted\tcrashes\thangs\tooms\n' > "$results"
found=0
for name in "$@"; do
	bin=$FUZZ_BUILD/fuzz_$name
	corpus=$FUZZ_BUILD/corpus/$name
	art=$FUZZ_BUILD/artifacts/$name
	log=$FUZZ_BUILD/logs/$name.log
	mkdir -p "$corpus" "$art" "$(dirname "$log")"
	: > "$log"
	seeds=""
	for d in "$top/tests/fuzz/corpus/$name" "$top/tests/fuzz/regress/$name"; do
		[ -d "$d" ] && seeds="$seeds $d"
	done
	[ -x "$bin" ] || { echo "fuzz.sh: $bin is not built" >&2; exit 2; }
	runs=0 start=$(date +%s) cpus=0
	cpu=$FUZZ_BUILD/logs/$name.cpu
	: > "$cpu"
	# FUZZ_SECONDS of CPU time (the machines are shared: a niced process gets less than the wall clock), at most
	# FUZZ_WALL_FACTOR (default 4) times as much wall time
	while [ "$cpus" -lt "$FUZZ_SECONDS" ] && [ $(( $(date +%s) - start )) -lt $((${FUZZ_WALL_FACTOR:-4} * FUZZ_SECONDS)) ]; do
		t=$((FUZZ_SECONDS - cpus))
		[ "$t" -gt "$FUZZ_ROUND" ] && t=$FUZZ_ROUND
		[ "$t" -lt 5 ] && t=5
		# -malloc_limit_mb: one allocation over 2 GB is a finding (a size taken from the input unchecked);
		# -rss_limit_mb higher than that, for the allocations a longjmp leaves behind within a round.
		before=$(grep -c '^stat::number_of_executed_units' "$log")
		# shellcheck disable=SC2086
		/usr/bin/time -a -o "$cpu" -f "%U %S" nice -n 10 "$bin" -max_total_time="$t" -timeout=10 -malloc_limit_mb=2048 -rss_limit_mb=4096 \
			-max_len="$FUZZ_MAX_LEN" -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$art/" \
			"$corpus" $seeds >> "$log" 2>&1
		r=0
		[ "$(grep -c '^stat::number_of_executed_units' "$log")" -gt "$before" ] &&
			r=$(grep -E '^stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}')
		runs=$((runs + ${r:-0}))
		cpus=$(awk '/^[0-9.]+ [0-9.]+$/ { s += $1 + $2 } END { printf "%d", s }' "$cpu")
		# a finding stops the target: libFuzzer stops at it, and it stays in the corpus (fix it, add it to
		# tests/fuzz/regress/NAME, run again)
		[ -n "$(find "$art" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'malloc-limit-*')" ] && break
	done
	secs=$(( $(date +%s) - start ))
	# the targets count the inputs that ran to the end and those refused (fuzz-counts lines, one per round)
	counts=$(awk '/^fuzz-counts:/ { i += $3; r += $5 } END { printf "%d %d", i, r }' "$log")
	refused=${counts#* } accepted=$((${counts% *} - ${counts#* }))
	crashes=$(find "$art" -name 'crash-*' | wc -l)
	hangs=$(find "$art" -name 'timeout-*' | wc -l)
	ooms=$(find "$art" -name 'oom-*' -o -name 'malloc-limit-*' | wc -l)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$runs" "$secs" "$cpus" "$refused" "$accepted" "$crashes" "$hangs" \
		"$ooms" >> "$results"
	[ $((crashes + hangs + ooms)) -gt 0 ] && found=1
done
column -t -s "$(printf '\t')" "$results"
[ "$found" -eq 0 ]
