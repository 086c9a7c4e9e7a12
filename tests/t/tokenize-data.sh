#!/bin/sh
# tokenize on the real data: every corpus in ../shared/data ingests, every exam file gives one record per question.
. "$MEDMOE_TOP/tests/lib.sh"
need_shared
TOK=$SHARED/tokenizers
DATA=$SHARED/data
QWEN=$TOK/qwen3/tokenizer.json
MISTRAL=$TOK/mistral/tokenizer.json

count_records() { stream2json -N "$1" | wc -l | tr -d ' '; }

# --- every real corpus ingests (docs/corpora.md gives the flags) ---
corpus() {  # corpus WANT_RECORDS FLAGS... FILE
	want=$1; shift
	ok "corpus $(basename "$(eval echo \${$#})"): $want records" "
		tokenize -q --tokenizer $QWEN --template chatml $* -o corp.mpk &&
		stream2json --validate -N corp.mpk > corp.json && test \$(wc -l < corp.json) -eq $want &&
		! grep -q '\"ids\":\[\]' corp.json"
}
corpus 5452 "$DATA/chatdoctor/chatdoctor5k.json"
corpus 5942 "$DATA/medical_meadow/medical_meadow_small.json"
corpus 8658 "$DATA/huatuo_llama_med_chinese/data/llama_data.json"
corpus 1000 "$DATA/huatuo_llama_med_chinese/data-literature/liver_cancer.json"
corpus 1000 "$DATA/medicalgpt_sft/data/sft/medical_sft_1K_format.jsonl"
corpus 80 "$DATA/promptcblue/toy_examples/train.json"
corpus 80 "$DATA/promptcblue/toy_examples/test.json"
corpus 604 "$DATA/covid_dialogue/COVID-Dialogue-Dataset-English.txt"
corpus 870 "$DATA/covid_dialogue/CovidDialog/Chinese-COVID-dialogue-code/data/train_data.json"
corpus 109 "$DATA/covid_dialogue/CovidDialog/Chinese-COVID-dialogue-code/data/validate_data.json"
corpus 7644 --encoding GB18030 "'$DATA/chinese_medical_dialogue/样例_内科5000-6000.csv'"
corpus 796 "--columns 'id=idx,user=Symptom,assistant=disease+reason+TestsAndProcedures+commonMedications'" "$DATA/chatdoctor/format_dataset.csv"
corpus 12 "--columns 'user=Symptom,assistant=disease'" "$DATA/chatdoctor/Autonomous_ChatDoctor_csv/disease_symptom.csv"
corpus 100 "--columns 'id=idx,user=Symptom,assistant=disease+Medical Tests+Medications'" "$DATA/chatdoctor/Autonomous_ChatGPT_API/disease_database_mini.csv"
ok "PromptCBLUE records carry their own task names" "
	tokenize -q --tokenizer $QWEN $DATA/promptcblue/toy_examples/train.json | stream2json -N > p.json &&
	test \$(grep -o '\"task\":\"[^\"]*\"' p.json | sort -u | wc -l) -eq 16"
ok_fails 65 "the GB18030 CSV without --encoding is invalid UTF-8" "
	tokenize -q --tokenizer $QWEN -o x.mpk '$DATA/chinese_medical_dialogue/样例_内科5000-6000.csv'"
mkdir -p arch && cp "$DATA/medicalgpt_sft/data/sft/medical_sft_1K_format.jsonl" "$DATA/promptcblue/toy_examples/train.json" arch/
(cd arch && zip -q ../a.zip * && tar czf ../a.tar.gz * && tar cJf ../a.tar.xz * && tar --zstd -cf ../a.tar.zst *)
for a in a.zip a.tar.gz a.tar.xz a.tar.zst; do
	ok "files inside $a: the same ids as the plain files" "
		tokenize -q --tokenizer $QWEN --template chatml --task t $a | stream2json -N | sed 's/\"id\":\"[^\"]*\",//' | sort > $a.json &&
		tokenize -q --tokenizer $QWEN --template chatml --task t arch/medical_sft_1K_format.jsonl arch/train.json |
			stream2json -N | sed 's/\"id\":\"[^\"]*\",//' | sort > plain.json &&
		cmp $a.json plain.json && test \$(wc -l < plain.json) -eq 1080"
done

# --- exam mode: every exam file, one record per question, in order ---
exam() {  # exam BENCH WANT FILE [FLAGS]
	bench=$1 want=$2 file=$3; shift 3
	ok "exam $bench $(basename "$file"): $want questions" "
		tokenize -q --exam $bench --tokenizer $QWEN $* -o e.mpk '$file' &&
		stream2json --validate -N e.mpk > e.json && test \$(wc -l < e.json) -eq $want &&
		test \$(grep -c '\"option_ids\":\[\[[0-9]' e.json) -eq $want"
}
for f in "$DATA"/cmmlu/data/*/*.csv; do exam cmmlu "$(($(wc -l < "$f") - 1))" "$f"; done
exam mmlu 135 "$DATA/mmlu_medical/data/test/anatomy_test.csv"
exam mmlu 265 "$DATA/mmlu_medical/data/test/clinical_knowledge_test.csv"
exam mmlu 144 "$DATA/mmlu_medical/data/test/college_biology_test.csv"
exam mmlu 173 "$DATA/mmlu_medical/data/test/college_medicine_test.csv"
exam mmlu 100 "$DATA/mmlu_medical/data/test/medical_genetics_test.csv"
for f in "$DATA"/mmlu_medical/data/dev/*.csv; do exam mmlu 5 "$f"; done
exam mmlu 14 "$DATA/mmlu_medical/data/val/anatomy_val.csv"
exam mmlu 29 "$DATA/mmlu_medical/data/val/clinical_knowledge_val.csv"
exam mmlu 16 "$DATA/mmlu_medical/data/val/college_biology_val.csv"
exam mmlu 22 "$DATA/mmlu_medical/data/val/college_medicine_val.csv"
exam mmlu 11 "$DATA/mmlu_medical/data/val/medical_genetics_val.csv"
exam medqa 1272 "$DATA/medqa/data_clean/questions/US/dev.jsonl"
exam medqa 1272 "$DATA/medqa/data_clean/questions/US/4_options/phrases_no_exclude_dev.jsonl"
exam medqa 3425 "$DATA/medqa/data_clean/questions/Mainland/dev.jsonl"
exam medqa 3425 "$DATA/medqa/data_clean/questions/Mainland/4_options/dev.jsonl"
exam medqa 1412 "$DATA/medqa/data_clean/questions/Taiwan/dev.jsonl"
exam medmcqa 4183 "$DATA/medmcqa/dev.json"
exam cmb 3 "$FIXTURES/exam/cmb_test.json"
exam cmb 3 "$FIXTURES/exam/cmb_val.json"
exam cmexam 3 "$FIXTURES/exam/cmexam_test.csv"
exam cmexam 2 "$FIXTURES/exam/cmexam_zh.csv"
ok "5-shot CMMLU: shots from the dev split of the same subject, in the prompt" "
	tokenize -q --exam cmmlu --tokenizer $QWEN --shots 5 --shots-from $DATA/cmmlu/data/dev/anatomy.csv \
		--shots-from $DATA/cmmlu/data/dev/virology.csv $DATA/cmmlu/data/test/anatomy.csv > s5.mpk &&
	tokenize -q --exam cmmlu --tokenizer $QWEN $DATA/cmmlu/data/test/anatomy.csv > s0.mpk &&
	stream2json -H s5.mpk | grep -q '\"shots\":5' &&
	test \$(stream2json -N -n 1 s5.mpk | wc -c) -gt \$(( 2 * \$(stream2json -N -n 1 s0.mpk | wc -c) ))"
ok "English option letters follow 'Answer:' with a space; Chinese ones follow '答案是：' directly" "
	tokenize -q --exam mmlu --tokenizer $QWEN $DATA/mmlu_medical/data/dev/anatomy_dev.csv | stream2json -N -n 1 |
		grep -q '\"option_ids\":\[\[362\],\[425\],\[356\],\[422\]\]' &&
	tokenize -q --exam cmmlu --tokenizer $QWEN $DATA/cmmlu/data/dev/anatomy.csv | stream2json -N -n 1 |
		grep -q '\"option_ids\":\[\[32\],\[33\],\[34\],\[35\]\]'"
ok "multi-answer questions are typed multi with sorted answer letters" "
	tokenize -q --exam cmb --tokenizer $QWEN $FIXTURES/exam/cmb_test.json | stream2json -N | grep -q '\"type\":\"multi\"'"
ok_fails 65 "the CMB answer key (no question text) is refused, naming the field" "
	tokenize -q --exam cmb --tokenizer $QWEN -o k.mpk $DATA/cmb/data/CMB-test-choice-answer.json"
ok "... record 1: question" "grep -q 'record 1: question' err.$n_test && test ! -e k.mpk"
ok_fails 2 "an unknown benchmark is a usage error" "tokenize --exam usmle --tokenizer $QWEN x.jsonl"

done_testing
