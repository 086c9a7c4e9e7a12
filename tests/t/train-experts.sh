#!/bin/sh
# train-experts: every method learns a small multi-task set, metrics carry the expert load per task, exact resume,
# refusals (another tokenizer, a NaN loss, a full disk while checkpointing).
. "$(dirname "$0")/../lib.sh"
# tiny matrices: one thread is fastest, and the suite runs two tests at a time on two cores
OMP_NUM_THREADS=1
export OMP_NUM_THREADS

ok "build the learnable-task writer" \
	'cc -std=c11 -O1 -D_GNU_SOURCE -o mklearn "$MEDMOE_TOP/tests/helpers/mklearn.c" $(pkg-config --cflags --libs msgpack)'
ok "a tiny base and three learnable tasks in shards" \
	'init-base --arch qwen2 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.15 -o base &&
	 sha=$(sha256sum base/tokenizer.json | cut -c1-64) && ./mklearn -k $sha -V 265 -n 600 -t 3 -l 24 > learn.mpk &&
	 shard -q --seq-len 64 --valid 0.1 -o shards learn.mpk'
# first and last training loss of a run
loss_at() { stream2json "$1/metrics.mpk" | sed -n "$2p" | grep -o '"loss":[-0-9.e]*' | cut -d: -f2; }
common="--base base --batch-tokens 256 --lr 3e-3 --eval-every 50 --con-queue 32 --con-proj 8 -q"
for m in lora moelora mingmoe sparsedoctor; do
	ok "$m: training loss falls below a fifth of its start in 150 steps" \
		"train-experts $common --method $m --steps 150 -o run-$m shards &&
		 first=\$(loss_at run-$m 2) && last=\$(loss_at run-$m '\$') && echo \"\$first -> \$last\" &&
		 awk -v a=\"\$first\" -v b=\"\$last\" 'BEGIN { exit !(a > 5 && b < a / 5) }'"
	ok "$m: the run directory holds the adapter, its config and a valid metrics stream" \
		"[ -f run-$m/adapter.safetensors ] && grep -q '\"method\": \"$m\"' run-$m/adapter_config.json &&
		 grep -q tokenizer_sha256 run-$m/adapter_config.json && grep -q '\"name\": \"task2\"' run-$m/adapter_config.json &&
		 stream2json --validate run-$m/metrics.mpk > /dev/null && stream2json run-$m/metrics.mpk | tail -1 | grep -q val_loss"
done
ok "lora: PEFT's tensor names and LoraConfig fields" \
	'grep -q "\"peft_type\": \"LORA\"" run-lora/adapter_config.json &&
	 head -c 4000 run-lora/adapter.safetensors | grep -q "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"'
for m in mingmoe sparsedoctor; do
	ok "$m: expert load per layer and per task in the metrics" \
		"stream2json run-$m/metrics.mpk | tail -1 | grep -q '\"expert_load\":\[\[' &&
		 stream2json run-$m/metrics.mpk | tail -1 | grep -q '\"task_load\":{\"task0\":\[.*\"task2\":\['"
done
ok "moelora: the gate weights per task in the metrics" \
	'stream2json run-moelora/metrics.mpk | tail -1 | grep -q "\"task_load\":{\"task0\":\["'
ok "sparsedoctor: the contrastive loss is reported and the queue is in the state" \
	'stream2json run-sparsedoctor/metrics.mpk | tail -1 | grep -q "\"contrastive_loss\":0\.[0-9]" &&
	 head -c 2000 run-sparsedoctor/state/optimizer.safetensors | grep -q queue_positions'

# exact resume: 20 steps in one go vs 10, --resume, 10
for m in lora moelora mingmoe sparsedoctor; do
	o="$common --method $m --steps 20 --save-every 5 --dropout 0.1"
	ok "$m: 20 steps == 10 + --resume + 10, byte for byte" \
		"train-experts $o -o one-$m shards && train-experts $o --stop-after 10 -o two-$m shards &&
		 grep -q '\"step\": 10' two-$m/state/trainer.json && train-experts $o --resume -o two-$m shards &&
		 cmp one-$m/adapter.safetensors two-$m/adapter.safetensors && cmp one-$m/adapter_config.json two-$m/adapter_config.json &&
		 cmp one-$m/state/optimizer.safetensors two-$m/state/optimizer.safetensors &&
		 [ \$(stream2json -N two-$m/metrics.mpk | wc -l) = 20 ]"
done
ok "--recompute gives the same adapter as keeping the activations" \
	'train-experts $common --method mingmoe --steps 5 -o rc1 shards && train-experts $common --method mingmoe --steps 5 --recompute -o rc2 shards &&
	 cmp rc1/adapter.safetensors rc2/adapter.safetensors'
ok "gradient accumulation runs and records the tokens of every micro-batch" \
	'train-experts $common --method lora --steps 3 --accum 2 -o acc shards &&
	 stream2json acc/metrics.mpk | tail -1 | grep -q "\"tokens\":384"'

# refusals
ok_fails 65 "shards from another tokenizer are refused, naming both" \
	'./mklearn -k $(printf "%064d" 0) -V 265 -n 50 > other.mpk && shard -q --seq-len 64 -o other other.mpk &&
	 train-experts $common --method lora --steps 2 -o bad other 2> e; cat e >&2; grep -q 0000000000 e && grep -q "$(sha256sum base/tokenizer.json | cut -c1-64)" e && exit 65'
ok_fails 1 "a NaN loss stops the run with a clear message" \
	'train-experts $common --method lora --steps 6 --save-every 1 --lr 1e30 --warmup 0 -o nan shards'
ok "... and the last good checkpoint stays" \
	'grep -q "\"step\": 1," nan/state/trainer.json && [ -s nan/adapter.safetensors ] && ! ls nan | grep -q tmp'
ok_fails 2 "--resume with other settings is refused" \
	'train-experts $common --method lora --steps 30 --save-every 5 --dropout 0.1 --resume -o two-lora shards'
o="$common --method lora --steps 8 --save-every 2"
ok "a full disk while checkpointing leaves the previous checkpoint intact" \
	'train-experts $o --stop-after 2 -o full shards && cp -r full before &&
	 ! (ulimit -f 100; trap "" XFSZ; exec train-experts $o --resume -o full shards) &&
	 for f in state/optimizer.safetensors state/trainer.json adapter.safetensors adapter_config.json; do
		cmp full/$f before/$f || exit 1; done && ! ls full | grep -q tmp'
ok "... and the run resumes from it to the same result as an uninterrupted one" \
	'train-experts $o --resume -o full shards && train-experts $o -o whole shards &&
	 cmp full/adapter.safetensors whole/adapter.safetensors'
ok_fails 2 "an unknown method is a usage error" 'train-experts --base base --method nope -o x shards'
ok_fails 1 "a run directory is not overwritten without --force" 'train-experts $common --method lora --steps 1 -o run-lora shards'
done_testing
