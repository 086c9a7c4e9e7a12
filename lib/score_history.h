// score_history.h — a run history for cron: one JSON object per line, one line per `score` run.
//
// Line layout: {"timestamp": "2026-11-23T01:02:03Z", "date": unix seconds, "label": "..." | null,
//               "files": [...], "results": {"all" | BENCH: {"acc", "acc_ci": [lo, hi] | null, "n"}}}
// Appending rewrites the file through outfile.h (old lines, then the new one, renamed into place), so a
// crash never leaves half a line.  Reading checks every line and dies naming the line (exit 65).
#ifndef MEDMOE_SCORE_HISTORY_H
#define MEDMOE_SCORE_HISTORY_H

#include <stddef.h>

#include "score_report.h"

struct history_point {
	double acc, lo, hi;     // lo/hi NaN when the run had no interval
	size_t n;
};

struct history {
	size_t n_runs;
	char **labels;          // per run: its label, else the timestamp
	size_t n_series;
	char **series;          // "all" first, then the benchmarks, sorted
	struct history_point *points;   // n_series * n_runs; acc NaN where a run lacks the series
};

// Append the line of REP (the rows "all" and per bench) to PATH, creating it when absent.
void history_append(const char *path, const struct score_report *rep, const char *label, char *const *files,
		    size_t n_files, double date);
void history_read(struct history *h, const char *path);
void history_free(struct history *h);

#endif
