#!/bin/sh
# eval-exam --mode loglik vs transformers on CPU: the same checkpoint (a random Qwen3 from init-base with Qwen3's
# real tokenizer), the same exam prompts (MedQA-USMLE dev, 0-shot), same machine, one run.  eval-exam packs
# questions into 2048-token forwards; transformers runs one question per forward (batch 1, no padding to waste).
set -eu
MEDMOE_TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${MEDMOE_BIN:=$MEDMOE_TOP/bin}" "${MEDMOE_SHARED:=$MEDMOE_TOP/../shared}"
QWEN=$MEDMOE_SHARED/tokenizers/qwen3/tokenizer.json
EXAM=$MEDMOE_SHARED/data/medqa/data_clean/questions/US/dev.jsonl
if [ ! -f "$QWEN" ] || [ ! -f "$EXAM" ]; then
	echo "SKIP: MEDMOE_SHARED=$MEDMOE_SHARED has no Qwen3 tokenizer or MedQA"
	exit 0
fi
# MEDMOE_BENCH_PY: a Python that already has torch and transformers (else bench/venv is made with them)
if [ -n "${MEDMOE_BENCH_PY:-}" ]; then
	PY=$MEDMOE_BENCH_PY
else
	. "$MEDMOE_TOP/bench/venv.sh"
	bench_venv torch transformers safetensors
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
layers=4 hidden=512 heads=8 kv=2 ffn=1376 questions=200
"$MEDMOE_BIN/init-base" --arch qwen3 --layers $layers --hidden $hidden --heads $heads --kv-heads $kv --ffn $ffn \
	--seed 1 --tokenizer "$QWEN" -o "$work/ckpt"
"$MEDMOE_BIN/tokenize" -q --exam medqa --tokenizer "$work/ckpt" -o "$work/all.mpk" "$EXAM"
"$MEDMOE_BIN/stream2json" -N "$work/all.mpk" | head -n $questions > "$work/exam.jsonl"
tokens=$(jq '.prompt | length' "$work/exam.jsonl" | awk '{ s += $1 } END { print s }')
threads=$(nproc)
# As bench/model_forward.sh: OpenBLAS kernels from the CPU flags; passive OpenMP waiting for both sides.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
	if grep -qw avx512f /proc/cpuinfo; then OPENBLAS_CORETYPE=SkylakeX
	elif grep -qw avx2 /proc/cpuinfo; then OPENBLAS_CORETYPE=Haswell; fi
	[ -n "${OPENBLAS_CORETYPE:-}" ] && export OPENBLAS_CORETYPE
fi
: "${OMP_WAIT_POLICY:=passive}"; export OMP_WAIT_POLICY
echo "model: qwen3, $layers layers, hidden $hidden, $heads heads / $kv kv, ffn $ffn, vocab $(jq .vocab_size "$work/ckpt/config.json") (Qwen3 tokenizer)," \
	"fp32; $questions MedQA-USMLE dev questions, $tokens prompt tokens; $threads threads;" \
	"OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
set -- $("$PY" "$MEDMOE_TOP/bench/eval_peer.py" "$work/ckpt" "$work/exam.jsonl" "$work/peer.jsonl" 2>/dev/null)
hf_qps=$1 hf_s=$2
"$MEDMOE_BIN/eval-exam" -q --base "$work/ckpt" --limit $questions -o "$work/pred.mpk" "$work/all.mpk"   # warm-up
start=$(date +%s.%N)
OMP_NUM_THREADS=$threads "$MEDMOE_BIN/eval-exam" -q --base "$work/ckpt" --limit $questions -o "$work/pred.mpk" \
	"$work/all.mpk"
end=$(date +%s.%N)
"$MEDMOE_BIN/stream2json" -N "$work/pred.mpk" | jq -c '{id, scores}' > "$work/ours.jsonl"
# the largest score difference between the two, as a check that both computed the same thing
maxd=$(jq -n --slurpfile a "$work/ours.jsonl" --slurpfile b "$work/peer.jsonl" \
	'[range(0; $a | length) as $i | range(0; $a[$i].scores | length) as $k |
	  ($a[$i].scores[$k] - $b[$i].scores[$k]) | fabs] | max')
printf '%-34s %12s %10s %14s %8s\n' implementation "questions/s" "s" "max |Δscore|" ratio
awk -v a="$hf_qps" -v as="$hf_s" -v s="$start" -v e="$end" -v n=$questions -v d="$maxd" 'BEGIN {
	b = n / (e - s)
	printf "%-34s %12.2f %10.2f %14s %8s\n", "transformers (torch, batch 1)", a, as, "-", "1.00"
	printf "%-34s %12.2f %10.2f %14.2e %8.2f\n", "medmoe eval-exam (packed 2048)", b, e - s, d, b / a }'
