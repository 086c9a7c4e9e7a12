#!/bin/sh
# check-gpu.sh [--quick] — make check-gpu: the CUDA backend against the CPU backend (issue 12, DESIGN §5), ending
# with one table.  Runs the same from the repository (the Makefile sets the paths) and from gpu-bundle/ (its
# run.sh does), and on a machine without a GPU, where every GPU comparison says SKIP (loudly) and the CPU sides
# still run.  Exit 0 when nothing FAILed.
#
#   1. ops     tests/unit/test_backend_ops: every op, forward and backward, CPU and CUDA (f32 and bf16 modes)
#              against the fp64 reference, outputs poisoned, fresh inputs (MEDMOE_OPS_SEED = this run's seed);
#   2. model   tests/gpu/check_model on tiny llama, qwen2, qwen3 checkpoints (init-base, f32 and bf16 weights):
#              logits, losses and every adapter gradient of each method, CPU vs GPU, f32 mode within 1e-5,
#              bf16 mode within max(1e-2, 5 × the bf16 weight-rounding floor) (check_model.c says why).
#   3. train   10 steps of train-experts per method on the CPU and with --device cuda, in f32 mode (--dtype f32)
#              and bf16 mode: the loss of every step within 1e-5 (f32) / 1e-2 (bf16) relative.
#   4. resume  train-experts --device cuda: 20 steps == 10 + --resume + 10, byte for byte (adapter, optimizer state).
#   5. eval    eval-exam loglik on a real exam (CMMLU anatomy, tokens made by tests/gpu/mkdata.sh) on the CPU and
#              the GPU: max |Δ option log-probability| within 1e-4 (f32; two OpenBLAS kernel sets: 1.9e-6) /
#              max(1e-2, 5 × floor) (bf16; rounding the weights alone: ~0.011), and every
#              differing prediction listed with its score gap (a near-tie when within that bound).
#   6. sanitizer  compute-sanitizer memcheck and racecheck on a short GPU training run: zero errors (SKIP, loudly,
#              where compute-sanitizer is missing or says the device is unsupported).
#
# --quick: the sanitizers on sparsedoctor only, one step each (the slow part); the rest is the same (tiny models).
# Environment: MEDMOE_BIN (init-base, train-experts, eval-exam, stream2json), MEDMOE_TESTS (test_backend_ops,
# its fp64 reference), MEDMOE_GPU_TESTS (check_model; default MEDMOE_TESTS), MEDMOE_GPU_DATA (tests/gpu/mkdata.sh's output), MEDMOE_CHECK_DIR (work
# directory and logs; default a new temporary one, kept), MEDMOE_CHECK_SEED (default: the time),
# MEDMOE_CHECK_DEADLINE (epoch seconds: every command is cut there, and a stage that cannot start 20 s before it
# says SKIP; gpu-bundle/run.sh sets it to keep the whole session inside its device time).
set -u
here=$(cd "$(dirname "$0")" && pwd)
quick=0
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	*) echo "usage: check-gpu.sh [--quick]" >&2; exit 2 ;;
	esac
done
: "${MEDMOE_BIN:?set MEDMOE_BIN}" "${MEDMOE_TESTS:?set MEDMOE_TESTS}" "${MEDMOE_GPU_DATA:?set MEDMOE_GPU_DATA}"
check_model=${MEDMOE_GPU_TESTS:-$MEDMOE_TESTS}/check_model
work=${MEDMOE_CHECK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/check-gpu.XXXXXX")}
mkdir -p "$work"
work=$(cd "$work" && pwd)
seed=${MEDMOE_CHECK_SEED:-$(date +%s)}
PATH=$MEDMOE_BIN:$PATH
export PATH
# Tiny models: a few threads are fastest; kernels finish before each call returns, so a fault names its kernel.
: "${OMP_NUM_THREADS:=4}" "${CUDA_LAUNCH_BLOCKING:=1}"
export OMP_NUM_THREADS CUDA_LAUNCH_BLOCKING
rows=$work/rows.tsv
: > "$rows"
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
# tmo N: N seconds, or fewer when MEDMOE_CHECK_DEADLINE comes first (a timeout(1) argument, at least 1)
tmo() {
	t=$1
	if [ -n "${MEDMOE_CHECK_DEADLINE:-}" ]; then
		left=$((MEDMOE_CHECK_DEADLINE - $(date +%s)))
		[ $left -lt "$t" ] && t=$left
		[ "$t" -lt 1 ] && t=1
	fi
	echo "$t"
}
# in_time NAME: whether stage NAME may start (20 s before the deadline at the latest); else a SKIP row
in_time() {
	[ -z "${MEDMOE_CHECK_DEADLINE:-}" ] && return 0
	[ $((MEDMOE_CHECK_DEADLINE - $(date +%s))) -ge 20 ] && return 0
	echo "# check-gpu: WARNING: $1 SKIPPED: the time budget (MEDMOE_CHECK_DEADLINE) is spent"
	row "$1" - SKIP "not run: the time budget (MEDMOE_CHECK_DEADLINE) was spent"
	return 1
}
# row CHECK CONFIG PASS|FAIL|SKIP DETAIL
row() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$rows"
	printf '%-4s  %s [%s]  %s\n' "$3" "$1" "$2" "$4"
}
stage() { echo "== $1 (at ${2:-$(elapsed)} s)"; }

if gpu_name=$("$check_model" -p 2> "$work/probe.log"); then
	have_gpu=1
else
	have_gpu=0
	gpu_name="none"
	echo "#"
	echo "# check-gpu: NO GPU (or no CUDA backend in this build): every GPU comparison is SKIPPED;"
	echo "#            the CPU sides still run.  $(head -1 "$work/probe.log")"
	echo "#"
fi
echo "check-gpu: device: $gpu_name; seed $seed; work and logs in $work"
methods="lora moelora mingmoe sparsedoctor"

# ----------------------------------------------------------------------------
# 1. ops
stage "ops: test_backend_ops"
log=$work/ops.log
MEDMOE_OPS_TABLE=1 MEDMOE_OPS_SEED=$seed CMOCKA_MESSAGE_OUTPUT=TAP timeout $(tmo 300) "$MEDMOE_TESTS/test_backend_ops" > "$log" 2>&1
rc=$?
for pair in cpu:test_cpu cpu-bf16w:test_cpu_bf16_weights cuda-f32:test_cuda_f32 cuda-bf16:test_cuda_bf16; do
	cfg=${pair%%:*} name=${pair#*:}
	if grep -qE "^ok [0-9]+ - $name\$" "$log"; then st=PASS
	elif grep -qE "^not ok [0-9]+ # SKIP $name\$" "$log"; then st=SKIP
	else st=FAIL; fi
	detail=$(awk -v c="$cfg" '$1 == "#" && NF >= 5 && $(NF - 1) == c {
		n++; what = $2; for (i = 3; i <= NF - 2; i++) what = what " " $i
		if ($NF ~ /nan/) { nan++; worst = what }
		else if (!nan && $NF + 0 >= max) { max = $NF + 0; worst = what } }
		END { if (n) printf "%d outputs, max ‖Δ‖/‖ref‖ %s (%s)", n, nan ? "nan" : sprintf("%.2g", max), worst }' "$log")
	if [ "$st" = FAIL ]; then
		why=$(grep -m1 -E "relative error|differ|unwritten|not finite|exited|Segmentation|cuda" "$log" | sed 's/^# *//')
		[ $rc -gt 1 ] && [ -z "$why" ] && why="exited $rc"
		detail="$detail${detail:+; }${why:-see $log}"
	fi
	[ "$st" = SKIP ] && detail="no GPU"
	row "ops: test_backend_ops" "$cfg" $st "${detail:-no table lines}; seed $seed"
done

# ----------------------------------------------------------------------------
# 2. model
stage "model: check_model on llama, qwen2, qwen3"
shape="--layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.1 --seed $seed"
for arch in llama qwen2 qwen3; do
	in_time "model $arch" || continue
	m=$work/model-$arch
	# shellcheck disable=SC2086
	if ! { init-base --arch $arch $shape --force -o "$m-f32" && init-base --arch $arch $shape --dtype bf16 --force -o "$m-bf16"; } > "$m.log" 2>&1; then
		row "model $arch" - FAIL "init-base failed: $(tail -1 "$m.log")"
		continue
	fi
	timeout $(tmo 300) "$check_model" -s "$seed" "$m-f32" "$m-bf16" > "$m.rows" 2>> "$m.log"
	rc=$?
	while IFS="$(printf '\t')" read -r tag check cfg st detail; do
		[ "$tag" = ROW ] && row "$check" "$cfg" "$st" "$detail"
	done < "$m.rows"
	if [ $rc -gt 1 ] || [ ! -s "$m.rows" ]; then
		row "model $arch" - FAIL "check_model exited $rc after $(grep -c '^ROW' "$m.rows") rows: $(grep -v '^check_model: [a-z0-9]* [a-z]* [a-z0-9]*$' "$m.log" | tail -1)"
	fi
done

# ----------------------------------------------------------------------------
# 3. train: 10 steps, CPU vs GPU
stage "train: 10 steps per method, CPU vs GPU"
tb=$work/train-base
tshape="--arch qwen2 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.15 --seed 1"
# shellcheck disable=SC2086
init-base $tshape --force -o "$tb-f32" > /dev/null && init-base $tshape --dtype bf16 --force -o "$tb-bf16" > /dev/null
common="--batch-tokens 256 --lr 3e-3 --eval-every 1000 --con-queue 32 --con-proj 8 -q"
shards=$MEDMOE_GPU_DATA/shards
losses() { stream2json -N "$1/metrics.mpk" | grep -o '"loss":[-0-9.e]*' | cut -d: -f2; }
for m in $methods; do
	for mode in f32 bf16; do
		in_time "train 10 steps ($m $mode)" || continue
		r=$work/train-$m-$mode
		dt=""; [ $mode = f32 ] && dt="--dtype f32"
		# (two OpenBLAS kernel sets give curves 4e-8 apart; bf16 weight rounding alone moves them 3.4e-4)
		tol=1e-5; [ $mode = bf16 ] && tol=1e-2
		# shellcheck disable=SC2086
		if ! timeout $(tmo 300) train-experts --base "$tb-$mode" --method $m --steps 10 $common --force -o "$r-cpu" "$shards" > "$r.log" 2>&1; then
			row "train 10 steps" "$m $mode" FAIL "the CPU run failed: $(tail -1 "$r.log")"
			continue
		fi
		losses "$r-cpu" > "$r-cpu.loss"
		if [ $have_gpu = 0 ]; then
			row "train 10 steps" "$m $mode" SKIP "no GPU (CPU loss $(head -1 "$r-cpu.loss") -> $(tail -1 "$r-cpu.loss"))"
			continue
		fi
		# shellcheck disable=SC2086
		if ! timeout $(tmo 300) train-experts --base "$tb-$mode" --method $m --steps 10 $common --device cuda $dt --force \
			-o "$r-gpu" "$shards" >> "$r.log" 2>&1; then
			row "train 10 steps" "$m $mode" FAIL "the GPU run failed: $(tail -1 "$r.log")"
			continue
		fi
		losses "$r-gpu" > "$r-gpu.loss"
		res=$(paste "$r-cpu.loss" "$r-gpu.loss" | awk -v tol=$tol '{
			n++; d = ($2 - $1) / $1; if (d < 0) d = -d; if ($2 == "" || $2 != $2 + 0) d = 1e30
			if (d > max) { max = d; at = n } if (n == 1) { c0 = $1; g0 = $2 } c1 = $1; g1 = $2 }
			END { printf "%s\tmax |Δloss|/loss %.2g at step %d (tol %s), %d steps; CPU %.5f -> %.5f, GPU %.5f -> %.5f\n",
				n == 10 && max <= tol ? "PASS" : "FAIL", max, at, tol, n, c0, c1, g0, g1 }')
		row "train 10 steps" "$m $mode" "${res%%	*}" "${res#*	}"
	done
done

# ----------------------------------------------------------------------------
# 4. resume on the GPU
stage "resume: 20 steps == 10 + --resume + 10 on the GPU"
for m in $methods; do
	in_time "resume 20 = 10+10 ($m)" || continue
	r=$work/resume-$m
	if [ $have_gpu = 0 ]; then
		row "resume 20 = 10+10" "$m cuda" SKIP "no GPU"
		continue
	fi
	o="--base $tb-bf16 --method $m --steps 20 --save-every 5 --dropout 0.1 $common --device cuda"
	# shellcheck disable=SC2086
	if timeout $(tmo 300) train-experts $o --force -o "$r-one" "$shards" > "$r.log" 2>&1 &&
		timeout $(tmo 300) train-experts $o --force --stop-after 10 -o "$r-two" "$shards" >> "$r.log" 2>&1 &&
		grep -q '"step": 10' "$r-two/state/trainer.json" &&
		timeout $(tmo 300) train-experts $o --resume -o "$r-two" "$shards" >> "$r.log" 2>&1; then
		diffs=""
		for f in adapter.safetensors adapter_config.json state/optimizer.safetensors; do
			cmp -s "$r-one/$f" "$r-two/$f" || diffs="$diffs $f"
		done
		n=$(stream2json -N "$r-two/metrics.mpk" | wc -l)
		if [ -z "$diffs" ] && [ "$n" -eq 20 ]; then
			row "resume 20 = 10+10" "$m cuda" PASS "adapter, its config and the optimizer state byte-identical; 20 metrics records"
		else
			row "resume 20 = 10+10" "$m cuda" FAIL "differ:${diffs:- none}; $n metrics records"
		fi
	else
		row "resume 20 = 10+10" "$m cuda" FAIL "a run failed: $(tail -1 "$r.log")"
	fi
done

# ----------------------------------------------------------------------------
# 5. eval-exam on a real exam
stage "eval: eval-exam loglik, CPU vs GPU"
exam=$MEDMOE_GPU_DATA/exam.mpk
eb=$work/eval-base
if ! in_time "eval-exam loglik"; then
	:
elif [ ! -f "$exam" ]; then
	row "eval-exam loglik" - SKIP "no exam stream in $MEDMOE_GPU_DATA (mkdata.sh ran without MEDMOE_SHARED)"
else
	eshape="--arch qwen3 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.1 --seed 9"
	# shellcheck disable=SC2086
	init-base $eshape --force -o "$eb-f32" > /dev/null && init-base $eshape --dtype bf16 --force -o "$eb-bf16" > /dev/null
	for mode in f32 bf16; do
		timeout $(tmo 300) eval-exam -q --base "$eb-$mode" -o "$eb-$mode-cpu.pred" "$exam" 2> "$eb-$mode.log" &&
			stream2json -N "$eb-$mode-cpu.pred" > "$eb-$mode-cpu.json"
	done
	# what rounding the weights to bf16 alone does to the scores: the bf16 mode's tolerance is 5x that
	floor=$(awk -f "$here/cmp_pred.awk" "$eb-f32-cpu.json" "$eb-bf16-cpu.json" | cut -d' ' -f4)
	for mode in f32 bf16; do
		if [ $have_gpu = 0 ]; then
			row "eval-exam loglik" "$mode" SKIP "no GPU (CPU: $(wc -l < "$eb-$mode-cpu.json") questions scored; bf16 floor max |Δscore| $floor)"
			continue
		fi
		dt=""; [ $mode = f32 ] && dt="--dtype f32"
		# shellcheck disable=SC2086
		if ! timeout $(tmo 300) eval-exam -q --base "$eb-$mode" --device cuda $dt -o "$eb-$mode-gpu.pred" "$exam" 2>> "$eb-$mode.log"; then
			row "eval-exam loglik" "$mode" FAIL "the GPU run failed: $(tail -1 "$eb-$mode.log")"
			continue
		fi
		stream2json -N "$eb-$mode-gpu.pred" > "$eb-$mode-gpu.json"
		res=$(awk -f "$here/cmp_pred.awk" "$eb-$mode-cpu.json" "$eb-$mode-gpu.json")
		echo "$res" > "$eb-$mode.cmp"
		set -- ${res%%|*}
		n=$1 ngot=$2 ndiff=$3 maxd=$4 order=${6:-}
		list=${res#*|}
		tol=$(awk -v m=$mode -v f="$floor" 'BEGIN { t = m == "f32" ? 1e-4 : 1e-2; if (m != "f32" && 5 * f > t) t = 5 * f; printf "%.3g", t }')
		st=$(awk -v n="$n" -v g="$ngot" -v d="$maxd" -v t="$tol" -v o="$order" 'BEGIN { print (n == g && n > 0 && o == "" && d <= t) ? "PASS" : "FAIL" }')
		detail="$((n - ndiff))/$n predictions equal, max |Δscore| $maxd (tol $tol)"
		[ "$ndiff" -gt 0 ] && detail="$detail; differing (near-ties when gap <= 2x tol): $list"
		[ -n "$order" ] && detail="$detail; records out of order:$order"
		row "eval-exam loglik" "$mode" "$st" "$detail"
	done
fi

# ----------------------------------------------------------------------------
# 6. compute-sanitizer
stage "sanitizer: memcheck, racecheck"
san=""
for c in compute-sanitizer "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer \
	/usr/local/cuda-*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
	if command -v "$c" > /dev/null 2>&1; then san=$(command -v "$c"); break; fi
done
if [ $quick = 1 ]; then san_runs="memcheck:sparsedoctor:1 racecheck:sparsedoctor:1"
else san_runs="memcheck:sparsedoctor:2 memcheck:moelora:1 racecheck:sparsedoctor:1 racecheck:moelora:1"; fi
for run in $san_runs; do
	tool=${run%%:*} rest=${run#*:}
	m=${rest%%:*} steps=${rest#*:}
	if [ $have_gpu = 0 ]; then
		row "compute-sanitizer" "$tool $m" SKIP "no GPU"
		continue
	fi
	in_time "compute-sanitizer ($tool $m)" || continue
	if [ -z "$san" ]; then
		echo "# check-gpu: WARNING: compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda*/bin): SKIPPED"
		row "compute-sanitizer" "$tool $m" SKIP "compute-sanitizer not found"
		continue
	fi
	log=$work/sanitizer-$tool-$m.log
	# MEDMOE_BLAS_SELECT=0: no re-exec for OpenBLAS's kernels, so the sanitizer watches one process image
	# shellcheck disable=SC2086
	MEDMOE_BLAS_SELECT=0 CUDA_LAUNCH_BLOCKING=0 timeout $(tmo 400) "$san" --tool $tool --error-exitcode 86 --print-limit 20 \
		train-experts --base "$tb-bf16" --method $m --steps $steps $common --device cuda --force \
		-o "$work/sanitizer-$tool-$m" "$shards" > "$log" 2>&1
	rc=$?
	if grep -qiE "device not supported|not supported on this|unable to find injection|sanitizer.*not support" "$log"; then
		msg=$(grep -m1 -iE "not supported|unable to find injection" "$log")
		echo "#"
		echo "# check-gpu: compute-sanitizer cannot run here: $msg  --  SKIPPED"
		echo "#"
		row "compute-sanitizer" "$tool $m" SKIP "unsupported here: $msg"
		continue
	fi
	if [ $tool = memcheck ]; then
		summary=$(grep -m1 -o "ERROR SUMMARY: [0-9]* error[s]*" "$log")
		errs=$(echo "$summary" | grep -o '[0-9][0-9]*' | head -1)
	else
		summary=$(grep -m1 -o "RACECHECK SUMMARY: .*" "$log")
		errs=$(echo "$summary" | sed -n 's/.*(\([0-9][0-9]*\) error.*/\1/p')
	fi
	if [ $rc -eq 0 ] && [ "${errs:-x}" = 0 ]; then
		row "compute-sanitizer" "$tool $m" PASS "$summary; $steps training steps"
	elif [ $rc -eq 124 ]; then
		row "compute-sanitizer" "$tool $m" FAIL "timed out (at $(elapsed) s)"
	else
		row "compute-sanitizer" "$tool $m" FAIL "exit $rc; ${summary:-no summary}: $(grep -m1 -E '^========= (Invalid|Error|Race|Program hit)' "$log")"
	fi
done

# ----------------------------------------------------------------------------
# the table
total=$(elapsed)
n_pass=$(awk -F'\t' '$3 == "PASS"' "$rows" | wc -l)
n_fail=$(awk -F'\t' '$3 == "FAIL"' "$rows" | wc -l)
n_skip=$(awk -F'\t' '$3 == "SKIP"' "$rows" | wc -l)
echo
echo "check-gpu results: device $gpu_name; seed $seed; $total s; logs in $work"
awk -F'\t' '{ w1 = length($1) > w1 ? length($1) : w1; w2 = length($2) > w2 ? length($2) : w2; r[NR] = $0 }
	END { fmt = "%-" w1 "s  %-" w2 "s  %-6s  %s\n"; printf fmt, "check", "config", "result", "detail"
		for (i = 1; i <= NR; i++) { split(r[i], f, "\t"); printf fmt, f[1], f[2], f[3], f[4] } }' "$rows"
echo "check-gpu: $n_pass passed, $n_fail failed, $n_skip skipped"
[ "$n_fail" -eq 0 ]
