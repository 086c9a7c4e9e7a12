#!/bin/sh
# The CPU model engine's packed forward (with loss) vs transformers on CPU: same checkpoint, same tokens,
# same documents, same machine, one run.  The checkpoint is a random LLaMA-shaped model from init-base.
set -eu
MEDMOE_TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${MEDMOE_BIN:=$MEDMOE_TOP/bin}" "${MEDMOE_BUILD:=$MEDMOE_TOP/build}"
. "$MEDMOE_TOP/bench/venv.sh"
bench_venv torch transformers safetensors
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# built by the Makefile, whose link line carries the CUDA libraries when the library holds the CUDA backend
make --no-print-directory -C "$MEDMOE_TOP" build/bench/model_forward > /dev/null
cp "$MEDMOE_TOP/build/bench/model_forward" "$work/model_forward"
layers=4 hidden=512 heads=8 kv=2 ffn=1376 vocab=32000 tokens=1024 docs=4 reps=3
"$MEDMOE_BIN/init-base" --arch llama --layers $layers --hidden $hidden --heads $heads --kv-heads $kv \
	--ffn $ffn --vocab $vocab --seed 1 -o "$work/ckpt"
threads=$(nproc)
# OpenBLAS misreads some virtual CPUs and falls back to SSE3 kernels (ops_cpu_check_blas warns about it); pick the
# kernels from the CPU flags, as torch does for itself.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
	if grep -qw avx512f /proc/cpuinfo; then OPENBLAS_CORETYPE=SkylakeX
	elif grep -qw avx2 /proc/cpuinfo; then OPENBLAS_CORETYPE=Haswell; fi
	[ -n "${OPENBLAS_CORETYPE:-}" ] && export OPENBLAS_CORETYPE
fi
echo "model: llama, $layers layers, hidden $hidden, $heads heads / $kv kv, ffn $ffn, vocab $vocab, fp32;" \
	"$tokens tokens in $docs documents; mean of $reps forwards after a warm-up; $threads threads;" \
	"OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-default}"
printf '%-34s %12s %12s %10s %8s\n' implementation "tokens/s" "s/forward" loss ratio
set -- $("$PY" "$MEDMOE_TOP/bench/model_forward_peer.py" "$work/ckpt" $tokens $docs $reps 2>/dev/null)
hf_tps=$1 hf_loss=$2 hf_s=$3
set -- $(OMP_NUM_THREADS=$threads "$work/model_forward" "$work/ckpt" $tokens $docs $reps)
awk -v a="$hf_tps" -v al="$hf_loss" -v as="$hf_s" -v b="$1" -v bl="$2" -v bs="$3" 'BEGIN {
	printf "%-34s %12.1f %12.4f %10.6f %8s\n", "transformers (torch, eager attn)", a, as, al, "1.00"
	printf "%-34s %12.1f %12.4f %10.6f %8.2f\n", "medmoe CPU engine (OpenBLAS)", b, bs, bl, b / a }'
