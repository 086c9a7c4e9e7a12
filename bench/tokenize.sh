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
printf '%-10s %-28s %10s %10s %8s\n' tokenizer implementation "MB/s" seconds ratio
for name in qwen3 mistral; do
	tj="$MEDMOE_SHARED/tokenizers/$name/tokenizer.json"
	hf=$("$PY" "$MEDMOE_TOP/bench/tokenize_peer.py" encode "$tj" "$work/texts.jsonl")
	start=$(date +%s.%N)
	"$MEDMOE_BIN/tokenize" -q --tokenizer "$tj" -o "$work/out.mpk" "$work/texts.jsonl"
	end=$(date +%s.%N)
	ours=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')
	awk -v b="$bytes" -v hf="$hf" -v ours="$ours" -v n="$name" -v t="$threads" 'BEGIN {
		printf "%-10s %-28s %10.2f %10.2f %8s\n", n, "HF tokenizers (" t " threads)", b/hf/1e6, hf, "1.00"
		printf "%-10s %-28s %10.2f %10.2f %8.2f\n", n, "medmoe tokenize (" t " thr)", b/ours/1e6, ours, hf/ours }'
done
echo "(MB of UTF-8 text: $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }'); medmoe time includes reading JSON and writing the stream;"
echo " HF time is encode_batch alone on texts already in memory)"
