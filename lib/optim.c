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

struct adamw_step adamw_at(const struct adamw *o, double lr, uint64_t t)
{
	return (struct adamw_step){lr, o->beta1, o->beta2, o->eps, o->weight_decay, t};
}

double grad_global_norm(struct tensor g) { return sqrt(tensor_sumsq(g)); }

void grad_clip(struct tensor g, double norm, double max_norm)
{
	if (max_norm <= 0 || !(norm > max_norm))
		return;
	tensor_scale(g, max_norm / (norm + 1e-6));
}
