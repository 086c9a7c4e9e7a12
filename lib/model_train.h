// model_train.h — training forward and backward of a frozen model with an attached adapter.
//
// The trainer owns a struct model_train: the activations one training step keeps for backward, planned for the
// longest batch so far (tensor_plan.h) on the model's device.  model_train_forward keeps every layer's
// intermediate values (or, with recomputation, only each layer's input, and runs the layer forward again during
// backward: ~1.5x the compute, 1/L of the activation memory).  model_train_backward then walks the layers in
// reverse: the base weights get no gradients (DESIGN §4: through a frozen linear only dinp = dout·W), the
// adapter's gradients accumulate into its grads.  The objective of one call is SCALE · (mean cross-entropy over
// the targets + the adapter's weighted auxiliary losses).
#ifndef MEDMOE_MODEL_TRAIN_H
#define MEDMOE_MODEL_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct model_train;

struct model_train *model_train_new(struct model *m);
void model_train_free(struct model_train *tr);
// Activation recomputation per layer (off by default).
void model_train_set_recompute(struct model_train *tr, int on);
// Like model_forward (model.h) for one packed batch, plus doc_task (n_docs) the task id of each document (NULL:
// all 0).  The attached adapter (model_set_adapter) runs in the mode of its `training` flag (dropout, loads,
// contrastive loss on; off for a validation pass).  Returns the mean cross-entropy.
double model_train_forward(struct model_train *tr, const int32_t *ids, int64_t T, const int32_t *doc_offsets,
			   int n_docs, const int32_t *doc_task, const uint8_t *loss_mask, int64_t *n_targets);
// Gradients of SCALE · objective of the last model_train_forward, accumulated into the adapter's grads.
void model_train_backward(struct model_train *tr, double scale);
// The micro-batch's cross-entropy sum and target count (two values), for ranks that each forward a part of it:
// model_train_forward sets them from its own targets, the trainer may replace them by their sums over the ranks
// (trainer_dist.c), and model_train_backward takes the mean over [1] targets.
double *model_train_ce_stats(struct model_train *tr);
// Bytes of training activations planned for the last batch (for reports).
size_t model_train_bytes(const struct model_train *tr);

#endif
