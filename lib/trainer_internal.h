// trainer_internal.h — what the parts of the train-experts loop share: the state of one run.
//   trainer.c             the loop: batches, forward/backward, the optimizer step, validation
//   trainer_checkpoint.c  the run directory: creating it, checkpoints, --resume
//   trainer_metrics.c     the medmoe.metrics stream: header and one record per step
#ifndef MEDMOE_TRAINER_INTERNAL_H
#define MEDMOE_TRAINER_INTERNAL_H

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>

#include "adapter.h"
#include "model.h"
#include "model_train.h"
#include "shard_read.h"
#include "trainer.h"

struct run {
	const struct train_opts *o;
	struct model *m;
	struct model_train *tr;
	struct adapter *a;
	struct shard_reader *train, *valid;
	struct shard_cursor valid_start;
	struct shard_batch batch;
	json_t *tasks, *training;
	char **task_names;
	uint64_t warmup, step;
	FILE *metrics;
	msgpack_packer pk;
	// packed micro-batch
	int32_t *ids, *offsets, *doc_task;
	uint8_t *mask;
	size_t cap_tok, cap_docs;
};

// A new run: RUN is created, or (--force) its old state and metrics are removed; with --resume RUN must exist.
void run_prepare_dir(const struct train_opts *o);
// Write a checkpoint: state/ (optimizer state, trainer.json) as a whole, then the adapter files.
void run_checkpoint(struct run *r);
// Load RUN/state (settings checked against this run's); returns the metrics length saved with it.
long run_resume(struct run *r);

// Open RUN/metrics.mpk: new (header written) or, resuming, cut back to RESUME_BYTES (>= 0) and appended to.
void metrics_open(struct run *r, long resume_bytes);
// One record for the step just taken.
void metrics_write_step(struct run *r, double loss, double lb, double con, double val, double lr, double gnorm,
			double tps, int64_t tokens);
void metrics_close(struct run *r);

#endif
