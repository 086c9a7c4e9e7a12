// score_format.h — writing a score report: an aligned text table, TSV, Markdown and JSON.
//
// Text and Markdown show percentages; TSV and JSON fractions (0..1), as lm-evaluation-harness.  The text
// table aligns by display width (utf8proc_charwidth: a CJK character takes two columns), so Chinese
// category names line up in a terminal.  An undefined value (an interval with --bootstrap 0, a standard
// error of one question) is "-" in text and Markdown, empty in TSV and null in JSON.
//
// JSON: lm-evaluation-harness's results layout (lm_eval.utils.make_table reads it), one "task" per row:
//   "all" (a group: every question), BENCH (a group under "all"), BENCH_multi_answer (the multi-answer questions),
//   BENCH_VALUE for a subject (lm-eval's own names: cmmlu_anatomy, mmlu_anatomy), BENCH_KEY_VALUE for the other
//   categories (cmb_exam_type_医师考试, medqa_meta_info_step1).
//   results      NAME: {alias, "acc,none", "acc_stderr,none"} ("exact_match,none" and "f1,none" for
//                BENCH_multi_answer; "acc_macro,none" beside "acc,none" for CMB); a standard error that is not
//                defined (macro, F1, one question) is "N/A", as lm-eval writes it; an undefined value null
//   groups       the entries of "all" and every bench again, flat, as lm-eval writes them
//   group_subtasks, configs (task, group, output_type, num_fewshot, metric_list, metadata.version),
//   versions (1.0), n-shot (from the predictions header, null when it lacks it), higher_is_better,
//   n-samples ({original, effective}: the questions), config (model "medmoe", model_args, bootstrap_iters,
//   random_seed, and medmoe's program, label, files, baseline, mode, ci_level, n_paired...), git_hash, date
// medmoe's own, keyed by the same names:
//   intervals    NAME: {METRIC: [lo, hi]} (null with --bootstrap 0)
//   counts       NAME: {n, n_correct, n_unparsed, unparsed_rate} (tp, fp, fn for BENCH_multi_answer)
//   paired       NAME: {n, acc, baseline_acc, diff, diff_ci, b, c, mcnemar_p}   (with --baseline)
//   categories   NAME: {bench, key, value, macro}
//   subjects     BENCH: [subject, ...]
#ifndef MEDMOE_SCORE_FORMAT_H
#define MEDMOE_SCORE_FORMAT_H

#include <stdio.h>

#include "score_data.h"
#include "score_report.h"

struct score_meta {
	const char *label;              // --label, or NULL
	const struct pred_set *run;
	const char *baseline_path;      // NULL without --baseline
	const struct score_options *opt;
	double date;                    // unix seconds of the run
};

void score_write_text(FILE *fp, const struct score_report *rep, const struct score_meta *meta);
void score_write_tsv(FILE *fp, const struct score_report *rep);
void score_write_markdown(FILE *fp, const struct score_report *rep, const struct score_meta *meta);
void score_write_json(FILE *fp, const struct score_report *rep, const struct score_meta *meta);

// Display width of UTF-8 S in terminal columns (invalid bytes count one column).
int display_width(const char *s);
// The short label of a row in a table: "all", "cmb", "  exam_type=医师考试 (macro)".
char *score_row_label(const struct score_row *row);
// The row's task name in the JSON layout ("all", "cmmlu", "cmmlu_anatomy", "cmb_multi_answer", ...).
char *score_task_name(const struct score_row *row);

#endif
