// score_report.h — from predictions to the rows of a score report: accuracy overall, per benchmark and per
// category, with bootstrap intervals, multi-answer exact match and F1, and the paired comparison with a
// baseline run.
//
// Accuracy is all-or-nothing per question (MING: the predicted set must equal the answer set; an unparsed
// answer is wrong).  Rows, in order:
//   "all"                        every question (micro)
//   per bench (sorted by name):
//     BENCH                      micro accuracy over the bench's questions
//     BENCH macro                CMB only: accuracy per exam_class, averaged per exam_type, then averaged
//                                over exam_types (FreedomIntelligence/CMB score.py and leaderboard)
//     BENCH multi exact          multi-answer questions: exact match
//     BENCH multi f1             multi-answer questions: micro F1 over option letters
//     BENCH KEY=VALUE            per category value, sorted; CMB exam_type rows are macro over exam_class
// Category keys per bench: cmb exam_type, exam_class; cmmlu and mmlu subject; medqa meta_info; medmcqa
// subject_name (not its ~2.4k topics); any other bench every key its records carry.
//
// Intervals: percentile bootstrap over the row's questions (score_stats.h), seeded by a hash of the question
// set (bench and id of each) and the statistic, ^ seed: rows over the same questions get the same interval.  With a baseline, accuracy rows also get the paired difference (run − baseline) on
// the questions both runs answered, its paired-bootstrap interval, and McNemar's exact p.
#ifndef MEDMOE_SCORE_REPORT_H
#define MEDMOE_SCORE_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "score_data.h"
#include "score_stats.h"

enum row_kind { ROW_ALL, ROW_BENCH, ROW_MACRO, ROW_MULTI_EXACT, ROW_MULTI_F1, ROW_CATEGORY };

struct score_row {
	enum row_kind kind;
	const char *bench;       // NULL for ROW_ALL
	char *key, *value;       // ROW_CATEGORY only
	int macro;               // the value is a macro average (CMB)
	char *name;              // "all", "cmb", "cmb macro", "cmb exam_type=医师考试", ...
	size_t n, n_correct, n_unparsed;
	double value_pt;         // accuracy, exact match or F1
	double stderr_;          // NaN where not defined (macro, F1, n < 2)
	double lo, hi;           // bootstrap interval; NaN when --bootstrap 0
	struct f1_counts f1;     // ROW_MULTI_F1
	// paired comparison (has_paired: a baseline was given and this row has paired questions)
	int has_paired;
	size_t n_paired;
	double run_acc, base_acc, diff, diff_lo, diff_hi, p_mcnemar;
	uint64_t b, c;           // run right & base wrong, run wrong & base right
};

struct score_options {
	size_t n_resamples;      // 0 = no intervals
	uint64_t seed;
	double level;            // 0.95
};

struct score_report {
	struct score_row *rows;
	size_t n_rows;
	// the subject list of each bench with a "subject" category (CMMLU-Med, MMLU-medical)
	size_t n_subject_lists;
	struct subject_list {
		const char *bench;
		size_t n;
		char **subjects;
	} *subject_lists;
	int has_baseline;
	size_t n_paired, only_run, only_base;
};

// Build the report of RUN (sorted with pred_set_sort), compared with BASE when it is not NULL (sorted and
// paired with pred_set_pair).
void score_report_build(struct score_report *rep, const struct pred_set *run, const struct pred_set *base,
			const struct score_options *opt);
void score_report_free(struct score_report *rep);
// The "all" row.
const struct score_row *score_report_overall(const struct score_report *rep);

#endif
