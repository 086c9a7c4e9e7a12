#!/bin/sh
# fuzz-regress: every fuzz target (tests/fuzz) replayed, without libFuzzer, on its committed seeds and on every
# input a fuzzing run ever found (tests/fuzz/regress/NAME): each must end in a clean refusal or a result, never a
# crash.  Under `make test SAN=1` the replay programs are built with ASan and UBSan, so a finding that comes back
# is a sanitizer report here.
. "$(dirname "$0")/../lib.sh"
OMP_NUM_THREADS=1
export OMP_NUM_THREADS
REPLAY=${MEDMOE_BUILD:-$MEDMOE_TOP/build}/fuzz
for src in "$MEDMOE_TOP"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c | sed 's/^fuzz_//')
	if [ ! -x "$REPLAY/replay_$name" ]; then
		skip "$name: seeds and regression inputs replayed" "$REPLAY/replay_$name not built (make test builds it)"
		continue
	fi
	dirs=""
	for d in corpus regress; do
		[ -d "$MEDMOE_TOP/tests/fuzz/$d/$name" ] && dirs="$dirs $MEDMOE_TOP/tests/fuzz/$d/$name"
	done
	ok "$name: seeds and regression inputs replayed" "\"$REPLAY/replay_$name\" $dirs"
done
done_testing
