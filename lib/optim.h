// optim.h — AdamW's settings, the learning-rate schedules, gradient clipping by global norm.
//
// AdamW itself is an op (ops.h adamw_update: torch.optim.AdamW's formula); this file holds its settings.
// Schedules as transformers' get_{cosine,linear,constant}_schedule_with_warmup: step s (1-based) uses
// λ(s−1), λ(i) = i/W during warmup, then cosine 0.5·(1 + cos(π·p)), linear 1 − p, or constant 1, where
// p = (i − W) / (N − W).
#ifndef MEDMOE_OPTIM_H
#define MEDMOE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

enum lr_schedule { SCHED_COSINE, SCHED_LINEAR, SCHED_CONSTANT };

struct adamw {
	double beta1, beta2, eps, weight_decay;
};

int lr_schedule_parse(const char *s, enum lr_schedule *out);   // -1 when unknown
const char *lr_schedule_name(enum lr_schedule s);
double lr_at(enum lr_schedule s, double base_lr, uint64_t step, uint64_t warmup, uint64_t total);
// The op's arguments for one AdamW update at step T (1-based) with learning rate LR.
struct adamw_step adamw_at(const struct adamw *o, double lr, uint64_t t);
// ‖g‖₂ summed in double, in a fixed order (tensor_sumsq).
double grad_global_norm(struct tensor g);
// Scale g so its norm is at most MAX_NORM (torch clip_grad_norm_: factor max/(norm + 1e-6) when norm > max).
void grad_clip(struct tensor g, double norm, double max_norm);

#endif
