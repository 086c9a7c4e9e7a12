#!/bin/sh
# Data parallelism (lib/dist.h).  On the CPU: train-experts on 1 rank against 2 (or more) ranks of mpirun on the
# same cores — tokens/s, scaling efficiency and the share of a step the gradient all-reduce takes — and the
# all-reduce itself (ours, summed in rank order, against MPI's own MPI_Allreduce) at adapter sizes.  With GPUs
# and NCCL in the build, the all-reduce through the NCCL path, one rank per GPU (N = 1 on one GPU); training
# on GPUs waits for the CUDA backend.
set -eu
MEDMOE_TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${MEDMOE_BIN:=$MEDMOE_TOP/bin}" "${MEDMOE_BUILD:=$MEDMOE_TOP/build}"
PATH=$MEDMOE_BIN:$PATH
flags=$(cat "$MEDMOE_BUILD/dist.flags" 2>/dev/null || true)
if ! command -v mpirun > /dev/null || ! echo "$flags" | grep -q MEDMOE_MPI; then
	echo "skipped: this build has no MPI (libopenmpi-dev, then rebuild)"
	exit 0
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
cores=$(nproc)
# the kernels OpenBLAS should pick on this CPU (as bench/train.sh; a hypervisor can hide the model from it)
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
	if grep -qw avx512f /proc/cpuinfo; then OPENBLAS_CORETYPE=SkylakeX
	elif grep -qw avx2 /proc/cpuinfo; then OPENBLAS_CORETYPE=Haswell; fi
	[ -n "${OPENBLAS_CORETYPE:-}" ] && export OPENBLAS_CORETYPE
fi
ranks=${BENCH_RANKS:-2}
steps=${BENCH_STEPS:-8}
cc -std=c11 -O2 -D_GNU_SOURCE -o "$work/mklearn" "$MEDMOE_TOP/tests/helpers/mklearn.c" $(pkg-config --cflags --libs msgpack)
# shellcheck disable=SC2086
cc -std=c11 -O2 -D_GNU_SOURCE -fopenmp -I"$MEDMOE_TOP/lib" $flags -o "$work/allreduce" "$MEDMOE_TOP/bench/dist_allreduce.c" \
	"$MEDMOE_BUILD/libmedmoe.a" $flags $(pkg-config --libs jansson) -lm

layers=${BENCH_LAYERS:-4} hidden=${BENCH_HIDDEN:-512} ffn=${BENCH_FFN:-1376} vocab=32000 seq=512 batch=${BENCH_BATCH:-4096}
init-base --arch llama --layers $layers --hidden $hidden --heads 8 --kv-heads 2 --ffn $ffn --vocab $vocab --seed 1 \
	-o "$work/base" > /dev/null
sha=$(sha256sum "$work/base/tokenizer.json" | cut -c1-64)
"$work/mklearn" -k "$sha" -V $vocab -n 3000 -t 3 -l 200 > "$work/learn.mpk"
shard -q --seq-len $seq -o "$work/shards" "$work/learn.mpk"
echo "model: llama, $layers layers, hidden $hidden, ffn $ffn, vocab $vocab, fp32; global batch $batch tokens" \
	"(sequences of $seq), $steps steps (the first left out); $cores cores; OMP_WAIT_POLICY=passive;" \
	"OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-24s %10s %9s %12s\n' method run "tokens/s" scaling "all-reduce"
# tokens/s: the median of the steps' tokens_per_s, the first step (allocation, page faults) left out
tps() { stream2json -N "$1/metrics.mpk" | jq -s '[.[1:][].tokens_per_s] | sort | .[length / 2 | floor]'; }
for method in lora mingmoe; do
	o="--base $work/base --method $method --steps $steps --batch-tokens $batch --eval-every 0 --save-every 0"
	OMP_NUM_THREADS=$cores train-experts $o -q -o "$work/one-$method" "$work/shards"
	one=$(tps "$work/one-$method")
	printf '%-8s %-24s %10.0f %9s %12s\n' $method "1 rank x $cores threads" "$one" 1.00 -
	per=$((cores / ranks)); [ $per -ge 1 ] || per=1
	OMP_NUM_THREADS=$per mpirun --oversubscribe --bind-to none -np $ranks train-experts $o -o "$work/n-$method" \
		"$work/shards" 2> "$work/n-$method.log"
	n=$(tps "$work/n-$method")
	share=$(sed -n 's/.*gradient all-reduce took \([0-9.]*%\).*/\1/p' "$work/n-$method.log")
	printf '%-8s %-24s %10.0f %9.2f %12s\n' $method "$ranks ranks x $per threads" "$n" "$(echo "$n / $one" | bc -l)" \
		"${share:-?}"
done
echo "(scaling: tokens/s against 1 rank on the same $cores cores; all-reduce: its share of the steps' time on"
echo " rank 0, waiting for the slower rank included)"
echo
# the gradients of the bench model's adapters, and of Qwen2.5-7B's (lora r16 all linears: 40 M floats;
# mingmoe r16, 8 experts on the MLP: 0.43 G floats, 1.7 GB: shown at a quarter)
sizes="1000000 10000000 40000000 108000000"
echo "all-reduce of F32 gradients, $ranks ranks on this machine (median of 5):"
OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none -np $ranks "$work/allreduce" $sizes
if command -v nvidia-smi > /dev/null && gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU') && [ "$gpus" -ge 1 ]; then
	if echo "$flags" | grep -q MEDMOE_NCCL; then
		echo
		echo "all-reduce through NCCL, $gpus GPU(s), one rank each (N = 1: the same code path, no peer):"
		mpirun --oversubscribe --bind-to none -np "$gpus" "$work/allreduce" --gpu $sizes
	else
		echo "GPUs present, but this build has no NCCL (nccl.h and libnccl under CUDA_HOME)"
	fi
	echo "training on GPUs (scaling 1 -> $gpus): waits for the CUDA backend (train-experts --device cuda)"
else
	echo "no GPU here: the NCCL path is built but was not run"
fi
