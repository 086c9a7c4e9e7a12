#!/bin/sh
# demo-data.sh FACTS OUTDIR — the demo's bilingual multi-task corpus and its held-out exam, from a fact table.
#
# Each row of FACTS (demo/facts.tsv) ties a disease to its department, a first-line drug and a typical symptom,
# in Chinese and English.  Three training tasks are written as ShareGPT JSON Lines, each in both languages:
#   drug_qa.jsonl  which drug treats a disease (free answer)
#   triage.jsonl   which department a patient with a symptom and a suspected disease should see (free answer)
#   exam_mc.jsonl  multiple choice on the same two facts (disease → drug, disease → department): the user turn is
#                  exactly the prompt `tokenize --exam medqa` writes (docs/exam-prompts.md: CMMLU style in
#                  Chinese, MMLU style in English) and the reply is the bare letter, which is what eval-exam's
#                  loglik mode scores: the letter as the first token of the assistant's turn (`--template
#                  chatml` on both sides).  Each question is drawn with DEMO_MC_SHUFFLES (default 1) option
#                  orders, each order written in two phrasings.
# The same training questions in MedQA's format: seen-zh.jsonl, seen-en.jsonl (what the model was taught).
# The held-out exam in MedQA's JSON Lines format (read by `tokenize --exam medqa`): exam-zh.jsonl and
# exam-en.jsonl, six questions per fact each, whose meta_info names the kind of question (two per fact each):
#   rephrased  a trained question (disease → drug, disease → department) in a phrasing no training example
#              uses, with the options of its first training draw, in the same order
#   reordered  the same new phrasing with options drawn and ordered afresh (another draw of the generator: it
#              may repeat a training order only by chance), so the answer's letter is new
#   reversed   the facts asked the other way round (drug → disease, symptom → disease): an answer no training
#              example gives
# Deterministic: the options are shuffled by a fixed linear congruential generator, not awk's rand().
set -eu
facts=$1 out=$2
mkdir -p "$out"
awk -F '\t' -v out="$out" -v shuffles="${DEMO_MC_SHUFFLES:-1}" '
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
# The exam prompts of tokenize --exam medqa (lib/exam_prompt.c), without shots.
function prompt_zh(q) { return "以下是关于医学的单项选择题，请直接给出正确答案的选项。\\n\\n题目：" q opts_text() "\\n答案是：" }
function prompt_en(q) { return "The following are multiple choice questions (with answers) about medicine.\\n\\n" q opts_text() "\\nAnswer:" }
function medqa(file, q, letter, meta,    k, s) {
	s = "{\"question\": \"" q "\", \"options\": {"
	for (k = 1; k <= 4; k++) s = s (k > 1 ? ", " : "") "\"" substr("ABCD", k, 1) "\": \"" opt[k] "\""
	s = s "}, \"answer\": \"" opt[index("ABCD", letter)] "\", \"answer_idx\": \"" letter "\", \"meta_info\": \"" meta "\"}"
	print s > file
}
# A training multiple-choice question: the chat example, and the same question in MedQA format (seen-zh.jsonl,
# seen-en.jsonl: the training questions themselves, to tell memorising from generalising).
function mc(lang, col, row, q1, q2, meta,    letter, k) {
	letter = options(col, row)
	chat(out "/exam_mc.jsonl", lang == "zh" ? prompt_zh(q1) : prompt_en(q1), letter)
	chat(out "/exam_mc.jsonl", lang == "zh" ? prompt_zh(q2) : prompt_en(q2), letter)
	medqa(out "/seen-" lang ".jsonl", q1, letter, meta)
	medqa(out "/seen-" lang ".jsonl", q2, letter, meta)
	if (!((lang, col, row) in kept_letter)) {   # the first option order of each question, for the exam
		kept_letter[lang, col, row] = letter
		for (k = 1; k <= 4; k++) kept[lang, col, row, k] = opt[k]
	}
}
# The options of the first training draw of a question, back in opt[]; returns its letter.
function kept_options(lang, col, row,    k) {
	for (k = 1; k <= 4; k++) opt[k] = kept[lang, col, row, k]
	return kept_letter[lang, col, row]
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
		# exam_mc: the exam prompt, answered with the letter, in several option orders
		for (v = 1; v <= shuffles; v++) {
			mc("zh", 5, r, "治疗" dz "的常用药物是：", dz "的首选治疗药物是：", "drug")
			mc("en", 6, r, "Which drug is commonly used to treat " de "?", "What is the usual first-line drug for " de "?", "drug")
			mc("zh", 3, r, dz "患者应就诊于哪个科室？", dz "应由哪个科室诊治？", "department")
			mc("en", 4, r, "Which department treats " de "?", "Which department manages patients with " de "?", "department")
		}
	}
	# The held-out exam, after every training draw, so its option orders are new ones.
	for (r = 1; r <= n; r++) {
		dz = F[r,1]; de = F[r,2]; tz = F[r,3]; te = F[r,4]; gz = F[r,5]; ge = F[r,6]; sz = F[r,7]; se = F[r,8]
		qz = dz "患者首选下列哪种药物？"; qe = "Which of the following is a first-line drug for " de "?"
		medqa(out "/exam-zh.jsonl", qz, kept_options("zh", 5, r), "rephrased")
		medqa(out "/exam-zh.jsonl", qz, options(5, r), "reordered")
		medqa(out "/exam-en.jsonl", qe, kept_options("en", 6, r), "rephrased")
		medqa(out "/exam-en.jsonl", qe, options(6, r), "reordered")
		qz = dz "患者首先应就诊于："; qe = "A patient with " de " should first be seen by which department?"
		medqa(out "/exam-zh.jsonl", qz, kept_options("zh", 3, r), "rephrased")
		medqa(out "/exam-zh.jsonl", qz, options(3, r), "reordered")
		medqa(out "/exam-en.jsonl", qe, kept_options("en", 4, r), "rephrased")
		medqa(out "/exam-en.jsonl", qe, options(4, r), "reordered")
		medqa(out "/exam-zh.jsonl", gz "主要用于治疗下列哪种疾病？", options(1, r), "reversed")
		medqa(out "/exam-zh.jsonl", "患者以" sz "为主要表现，最可能的诊断是：", options(1, r), "reversed")
		medqa(out "/exam-en.jsonl", ge " is mainly used to treat which condition?", options(2, r), "reversed")
		medqa(out "/exam-en.jsonl", "A patient presents chiefly with " se ". What is the most likely diagnosis?", options(2, r), "reversed")
	}
}' "$facts"
