#!/bin/sh
# check-gpu: the harness of make check-gpu on this machine — tests/gpu/check_model's comparisons (its CPU self-test),
# tests/gpu/mkdata.sh's inputs, and tests/gpu/check-gpu.sh run to its table, SKIPping the GPU parts where there
# is no GPU.  Where there is one, the last test is left to make check-gpu itself.
. "$(dirname "$0")/../lib.sh"
: "${MEDMOE_UNIT:=$MEDMOE_TOP/build/tests}"
check_model=$MEDMOE_UNIT/gpu/check_model
OMP_NUM_THREADS=1
export OMP_NUM_THREADS

ok "two tiny qwen2 checkpoints, f32 and bf16 weights" \
	'init-base --arch qwen2 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.1 -o f32 &&
	 init-base --arch qwen2 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.1 --dtype bf16 -o bf16'
ok "check_model -c: the CPU against itself passes every method and mode with zero error" \
	'"$check_model" -c -s 3 f32 bf16 > self.rows && cat self.rows && [ $(grep -c "	PASS	logits 0, loss 0, train ce 0, aux 0; grads max 0 " self.rows) = 8 ] &&
	 grep -q "sparsedoctor	bf16	PASS.*0 of 1440 routing choices differ; recompute same bytes" self.rows'
if "$check_model" -p > gpu.txt 2>&1; then
	have_gpu=1
else
	have_gpu=0
fi
if [ $have_gpu = 0 ]; then
	ok "check_model without a GPU: every row SKIPs with the bf16 floor, exit 0" \
		'"$check_model" -m lora f32 bf16 > skip.rows 2> skip.err && [ $(grep -c "	SKIP	no GPU here" skip.rows) = 2 ] &&
		 grep -q "bf16 floor: logits 0\.0" skip.rows && grep -q "every GPU comparison is SKIPPED" skip.err'
else
	skip "check_model without a GPU" "this machine has one: $(cat gpu.txt)"
fi
ok "mkdata.sh: shards with the byte tokenizer's sha256, and the exam when ../shared is there" \
	'MEDMOE_TOP=$MEDMOE_TOP sh "$MEDMOE_TOP/tests/gpu/mkdata.sh" data && shard --verify data/shards > /dev/null &&
	 grep -q "$(cat data/tokenizer.sha256)" data/shards/manifest.json &&
	 if [ -d "$SHARED/data/cmmlu" ]; then [ $(stream2json -N data/exam.mpk | wc -l) = 148 ]; else [ ! -f data/exam.mpk ]; fi'
if [ $have_gpu = 0 ]; then
	ok "check-gpu.sh without a GPU: the CPU sides run, the GPU rows SKIP, the table ends with 0 failed" \
		'MEDMOE_TESTS=$MEDMOE_UNIT MEDMOE_GPU_TESTS=$MEDMOE_UNIT/gpu MEDMOE_GPU_DATA=$PWD/data MEDMOE_CHECK_DIR=$PWD/check \
		 MEDMOE_CHECK_SEED=5 sh "$MEDMOE_TOP/tests/gpu/check-gpu.sh" --quick > table.txt 2>&1; rc=$?; tail -5 table.txt; [ $rc = 0 ] &&
		 grep -q "^check-gpu: [0-9]* passed, 0 failed, [0-9]* skipped" table.txt &&
		 grep -q "NO GPU" table.txt && grep -q "^train 10 steps  *sparsedoctor bf16  *SKIP  *no GPU (CPU loss" table.txt &&
		 grep -q "^ops: test_backend_ops  *cpu  *PASS" table.txt'
else
	skip "check-gpu.sh without a GPU" "this machine has one: run make check-gpu"
fi
done_testing
