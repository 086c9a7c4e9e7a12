#!/bin/sh
# gpu.sh [--quick] [--checkpoints-only] — make bench-gpu: training throughput, MFU and peak memory of the CUDA
# engine against transformers + PEFT on the same GPU in the same run, on random checkpoints of Qwen2.5-1.5B's and
# Qwen2.5-7B's shapes (init-base, made here at run time; shapes from the models' config.json on Hugging Face),
# sequences of 2048 tokens (one document, so the peer's SDPA runs its flash kernel), bf16:
#   lora     LoRA r16 on all seven linears                        (medmoe bench/train.c vs PEFT LoRA)
#   mingmoe  LoRA r16 on q,k,v,o + 8 experts r16, top-2, on the MLP  (vs PEFT + the same MoLoRA math in torch)
# plus Qwen2.5-7B MING-MOE with --recompute, whose peak must fit in 40 GB.  Prints a table last.
#
# MFU = tokens/s × FLOPs per token / the GPU's peak dense bf16 FLOP/s.  FLOPs per token = 4N + attention: N the
# parameters of every matrix product a token goes through (the seven projections of each layer and the LM head;
# the embedding is a lookup), 2N forward and 2N backward (a frozen base needs only the input gradients,
# DESIGN §4); attention 12·L·H·D·(T+1)/2 (QKᵀ and PV forward, twice that backward, over the average causal
# context).  The adapters' own FLOPs (1-3%) and recomputation are not counted.  Both implementations get the
# same formula.  Peaks by device name (NVIDIA's datasheets, dense = half the "with sparsity" figures):
# H100 SXM and H200 SXM 989 TFLOP/s, H100 NVL and H200 NVL 835, H100 PCIe 756, A100 312, L40S 362;
# MEDMOE_PEAK_TFLOPS overrides.  Peak memory: medmoe's own allocations (ops_peak_bytes, weights included) and
# PyTorch's max_memory_allocated; neither counts the CUDA context.
#
# Targets (issue 12): lora ≥ 2× PEFT's tokens/s and ≥ 50% MFU; peak memory ≤ 0.6× PEFT's; 7B mingmoe --recompute
# ≤ 40 GB (40·10⁹ bytes).
# --quick: 3 timed steps instead of 8, and no 7B peer (the longest part: loading 15 GB into PyTorch).
# --checkpoints-only: make the checkpoints and stop (gpu-bundle/run.sh starts this while check-gpu runs).
# Environment: MEDMOE_BIN (init-base), MEDMOE_BENCH_TRAIN (bench/train.c built; default: made here), MEDMOE_PYTHON
# (a python with torch, transformers, peft; default python3, else bench/venv), MEDMOE_BENCH_DIR (checkpoints,
# ~19 GB, reused when their options match; default $TMPDIR/medmoe-bench-gpu), MEDMOE_DEADLINE (epoch seconds: a
# run that would end after it is skipped, loudly), MEDMOE_BENCH_OUT (also write the table there).
set -u
here=$(cd "$(dirname "$0")" && pwd)
MEDMOE_TOP=${MEDMOE_TOP:-$(cd "$here/.." && pwd)}
quick=0 ckpt_only=0
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	--checkpoints-only) ckpt_only=1 ;;
	*) echo "usage: gpu.sh [--quick] [--checkpoints-only]" >&2; exit 2 ;;
	esac
done
: "${MEDMOE_BIN:=$MEDMOE_TOP/bin}"
dir=${MEDMOE_BENCH_DIR:-${TMPDIR:-/tmp}/medmoe-bench-gpu}
mkdir -p "$dir"
start=$(date +%s)
reps=8; [ $quick = 1 ] && reps=3
T=2048

# the two shapes: Qwen2.5-1.5B (tied embeddings) and Qwen2.5-7B; qwen2 = q/k/v biases
shape_1_5b="--arch qwen2 --layers 28 --hidden 1536 --heads 12 --kv-heads 2 --ffn 8960 --vocab 151936 --tied"
shape_7b="--arch qwen2 --layers 28 --hidden 3584 --heads 28 --kv-heads 4 --ffn 18944 --vocab 152064"
# make_ckpt NAME SHAPE: the checkpoint DIR/NAME, unless one made with the same options is there
make_ckpt() {
	args="$2 --dtype bf16 --seed 1"
	if [ -f "$dir/$1/config.json" ] && [ "$(cat "$dir/$1.args" 2> /dev/null)" = "$args" ]; then
		return 0
	fi
	t0=$(date +%s)
	# shellcheck disable=SC2086
	"$MEDMOE_BIN/init-base" $args --force -o "$dir/$1" > "$dir/$1.log" 2>&1 || {
		echo "bench-gpu: init-base $args failed: $(tail -1 "$dir/$1.log")" >&2
		return 1
	}
	echo "$args" > "$dir/$1.args"
	echo "bench-gpu: made $dir/$1 in $(($(date +%s) - t0)) s ($(du -sh "$dir/$1" | cut -f1))"
}
# a GPU?  (before anything: the 7B checkpoint takes ~31 GB of memory while it is drawn)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -1)
[ -n "$gpu" ] || gpu=$(${MEDMOE_PYTHON:-python3} -c 'import torch; print(torch.cuda.get_device_name(0))' 2> /dev/null)
if [ -z "$gpu" ]; then
	echo "bench-gpu: SKIPPED: no NVIDIA GPU here (neither nvidia-smi nor torch found one)"
	exit 0
fi
if [ $ckpt_only = 1 ]; then
	make_ckpt qwen2.5-1.5b "$shape_1_5b" && make_ckpt qwen2.5-7b "$shape_7b"
	exit
fi
if [ -z "${MEDMOE_BENCH_TRAIN:-}" ]; then
	make --no-print-directory -C "$MEDMOE_TOP" build/bench/train > /dev/null || exit 1
	MEDMOE_BENCH_TRAIN=$MEDMOE_TOP/build/bench/train
fi
PY=${MEDMOE_PYTHON:-python3}
if ! "$PY" -c "import torch, transformers, peft" 2> /dev/null; then
	if [ -z "${MEDMOE_PYTHON:-}" ] && [ -f "$MEDMOE_TOP/bench/venv.sh" ]; then
		. "$MEDMOE_TOP/bench/venv.sh"
		bench_venv torch transformers peft safetensors accelerate || PY=""
	else
		PY=""
	fi
fi
peak=${MEDMOE_PEAK_TFLOPS:-$(echo "$gpu" | awk '{
	if (/H200 NVL|H100 NVL/) print 835; else if (/H100 PCIe/) print 756; else if (/H100|H200|H800|GH200/) print 989
	else if (/A100|A800/) print 312; else if (/L40S/) print 362; else print "" }')}
echo "bench-gpu: $gpu, peak dense bf16 ${peak:-unknown (set MEDMOE_PEAK_TFLOPS)} TFLOP/s; $T tokens per step;" \
	"median of $reps steps after a warm-up; python: ${PY:-none with torch+transformers+peft: no peer}"

rows=$dir/rows.tsv
: > "$rows"
# budget SECONDS: whether a run of about SECONDS still ends before MEDMOE_DEADLINE
budget() { [ -z "${MEDMOE_DEADLINE:-}" ] || [ $(($(date +%s) + $1)) -le "$MEDMOE_DEADLINE" ]; }
# tmo N: N seconds, or what is left before MEDMOE_DEADLINE when that is less (a timeout(1) argument)
tmo() {
	t=$1
	if [ -n "${MEDMOE_DEADLINE:-}" ]; then
		left=$((MEDMOE_DEADLINE - $(date +%s)))
		[ $left -lt "$t" ] && t=$left
		[ "$t" -lt 1 ] && t=1
	fi
	echo "$t"
}
# flops_per_token L C H KV D F V: 4N + 12·L·H·D·(T+1)/2
flops() {
	awk -v L=$1 -v C=$2 -v H=$3 -v KV=$4 -v D=$5 -v F=$6 -v V=$7 -v T=$T 'BEGIN {
		N = L * (C * H * D + 2 * C * KV * D + H * D * C + 3 * C * F) + V * C
		printf "%.6g %.6g\n", 4 * N + 12 * L * H * D * (T + 1) / 2, N }'
}
# one row: MODEL METHOD IMPL TOKENS/S S/STEP LOSS PEAK_MB FLOPS/TOKEN NOTE
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$rows"; }

run_medmoe() {   # MODEL CKPT METHOD RECOMPUTE FLOPS
	name="medmoe"; [ "$4" = 1 ] && name="medmoe --recompute"
	if ! budget 60; then
		echo "bench-gpu: WARNING: $1 $3 ($name) SKIPPED: the time budget (MEDMOE_DEADLINE) would be exceeded"
		row "$1" "$3" "$name" - - - - "$5" "skipped: time budget"
		return
	fi
	log=$dir/$1-$3-$4.log
	if out=$(timeout "$(tmo 240)" "$MEDMOE_BENCH_TRAIN" "$dir/$2" "$3" $T 1 $reps cuda "$4" 2> "$log"); then
		set -- "$1" "$3" "$name" "$5" $out
		row "$1" "$2" "$3" "$5" "$7" "$6" "$9" "$4" ""
		echo "bench-gpu: $1 $2 $3: $5 tokens/s, $7 s/step, peak $9 MB"
	else
		echo "bench-gpu: $1 $3 ($name) FAILED: $(tail -1 "$log")"
		row "$1" "$3" "$name" - - - - "$5" "failed: $(tail -1 "$log" | cut -c1-80)"
	fi
}

run_peer() {   # MODEL CKPT FLOPS SECONDS
	if [ -z "$PY" ]; then
		row "$1" lora "PyTorch + PEFT" - - - - "$3" "no python with torch, transformers, peft"
		return
	fi
	if ! budget "$4"; then
		echo "bench-gpu: WARNING: $1 PEFT peer SKIPPED: the time budget (MEDMOE_DEADLINE) would be exceeded"
		row "$1" lora "PyTorch + PEFT" - - - - "$3" "skipped: time budget"
		return
	fi
	log=$dir/$1-peer.log
	timeout "$(tmo 420)" "$PY" "$here/gpu_peer.py" "$dir/$2" $T $reps lora,mingmoe > "$dir/$1-peer.out" 2> "$log"
	rc=$?
	while read -r method tps loss secs alloc reserved; do
		row "$1" "$method" "PyTorch + PEFT" "$tps" "$secs" "$loss" "$alloc" "$3" "reserved $reserved MB"
		echo "bench-gpu: $1 $method PyTorch + PEFT: $tps tokens/s, $secs s/step, peak $alloc MB (reserved $reserved)"
	done < "$dir/$1-peer.out"
	[ $rc -ne 0 ] && echo "bench-gpu: $1 PEFT peer exited $rc: $(tail -1 "$log")" &&
		row "$1" "-" "PyTorch + PEFT" - - - - "$3" "exited $rc: $(tail -1 "$log" | cut -c1-80)"
}

set -- $(flops 28 1536 12 2 128 8960 151936)
f15=$1 n15=$2
set -- $(flops 28 3584 28 4 128 18944 152064)
f7=$1 n7=$2
make_ckpt qwen2.5-1.5b "$shape_1_5b" || exit 1
run_medmoe 1.5B qwen2.5-1.5b lora 0 "$f15"
run_medmoe 1.5B qwen2.5-1.5b mingmoe 0 "$f15"
run_peer 1.5B qwen2.5-1.5b "$f15" 100
if [ -f "$dir/qwen2.5-7b/config.json" ] || budget 240; then
	make_ckpt qwen2.5-7b "$shape_7b" || exit 1
	run_medmoe 7B qwen2.5-7b lora 0 "$f7"
	run_medmoe 7B qwen2.5-7b mingmoe 0 "$f7"
	run_medmoe 7B qwen2.5-7b mingmoe 1 "$f7"
	if [ $quick = 0 ]; then run_peer 7B qwen2.5-7b "$f7" 240
	else row 7B lora "PyTorch + PEFT" - - - - "$f7" "not run (--quick)"; fi
else
	echo "bench-gpu: WARNING: no 7B checkpoint and no time left to make one (MEDMOE_DEADLINE): 7B SKIPPED"
	row 7B - "medmoe" - - - - "$f7" "skipped: no time to make the checkpoint"
fi

# ----------------------------------------------------------------------------
# the table
{
	echo
	echo "bench-gpu results: $gpu; $T-token sequences (one document), bf16, median of $reps steps; $(($(date +%s) - start)) s"
	echo "N (matmul parameters per token): 1.5B $n15, 7B $n7; FLOPs/token = 4N + attention: 1.5B $f15, 7B $f7;" \
		"MFU against ${peak:-an unknown} TFLOP/s dense bf16"
	awk -F'\t' -v peak="${peak:-0}" '
	{ r[NR] = $0; if ($3 == "PyTorch + PEFT" && $4 != "-") { ptps[$1 " " $2] = $4; pmem[$1 " " $2] = $7 } }
	END {
		fmt = "%-5s %-8s %-20s %10s %8s %6s %9s %9s %8s %8s  %s\n"
		printf fmt, "model", "method", "implementation", "tokens/s", "s/step", "MFU", "peak GB", "loss", "×tok/s", "×memory", "note"
		for (i = 1; i <= NR; i++) {
			split(r[i], f, "\t"); k = f[1] " " f[2]
			mfu = f[4] != "-" && peak > 0 ? sprintf("%.1f%%", 100 * f[4] * f[8] / (peak * 1e12)) : "-"
			gb = f[7] != "-" ? sprintf("%.2f", f[7] * 1048576 / 1e9) : "-"
			xt = f[3] ~ /^medmoe/ && (k in ptps) && f[4] != "-" ? sprintf("%.2f", f[4] / ptps[k]) : "-"
			xm = f[3] ~ /^medmoe/ && (k in pmem) && f[7] != "-" ? sprintf("%.2f", f[7] / pmem[k]) : "-"
			printf fmt, f[1], f[2], f[3], f[4], f[5], mfu, gb, f[6], xt, xm, f[9]
			if (f[3] == "medmoe" && f[2] == "lora" && f[4] != "-") {
				verdict = verdict sprintf("\n  %s lora: %s (target ≥ 2× PEFT: %s), MFU %s (target ≥ 50%%: %s)", f[1],
					xt == "-" ? "PEFT not measured" : xt "× PEFT tokens/s", xt == "-" ? "-" : xt + 0 >= 2 ? "met" : "NOT met", mfu, peak > 0 && f[4] * f[8] / (peak * 1e12) >= 0.5 ? "met" : "NOT met")
			}
			if (f[3] == "medmoe" && xm != "-" && f[1] f[2] != "")
				verdict = verdict sprintf("\n  %s %s: peak memory %s× PEFT (target ≤ 0.6: %s)", f[1], f[2], xm, xm + 0 <= 0.6 ? "met" : "NOT met")
			if (f[3] == "medmoe --recompute" && f[7] != "-")
				verdict = verdict sprintf("\n  %s %s --recompute: peak %s GB (target ≤ 40 GB: %s)", f[1], f[2], gb,
					f[7] * 1048576 <= 40e9 ? "met" : "NOT met")
		}
		print "targets (issue 12):" (verdict == "" ? " none measured" : verdict)
	}' "$rows"
} | tee "${MEDMOE_BENCH_OUT:-/dev/null}"
