// eval_finite.h — a non-finite score is an error, never an answer.
//
// A NaN weight (in the base or an adapter) or a configuration whose activations overflow makes every logit NaN;
// argmax over NaNs then "answers" A, and the prediction would look like any other.  eval-exam instead stops with
// exit 65 naming the question, the option and the model, and writes no predictions (the output is temporary
// until the end, lib/outfile.h).
#ifndef MEDMOE_EVAL_FINITE_H
#define MEDMOE_EVAL_FINITE_H

#include <stdint.h>

#include "eval.h"

// loglik: every q->scores[0..n_options) finite, or exit 65.
void eval_require_finite_scores(const struct model *m, const struct eval_question *q);
// generate: the N logits of the next token finite, or exit 65 (STEP: tokens generated so far).
void eval_require_finite_logits(const struct model *m, const struct eval_question *q, const real *logits,
				int64_t n, int64_t step);

#endif
