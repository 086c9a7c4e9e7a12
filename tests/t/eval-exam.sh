#!/bin/sh
# eval-exam: predictions valid and in input order, scores equal to transformers' (tests/fixtures/eval), packing
# changes nothing, greedy generation is deterministic and cut by its limits, bad input is refused; then every
# exam file of ../shared/data through a tiny checkpoint with Qwen3's tokenizer.
. "$MEDMOE_TOP/tests/lib.sh"
EV=$FIXTURES/eval
# The runner runs two tests at once on two cores: one thread each (spinning OpenMP threads of two programs
# on two cores slow both by several times).
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS
# OPENBLAS_CORETYPE is left as the machine sets it: on some CPUs it is set because older OpenBLAS builds
# compute wrong results there, and the tests must run what users run.

ids() { stream2json -N "$1" | jq -r .id; }

# --- the fixtures: one-token and two-token option letters, single and multi answers, plain and chatml ---
for s in cmb cmb_val_chatml cmexam cmexam_zh; do
	ok "$s: valid predictions, one per question, same ids in the same order" "
		eval-exam -q --base $EV/model -o $s.pred $EV/$s.mpk &&
		stream2json --validate -N $s.pred > /dev/null &&
		ids $EV/$s.mpk > want.ids && ids $s.pred > got.ids && cmp want.ids got.ids"
	ok "$s: scores within 1e-4 of transformers, the same predictions" "
		stream2json -N $s.pred | jq -c '{id, predicted, scores}' > got.json &&
		jq -c '.streams.$s[] | {id, predicted, scores}' $EV/expected.json > want.json &&
		jq -n --slurpfile a got.json --slurpfile b want.json '
			[range(0; \$b | length) as \$i | \$a[\$i] as \$x | \$b[\$i] as \$y |
			 (\$x.id == \$y.id and \$x.predicted == \$y.predicted and
			  ([range(0; \$y.scores | length) as \$k | ((\$x.scores[\$k] - \$y.scores[\$k]) | fabs) <= 1e-4] | all))]
			| (length == (\$a | length)) and all' | grep -qx true"
	ok "$s: one question per forward gives the same predictions and scores (within 1e-5)" "
		eval-exam -q --base $EV/model --batch-tokens 1 -o one.pred $EV/$s.mpk &&
		stream2json -N one.pred | jq -c '{id, predicted, scores}' > one.json &&
		stream2json -N $s.pred | jq -c '{id, predicted, scores}' > all.json &&
		jq -n --slurpfile a one.json --slurpfile b all.json '
			[range(0; \$b | length) as \$i | \$a[\$i] as \$x | \$b[\$i] as \$y |
			 (\$x.id == \$y.id and \$x.predicted == \$y.predicted and
			  ([range(0; \$y.scores | length) as \$k | ((\$x.scores[\$k] - \$y.scores[\$k]) | fabs) <= 1e-5] | all))]
			| all' | grep -qx true"
done

# --- large weights and a large vocabulary (init std 0.2, 151,936 ids): the LM head's log-sum-exp must not drift
# (tests/fixtures/eval/large_weights.json from tests/reference/make_loglik_fixtures.py: transformers in fp32 and
# in fp64; a plain fp32 running sum of exp over the vocabulary was 2e-5 off here, 1e-4 on bigger models)
LW=$EV/large_weights.json
for arch in llama qwen2 qwen3; do
	ok "$arch, init std 0.2: option scores within 1e-5 of transformers' (fp32 and fp64), every stream" "
		init-base \$(jq -r '.cases.$arch.init_base | join(\" \")' $LW) -o lw-$arch &&
		for s in cmb cmb_val_chatml cmexam cmexam_zh; do
			eval-exam -q --base lw-$arch -o lw.pred $EV/\$s.mpk &&
			stream2json -N lw.pred | jq -c '{id, scores}' > got.json &&
			jq -c --arg s \$s '.cases.$arch.streams[\$s][]' $LW > want.json &&
			jq -n -e --slurpfile a got.json --slurpfile b want.json '
				[range(0; \$a | length) as \$i | \$a[\$i] as \$x | \$b[\$i] as \$y | range(0; \$x.scores | length) as \$k |
				 \$x.id == \$y.id and ((\$x.scores[\$k] - \$y.scores[\$k]) | fabs) <= 1e-5
				 and ((\$x.scores[\$k] - \$y.scores_fp64[\$k]) | fabs) <= 1e-5] | all' > /dev/null ||
			{ echo \"\$s: differs\"; paste got.json want.json | head -5; exit 1; }
		done && rm -rf lw-$arch"
done
ok "the header names the mode and the model, and keeps the exam stream's tokenizer" "
	stream2json cmb.pred | head -1 | jq -e '.mode == \"loglik\" and .model.base == \"$EV/model\"' &&
	test \"\$(stream2json cmb.pred | head -1 | jq -c .tokenizer)\" = \"\$(stream2json $EV/cmb.mpk | head -1 | jq -c .tokenizer)\""
ok "loglik: every question parsed, multi-answer predictions are sorted letters of the options" "
	stream2json -N cmb.pred cmexam.pred | jq -e 'select(.parsed != true or (.predicted | test(\"^[A-H]+\$\") | not))' > bad.json;
	test ! -s bad.json"
ok "stdin in, stdout out: the same stream" "
	eval-exam -q --base $EV/model < $EV/cmb.mpk > piped.pred && cmp piped.pred cmb.pred"
ok "--multi-threshold 0.9: multi-answer questions fall back to the argmax alone" "
	eval-exam -q --base $EV/model --multi-threshold 0.9 $EV/cmb.mpk | stream2json -N |
		jq -r 'select(.type == \"multi\") | .predicted' > multi.txt &&
	test -s multi.txt && ! grep -q .. multi.txt"
ok "--limit 2: the first two questions" "
	eval-exam -q --base $EV/model --limit 2 $EV/cmexam.mpk | stream2json -N | jq -r .id > two.ids &&
	ids $EV/cmexam.mpk | head -2 | cmp - two.ids"

# --- generate ---
ok "generate: one record per question with the generated text, unparsed ones null" "
	eval-exam -q --base $EV/model --mode generate --max-new-tokens 8 -o gen.pred $EV/cmexam.mpk &&
	stream2json --validate -N gen.pred > gen.json && test \$(wc -l < gen.json) -eq 3 &&
	jq -e 'select((.generated | type) != \"string\" or (.parsed == false and .predicted != null) or
		(.parsed == true and (.predicted | test(\"^[A-E]+\$\") | not)) or has(\"scores\"))' gen.json > bad.json;
	test ! -s bad.json"
for s in cmexam cmb_val_chatml; do
	ok "generate $s: the text of transformers' greedy decoding (8 tokens, stop at a special token), byte for byte" "
		eval-exam -q --base $EV/model --mode generate --max-new-tokens 8 $EV/$s.mpk | stream2json -N |
			jq -c '{id, generated}' > got.json &&
		jq -c '.generate.$s[] | {id, generated}' $EV/expected.json > want.json &&
		test -s want.json && cmp got.json want.json"
done
ok "generate: greedy, so 3 tokens give a prefix of what 8 tokens give" "
	eval-exam -q --base $EV/model --mode generate --max-new-tokens 3 $EV/cmexam.mpk | stream2json -N > g3.json &&
	jq -n --slurpfile a g3.json --slurpfile b gen.json '
		[range(0; \$b | length) as \$i | (\$a[\$i].generated | sub(\"\\ufffd+\$\"; \"\")) as \$x |
		 \$b[\$i].generated | startswith(\$x)] | all' | grep -qx true"
ok "generate: --gen-batch 1, 2 and 16 (several questions decoded together) give the same bytes" "
	for s in cmb cmb_val_chatml cmexam cmexam_zh; do
		for b in 1 2 16; do
			eval-exam -q --base $EV/model --mode generate --max-new-tokens 12 --gen-batch \$b -o b\$b.pred \
				$EV/\$s.mpk || exit 1
		done
		cmp b1.pred b2.pred && cmp b1.pred b16.pred || { echo \"\$s differs\"; exit 1; }
	done"
ok "generate: --gen-batch 1 and 3 with the LoRA run and a stop string: the same bytes" "
	eval-exam -q --base $EV/model --adapter $EV/lora_run --mode generate --max-new-tokens 12 --stop 'e' \
		--gen-batch 1 -o l1.pred $EV/cmb.mpk &&
	eval-exam -q --base $EV/model --adapter $EV/lora_run --mode generate --max-new-tokens 12 --stop 'e' \
		--gen-batch 3 -o l3.pred $EV/cmb.mpk &&
	cmp l1.pred l3.pred"
ok_fails 2 "--gen-batch 0" "eval-exam --base $EV/model --mode generate --gen-batch 0 $EV/cmb.mpk"
ok_fails 2 "--gen-batch 65 (more than the CPU keeps token-identical)" "
	eval-exam --base $EV/model --mode generate --gen-batch 65 $EV/cmb.mpk"
ok "generate: a stop string cuts the text before it" "
	eval-exam -q --base $EV/model --mode generate --max-new-tokens 16 $EV/cmexam.mpk | stream2json -N |
		jq -r .generated > full.txt &&
	stop=\$(LC_ALL=C grep -o '[A-Za-z0-9]' full.txt | head -1) && test -n \"\$stop\" &&
	eval-exam -q --base $EV/model --mode generate --max-new-tokens 16 --stop \"\$stop\" $EV/cmexam.mpk |
		stream2json -N | jq -r .generated > cut.txt &&
	! grep -qF \"\$stop\" cut.txt && test \$(wc -c < cut.txt) -lt \$(wc -c < full.txt)"

# --- adapters: a committed LoRA run against PEFT, a moelora run trained here ---
LORA=$EV/lora_run
for s in cmb cmexam; do
	ok "$s with the LoRA run: scores within 1e-4 of PEFT's, and not the base model's" "
		eval-exam -q --base $EV/model --adapter $LORA -o $s.lora.pred $EV/$s.mpk &&
		stream2json --validate -N $s.lora.pred | jq -c '{id, scores}' > got.json &&
		jq -c '.lora.$s[] | {id, scores}' $EV/expected.json > want.json &&
		jq -n --slurpfile a got.json --slurpfile b want.json '
			[range(0; \$b | length) as \$i | \$a[\$i] as \$x | \$b[\$i] as \$y | (\$x.id == \$y.id and
			 ([range(0; \$y.scores | length) as \$k | ((\$x.scores[\$k] - \$y.scores[\$k]) | fabs) <= 1e-4] | all))]
			| (length == (\$a | length)) and all' | grep -qx true &&
		stream2json -N $s.pred | jq -c .scores > base.scores && jq -c .scores got.json > lora.scores &&
		! cmp -s base.scores lora.scores"
done
ok "the LoRA run, one question per forward: the same scores (within 1e-5)" "
	eval-exam -q --base $EV/model --adapter $LORA --batch-tokens 1 $EV/cmexam.mpk | stream2json -N |
		jq -c .scores > one.scores &&
	stream2json -N cmexam.lora.pred | jq -c .scores > all.scores &&
	jq -n --slurpfile a one.scores --slurpfile b all.scores '
		[range(0; \$b | length) as \$i | range(0; \$b[\$i] | length) as \$k |
		 ((\$a[\$i][\$k] - \$b[\$i][\$k]) | fabs) <= 1e-5] | all' | grep -qx true"
for t in anatomy pharmacy; do
	for i in 1 2 3 4 5 6; do
		printf '{"conversations":[{"from":"human","value":"%s question %d"},{"from":"gpt","value":"The answer is %s."}]}\n' \
			$t $i B
	done > $t.jsonl
	tokenize -q --tokenizer $EV/model --template chatml --task $t -o $t.mpk $t.jsonl
done
mix-tasks -q --seed 1 -o mixed.mpk anatomy.mpk pharmacy.mpk && shard -q --force --seq-len 256 -o shards mixed.mpk &&
	train-experts -q --force --base $EV/model --method moelora --experts 2 --rank 4 --steps 3 --lr 5e-2 -o moe shards
ok "moelora: --task chooses the gate (two tasks, two sets of scores), the header names it" "
	eval-exam -q --base $EV/model --adapter moe --task anatomy -o anat.pred $EV/cmb.mpk &&
	eval-exam -q --base $EV/model --adapter moe --task pharmacy -o pharm.pred $EV/cmb.mpk &&
	stream2json anat.pred | head -1 | jq -e '.model.adapter == \"moe\" and .model.task == \"anatomy\"' &&
	stream2json -N anat.pred | jq -c .scores > a.scores && stream2json -N pharm.pred | jq -c .scores > p.scores &&
	! cmp -s a.scores p.scores"
ok "moelora without --task: task 0, with a warning that names it" "
	eval-exam -q --base $EV/model --adapter moe -o t0.pred $EV/cmb.mpk 2> warn.txt &&
	grep -q 'task 0 (anatomy)' warn.txt && stream2json -N t0.pred | jq -c .scores | cmp - a.scores"
ok_fails 2 "--task that the run does not have" "eval-exam -q --base $EV/model --adapter moe --task surgery $EV/cmb.mpk"
init-base --arch qwen3 --layers 2 --hidden 32 --heads 2 --kv-heads 1 --ffn 64 -o small
ok_fails 65 "an adapter trained on another base" "eval-exam -q --base small --adapter moe $EV/cmb.mpk"
ok_fails 65 "a run directory without an adapter" "mkdir -p norun && eval-exam -q --base $EV/model --adapter norun $EV/cmb.mpk"

# --- bad input ---
sed 's/"version": "1.0"/"version":"1.0"/' $EV/model/tokenizer.json > other-tokenizer.json
cmp -s other-tokenizer.json $EV/model/tokenizer.json && echo "# could not make a second tokenizer file"
tokenize -q --exam cmb --tokenizer other-tokenizer.json -o other.mpk $FIXTURES/exam/cmb_test.json
ok_fails 65 "an exam stream from another tokenizer" "eval-exam -q --base $EV/model -o x.pred other.mpk"
ok "... named with the model's tokenizer.json" "
	eval-exam -q --base $EV/model other.mpk 2>&1 | grep 'other.mpk' | grep -q 'model/tokenizer.json'"
: > empty.mpk
ok_fails 65 "an empty file" "eval-exam -q --base $EV/model -o x.pred empty.mpk"
echo '[]' > none.json
tokenize -q --exam cmb --tokenizer $EV/model -o none.mpk none.json
ok_fails 65 "a header without questions" "eval-exam -q --base $EV/model -o x.pred none.mpk"
ok "... and no output file is left behind" "test ! -e x.pred"
printf '{"conversations":[{"from":"human","value":"hi"},{"from":"gpt","value":"hello"}]}\n' > corpus.jsonl
tokenize -q --tokenizer $EV/model -o tokens.mpk corpus.jsonl
ok_fails 65 "a medmoe.tokens stream (another schema)" "eval-exam -q --base $EV/model tokens.mpk"
ok_fails 65 "a predictions stream (another schema)" "eval-exam -q --base $EV/model cmb.pred"
ok_fails 65 "not msgpack at all" "echo 'hello' | eval-exam -q --base $EV/model"
ok_fails 2 "an unknown mode" "eval-exam --base $EV/model --mode sample $EV/cmb.mpk"
ok_fails 2 "no --base" "eval-exam $EV/cmb.mpk"
ok_fails 2 "--task without --adapter" "eval-exam --base $EV/model --task cmb $EV/cmb.mpk"
ok_fails 2 "a threshold of 1" "eval-exam --base $EV/model --multi-threshold 1 $EV/cmb.mpk"

# --- every exam file of ../shared/data through a tiny Qwen3 with the real tokenizer ---
if [ ! -d "$SHARED/tokenizers" ] || [ ! -d "$SHARED/data" ]; then
	skip "every exam file of ../shared/data" "MEDMOE_SHARED=$SHARED is absent: no real tokenizers or data"
	done_testing
	exit
fi
DATA=$SHARED/data
init-base --arch qwen3 --layers 2 --hidden 32 --heads 2 --kv-heads 1 --ffn 64 --seed 11 \
	--tokenizer "$SHARED/tokenizers/qwen3/tokenizer.json" -o q3
ok_fails 65 "the fixture stream through a model with another tokenizer" "eval-exam -q --base q3 $EV/cmb.mpk"
n_files=0
exam() {  # exam BENCH FILE
	n_files=$((n_files + 1))
	ok "$1 $(echo "$2" | sed "s|$DATA/||"): a prediction for every question, same ids, in order" "
		tokenize -q --exam $1 --tokenizer q3 -o e.mpk '$2' &&
		eval-exam -q --base q3 -o e.pred e.mpk &&
		stream2json --validate -N e.pred > e.json &&
		ids e.mpk > want.ids && jq -r .id e.json > got.ids && test -s want.ids && cmp want.ids got.ids &&
		test \$(jq -c 'select(.parsed and (.scores | length) >= 2)' e.json | wc -l) -eq \$(wc -l < want.ids)"
}
for f in "$DATA"/cmmlu/data/*/*.csv; do exam cmmlu "$f"; done
for f in "$DATA"/mmlu_medical/data/*/*.csv; do exam mmlu "$f"; done
for f in $(find "$DATA/medqa" -name '*.jsonl' | sort); do exam medqa "$f"; done
exam medmcqa "$DATA/medmcqa/dev.json"
ok "score reads the predictions: its medmcqa count of correct answers is the predictions' own" "
	score --json e.pred > s.json &&
	test \$(jq .counts.medmcqa.n s.json) -eq \$(jq -s length e.json) &&
	test \$(jq .counts.medmcqa.n_correct s.json) -eq \$(jq -s '[.[] | select(.predicted == .answer)] | length' e.json)"
ok "generate on 24 CMMLU and 24 MedQA-USMLE questions: 24 records each, the first 24 ids" "
	f=\$(ls $DATA/cmmlu/data/test/*.csv | head -1) &&
	tokenize -q --exam cmmlu --tokenizer q3 -o c.mpk \$f &&
	eval-exam -q --base q3 --mode generate --max-new-tokens 8 --limit 24 -o c.pred c.mpk &&
	stream2json --validate -N c.pred | jq -r .id > c.ids && ids c.mpk | head -24 | cmp - c.ids &&
	tokenize -q --exam medqa --tokenizer q3 -o u.mpk $DATA/medqa/data_clean/questions/US/dev.jsonl &&
	eval-exam -q --base q3 --mode generate --max-new-tokens 8 --stop '\n\n' --limit 24 -o u.pred u.mpk &&
	stream2json --validate -N u.pred | jq -r .id > u.ids && ids u.mpk | head -24 | cmp - u.ids"
ok "generate on 40 MedQA-USMLE and 40 CMMLU questions: --gen-batch 1 and 8 give the same bytes" "
	f=\$(ls $DATA/cmmlu/data/test/*.csv | head -1) &&
	tokenize -q --exam cmmlu --tokenizer q3 -o c40.mpk \$f &&
	for e in u c40; do
		for b in 1 8; do
			eval-exam -q --base q3 --mode generate --max-new-tokens 16 --stop '\n\n' --limit 40 \
				--gen-batch \$b -o \$e.\$b.pred \$e.mpk || exit 1
		done
		test \$(stream2json -N \$e.1.pred | wc -l) -eq 40 && cmp \$e.1.pred \$e.8.pred || exit 1
	done"
echo "# $n_files exam files"
done_testing
