#!/bin/sh
# pipelines/cron/nightly-eval.sh, run as cron would: a lock, the newest checkpoint, a history, a trend chart,
# and a non-zero exit on a significant regression against the previous night.
. "$MEDMOE_TOP/tests/lib.sh"
: "${OMP_NUM_THREADS:=1}"; export OMP_NUM_THREADS
NIGHTLY=$MEDMOE_TOP/pipelines/cron/nightly-eval.sh
# Two checkpoints, and an exam whose answer key is what the first one predicts: the first scores 100%, the
# second (other weights) about chance, a regression no test can miss.
ok "two checkpoints and an exam keyed to the first" "
	init-base --arch qwen3 --layers 1 --hidden 32 --heads 2 --kv-heads 1 --ffn 64 --tokenizer bytes --seed 1 -o a &&
	init-base --arch qwen3 --layers 1 --hidden 32 --heads 2 --kv-heads 1 --ffn 64 --tokenizer bytes --seed 2 -o b &&
	$MEDMOE_TOP/scripts/demo-data.sh $MEDMOE_TOP/demo/facts.tsv gen &&
	tokenize -q --exam medqa --tokenizer a -o draft.exam gen/exam-en.jsonl &&
	eval-exam -q --base a -o draft.pred draft.exam &&
	stream2json -N draft.pred | jq -r .predicted > keys &&
	paste -d '\t' keys gen/exam-en.jsonl | while IFS='	' read -r key line; do
		printf '%s\n' \"\$line\" | jq -c --arg k \"\$key\" '.answer_idx = \$k | .answer = .options[\$k]'
	done > keyed.jsonl &&
	tokenize -q --exam medqa --tokenizer a -o en.exam keyed.jsonl"
mkdir -p runs state
cat > nightly.conf <<CONF
BASE=$SCRATCH/a
RUNS=$SCRATCH/runs
EXAMS="$SCRATCH/en.exam"
STATE=$SCRATCH/state
BIN=$MEDMOE_BIN
CONF
ok "night 1: the newest checkpoint is evaluated, exit 0, one history line, a trend chart" "
	cp -r a runs/night1 && sh $NIGHTLY nightly.conf && test \$(wc -l < state/history.jsonl) -eq 1 &&
	xmllint --noout state/trend.svg && grep -q night1 state/history.jsonl"
ok "night 2: a worse checkpoint is newer: exit 3 (significant regression), history grows" "
	sleep 1 && cp -r b runs/night2 && touch runs/night2 &&
	{ sh $NIGHTLY nightly.conf 2> night2.err; test \$? -eq 3; } && grep -q regression night2.err &&
	test \$(wc -l < state/history.jsonl) -eq 2 && grep -q night2 state/history.jsonl"
ok "night 3: the same checkpoint again: no regression against night 2, exit 0" "
	sh $NIGHTLY nightly.conf && test \$(wc -l < state/history.jsonl) -eq 3"
ok "a run that finds the lock held gives up at once with exit 75" "
	( flock 9; sh $NIGHTLY nightly.conf; echo \$? > rc ) 9> state/lock && test \$(cat rc) -eq 75 &&
	test \$(wc -l < state/history.jsonl) -eq 3"
ok_fails 1 "no checkpoint at all is a failure" "
	mkdir -p empty && sed 's|RUNS=.*|RUNS=$SCRATCH/empty|' nightly.conf > empty.conf && sh $NIGHTLY empty.conf"
ok "the example crontab line names the script" "grep -q 'nightly-eval.sh' $MEDMOE_TOP/pipelines/cron/crontab.example"
done_testing
