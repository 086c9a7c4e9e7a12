// score_format.h — writing a score report: an aligned text table, TSV, Markdown and JSON.
//
// Text and Markdown show percentages; TSV and JSON fractions (0..1), as lm-evaluation-harness.  The text
// table aligns by display width (utf8proc_charwidth: a CJK character takes two columns), so Chinese
// category names line up in a terminal.  An undefined value (an interval with --bootstrap 0, a standard
// error of one question) is "-" in text and Markdown, empty in TSV and null in JSON.
//
// JSON layout (lm-eval-like):
//   { "results": { "all" | BENCH: { "alias", "acc", "acc_stderr", "acc_ci": [lo, hi], "n", "n_correct",
//                                   "unparsed", "n_unparsed",
//                                   "acc_macro", "acc_macro_ci"                         (CMB)
//                                   "multi": { "n", "exact_match", "exact_match_stderr", "exact_match_ci",
//                                              "f1", "f1_ci", "tp", "fp", "fn" }       (multi-answer)
//                                   "subjects": [...]                                   (a subject category)
//                                   "paired": { "n", "acc", "baseline_acc", "diff", "diff_ci", "b", "c",
//                                               "mcnemar_p" } } },                      (--baseline)
//     "groups": { BENCH: { KEY: { VALUE: { "acc", "acc_stderr", "acc_ci", "n", "n_correct", "n_unparsed",
//                                          "macro", "paired"? } } } },
//     "config": { "program", "program_version", "label", "files", "baseline", "mode", "model",
//                 "bootstrap", "seed", "ci_level", "n_paired", "only_run", "only_baseline" },
//     "date": unix seconds }
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

#endif
