#!/bin/sh
# hostile-classes: each example of the hostile-input issue, as it was found, now refused cleanly: sizes taken
# from input, stored fields trusted, verified data not verified where used, NaN reported as answers, crash
# windows and leftovers, blocking on a FIFO.  Each refusal is exit 65 naming the file (and record or field), and
# leaves no output and no partial run behind.
. "$(dirname "$0")/../lib.sh"
OMP_NUM_THREADS=1
export OMP_NUM_THREADS
# b HEX...: raw bytes
b() { for h in "$@"; do printf "\\$(printf %03o "0x$h")"; done; }
# poke FILE OFFSET HEX...: overwrite bytes in place
poke() { f=$1 off=$2; shift 2; b "$@" | dd of="$f" bs=1 seek="$off" conv=notrunc 2> /dev/null; }
# data_start FILE: where a safetensors file's data section begins
data_start() { echo $((8 + $(od -An -tu8 -N8 "$1" | tr -d ' '))); }

ok "build the helpers" \
	'cc -std=c11 -O1 -D_GNU_SOURCE -o mklearn "$MEDMOE_TOP/tests/helpers/mklearn.c" $(pkg-config --cflags --libs msgpack)'
ok "inputs: a base, tokens, shards, a run, an exam" \
	'init-base --arch qwen2 --layers 2 --hidden 16 --heads 2 --kv-heads 1 --ffn 32 -o base &&
	 sha=$(sha256sum base/tokenizer.json | cut -c1-64) && ./mklearn -k $sha -V 265 -n 40 -t 2 -l 12 > tokens.mpk &&
	 shard -q --seq-len 32 --valid 4 -o shards tokens.mpk &&
	 train-experts --base base --method lora --steps 4 --batch-tokens 64 -q --stop-after 2 -o run shards &&
	 cp "$MEDMOE_TOP/tests/fixtures/exam/cmb_val.json" cmb.json && tokenize -q --exam cmb --tokenizer base -o exam.mpk cmb.json'
T="--base base --method lora --steps 4 --batch-tokens 64 -q"

# 1. sizes from input
ok_fails 65 "a manifest with sequences = 2^61-1 is refused before anything is sized by it" \
	'cp -r shards s1 && sed -i "0,/\"sequences\": [0-9]*/s//\"sequences\": 2305843009213693951/" s1/manifest.json &&
	 train-experts $T -o r1 s1'
ok "... naming the manifest, and no run directory is left" 'grep -q "s1/manifest.json" err.$((n_test - 1)) && [ ! -e r1 ]'
ok_fails 65 "an array count of 2^32-1 in a tokens stream: refused, not allocated" \
	'cp tokens.mpk t1.mpk && printf "\335\377\377\377\377" >> t1.mpk && shard -q --seq-len 32 -o o1 t1.mpk'
ok "... naming the record, no output" 'grep -q "t1.mpk: record 41" err.$((n_test - 1)) && [ ! -e o1 ]'
ok_fails 65 "a flipped bit in a shard index" \
	'cp -r shards s2 && poke s2/train-00000.idx 13 7f && train-experts $T -o r2 s2'
ok "... names the index and leaves no run" 'grep -q "train-00000.idx" err.$((n_test - 1)) && [ ! -e r2 ]'
ok_fails 65 "n_tasks = 1e9 in an adapter config" \
	'cp -r run a1 && sed -i "s/\"n_tasks\": [0-9]*/\"n_tasks\": 1000000000/" a1/adapter_config.json &&
	 eval-exam -q --base base --adapter a1 -o p1.mpk exam.mpk'
ok "... names the file and the field, no predictions" 'grep -q "a1/adapter_config.json: n_tasks" err.$((n_test - 1)) && [ ! -e p1.mpk ]'
ok_fails 65 "huge sizes in config.json" \
	'cp -r base b1 && sed -i "s/\"vocab_size\": [0-9]*/\"vocab_size\": 16000000/; s/\"num_hidden_layers\": 2/\"num_hidden_layers\": 4000/" b1/config.json &&
	 eval-exam -q --base b1 -o p2.mpk exam.mpk'
ok "... names config.json" 'grep -q "b1/config.json" err.$((n_test - 1)) && [ ! -e p2.mpk ]'

# 2. stored fields
ok_fails 65 "a stream header's version of 2^32+1 is not version 1" \
	'stream2json -H tokens.mpk | grep -q "\"version\":1" && cp tokens.mpk v1.mpk &&
	 off=$(grep -abo version v1.mpk | head -1 | cut -d: -f1) && poke v1.mpk $((off + 7)) cf 00 00 00 01 00 00 00 01 &&
	 stream2json v1.mpk'
ok_fails 65 "a resume told to extend its metrics to 1 TiB" \
	'cp -r run m1 && size=$(wc -c < m1/metrics.mpk) &&
	 sed -i "s/\"metrics_bytes\": [0-9]*/\"metrics_bytes\": 1099511627776/" m1/state/trainer.json &&
	 train-experts $T --resume -o m1 shards'
ok "... names metrics_bytes, and metrics.mpk keeps its size" \
	'grep -q "trainer.json: metrics_bytes" err.$((n_test - 1)) && [ $(wc -c < m1/metrics.mpk) = $(wc -c < run/metrics.mpk) ]'
ok_fails 65 "a resume whose cursor says rank 7 of world 2" \
	'cp -r run m2 && sed -i "s/\"rank\": 0/\"rank\": 7/; s/\"world\": 1/\"world\": 2/" m2/state/trainer.json &&
	 train-experts $T --resume -o m2 shards'
ok_fails 65 "stream2json --validate: a mask byte of 2" \
	'cp tokens.mpk k1.mpk && off=$(grep -abo mask k1.mpk | head -1 | cut -d: -f1) && poke k1.mpk $((off + 7)) 02 &&
	 stream2json --validate k1.mpk'
ok "... names the record and the field" 'grep -q "k1.mpk: record 1: mask" err.$((n_test - 1))'
ok_fails 65 "stream2json --validate: a token id past the vocabulary" \
	'cp tokens.mpk k2.mpk && off=$(grep -abo ids k2.mpk | head -1 | cut -d: -f1) && poke k2.mpk $((off + 5)) ff ff 00 00 &&
	 stream2json --validate k2.mpk'
ok "... names the record and the field" 'grep -q "k2.mpk: record 1: ids" err.$((n_test - 1))'

# 3. verified data verified where used
ok_fails 65 "shard refuses the flipped mask byte its own --verify would refuse" 'shard -q --seq-len 32 -o o3 k1.mpk'
ok "... and writes nothing" '[ ! -e o3 ] && ! ls | grep -q "o3.tmp"'
ok_fails 65 "shard refuses a header whose tokenizer.sha256 is not hex" \
	'cp tokens.mpk h1.mpk && off=$(grep -abo sha256 h1.mpk | head -1 | cut -d: -f1) && poke h1.mpk $((off + 9)) ff &&
	 shard -q --seq-len 32 -o o4 h1.mpk'
for damage in truncated appended zeros; do
	ok_fails 65 "train-experts refuses a shard directory with a $damage shard" \
		"cp -r shards d-$damage && case $damage in
		 truncated) truncate -s -10 d-$damage/train-00000.mpk ;;
		 appended) printf garbage >> d-$damage/train-00000.mpk ;;
		 zeros) jq \".splits.train.shards[0].sha256 = \\\"\$(printf %064d 0)\\\"\" shards/manifest.json > d-$damage/manifest.json ;;
		 esac && train-experts \$T -o r-$damage d-$damage"
	ok "... before the run directory exists" "[ ! -e r-$damage ] && grep -q 'train-00000.mpk' err.\$((n_test - 1))"
done

# 4. NaN is never an answer
ok_fails 65 "a NaN weight: eval-exam refuses the checkpoint, naming the tensor" \
	'cp -r base n1 && poke n1/model.safetensors $(data_start n1/model.safetensors) 00 00 c0 7f &&
	 eval-exam -q --base n1 -o p3.mpk exam.mpk'
ok "... and writes no predictions" '[ ! -e p3.mpk ] && grep -q "n1/model.safetensors: model" err.$((n_test - 1))'
ok_fails 65 "weights whose activations overflow: eval-exam stops at the question, no predictions" \
	'cp -r base n2 && s=$(data_start n2/model.safetensors) && n=$(($(wc -c < n2/model.safetensors) - s)) &&
	 head -c $n /dev/zero | tr "\000" "\177" | dd of=n2/model.safetensors bs=1 seek=$s conv=notrunc 2> /dev/null &&
	 eval-exam -q --base n2 -o p4.mpk exam.mpk'
ok "... naming the question" '[ ! -e p4.mpk ] && grep -q "question" err.$((n_test - 1))'
ok_fails 65 "merging a NaN adapter is refused, naming the tensor" \
	'cp -r run n3 && poke n3/adapter.safetensors $(data_start n3/adapter.safetensors) 00 00 c0 7f &&
	 merge-adapters --base base --adapter n3 -o mg3'
ok "... nothing merged" '[ ! -e mg3 ] && grep -q "n3/adapter.safetensors: base_model" err.$((n_test - 1))'
ok_fails 65 "score refuses a NaN score in predictions" \
	'eval-exam -q --base base -o pp.mpk exam.mpk && cp pp.mpk p5.mpk &&
	 off=$(grep -abo scores p5.mpk | head -1 | cut -d: -f1) && poke p5.mpk $((off + 8)) 7f f8 00 00 00 00 00 00 && score p5.mpk'

# 5. crash windows and leftovers
ok "--force with a damaged shard directory leaves the old run as it was" \
	'cp -r run f1 && ! train-experts $T --force -o f1 d-zeros 2> /dev/null && diff -r run f1'
ok "a refused train-experts leaves no run directory" '! train-experts $T -o f2 d-truncated 2> /dev/null && [ ! -e f2 ]'
ok "a failed mix-tasks --stats commits no -o output" \
	'! mix-tasks -q --stats nodir/stats.json -o mx.mpk tokens.mpk 2> /dev/null && [ ! -e mx.mpk ] && ! ls | grep -q "mx.mpk.tmp"'
ok "a state/ half-replaced (state.medmoe-old, no state) is recovered by --resume" \
	'cp -r run w1 && mv w1/state w1/state.medmoe-old && train-experts $T --resume -o w1 shards &&
	 train-experts $T -o w2 shards && cmp w1/adapter.safetensors w2/adapter.safetensors && [ ! -e w1/state.medmoe-old ]'

# 6. blocking inputs
ok_fails 65 "a FIFO where trainer.json is expected is refused at once, not waited on" \
	'cp -r run q1 && rm q1/state/trainer.json && mkfifo q1/state/trainer.json && timeout 20 train-experts $T --resume -o q1 shards'
ok_fails 65 "a FIFO as config.json" 'cp -r base q2 && rm q2/config.json && mkfifo q2/config.json && timeout 20 eval-exam -q --base q2 exam.mpk'
done_testing
