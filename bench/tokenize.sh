#!/bin/sh
# tokenize vs Hugging Face tokenizers (PyPI), same texts, same machine, one run.
# The texts: every instruction corpus in ../shared/data as {"text"} lines (about 25 MB).
set -eu
MEDMOE_TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${MEDMOE_SHARED:=$MEDMOE_TOP/../shared}" "${MEDMOE_BIN:=$MEDMOE_TOP/bin}"
. "$MEDMOE_TOP/bench/venv.sh"
[ -d "$MEDMOE_SHARED/data" ] || { echo "bench tokenize: SKIP, no $MEDMOE_SHARED/data"; exit 0; }
bench_venv tokenizers
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$PY" "$MEDMOE_TOP/bench/tokenize_peer.py" texts "$MEDMOE_SHARED/data" "$work/texts.jsonl"
bytes=$("$PY" "$MEDMOE_TOP/bench/tokenize_peer.py" bytes "$work/texts.jsonl")
threads=$(nproc)
printf '%-10s %-34s %8s %8s %8s\n' tokenizer "implementation ($threads threads)" "MB/s" seconds ratio
for name in qwen3 mistral; do
	tj="$MEDMOE_SHARED/tokenizers/$name/tokenizer.json"
	set -- $("$PY" "$MEDMOE_TOP/bench/tokenize_peer.py" encode "$tj" "$work/texts.jsonl")
	hf=$1 hf_all=$2
	start=$(date +%s.%N)
	"$MEDMOE_BIN/tokenize" -q --tokenizer "$tj" -o "$work/out.mpk" "$work/texts.jsonl"
	end=$(date +%s.%N)
	ours=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')
	# start-up alone (loading tokenizer.json), from a one-record input
	echo '{"text":"x"}' > "$work/one.jsonl"
	start=$(date +%s.%N)
	"$MEDMOE_BIN/tokenize" -q --tokenizer "$tj" -o "$work/one.mpk" "$work/one.jsonl"
	end=$(date +%s.%N)
	load=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')
	awk -v b="$bytes" -v hf="$hf" -v all="$hf_all" -v ours="$ours" -v load="$load" -v n="$name" -v t="$threads" 'BEGIN {
		printf "%-10s %-34s %8.2f %8.2f\n", n, "HF tokenizers, encode_batch only", b/hf/1e6, hf
		printf "%-10s %-34s %8.2f %8.2f %8s\n", n, "HF tokenizers, end to end", b/all/1e6, all, "1.00"
		printf "%-10s %-34s %8.2f %8.2f %8.2f\n", n, "medmoe tokenize, end to end", b/ours/1e6, ours, all/ours
		printf "%-10s %-34s %8.2f %8.2f %8.2f\n", n, "medmoe, start-up excluded", b/(ours-load)/1e6, ours-load, hf/(ours-load) }'
done
echo "(MB of UTF-8 text: $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }'). End to end: load tokenizer.json, read the JSON lines,"
echo " encode (medmoe also writes the output stream). ratio: end to end vs HF end to end; start-up excluded (the"
echo " time of a one-record run subtracted) vs HF encode_batch only.)"
