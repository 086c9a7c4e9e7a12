#!/bin/sh
# make demo, reduced: 12 of the facts, LoRA only, 400 steps (about the epochs of make demo's 800 on 28 facts).  The trained model must beat the untrained base
# on the trained facts asked in new words (McNemar p < 0.01 on each language), the merged checkpoint must
# answer as base + adapter, and the report must be written.  Not timed (make demo's time is in its report).
. "$MEDMOE_TOP/tests/lib.sh"
: "${OMP_NUM_THREADS:=1}"; export OMP_NUM_THREADS
head -13 "$MEDMOE_TOP/demo/facts.tsv" > facts.tsv
ok "a reduced demo runs end to end (12 facts, lora, 400 steps)" "
	DEMO_FACTS=$SCRATCH/facts.tsv DEMO_METHODS=lora DEMO_STEPS=400 DEMO_OUT=$SCRATCH/out DEMO_REPORT=$SCRATCH/report.md \
		MEDMOE_BIN=$MEDMOE_BIN sh $MEDMOE_TOP/scripts/demo.sh 2> demo.log && test -s report.md"
ok "the training questions are the exam's prompts: exam_mc's user turn tokenizes as the seen exam's prompt" "
	stream2json -N out/exam/seen-zh.exam | head -1 | jq -c .prompt > exam_prompt &&
	stream2json -N out/tokens/exam_mc.mpk | head -1 | jq -c --argjson n \$(jq length exam_prompt) '.ids[:\$n]' > train_prompt &&
	cmp exam_prompt train_prompt"
# paired.tsv: method, baseline, exam, group, difference, lo, hi, b, c, McNemar p
for lang in zh en; do
	ok "lora beats the untrained base on rephrased trained questions ($lang), McNemar p < 0.01" "
		awk -F '\t' '\$1 == \"lora\" && \$2 == \"base\" && \$3 == \"$lang\" && \$4 == \"rephrased\" { print; found = 1
			if (!(\$5 > 0 && \$10 < 0.01)) exit 1 } END { if (!found) exit 1 }' out/paired.tsv"
done
ok "lora beats the base on the training questions themselves" "
	awk -F '\t' '\$1 == \"lora\" && \$2 == \"base\" && \$3 ~ /^seen-/ && \$4 == \"all\" { n++; if (!(\$5 > 0 && \$10 < 0.01)) exit 1 }
		END { if (n != 2) exit 1 }' out/paired.tsv"
ok "the merged checkpoint gives base + adapter's answer on every question" "
	awk -F '\t' '\$1 == \"merged-lora\" { n++; if (\$4 != \$5 || \$6 > 1e-3) exit 1 } END { if (n != 4) exit 1 }' out/merged.tsv"
ok "generate mode parses the answers (at most 5% unparsed)" "
	awk -F '\t' '\$1 == \"lora-generate\" && \$3 == \"all\" { n++; if (\$8 > 0.05) exit 1 } END { if (n != 2) exit 1 }' out/scores.tsv"
ok "the report has its tables and charts, each chart well-formed" "
	grep -q '^| lora | zh | rephrased |' report.md && grep -q '^## Merging' report.md &&
	for f in out/charts/*.svg; do xmllint --noout \$f || exit 1; done && test -s out/charts/loss.svg"
done_testing
