// model_load.c — a Hugging Face LLaMA/Qwen checkpoint directory into a struct model: config.json, the
// safetensors weights (every tensor checked by name and shape), the tokenizer's identity.
#include "model.h"

#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "infile.h"
#include "model_internal.h"
#include "ops.h"
#include "safetensors.h"
#include "stream.h"
#include "tensor_plan.h"

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t used = (size_t)snprintf(buf, n, "[");
	for (int d = 0; d < ndim && used < n; d++)
		used += (size_t)snprintf(buf + used, n - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
	if (used < n)
		snprintf(buf + used, n - used, "]");
}

// Every frozen tensor of the architecture: its name in the checkpoint, its shape, and where it goes.
struct weight_spec {
	char name[96];
	int ndim;
	int64_t d0, d1;
	struct tensor *dst;
};

static size_t weight_specs(struct model *m, struct weight_spec **out)
{
	const struct model_config *c = &m->cfg;
	int64_t C = c->hidden, F = c->ffn, V = c->vocab, HD = c->head_dim;
	int64_t QD = (int64_t)c->n_heads * HD, KD = (int64_t)c->n_kv_heads * HD;
	struct weight_spec *v = xcalloc((size_t)c->n_layers * 15 + 3, sizeof *v);
	size_t n = 0;
#define SPEC(field, nd, a, b, ...)                                                                   \
	do {                                                                                        \
		snprintf(v[n].name, sizeof v[n].name, __VA_ARGS__);                                 \
		v[n].ndim = nd, v[n].d0 = a, v[n].d1 = b, v[n].dst = &(field);                      \
		n++;                                                                                \
	} while (0)
	SPEC(m->w.wte, 2, V, C, "model.embed_tokens.weight");
	SPEC(m->w.ln_f, 1, C, 0, "model.norm.weight");
	if (!c->tie_embeddings)
		SPEC(m->w.lm_head, 2, V, C, "lm_head.weight");
	for (int l = 0; l < c->n_layers; l++) {
		struct layer_weights *w = &m->w.layers[l];
		SPEC(w->ln1, 1, C, 0, "model.layers.%d.input_layernorm.weight", l);
		SPEC(w->wq, 2, QD, C, "model.layers.%d.self_attn.q_proj.weight", l);
		SPEC(w->wk, 2, KD, C, "model.layers.%d.self_attn.k_proj.weight", l);
		SPEC(w->wv, 2, KD, C, "model.layers.%d.self_attn.v_proj.weight", l);
		SPEC(w->wo, 2, C, QD, "model.layers.%d.self_attn.o_proj.weight", l);
		if (c->qkv_bias) {
			SPEC(w->bq, 1, QD, 0, "model.layers.%d.self_attn.q_proj.bias", l);
			SPEC(w->bk, 1, KD, 0, "model.layers.%d.self_attn.k_proj.bias", l);
			SPEC(w->bv, 1, KD, 0, "model.layers.%d.self_attn.v_proj.bias", l);
		}
		if (c->o_bias)
			SPEC(w->bo, 1, C, 0, "model.layers.%d.self_attn.o_proj.bias", l);
		if (c->qk_norm) {
			SPEC(w->q_norm, 1, HD, 0, "model.layers.%d.self_attn.q_norm.weight", l);
			SPEC(w->k_norm, 1, HD, 0, "model.layers.%d.self_attn.k_norm.weight", l);
		}
		SPEC(w->ln2, 1, C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
		SPEC(w->w_gate, 2, F, C, "model.layers.%d.mlp.gate_proj.weight", l);
		SPEC(w->w_up, 2, F, C, "model.layers.%d.mlp.up_proj.weight", l);
		SPEC(w->w_down, 2, C, F, "model.layers.%d.mlp.down_proj.weight", l);
	}
#undef SPEC
	*out = v;
	return n;
}

static enum dtype dtype_of(enum st_dtype t)
{
	return t == ST_BF16 ? DTYPE_BF16 : t == ST_F16 ? DTYPE_F16 : DTYPE_F32;
}

// The checkpoint's tensor for SPEC, or die naming what is wrong (missing, or both shapes).
static const struct st_tensor *find_weight(const struct safetensors *st, const char *dir, const struct weight_spec *w)
{
	const struct st_tensor *t = safetensors_find(st, w->name);
	if (!t)
		die_data(dir, -1, w->name, "tensor missing from the checkpoint");
	int64_t want[2] = {w->d0, w->d1};
	int same = t->ndim == w->ndim;
	for (int d = 0; same && d < w->ndim; d++)
		same = t->shape[d] == want[d];
	if (!same) {
		char got[128], exp[128];
		format_shape(got, sizeof got, t->ndim, t->shape);
		format_shape(exp, sizeof exp, w->ndim, want);
		die_data(t->file, -1, w->name, "shape %s, expected %s", got, exp);
	}
	st_require_finite(t);   // a NaN weight is a damaged checkpoint (exit 65 naming the tensor)
	return t;
}

// The checkpoint's tensor as a CPU tensor of its stored dtype, in the mapping.
static struct tensor host_view(const struct st_tensor *t, const struct weight_spec *w)
{
	return tensor_of((void *)t->data, dtype_of(t->dtype), DEVICE_CPU, w->ndim, w->d0, w->ndim > 1 ? w->d1 : 1, 1, 1);
}

// CPU: every weight a view of the mapped files, in its stored dtype.  Another device: one allocation for all of
// them there, each copied (and converted to WEIGHT_DTYPE where asked) from the mapping.
static void place_weights(struct model *m, const struct model_options *opt)
{
	struct weight_spec *specs;
	size_t n = weight_specs(m, &specs);
	const struct st_tensor **found = xcalloc(n, sizeof *found);
	for (size_t i = 0; i < n; i++)
		found[i] = find_weight(m->st, m->dir, &specs[i]);
	if (m->device == DEVICE_CPU) {
		for (size_t i = 0; i < n; i++)
			*specs[i].dst = host_view(found[i], &specs[i]);
	} else {
		struct tensor_plan p;
		tensor_plan_begin(&p, m->device);
		for (size_t i = 0; i < n; i++) {
			enum dtype stored = dtype_of(found[i]->dtype);
			enum dtype dt = opt->weight_dtype_given ? opt->weight_dtype : stored == DTYPE_F32 ? DTYPE_BF16 : stored;
			tensor_plan_add(&p, specs[i].dst, dt, specs[i].ndim, specs[i].d0, specs[i].d1, 0);
		}
		m->weights_mem = tensor_plan_commit(&p);
		for (size_t i = 0; i < n; i++)
			tensor_copy(*specs[i].dst, host_view(found[i], &specs[i]));
		safetensors_close(m->st);   // everything is on the device now
		m->st = NULL;
	}
	if (m->cfg.tie_embeddings)
		m->w.lm_head = m->w.wte;
	free(found);
	free(specs);
}

// The device's view of the inverse RoPE frequencies, and the dtypes the forward computes in.
static void set_device(struct model *m, enum device device, enum dtype weights)
{
	m->device = device;
	m->act_dtype = device == DEVICE_CPU ? DTYPE_REAL : weights == DTYPE_F32 ? DTYPE_F32 : DTYPE_BF16;
	m->stat_dtype = device == DEVICE_CPU ? DTYPE_REAL : DTYPE_F32;
	int64_t half = m->cfg.head_dim / 2;
	float *f = xmalloc((size_t)half * sizeof(float));
	model_config_rope_inv_freq(&m->cfg, f);
	m->inv_freq = tensor_new(m->stat_dtype, device, 1, half, 1, 1);
	tensor_copy(m->inv_freq, tensor_of(f, DTYPE_F32, DEVICE_CPU, 1, half, 1, 1, 1));
	free(f);
}

struct model *model_new(const struct model_config *cfg)
{
	struct model *m = xcalloc(1, sizeof *m);
	m->cfg = *cfg;
	m->dir = xstrdup("(in memory)");
	m->w.layers = xcalloc((size_t)cfg->n_layers, sizeof *m->w.layers);
	struct weight_spec *specs;
	size_t n = weight_specs(m, &specs);
	struct tensor_plan p;
	tensor_plan_begin(&p, DEVICE_CPU);
	for (size_t i = 0; i < n; i++)
		tensor_plan_add(&p, specs[i].dst, DTYPE_REAL, specs[i].ndim, specs[i].d0, specs[i].d1, 0);
	m->weights_mem = tensor_plan_commit(&p);
	free(specs);
	if (cfg->tie_embeddings)
		m->w.lm_head = m->w.wte;
	set_device(m, DEVICE_CPU, DTYPE_REAL);
	return m;
}

struct model *model_load(const char *dir)
{
	struct model_options opt = {.device = DEVICE_CPU};
	return model_load_with(dir, &opt);
}

struct model *model_load_with(const char *dir, const struct model_options *opt)
{
	struct model *m = xcalloc(1, sizeof *m);
	m->dir = xstrdup(dir);
	char *config_path = xasprintf("%s/config.json", dir);
	if (access(config_path, R_OK) != 0)
		die_errno("%s", config_path);
	model_config_load(&m->cfg, config_path);
	free(config_path);
	m->w.layers = xcalloc((size_t)m->cfg.n_layers, sizeof *m->w.layers);

	m->st = safetensors_open(dir);
	model_config_check_fits(&m->cfg, safetensors_total_elems(m->st), dir);   // before anything is allocated
	m->device = opt->device;
	place_weights(m, opt);
	set_device(m, opt->device, opt->weight_dtype_given ? opt->weight_dtype : DTYPE_BF16);

	if (m->device == DEVICE_CPU)
		ops_cpu_check_blas();
	char *tok_path = xasprintf("%s/tokenizer.json", dir);
	uint64_t tok_size;
	if (access(tok_path, R_OK) == 0 && infile_sha256(tok_path, m->tokenizer_sha256, &tok_size) != 0)
		die_errno("%s", tok_path);
	free(tok_path);
	return m;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	ops_free(m->device, m->weights_mem);
	if (m->st)
		safetensors_close(m->st);
	ops_free(m->device, m->acts.mem);
	tensor_free(m->acts.logits_dev);
	free(m->acts.host_positions);
	tensor_free(m->inv_freq);
	free(m->w.layers);
	free(m->dir);
	free(m);
}

int model_check_tokenizer(const struct model *m, const char *sha256)
{
	return m->tokenizer_sha256[0] && strcmp(m->tokenizer_sha256, sha256) == 0 ? 0 : -1;
}

void model_require_stream(const struct model *m, const struct stream_reader *r)
{
	char sha256[65];
	uint32_t vocab_size;
	stream_tokenizer(r, sha256, &vocab_size);
	if (!m->tokenizer_sha256[0])
		die_data(m->dir, -1, "tokenizer.json", "missing, so stream %s cannot be checked against the model",
			 r->path);
	char *name = xasprintf("%s/tokenizer.json", m->dir);
	stream_require_tokenizer(r, m->tokenizer_sha256, name);
	free(name);
	if (vocab_size > (uint32_t)m->cfg.vocab)
		die_data(r->path, 0, "tokenizer.vocab_size", "%u ids, more than the model's vocabulary (%d)", vocab_size,
			 m->cfg.vocab);
}

