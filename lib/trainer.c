// trainer.c — the train-experts loop: batches, forward/backward, AdamW, validation (trainer_internal.h has
// the other parts: checkpoints and resume, metrics).
#include "trainer_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_io.h"
#include "die.h"
#include "dist.h"
#include "model.h"
#include "model_train.h"
#include "progress.h"
#include "shard_manifest.h"
#include "shard_read.h"
#include "stream.h"

void train_opts_defaults(struct train_opts *o, enum adapter_method method)
{
	memset(o, 0, sizeof *o);
	adapter_config_preset(&o->adapter, method);
	o->steps = 1000;
	o->save_every = 100;
	o->eval_every = 100;
	o->warmup_ratio = 0.03;   // MING sft scripts
	o->lr = 2e-4;             // MOELoRA and MING both
	o->clip = 1.0;            // transformers Trainer max_grad_norm
	o->adamw = (struct adamw){0.9, 0.999, 1e-8, 0.0};
	o->schedule = SCHED_COSINE;
	o->accum = 1;
	o->batch_tokens = 4096;
	o->seed = 1;
	o->shuffle = 1;
	o->device_index = -1;
}

// ----------------------------------------------------------------------------
// settings as JSON (stored in adapter_config.json "training" and compared on --resume)

static json_t *training_json(const struct train_opts *o, uint64_t warmup)
{
	return json_pack("{s:I, s:I, s:f, s:s, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:b, s:b, s:I, s:I}", "steps",
			 (json_int_t)o->steps, "warmup_steps", (json_int_t)warmup, "lr", o->lr, "schedule",
			 lr_schedule_name(o->schedule), "beta1", o->adamw.beta1, "beta2", o->adamw.beta2, "eps",
			 o->adamw.eps, "weight_decay", o->adamw.weight_decay, "clip", o->clip, "accum",
			 (json_int_t)o->accum, "batch_tokens", (json_int_t)o->batch_tokens, "seed", (json_int_t)o->seed,
			 "shuffle", o->shuffle, "recompute", o->recompute, "eval_every", (json_int_t)o->eval_every,
			 "eval_sequences", (json_int_t)o->eval_sequences);
}

// ----------------------------------------------------------------------------
// the run

// Pack the real tokens of every document of B (padding left out) into one sequence; returns T.
static int64_t pack_batch(struct run *r, const struct shard_batch *b, int *n_docs)
{
	size_t T = 0, D = 0;
	for (uint32_t d = 0; d < b->n_docs; d++)
		T += b->doc_end[d] - b->doc_begin[d];
	if (T + 1 > r->cap_tok) {
		r->cap_tok = T + 1;
		r->ids = xrealloc(r->ids, r->cap_tok * sizeof(int32_t));
		r->mask = xrealloc(r->mask, r->cap_tok);
	}
	if (b->n_docs + 1 > r->cap_docs) {
		r->cap_docs = b->n_docs + 1;
		r->offsets = xrealloc(r->offsets, r->cap_docs * sizeof(int32_t));
		r->doc_task = xrealloc(r->doc_task, r->cap_docs * sizeof(int32_t));
	}
	T = 0;
	r->offsets[0] = 0;
	for (uint32_t d = 0; d < b->n_docs; d++) {
		size_t row = (size_t)b->doc_seq[d] * b->seq_len;
		if (b->doc_end[d] == b->doc_begin[d])
			continue;
		for (uint32_t p = b->doc_begin[d]; p < b->doc_end[d]; p++, T++) {
			r->ids[T] = (int32_t)b->ids[row + p];
			r->mask[T] = b->mask[row + p];
		}
		if (b->doc_task_id[d] >= (uint32_t)r->a->cfg.n_tasks)
			die_data(r->o->shards, -1, "doc_task_ids", "task id %u outside the manifest's task table",
				 b->doc_task_id[d]);
		r->doc_task[D] = (int32_t)b->doc_task_id[d];
		r->offsets[++D] = (int32_t)T;
	}
	*n_docs = (int)D;
	return (int64_t)T;
}

// Next non-empty micro-batch of the train split (epochs roll over): this rank's part of it (its T tokens, may
// be 0), and in *T_ALL the tokens of all the parts.
static int64_t next_train(struct run *r, int *n_docs, int64_t *T_all)
{
	for (int tries = 0; tries < 3; tries++) {
		if (shard_reader_next_part(r->train, &r->batch, (uint32_t)r->rank, (uint32_t)r->world) == 0)
			continue;   // end of an epoch (for every rank at once): the cursor moved to the next
		int64_t T = pack_batch(r, &r->batch, n_docs);
		*T_all = ranks_tokens(r, T);   // [dist] the parts' tokens
		if (*T_all > 0)
			return T;
	}
	if (r->rank > 0)
		dist_leave(EXIT_DATA);   // [dist] rank 0 says it
	die_data(r->o->shards, -1, NULL, "the train split has no tokens");
}

static double validate(struct run *r)
{
	shard_reader_seek(r->valid, r->valid_start);
	r->a->training = 0;
	double sum_n[2] = {0, 0};   // cross-entropy sum, targets
	int64_t seqs = 0;
	uint32_t n_seqs;
	while ((n_seqs = shard_reader_next_part(r->valid, &r->batch, (uint32_t)r->rank, (uint32_t)r->world)) > 0) {
		int n_docs;
		int64_t T = pack_batch(r, &r->batch, &n_docs), M = 0;
		seqs += n_seqs;
		if (T > 0) {
			double ce = model_train_forward(r->tr, r->ids, T, r->offsets, n_docs, r->doc_task, r->mask, &M);
			sum_n[0] += ce * (double)M;
			sum_n[1] += (double)M;
		}
		if (r->o->eval_sequences && (uint64_t)seqs >= r->o->eval_sequences)
			break;
	}
	r->a->training = 1;
	dist_allreduce(sum_n, 2, DIST_F64, 0, "summing the validation loss");   // [dist] every rank's parts
	return sum_n[1] ? sum_n[0] / sum_n[1] : NAN;
}

// ----------------------------------------------------------------------------

static void open_data(struct run *r)
{
	const struct train_opts *o = r->o;
	struct shard_manifest *man = shard_manifest_load(o->shards);
	// the task table: names by id
	const json_t *tasks = man->train.tasks, *t;
	size_t i;
	int n_tasks = 1;
	json_array_foreach(tasks, i, t) {
		json_int_t id = json_integer_value(json_object_get(t, "id"));
		if (id < 0 || id > 65535)
			die_data(man->path, -1, "tasks", "task id %lld out of range", (long long)id);
		n_tasks = (int)id + 1 > n_tasks ? (int)id + 1 : n_tasks;
	}
	r->task_names = xcalloc((size_t)n_tasks, sizeof(char *));
	r->tasks = json_array();
	json_array_foreach(tasks, i, t) {
		json_int_t id = json_integer_value(json_object_get(t, "id"));
		const char *name = json_string_value(json_object_get(t, "name"));
		r->task_names[id] = xstrdup(name ? name : "?");
		json_array_append_new(r->tasks, json_pack("{s:I, s:s}", "id", id, "name", r->task_names[id]));
	}
	for (int k = 0; k < n_tasks; k++)
		if (!r->task_names[k])
			r->task_names[k] = xasprintf("task%d", k);
	// the tokenizer identity: shards made with another tokenizer are refused, naming both
	if (!r->m->tokenizer_sha256[0])
		die_data(o->base, -1, "tokenizer.json", "missing, so %s cannot be checked against the model", o->shards);
	if (strcmp(man->tokenizer_sha256, r->m->tokenizer_sha256) != 0)
		die_data(man->path, -1, "tokenizer.sha256",
			 "shards made with tokenizer %s, but the base model's %s/tokenizer.json is %s", man->tokenizer_sha256,
			 o->base, r->m->tokenizer_sha256);
	uint32_t seq_len = man->seq_len;
	int has_valid = man->valid.sequences > 0;
	shard_manifest_free(man);

	struct adapter_config ac = o->adapter;
	ac.n_tasks = n_tasks;
	ac.seed = o->seed;
	r->a = adapter_new_for_model(&ac, r->m);
	uint32_t bs = o->batch_tokens / seq_len ? o->batch_tokens / seq_len : 1;
	if (r->world > (int)bs && r->rank == 0)
		warnx("--batch-tokens %u: micro-batches of %u sequence%s of %u tokens for %d ranks, so %d rank%s idle in "
		      "each; a larger --batch-tokens keeps every rank busy", o->batch_tokens, bs, bs > 1 ? "s" : "", seq_len,
		      r->world, r->world - (int)bs, r->world - (int)bs > 1 ? "s sit" : " sits");
	// Every rank reads the one global order (rank 0 of world 1) and forwards its part of each micro-batch
	// (shard_reader_next_part), so the cursor in a checkpoint is global and any rank count can resume it.
	struct shard_reader_options so = {.split = "train", .rank = 0, .world = 1, .batch_size = bs,
					  .shuffle = o->shuffle, .seed = o->seed};
	r->train = shard_reader_open(o->shards, &so);
	if (has_valid && o->eval_every) {
		so.split = "valid";
		so.shuffle = 0;
		r->valid = shard_reader_open(o->shards, &so);
		r->valid_start = shard_reader_tell(r->valid);
	}
}

void train_run(const struct train_opts *o)
{
	struct run r = {.o = o};
	dist_init(o->model.device == DEVICE_CUDA);   // [dist] ranks of mpirun / srun; NCCL for GPU ranks
	r.rank = dist_rank();
	r.world = dist_world();
	// [dist] each GPU rank takes its node's GPU local_rank unless --device names one
	int gpu_rank = o->model.device == DEVICE_CUDA && o->device_index < 0 && r.world > 1;
	device_init(o->model.device, gpu_rank ? dist_local_rank() : o->device_index);
	// [dist] rank 0 checks everything first (run directory, model, shards, --resume), so that a mistake is one
	// message, not one per rank
	if (r.rank > 0)
		dist_barrier("rank 0 checking the run");
	run_check_dir(o);
	r.m = model_load_with(o->base, &o->model);
	open_data(&r);
	run_prepare_dir(o);   // only now, with every input checked, is RUN created or an old run (--force) removed
	model_set_adapter(r.m, r.a, 0);
	r.tr = model_train_new(r.m);
	model_train_set_recompute(r.tr, o->recompute);
	r.warmup = o->warmup_given ? o->warmup : (uint64_t)ceil(o->warmup_ratio * (double)o->steps);
	r.training = training_json(o, r.warmup);

	metrics_open(&r, o->resume ? run_resume(&r) : -1);
	if (r.rank == 0)
		dist_barrier("rank 0 checking the run");   // [dist]
	struct adapter *a = r.a;
	a->training = 1;
	struct progress prog;
	progress_start(&prog, "train-experts", o->quiet || r.rank > 0);
	uint64_t first = r.step, done_here = 0;
	while (r.step < o->steps && !(o->stop_after && done_here >= o->stop_after)) {
		r.step++;
		dist_context("step %llu", (unsigned long long)r.step);
		double t0 = now_seconds(), loss = 0, lb = 0, con = 0;
		int64_t tokens = 0;
		adapter_zero_grads(a);
		adapter_zero_loads(a);
		a->step = r.step;
		for (uint32_t k = 0; k < o->accum; k++) {
			int n_docs;
			int64_t T_all, T = next_train(&r, &n_docs, &T_all);
			if (T > 0)
				model_train_forward(r.tr, r.ids, T, r.offsets, n_docs, r.doc_task, r.mask, NULL);
			ranks_sum_stats(&r, T);   // [dist] the micro-batch's normalisers, before its backward
			const double *ce_stats = model_train_ce_stats(r.tr);
			double ce = ce_stats[1] > 0 ? ce_stats[0] / ce_stats[1] : 0, l, c;
			adapter_aux_loss(a, &l, &c);
			if (!isfinite(ce) || !isfinite(l) || !isfinite(c)) {
				if (r.rank > 0)
					dist_leave(EXIT_FAIL);   // [dist] the sums are the same on every rank: rank 0 says it
				die(EXIT_FAIL, "step %llu: the %s is %s: stopping; the last checkpoint in %s/state is intact",
				    (unsigned long long)r.step, !isfinite(ce) ? "loss" : "auxiliary loss",
				    isnan(ce + l + c) ? "NaN" : "infinite", o->run);
			}
			if (T > 0)
				model_train_backward(r.tr, 1.0 / o->accum);
			ranks_push_queue(&r, T);   // [dist] every rank's new queue entries, in rank order
			loss += ce / o->accum;
			lb += l / o->accum;
			con += c / o->accum;
			tokens += T_all;
		}
		ranks_sum_grads(&r);   // [dist] before the norm, clipping and AdamW, so every rank takes the same step
		adapter_loads_to_host(a);
		ranks_sum_loads(&r);   // [dist] for the metrics
		double gnorm = grad_global_norm(a->dev.grads);
		if (!isfinite(gnorm)) {
			if (r.rank > 0)
				dist_leave(EXIT_FAIL);   // [dist]
			die(EXIT_FAIL, "step %llu: the gradient norm is %s: stopping; the last checkpoint in %s/state is intact",
			    (unsigned long long)r.step, isnan(gnorm) ? "NaN" : "infinite", o->run);
		}
		grad_clip(a->dev.grads, gnorm, o->clip);
		double lr = lr_at(o->schedule, o->lr, r.step, r.warmup, o->steps);
		struct adamw_step step = adamw_at(&o->adamw, lr, r.step);
		adamw_update(a->dev.params, a->dev.grads, a->dev.m, a->dev.v, &step);
		ops_sync(r.m->device);
		double step_s = now_seconds() - t0, tps = (double)tokens / (step_s + 1e-9);
		r.steps_s += step_s;
		double val = NAN;
		if (r.valid && o->eval_every && (r.step % o->eval_every == 0 || r.step == o->steps))
			val = validate(&r);
		metrics_write_step(&r, loss, lb, con, val, lr, gnorm, tps, tokens);
		done_here++;
		if (progress_due(&prog) || (prog.active && r.step == o->steps)) {
			double el = now_seconds() - prog.start, eta = el / (double)done_here * (double)(o->steps - r.step);
			fprintf(stderr, "\rtrain-experts: step %llu/%llu  loss %.4f  %.0f tok/s  ETA %.0fs   ",
				(unsigned long long)r.step, (unsigned long long)o->steps, loss, tps, eta);
		}
		int stopping = r.step == o->steps || (o->stop_after && done_here >= o->stop_after);
		if ((o->save_every && r.step % o->save_every == 0) || stopping) {
			ranks_check_state(&r);   // [dist] the ranks still hold the same adapter and queues
			run_checkpoint(&r);
		}
	}
	if (prog.active)
		fputc('\n', stderr);
	if (!o->quiet && r.rank == 0) {
		fprintf(stderr, "train-experts: %s: steps %llu..%llu done\n", o->run, (unsigned long long)first + 1,
			(unsigned long long)r.step);
		if (r.m->device != DEVICE_CPU) {
			char what[160];
			device_describe(r.m->device, what, sizeof what);
			fprintf(stderr, "train-experts: peak device memory %.2f GiB on %s\n",
				(double)ops_peak_bytes(r.m->device) / (1 << 30), what);
		}
	}
	if (!o->quiet && r.rank == 0 && r.world > 1 && r.steps_s > 0)   // [dist] what talking to the ranks cost
		fprintf(stderr, "train-experts: %d ranks: the gradient all-reduce took %.1f%% of the steps' time, every "
			"exchange with the ranks (waits included) %.1f%%, on rank 0\n", r.world, 100 * r.grads_s / r.steps_s,
			100 * dist_seconds_in_calls() / r.steps_s);
	metrics_close(&r);
	for (int k = 0; k < a->cfg.n_tasks; k++)
		free(r.task_names[k]);
	free(r.task_names);
	json_decref(r.tasks);
	json_decref(r.training);
	shard_batch_free(&r.batch);
	shard_reader_close(r.train);
	if (r.valid)
		shard_reader_close(r.valid);
	free(r.ids);
	free(r.mask);
	free(r.offsets);
	free(r.doc_task);
	model_train_free(r.tr);
	free(r.part_tokens);
	free(r.state_hash);
	model_free(r.m);
	adapter_free(a);
	dist_barrier("the end of the run");   // [dist] rank 0 has written the last checkpoint
	dist_finalize();
}
