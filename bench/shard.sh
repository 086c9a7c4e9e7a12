#!/bin/sh
# bench/shard.sh — packing throughput (tokens/s) and peak memory (/usr/bin/time -v) of shard, on a stream much
# larger than one shard; mix-tasks and shard --verify on the same data for scale.  Prints one table.
#
#   bench/shard.sh [DOCS]      DOCS documents of 1..1000 tokens (default 200000: about 100M tokens, 500 MB)
# Environment: MEDMOE_BIN (programs; default bin/), BENCH_DIR (scratch; default build/bench-shard).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
: "${MEDMOE_BIN:=$top/bin}" "${BENCH_DIR:=$top/build/bench-shard}"
docs=${1:-200000}
PATH="$MEDMOE_BIN:$PATH"
[ -x /usr/bin/time ] || { echo "bench/shard.sh: /usr/bin/time is missing (Debian package time)" >&2; exit 1; }
rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"; cd "$BENCH_DIR"
cc -std=c11 -O2 -D_GNU_SOURCE -o mktokens "$top/tests/helpers/mktokens.c" $(pkg-config --cflags --libs msgpack)

./mktokens -t qa -n $((docs * 3 / 4)) -l 1 -L 1000 -s 1 > qa.mpk
./mktokens -t dialog -n $((docs / 4)) -l 1 -L 1000 -s 2 > dialog.mpk
mix-tasks -q --proportional --seed 1 -o input.mpk qa.mpk dialog.mpk
tokens=$(stream2json -H input.mpk | grep -o '"tokens":[0-9]*' | sed 's/.*://' | awk '{ n += $1 } END { print n }')
bytes=$(wc -c < input.mpk)

# run NAME CMD...: time one command, append "name seconds peak_kib" to results.
: > results
run() {
	name=$1; shift
	/usr/bin/time -v -o time.txt "$@" 2> /dev/null
	secs=$(grep "Elapsed (wall clock)" time.txt | awk '{ print $NF }' | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
	kib=$(grep "Maximum resident set size" time.txt | awk '{ print $NF }')
	echo "$name $secs $kib" >> results
}
run "mix-tasks --temperature 2" mix-tasks -q --temperature 2 --seed 3 -o mixed.mpk qa.mpk dialog.mpk
run "shard --seq-len 2048" shard -q --seq-len 2048 --valid 0.01 --shard-tokens 4194304 -o packed input.mpk
run "shard --seq-len 2048 (stdin)" sh -c 'shard -q --seq-len 2048 --valid 0.01 --shard-tokens 4194304 -o piped < input.mpk'
run "shard --seq-len 2048 --no-pack" shard -q --seq-len 2048 --no-pack --shard-tokens 4194304 -o nopack input.mpk
run "shard --seq-len 2048 --shuffle" shard -q --seq-len 2048 --valid 0.01 --shard-tokens 4194304 --shuffle 1 -o shuffled input.mpk
run "shard --verify" shard -q --verify packed
shards=$(ls packed/*.mpk | wc -l)
eff=$(grep -o '"efficiency": [0-9.]*' packed/manifest.json | head -1 | sed 's/.*: //')

echo "shard benchmark: $tokens tokens in $docs documents ($((bytes / 1048576)) MiB stream), $shards shard files of 4M tokens"
echo "packing efficiency (non-pad fraction) at seq_len 2048: $eff"
printf '%-34s %10s %14s %12s\n' "step" "seconds" "Mtokens/s" "peak MiB"
while read -r line; do
	name=${line% * *}; rest=${line#"$name "}; secs=${rest% *}; kib=${rest#* }
	awk -v n="$name" -v s="$secs" -v k="$kib" -v t="$tokens" \
		'BEGIN { printf "%-34s %10.2f %14.2f %12.1f\n", n, s, (s > 0 ? t / s / 1e6 : 0), k / 1024 }'
done < results
cd "$top" && rm -rf "$BENCH_DIR"
