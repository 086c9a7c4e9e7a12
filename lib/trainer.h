// trainer.h — the training loop of train-experts: shards in, a run directory out (DESIGN §4, §6).
//
// RUN/ (created when missing):
//   adapter.safetensors, adapter_config.json   the adapter at the last checkpoint (adapter_io.h)
//   metrics.mpk                                  medmoe.metrics, one record per optimizer step
//   state/optimizer.safetensors                  exact parameters, AdamW moments, sparsedoctor queues
//   state/trainer.json                           step, data cursor, metrics length, the settings, the ranks
//                                                that wrote it (and, several, each one's hash of its state)
// A checkpoint first replaces state/ as a whole (built in state.tmp.PID, renamed), then the two adapter files,
// each through a temporary file: a failure at any point (a full disk) leaves the previous checkpoint usable,
// and --resume reads only state/.  Randomness is a pure function of (seed, step): dropout masks hash them and
// the data order is the shard reader's (seed, epoch) permutation, so the state needs no generator snapshot;
// 20 steps in one go and 10 + --resume + 10 give the same bytes.
// Under mpirun / srun the ranks train one adapter together (trainer_dist.c, dist.h): each forwards its part of
// every micro-batch, rank 0 alone writes RUN, and the data cursor is global, so any number of ranks resumes.
// metrics.mpk is appended to and flushed per step; a resumed run cuts it back to the length saved with the
// checkpoint, so the steps redone after an interruption are not listed twice.
#ifndef MEDMOE_TRAINER_H
#define MEDMOE_TRAINER_H

#include <stdint.h>

#include "adapter.h"
#include "model.h"
#include "optim.h"

struct train_opts {
	const char *base, *run, *shards;
	struct model_options model;   // the device and the frozen weights' dtype there
	int device_index;             // cuda:N (−1: the default GPU)
	struct adapter_config adapter;
	uint64_t steps, save_every, stop_after, eval_every, warmup;
	double warmup_ratio;          // used when warmup is not given (warmup = ratio · steps)
	int warmup_given;
	double lr, clip;
	struct adamw adamw;
	enum lr_schedule schedule;
	uint32_t accum, batch_tokens;
	uint64_t seed;
	int shuffle, recompute, resume, force, quiet;
	uint64_t eval_sequences;      // 0: the whole valid split
};

void train_opts_defaults(struct train_opts *o, enum adapter_method method);
// Train as O says; dies with a clear message on bad input, a non-finite loss (the last checkpoint stays),
// or a write error while checkpointing (the previous checkpoint stays).
void train_run(const struct train_opts *o);

#endif
