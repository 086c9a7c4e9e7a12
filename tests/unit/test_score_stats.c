// test_score_stats.c — the statistics of `score` against values computed by hand.
#include "unit.h"

#include <math.h>
#include <string.h>

#include "score_stats.h"

// splitmix64 seeded with 1234567 gives 6457827717110365317 first (the published test vector); the first
// xoshiro256** outputs from that state were computed with an independent Python transcription of the
// reference C code (Blackman and Vigna).
static void test_rng_reference(void **state)
{
	(void)state;
	struct rng r;
	uint64_t sm = 1234567;
	for (int i = 0; i < 4; i++)
		r.s[i] = splitmix64(&sm);
	assert_true(r.s[0] == 6457827717110365317ull);
	assert_true(r.s[1] == 3203168211198807973ull);
	assert_true(rng_next(&r) == 3504822795582309479ull);
	assert_true(rng_next(&r) == 1819558768956484042ull);
	assert_true(rng_next(&r) == 1250851346055027673ull);
}

static void test_rng_below_uniform(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 42, 0);
	size_t counts[6] = { 0 };
	for (int i = 0; i < 600000; i++)
		counts[rng_below(&r, 6)]++;
	for (int k = 0; k < 6; k++)   // 100000 expected, sd ~ 289: 2% is > 6 sd
		assert_true(counts[k] > 98000 && counts[k] < 102000);
	assert_true(rng_below(&r, 1) == 0);
}

static void test_quantile(void **state)
{
	(void)state;
	const double x[] = { 1, 2, 3, 4 };
	assert_true(fabs(quantile_sorted(x, 4, 0.5) - 2.5) < 1e-12);
	assert_true(fabs(quantile_sorted(x, 4, 0.25) - 1.75) < 1e-12);
	assert_true(quantile_sorted(x, 4, 0) == 1);
	assert_true(quantile_sorted(x, 4, 1) == 4);
	assert_true(isnan(quantile_sorted(x, 0, 0.5)));
}

struct mean_data {
	const double *v;
};

static double mean_of(const size_t *idx, size_t n, const void *ctx)
{
	const struct mean_data *d = ctx;
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += d->v[idx[i]];
	return s / (double)n;
}

// N outcomes, 60% right; the interval of the mean from 1000 resamples.
static void ci_of(size_t n, uint64_t seed, double *lo, double *hi)
{
	double *v = malloc(n * sizeof *v);
	size_t *items = malloc(n * sizeof *items);
	for (size_t i = 0; i < n; i++) {
		v[i] = i % 5 < 3;
		items[i] = i;
	}
	struct mean_data d = { v };
	bootstrap_ci(items, n, 1000, seed, 0.95, mean_of, &d, lo, hi);
	free(v);
	free(items);
}

static void test_bootstrap(void **state)
{
	(void)state;
	double lo50, hi50, lo5k, hi5k, lo_again, hi_again, lo_other, hi_other;
	ci_of(50, 7, &lo50, &hi50);
	ci_of(5000, 7, &lo5k, &hi5k);
	assert_true(lo50 <= 0.6 && 0.6 <= hi50);
	assert_true(lo5k <= 0.6 && 0.6 <= hi5k);
	// width shrinks like 1/sqrt(n): 10x narrower for 100x the questions; the normal approximation gives
	// 2 * 1.96 * sqrt(.24/n): 0.27 at n=50, 0.027 at n=5000
	assert_true(hi5k - lo5k < (hi50 - lo50) / 5);
	assert_true(fabs((hi50 - lo50) - 0.27) < 0.06);
	assert_true(fabs((hi5k - lo5k) - 0.027) < 0.006);
	ci_of(50, 7, &lo_again, &hi_again);
	assert_true(lo_again == lo50 && hi_again == hi50);   // seeded: reproducible
	ci_of(5000, 8, &lo_other, &hi_other);
	assert_true(lo_other != lo5k || hi_other != hi5k);
	// no resamples or no items: no interval
	double lo, hi;
	size_t one = 0;
	struct mean_data d = { (double[]){ 1 } };
	bootstrap_ci(&one, 1, 0, 1, 0.95, mean_of, &d, &lo, &hi);
	assert_true(isnan(lo) && isnan(hi));
	bootstrap_ci(&one, 0, 100, 1, 0.95, mean_of, &d, &lo, &hi);
	assert_true(isnan(lo) && isnan(hi));
}

static void test_mean_stderr(void **state)
{
	(void)state;
	assert_true(fabs(mean_stderr(0.5, 5) - 0.25) < 1e-12);   // sqrt(.25 / 4)
	assert_true(fabs(mean_stderr(0.6, 101) - sqrt(0.24 / 100)) < 1e-12);
	assert_true(isnan(mean_stderr(1, 1)));
}

// Two-sided exact McNemar: p = min(1, 2 * sum_{k<=min(b,c)} C(b+c, k) / 2^(b+c)).
static void test_mcnemar(void **state)
{
	(void)state;
	// b=10, c=2: (1 + 12 + 66) / 4096 * 2 = 158/4096 = 0.0386
	assert_true(fabs(mcnemar_exact_p(10, 2) - 158.0 / 4096) < 1e-12);
	assert_true(fabs(mcnemar_exact_p(2, 10) - 158.0 / 4096) < 1e-12);
	// b=0, c=6: 2 / 64
	assert_true(fabs(mcnemar_exact_p(0, 6) - 2.0 / 64) < 1e-12);
	// b=1, c=7: 2 * (1 + 8) / 256
	assert_true(fabs(mcnemar_exact_p(1, 7) - 18.0 / 256) < 1e-12);
	// balanced tables are capped at 1
	assert_true(mcnemar_exact_p(5, 5) == 1);
	assert_true(mcnemar_exact_p(0, 0) == 1);
	assert_true(mcnemar_exact_p(1000, 1000) == 1);
	// large tables stay finite: b=1100, c=1000 is z = 100/sqrt(2100) = 2.18, two-sided normal p ~ 0.029
	double p = mcnemar_exact_p(1100, 1000);
	assert_true(p > 0.025 && p < 0.035);
}

static void test_f1(void **state)
{
	(void)state;
	struct f1_counts f = { 0, 0, 0 };
	f1_add(&f, "AB", "AC");    // tp A, fp B, fn C
	f1_add(&f, "", "ABD");     // unparsed: fn 3
	f1_add(&f, "ABD", "ABD");  // tp 3
	assert_true(f.tp == 4 && f.fp == 1 && f.fn == 4);
	assert_true(fabs(f1_value(&f) - 8.0 / 13) < 1e-12);   // 2*4 / (2*4 + 1 + 4)
	struct f1_counts empty = { 0, 0, 0 };
	assert_true(isnan(f1_value(&empty)));
}

static void test_fnv1a(void **state)
{
	(void)state;
	// FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector)
	assert_true(fnv1a("a", FNV_OFFSET) == 0xaf63dc4c8601ec8cull);
	assert_true(fnv1a("", FNV_OFFSET) == FNV_OFFSET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng_reference),
		cmocka_unit_test(test_rng_below_uniform),
		cmocka_unit_test(test_quantile),
		cmocka_unit_test(test_bootstrap),
		cmocka_unit_test(test_mean_stderr),
		cmocka_unit_test(test_mcnemar),
		cmocka_unit_test(test_f1),
		cmocka_unit_test(test_fnv1a),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
