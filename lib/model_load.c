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

#define N_WEIGHTS 18

// Fill sizes[] (in floats) in struct order; 0 for tensors the architecture lacks.
static void weight_sizes(const struct model_config *c, size_t sizes[N_WEIGHTS])
{
	size_t L = (size_t)c->n_layers, C = (size_t)c->hidden, V = (size_t)c->vocab, F = (size_t)c->ffn;
	size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
	size_t s[N_WEIGHTS] = {
		V * C,                          // wte
		L * C,                          // ln1
		L * QD * C, c->qkv_bias ? L * QD : 0,
		L * KD * C, c->qkv_bias ? L * KD : 0,
		L * KD * C, c->qkv_bias ? L * KD : 0,
		L * C * QD, c->o_bias ? L * C : 0,
		c->qk_norm ? L * c->head_dim : 0, c->qk_norm ? L * c->head_dim : 0,
		L * C,                          // ln2
		L * F * C, L * F * C, L * C * F,
		C,                              // ln_f
		c->tie_embeddings ? 0 : V * C,  // lm_head
	};
	memcpy(sizes, s, sizeof s);
}

static void weight_ptrs(struct model_weights *w, real **ptrs[N_WEIGHTS])
{
	real **p[N_WEIGHTS] = {&w->wte, &w->ln1, &w->wq, &w->bq, &w->wk, &w->bk, &w->wv, &w->bv, &w->wo,
				&w->bo, &w->q_norm, &w->k_norm, &w->ln2, &w->w_gate, &w->w_up, &w->w_down,
				&w->ln_f, &w->lm_head};
	memcpy(ptrs, p, sizeof p);
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t used = (size_t)snprintf(buf, n, "[");
	for (int d = 0; d < ndim && used < n; d++)
		used += (size_t)snprintf(buf + used, n - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
	if (used < n)
		snprintf(buf + used, n - used, "]");
}

// Copy tensor NAME (shape d0[,d1]) into DST as fp32, or die naming what is wrong.
static void load_tensor(const struct safetensors *st, const char *dir, const char *name, real *dst, int ndim,
			int64_t d0, int64_t d1)
{
	const struct st_tensor *t = safetensors_find(st, name);
	if (!t)
		die_data(dir, -1, name, "tensor missing from the checkpoint");
	int64_t want[2] = {d0, d1};
	int same = t->ndim == ndim;
	for (int d = 0; same && d < ndim; d++)
		same = t->shape[d] == want[d];
	if (!same) {
		char got[128], exp[128];
		format_shape(got, sizeof got, t->ndim, t->shape);
		format_shape(exp, sizeof exp, ndim, want);
		die_data(t->file, -1, name, "shape %s, expected %s", got, exp);
	}
#ifdef MEDMOE_DOUBLE
	float *tmp = xmalloc((size_t)t->nelem * sizeof(float));
	st_tensor_to_f32(t, tmp);
	st_require_finite(t, tmp);   // a NaN weight is a damaged checkpoint (exit 65 naming the tensor)
	for (int64_t i = 0; i < t->nelem; i++)
		dst[i] = tmp[i];
	free(tmp);
#else
	st_tensor_to_f32(t, dst);
	st_require_finite(t, dst);   // a NaN weight is a damaged checkpoint (exit 65 naming the tensor)
#endif
}

// One allocation for every weight (zeroed), pointers carved in struct order.
static void alloc_weights(struct model *m)
{
	const struct model_config *c = &m->cfg;
	size_t sizes[N_WEIGHTS], total = 0;
	real **ptrs[N_WEIGHTS];
	weight_sizes(c, sizes);
	weight_ptrs(&m->w, ptrs);
	for (int i = 0; i < N_WEIGHTS; i++)
		total += sizes[i];
	m->weights_mem = xcalloc(total, sizeof(real));
	real *p = m->weights_mem;
	for (int i = 0; i < N_WEIGHTS; i++) {
		*ptrs[i] = sizes[i] ? p : NULL;
		p += sizes[i];
	}
	if (c->tie_embeddings)
		m->w.lm_head = m->w.wte;
}

struct model *model_new(const struct model_config *cfg)
{
	struct model *m = xcalloc(1, sizeof *m);
	m->cfg = *cfg;
	m->dir = xstrdup("(in memory)");
	alloc_weights(m);
	m->inv_freq = xmalloc((size_t)m->cfg.head_dim / 2 * sizeof(real));
	float *f = xmalloc((size_t)m->cfg.head_dim / 2 * sizeof(float));
	model_config_rope_inv_freq(&m->cfg, f);
	for (int i = 0; i < m->cfg.head_dim / 2; i++)
		m->inv_freq[i] = f[i];
	free(f);
	return m;
}

static void load_weights(struct model *m, const struct safetensors *st)
{
	const struct model_config *c = &m->cfg;
	alloc_weights(m);
	struct model_weights *w = &m->w;
	int64_t C = c->hidden, F = c->ffn, V = c->vocab, HD = c->head_dim;
	int64_t QD = (int64_t)c->n_heads * HD, KD = (int64_t)c->n_kv_heads * HD;
	const char *dir = m->dir;
	load_tensor(st, dir, "model.embed_tokens.weight", w->wte, 2, V, C);
	load_tensor(st, dir, "model.norm.weight", w->ln_f, 1, C, 0);
	if (!c->tie_embeddings)
		load_tensor(st, dir, "lm_head.weight", w->lm_head, 2, V, C);
	char name[128];
#define LAYER(field, suffix, ndim, d0, d1, size)                                                   \
	do {                                                                                        \
		snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);                       \
		load_tensor(st, dir, name, w->field + (size_t)l * (size), ndim, d0, d1);            \
	} while (0)
	for (int l = 0; l < c->n_layers; l++) {
		LAYER(ln1, "input_layernorm.weight", 1, C, 0, C);
		LAYER(wq, "self_attn.q_proj.weight", 2, QD, C, QD * C);
		LAYER(wk, "self_attn.k_proj.weight", 2, KD, C, KD * C);
		LAYER(wv, "self_attn.v_proj.weight", 2, KD, C, KD * C);
		LAYER(wo, "self_attn.o_proj.weight", 2, C, QD, C * QD);
		if (c->qkv_bias) {
			LAYER(bq, "self_attn.q_proj.bias", 1, QD, 0, QD);
			LAYER(bk, "self_attn.k_proj.bias", 1, KD, 0, KD);
			LAYER(bv, "self_attn.v_proj.bias", 1, KD, 0, KD);
		}
		if (c->o_bias)
			LAYER(bo, "self_attn.o_proj.bias", 1, C, 0, C);
		if (c->qk_norm) {
			LAYER(q_norm, "self_attn.q_norm.weight", 1, HD, 0, HD);
			LAYER(k_norm, "self_attn.k_norm.weight", 1, HD, 0, HD);
		}
		LAYER(ln2, "post_attention_layernorm.weight", 1, C, 0, C);
		LAYER(w_gate, "mlp.gate_proj.weight", 2, F, C, F * C);
		LAYER(w_up, "mlp.up_proj.weight", 2, F, C, F * C);
		LAYER(w_down, "mlp.down_proj.weight", 2, C, F, C * F);
	}
#undef LAYER
}

struct model *model_load(const char *dir)
{
	struct model *m = xcalloc(1, sizeof *m);
	m->dir = xstrdup(dir);
	char *config_path = xasprintf("%s/config.json", dir);
	if (access(config_path, R_OK) != 0)
		die_errno("%s", config_path);
	model_config_load(&m->cfg, config_path);
	free(config_path);

	struct safetensors *st = safetensors_open(dir);
	model_config_check_fits(&m->cfg, safetensors_total_elems(st), dir);   // before the weights are allocated
	load_weights(m, st);
	safetensors_close(st);

	m->inv_freq = xmalloc((size_t)m->cfg.head_dim / 2 * sizeof(real));
	float *f = xmalloc((size_t)m->cfg.head_dim / 2 * sizeof(float));
	model_config_rope_inv_freq(&m->cfg, f);
	for (int i = 0; i < m->cfg.head_dim / 2; i++)
		m->inv_freq[i] = f[i];
	free(f);

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
	free(m->weights_mem);
	free(m->acts.mem);
	free(m->acts.imem);
	free(m->inv_freq);
	free(m->dir);
	model_train_free(m);
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

