#!/bin/sh
# score: accuracies equal an independent awk count over the same questions; JSON layout; TSV, Markdown, text;
# SVG files are well-formed; --history appends; --fail-under exit codes; --baseline pairing and McNemar; bad
# input.  Predictions streams are written by tests/mkpred.c (libmsgpack only), compiled here.
. "$MEDMOE_TOP/tests/lib.sh"
export SOURCE_DATE_EPOCH=1790000000   # reproducible "date" fields

ok "compile the mkpred helper" \
	'cc -std=c11 -D_GNU_SOURCE -O1 -o mkpred "$MEDMOE_TOP/tests/mkpred.c" $(pkg-config --cflags --libs msgpack)'

# A run of 600 questions: CMB (3 exam types x 2 classes, a fifth multi-answer), CMMLU (4 subjects), MedQA.
# Outcomes come from a Park-Miller generator in awk: right, wrong, or unparsed; multi-answer questions are
# sometimes half right.  Columns as mkpred reads them.
gen() {  # gen SEED
	awk -v seed="$1" 'BEGIN {
		x = seed; OFS = "\t"
		split("医师考试 护理考试 药师考试", types, " ")
		split("anatomy clinical_knowledge genetics virology", subjects, " ")
		for (i = 1; i <= 600; i++) {
			x = (x * 16807) % 2147483647; r = x % 100
			if (i <= 300) {
				t = types[(i % 3) + 1]; c = t "-" (i % 2 ? "甲" : "乙")
				multi = (i % 5 == 0)
				ans = multi ? "ACD" : "B"
				pred = r < 55 ? ans : (r < 90 ? (multi ? "AC" : "C") : "-")
				print "cmb", "cmb-" i, multi ? "multi" : "single", ans, pred, "exam_type=" t ";exam_class=" c
			} else if (i <= 500) {
				s = subjects[(i % 4) + 1]
				pred = r < 45 ? "A" : (r < 95 ? "D" : "-")
				print "cmmlu", s "_test/" i, "single", "A", pred, "subject=" s ";subject_zh=学科" (i % 4)
			} else {
				pred = r < 60 ? "E" : "B"
				print "medqa", "US/test:" i, "single", "E", pred, "meta_info=step" (i % 2 ? "1" : "2&3")
			}
		}
	}'
}
gen 12345 > run.tsv
gen 777 > base.tsv
ok "write the run and baseline streams" './mkpred -n 5 run.mpk < run.tsv && ./mkpred -m loglik base.mpk < base.tsv'
ok "mkpred streams pass stream2json --validate" 'stream2json --validate run.mpk > /dev/null'

# ---- accuracies against awk ----
# expected rows "kind bench key value n n_correct n_unparsed" from the spec lines
awk -F '\t' '
	function add(k) { n[k]++; if ($5 == $4) right[k]++; if ($5 == "-") unp[k]++ }
	{ add("all\t\t\t"); add("bench\t" $1 "\t\t")
	  split($6, cats, ";")
	  for (j in cats) { split(cats[j], kv, "="); key = kv[1]
		if (($1 == "cmb") || ($1 != "cmb" && key != "subject_zh")) add("category\t" $1 "\t" key "\t" kv[2]) }
	  if ($3 == "multi") add("multi_exact\t" $1 "\t\t") }
	END { for (k in n) print k "\t" n[k] "\t" right[k] + 0 "\t" unp[k] + 0 }' run.tsv | LC_ALL=C sort > want.counts
ok "score --tsv runs" 'score --tsv run.mpk > run.out.tsv'
ok "- reads standard input" 'score --tsv - < run.mpk | cmp - run.out.tsv'
ok "counts per row equal an independent awk count" '
	awk -F "\t" "NR > 1 && \$1 != \"macro\" && \$1 != \"multi_f1\" { print \$1 \"\t\" \$2 \"\t\" \$3 \"\t\" \$4 \"\t\" \$5 \"\t\" \$6 \"\t\" \$7 }" run.out.tsv |
		LC_ALL=C sort > got.counts &&
	diff want.counts got.counts'
ok "accuracy = n_correct / n on every row" '
	awk -F "\t" "NR > 1 && \$1 != \"macro\" && \$1 != \"multi_f1\" { d = \$8 - \$6 / \$5; if (d > 1e-6 || d < -1e-6) { print; bad = 1 } } END { exit bad }" run.out.tsv'
# CMB macro: accuracy per exam_class, mean per exam_type, mean over types (CMB score.py)
awk -F '\t' '$1 == "cmb" { split($6, c, ";"); split(c[1], t, "="); split(c[2], cl, "=");
		n[t[2] SUBSEP cl[2]]++; if ($5 == $4) r[t[2] SUBSEP cl[2]]++; type[t[2] SUBSEP cl[2]] = t[2] }
	END { for (k in n) { s[type[k]] += r[k] / n[k]; m[type[k]]++ }
	      for (ty in s) { tot += s[ty] / m[ty]; nt++ } printf "%.6f\n", tot / nt }' run.tsv > want.macro
ok "CMB macro equals the awk macro average" '
	awk -F "\t" "\$1 == \"macro\" { print \$8 }" run.out.tsv > got.macro && diff want.macro got.macro'
# multi-answer F1: ACD vs AC is tp 2, fn 1; unparsed is fn 3
awk -F '\t' '$1 == "cmb" && $3 == "multi" { if ($5 == $4) tp += 3; else if ($5 == "AC") { tp += 2; fn += 1 } else fn += 3 }
	END { printf "%.6f\n", 2 * tp / (2 * tp + fn) }' run.tsv > want.f1
ok "multi-answer F1 equals the awk count" '
	awk -F "\t" "\$1 == \"multi_f1\" { print \$8 }" run.out.tsv > got.f1 && diff want.f1 got.f1'
ok "every interval holds its point estimate" '
	awk -F "\t" "NR > 1 && (\$10 > \$8 + 1e-9 || \$11 < \$8 - 1e-9) { print; bad = 1 } END { exit bad }" run.out.tsv'

# ---- JSON: lm-evaluation-harness's results layout, field by field ----
# What lm_eval.utils.make_table and lm-eval's own writers rely on: every block keyed by task name, the metric keys
# "METRIC,FILTER" holding numbers, their "METRIC_stderr,FILTER" numbers or "N/A", string aliases, flat groups.
ok "score --json writes lm-eval's top-level blocks" '
	score --json --label nightly run.mpk > run.json &&
	jq -e "(keys - [\"results\", \"groups\", \"group_subtasks\", \"configs\", \"versions\", \"n-shot\",
		\"higher_is_better\", \"n-samples\", \"config\", \"git_hash\", \"date\", \"intervals\", \"counts\",
		\"categories\", \"subjects\"]) == [] and
		([\"results\", \"groups\", \"group_subtasks\", \"configs\", \"versions\", \"n-shot\", \"higher_is_better\",
		  \"n-samples\", \"config\"] | all(. as \$k | \$ARGS.named.j | has(\$k)))" --argjson j "$(cat run.json)" run.json'
ok "results: an alias and METRIC,none numbers with METRIC_stderr,none numbers or \"N/A\", nothing else" '
	jq -e "[.results | to_entries[] | .value | to_entries[] |
		if .key == \"alias\" then (.value | type) == \"string\"
		elif (.key | test(\"^[a-z0-9_]+_stderr,none\$\")) then ((.value | type) == \"number\" or .value == \"N/A\")
		elif (.key | test(\"^[a-z0-9_]+,none\$\")) then ((.value | type) == \"number\")
		else false end] | all" run.json'
ok "every result has a version, an n-shot, higher_is_better for each metric, n-samples and a config" '
	jq -e ". as \$r | [.results | to_entries[] | .key as \$k | .value as \$e |
		(\$r.versions[\$k] | type) == \"number\" and (\$r[\"n-shot\"] | has(\$k)) and
		(\$r[\"n-shot\"][\$k] | type) == \"number\" and
		([\$e | keys[] | select(endswith(\",none\") and (endswith(\"_stderr,none\") | not)) | sub(\",none\$\"; \"\")] - (\$r.higher_is_better[\$k] | keys)) == [] and
		([\$r.higher_is_better[\$k][]] | all(. == true)) and
		(\$r[\"n-samples\"][\$k].original | type) == \"number\" and \$r[\"n-samples\"][\$k].effective == \$r[\"n-samples\"][\$k].original and
		\$r.configs[\$k].task == \$k and (\$r.configs[\$k].metric_list | length) >= 1 and
		(\$r.configs[\$k].metadata.version | type) == \"number\"] | all" run.json'
ok "groups are flat (all and each bench, the same entries as in results); group_subtasks lists their members" '
	jq -e "(.groups | keys) == [\"all\", \"cmb\", \"cmmlu\", \"medqa\"] and
		([.groups | to_entries[] | .value == \$ARGS.named.r.results[.key]] | all) and
		.group_subtasks.all == [\"cmb\", \"cmmlu\", \"medqa\"] and
		(.group_subtasks.cmmlu | sort) == [\"cmmlu_anatomy\", \"cmmlu_clinical_knowledge\", \"cmmlu_genetics\", \"cmmlu_virology\"] and
		([.group_subtasks[][] | in(\$ARGS.named.r.results)] | all)" --argjson r "$(cat run.json)" run.json'
ok "task names: lm-eval's cmmlu_SUBJECT, BENCH_KEY_VALUE, BENCH_multi_answer; the CMB macro and multi-answer metrics" '
	jq -e ".results.all[\"acc,none\"] == .results.all[\"acc,none\"] and .results.all.alias == \"all\" and
		.results.cmmlu_anatomy.alias == \"anatomy\" and .results.medqa_meta_info_step1.alias == \"meta_info=step1\" and
		(.results.cmb[\"acc_macro,none\"] | type) == \"number\" and .results.cmb[\"acc_macro_stderr,none\"] == \"N/A\" and
		(.results[\"cmb_exam_type_医师考试\"] | has(\"acc_macro,none\") and (has(\"acc,none\") | not)) and
		(.results.cmb_multi_answer | has(\"exact_match,none\") and has(\"f1,none\")) and
		.results.cmb_multi_answer[\"f1_stderr,none\"] == \"N/A\"" run.json'
ok "n-shot comes from the predictions header; config names the model the lm-eval way" '
	jq -e "([.[\"n-shot\"][]] | all(. == 5)) and .config.model == \"medmoe\" and .config.model_args == \"base=test-model\"
		and .config.bootstrap_iters == 1000 and .config.random_seed == 1 and .config.label == \"nightly\"
		and .config.mode == \"generate\" and .configs.all.output_type == \"generate_until\" and .date == 1790000000" run.json'
ok "medmoe's own fields under their own keys: intervals, counts (unparsed rate), categories, subjects" '
	jq -e ".counts.all.n == 600 and (.intervals.all.acc | length) == 2 and .counts.cmb_multi_answer.n == 60 and
		(.subjects.cmmlu | length) == 4 and .categories[\"cmb_exam_type_医师考试\"].macro == true and
		.categories.medqa_meta_info_step1 == {\"bench\": \"medqa\", \"key\": \"meta_info\", \"value\": \"step1\", \"macro\": false} and
		.counts.medqa_meta_info_step1.n == 50 and .[\"n-samples\"].medqa_meta_info_step1.original == 50 and
		(.counts.all.unparsed_rate - .counts.all.n_unparsed / 600 | fabs) < 1e-9 and (has(\"paired\") | not)" run.json'
ok "JSON accuracy equals the TSV one" '
	test "$(jq -r ".results.cmmlu[\"acc,none\"]" run.json | xargs printf "%.6f")" = \
	     "$(awk -F "\t" "\$1 == \"bench\" && \$2 == \"cmmlu\" { print \$8 }" run.out.tsv)"'
ok "stderr as lm-eval: sqrt(p(1-p)/(n-1))" '
	jq -e "(.results.cmmlu[\"acc_stderr,none\"] - ((.results.cmmlu[\"acc,none\"] * (1 - .results.cmmlu[\"acc,none\"]) / 199) | sqrt) | fabs) < 1e-9" run.json'
# one question set, one interval: a bench of one subject, that subject, and "all" of a one-bench run
awk -F '\t' '$1 == "cmmlu" && $6 ~ /subject=genetics/' run.tsv > one.tsv
ok "the same questions get the same interval wherever they appear (bench, its one subject, all)" '
	./mkpred one.mpk < one.tsv && score --json one.mpk > one.json &&
	jq -e ".intervals.cmmlu.acc == .intervals.cmmlu_genetics.acc and .intervals.all.acc == .intervals.cmmlu.acc and
		.intervals.cmmlu.acc != null" one.json &&
	test "$(jq -c .intervals.cmmlu_genetics.acc run.json)" = "$(jq -c .intervals.cmmlu_genetics.acc one.json)"'
ok "same seed, same output; another seed, other intervals" '
	score --json --label nightly run.mpk > again.json && cmp run.json again.json &&
	score --json --seed 99 run.mpk > other.json && ! cmp -s run.json other.json'
ok "--bootstrap 0: no intervals (null), the rest unchanged" '
	score --json --bootstrap 0 run.mpk | jq -e ".intervals.all.acc == null and .results.all[\"acc,none\"] != null"'
# lm-eval itself, when a Python with it is at hand (never needed: the checks above are the contract); make bench
# installs one into bench/venv
: "${MEDMOE_LM_EVAL_PY:=$MEDMOE_TOP/bench/venv/bin/python}"
if [ -x "$MEDMOE_LM_EVAL_PY" ] && "$MEDMOE_LM_EVAL_PY" -c 'import lm_eval.utils' 2> /dev/null; then
	cat > make_table.py <<'EOF'
import json
import sys
from lm_eval.utils import make_table
d = json.load(open(sys.argv[1]))
print(make_table(d))
print(make_table(d, "groups"))
EOF
	ok "lm_eval.utils.make_table reads it (MEDMOE_LM_EVAL_PY)" \
		'"$MEDMOE_LM_EVAL_PY" make_table.py run.json > table.md && grep -q "anatomy" table.md && grep -q "^|all " table.md'
else
	skip "lm_eval.utils.make_table reads it" "no Python with lm_eval (MEDMOE_LM_EVAL_PY, or bench/venv after make bench)"
fi

# ---- samples (lm-eval's --log_samples) ----
ok "--samples: one line per question, in bench and id order, with lm-eval's sample fields" '
	score --samples samples.jsonl --baseline base.mpk run.mpk > /dev/null && test $(wc -l < samples.jsonl) -eq 600 &&
	jq -e -s "[.[] | (keys - [\"task\", \"doc_id\", \"doc\", \"target\", \"resps\", \"filtered_resps\", \"filter\",
		\"metrics\", \"acc\", \"predicted\", \"parsed\", \"shots\", \"baseline\"]) == [] and .filter == \"none\" and
		.metrics == [\"acc\"] and (.acc == 1.0 or .acc == 0.0) and .shots == 5] | all" samples.jsonl &&
	jq -s -e "map(.task) == (map(.task) | sort) and (map(select(.task == \"cmb\") | .doc_id) == [range(0; 300)])" samples.jsonl'
ok "--samples: acc, target, predicted and the baseline agree with the input lines" '
	jq -r "[.doc.id, .target, (.predicted // \"-\"), .acc, .baseline.predicted // \"-\"] | @tsv" samples.jsonl | sort > got.samples &&
	paste run.tsv base.tsv | awk -F "\t" "{ print \$2 \"\t\" \$4 \"\t\" \$5 \"\t\" (\$5 == \$4 ? 1 : 0) \"\t\" \$11 }" | sort > want.samples &&
	diff want.samples got.samples'
ok "--samples on loglik predictions: the option scores as resps, the argmax as predicted" '
	eval-exam -q --base "$FIXTURES/eval/model" -o ll.pred "$FIXTURES/eval/cmb.mpk" &&
	score --samples ll.jsonl ll.pred > /dev/null &&
	stream2json -N ll.pred | jq -c "{id, scores, predicted}" > want.ll &&
	jq -c "{id: .doc.id, scores: .filtered_resps, predicted}" ll.jsonl > got.ll &&
	jq -n -e --slurpfile a want.ll --slurpfile b got.ll "(\$a | length) == 3 and
		([range(0; \$a | length) as \$i | \$a[\$i].id == \$b[\$i].id and \$a[\$i].predicted == \$b[\$i].predicted and
		  ([range(0; \$a[\$i].scores | length) as \$k | ((\$a[\$i].scores[\$k] - \$b[\$i].scores[\$k]) | fabs) < 1e-6] | all)] | all)" &&
	jq -e -s "[.[] | (.resps | map(length) | all(. == 1))] | all" ll.jsonl'

# ---- text and Markdown ----
ok "text table: every row has the same display width (CJK counted double)" '
	score run.mpk > run.txt && grep -q "医师考试" run.txt &&
	sed -n "/^group/,/^  subject=virology/p" run.txt > table.txt && test $(wc -l < table.txt) -gt 10 &&
	test "$(while IFS= read -r l; do printf "%s\n" "$l" | LC_ALL=C.UTF-8 wc -L; done < table.txt | sort -u | wc -l)" -eq 1'
ok "text report prints the CMMLU subject list" 'grep -q "^cmmlu subjects (4): anatomy, clinical_knowledge, genetics, virology$" run.txt'
ok "markdown table" 'score --markdown run.mpk > run.md && grep -q "^| group | n | score |" run.md && grep -q "^|---|---:|" run.md'
ok "one output format at a time" 'score --json --tsv run.mpk 2> err; test $? -eq 2'

# ---- SVG ----
ok "--svg writes a well-formed chart with a bar per row" '
	score --svg bars.svg run.mpk > /dev/null && xmllint --noout bars.svg &&
	test "$(grep -c "<rect x=" bars.svg)" -eq "$(($(wc -l < run.out.tsv) - 1))"'

# ---- history ----
ok "--history appends one JSON line per run" '
	score --history hist.jsonl --label r1 run.mpk > /dev/null &&
	score --history hist.jsonl --label r2 base.mpk > /dev/null &&
	test $(wc -l < hist.jsonl) -eq 2 && jq -s -e ".[0].label == \"r1\" and .[1].label == \"r2\"
		and .[0].results.all.n == 600 and (.[1].results.cmb.acc_ci | length) == 2
		and .[0].timestamp == \"2026-09-21T14:13:20Z\"" hist.jsonl'
ok "--plot-history draws a well-formed trend" '
	score --history hist.jsonl --plot-history trend.svg && xmllint --noout trend.svg &&
	grep -q "<polyline" trend.svg && grep -q ">r2</text>" trend.svg'
printf 'not json\n' > bad.jsonl
ok_fails 65 "--plot-history on a broken history" 'score --history bad.jsonl --plot-history t.svg'
ok_fails 65 "--plot-history on a history line without results" \
	'head -1 hist.jsonl > bad2.jsonl && echo "{\"label\": \"x\"}" >> bad2.jsonl && score --history bad2.jsonl --plot-history t.svg'
ok_fails 65 "--plot-history on a history with a non-numeric accuracy" \
	'echo "{\"results\": {\"cmb\": {\"acc\": \"high\"}}}" > bad3.jsonl && score --history bad3.jsonl --plot-history t.svg'

# ---- --fail-under ----
ok "--fail-under below the accuracy exits 0" 'score --fail-under 0.2 run.mpk > /dev/null'
ok_fails 1 "--fail-under above the accuracy exits 1" 'score --fail-under 0.9 run.mpk > /dev/null'
ok_fails 1 "--fail-under takes a percentage" 'score --fail-under 90% run.mpk > /dev/null'
ok_fails 2 "--fail-under out of range is a usage error" 'score --fail-under 2 run.mpk'

# ---- baseline ----
ok "--baseline: paired b and c equal the awk count" '
	score --tsv --baseline base.mpk run.mpk > paired.tsv &&
	paste run.tsv base.tsv | awk -F "\t" "{ r = (\$5 == \$4); q = (\$11 == \$10); b += r && !q; c += !r && q }
		END { print b \"\t\" c }" > want.bc &&
	awk -F "\t" "\$1 == \"all\" { print \$18 \"\t\" \$19 }" paired.tsv > got.bc && diff want.bc got.bc'
# a designed table: 12 discordant pairs, b = 10 and c = 2, plus 5 concordant: p = 158/4096
awk 'BEGIN { OFS = "\t"; for (i = 1; i <= 17; i++) print "mmlu", "anatomy_test/" i, "single", "A", (i <= 10 || i > 12 ? "A" : "B"), "subject=anatomy" }' > mc_run.tsv
awk 'BEGIN { OFS = "\t"; for (i = 1; i <= 17; i++) print "mmlu", "anatomy_test/" i, "single", "A", (i > 10 ? "A" : "C"), "subject=anatomy" }' > mc_base.tsv
ok "McNemar exact p for b=10, c=2 is 0.0386" '
	./mkpred mc_run.mpk < mc_run.tsv && ./mkpred mc_base.mpk < mc_base.tsv &&
	score --json --baseline mc_base.mpk mc_run.mpk > mc.json &&
	jq -e ".paired.all.b == 10 and .paired.all.c == 2
		and (.paired.all.mcnemar_p - 0.0385742188 | fabs) < 1e-9
		and (.paired.all.diff - 8/17 | fabs) < 1e-9 and .paired.mmlu_anatomy == .paired.all" mc.json'
ok "paired columns in the text table" 'score --baseline mc_base.mpk mc_run.mpk | grep -q "McNemar p"'
printf 'cmb\tother-1\tsingle\tA\tA\texam_type=x;exam_class=y\n' > other.tsv
ok_fails 65 "a baseline with other ids is refused" './mkpred other.mpk < other.tsv && score --baseline other.mpk run.mpk'
printf 'cmb\tcmb-1\tsingle\tC\tC\texam_type=x;exam_class=y\n' > otherkey.tsv
ok_fails 65 "a baseline with another answer under the same id is refused" \
	'./mkpred otherkey.mpk < otherkey.tsv && score --baseline otherkey.mpk run.mpk'

# ---- bad input ----
: > empty.tsv
ok_fails 65 "an empty stream (no records)" './mkpred empty.mpk < empty.tsv && score empty.mpk'
printf 'cmb\tq1\tsingle\tA\tA\tx=1\ncmb\tq1\tsingle\tA\tB\tx=1\n' > dup.tsv
ok_fails 65 "the same bench+id twice" './mkpred dup.mpk < dup.tsv && score dup.mpk'
ok "the duplicate error names the record" 'score dup.mpk 2>&1 | grep -q "record 2: id: \"q1\" (cmb) already in record 1"'
printf 'cmb\tq1\tsingle\tA\tA\tx=1\ncmmlu\tq1\tsingle\tA\tA\tx=1\n' > mixed.tsv
ok_fails 65 "one id under two benches in one stream" './mkpred mixed.mpk < mixed.tsv && score mixed.mpk'
ok_fails 65 "the same question in two files" 'score run.mpk run.mpk'
ok_fails 65 "a stream of another schema" './mkpred -s medmoe.tokens tok.mpk < run.tsv && score tok.mpk'
printf 'cmb\tq1\tmulti\tBA\tA\tx=1\n' > unsorted.tsv
ok_fails 65 "answer letters must be sorted" './mkpred unsorted.mpk < unsorted.tsv && score unsorted.mpk'
printf 'cmb\tq1\tsingle\tAB\tA\tx=1\n' > single2.tsv
ok_fails 65 "a single-answer question with two answer letters" './mkpred single2.mpk < single2.tsv && score single2.mpk'
printf 'cmb\tq1\tboth\tA\tA\tx=1\n' > type.tsv
ok_fails 65 "an unknown question type" './mkpred type.mpk < type.tsv && score type.mpk'
ok_fails 65 "a truncated stream" 'head -c 300 run.mpk > cut.mpk && score cut.mpk'
ok_fails 65 "a missing file (stream_open: exit 65)" 'score no-such-file.mpk'
ok_fails 2 "no predictions" 'score'
ok "no partial SVG is left behind on an error" 'score --svg fail.svg empty.mpk 2> /dev/null; test ! -e fail.svg && ! ls fail.svg.tmp.* 2> /dev/null'
done_testing
