// trainer_internal.h — what the parts of the train-experts loop share: the state of one run.
//   trainer.c             the loop: batches, forward/backward, the optimizer step, validation
//   trainer_checkpoint.c  the run directory: creating it, checkpoints, --resume
//   trainer_metrics.c     the medmoe.metrics stream: header and one record per step
//   trainer_dist.c        what the ranks of a data-parallel run exchange (dist.h)
// With several ranks, only rank 0 writes (the run directory, checkpoints, metrics, the progress line).
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
	// data parallelism: this rank, the ranks, each rank's tokens of the current micro-batch
	int rank, world;
	int64_t *part_tokens;
	int64_t *state_hash;          // each rank's, at the last checkpoint (ranks_check_state)
	double steps_s, grads_s;      // seconds in this run's steps, and in their gradient all-reduce
};

// Before anything is read: with --resume RUN must exist; without it RUN must hold no run unless --force.
// Nothing is created or removed.
void run_check_dir(const struct train_opts *o);
// Once every input has been checked: RUN is created, or (--force) the old run's state, metrics and adapter
// files are removed.  A refused run leaves no RUN directory and the old run intact.
void run_prepare_dir(const struct train_opts *o);
// Write a checkpoint: state/ (optimizer state, trainer.json) as a whole, then the adapter files.
void run_checkpoint(struct run *r);
// The numbers of RUN/state/trainer.json, each range-checked (exit 65 naming PATH and the field) for a run of
// STEPS steps of ACCUM micro-batches.
struct run_saved {
	uint64_t step, metrics_bytes;
	struct shard_cursor cursor;
};
void run_saved_parse(const json_t *j, const char *path, uint64_t steps, uint32_t accum, struct run_saved *sv);
// Load RUN/state (settings checked against this run's; every saved number range-checked; the metrics length
// must end the saved step's record in RUN/metrics.mpk); returns that length.
long run_resume(struct run *r);

// Open RUN/metrics.mpk: new (header written) or, resuming, cut back to RESUME_BYTES (>= 0) and appended to.
void metrics_open(struct run *r, long resume_bytes);
// One record for the step just taken.
void metrics_write_step(struct run *r, double loss, double lb, double con, double val, double lr, double gnorm,
			double tps, int64_t tokens);
void metrics_close(struct run *r);

// Data parallelism (trainer_dist.c), in the order of a step.  T is this rank's part of the micro-batch (0: none).
// The micro-batch's tokens over all ranks; sets the adapter's token offset (before the forward).
int64_t ranks_tokens(struct run *r, int64_t T);
// The normalisers of the micro-batch summed over the ranks (after the forward, before the backward).
void ranks_sum_stats(struct run *r, int64_t T);
// Sparsedoctor: every rank's new queue entries pushed on every rank, in rank order (after the backward).
void ranks_push_queue(struct run *r, int64_t T);
// After the step's micro-batches: the gradients, then the expert-load counters, summed.
void ranks_sum_grads(struct run *r);
void ranks_sum_loads(struct run *r);
// Before a checkpoint: every rank must hold the same parameters, moments and memory queue (hashed and
// compared; a difference stops the run, and state_hash goes into trainer.json as "rank_states").
void ranks_check_state(struct run *r);

#endif
