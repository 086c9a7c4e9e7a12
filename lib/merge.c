// merge.c — adapters folded into checkpoints, PEFT exports, the attention-only split (merge.h).
#include "merge.h"

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_io.h"
#include "die.h"
#include "hf_specials.h"
#include "infile.h"
#include "model.h"
#include "outfile.h"
#include "safetensors.h"

int merge_slot_mergeable(const struct adapter_slot *s)
{
	return s->kind == SLOT_LORA || s->kind == SLOT_TASK;
}

void merge_slot_factors(const struct adapter *a, const struct adapter_slot *s, int task, float *A, float *B)
{
	int64_t R = (int64_t)s->n_exp * s->r;
	const real *pA = a->params + s->off_A, *pB = a->params + s->off_B;
	// A_all is already [A_1; …; A_N] (adapter.h)
	for (int64_t i = 0; i < R * s->d_in; i++)
		A[i] = (float)pA[i];
	// B_all = [B_1 … B_N], row stride R; column block e scaled by the expert's constant gate
	for (int e = 0; e < s->n_exp; e++) {
		real g = s->kind == SLOT_TASK ? a->task_gate[(size_t)task * a->cfg.experts + e] : 1;
		for (int64_t o = 0; o < s->d_out; o++)
			for (int j = 0; j < s->r; j++) {
				int64_t k = (int64_t)e * s->r + j;
				B[o * R + k] = (float)(g * pB[o * R + k]);
			}
	}
}

void merge_slot_apply(const struct adapter *a, const struct adapter_slot *s, int task, float *W)
{
	int64_t R = (int64_t)s->n_exp * s->r, D = s->d_in;
	float *A = xmalloc((size_t)(R * D) * sizeof(float));
	float *B = xmalloc((size_t)(s->d_out * R) * sizeof(float));
	merge_slot_factors(a, s, task, A, B);
	// W' = W + scale·B·A with the sum in double (products of two floats are exact) and one rounding to fp32:
	// the merged weight is the nearest float whatever the thread count, so a merge is reproducible byte for
	// byte.  Rows are independent, so the threads split them.
#pragma omp parallel
	{
		double *row = xmalloc((size_t)D * sizeof(double));
#pragma omp for
		for (int64_t o = 0; o < s->d_out; o++) {
			for (int64_t c = 0; c < D; c++)
				row[c] = 0;
			for (int64_t k = 0; k < R; k++) {
				double b = B[o * R + k];
				const float *ak = A + k * D;
				for (int64_t c = 0; c < D; c++)
					row[c] += b * ak[c];
			}
			for (int64_t c = 0; c < D; c++)
				W[o * D + c] = (float)(W[o * D + c] + (double)s->scale * row[c]);
		}
		free(row);
	}
	free(A);
	free(B);
}

int merge_parse_size(const char *s, uint64_t *bytes)
{
	char *end;
	if (!isdigit((unsigned char)*s))
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	static const struct { const char *unit; uint64_t mul; } units[] = {
		{"", 1}, {"B", 1}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}, {"KiB", 1024},
		{"MiB", 1024 * 1024}, {"GiB", 1024 * 1024 * 1024}};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(end, units[i].unit) == 0) {
			if (v == 0 || v > UINT64_MAX / units[i].mul)
				return -1;
			*bytes = v * units[i].mul;
			return 0;
		}
	return -1;
}

// ----------------------------------------------------------------------------
// the base: its geometry and identity without loading the weights (an 8B base would not fit in fp32)

static struct model *base_shell(const char *dir)
{
	struct model *m = xcalloc(1, sizeof *m);
	char *path = xasprintf("%s/config.json", dir);
	model_config_load(&m->cfg, path);
	free(path);
	m->dir = xstrdup(dir);
	path = xasprintf("%s/tokenizer.json", dir);
	uint64_t size;
	if (access(path, R_OK) == 0 && infile_sha256(path, m->tokenizer_sha256, &size) != 0)
		die_errno("%s", path);
	free(path);
	return m;
}

static void slot_tensor_name(char *buf, size_t n, int l, int t)
{
	snprintf(buf, n, "model.layers.%d.%s.%s.weight", l, t < TGT_GATE ? "self_attn" : "mlp",
		 adapter_target_name((enum adapter_target)t));
}

// ----------------------------------------------------------------------------
// file helpers

static void write_json(const json_t *root, const char *path)
{
	struct outfile *out = outfile_open(path);
	if (json_dumpf(root, out->fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) != 0)
		die_errno("%s", path);
	fputc('\n', out->fp);
	outfile_commit(out);
}

static void copy_file(const char *from, const char *to)
{
	FILE *in = infile_fopen(from);   // regular files only (a FIFO in the base directory would block)
	if (!in)
		die_errno("%s", from);
	struct outfile *out = outfile_open(to);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, out->fp) != n)
			die_errno("%s", to);
	if (ferror(in))
		die_errno("%s", from);
	fclose(in);
	outfile_commit(out);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

// The base's other files (tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json,
// vocab/merges, chat templates, licence…): every regular file that is neither a weight file nor config.json.
static void copy_base_files(const char *base, const char *dir)
{
	static const char *const skip_suffix[] = {".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack",
						  ".gguf", ".ckpt", ".ot", ".index.json"};
	DIR *d = opendir(base);
	if (!d)
		die_errno("%s", base);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "config.json") == 0)
			continue;
		int skip = 0;
		for (size_t i = 0; i < sizeof skip_suffix / sizeof skip_suffix[0]; i++)
			skip |= ends_with(e->d_name, skip_suffix[i]);
		char *from = xasprintf("%s/%s", base, e->d_name);
		struct stat st;
		if (!skip && stat(from, &st) == 0 && S_ISREG(st.st_mode)) {
			char *to = xasprintf("%s/%s", dir, e->d_name);
			copy_file(from, to);
			free(to);
		}
		free(from);
	}
	closedir(d);
}

// ----------------------------------------------------------------------------
// the merged checkpoint

struct merge_job {
	const struct merge_opts *o;
	struct model *base;
	struct safetensors *st;
	struct adapter *a;
	json_t *acfg;             // the run's adapter_config.json
	char base_sha[65];
};

// A base without tokenizer_config.json or generation_config.json (from an older init-base, or a bare export)
// gets them written from its tokenizer.json, and the special-token ids its config.json lacks filled in, so the
// merged checkpoint loads and generates in transformers and lm-eval with no extra arguments (hf_specials.h).
// Called after copy_base_files: what the base has is already in DIR and is kept as it is.
static void complete_hf_files(const struct merge_job *j, const char *dir, json_t *cfg)
{
	char *tok = xasprintf("%s/tokenizer.json", j->o->base);
	if (access(tok, R_OK) == 0) {
		struct hf_specials s;
		hf_specials_load(&s, tok);
		hf_config_set_specials(cfg, &s, 1);
		char *path = xasprintf("%s/tokenizer_config.json", dir);
		if (access(path, F_OK) != 0)
			hf_write_tokenizer_config(path, &s, j->base->cfg.max_positions);
		free(path);
		path = xasprintf("%s/generation_config.json", dir);
		if (access(path, F_OK) != 0)
			hf_write_generation_config(path, &s);
		free(path);
		hf_specials_free(&s);
	}
	free(tok);
}

// config.json of the merged checkpoint: the base's, plus where it came from.  Returns its sha256 in SHA.
static void write_merged_config(const struct merge_job *j, const char *dir, const char *task, char sha[65])
{
	char *path = xasprintf("%s/config.json", j->o->base);
	json_error_t err;
	json_t *cfg = infile_json(path, JSON_REJECT_DUPLICATES, INFILE_MAX_CONFIG, &err);
	if (!cfg)
		die_data(path, -1, NULL, "%s (line %d)", err.text, err.line);
	free(path);
	json_t *prov = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b}", "base", j->o->base, "base_config_sha256", j->base_sha,
				 "adapter", j->o->run, "method", adapter_method_name(j->a->cfg.method), "task",
				 task ? json_string(task) : json_null(), "attention_only", j->o->attention_only);
	json_object_set_new(cfg, "medmoe_merged", prov);
	complete_hf_files(j, dir, cfg);
	path = xasprintf("%s/config.json", dir);
	write_json(cfg, path);
	json_decref(cfg);
	if (!SHA256File(path, sha))
		die_errno("%s", path);
	free(path);
}

static void write_checkpoint(const struct merge_job *j, int task, const char *task_name, const char *dir,
			     char sha[65])
{
	const struct adapter *a = j->a;
	size_t n = safetensors_count(j->st);
	const struct st_tensor *first = safetensors_at(j->st, 0);
	// which tensors are adapted linears
	const struct adapter_slot **slot_of = xcalloc(n ? n : 1, sizeof *slot_of);
	for (int l = 0; l < a->n_layers; l++)
		for (int t = 0; t < N_TARGETS; t++) {
			const struct adapter_slot *s = &a->slots[l * N_TARGETS + t];
			if (!merge_slot_mergeable(s))
				continue;
			char name[160];
			slot_tensor_name(name, sizeof name, l, t);
			const struct st_tensor *w = safetensors_find(j->st, name);
			if (!w)
				die_data(j->o->base, -1, name, "tensor missing from the checkpoint");
			if (w->ndim != 2 || w->shape[0] != s->d_out || w->shape[1] != s->d_in)
				die_data(w->file, -1, name, "not (%lld, %lld) as the adapter expects", (long long)s->d_out,
					 (long long)s->d_in);
			slot_of[w - first] = s;
		}
	// shards: greedy in name order
	int *shard = xmalloc((n ? n : 1) * sizeof *shard);
	int n_shards = 0;
	uint64_t used = 0, total = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = safetensors_at(j->st, i)->nbytes;
		if (n_shards == 0 || (used > 0 && used + b > j->o->max_shard)) {
			n_shards++;
			used = 0;
		}
		used += b;
		total += b;
		shard[i] = n_shards - 1;
	}
	json_t *weight_map = json_object();
	size_t i = 0;
	for (int k = 0; k < n_shards; k++) {
		char *file = n_shards == 1 ? xstrdup("model.safetensors")
					   : xasprintf("model-%05d-of-%05d.safetensors", k + 1, n_shards);
		struct st_writer *w = st_writer_new();
		st_writer_metadata(w, "format", "pt");
		size_t begin = i;
		float **bufs = xcalloc(n, sizeof *bufs);
		for (; i < n && shard[i] == k; i++) {
			const struct st_tensor *t = safetensors_at(j->st, i);
			bufs[i] = xmalloc((size_t)(t->nelem ? t->nelem : 1) * sizeof(float));
			st_tensor_to_f32(t, bufs[i]);   // exact for F32, F16, BF16: unmerged tensors round-trip bit for bit
			if (slot_of[i])
				merge_slot_apply(a, slot_of[i], task, bufs[i]);
			st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, bufs[i]);
			json_object_set_new(weight_map, t->name, json_string(file));
		}
		char *path = xasprintf("%s/%s", dir, file);
		st_writer_write(w, path);
		for (size_t q = begin; q < i; q++)
			free(bufs[q]);
		free(bufs);
		free(path);
		free(file);
	}
	if (n_shards > 1) {
		json_t *index = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "weight_map",
					  weight_map);
		char *path = xasprintf("%s/model.safetensors.index.json", dir);
		write_json(index, path);
		free(path);
		json_decref(index);
	} else {
		json_decref(weight_map);
	}
	free(shard);
	free(slot_of);
	copy_base_files(j->o->base, dir);
	write_merged_config(j, dir, task_name, sha);
}

// ----------------------------------------------------------------------------
// PEFT export

static void write_peft(const struct merge_job *j, int task, const char *dir)
{
	const struct adapter *a = j->a;
	const struct adapter_config *c = &a->cfg;
	struct st_writer *w = st_writer_new();
	st_writer_metadata(w, "format", "pt");
	float **bufs = xcalloc((size_t)a->n_layers * N_TARGETS * 2, sizeof *bufs);
	unsigned targets = 0;
	int R = 0;
	for (int l = 0; l < a->n_layers; l++)
		for (int t = 0; t < N_TARGETS; t++) {
			const struct adapter_slot *s = &a->slots[l * N_TARGETS + t];
			if (!merge_slot_mergeable(s))
				continue;
			R = s->n_exp * s->r;
			targets |= 1u << t;
			float **AB = bufs + 2 * (l * N_TARGETS + t);
			AB[0] = xmalloc((size_t)(R * s->d_in) * sizeof(float));
			AB[1] = xmalloc((size_t)(s->d_out * R) * sizeof(float));
			merge_slot_factors(a, s, task, AB[0], AB[1]);
			char base[160], name[200];
			slot_tensor_name(base, sizeof base, l, t);
			base[strlen(base) - strlen(".weight")] = 0;
			int64_t shA[2] = {R, s->d_in}, shB[2] = {s->d_out, R};
			snprintf(name, sizeof name, "base_model.model.%s.lora_A.weight", base);
			st_writer_add(w, name, ST_F32, 2, shA, AB[0]);
			snprintf(name, sizeof name, "base_model.model.%s.lora_B.weight", base);
			st_writer_add(w, name, ST_F32, 2, shB, AB[1]);
		}
	char *path = xasprintf("%s/adapter_model.safetensors", dir);
	st_writer_write(w, path);
	free(path);
	for (int i = 0; i < a->n_layers * N_TARGETS * 2; i++)
		free(bufs[i]);
	free(bufs);

	// LoraConfig (research/engineering.md §4.2): r is the concatenated rank R and lora_alpha our α, so
	// PEFT's α/R (or α/√R) equals our s, whose r is the total rank too (adapter.c).
	json_t *tm = json_array();
	for (int t = 0; t < N_TARGETS; t++)
		if (targets & (1u << t))
			json_array_append_new(tm, json_string(adapter_target_name((enum adapter_target)t)));
	json_t *root = json_pack("{s:s, s:s, s:s, s:b, s:i, s:f, s:f, s:o, s:b, s:s, s:b, s:b}", "peft_type", "LORA",
				 "task_type", "CAUSAL_LM", "base_model_name_or_path", j->o->base, "inference_mode", 1,
				 "r", R, "lora_alpha", c->alpha, "lora_dropout", 0.0, "target_modules", tm,
				 "use_rslora", c->rslora, "bias", "none", "fan_in_fan_out", 0, "use_dora", 0);
	path = xasprintf("%s/adapter_config.json", dir);
	write_json(root, path);
	free(path);
	json_decref(root);
}

// ----------------------------------------------------------------------------
// the experts-only adapter of the attention-only split

static void write_experts(const struct merge_job *j, const char *dir, const char *model_path,
			  const char *model_sha)
{
	const struct adapter *a = j->a;
	struct adapter_config c = a->cfg;
	c.targets = 0;
	for (int t = 0; t < N_TARGETS; t++)
		if (a->slots[t].kind == SLOT_ROUTED)
			c.targets |= 1u << t;
	struct adapter *e = adapter_new(&c, a->n_layers, a->dims);
	struct adapter_tensor *from, *to;
	size_t nf = adapter_tensors(a, &from), nt = adapter_tensors(e, &to);
	size_t k = 0;
	for (size_t i = 0; i < nt; i++) {
		while (k < nf && strcmp(from[k].name, to[i].name) != 0)
			k++;
		if (k == nf)
			die(EXIT_FAIL, "experts adapter: %s has no source tensor", to[i].name);
		float *buf = xmalloc((size_t)(to[i].shape[0] * to[i].shape[1]) * sizeof(float));
		adapter_tensor_get(&from[k], a->params, buf);
		adapter_tensor_set(&to[i], e->params, buf);
		free(buf);
	}
	free(from);
	free(to);
	char *path = xasprintf("%s/adapter.safetensors", dir);
	adapter_save_tensors(e, path);
	free(path);
	// the same config as the run's (task table, training) with the merged checkpoint as its base
	json_t *root = adapter_config_json(e, j->base, json_object_get(j->acfg, "tasks"),
					   json_object_get(j->acfg, "training"));
	json_t *base = json_object_get(root, "base");
	json_object_set_new(base, "path", json_string(model_path));
	json_object_set_new(base, "config_sha256", json_string(model_sha));
	json_object_set_new(root, "merged_from", json_pack("{s:s, s:s}", "adapter", j->o->run, "base", j->o->base));
	path = xasprintf("%s/adapter_config.json", dir);
	adapter_config_write(root, path);
	free(path);
	json_decref(root);
	adapter_free(e);
}

// ----------------------------------------------------------------------------
// the whole run

static const char *task_name_of(const json_t *tasks, int id)
{
	size_t i;
	const json_t *t;
	json_array_foreach(tasks, i, t)
		if (json_integer_value(json_object_get(t, "id")) == id)
			return json_string_value(json_object_get(t, "name"));
	return NULL;
}

static int find_task(const struct merge_job *j, const char *name)
{
	const json_t *tasks = json_object_get(j->acfg, "tasks"), *t;
	size_t i, len = 0;
	json_array_foreach(tasks, i, t) {
		const char *n = json_string_value(json_object_get(t, "name"));
		if (n && strcmp(n, name) == 0)
			return (int)json_integer_value(json_object_get(t, "id"));
	}
	char known[1024] = "";
	json_array_foreach(tasks, i, t) {
		const char *n = json_string_value(json_object_get(t, "name"));
		if (n && len < sizeof known)
			len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", len ? ", " : "", n);
	}
	char *path = xasprintf("%s/adapter_config.json", j->o->run);
	die_data(path, -1, "tasks", "no task named %s; the adapter knows: %s", name, known[0] ? known : "(none)");
}

// The path a directory will have once OUT is committed (for the provenance a reader sees).
static char *final_path(const struct merge_opts *o, const char *sub)
{
	return sub ? xasprintf("%s/%s", o->out, sub) : xstrdup(o->out);
}

void merge_run(const struct merge_opts *o)
{
	struct merge_job j = {.o = o};
	j.base = base_shell(o->base);
	adapter_base_config_sha256(j.base, j.base_sha);
	j.acfg = adapter_config_read(o->run);
	j.a = adapter_load(o->run, j.base);   // refuses another base, a damaged file (exit 65)
	struct adapter *a = j.a;
	const struct adapter_config *c = &a->cfg;
	char *cfg_path = xasprintf("%s/adapter_config.json", o->run);

	int routed = 0;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++)
		routed |= a->slots[i].kind == SLOT_ROUTED;
	if (c->method == ADAPTER_MOELORA) {
		if (!o->task && !o->all_tasks)
			die(EXIT_USAGE, "%s: moelora merges one task's gate-weighted mixture: give --task NAME or --all-tasks",
			    o->run);
		adapter_begin(a, 1, NULL, 0);   // computes every task's gate weights
	} else if (o->task || o->all_tasks) {
		die(EXIT_USAGE, "%s: --task and --all-tasks apply to moelora adapters, not %s", o->run,
		    adapter_method_name(c->method));
	}
	if (routed && !o->attention_only)
		die_data(cfg_path, -1, "method",
			 "%s routes each token to its own top-%d experts, so the expert mixture is not one weight matrix "
			 "and cannot be merged exactly; --attention-only writes the merged attention LoRA (OUT/model) "
			 "and the routed experts as an adapter for it (OUT/experts)",
			 adapter_method_name(c->method), c->top_k);
	if (o->attention_only && !routed)
		die(EXIT_USAGE, "%s: --attention-only is for adapters with routed experts (mingmoe, sparsedoctor)", o->run);
	if (o->attention_only && o->peft)
		die(EXIT_USAGE, "--peft: routed experts have no PEFT LoRA form; use --attention-only without --peft");
	int task = o->task ? find_task(&j, o->task) : 0;
	const json_t *tasks = json_object_get(j.acfg, "tasks");
	if (o->all_tasks)
		for (int k = 0; k < c->n_tasks; k++) {
			const char *n = task_name_of(tasks, k);
			if (!n || !*n || strchr(n, '/') || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
				die_data(cfg_path, -1, "tasks", "task %d has no name usable as a directory", k);
		}

	j.st = safetensors_open(o->base);
	struct outdir *out = outdir_open(o->out, o->force);
	char sha[65];
	if (o->all_tasks) {
		for (int k = 0; k < c->n_tasks; k++) {
			const char *n = task_name_of(tasks, k);
			char *dir = xasprintf("%s/%s", out->tmp_path, n);
			if (mkdir(dir, 0777) != 0)
				die_errno("%s", dir);
			if (o->peft)
				write_peft(&j, k, dir);
			else
				write_checkpoint(&j, k, n, dir, sha);
			free(dir);
		}
	} else if (o->attention_only) {
		char *mdir = xasprintf("%s/model", out->tmp_path), *edir = xasprintf("%s/experts", out->tmp_path);
		if (mkdir(mdir, 0777) != 0 || mkdir(edir, 0777) != 0)
			die_errno("%s", out->tmp_path);
		write_checkpoint(&j, 0, NULL, mdir, sha);
		char *model_path = final_path(o, "model");
		write_experts(&j, edir, model_path, sha);
		free(model_path);
		free(mdir);
		free(edir);
	} else if (o->peft) {
		write_peft(&j, task, out->tmp_path);
	} else {
		write_checkpoint(&j, task, o->task, out->tmp_path, sha);
	}
	outdir_commit(out);
	safetensors_close(j.st);
	adapter_free(a);
	json_decref(j.acfg);
	model_free(j.base);
	free(cfg_path);
}
