#!/bin/sh
# demo-data.sh FACTS OUTDIR — the demo's bilingual multi-task corpus and its held-out exam, from a fact table.
#
# Each row of FACTS (demo/facts.tsv) ties a disease to its department, a first-line drug and a typical symptom,
# in Chinese and English.  Three training tasks are written as ShareGPT JSON Lines, each in both languages:
#   drug_qa.jsonl  which drug treats a disease (free answer)
#   triage.jsonl   which department a patient with a symptom and a suspected disease should see (free answer)
#   exam_mc.jsonl  exam-style multiple choice: the drug for a disease, answered with the letter
# and a held-out exam of NEW questions on the same facts, in MedQA's JSON Lines format (read by
# `tokenize --exam medqa`): exam-zh.jsonl and exam-en.jsonl ask the other way round (drug → disease,
# symptom → disease) and about departments as multiple choice, none of which the training set asks.
# Deterministic: the options are shuffled by a fixed linear congruential generator, not awk's rand().
set -eu
facts=$1 out=$2
mkdir -p "$out"
awk -F '\t' -v out="$out" '
function lcg() { seed = (seed * 1103515245 + 12345) % 2147483648; return seed }
function pick(n) { return int(lcg() / 2147483648 * n) + 1 }
# Four options: the right one at a random letter, three others from different rows (distinct texts).
function options(col, row,    k, j, used, cand) {
	split("", used); used[row] = 1
	ans = pick(4)
	for (k = 1; k <= 4; k++) {
		if (k == ans) { opt[k] = F[row, col]; continue }
		do { cand = pick(n) } while ((cand in used) || F[cand, col] == F[row, col] || seen_text(F[cand, col], k))
		used[cand] = 1; opt[k] = F[cand, col]
	}
	return substr("ABCD", ans, 1)
}
function seen_text(t, upto,    k) { for (k = 1; k < upto; k++) if (opt[k] == t) return 1; return 0 }
function chat(file, q, a) { printf "{\"conversations\":[{\"from\":\"human\",\"value\":\"%s\"},{\"from\":\"gpt\",\"value\":\"%s\"}]}\n", q, a > file }
function opts_text(    k, s) { s = ""; for (k = 1; k <= 4; k++) s = s "\\n" substr("ABCD", k, 1) ". " opt[k]; return s }
function medqa(file, q, letter, meta,    k, s) {
	s = "{\"question\": \"" q "\", \"options\": {"
	for (k = 1; k <= 4; k++) s = s (k > 1 ? ", " : "") "\"" substr("ABCD", k, 1) "\": \"" opt[k] "\""
	s = s "}, \"answer\": \"" opt[index("ABCD", letter)] "\", \"answer_idx\": \"" letter "\", \"meta_info\": \"" meta "\"}"
	print s > file
}
/^#/ { next }
{ n++; for (c = 1; c <= 8; c++) F[n, c] = $c }
END {
	seed = 20261123
	for (r = 1; r <= n; r++) {
		dz = F[r,1]; de = F[r,2]; tz = F[r,3]; te = F[r,4]; gz = F[r,5]; ge = F[r,6]; sz = F[r,7]; se = F[r,8]
		# drug_qa: three phrasings per language
		chat(out "/drug_qa.jsonl", dz "的常用治疗药物是什么？", gz "。")
		chat(out "/drug_qa.jsonl", "治疗" dz "，首选哪种药物？", "可选用" gz "。")
		chat(out "/drug_qa.jsonl", "请说出一种治疗" dz "的药物。", gz "。")
		chat(out "/drug_qa.jsonl", "Name a drug commonly used to treat " de ".", ge ".")
		chat(out "/drug_qa.jsonl", "What is a first-line drug for " de "?", ge " is a first-line choice.")
		chat(out "/drug_qa.jsonl", "Which medicine would you give for " de "?", ge ".")
		# triage
		chat(out "/triage.jsonl", "患者出现" sz "，考虑" dz "，应首先就诊哪个科室？", tz "。")
		chat(out "/triage.jsonl", dz "患者应该看哪个科？", tz "。")
		chat(out "/triage.jsonl", "A patient has " se " and " de " is suspected. Which department should they see first?", te ".")
		chat(out "/triage.jsonl", "Which department treats " de "?", te ".")
		# exam_mc: four shuffles per language
		for (v = 1; v <= 4; v++) {
			letter = options(5, r)
			chat(out "/exam_mc.jsonl", "以下是一道单项选择题。\\n治疗" dz "的常用药物是：" opts_text() "\\n答案是：", "答案是：" letter)
			letter = options(6, r)
			chat(out "/exam_mc.jsonl", "The following is a multiple choice question.\\nWhich drug is commonly used to treat " de "?" opts_text() "\\nAnswer:", "The answer is " letter)
		}
		# held-out exam: questions the training set never asks
		letter = options(1, r); medqa(out "/exam-zh.jsonl", gz "主要用于治疗下列哪种疾病？", letter, "drug-to-disease")
		letter = options(1, r); medqa(out "/exam-zh.jsonl", "患者以" sz "为主要表现，最可能的诊断是：", letter, "symptom-to-disease")
		letter = options(3, r); medqa(out "/exam-zh.jsonl", dz "患者首先应就诊于：", letter, "department")
		letter = options(2, r); medqa(out "/exam-en.jsonl", ge " is mainly used to treat which condition?", letter, "drug-to-disease")
		letter = options(2, r); medqa(out "/exam-en.jsonl", "A patient presents chiefly with " se ". What is the most likely diagnosis?", letter, "symptom-to-disease")
		letter = options(4, r); medqa(out "/exam-en.jsonl", "A patient with " de " should first be seen by which department?", letter, "department")
	}
}' "$facts"
