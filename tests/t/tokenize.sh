#!/bin/sh
# tokenize: ids identical to Hugging Face tokenizers on the real reference sets; real corpora and exam files
# ingest; templates and loss masks; bad input gives one clear error, exit 65, and no output file.
. "$MEDMOE_TOP/tests/lib.sh"
need_shared
TOK=$SHARED/tokenizers
DATA=$SHARED/data
QWEN=$TOK/qwen3/tokenizer.json
MISTRAL=$TOK/mistral/tokenizer.json

# The "ids" arrays of a JSON-lines file, one per line, without spaces.
ids_of() { sed -n 's/.*"ids": *\[\([^]]*\)\].*/\1/p' "$1" | tr -d ' '; }
count_records() { stream2json -N "$1" | wc -l | tr -d ' '; }

# --- the contract: {"text"} lines, --template none, ids = HF encode(text, add_special_tokens=False) ---
for name in qwen3 mistral; do
	for set in edge-cases corpus; do
		ok "$name $set: every record's ids equal Hugging Face's" "
			tokenize -q --tokenizer $TOK/$name/tokenizer.json --template none -o $name-$set.mpk $TOK/$set.jsonl &&
			stream2json --validate -N $name-$set.mpk > $name-$set.json &&
			ids_of $name-$set.json > got && ids_of $TOK/$name/$set.ids.jsonl > want &&
			test \$(wc -l < got) -eq \$(wc -l < $TOK/$set.jsonl) &&
			{ diff got want > diff.txt || { echo 'first differing record:'; head -5 diff.txt; false; }; }"
	done
done
ok "a model directory works as --tokenizer, and stdin as input" "
	head -3 $TOK/edge-cases.jsonl | tokenize -q --tokenizer $TOK/qwen3 > d.mpk &&
	test \$(count_records d.mpk) -eq 3"
ok "the header names the tokenizer by sha256" "
	stream2json -H qwen3-corpus.mpk | grep -q \"\$(sha256sum $QWEN | cut -c1-64)\""
ok "plain text carries loss on every token" "
	stream2json -N -n 1 qwen3-edge-cases.mpk | grep -q '\"mask\":\[1,1,1'"

# --- templates and loss masks ---
printf '%s\n' '{"conversations":[{"from":"human","value":"头痛怎么办？"},{"from":"gpt","value":"多休息。"}]}' > chat.jsonl
ok "chatml: the mask covers the answer and <|im_end|>, not the prompt" "
	tokenize -q --tokenizer $QWEN --template chatml --task qa chat.jsonl > c.mpk &&
	stream2json -N c.mpk > c.json &&
	grep -q '\"ids\":\[151644,' c.json && grep -q '\"task\":\"qa\"' c.json && grep -q '\"lang\":\"zh\"' c.json &&
	grep -q '\"mask\":\[0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,0\]' c.json"
ok "llama2 with the Mistral tokenizer: <s>[INST] ... [/INST] answer </s>" "
	tokenize -q --tokenizer $MISTRAL --template llama2 chat.jsonl > l.mpk &&
	stream2json -N l.mpk | grep -q '\"ids\":\[1,'"
for pair in chatml:qwen3 llama2:mistral; do
	tmpl=${pair%%:*} tok=${pair#*:}
	ok "$tmpl template with the $tok tokenizer: ids equal Hugging Face's encoding of the templated text" "
		tokenize -q --tokenizer $TOK/$tok --template $tmpl $FIXTURES/templates/$tmpl-$tok.jsonl |
			stream2json -N > tmpl.json && ids_of tmpl.json > got && ids_of $FIXTURES/templates/$tmpl-$tok.jsonl > want &&
		test -s want && diff got want"
done
ok_fails 65 "llama3 template with a tokenizer that lacks its header tokens" "
	tokenize -q --tokenizer $MISTRAL --template llama3 chat.jsonl > /dev/null"
ok "--max-len truncates and marks the record; --overflow drop leaves it out" "
	tokenize -q --tokenizer $QWEN --max-len 5 $TOK/edge-cases.jsonl > t.mpk &&
	stream2json -N -n 2 t.mpk | grep -q '\"truncated\":true' &&
	tokenize -q --tokenizer $QWEN --max-len 5 --overflow drop $TOK/edge-cases.jsonl > t2.mpk &&
	test \$(count_records t2.mpk) -lt 30"

# --- bad input: one line naming file, record and field; exit 65; no output file ---
printf '%s\n' '{"text":"fine"}' '{"text": broken' > bad.jsonl
ok_fails 65 "a malformed JSON line" "tokenize -q --tokenizer $QWEN -o bad.mpk bad.jsonl"
ok "... names the file and the record, and leaves no output" "
	grep -q 'bad.jsonl: record 2' err.$n_test && test ! -e bad.mpk && ! ls bad.mpk.tmp.* 2>/dev/null"
printf '{"text":"ok \377\376 bad"}\n' > badutf8.jsonl
ok_fails 65 "invalid UTF-8" "tokenize -q --tokenizer $QWEN -o u.mpk badutf8.jsonl"
ok "--skip-bad skips and counts" "
	tokenize --tokenizer $QWEN --skip-bad -o s.mpk bad.jsonl 2> s.err && test \$(count_records s.mpk) -eq 1 &&
	grep -q '1 bad records skipped' s.err"
head -c 100000 $QWEN > truncated.json
ok_fails 65 "a truncated tokenizer.json" "tokenize -q --tokenizer truncated.json -o x.mpk $TOK/edge-cases.jsonl"
sed 's/"type": *"ByteLevel"/"type": "Frobnicate"/' $QWEN > unknown.json
ok_fails 65 "an unsupported tokenizer component" "tokenize -q --tokenizer unknown.json -o x.mpk $TOK/edge-cases.jsonl"
ok "... is named in the error" "grep -q Frobnicate err.$n_test"
ok_fails 2 "an unknown template is a usage error" "tokenize --tokenizer $QWEN --template vicuna chat.jsonl"

done_testing
