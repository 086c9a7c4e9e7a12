// test_optim.c — AdamW against torch.optim.AdamW's update written out in double, the schedules against
// transformers' get_*_schedule_with_warmup formulas, clipping against clip_grad_norm_.
#include "unit.h"

#include <math.h>

#include "optim.h"

static void test_schedules(void **state)
{
	(void)state;
	// 10 warmup steps of 100: step s uses λ(s−1)
	assert_true(lr_at(SCHED_COSINE, 1.0, 1, 10, 100) == 0.0);
	assert_true(fabs(lr_at(SCHED_COSINE, 1.0, 6, 10, 100) - 0.5) < 1e-15);
	assert_true(fabs(lr_at(SCHED_COSINE, 1.0, 11, 10, 100) - 1.0) < 1e-15);
	assert_true(fabs(lr_at(SCHED_COSINE, 1.0, 56, 10, 100) - 0.5) < 1e-12);   // progress 1/2: cos(π/2) = 0
	assert_true(fabs(lr_at(SCHED_COSINE, 2.0, 41, 10, 100) - (1 + cos(M_PI / 3))) < 1e-12);
	assert_true(fabs(lr_at(SCHED_LINEAR, 1.0, 56, 10, 100) - 0.5) < 1e-12);
	assert_true(lr_at(SCHED_CONSTANT, 3.0, 99, 10, 100) == 3.0);
	assert_true(lr_at(SCHED_CONSTANT, 3.0, 1, 0, 100) == 3.0);
	enum lr_schedule s;
	assert_int_equal(lr_schedule_parse("linear", &s), 0);
	assert_int_equal(s, SCHED_LINEAR);
	assert_int_equal(lr_schedule_parse("step", &s), -1);
}

static void test_adamw(void **state)
{
	(void)state;
	struct adamw o = {0.9, 0.999, 1e-8, 0.1};
	float p[3] = {0.5f, -1.0f, 2.0f}, m[3] = {0}, v[3] = {0};
	double P[3] = {0.5, -1.0, 2.0}, M[3] = {0}, Vv[3] = {0};
	for (int t = 1; t <= 5; t++) {
		float g[3] = {0.1f * t, -0.3f, 1.0f / t};
		double lr = 1e-2 * t;
		struct adamw_step st = adamw_at(&o, lr, (uint64_t)t);
		adamw_update(tensor1(p, 3), tensor1(g, 3), tensor1(m, 3), tensor1(v, 3), &st);
		for (int i = 0; i < 3; i++) {
			// torch.optim.AdamW (decoupled decay first, then the bias-corrected step)
			P[i] *= 1 - lr * o.weight_decay;
			M[i] = o.beta1 * M[i] + (1 - o.beta1) * g[i];
			Vv[i] = o.beta2 * Vv[i] + (1 - o.beta2) * (double)g[i] * g[i];
			double denom = sqrt(Vv[i]) / sqrt(1 - pow(o.beta2, t)) + o.eps;
			P[i] -= lr / (1 - pow(o.beta1, t)) * M[i] / denom;
		}
	}
	for (int i = 0; i < 3; i++)
		if (fabs(p[i] - P[i]) > 1e-6 * (1 + fabs(P[i])))
			fail_msg("p[%d] %.8f, torch formula %.8f", i, p[i], P[i]);
}

static void test_clip(void **state)
{
	(void)state;
	float g[2] = {3, 4};
	double n = grad_global_norm(tensor1(g, 2));
	assert_true(fabs(n - 5) < 1e-12);
	grad_clip(tensor1(g, 2), n, 10);   // below the limit: unchanged
	assert_true(g[0] == 3 && g[1] == 4);
	grad_clip(tensor1(g, 2), n, 1);    // factor 1/(5 + 1e-6)
	assert_true(fabs(g[0] - 3 / (5 + 1e-6)) < 1e-7 && fabs(g[1] - 4 / (5 + 1e-6)) < 1e-7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schedules),
		cmocka_unit_test(test_adamw),
		cmocka_unit_test(test_clip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
