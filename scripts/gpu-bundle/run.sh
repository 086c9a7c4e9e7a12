#!/bin/sh
# run.sh [--quick] [--check-only | --bench-only] — the first GPU session in one command: check-gpu (the CUDA
# backend against the CPU backend), then bench-gpu (throughput, MFU and memory against transformers + PEFT), each
# printing a table; both tables again at the very end.  Made by `make gpu-bundle` (scripts/gpu-bundle.sh); see
# README in this folder.
#
# Writes into $OUT when it is set (else ./results here): env.txt (the machine, the libraries found),
# check-gpu.log, bench-gpu.log, checkpoints.log, results.txt (the two tables), check-logs.tar.gz (every log and
# intermediate result of check-gpu).  Time: the whole run is kept inside MEDMOE_BUDGET_S seconds (default 540,
# for a 600-second command limit): check-gpu gets 55% of it, and bench-gpu skips, loudly, the runs that would
# not end in time.  The two benchmark checkpoints (~19 GB, under MEDMOE_BENCH_DIR, default /tmp) are made in
# the background while check-gpu runs.
set -u
B=$(cd "$(dirname "$0")" && pwd)
quick="" check=1 bench=1
for a in "$@"; do
	case $a in
	--quick) quick=--quick ;;
	--check-only) bench=0 ;;
	--bench-only) check=0 ;;
	*) echo "usage: run.sh [--quick] [--check-only | --bench-only]" >&2; exit 2 ;;
	esac
done
start=$(date +%s)
budget=${MEDMOE_BUDGET_S:-540}
BUNDLE_ENV_SH=$B/env.sh
. "$B/env.sh"
out=${OUT:-$B/results}
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/medmoe-gpu.XXXXXX")
export MEDMOE_BENCH_DIR=${MEDMOE_BENCH_DIR:-${TMPDIR:-/tmp}/medmoe-bench-gpu}

{
	echo "medmoe gpu-bundle $(cat "$B/VERSION" 2> /dev/null)"
	date -u
	uname -a
	nvidia-smi 2>&1 | head -20
	echo "medmoe sees: $("$B/bin/check_model" -p 2>&1 || echo "no usable GPU (above)")"
	echo "CUDA libraries from: ${MEDMOE_CUDA_DIRS:-none found}"
	echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
	for p in "$B"/bin/*; do ldd "$p" 2>&1 | grep -E "not found|cuda|cublas" | sed "s|^|$(basename "$p"): |"; done | sort -u
	command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2> /dev/null
	python3 -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "peft", peft.__version__)' 2>&1 | tail -1
	nproc
	free -g 2> /dev/null | head -2
	df -h "${TMPDIR:-/tmp}" | tail -1
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

# the benchmark's checkpoints (~19 GB on disk, ~31 GB of memory while the 7B one is drawn), only where the
# benchmark will run: a machine with an NVIDIA GPU
ckpt_pid=""
if [ $bench = 1 ] && { nvidia-smi -L > /dev/null 2>&1 || "$B/bin/check_model" -p > /dev/null 2>&1; }; then
	OMP_NUM_THREADS=${MEDMOE_INIT_THREADS:-12} sh "$B/bench/gpu.sh" --checkpoints-only > "$out/checkpoints.log" 2>&1 &
	ckpt_pid=$!
fi
if [ $check = 1 ]; then
	MEDMOE_BIN=$B/bin MEDMOE_TESTS=$B/bin MEDMOE_GPU_DATA=$B/data MEDMOE_CHECK_DIR=$tmp/check \
		MEDMOE_CHECK_DEADLINE=$((start + budget * 55 / 100)) sh "$B/check/check-gpu.sh" $quick 2>&1 | tee "$out/check-gpu.log"
	(cd "$tmp" && tar czf "$out/check-logs.tar.gz" --exclude='*.safetensors' --exclude='*.mpk' check 2> /dev/null)
fi
if [ $bench = 1 ]; then
	if [ -n "$ckpt_pid" ]; then
		echo "== waiting for the benchmark checkpoints (at $(($(date +%s) - start)) s)"
		wait $ckpt_pid
		cat "$out/checkpoints.log"
	fi
	MEDMOE_BIN=$B/bin MEDMOE_BENCH_TRAIN=$B/bin/bench-train MEDMOE_DEADLINE=$((start + budget)) \
		MEDMOE_BENCH_OUT=$tmp/bench-table.txt sh "$B/bench/gpu.sh" $quick 2>&1 | tee "$out/bench-gpu.log"
fi

{
	if [ $check = 1 ]; then
		sed -n '/^check-gpu results:/,$p' "$out/check-gpu.log"
		echo
	fi
	[ $bench = 1 ] && cat "$tmp/bench-table.txt" 2> /dev/null
	echo
	echo "run.sh: $(($(date +%s) - start)) s in all; outputs in $out"
} > "$out/results.txt"
echo
echo "================================================================================================"
cat "$out/results.txt"
rm -rf "$tmp"
grep -q "check-gpu: [0-9]* passed, 0 failed" "$out/results.txt" || [ $check = 0 ]
