#!/bin/sh
# init-base: tiny random-weight checkpoints, deterministic by seed, with the byte tokenizer or a copied one.
. "$MEDMOE_TOP/tests/lib.sh"

for arch in llama qwen2 qwen3; do
	ok "$arch: writes config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json" \
		"init-base --arch $arch --seed 3 -o $arch && for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do test -s $arch/\$f || exit 1; done"
done
ok "config names the architecture" 'grep -q "\"Qwen3ForCausalLM\"" qwen3/config.json && grep -q "\"model_type\": \"qwen3\"" qwen3/config.json'
ok "qwen2 checkpoint carries q/k/v biases" 'grep -q "self_attn.q_proj.bias" qwen2/model.safetensors'
ok "qwen3 checkpoint carries q/k norms" 'grep -q "self_attn.q_norm.weight" qwen3/model.safetensors'
ok "llama checkpoint has no biases" '! grep -q "_proj.bias" llama/model.safetensors'
ok "no temporary files are left" 'test -z "$(ls -a | grep tmp)"'
ok "same seed, same bytes" 'init-base --arch llama --seed 3 -o llama2 && cmp llama/model.safetensors llama2/model.safetensors && cmp llama/config.json llama2/config.json && cmp llama/tokenizer.json llama2/tokenizer.json'
ok "another seed, other weights" 'init-base --arch llama --seed 4 -o llama4 && ! cmp -s llama/model.safetensors llama4/model.safetensors'
ok "byte tokenizer: 256 byte tokens then 9 specials, vocab 265" \
	'grep -q "\"vocab_size\": 265" llama/config.json && grep -q "\"<|endoftext|>\"" llama/tokenizer.json && grep -q "\"id\": 264" llama/tokenizer.json && grep -q "\"merges\": \[\]" llama/tokenizer.json'
ok "byte tokenizer maps the space byte to U+0120" 'grep -q "\"Ġ\": 32" llama/tokenizer.json'
ok "options set the shape" 'init-base --arch llama --layers 3 --hidden 96 --heads 6 --kv-heads 3 --ffn 200 --vocab 300 --head-dim 8 --tied -o shaped && grep -q "\"num_hidden_layers\": 3" shaped/config.json && grep -q "\"head_dim\": 8" shaped/config.json && grep -q "\"vocab_size\": 300" shaped/config.json && grep -q "\"tie_word_embeddings\": true" shaped/config.json && ! grep -q lm_head shaped/model.safetensors'
ok "bf16 weights are half the size" 'init-base --arch llama --dtype bf16 --seed 3 -o bf16 && test $(wc -c < bf16/model.safetensors) -lt $(( $(wc -c < llama/model.safetensors) * 6 / 10 ))'
ok "--tokenizer FILE copies it and sizes the vocab from its ids" 'init-base --arch qwen2 --tokenizer llama/tokenizer.json -o copied && cmp llama/tokenizer.json copied/tokenizer.json && grep -q "\"vocab_size\": 265" copied/config.json'
ok "--force replaces an existing directory" 'init-base --arch llama --seed 9 --force -o llama4 && ! cmp -s llama2/model.safetensors llama4/model.safetensors'
ok_fails 1 "an existing directory is refused without --force" 'init-base --arch llama -o llama'
ok_fails 2 "unknown architecture" 'init-base --arch gpt2 -o g'
ok_fails 2 "--vocab below the tokenizer's ids" 'init-base --arch llama --vocab 100 -o v'
ok_fails 2 "--kv-heads must divide --heads" 'init-base --arch llama --heads 4 --kv-heads 3 -o kv'
ok_fails 2 "missing -o" 'init-base --arch llama'
ok_fails 65 "malformed tokenizer file" 'echo "{not json" > bad.json && init-base --arch llama --tokenizer bad.json -o bad'
ok "a failed run leaves nothing behind" 'test ! -e bad && test ! -e v && test -z "$(ls -a | grep tmp)"'
if [ -f "$SHARED/tokenizers/qwen3/tokenizer.json" ]; then
	ok "a real tokenizer (Qwen3's) sizes the vocabulary from its largest id" \
		'init-base --arch qwen3 --hidden 16 --heads 2 --ffn 16 --layers 1 --tokenizer "$SHARED/tokenizers/qwen3/tokenizer.json" -o realtok && cmp "$SHARED/tokenizers/qwen3/tokenizer.json" realtok/tokenizer.json && grep -q "\"vocab_size\": 151669" realtok/config.json'
else
	skip "a real tokenizer sizes the vocabulary" "MEDMOE_SHARED=$SHARED is absent"
fi
ok "--bpe-corpus learns the same merges as the fixture, byte for byte" \
	'init-base --arch qwen3 --bpe-corpus "$FIXTURES/bpe/corpus.txt" --bpe-merges 300 -o bpe && cmp "$FIXTURES/bpe/tokenizer.json" bpe/tokenizer.json'
ok "--bpe-corpus keeps the byte and special ids and sizes the vocabulary" \
	'grep -q "\"vocab_size\": 565" bpe/config.json && grep -q "\"Ġ\": 32" bpe/tokenizer.json && grep -q "\"id\": 264" bpe/tokenizer.json && grep -q "\"use_regex\": true" bpe/tokenizer.json'
ok "the learned tokenizer encodes as Hugging Face tokenizers does (tests/reference/make_bpe_fixtures.py)" '
	jq -c "{text: .text}" "$FIXTURES/bpe/ids.jsonl" > texts.jsonl &&
	tokenize -q --tokenizer bpe -o texts.mpk texts.jsonl && stream2json -N texts.mpk | jq -c .ids > ours &&
	jq -c .ids "$FIXTURES/bpe/ids.jsonl" > want && n=$(awk "NR == FNR { a[FNR] = \$0; next } a[FNR] != \$0 { print FNR; exit }" want ours) &&
	{ test -z "$n" || { echo "line $n differs: $(sed -n ${n}p want) vs $(sed -n ${n}p ours)"; false; }; } && test $(wc -l < ours) -eq $(wc -l < want)'
ok "learned tokens shorten the corpus several times over bytes" '
	head -20 "$FIXTURES/bpe/ids.jsonl" | jq -r .text | wc -c > bytes && head -20 ours | jq length | paste -sd+ | bc > tokens &&
	test $(cat tokens) -lt $(( $(cat bytes) / 2 ))'
ok "--bpe-merges 0 gives the byte ids" 'init-base --arch qwen3 --bpe-corpus "$FIXTURES/bpe/corpus.txt" --bpe-merges 0 -o bpe0 && grep -q "\"vocab_size\": 265" bpe0/config.json'
ok_fails 2 "--bpe-corpus with a copied tokenizer is refused" 'init-base --arch qwen3 --tokenizer llama/tokenizer.json --bpe-corpus "$FIXTURES/bpe/corpus.txt" -o bpex'
ok_fails 65 "--bpe-corpus that is not UTF-8" 'printf "\\377\\376bad\\n" > bad.txt && init-base --arch qwen3 --bpe-corpus bad.txt -o bpebad'
# The special tokens in config.json, generation_config.json and tokenizer_config.json are what transformers reads
# from them in tests/reference/make_checkpoint_fixtures.py, which also checked there that generate stops at the
# tokenizer's eos and that lm-eval runs on the checkpoint with no extra arguments.
CK=$FIXTURES/checkpoint/expected.json
hf_files() {  # hf_files CASE DIR: prints "same" or the differences
	jq -n -r --arg case "$1" --slurpfile want "$CK" --slurpfile cfg "$2/config.json" \
		--slurpfile gen "$2/generation_config.json" --slurpfile tok "$2/tokenizer_config.json" \
		-f "$MEDMOE_TOP/tests/helpers/hf-files.jq"
}
for case in $(jq -r '.cases | to_entries[] | select(.value.init_base) | .key' "$CK"); do
	if jq -e --arg c "$case" '.cases[$c].init_base | any(contains("$SHARED"))' "$CK" > /dev/null &&
	   [ ! -d "$SHARED/tokenizers" ]; then
		skip "$case: special tokens as transformers reads them" "MEDMOE_SHARED=$SHARED is absent"
		continue
	fi
	args=$(jq -r --arg c "$case" --arg shared "$SHARED" '.cases[$c].init_base | map(sub("\\$SHARED"; $shared)) | join(" ")' "$CK")
	ok "$case: special tokens in the three JSON files as transformers reads them (generate stops at the eos)" \
		"init-base \$args -o ck-$case && test \"\$(hf_files $case ck-$case)\" = same || hf_files $case ck-$case"
done
ok "a LLaMA config around Qwen3's vocabulary does not fall back to LlamaConfig's ids 1 and 2" \
	'test ! -d "$SHARED/tokenizers" || jq -e ".bos_token_id == 151643 and .eos_token_id == 151643" ck-llama_qwen3tok/config.json'
ok "tokenizer_config.json uses the tokenizer.json as it is (PreTrainedTokenizerFast)" \
	'jq -e ".tokenizer_class == \"PreTrainedTokenizerFast\" and .model_max_length == 2048" ck-llama_bytes/tokenizer_config.json'
ok "--help prints the usage" 'init-base --help | grep -q "usage: init-base --arch"'
done_testing
