// score_stats.c — PRNG, bootstrap, McNemar, F1 (formulas and sources in score_stats.h).
#include "score_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"


uint64_t fnv1a(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

double quantile_sorted(const double *x, size_t n, double q)
{
	if (n == 0)
		return NAN;
	double pos = q * (double)(n - 1);
	size_t i = (size_t)floor(pos);
	if (i >= n - 1)
		return x[n - 1];
	double frac = pos - (double)i;
	return x[i] + frac * (x[i + 1] - x[i]);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void bootstrap_ci(const size_t *items, size_t n, size_t n_resamples, uint64_t seed, double level, stat_fn stat,
		  const void *ctx, double *lo, double *hi)
{
	*lo = *hi = NAN;
	if (n == 0 || n_resamples == 0)
		return;
	struct rng r;
	rng_seed(&r, seed, 0);
	size_t *sample = xmalloc(n * sizeof *sample);
	double *values = xmalloc(n_resamples * sizeof *values);
	size_t n_values = 0;
	for (size_t b = 0; b < n_resamples; b++) {
		for (size_t i = 0; i < n; i++)
			sample[i] = items[rng_below(&r, n)];
		double v = stat(sample, n, ctx);
		if (!isnan(v))
			values[n_values++] = v;
	}
	qsort(values, n_values, sizeof *values, cmp_double);
	*lo = quantile_sorted(values, n_values, (1 - level) / 2);
	*hi = quantile_sorted(values, n_values, (1 + level) / 2);
	free(sample);
	free(values);
}

double mean_stderr(double p, size_t n)
{
	if (n < 2)
		return NAN;
	return sqrt(p * (1 - p) / (double)(n - 1));
}

double mcnemar_exact_p(uint64_t b, uint64_t c)
{
	uint64_t n = b + c, k = b < c ? b : c;
	if (n == 0)
		return 1;
	// P(X <= k) for X ~ Bin(n, 1/2), summed in log space (n can be tens of thousands).
	double log_half_n = (double)n * log(0.5);
	double max_term = -INFINITY;
	double *terms = xmalloc((k + 1) * sizeof *terms);
	for (uint64_t i = 0; i <= k; i++) {
		terms[i] = lgamma((double)n + 1) - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) + log_half_n;
		if (terms[i] > max_term)
			max_term = terms[i];
	}
	double sum = 0;
	for (uint64_t i = 0; i <= k; i++)
		sum += exp(terms[i] - max_term);
	free(terms);
	double p = 2 * exp(max_term + log(sum));
	return p > 1 ? 1 : p;
}

void f1_add(struct f1_counts *f, const char *predicted, const char *answer)
{
	for (const char *p = predicted; *p; p++)
		if (strchr(answer, *p))
			f->tp++;
		else
			f->fp++;
	for (const char *a = answer; *a; a++)
		if (!strchr(predicted, *a))
			f->fn++;
}

double f1_value(const struct f1_counts *f)
{
	uint64_t denom = 2 * f->tp + f->fp + f->fn;
	return denom ? 2.0 * (double)f->tp / (double)denom : NAN;
}
