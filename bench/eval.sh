#!/bin/sh
# eval-exam --mode loglik vs transformers and lm-evaluation-harness on CPU: the same checkpoint (a random Qwen3 from
# init-base with Qwen3's real tokenizer), the same exam prompts (MedQA-USMLE dev, 0-shot), the same token ids, same
# machine, one run.  eval-exam packs questions into 2048-token forwards; transformers runs one question per forward
# (batch 1, no padding to waste); lm-eval's HFLM (batch 1) one forward per option group, as for its own tasks.
# Then --mode generate on the first 30 of those questions, 32 new tokens, against transformers' greedy loop with
# its KV cache (batch 1): eval-exam one question at a time (--gen-batch 1) and 16 at a time (the default).
set -eu
MEDMOE_TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${MEDMOE_BIN:=$MEDMOE_TOP/bin}" "${MEDMOE_SHARED:=$MEDMOE_TOP/../shared}"
QWEN=$MEDMOE_SHARED/tokenizers/qwen3/tokenizer.json
EXAM=$MEDMOE_SHARED/data/medqa/data_clean/questions/US/dev.jsonl
if [ ! -f "$QWEN" ] || [ ! -f "$EXAM" ]; then
	echo "SKIP: MEDMOE_SHARED=$MEDMOE_SHARED has no Qwen3 tokenizer or MedQA"
	exit 0
fi
# MEDMOE_BENCH_PY: a Python that already has torch, transformers and lm_eval (else bench/venv is made with them)
if [ -n "${MEDMOE_BENCH_PY:-}" ]; then
	PY=$MEDMOE_BENCH_PY
else
	. "$MEDMOE_TOP/bench/venv.sh"
	bench_venv torch transformers safetensors lm_eval accelerate
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
set -- $("$PY" "$MEDMOE_TOP/bench/eval_lm_eval.py" "$work/ckpt" "$work/exam.jsonl" "$work/lmeval.jsonl" 2>/dev/null)
le_qps=$1 le_s=$2
"$MEDMOE_BIN/eval-exam" -q --base "$work/ckpt" --limit $questions -o "$work/pred.mpk" "$work/all.mpk"   # warm-up
start=$(date +%s.%N)
OMP_NUM_THREADS=$threads "$MEDMOE_BIN/eval-exam" -q --base "$work/ckpt" --limit $questions -o "$work/pred.mpk" \
	"$work/all.mpk"
end=$(date +%s.%N)
"$MEDMOE_BIN/stream2json" -N "$work/pred.mpk" | jq -c '{id, scores}' > "$work/ours.jsonl"
# the largest score difference against each peer, and the questions whose argmax differs, as a check that all
# computed the same thing
maxd() {
	jq -n --slurpfile a "$work/ours.jsonl" --slurpfile b "$1" \
		'[range(0; $a | length) as $i | range(0; $a[$i].scores | length) as $k |
		  ($a[$i].scores[$k] - $b[$i].scores[$k]) | fabs] | max'
}
argmax_diff() {
	jq -n --slurpfile a "$work/ours.jsonl" --slurpfile b "$1" \
		'def am: . as $s | [range(0; $s | length)] | max_by($s[.]);
		 [range(0; $a | length) as $i | select(($a[$i].scores | am) != ($b[$i].scores | am))] | length'
}
hf_d=$(maxd "$work/peer.jsonl") le_d=$(maxd "$work/lmeval.jsonl")
hf_a=$(argmax_diff "$work/peer.jsonl") le_a=$(argmax_diff "$work/lmeval.jsonl")
printf '%-38s %12s %10s %14s %12s %8s\n' implementation "questions/s" "s" "max |Δscore|" "Δprediction" ratio
awk -v a="$hf_qps" -v as="$hf_s" -v l="$le_qps" -v ls="$le_s" -v s="$start" -v e="$end" -v n=$questions \
	-v hd="$hf_d" -v ld="$le_d" -v ha="$hf_a" -v la="$le_a" 'BEGIN {
	b = n / (e - s)
	printf "%-38s %12.2f %10.2f %14.2e %12d %8s\n", "transformers (torch, batch 1)", a, as, hd, ha, "1.00"
	printf "%-38s %12.2f %10.2f %14.2e %12d %8.2f\n", "lm-evaluation-harness (HFLM, batch 1)", l, ls, ld, la, l / a
	printf "%-38s %12.2f %10.2f %14s %12s %8.2f\n", "medmoe eval-exam (packed 2048)", b, e - s, "-", "-", b / a }'

# --- generate mode ---
# Besides the wall clock, the CPU seconds per question (all threads; eval-exam's include loading the model and
# the tokenizer, the peer's only its loop): on a machine shared with other work they move less.
gen_q=30 gen_new=32
head -n $gen_q "$work/exam.jsonl" > "$work/gen.jsonl"
set -- $("$PY" "$MEDMOE_TOP/bench/eval_peer.py" --generate $gen_new "$work/ckpt" "$work/gen.jsonl" \
	"$work/peer_gen.jsonl" 2>/dev/null)
hfg_qps=$1 hfg_s=$2 hfg_cpu=$3
echo
echo "generate: the first $gen_q questions, $gen_new new tokens at most (stop at a special token), greedy"
printf '%-44s %12s %10s %14s %8s %8s\n' implementation "questions/s" "s" "CPU s/question" "Δtext" ratio
awk -v q="$hfg_qps" -v s="$hfg_s" -v c="$hfg_cpu" -v n=$gen_q 'BEGIN {
	printf "%-44s %12.2f %10.2f %14.3f %8s %8s\n", "transformers (greedy loop, KV cache, batch 1)", q, s, c / n,
		"-", "1.00" }'
for b in 1 16; do
	"$MEDMOE_BIN/eval-exam" -q --base "$work/ckpt" --mode generate --max-new-tokens $gen_new --limit $gen_q \
		--gen-batch $b -o "$work/gen.mpk" "$work/all.mpk"   # warm-up
	start=$(date +%s.%N)
	cpu=$( (OMP_NUM_THREADS=$threads "$MEDMOE_BIN/eval-exam" -q --base "$work/ckpt" --mode generate \
		--max-new-tokens $gen_new --limit $gen_q --gen-batch $b -o "$work/gen$b.mpk" "$work/all.mpk"; times) |
		awk 'NR == 2 { split($1, u, /[ms]/); split($2, y, /[ms]/); print u[1] * 60 + u[2] + y[1] * 60 + y[2] }')
	end=$(date +%s.%N)
	"$MEDMOE_BIN/stream2json" -N "$work/gen$b.mpk" | jq -c '{id, generated}' > "$work/ours_gen$b.jsonl"
	# questions whose text differs from transformers' (a near-tie argmax of the random model can flip)
	dt=$(jq -n --slurpfile a "$work/ours_gen$b.jsonl" --slurpfile b "$work/peer_gen.jsonl" \
		'[range(0; $a | length) as $i | select($a[$i].generated != $b[$i].generated)] | length')
	awk -v a="$hfg_qps" -v s="$start" -v e="$end" -v c="$cpu" -v n=$gen_q -v d="$dt" -v b=$b 'BEGIN {
		q = n / (e - s)
		printf "%-44s %12.2f %10.2f %14.3f %8d %8.2f\n", "medmoe eval-exam --gen-batch " b, q, e - s, c / n, d,
			q / a }'
done
cmp -s "$work/gen1.mpk" "$work/gen16.mpk" && echo "(--gen-batch 1 and 16: the same predictions, byte for byte)" ||
	echo "(--gen-batch 1 and 16: the predictions DIFFER)"
