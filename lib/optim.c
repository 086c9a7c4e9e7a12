// optim.c — AdamW, schedules, clipping (formulas in optim.h).
#include "optim.h"

#include <math.h>
#include <string.h>

static const char *const sched_names[] = {"cosine", "linear", "constant"};

int lr_schedule_parse(const char *s, enum lr_schedule *out)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, sched_names[i]) == 0) {
			*out = (enum lr_schedule)i;
			return 0;
		}
	return -1;
}

const char *lr_schedule_name(enum lr_schedule s) { return sched_names[s]; }

double lr_at(enum lr_schedule s, double base_lr, uint64_t step, uint64_t warmup, uint64_t total)
{
	double i = step > 0 ? (double)(step - 1) : 0.0;
	if (i < (double)warmup)
		return base_lr * i / (double)warmup;
	if (s == SCHED_CONSTANT || total <= warmup)
		return base_lr;
	double p = (i - (double)warmup) / (double)(total - warmup);
	if (p > 1)
		p = 1;
	return s == SCHED_COSINE ? base_lr * 0.5 * (1.0 + cos(M_PI * p)) : base_lr * (1.0 - p);
}

void adamw_update(const struct adamw *o, double lr, uint64_t t, real *p, const real *g, real *m, real *v, size_t n)
{
	double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
	real b1 = (real)o->beta1, b2 = (real)o->beta2, step = (real)(lr / bc1), decay = (real)(1.0 - lr * o->weight_decay);
	real rbc2 = (real)(1.0 / sqrt(bc2)), eps = (real)o->eps;
#pragma omp parallel for
	for (size_t i = 0; i < n; i++) {
		m[i] = b1 * m[i] + (1 - b1) * g[i];
		v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
		// torch: denom = sqrt(v)/sqrt(bc2) + eps; p -= (lr/bc1) · m / denom
		p[i] = p[i] * decay - step * m[i] / (sqrtf((float)v[i]) * rbc2 + eps);
	}
}

double grad_global_norm(const real *g, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)g[i] * g[i];
	return sqrt(s);
}

void grad_clip(real *g, size_t n, double norm, double max_norm)
{
	if (max_norm <= 0 || !(norm > max_norm))
		return;
	real f = (real)(max_norm / (norm + 1e-6));
	for (size_t i = 0; i < n; i++)
		g[i] *= f;
}
