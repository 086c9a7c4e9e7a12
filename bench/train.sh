#!/bin/sh
# Training throughput and peak memory on CPU: the engine's training step (forward, backward into the adapter,
# AdamW) vs PyTorch + PEFT on the same checkpoint, tokens and documents, one run: plain LoRA (r16 on all seven
# linears) and MING-MOE (LoRA r16 on attention, 8 experts r16 top-2 on the MLP; the same MoLoRA math in torch).
set -eu
MEDMOE_TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${MEDMOE_BIN:=$MEDMOE_TOP/bin}" "${MEDMOE_BUILD:=$MEDMOE_TOP/build}"
. "$MEDMOE_TOP/bench/venv.sh"
bench_venv torch transformers peft safetensors
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# built by the Makefile, whose link line carries the CUDA libraries when the library holds the CUDA backend
make --no-print-directory -C "$MEDMOE_TOP" build/bench/train > /dev/null
cp "$MEDMOE_TOP/build/bench/train" "$work/train"
layers=${BENCH_LAYERS:-4} hidden=${BENCH_HIDDEN:-512} heads=8 kv=2 ffn=${BENCH_FFN:-1376} vocab=32000
tokens=${BENCH_TOKENS:-1024} docs=4 reps=${BENCH_REPS:-5}
"$MEDMOE_BIN/init-base" --arch llama --layers $layers --hidden $hidden --heads $heads --kv-heads $kv \
	--ffn $ffn --vocab $vocab --seed 1 -o "$work/ckpt"
threads=$(nproc)
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
	if grep -qw avx512f /proc/cpuinfo; then OPENBLAS_CORETYPE=SkylakeX
	elif grep -qw avx2 /proc/cpuinfo; then OPENBLAS_CORETYPE=Haswell; fi
	[ -n "${OPENBLAS_CORETYPE:-}" ] && export OPENBLAS_CORETYPE
fi
echo "model: llama, $layers layers, hidden $hidden, $heads heads / $kv kv, ffn $ffn, vocab $vocab, fp32;" \
	"$tokens tokens in $docs documents; median of $reps training steps after a warm-up; $threads threads;" \
	"OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}"
printf '%-8s %-28s %10s %10s %10s %9s %7s\n' method implementation "tokens/s" "s/step" loss "peak MB" ratio
for method in lora mingmoe; do
	set -- $("$PY" "$MEDMOE_TOP/bench/train_peer.py" "$work/ckpt" $method $tokens $docs $reps 2>/dev/null)
	pt_tps=$1 pt_loss=$2 pt_s=$3 pt_mb=$4
	set -- $(OMP_NUM_THREADS=$threads "$work/train" "$work/ckpt" $method $tokens $docs $reps 2>/dev/null)
	awk -v m=$method -v a="$pt_tps" -v al="$pt_loss" -v as="$pt_s" -v am="$pt_mb" -v b="$1" -v bl="$2" -v bs="$3" \
	    -v bm="$4" 'BEGIN {
		printf "%-8s %-28s %10.1f %10.4f %10.6f %9.0f %7s\n", m, "PyTorch + PEFT", a, as, al, am, "1.00"
		printf "%-8s %-28s %10.1f %10.4f %10.6f %9.0f %7.2f\n", m, "medmoe CPU engine", b, bs, bl, bm, b / a }'
done
