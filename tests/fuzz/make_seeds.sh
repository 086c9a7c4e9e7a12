#!/bin/sh
# make_seeds.sh — (re)write the committed seed corpora of the fuzz targets, tests/fuzz/corpus/NAME/, from the
# programs themselves on a tiny random base (init-base) and small hand-written samples: one valid input of each
# kind a target reads, so that fuzzing starts from inputs that get all the way through.  Run from the top
# directory after `make`:  sh tests/fuzz/make_seeds.sh
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH="$top/bin:$PATH"
out=$top/tests/fuzz/corpus
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cd "$w"
sep='
--medmoe-part--
'
rm -rf "$out"
mkdir -p "$out"
for t in stream safetensors config tokenizer shard adapter corpus exam archive; do mkdir -p "$out/$t"; done
# prefix BYTE FILE > OUT: one selector byte, then the file
prefix() { printf "\\$(printf %03o "$1")"; cat "$2"; }

# a tiny base (the fuzz_adapter model's geometry), learnable shards, two steps of every method
cc -std=c11 -O1 -D_GNU_SOURCE -o mklearn "$top/tests/helpers/mklearn.c" $(pkg-config --cflags --libs msgpack)
init-base --arch qwen2 --layers 2 --hidden 16 --heads 2 --kv-heads 1 --ffn 32 --init-std 0.1 -o base
sha=$(sha256sum base/tokenizer.json | cut -c1-64)
./mklearn -k "$sha" -V 265 -n 12 -t 2 -l 10 > tokens.mpk
shard -q --seq-len 32 -o shards tokens.mpk
for m in lora moelora mingmoe sparsedoctor; do
	train-experts --base base --method $m --steps 2 --batch-tokens 64 --con-queue 4 --con-proj 4 --experts 2 \
		--rank 2 --eval-every 1 -q -o run-$m shards
done
# exams: tiny hand-written samples of each benchmark's layout (fields as lib/exam.c reads them)
cat > cmb.json <<'EOF'
[{"exam_type":"医师考试","exam_class":"执业医师","exam_subject":"内科","question":"高血压首选？","answer":"A","question_type":"单项选择题","option":{"A":"利尿剂","B":"手术","C":"放疗","D":"观察"}}]
EOF
cat > test.csv <<'EOF'
Question,Options,Answer,Explanation
患者发热，首选？,"A 退热
B 手术
C 观察
D 放疗",A,解释
EOF
cat > anatomy.csv <<'EOF'
,Question,A,B,C,D,Answer
0,心脏有几个腔？,两个,三个,四个,五个,C
EOF
cat > anatomy_test.csv <<'EOF'
How many chambers has the heart?,two,three,four,five,C
EOF
cat > test.jsonl <<'EOF'
{"question":"Which drug first?","answer":"Aspirin","options":{"A":"Aspirin","B":"Surgery","C":"Rest","D":"None"},"meta_info":"step1","answer_idx":"A"}
EOF
cat > dev.json <<'EOF'
{"id":"q1","question":"Fever drug?","opa":"Paracetamol","opb":"Steel","opc":"Wood","opd":"Sand","cop":1,"choice_type":"single","exp":"x","subject_name":"Pharmacology","topic_name":null}
EOF
i=0
for f in cmb.json test.csv anatomy.csv anatomy_test.csv test.jsonl dev.json; do
	prefix $i $f > "$out/exam/$i-$f"
	i=$((i + 1))
done
tokenize --tokenizer base --exam cmb -o exam.mpk cmb.json
eval-exam --base base -o pred.mpk exam.mpk

# streams: selector byte = schema (tokens, exam, shard, metrics, predictions, any)
prefix 0 tokens.mpk > "$out/stream/tokens"
prefix 1 exam.mpk > "$out/stream/exam"
prefix 2 shards/train-00000.mpk > "$out/stream/shard"
prefix 3 run-sparsedoctor/metrics.mpk > "$out/stream/metrics"
prefix 4 pred.mpk > "$out/stream/predictions"
prefix 5 run-moelora/metrics.mpk > "$out/stream/any"

# safetensors, config.json, tokenizer.json
cp base/model.safetensors "$out/safetensors/model"
cp run-mingmoe/adapter.safetensors "$out/safetensors/adapter"
cp run-sparsedoctor/state/optimizer.safetensors "$out/safetensors/optimizer"
cp base/config.json "$out/config/qwen2"
for d in llama_gqa llama3_scaled qwen3 llama_linear; do cp "$top/tests/fixtures/model/$d/config.json" "$out/config/$d"; done
{ cat base/tokenizer.json; printf '%s' "$sep"; printf 'The patient 发热 38.5°C, BP 120/80.'; } > "$out/tokenizer/bytelevel"
cp "$top/tests/fixtures/eval/model/tokenizer.json" "$out/tokenizer/eval"

# shard directories: flags, manifest, index, shard (flag 1: the target fixes up the checksums)
for flags in 0 1 3; do
	{ printf "\\$(printf %03o $flags)"; cat shards/manifest.json; printf '%s' "$sep"; cat shards/train-00000.idx; printf '%s' "$sep";
	  cat shards/train-00000.mpk; } > "$out/shard/flags$flags"
done

# adapters on the in-memory model of fuzz_adapter: its base identity is empty
for m in lora moelora mingmoe sparsedoctor; do
	jq '.base.config_sha256 = "" | .base.tokenizer_sha256 = ""' run-$m/adapter_config.json > cfg.json
	{ cat cfg.json; printf '%s' "$sep"; cat run-$m/adapter.safetensors; printf '%s' "$sep";
	  cat run-$m/state/optimizer.safetensors; printf '%s' "$sep"; cat run-$m/state/trainer.json; } > "$out/adapter/$m"
done

# corpora: selector byte = format (json, jsonl, csv, covid-txt, sniffed .json, sniffed .csv, sniffed .dat)
cat > alpaca.json <<'EOF'
[{"instruction":"What is fever?","input":"","output":"A raised temperature."},{"id":7,"instruction":"高血压？","input":"头晕","output":"测血压"}]
EOF
cat > share.jsonl <<'EOF'
{"conversations":[{"from":"human","value":"I cough."},{"from":"gpt","value":"Since when?"}]}
{"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}
{"sample_id":"s1","task_dataset":"CMeIE","input":"抽取","target":"无"}
EOF
cat > dialog.csv <<'EOF'
title,ask,answer
头痛,头痛三天,休息
"quoted, title","multi
line",ok
EOF
cat > covid.txt <<'EOF'
id=1
Description
cough
Dialogue
Patient:
I have a cough.
Doctor:
Stay home.

id=2
Dialogue
Patient:
Fever?
Doctor:
Rest.
EOF
prefix 0 alpaca.json > "$out/corpus/json"
prefix 1 share.jsonl > "$out/corpus/jsonl"
prefix 2 dialog.csv > "$out/corpus/csv"
prefix 3 covid.txt > "$out/corpus/covid"
prefix 4 share.jsonl > "$out/corpus/sniff-jsonl"
prefix 23 dialog.csv > "$out/corpus/csv-skip"

# archives: selector byte = container (zip, tar, tar.gz, jsonl.gz, jsonl.xz, tar.zst)
mkdir -p arc && cp share.jsonl arc/a.jsonl && cp alpaca.json arc/b.json && cp dialog.csv arc/c.csv
(cd arc && zip -q ../a.zip a.jsonl b.json c.csv && tar cf ../a.tar a.jsonl b.json && tar czf ../a.tar.gz a.jsonl c.csv &&
 tar cf - a.jsonl | zstd -q > ../a.tar.zst)
gzip -c share.jsonl > a.jsonl.gz
xz -c share.jsonl > a.jsonl.xz
i=0
for f in a.zip a.tar a.tar.gz a.jsonl.gz a.jsonl.xz a.tar.zst; do
	prefix $i $f > "$out/archive/$f"
	i=$((i + 1))
done
find "$out" -type f | wc -l
