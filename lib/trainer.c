// trainer.c — the train-experts loop: batches, forward/backward, AdamW, metrics, checkpoints, resume.
#include "trainer.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_io.h"
#include "die.h"
#include "model.h"
#include "model_train.h"
#include "outfile.h"
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
// metrics stream (medmoe.metrics), appended to and flushed step by step

static int write_file(void *data, const char *buf, size_t len)
{
	return fwrite(buf, 1, len, data) == len ? 0 : -1;
}

static void pack_json(msgpack_packer *pk, const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *v;
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, k, v) {
			pack_str(pk, k);
			pack_json(pk, v);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v) pack_json(pk, v);
		break;
	}
	case JSON_STRING: pack_str(pk, json_string_value(j)); break;
	case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
	case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
	case JSON_TRUE: msgpack_pack_true(pk); break;
	case JSON_FALSE: msgpack_pack_false(pk); break;
	default: msgpack_pack_nil(pk); break;
	}
}

// ----------------------------------------------------------------------------
// the run

struct run {
	const struct train_opts *o;
	struct model *m;
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

// Next non-empty micro-batch of the train split (epochs roll over).
static int64_t next_train(struct run *r, int *n_docs)
{
	for (int tries = 0; tries < 3; tries++) {
		if (shard_reader_next(r->train, &r->batch) == 0)
			continue;   // end of an epoch: the cursor moved to the next
		int64_t T = pack_batch(r, &r->batch, n_docs);
		if (T > 0)
			return T;
	}
	die_data(r->o->shards, -1, NULL, "the train split has no tokens");
}

static double validate(struct run *r)
{
	shard_reader_seek(r->valid, r->valid_start);
	r->a->training = 0;
	double sum = 0;
	int64_t n = 0, seqs = 0;
	while (shard_reader_next(r->valid, &r->batch) > 0) {
		int n_docs;
		int64_t T = pack_batch(r, &r->batch, &n_docs), M = 0;
		seqs += r->batch.n_seqs;
		if (T > 0) {
			double ce = model_train_forward(r->m, r->ids, T, r->offsets, n_docs, r->doc_task, r->mask, &M);
			sum += ce * (double)M;
			n += M;
		}
		if (r->o->eval_sequences && (uint64_t)seqs >= r->o->eval_sequences)
			break;
	}
	r->a->training = 1;
	return n ? sum / (double)n : NAN;
}

// ----------------------------------------------------------------------------
// checkpoints

static void checkpoint(struct run *r)
{
	const struct train_opts *o = r->o;
	if (fflush(r->metrics) != 0 || fsync(fileno(r->metrics)) != 0)
		die_errno("%s/metrics.mpk", o->run);
	long metrics_bytes = ftell(r->metrics);
	char *state = xasprintf("%s/state", o->run);
	struct outdir *dir = outdir_open(state, 1);
	char *path = xasprintf("%s/optimizer.safetensors", dir->tmp_path);
	adapter_state_save(r->a, path);
	free(path);
	struct shard_cursor c = shard_reader_tell(r->train);
	json_t *j = json_pack("{s:I, s:I, s:{s:I, s:I, s:I, s:I, s:i, s:i, s:i}, s:O}", "step", (json_int_t)r->step,
			      "metrics_bytes", (json_int_t)metrics_bytes, "cursor", "epoch", (json_int_t)c.epoch,
			      "position", (json_int_t)c.position, "sequences", (json_int_t)c.sequences, "seed",
			      (json_int_t)c.seed, "rank", (int)c.rank, "world", (int)c.world, "shuffle", (int)c.shuffle,
			      "training", r->training);
	path = xasprintf("%s/trainer.json", dir->tmp_path);
	struct outfile *out = outfile_open(path);
	if (json_dumpf(j, out->fp, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0)
		die_errno("%s", path);
	fputc('\n', out->fp);
	outfile_commit(out);
	free(path);
	json_decref(j);
	outdir_commit(dir);
	free(state);
	adapter_save(r->a, r->m, o->run, r->tasks, r->training);
}

static json_int_t jint(const json_t *obj, const char *path, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v))
		die_data(path, -1, key, "missing or not an integer");
	return json_integer_value(v);
}

// Load RUN/state; returns the saved metrics length.
static long resume(struct run *r)
{
	const struct train_opts *o = r->o;
	char *path = xasprintf("%s/state/trainer.json", o->run);
	json_error_t err;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		die(EXIT_FAIL, "--resume: %s: %s (no checkpoint to resume from?)", path, err.text);
	const json_t *saved = json_object_get(j, "training");
	if (!json_equal((json_t *)saved, r->training)) {
		// name the first setting that differs (everything freed first: die exits at once)
		char msg[512] = "the training settings differ from the run's";
		const char *k;
		json_t *v;
		json_object_foreach(r->training, k, v) {
			if (!json_equal(v, json_object_get(saved, k))) {
				char *was = json_dumps(json_object_get(saved, k), JSON_ENCODE_ANY);
				char *now = json_dumps(v, JSON_ENCODE_ANY);
				snprintf(msg, sizeof msg, "%s was %s in this run, %s now", k, was ? was : "absent", now ? now : "?");
				free(was);
				free(now);
				break;
			}
		}
		json_decref(j);
		free(path);
		die(EXIT_USAGE, "--resume: %s", msg);
	}
	r->step = (uint64_t)jint(j, path, "step");
	long metrics_bytes = (long)jint(j, path, "metrics_bytes");
	const json_t *c = json_object_get(j, "cursor");
	struct shard_cursor cur = {
		.epoch = (uint64_t)jint(c, path, "epoch"), .position = (uint64_t)jint(c, path, "position"),
		.sequences = (uint64_t)jint(c, path, "sequences"), .seed = (uint64_t)jint(c, path, "seed"),
		.rank = (uint32_t)jint(c, path, "rank"), .world = (uint32_t)jint(c, path, "world"),
		.shuffle = (uint32_t)jint(c, path, "shuffle")};
	shard_reader_seek(r->train, cur);
	json_decref(j);
	free(path);
	// the adapter's own settings must match too
	json_t *cfg = adapter_config_read(o->run);
	const char *method = json_string_value(json_object_get(cfg, "method"));
	if (!method || strcmp(method, adapter_method_name(o->adapter.method)) != 0)
		die(EXIT_USAGE, "--resume: the run used --method %s", method ? method : "?");
	json_decref(cfg);
	path = xasprintf("%s/state/optimizer.safetensors", o->run);
	adapter_state_load(r->a, path);
	free(path);
	return metrics_bytes;
}

// ----------------------------------------------------------------------------
// metrics

static void write_header(struct run *r)
{
	msgpack_packer *pk = &r->pk;
	msgpack_pack_map(pk, 6);
	pack_kv_str(pk, "schema", "medmoe.metrics");
	pack_kv_int(pk, "version", 1);
	pack_kv_str(pk, "program", "train-experts");
	pack_kv_str(pk, "program_version", MEDMOE_VERSION);
	pack_kv_str(pk, "method", adapter_method_name(r->o->adapter.method));
	pack_str(pk, "config");   // what adapter_config.json holds: every hyperparameter, the base, tasks, training
	json_t *cfg = adapter_config_json(r->a, r->m, r->tasks, r->training);
	pack_json(pk, cfg);
	json_decref(cfg);
}

static void write_record(struct run *r, double loss, double lb, double con, double val, double lr, double gnorm,
			 double tps, int64_t tokens)
{
	const struct adapter *a = r->a;
	const struct adapter_config *c = &a->cfg;
	int routed = a->n_routed_slots > 0, moe = c->method == ADAPTER_MOELORA;
	msgpack_packer *pk = &r->pk;
	msgpack_pack_map(pk, 7 + 2 * routed + (c->method == ADAPTER_SPARSEDOCTOR) + !isnan(val) + (routed || moe));
	pack_kv_int(pk, "step", (int64_t)r->step);
	pack_kv_double(pk, "loss", loss);
	if (routed)
		pack_kv_double(pk, "lb_loss", lb);
	if (c->method == ADAPTER_SPARSEDOCTOR)
		pack_kv_double(pk, "contrastive_loss", con);
	if (!isnan(val))
		pack_kv_double(pk, "val_loss", val);
	pack_kv_double(pk, "lr", lr);
	pack_kv_double(pk, "grad_norm", gnorm);
	pack_kv_double(pk, "tokens_per_s", tps);
	pack_kv_int(pk, "tokens", tokens);
	pack_kv_double(pk, "objective", loss + (routed ? c->lb_coef * lb : 0) + c->con_lambda * con);
	if (routed) {
		// per layer: the share of the top-k assignments each expert received (all routed linears of the layer)
		pack_str(pk, "expert_load");
		msgpack_pack_array(pk, (size_t)a->n_layers);
		for (int l = 0; l < a->n_layers; l++) {
			double cnt[c->experts], total = 0;
			for (int e = 0; e < c->experts; e++)
				cnt[e] = 0;
			for (int t = 0; t < N_TARGETS; t++) {
				const struct adapter_slot *s = &a->slots[l * N_TARGETS + t];
				for (int e = 0; s->kind == SLOT_ROUTED && e < c->experts; e++)
					cnt[e] += (double)s->load[e], total += (double)s->load[e];
			}
			msgpack_pack_array(pk, (size_t)c->experts);
			for (int e = 0; e < c->experts; e++)
				msgpack_pack_double(pk, total ? cnt[e] / total : 0);
		}
	}
	if (routed || moe) {
		// per task: routed methods, the share of its tokens' assignments per expert (all layers);
		// moelora, the gate weights w(task)
		pack_str(pk, "task_load");
		msgpack_pack_map(pk, (size_t)c->n_tasks);
		for (int k = 0; k < c->n_tasks; k++) {
			pack_str(pk, r->task_names[k]);
			msgpack_pack_array(pk, (size_t)c->experts);
			double total = 0;
			for (int e = 0; e < c->experts; e++)
				total += (double)a->task_load[(size_t)k * c->experts + e];
			for (int e = 0; e < c->experts; e++)
				msgpack_pack_double(pk, moe ? (double)a->task_gate[(size_t)k * c->experts + e]
							    : total ? (double)a->task_load[(size_t)k * c->experts + e] / total : 0);
		}
	}
	if (fflush(r->metrics) != 0)
		die_errno("%s/metrics.mpk", r->o->run);
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

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

// A new run: RUN is created, or (--force) its old state and metrics are removed.
static void prepare_run_dir(const struct train_opts *o)
{
	struct stat st;
	char *state = xasprintf("%s/state", o->run), *metrics = xasprintf("%s/metrics.mpk", o->run);
	if (stat(o->run, &st) != 0) {
		if (o->resume)
			die(EXIT_FAIL, "--resume: %s: no such run directory", o->run);
		if (mkdir(o->run, 0777) != 0)
			die_errno("%s", o->run);
	} else if (!o->resume) {
		if (stat(state, &st) == 0 && !o->force)
			die(EXIT_FAIL, "%s: holds a run already (use --resume to continue it or --force to start over)", o->run);
		char *cmd[] = {state, metrics};
		for (int i = 0; i < 2; i++)
			if (stat(cmd[i], &st) == 0 && S_ISREG(st.st_mode))
				unlink(cmd[i]);
		if (stat(state, &st) == 0 && nftw(state, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
			die_errno("%s", state);
	}
	free(state);
	free(metrics);
}

void train_run(const struct train_opts *o)
{
	struct run r = {.o = o};
	prepare_run_dir(o);
	r.m = model_load(o->base);
	open_data(&r);
	model_set_adapter(r.m, r.a, 0);
	model_train_set_recompute(r.m, o->recompute);
	r.warmup = o->warmup_given ? o->warmup : (uint64_t)ceil(o->warmup_ratio * (double)o->steps);
	r.training = training_json(o, r.warmup);

	char *mpath = xasprintf("%s/metrics.mpk", o->run);
	if (o->resume) {
		long bytes = resume(&r);
		r.metrics = fopen(mpath, "r+");
		if (!r.metrics || ftruncate(fileno(r.metrics), bytes) != 0 || fseek(r.metrics, bytes, SEEK_SET) != 0)
			die_errno("%s", mpath);
		msgpack_packer_init(&r.pk, r.metrics, write_file);
	} else {
		r.metrics = fopen(mpath, "w");
		if (!r.metrics)
			die_errno("%s", mpath);
		msgpack_packer_init(&r.pk, r.metrics, write_file);
		write_header(&r);
	}
	struct adapter *a = r.a;
	a->training = 1;
	struct progress prog;
	progress_start(&prog, "train-experts", o->quiet);
	uint64_t first = r.step, done_here = 0;
	while (r.step < o->steps && !(o->stop_after && done_here >= o->stop_after)) {
		r.step++;
		double t0 = now_seconds(), loss = 0, lb = 0, con = 0;
		int64_t tokens = 0;
		adapter_zero_grads(a);
		adapter_zero_loads(a);
		a->step = r.step;
		for (uint32_t k = 0; k < o->accum; k++) {
			int n_docs;
			int64_t T = next_train(&r, &n_docs);
			double ce = model_train_forward(r.m, r.ids, T, r.offsets, n_docs, r.doc_task, r.mask, NULL), l, c;
			adapter_aux_loss(a, &l, &c);
			if (!isfinite(ce) || !isfinite(l) || !isfinite(c))
				die(EXIT_FAIL, "step %llu: the %s is %s: stopping; the last checkpoint in %s/state is intact",
				    (unsigned long long)r.step, !isfinite(ce) ? "loss" : "auxiliary loss",
				    isnan(ce + l + c) ? "NaN" : "infinite", o->run);
			model_train_backward(r.m, 1.0 / o->accum);
			adapter_queue_push(a);
			loss += ce / o->accum;
			lb += l / o->accum;
			con += c / o->accum;
			tokens += T;
		}
		double gnorm = grad_global_norm(a->grads, a->n_params);
		if (!isfinite(gnorm))
			die(EXIT_FAIL, "step %llu: the gradient norm is %s: stopping; the last checkpoint in %s/state is intact",
			    (unsigned long long)r.step, isnan(gnorm) ? "NaN" : "infinite", o->run);
		grad_clip(a->grads, a->n_params, gnorm, o->clip);
		double lr = lr_at(o->schedule, o->lr, r.step, r.warmup, o->steps);
		adamw_update(&o->adamw, lr, r.step, a->params, a->grads, a->adam_m, a->adam_v, a->n_params);
		double tps = (double)tokens / (now_seconds() - t0 + 1e-9);
		double val = NAN;
		if (r.valid && o->eval_every && (r.step % o->eval_every == 0 || r.step == o->steps))
			val = validate(&r);
		write_record(&r, loss, lb, con, val, lr, gnorm, tps, tokens);
		done_here++;
		if (progress_due(&prog) || (prog.active && r.step == o->steps)) {
			double el = now_seconds() - prog.start, eta = el / (double)done_here * (double)(o->steps - r.step);
			fprintf(stderr, "\rtrain-experts: step %llu/%llu  loss %.4f  %.0f tok/s  ETA %.0fs   ",
				(unsigned long long)r.step, (unsigned long long)o->steps, loss, tps, eta);
		}
		int stopping = r.step == o->steps || (o->stop_after && done_here >= o->stop_after);
		if ((o->save_every && r.step % o->save_every == 0) || stopping)
			checkpoint(&r);
	}
	if (prog.active)
		fputc('\n', stderr);
	if (!o->quiet)
		fprintf(stderr, "train-experts: %s: steps %llu..%llu done\n", o->run, (unsigned long long)first + 1,
			(unsigned long long)r.step);
	if (fclose(r.metrics) != 0)
		die_errno("%s", mpath);
	free(mpath);
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
	model_free(r.m);
	adapter_free(a);
}
