// score_samples.h — one JSON line per scored question, in the spirit of lm-evaluation-harness's --log_samples:
// what was asked, the answer key, what the model returned and how it was scored, so a run can be audited
// question by question or joined with another tool's samples.
//
// Lines are in score's order (bench, then id); one line:
//   {"task": BENCH, "doc_id": index within the bench, "doc": {id, bench, type, categories, file, record},
//    "target": answer letters, "resps": [[score] per option] (loglik) or [[generated text]] (generate),
//    "filtered_resps": the option scores, or [predicted letters or "[invalid]"], "filter": "none",
//    "metrics": ["acc"], "acc": 1.0 or 0.0, "predicted": letters or null, "parsed": bool,
//    "shots": n (when the predictions header gives it),
//    "baseline": {predicted, parsed, acc} (with --baseline, when the baseline answered the question)}
#ifndef MEDMOE_SCORE_SAMPLES_H
#define MEDMOE_SCORE_SAMPLES_H

#include <stdio.h>

#include "score_data.h"

// RUN sorted (pred_set_sort); BASE paired with it (pred_set_pair) or NULL.
void score_write_samples(FILE *fp, const struct pred_set *run, const struct pred_set *base);

#endif
