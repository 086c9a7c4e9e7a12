#!/bin/sh
# merge-adapters: the outputs of every method on tiny trained runs (merged checkpoint, PEFT export, per task,
# attention-only split, shards, bf16), refusals without partial output.  The logits are checked by
# tests/unit/test_merge.c (against the adapter, PEFT and transformers).
. "$(dirname "$0")/../lib.sh"
OMP_NUM_THREADS=1
export OMP_NUM_THREADS

ok "tiny bases (f32, bf16), three learnable tasks, a short run of every method" \
	'cc -std=c11 -O1 -D_GNU_SOURCE -o mklearn "$MEDMOE_TOP/tests/helpers/mklearn.c" $(pkg-config --cflags --libs msgpack) &&
	 init-base --arch qwen2 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.15 -o base &&
	 init-base --arch qwen3 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --dtype bf16 -o base16 &&
	 sha=$(sha256sum base/tokenizer.json | cut -c1-64) && ./mklearn -k $sha -V 265 -n 120 -t 3 -l 24 > learn.mpk &&
	 shard -q --seq-len 64 -o shards learn.mpk &&
	 c="--batch-tokens 128 --lr 3e-3 --con-queue 16 --con-proj 8 -q --steps 4" &&
	 for m in lora moelora mingmoe sparsedoctor; do train-experts --base base $c --method $m -o run-$m shards || exit 1; done &&
	 train-experts --base base16 $c --method lora -o run16 shards'
# the first bytes of a safetensors file: its JSON header
header() { head -c 8192 "$1" | tr -c "[:print:]" " "; }

ok "lora: a checkpoint directory with the base's files and provenance in config.json" \
	'merge-adapters --base base --adapter run-lora -o m-lora && [ -s m-lora/model.safetensors ] &&
	 cmp base/tokenizer.json m-lora/tokenizer.json && grep -q "\"medmoe_merged\"" m-lora/config.json &&
	 grep -q "\"hidden_size\": 64" m-lora/config.json && ! ls | grep -q tmp'
ok "the merged bytes do not depend on the thread count" \
	'OMP_NUM_THREADS=2 merge-adapters --base base --adapter run-lora -o m-lora2 && cmp m-lora/model.safetensors m-lora2/model.safetensors'
ok "lora --peft: adapter_config.json (LORA, r, lora_alpha) and PEFT tensor names" \
	'merge-adapters --base base --adapter run-lora --peft -o p-lora &&
	 grep -q "\"peft_type\": \"LORA\"" p-lora/adapter_config.json && grep -q "\"r\": 16" p-lora/adapter_config.json &&
	 grep -q "\"lora_alpha\": 32" p-lora/adapter_config.json && grep -q "\"task_type\": \"CAUSAL_LM\"" p-lora/adapter_config.json &&
	 header p-lora/adapter_model.safetensors | grep -q "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"'
ok "bf16 base: the merged checkpoint stays bf16" \
	'merge-adapters --base base16 --adapter run16 -o m16 && header m16/model.safetensors | grep -q BF16 &&
	 ! header m16/model.safetensors | grep -q F32'
ok "--max-shard-size: shards and model.safetensors.index.json" \
	'merge-adapters --base base --adapter run-lora --max-shard-size 100KB -o m-shard &&
	 [ -f m-shard/model-00001-of-00006.safetensors ] && [ ! -f m-shard/model.safetensors ] &&
	 grep -q "\"total_size\": 432896" m-shard/model.safetensors.index.json &&
	 grep -q "\"model.norm.weight\": \"model-0000" m-shard/model.safetensors.index.json'
ok "moelora --task: one task's checkpoint" \
	'merge-adapters --base base --adapter run-moelora --task task1 -o m-t1 && grep -q "\"task\": \"task1\"" m-t1/config.json'
ok "moelora --all-tasks: a checkpoint per task, different weights" \
	'merge-adapters --base base --adapter run-moelora --all-tasks -o m-all &&
	 for t in task0 task1 task2; do [ -s m-all/$t/model.safetensors ] || exit 1; done &&
	 ! cmp -s m-all/task0/model.safetensors m-all/task2/model.safetensors'
ok "moelora --all-tasks --peft: a PEFT adapter per task, r = the total rank" \
	'merge-adapters --base base --adapter run-moelora --all-tasks --peft -o p-all &&
	 grep -q "\"r\": 16" p-all/task2/adapter_config.json && [ -s p-all/task0/adapter_model.safetensors ]'
for m in mingmoe sparsedoctor; do
	ok_fails 65 "$m: the routed experts are refused, saying why, without output" \
		"merge-adapters --base base --adapter run-$m -o m-$m 2> e; rc=\$?; cat e >&2; grep -q 'cannot be merged exactly' e &&
		 [ ! -e m-$m ] && ! ls | grep -q tmp && exit \$rc"
	ok "$m --attention-only: merged attention (model/) and an experts-only adapter for it (experts/)" \
		"merge-adapters --base base --adapter run-$m --attention-only -o m-$m && [ -s m-$m/model/model.safetensors ] &&
		 grep -q '\"method\": \"$m\"' m-$m/experts/adapter_config.json &&
		 grep -q \"\$(sha256sum m-$m/model/config.json | cut -c1-64)\" m-$m/experts/adapter_config.json &&
		 ! header m-$m/experts/adapter.safetensors | grep -q self_attn && header m-$m/experts/adapter.safetensors | grep -q router"
done

# refusals: exit 65 naming what is wrong, and no OUT (nor a temporary) left
ok_fails 65 "an adapter trained on another base (config.json) names both hashes" \
	'init-base --arch qwen2 --layers 2 --hidden 32 --heads 4 --kv-heads 2 --ffn 64 -o other &&
	 merge-adapters --base other --adapter run-lora -o bad 2> e; rc=$?; cat e >&2;
	 grep -q "$(sha256sum other/config.json | cut -c1-64)" e && grep -q "$(sha256sum base/config.json | cut -c1-64)" e &&
	 [ ! -e bad ] && exit $rc'
ok_fails 65 "an adapter trained with another tokenizer names both" \
	'cp -r base othertok && printf " " >> othertok/tokenizer.json &&
	 merge-adapters --base othertok --adapter run-lora -o bad 2> e; rc=$?; cat e >&2;
	 grep -q "$(sha256sum othertok/tokenizer.json | cut -c1-64)" e && grep -q "$(sha256sum base/tokenizer.json | cut -c1-64)" e &&
	 [ ! -e bad ] && exit $rc'
ok_fails 65 "an unknown task lists the known ones" \
	'merge-adapters --base base --adapter run-moelora --task nope -o bad 2> e; rc=$?; cat e >&2;
	 grep -q "task0, task1, task2" e && [ ! -e bad ] && exit $rc'
ok_fails 65 "a truncated adapter file" \
	'cp -r run-lora trunc && head -c 5000 run-lora/adapter.safetensors > trunc/adapter.safetensors &&
	 merge-adapters --base base --adapter trunc -o bad; rc=$?; [ ! -e bad ] && ! ls | grep -q tmp && exit $rc'
ok_fails 2 "moelora without --task or --all-tasks" 'merge-adapters --base base --adapter run-moelora -o bad'
ok_fails 2 "--task on a lora adapter" 'merge-adapters --base base --adapter run-lora --task task0 -o bad'
ok_fails 2 "a malformed --max-shard-size" 'merge-adapters --base base --adapter run-lora --max-shard-size 5XB -o bad'
ok_fails 1 "an existing OUT is not replaced without --force" 'merge-adapters --base base --adapter run-lora -o m-lora'
ok "... and is with --force" \
	'merge-adapters --base base --adapter run-lora --peft --force -o m-lora &&
	 [ -f m-lora/adapter_config.json ] && [ ! -f m-lora/model.safetensors ]'
# A base written before init-base wrote tokenizer_config.json and generation_config.json (tests/fixtures/eval/model):
# the merged checkpoint gets them, and the pad id its config.json lacked, as transformers reads them in
# tests/reference/make_checkpoint_fixtures.py (which also checked that generate stops at the eos and that lm-eval
# runs on it with no extra arguments).
ok "a base without tokenizer_config.json: the merged checkpoint gets the files transformers reads its specials from" \
	'merge-adapters --base "$FIXTURES/eval/model" --adapter "$FIXTURES/eval/lora_run" -o m-old &&
	 jq -n -r --arg case merged_lora --slurpfile want "$FIXTURES/checkpoint/expected.json" --slurpfile cfg m-old/config.json \
		--slurpfile gen m-old/generation_config.json --slurpfile tok m-old/tokenizer_config.json \
		-f "$MEDMOE_TOP/tests/helpers/hf-files.jq" > diff.txt && cat diff.txt && test "$(cat diff.txt)" = same'
ok "the base's own tokenizer_config.json and generation_config.json are copied as they are" \
	'cmp base/tokenizer_config.json m-lora2/tokenizer_config.json && cmp base/generation_config.json m-lora2/generation_config.json'
done_testing
