#!/bin/sh
# demo.sh — `make demo`: the whole medmoe pipeline on the embedded default, with nothing fetched.
#
# A tiny Qwen3-shaped checkpoint with the project's own byte-level tokenizer (init-base), a bilingual
# multi-task corpus generated from demo/facts.tsv, and a held-out exam of new questions on the same facts:
#   tokenize → mix-tasks → shard → train-experts (lora, moelora, mingmoe, sparsedoctor) → merge-adapters
#   → eval-exam → score (paired against the untrained base and against lora) → demo/report.md + SVG charts.
# Settings through the environment: DEMO_STEPS (training steps per method, default 150), DEMO_OUT (default
# demo/out), DEMO_LR (1e-3: the papers' 2e-4 is for 7B models and days, not a random tiny model and minutes).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MEDMOE_BIN:-$top/bin}
PATH="$BIN:$top/scripts:$PATH"
OUT=${DEMO_OUT:-$top/demo/out}
REPORT=$top/demo/report.md
STEPS=${DEMO_STEPS:-150}
LR=${DEMO_LR:-1e-3}
SEED=1
: "${OMP_WAIT_POLICY:=passive}"
export PATH OMP_WAIT_POLICY
start=$(date +%s)
step() { printf '\n== [%4ss] %s\n' "$(($(date +%s) - start))" "$*" >&2; }
timed() {  # timed NAME CMD...: run, and remember the seconds it took
	name=$1; shift
	t0=$(date +%s); "$@"; echo "$name	$(($(date +%s) - t0))" >> "$OUT/times.tsv"
}

rm -rf "$OUT"
mkdir -p "$OUT/tokens" "$OUT/exam" "$OUT/runs" "$OUT/merged" "$OUT/pred" "$OUT/charts"
: > "$OUT/times.tsv"

step "1/8 a tiny base model: Qwen3 shape, 4 layers, hidden 128, the project's byte-level tokenizer"
init-base --arch qwen3 --layers 4 --hidden 128 --heads 4 --kv-heads 2 --ffn 384 --tokenizer bytes --seed $SEED \
	-o "$OUT/base"
BASE=$OUT/base

step "2/8 the corpus: three bilingual tasks and a held-out exam, from demo/facts.tsv"
demo-data.sh "$top/demo/facts.tsv" "$OUT/data"
wc -l "$OUT"/data/*.jsonl >&2

step "3/8 tokenize (chatml template; loss on the answers only) and the exam prompts"
for task in drug_qa triage exam_mc; do
	tokenize --tokenizer "$BASE" --template chatml --task $task -o "$OUT/tokens/$task.mpk" "$OUT/data/$task.jsonl"
done
for lang in zh en; do
	tokenize --exam medqa --tokenizer "$BASE" -o "$OUT/exam/$lang.exam" "$OUT/data/exam-$lang.jsonl"
done

step "4/8 mix-tasks (temperature 2) and shard (512-token sequences, 5% validation)"
mix-tasks --temperature 2 --seed $SEED --stats "$OUT/mix-stats.json" -o "$OUT/mixed.mpk" "$OUT"/tokens/*.mpk
shard --seq-len 512 --valid 0.05 -o "$OUT/shards" "$OUT/mixed.mpk"
shard --verify "$OUT/shards"

step "5/8 train-experts: $STEPS steps of 2048 tokens for each method"
METHODS="lora moelora mingmoe sparsedoctor"
for m in $METHODS; do
	step "    $m"
	# SparseDoctor scores every token against every queue entry: the reference 4096 per expert is sized for
	# millions of tokens, not this 64k-token corpus (and would take half an hour here); 64 per expert keeps
	# the queue several batches deep.
	extra=""; [ $m = sparsedoctor ] && extra="--con-queue 64"
	# shellcheck disable=SC2086
	timed "train-$m" train-experts --base "$BASE" --method $m --steps $STEPS --batch-tokens 2048 --lr "$LR" \
		--warmup 10 --eval-every 25 --seed $SEED $extra -o "$OUT/runs/$m" "$OUT/shards"
done

step "6/8 merge-adapters: lora into the base; moelora's exam_mc task into the base"
merge-adapters --base "$BASE" --adapter "$OUT/runs/lora" -o "$OUT/merged/lora"
merge-adapters --base "$BASE" --adapter "$OUT/runs/moelora" --task exam_mc -o "$OUT/merged/moelora-exam_mc"

step "7/8 eval-exam (next-token log-likelihood of the option letters)"
for lang in zh en; do
	exam=$OUT/exam/$lang.exam
	timed "eval-base" eval-exam -q --base "$BASE" -o "$OUT/pred/base-$lang.pred" "$exam"
	for m in $METHODS; do
		task=""; [ $m = moelora ] && task="--task exam_mc"
		# shellcheck disable=SC2086
		eval-exam -q --base "$BASE" --adapter "$OUT/runs/$m" $task -o "$OUT/pred/$m-$lang.pred" "$exam"
	done
	eval-exam -q --base "$OUT/merged/lora" -o "$OUT/pred/merged-lora-$lang.pred" "$exam"
	eval-exam -q --base "$OUT/merged/moelora-exam_mc" -o "$OUT/pred/merged-moelora-$lang.pred" "$exam"
done

step "8/8 score and the report"
models="base $METHODS merged-lora merged-moelora"
: > "$OUT/scores.tsv"
for model in $models; do
	for lang in zh en; do
		score --tsv --seed $SEED "$OUT/pred/$model-$lang.pred" |
			awk -F '\t' -v m="$model" -v l="$lang" '$1 == "all" { print m "\t" l "\t" $5 "\t" $8 "\t" $10 "\t" $11 "\t" $7 }' \
			>> "$OUT/scores.tsv"
	done
done
: > "$OUT/paired.tsv"
for m in $METHODS; do
	for against in base lora; do
		[ $m = $against ] && continue
		for lang in zh en; do
			score --tsv --seed $SEED --baseline "$OUT/pred/$against-$lang.pred" "$OUT/pred/$m-$lang.pred" |
				awk -F '\t' -v m="$m" -v b="$against" -v l="$lang" \
				'$1 == "all" { print m "\t" b "\t" l "\t" $15 "\t" $16 "\t" $17 "\t" $18 "\t" $19 "\t" $20 }' >> "$OUT/paired.tsv"
		done
	done
done
for lang in zh en; do
	awk -F '\t' -v l=$lang '$2 == l { print $1 "\t" $4 "\t" $5 "\t" $6 }' "$OUT/scores.tsv" |
		awk -v kind=bars -v ref=0.25 -v title="held-out exam ($lang): accuracy, 95% bootstrap interval; dashed: chance" \
		-f "$top/scripts/svg-chart.awk" > "$OUT/charts/scores-$lang.svg"
done
for m in $METHODS; do
	stream2json -N "$OUT/runs/$m/metrics.mpk" |
		sed -n 's/^{"step":\([0-9]*\),"loss":\([-0-9.e]*\).*/\1	\2/p' | awk -v m=$m '{ print m "\t" $0 }'
done | awk -v kind=lines -v title="training loss (mean cross-entropy per answer token)" -v xlabel=step -v ylabel=loss \
	-f "$top/scripts/svg-chart.awk" > "$OUT/charts/loss.svg"
# Expert load per task at the last step: the share of each task's tokens routed to each expert (mingmoe,
# sparsedoctor; averaged over the routed layers) or the task's gate weights (moelora).
for m in moelora mingmoe sparsedoctor; do
	stream2json -N "$OUT/runs/$m/metrics.mpk" | tail -1 |
		sed -n 's/.*"task_load":{\([^}]*\)}.*/\1/p' | tr -d '"[' | tr ']' '\n' | sed 's/^,//' |
		awk -F '[:,]' 'NF > 1 { for (i = 2; i <= NF; i++) print $1 "\t" i - 2 "\t" $i }' |
		awk -v kind=heat -v title="$m: expert load per task (last step)" -f "$top/scripts/svg-chart.awk" \
		> "$OUT/charts/load-$m.svg"
done

total=$(($(date +%s) - start))
"$top/scripts/demo-report.sh" "$OUT" "$STEPS" "$total" > "$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"
step "done in ${total}s: $REPORT"
