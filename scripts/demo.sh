#!/bin/sh
# demo.sh — `make demo`: the whole medmoe pipeline on the embedded default, with nothing fetched.
#
# A bilingual multi-task corpus and a held-out exam generated from demo/facts.tsv, a tiny random Qwen3-shaped
# checkpoint whose vocabulary init-base learns from that corpus, then
#   tokenize → mix-tasks → shard → train-experts (lora, moelora, mingmoe, sparsedoctor) → merge-adapters
#   → eval-exam → score (paired against the untrained base and against lora) → demo/report.md + SVG charts.
# Settings through the environment: DEMO_STEPS (training steps per method, default 800), DEMO_LR (default
# 4e-3), DEMO_OUT (default demo/out), DEMO_REPORT (default demo/report.md), DEMO_METHODS (default all four),
# DEMO_FACTS (default demo/facts.tsv), DEMO_MC_SHUFFLES (option orders per training question, default 1, read by
# demo-data.sh), DEMO_ARGS (more train-experts options, for experiments).
# Why these settings, and what they were measured against: the README's demo section.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MEDMOE_BIN:-$top/bin}
PATH="$BIN:$top/scripts:$PATH"
OUT=${DEMO_OUT:-$top/demo/out}
REPORT=${DEMO_REPORT:-$top/demo/report.md}
STEPS=${DEMO_STEPS:-800}
BATCH=1024
LR=${DEMO_LR:-4e-3}
METHODS=${DEMO_METHODS:-lora moelora mingmoe sparsedoctor}
FACTS=${DEMO_FACTS:-$top/demo/facts.tsv}
SEED=1
: "${OMP_WAIT_POLICY:=passive}"
export PATH OMP_WAIT_POLICY
start=$(date +%s)
step() { printf '\n== [%4ss] %s\n' "$(($(date +%s) - start))" "$*" >&2; }
# `times` prints the CPU time of this shell's finished children; it must run in this shell, not in a $(...)
# subshell (which has no children of its own), hence the files.
timed() {  # timed NAME CMD...: run, and remember its wall-clock and CPU seconds in OUT/times.tsv
	name=$1; shift
	rc=0; t0=$(date +%s); times > "$OUT/times.$name"; "$@" || rc=$?; times > "$OUT/times.$name.end"
	c=$(cat "$OUT/times.$name" "$OUT/times.$name.end" | awk 'NR % 2 == 0 { t = 0
		for (i = 1; i <= 2; i++) { split($i, p, "m"); t += p[1] * 60 + p[2] } c[NR / 2] = t } END { printf "%.1f", c[2] - c[1] }')
	rm -f "$OUT/times.$name" "$OUT/times.$name.end"
	echo "$name	$(($(date +%s) - t0))	$c" >> "$OUT/times.tsv"
	return $rc
}
has() { case " $METHODS " in *" $1 "*) return 0;; esac; return 1; }

rm -rf "$OUT"
mkdir -p "$OUT/tokens" "$OUT/exam" "$OUT/runs" "$OUT/merged" "$OUT/pred" "$OUT/charts"
: > "$OUT/times.tsv"
TASKS="drug_qa triage exam_mc"
EXAMS="zh en seen-zh seen-en"

step "1/8 the corpus: three bilingual tasks and a held-out exam, from $(basename "$FACTS")"
demo-data.sh "$FACTS" "$OUT/data"
wc -l "$OUT"/data/*.jsonl >&2

step "2/8 a tiny base model: Qwen3 shape, 4 layers, hidden 128, a vocabulary learned from the training text"
# The training conversations' text, one line each, is what init-base learns its BPE merges from (the exam is
# not in it).  --init-std 0.1: with transformers' 0.02 the frozen random LM head cannot give any token more
# than about 1% probability, so the loss has almost nothing to descend.
for task in $TASKS; do jq -r '.conversations[].value' "$OUT/data/$task.jsonl"; done > "$OUT/corpus.txt"
init-base --arch qwen3 --layers 4 --hidden 128 --heads 4 --kv-heads 2 --ffn 384 --init-std 0.1 \
	--bpe-corpus "$OUT/corpus.txt" --seed $SEED -o "$OUT/base"
BASE=$OUT/base

step "3/8 tokenize (chatml; loss on the answers only) and the exam prompts (the same chatml turn)"
for task in $TASKS; do
	tokenize --tokenizer "$BASE" --template chatml --task $task -o "$OUT/tokens/$task.mpk" "$OUT/data/$task.jsonl"
done
# The exam goes through the same template as exam_mc's training examples: the user turn is the MedQA prompt,
# and the option letter is the first token of the assistant's turn, where eval-exam scores it.
for exam in $EXAMS; do
	case $exam in seen-*) src=$OUT/data/$exam.jsonl;; *) src=$OUT/data/exam-$exam.jsonl;; esac
	tokenize -q --exam medqa --template chatml --tokenizer "$BASE" -o "$OUT/exam/$exam.exam" "$src"
done

step "4/8 mix-tasks (proportional: every example once) and shard (512-token sequences)"
# Every training question once per epoch: the exam's rephrased questions ask trained questions again, so each
# must be in the shards (temperature sampling would leave a quarter of exam_mc's examples out, and a
# validation split some more; the held-out exam is this demo's validation).
mix-tasks --proportional --seed $SEED --stats "$OUT/mix-stats.json" -o "$OUT/mixed.mpk" "$OUT"/tokens/*.mpk
shard --seq-len 512 -o "$OUT/shards" "$OUT/mixed.mpk"
shard --verify "$OUT/shards"

step "5/8 train-experts: $STEPS steps of $BATCH tokens for each method, two at a time"
# train ONE: one method's run, its log in OUT/runs/ONE.log and its seconds in OUT/times.tsv
train() {
	# SparseDoctor scores every token against every queue entry: the reference 4096 per expert is sized for
	# millions of tokens, not this corpus of a few ten thousand; 32 per expert keeps the queue a few batches
	# deep.
	extra=""; [ $1 = sparsedoctor ] && extra="--con-queue 32"
	# Dropout 0: the demo asks the adapters to memorise facts, which dropout only slows (the presets' 0.05 and 0.1
	# are for generalising from large corpora).  DEMO_ARGS: more train-experts options, for experiments.
	extra="$extra --dropout 0 ${DEMO_ARGS:-}"
	# shellcheck disable=SC2086
	timed "train-$1" env OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" train-experts -q --base "$BASE" --method $1 --steps $STEPS --batch-tokens $BATCH --lr "$LR" \
		--warmup 20 --eval-every 0 --save-every 0 --seed $SEED $extra -o "$OUT/runs/$1" "$OUT/shards" \
		2> "$OUT/runs/$1.log" || { cat "$OUT/runs/$1.log" >&2; return 1; }
	step "    $1 done ($(awk -F '\t' -v k="train-$1" '$1 == k { print $2 }' "$OUT/times.tsv") s)"
}
# Two lanes of one thread each (unless OMP_NUM_THREADS says otherwise) keep both cores busy: a model this small
# gains little from a second OpenMP thread.  SparseDoctor, the slowest, runs beside the cheapest, LoRA.
lane_a="" lane_b=""
for m in $METHODS; do
	case $m in sparsedoctor|lora) lane_a="$lane_a $m";; *) lane_b="$lane_b $m";; esac
done
[ -n "$lane_a" ] || { lane_a=$lane_b; lane_b=""; }
run_lane() { for m in "$@"; do train $m || return 1; done; }
# shellcheck disable=SC2086
run_lane $lane_a & pid_a=$!
# shellcheck disable=SC2086
run_lane $lane_b || { wait $pid_a; exit 1; }
wait $pid_a || exit 1

step "6/8 merge-adapters: lora into the base; moelora's exam_mc task into the base"
models="base $METHODS"
if has lora; then
	merge-adapters --base "$BASE" --adapter "$OUT/runs/lora" -o "$OUT/merged/lora"
	models="$models merged-lora"
fi
if has moelora; then
	merge-adapters --base "$BASE" --adapter "$OUT/runs/moelora" --task exam_mc -o "$OUT/merged/moelora-exam_mc"
	models="$models merged-moelora"
fi
echo "$models" > "$OUT/models"

step "7/8 eval-exam: the option letters' next-token log-likelihood; lora also by generating its answer"
for exam in $EXAMS; do
	x=$OUT/exam/$exam.exam
	timed "eval" eval-exam -q --base "$BASE" -o "$OUT/pred/base-$exam.pred" "$x"
	for m in $METHODS; do
		task=""; [ $m = moelora ] && task="--task exam_mc"
		# shellcheck disable=SC2086
		timed "eval" eval-exam -q --base "$BASE" --adapter "$OUT/runs/$m" $task -o "$OUT/pred/$m-$exam.pred" "$x"
	done
	if has lora; then
		eval-exam -q --base "$OUT/merged/lora" -o "$OUT/pred/merged-lora-$exam.pred" "$x"
	fi
	if has moelora; then
		eval-exam -q --base "$OUT/merged/moelora-exam_mc" -o "$OUT/pred/merged-moelora-$exam.pred" "$x"
	fi
done
if has lora; then
	for exam in zh en; do
		timed "eval" eval-exam -q --mode generate --max-new-tokens 8 --base "$BASE" --adapter "$OUT/runs/lora" \
			-o "$OUT/pred/lora-generate-$exam.pred" "$OUT/exam/$exam.exam"
	done
fi

step "8/8 score and the report"
# scores.tsv: model, exam, group ("all" or the kind of question), accuracy, interval, n, unparsed rate
: > "$OUT/scores.tsv"
for model in $models lora-generate; do
	for exam in $EXAMS; do
		f=$OUT/pred/$model-$exam.pred
		[ -f "$f" ] || continue
		score --tsv --seed $SEED "$f" | awk -F '\t' -v m="$model" -v x="$exam" '
			$1 == "all" || $1 == "category" { g = $1 == "all" ? "all" : $4
				print m "\t" x "\t" g "\t" $8 "\t" $10 "\t" $11 "\t" $5 "\t" $7 / $5 }' >> "$OUT/scores.tsv"
	done
done
# paired.tsv: method, baseline, exam, group, difference, interval, b, c, McNemar p
: > "$OUT/paired.tsv"
for m in $METHODS; do
	for against in base lora; do
		[ $m = $against ] && continue
		has $against || [ $against = base ] || continue
		for exam in $EXAMS; do
			score --tsv --seed $SEED --baseline "$OUT/pred/$against-$exam.pred" "$OUT/pred/$m-$exam.pred" |
				awk -F '\t' -v m="$m" -v b="$against" -v x="$exam" '
				$1 == "all" || $1 == "category" { g = $1 == "all" ? "all" : $4
					print m "\t" b "\t" x "\t" g "\t" $15 "\t" $16 "\t" $17 "\t" $18 "\t" $19 "\t" $20 }' \
				>> "$OUT/paired.tsv"
		done
	done
done
# merged.tsv: merged model, its unmerged twin, exam, questions, same prediction, largest option-score difference
: > "$OUT/merged.tsv"
for pair in "merged-lora lora" "merged-moelora moelora"; do
	set -- $pair
	for exam in $EXAMS; do
		[ -f "$OUT/pred/$1-$exam.pred" ] || continue
		stream2json -N "$OUT/pred/$1-$exam.pred" | jq -c '[.predicted, .scores]' > "$OUT/a.jsonl"
		stream2json -N "$OUT/pred/$2-$exam.pred" | jq -c '[.predicted, .scores]' > "$OUT/b.jsonl"
		paste -d '\n' "$OUT/a.jsonl" "$OUT/b.jsonl" | jq -s -r --arg m "$1" --arg u "$2" --arg x "$exam" '
			[range(0; length; 2) as $i | [.[$i], .[$i + 1]]] |
			[$m, $u, $x, length, (map(select(.[0][0] == .[1][0])) | length),
			 (map([.[0][1], .[1][1]] | transpose | map(.[0] - .[1] | fabs) | max) | max)] | @tsv' >> "$OUT/merged.tsv"
	done
done
rm -f "$OUT/a.jsonl" "$OUT/b.jsonl"

for kind in rephrased reordered reversed; do
	for model in $models; do
		for exam in zh en; do
			awk -F '\t' -v m="$model" -v x="$exam" -v k="$kind" '$1 == m && $2 == x && $3 == k {
				print m " (" x ")\t" $4 "\t" $5 "\t" $6 }' "$OUT/scores.tsv"
		done
	done | awk -v kind=bars -v ref=0.25 -v title="held-out, $kind: accuracy, 95% bootstrap interval; dashed: chance" \
		-f "$top/scripts/svg-chart.awk" > "$OUT/charts/scores-$kind.svg"
done
for m in $METHODS; do
	stream2json -N "$OUT/runs/$m/metrics.mpk" |
		sed -n 's/^{"step":\([0-9]*\),"loss":\([-0-9.e]*\).*/\1	\2/p' | awk -v m=$m '{ print m "\t" $0 }'
done | awk -v kind=lines -v title="training loss (mean cross-entropy per answer token)" -v xlabel=step -v ylabel=loss \
	-f "$top/scripts/svg-chart.awk" > "$OUT/charts/loss.svg"
# Expert load per task at the last step: the share of each task's tokens routed to each expert (mingmoe,
# sparsedoctor; averaged over the routed layers) or the task's gate weights (moelora).
for m in moelora mingmoe sparsedoctor; do
	has $m || continue
	stream2json -N "$OUT/runs/$m/metrics.mpk" | tail -1 |
		sed -n 's/.*"task_load":{\([^}]*\)}.*/\1/p' | tr -d '"[' | tr ']' '\n' | sed 's/^,//' |
		awk -F '[:,]' 'NF > 1 { for (i = 2; i <= NF; i++) print $1 "\t" i - 2 "\t" $i }' |
		awk -v kind=heat -v title="$m: expert load per task (last step)" -f "$top/scripts/svg-chart.awk" \
		> "$OUT/charts/load-$m.svg"
done

total=$(($(date +%s) - start))
# CPU time of every program run (user + system): this shell's children, the other lane's included (it was
# waited for).
times > "$OUT/times.txt"
cpu=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); t += p[1] * 60 + p[2] } printf "%.0f", t }' "$OUT/times.txt")
rm -f "$OUT/times.txt"
"$top/scripts/demo-report.sh" "$OUT" "$STEPS" "$LR" "$total" "$cpu" "$(dirname "$REPORT")" "$BATCH" > "$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"
step "done in ${total}s: $REPORT"
