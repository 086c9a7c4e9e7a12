#!/bin/sh
# pipelines/*.mk on a tiny checkpoint with small settings: each recipe runs end to end into a score report,
# a second make does nothing, and a changed task file redoes only that task and what depends on it.
. "$MEDMOE_TOP/tests/lib.sh"
: "${OMP_NUM_THREADS:=1}"; export OMP_NUM_THREADS
ok "a tiny base and a small data directory" "
	init-base --arch qwen3 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --tokenizer bytes -o base &&
	$MEDMOE_TOP/scripts/demo-data.sh $MEDMOE_TOP/demo/facts.tsv gen &&
	mkdir -p data/train data/exam/medqa && cp gen/drug_qa.jsonl gen/triage.jsonl data/train/ &&
	head -12 gen/exam-en.jsonl > data/exam/medqa/en.jsonl && head -12 gen/exam-zh.jsonl > data/exam/medqa/zh.jsonl"
small="BASE=base DATA=data SEQ_LEN=256 TRAIN_FLAGS='--steps 2 --batch-tokens 512' BIN=$MEDMOE_BIN"
for m in moelora mingmoe sparsedoctor; do
	extra=""; [ $m = moelora ] && extra="EVAL_TASK=drug_qa"
	ok "$m.mk: tokenize -> mix-tasks -> shard -> train-experts -> eval-exam -> score report" "
		make -s -f $MEDMOE_TOP/pipelines/$m.mk $small $extra OUT=out-$m > make1.log 2>&1 &&
		grep -q '^| all |' out-$m/report.md && test -f out-$m/run/adapter.safetensors &&
		grep -q '\"method\": \"$m\"' out-$m/run/adapter_config.json && test -f out-$m/scores.svg"
	ok "$m.mk: a second make runs nothing" "
		make -f $MEDMOE_TOP/pipelines/$m.mk $small $extra OUT=out-$m > make2.log 2>&1 &&
		! grep -q 'bin/' make2.log"
done
ok "a changed task file redoes that task and what follows, not the other task nor the exam prompts" "
	sleep 1 && touch data/train/triage.jsonl &&
	make -f $MEDMOE_TOP/pipelines/mingmoe.mk $small OUT=out-mingmoe > make3.log 2>&1 &&
	grep -q 'task triage' make3.log && ! grep -q 'task drug_qa' make3.log && ! grep -q -- '--exam' make3.log &&
	grep -q train-experts make3.log && grep -q 'adapter out-mingmoe/run' make3.log"
ok "new training settings retrain without re-tokenizing or re-sharding" "
	make -f $MEDMOE_TOP/pipelines/mingmoe.mk BASE=base DATA=data SEQ_LEN=256 BIN=$MEDMOE_BIN \
		TRAIN_FLAGS='--steps 3 --batch-tokens 512' OUT=out-mingmoe > make4.log 2>&1 &&
	grep -q train-experts make4.log && ! grep -q 'bin/tokenize' make4.log && ! grep -q 'bin/shard' make4.log"
ok_fails 2 "BASE= is required" "make -s -f $MEDMOE_TOP/pipelines/mingmoe.mk DATA=data"
ok_fails 2 "DEVICE=cuda is refused while the CUDA backend is missing" "
	make -s -f $MEDMOE_TOP/pipelines/mingmoe.mk $small DEVICE=cuda OUT=x"
done_testing
