// score_stats.h — the statistics behind `score`: a seeded PRNG, percentile bootstrap intervals, the standard
// error of a mean, McNemar's exact test and micro F1 over answer letters.
//
// Everything is deterministic given the seed: the same predictions and --seed give the same intervals on
// every machine (integer PRNG, no libc rand()).
#ifndef MEDMOE_SCORE_STATS_H
#define MEDMOE_SCORE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"  // the seeded generator (xoshiro256**) behind the bootstrap

// FNV-1a over S, continuing from H (start with FNV_OFFSET): gives each group its own bootstrap seed, so that
// adding a benchmark to a run does not move the intervals of the others.
#define FNV_OFFSET 0xcbf29ce484222325ull
uint64_t fnv1a(const char *s, uint64_t h);

// The Q-quantile (0..1) of the sorted X[0..N) with linear interpolation between order statistics (Hyndman
// and Fan type 7, numpy's default).
double quantile_sorted(const double *x, size_t n, double q);

// A statistic of the items IDX[0..N) (indices into the caller's data, with repeats in a resample).
typedef double (*stat_fn)(const size_t *idx, size_t n, const void *ctx);

// Percentile bootstrap (Efron and Tibshirani 1993, ch. 13): N_RESAMPLES resamples of the N items ITEMS with
// replacement, STAT on each, and the (1-LEVEL)/2 and (1+LEVEL)/2 quantiles of the results into *LO, *HI.
// NaN statistics (an empty stratum) are left out.  n == 0 or n_resamples == 0 gives NaN bounds.
void bootstrap_ci(const size_t *items, size_t n, size_t n_resamples, uint64_t seed, double level, stat_fn stat,
		  const void *ctx, double *lo, double *hi);

// The standard error of the mean of N 0/1 outcomes with mean P, with the n-1 sample variance as
// lm-evaluation-harness's mean_stderr: sqrt(p (1-p) / (n-1)).  NaN when n < 2.
double mean_stderr(double p, size_t n);

// McNemar's exact test, two-sided: B and C are the discordant pairs (run right and baseline wrong, and the
// reverse); under H0 B ~ Binomial(B+C, 1/2), p = min(1, 2 P(X <= min(B,C))).  1 when B+C = 0.
double mcnemar_exact_p(uint64_t b, uint64_t c);

// Micro F1 over answer letters: one question adds |P∩A| to TP, |P\A| to FP and |A\P| to FN
// (an unparsed answer is the empty set).  F1 = 2TP / (2TP + FP + FN); NaN when all three are 0.
struct f1_counts {
	uint64_t tp, fp, fn;
};
void f1_add(struct f1_counts *f, const char *predicted, const char *answer);
double f1_value(const struct f1_counts *f);

#endif
