// eval_finite.c — refuse non-finite scores and logits (eval_finite.h).
#include "eval_finite.h"

#include <math.h>

#include "die.h"

static const char *what(double x)
{
	return isnan(x) ? "NaN" : "infinite";
}

void eval_require_finite_scores(const struct model *m, const struct eval_question *q)
{
	for (int j = 0; j < q->n_options; j++)
		if (!isfinite(q->scores[j]))
			die_data(m->dir, -1, "scores",
				 "question %s: option %c: the log-probability is %s: the model gives non-finite scores "
				 "(a NaN or infinite weight in the base or the adapter, or sizes whose activations overflow)",
				 q->id, q->letters[j], what(q->scores[j]));
}

void eval_require_finite_logits(const struct model *m, const struct eval_question *q, const real *logits,
				int64_t n, int64_t step)
{
	for (int64_t i = 0; i < n; i++)
		if (!isfinite((double)logits[i]))
			die_data(m->dir, -1, "logits",
				 "question %s: generated token %lld: the logit of id %lld is %s: the model gives non-finite "
				 "scores (a NaN or infinite weight in the base or the adapter, or sizes whose activations "
				 "overflow)", q->id, (long long)step + 1, (long long)i, what((double)logits[i]));
}
