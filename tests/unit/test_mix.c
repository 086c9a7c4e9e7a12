// test_mix.c — the sampling math of mix-tasks: temperature probabilities, integer targets, caps, the sampler.
#include "unit.h"

#include <math.h>
#include <string.h>

#include "mix.h"
#include "rng.h"

static const uint64_t sizes[3] = { 9000, 900, 100 };

// T = 1 is examples-proportional mixing: p_i = n_i / Σ n.
static void test_temperature_one_is_proportional(void **state)
{
	(void)state;
	double p[3];
	mix_temperature(3, sizes, 1.0, p);
	for (int i = 0; i < 3; i++)
		assert_float_equal(p[i], (double)sizes[i] / 10000.0, 1e-12);
}

// T = 2: p_i ∝ sqrt(n_i).
static void test_temperature_two(void **state)
{
	(void)state;
	double p[3], sum = 0;
	mix_temperature(3, sizes, 2.0, p);
	for (int i = 0; i < 3; i++)
		sum += sqrt((double)sizes[i]);
	for (int i = 0; i < 3; i++)
		assert_float_equal(p[i], sqrt((double)sizes[i]) / sum, 1e-12);
	assert_true(p[0] < 0.9 && p[2] > 0.01);  // flatter than proportional
}

// T → ∞ tends to uniform, and the flattening is monotone in T.
static void test_large_temperature_is_uniform(void **state)
{
	(void)state;
	double p[3], prev_small = 0;
	const double ts[] = { 1, 2, 5, 10, 100, 1e6 };
	for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
		mix_temperature(3, sizes, ts[k], p);
		assert_true(p[2] > prev_small);
		prev_small = p[2];
	}
	for (int i = 0; i < 3; i++)
		assert_float_equal(p[i], 1.0 / 3.0, 1e-5);
	// An empty task gets nothing at any temperature.
	const uint64_t with_empty[2] = { 10, 0 };
	mix_temperature(2, with_empty, 1e6, p);
	assert_float_equal(p[1], 0.0, 0.0);
	assert_float_equal(p[0], 1.0, 1e-12);
}

// Largest remainder: Σ k = total and every k_i within 1 of total·p_i.
static void test_targets_round(void **state)
{
	(void)state;
	double p[3];
	uint64_t k[3];
	mix_temperature(3, sizes, 3.0, p);
	for (uint64_t total = 1; total < 2000; total += 37) {
		assert_int_equal(mix_targets(3, p, total, NULL, k), total);
		for (int i = 0; i < 3; i++)
			assert_true(fabs((double)k[i] - (double)total * p[i]) < 1.0);
	}
}

// Caps (epoch limits): a capped task stops at its cap and the rest is shared by the others in proportion.
static void test_targets_water_filling(void **state)
{
	(void)state;
	const double p[3] = { 0.5, 0.3, 0.2 };
	uint64_t caps[3] = { UINT64_MAX, UINT64_MAX, 50 }, k[3];
	assert_int_equal(mix_targets(3, p, 1000, caps, k), 1000);
	assert_int_equal(k[2], 50);
	// The others split 950 as 5:3.
	assert_true(fabs((double)k[0] - 950.0 * 5 / 8) < 1.0);
	assert_int_equal(k[0] + k[1], 950);
	// Everything capped: the total shrinks to the caps.
	uint64_t all[3] = { 10, 20, 30 };
	assert_int_equal(mix_targets(3, p, 1000, all, k), 60);
	assert_int_equal(k[0], 10);
	assert_int_equal(k[1], 20);
	assert_int_equal(k[2], 30);
}

// The sampler makes exactly the targets, and a prefix of its draws follows p within a binomial tolerance.
static void test_sampler_proportions(void **state)
{
	(void)state;
	double p[3];
	uint64_t k[3], pool[3], total = 30000;
	memcpy(pool, sizes, sizeof pool);
	mix_temperature(3, sizes, 2.0, p);
	mix_targets(3, p, total, NULL, k);
	struct mix_sampler s;
	mix_sampler_init(&s, 3, pool, k, 42);
	uint64_t count[3] = { 0 }, prefix[3] = { 0 }, n = 0;
	const uint64_t n_prefix = 3000;
	size_t t;
	uint64_t ex;
	while (mix_sampler_next(&s, &t, &ex)) {
		assert_true(ex < pool[t]);
		count[t]++;
		if (n++ < n_prefix)
			prefix[t]++;
	}
	mix_sampler_free(&s);
	assert_int_equal(n, total);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(count[i], k[i]);
		// Draws without replacement from the multiset: the variance is at most the binomial one.
		double sd = sqrt((double)n_prefix * p[i] * (1 - p[i]));
		double dev = fabs((double)prefix[i] - (double)n_prefix * p[i]);
		if (dev > 4 * sd)
			fail_msg("task %d: %llu of the first %llu draws, expected %.1f ± %.1f", i,
				 (unsigned long long)prefix[i], (unsigned long long)n_prefix, n_prefix * p[i], sd);
	}
}

// Up-sampling repeats whole epochs: with a pool of 10 and 35 draws, the first 10 draws of the task are a
// permutation of the pool, and every example is drawn 3 or 4 times.
static void test_sampler_epochs(void **state)
{
	(void)state;
	uint64_t pool[2] = { 10, 1000 }, k[2] = { 35, 100 };
	struct mix_sampler s;
	mix_sampler_init(&s, 2, pool, k, 7);
	int seen[10] = { 0 }, first_epoch[10] = { 0 }, n_small = 0;
	size_t t;
	uint64_t ex;
	while (mix_sampler_next(&s, &t, &ex)) {
		if (t != 0)
			continue;
		if (n_small < 10)
			first_epoch[ex]++;
		seen[ex]++;
		n_small++;
	}
	mix_sampler_free(&s);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(first_epoch[i], 1);
		assert_true(seen[i] == 3 || seen[i] == 4);
	}
}

// Same seed, same draws; another seed, other draws.
static void test_sampler_deterministic(void **state)
{
	(void)state;
	uint64_t pool[3] = { 50, 20, 5 }, k[3] = { 40, 30, 30 };
	uint64_t a[100], b[100], c[100];
	uint64_t *runs[3] = { a, b, c };
	const uint64_t seeds[3] = { 1, 1, 2 };
	for (int r = 0; r < 3; r++) {
		struct mix_sampler s;
		mix_sampler_init(&s, 3, pool, k, seeds[r]);
		size_t t;
		uint64_t ex;
		int n = 0;
		while (mix_sampler_next(&s, &t, &ex))
			runs[r][n++] = t * 1000 + ex;
		assert_int_equal(n, 100);
		mix_sampler_free(&s);
	}
	assert_memory_equal(a, b, sizeof a);
	assert_memory_not_equal(a, c, sizeof a);
}

static void test_caps(void **state)
{
	(void)state;
	uint32_t order[100], tokens[100];
	for (int i = 0; i < 100; i++) {
		order[i] = (uint32_t)i;
		tokens[i] = 10;
	}
	struct rng g;
	rng_seed(&g, 3, 0);
	assert_int_equal(mix_cap(&g, order, 100, tokens, 30, 0), 30);
	// Still a permutation of 0..99 after the shuffle.
	int seen[100] = { 0 };
	for (int i = 0; i < 100; i++)
		seen[order[i]]++;
	for (int i = 0; i < 100; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(mix_cap(&g, order, 100, tokens, 0, 255), 25);
	assert_int_equal(mix_cap(&g, order, 100, tokens, 20, 255), 20);
	assert_int_equal(mix_cap(&g, order, 100, tokens, 0, 0), 100);
	assert_int_equal(mix_cap(&g, order, 100, tokens, 0, 5), 1);  // the first example always stays
}

// The generator: bounded draws stay in range and are roughly uniform (chi-square, 10 cells, fixed seed).
static void test_rng(void **state)
{
	(void)state;
	struct rng g;
	rng_seed(&g, 12345, 0);
	int cells[10] = { 0 };
	const int n = 100000;
	for (int i = 0; i < n; i++) {
		uint64_t x = rng_below(&g, 10);
		assert_true(x < 10);
		cells[x]++;
	}
	double chi2 = 0;
	for (int i = 0; i < 10; i++)
		chi2 += (cells[i] - n / 10.0) * (cells[i] - n / 10.0) / (n / 10.0);
	assert_true(chi2 < 27.88);  // the 0.001 quantile of chi-square with 9 degrees of freedom
	// splitmix64's published first output for seed 0 (Vigna's splitmix64.c): 0xe220a8397b1dcdaf.
	uint64_t sm = 0;
	assert_true(splitmix64(&sm) == 0xe220a8397b1dcdafull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_temperature_one_is_proportional),
		cmocka_unit_test(test_temperature_two),
		cmocka_unit_test(test_large_temperature_is_uniform),
		cmocka_unit_test(test_targets_round),
		cmocka_unit_test(test_targets_water_filling),
		cmocka_unit_test(test_sampler_proportions),
		cmocka_unit_test(test_sampler_epochs),
		cmocka_unit_test(test_sampler_deterministic),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_rng),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
