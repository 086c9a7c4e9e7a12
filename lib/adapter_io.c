// adapter_io.c — adapter files: safetensors tensors, the JSON config with the base identity, optimizer state.
#include "adapter_io.h"

#include <math.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "infile.h"
#include "outfile.h"
#include "safetensors.h"

_Static_assert(sizeof(real) == sizeof(float), "adapter files are written from the fp32 build");

void adapter_model_dims(const struct model *m, int64_t dims[N_TARGETS][2])
{
	const struct model_config *c = &m->cfg;
	int64_t C = c->hidden, F = c->ffn, QD = (int64_t)c->n_heads * c->head_dim;
	int64_t KD = (int64_t)c->n_kv_heads * c->head_dim;
	int64_t d[N_TARGETS][2] = {{C, QD}, {C, KD}, {C, KD}, {QD, C}, {C, F}, {C, F}, {F, C}};
	memcpy(dims, d, sizeof d);
}

struct adapter *adapter_new_for_model(const struct adapter_config *cfg, const struct model *m)
{
	int64_t dims[N_TARGETS][2];
	adapter_model_dims(m, dims);
	struct adapter *a = adapter_new(cfg, m->cfg.n_layers, dims);
	if (m->device != DEVICE_CPU || m->act_dtype != DTYPE_REAL)
		adapter_place(a, m->device, m->act_dtype);
	return a;
}

void adapter_base_config_sha256(const struct model *m, char out[65])
{
	out[0] = 0;
	char *path = xasprintf("%s/config.json", m->dir);
	uint64_t size;
	if (access(path, R_OK) == 0 && infile_sha256(path, out, &size) != 0)
		die_errno("%s", path);
	free(path);
}

json_t *adapter_config_json(const struct adapter *a, const struct model *m, const json_t *tasks, const json_t *training)
{
	const struct adapter_config *c = &a->cfg;
	json_t *root = json_object(), *targets = json_array(), *base = json_object();
	for (int t = 0; t < N_TARGETS; t++)
		if (c->targets & (1u << t))
			json_array_append_new(targets, json_string(adapter_target_name(t)));
	char sha[65];
	adapter_base_config_sha256(m, sha);
	json_object_set_new(base, "path", json_string(m->dir));
	json_object_set_new(base, "architecture", json_string(model_arch_name(m->cfg.arch)));
	json_object_set_new(base, "config_sha256", json_string(sha));
	json_object_set_new(base, "tokenizer_sha256", json_string(m->tokenizer_sha256));
	json_object_set_new(base, "num_hidden_layers", json_integer(m->cfg.n_layers));
	json_object_set_new(base, "hidden_size", json_integer(m->cfg.hidden));
	json_object_set_new(root, "format", json_string("medmoe.adapter"));
	json_object_set_new(root, "version", json_integer(1));
	json_object_set_new(root, "method", json_string(adapter_method_name(c->method)));
	json_object_set_new(root, "experts", json_integer(c->experts));
	json_object_set_new(root, "rank", json_integer(c->rank));
	json_object_set_new(root, "alpha", json_real(c->alpha));
	json_object_set_new(root, "rslora", json_boolean(c->rslora));
	json_object_set_new(root, "top_k", json_integer(c->top_k));
	json_object_set_new(root, "target_modules", targets);
	json_object_set_new(root, "dropout", json_real(c->dropout));
	json_object_set_new(root, "task_embedding_dim", json_integer(c->task_emb));
	json_object_set_new(root, "n_tasks", json_integer(c->n_tasks));
	json_object_set_new(root, "lb_coef", json_real(c->lb_coef));
	json_object_set_new(root, "shared_experts", json_integer(c->shared_experts));
	json_object_set_new(root, "contrastive_tau", json_real(c->con_tau));
	json_object_set_new(root, "contrastive_lambda", json_real(c->con_lambda));
	json_object_set_new(root, "contrastive_proj", json_integer(c->con_proj));
	json_object_set_new(root, "contrastive_queue", json_integer(c->con_queue));
	json_object_set_new(root, "seed", json_integer((json_int_t)c->seed));
	json_object_set_new(root, "base", base);
	json_object_set_new(root, "tasks", tasks ? json_deep_copy(tasks) : json_array());
	if (training)
		json_object_set_new(root, "training", json_deep_copy(training));
	if (c->method == ADAPTER_LORA) {   // PEFT LoraConfig (research/engineering.md §4.2)
		json_object_set_new(root, "peft_type", json_string("LORA"));
		json_object_set_new(root, "task_type", json_string("CAUSAL_LM"));
		json_object_set_new(root, "r", json_integer(c->rank));
		json_object_set_new(root, "lora_alpha", json_real(c->alpha));
		json_object_set_new(root, "lora_dropout", json_real(c->dropout));
		json_object_set_new(root, "use_rslora", json_boolean(c->rslora));
		json_object_set_new(root, "bias", json_string("none"));
		json_object_set_new(root, "base_model_name_or_path", json_string(m->dir));
	}
	return root;
}

void adapter_save_tensors(const struct adapter *a, const char *path)
{
	struct adapter_tensor *ts;
	size_t n = adapter_tensors(a, &ts), total = 0;
	for (size_t i = 0; i < n; i++)
		total += (size_t)(ts[i].shape[0] * ts[i].shape[1]);
	float *buf = xmalloc((total + 1) * sizeof(float)), *p = buf;
	struct st_writer *w = st_writer_new();
	st_writer_metadata(w, "format", "pt");
	st_writer_metadata(w, "method", adapter_method_name(a->cfg.method));
	for (size_t i = 0; i < n; i++) {
		adapter_tensor_get(&ts[i], a->params, p);
		st_writer_add(w, ts[i].name, ST_F32, ts[i].ndim, ts[i].shape, p);
		p += ts[i].shape[0] * ts[i].shape[1];
	}
	st_writer_write(w, path);
	free(buf);
	free(ts);
}

void adapter_config_write(const json_t *root, const char *path)
{
	struct outfile *out = outfile_open(path);
	if (json_dumpf(root, out->fp, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) != 0)
		die_errno("%s", path);
	fputc('\n', out->fp);
	outfile_commit(out);
}

void adapter_save(const struct adapter *a, const struct model *m, const char *dir, const json_t *tasks,
		  const json_t *training)
{
	char *path = xasprintf("%s/adapter.safetensors", dir);
	adapter_save_tensors(a, path);
	free(path);
	json_t *root = adapter_config_json(a, m, tasks, training);
	path = xasprintf("%s/adapter_config.json", dir);
	adapter_config_write(root, path);
	free(path);
	json_decref(root);
}

json_t *adapter_config_read(const char *run_dir)
{
	char *path = xasprintf("%s/adapter_config.json", run_dir);
	json_error_t err;
	json_t *root = infile_json(path, JSON_REJECT_DUPLICATES, INFILE_MAX_CONFIG, &err);
	if (!root)
		die_data(path, -1, NULL, "%s (line %d)", err.text, err.line);
	if (!json_is_object(root) || !json_is_string(json_object_get(root, "format")) ||
	    strcmp(json_string_value(json_object_get(root, "format")), "medmoe.adapter") != 0)
		die_data(path, -1, "format", "not a medmoe adapter config");
	free(path);
	return root;
}

static const char *get_str(const json_t *root, const char *path, const char *key)
{
	const json_t *v = json_object_get(root, key);
	if (!json_is_string(v))
		die_data(path, -1, key, "missing or not a string");
	return json_string_value(v);
}

// A finite number, at least LO (above LO when STRICT).
static double get_num(const json_t *root, const char *path, const char *key, double lo, int strict)
{
	const json_t *v = json_object_get(root, key);
	if (!json_is_number(v))
		die_data(path, -1, key, "missing or not a number");
	double x = json_number_value(v);
	if (!isfinite(x) || x < lo || (strict && x == lo))
		die_data(path, -1, key, "%g is out of range (%s %g)", x, strict ? ">" : ">=", lo);
	return x;
}

static int is_mlp(int t) { return t == TGT_GATE || t == TGT_UP || t == TGT_DOWN; }

// The parameters C asks for on model M (what adapter_new will allocate, four times over) and the sparsedoctor
// queue values, in overflow-checked 64-bit arithmetic; -1 on overflow.
static int adapter_sizes(const struct adapter_config *c, const struct model *m, uint64_t *params, uint64_t *queue)
{
	int64_t dims[N_TARGETS][2];
	adapter_model_dims(m, dims);
	uint64_t p = 0, q = 0, x;
	if (c->method == ADAPTER_MOELORA)
		p = (uint64_t)(c->n_tasks + c->experts) * (uint64_t)c->task_emb;
	for (int t = 0; t < N_TARGETS; t++) {
		if (!(c->targets & (1u << t)))
			continue;
		uint64_t din = (uint64_t)dims[t][0], dout = (uint64_t)dims[t][1], slot;
		int routed = (c->method == ADAPTER_MINGMOE || c->method == ADAPTER_SPARSEDOCTOR) && is_mlp(t);
		uint64_t er = c->method == ADAPTER_MOELORA ? (uint64_t)c->rank
			      : routed ? (uint64_t)(c->experts + c->shared_experts) * (uint64_t)c->rank : (uint64_t)c->rank;
		slot = er * (din + dout);   // er ≤ 2^26, d ≤ 2^21: no overflow
		if (routed) {
			slot += (uint64_t)c->experts * (din + 1);
			if (c->method == ADAPTER_SPARSEDOCTOR) {
				slot += (uint64_t)c->con_proj * din;
				if (__builtin_mul_overflow((uint64_t)c->experts * (uint64_t)c->con_queue, (uint64_t)c->con_proj, &x) ||
				    __builtin_mul_overflow(x, (uint64_t)m->cfg.n_layers, &x) || __builtin_add_overflow(q, x, &q))
					return -1;
			}
		}
		if (__builtin_mul_overflow(slot, (uint64_t)m->cfg.n_layers, &x) || __builtin_add_overflow(p, x, &p))
			return -1;
	}
	*params = p;
	*queue = q;
	return 0;
}

// adapter_config.json ROOT (file PATH) into C: every field checked against its range before it is narrowed or
// used to size anything (exit 65 naming the field; adapter_new's own checks are usage errors).
static void parse_config(const json_t *root, const char *path, struct adapter_config *c)
{
	enum adapter_method method;
	if (adapter_method_parse(get_str(root, path, "method"), &method) != 0)
		die_data(path, -1, "method", "unknown method %s", get_str(root, path, "method"));
	adapter_config_preset(c, method);
	c->experts = (int)infile_json_int(root, path, "experts", 1, ADAPTER_MAX_EXPERTS);
	c->rank = (int)infile_json_int(root, path, "rank", 1, ADAPTER_MAX_RANK);
	c->alpha = get_num(root, path, "alpha", 0, 1);
	c->rslora = json_is_true(json_object_get(root, "rslora"));
	c->top_k = (int)infile_json_int(root, path, "top_k", 0, ADAPTER_MAX_EXPERTS);
	c->dropout = get_num(root, path, "dropout", 0, 0);
	if (c->dropout >= 1)
		die_data(path, -1, "dropout", "%g is not in [0, 1)", c->dropout);
	c->task_emb = (int)infile_json_int(root, path, "task_embedding_dim", 1, ADAPTER_MAX_DIM);
	c->n_tasks = (int)infile_json_int(root, path, "n_tasks", 1, ADAPTER_MAX_TASKS);
	c->lb_coef = get_num(root, path, "lb_coef", 0, 0);
	c->shared_experts = (int)infile_json_int(root, path, "shared_experts", 0, ADAPTER_MAX_EXPERTS);
	c->con_tau = get_num(root, path, "contrastive_tau", 0, 1);
	c->con_lambda = get_num(root, path, "contrastive_lambda", 0, 0);
	c->con_proj = (int)infile_json_int(root, path, "contrastive_proj", 1, ADAPTER_MAX_DIM);
	c->con_queue = (int)infile_json_int(root, path, "contrastive_queue", 1, ADAPTER_MAX_QUEUE);
	c->seed = (uint64_t)infile_json_int(root, path, "seed", INT64_MIN, INT64_MAX);   // written as a json_int_t cast
	if (method == ADAPTER_MOELORA && c->rank % c->experts)
		die_data(path, -1, "rank", "moelora's total rank %d is not a multiple of the %d experts", c->rank, c->experts);
	if ((method == ADAPTER_MINGMOE || method == ADAPTER_SPARSEDOCTOR) && (c->top_k < 1 || c->top_k > c->experts))
		die_data(path, -1, "top_k", "%d is not in 1..experts (%d)", c->top_k, c->experts);
	c->targets = 0;
	const json_t *targets = json_object_get(root, "target_modules"), *t;
	if (!json_is_array(targets))
		die_data(path, -1, "target_modules", "missing or not an array");
	size_t i;
	json_array_foreach(targets, i, t) {
		unsigned bit;
		if (!json_is_string(t) || adapter_targets_parse(json_string_value(t), &bit) != 0)
			die_data(path, -1, "target_modules", "entry %zu is not a known linear", i);
		c->targets |= bit;
	}
	if (!c->targets)
		die_data(path, -1, "target_modules", "empty");
	// the task table: ids within the gate's rows, each once, each with a name (eval-exam --task and
	// merge-adapters --task look names up here)
	const json_t *tasks = json_object_get(root, "tasks"), *task;
	if (!json_is_array(tasks))
		die_data(path, -1, "tasks", "missing or not an array");
	json_array_foreach(tasks, i, task) {
		const json_t *name = json_object_get(task, "name");
		int64_t id = infile_json_int(task, path, "id", 0, c->n_tasks - 1);
		if (!json_is_string(name) || !*json_string_value(name))
			die_data(path, -1, "tasks", "entry %zu has no name", i);
		for (size_t k = 0; k < i; k++)
			if (json_integer_value(json_object_get(json_array_get(tasks, k), "id")) == id)
				die_data(path, -1, "tasks", "task id %lld listed twice", (long long)id);
	}
}

struct adapter *adapter_load(const char *run_dir, const struct model *m)
{
	json_t *root = adapter_config_read(run_dir);
	char *path = xasprintf("%s/adapter_config.json", run_dir);
	struct adapter_config c;
	parse_config(root, path, &c);
	// the base identity
	const json_t *base = json_object_get(root, "base");
	if (!json_is_object(base))
		die_data(path, -1, "base", "missing");
	char sha[65];
	adapter_base_config_sha256(m, sha);
	const char *want = get_str(base, path, "config_sha256"), *want_tok = get_str(base, path, "tokenizer_sha256");
	if (strcmp(want, sha) != 0)
		die_data(path, -1, "base.config_sha256", "adapter trained on a base whose config.json has sha256 %s; %s/config.json has %s",
			 want, m->dir, sha[0] ? sha : "(none)");
	if (strcmp(want_tok, m->tokenizer_sha256) != 0)
		die_data(path, -1, "base.tokenizer_sha256", "adapter trained with tokenizer %s; %s/tokenizer.json is %s", want_tok,
			 m->dir, m->tokenizer_sha256[0] ? m->tokenizer_sha256 : "(none)");
	free(path);
	json_decref(root);

	path = xasprintf("%s/adapter.safetensors", run_dir);
	struct safetensors *st = safetensors_open(path);
	// Sized by the config only once the file is known to hold that much (a config asking for 10^9 tasks ends
	// here, naming the file, not in "out of memory").
	uint64_t n_params = 0, n_queue = 0, stored = safetensors_total_elems(st);
	char *cfg_path = xasprintf("%s/adapter_config.json", run_dir);
	if (adapter_sizes(&c, m, &n_params, &n_queue) != 0 || n_params > stored)
		die_data(cfg_path, -1, NULL, "the settings ask for %llu parameters, but %s holds %llu",
			 (unsigned long long)n_params, path, (unsigned long long)stored);
	if (n_queue > ADAPTER_MAX_QUEUE_VALUES)
		die_data(cfg_path, -1, "contrastive_queue", "experts × queue × projection × layers = %llu values, over the "
			 "limit %llu", (unsigned long long)n_queue, (unsigned long long)ADAPTER_MAX_QUEUE_VALUES);
	free(cfg_path);
	struct adapter *a = adapter_new_for_model(&c, m);
	struct adapter_tensor *ts;
	size_t n = adapter_tensors(a, &ts);
	for (size_t k = 0; k < n; k++) {
		const struct st_tensor *s = safetensors_find(st, ts[k].name);
		if (!s)
			die_data(path, -1, ts[k].name, "tensor missing");
		int64_t d1 = ts[k].ndim == 2 ? s->shape[1] : 1;
		if (s->ndim != ts[k].ndim || s->shape[0] != ts[k].shape[0] || d1 != ts[k].shape[1])
			die_data(path, -1, ts[k].name, "shape does not match the config (%lld x %lld expected)",
				 (long long)ts[k].shape[0], (long long)ts[k].shape[1]);
		st_require_finite(s);   // a NaN adapter (damaged or diverged) is refused, not merged or evaluated
		float *buf = xmalloc((size_t)s->nelem * sizeof(float));
		st_tensor_to_f32(s, buf);
		adapter_tensor_set(&ts[k], a->params, buf);
		free(buf);
	}
	free(ts);
	safetensors_close(st);
	free(path);
	adapter_to_device(a);
	return a;
}

// ----------------------------------------------------------------------------
// optimizer state

void adapter_state_save(const struct adapter *a, const char *path)
{
	struct st_writer *w = st_writer_new();
	int64_t n = (int64_t)a->n_params;
	st_writer_add(w, "params", ST_F32, 1, &n, a->params);
	st_writer_add(w, "adam_m", ST_F32, 1, &n, a->adam_m);
	st_writer_add(w, "adam_v", ST_F32, 1, &n, a->adam_v);
	float *pos = NULL, *qf = NULL;
	if (a->n_queue) {
		int64_t nq = (int64_t)a->n_queue, np = 0;
		for (int i = 0; i < a->n_layers * N_TARGETS; i++)
			if (a->slots[i].q_head)
				np += 2 * a->slots[i].n_routed;
		pos = xmalloc((size_t)np * sizeof(float));
		int64_t k = 0;
		// queue positions are < 2^24, exact in fp32
		for (int i = 0; i < a->n_layers * N_TARGETS; i++)
			for (int e = 0; a->slots[i].q_head && e < a->slots[i].n_routed; e++) {
				pos[k++] = (float)a->slots[i].q_head[e];
				pos[k++] = (float)a->slots[i].q_fill[e];
			}
		qf = xmalloc(a->n_queue * sizeof(float));   // half → fp32 is exact; stored back as F16
		for (size_t i = 0; i < a->n_queue; i++)
			qf[i] = st_f16_to_f32(a->queue[i]);
		st_writer_add(w, "queue", ST_F16, 1, &nq, qf);
		st_writer_add(w, "queue_positions", ST_F32, 1, &np, pos);
	}
	st_writer_write(w, path);
	free(pos);
	free(qf);
}

static void load_vec(const struct safetensors *st, const char *path, const char *name, float *dst, size_t n)
{
	const struct st_tensor *t = safetensors_find(st, name);
	if (!t || (size_t)t->nelem != n)
		die_data(path, -1, name, "missing, or not %zu values (another adapter configuration?)", n);
	st_tensor_to_f32(t, dst);
	// state is used as found only once every value is one the optimizer can have written
	for (size_t i = 0; i < n; i++)
		if (!isfinite(dst[i]))
			die_data(path, -1, name, "value %zu is %s", i, isnan(dst[i]) ? "NaN" : "infinite");
}

void adapter_state_load(struct adapter *a, const char *path)
{
	struct safetensors *st = safetensors_open(path);
	load_vec(st, path, "params", a->params, a->n_params);
	load_vec(st, path, "adam_m", a->adam_m, a->n_params);
	load_vec(st, path, "adam_v", a->adam_v, a->n_params);
	for (size_t i = 0; i < a->n_params; i++)
		if (a->adam_v[i] < 0)
			die_data(path, -1, "adam_v", "value %zu is negative (a second moment is a mean of squares)", i);
	if (a->n_queue) {
		size_t np = 0;
		for (int i = 0; i < a->n_layers * N_TARGETS; i++)
			if (a->slots[i].q_head)
				np += 2 * (size_t)a->slots[i].n_routed;
		float *pos = xmalloc(np * sizeof(float));
		float *qf = xmalloc(a->n_queue * sizeof(float));
		load_vec(st, path, "queue", qf, a->n_queue);
		for (size_t i = 0; i < a->n_queue; i++)
			a->queue[i] = st_f32_to_f16(qf[i]);
		free(qf);
		load_vec(st, path, "queue_positions", pos, np);
		size_t k = 0;
		int64_t len = a->cfg.con_queue;
		for (int i = 0; i < a->n_layers * N_TARGETS; i++)
			for (int e = 0; a->slots[i].q_head && e < a->slots[i].n_routed; e++) {
				// ring positions: head in [0, len), fill in [0, len], whole numbers (checked before the cast)
				float head = pos[k++], fill = pos[k++];
				if (!(head >= 0 && head < (float)len && head == floorf(head) && fill >= 0 && fill <= (float)len &&
				      fill == floorf(fill)))
					die_data(path, -1, "queue_positions", "entry %zu: head %g, fill %g: not positions in a ring "
						 "of %lld", k / 2 - 1, head, fill, (long long)len);
				a->slots[i].q_head[e] = (int32_t)head;
				a->slots[i].q_fill[e] = (int32_t)fill;
			}
		free(pos);
	}
	safetensors_close(st);
	adapter_to_device(a);
}
