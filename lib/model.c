// model.c — loading a Hugging Face LLaMA/Qwen checkpoint and running it forward on CPU.
#include "model.h"

#include <omp.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapter.h"
#include "die.h"
#include "model_internal.h"
#include "ops.h"
#include "safetensors.h"
#include "stream.h"


// ----------------------------------------------------------------------------
// weights: sizes, one allocation, loading

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
	for (int64_t i = 0; i < t->nelem; i++)
		dst[i] = tmp[i];
	free(tmp);
#else
	st_tensor_to_f32(t, dst);
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
	if (access(tok_path, R_OK) == 0 && !SHA256File(tok_path, m->tokenizer_sha256))
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

// ----------------------------------------------------------------------------
// activations

void model_ensure_acts(struct model *m, int64_t T)
{
	struct model_acts *a = &m->acts;
	if (T <= a->cap && a->att_threads >= omp_get_max_threads())
		return;
	const struct model_config *c = &m->cfg;
	size_t C = (size_t)c->hidden, F = (size_t)c->ffn, NH = (size_t)c->n_heads;
	size_t QD = NH * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim, N = (size_t)T;
	size_t sizes[] = {N * C, N * C, N * QD, N * KD, N * KD, N * QD, N * F, N * F, N * C, NH * N, N * NH,
			  N * C, N, N, (size_t)CE_TB * CE_VC, (size_t)omp_get_max_threads() * ATT_QB * N};
	real **ptrs[] = {&a->x, &a->xn, &a->q, &a->k, &a->v, &a->att, &a->gate, &a->up, &a->proj, &a->att_lse,
			  &a->rstd, &a->x_sel, &a->losses, &a->lse, &a->ce_tile, &a->att_scores};
	size_t total = 0;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		total += sizes[i];
	free(a->mem);
	free(a->imem);
	a->mem = xmalloc(total * sizeof(real));
	real *p = a->mem;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		*ptrs[i] = p;
		p += sizes[i];
	}
	a->imem = xmalloc(2 * N * sizeof(int32_t));
	a->positions = a->imem;
	a->targets = a->imem + N;
	a->cap = T;
	a->att_threads = omp_get_max_threads();
}

// ----------------------------------------------------------------------------
// forward

// A base linear, then its adapter when one is attached: out = inp·Wᵀ + b (+ s Σ g B A inp).
static void linear_forward(struct model *m, int l, enum adapter_target tgt, struct tensor out, struct tensor inp,
			   struct tensor weight, struct tensor bias)
{
	matmul_forward(out, inp, weight, bias);
	if (m->adapter)
		adapter_linear_forward(m->adapter, l, tgt, out, inp);
}

void model_layer_buf_infer(struct model *m, struct layer_buf *b)
{
	struct model_acts *a = &m->acts;
	*b = (struct layer_buf){.rstd1 = a->rstd, .xn1 = a->xn, .q_pre = a->q, .rstd_q = a->rstd, .k_pre = NULL,
				.rstd_k = a->rstd, .q = a->q, .att = a->att, .att_lse = a->att_lse, .rstd2 = a->rstd,
				.xn2 = a->xn, .gate_pre = a->gate, .up = a->up, .h = a->gate, .proj = a->proj};
}

// One decoder layer over the T tokens of the residual stream x (updated in place).  Their keys and values are
// written to k_all/v_all at rows q_offset..q_offset+T−1; attention then reads Tk = q_offset + T rows of
// k_all/v_all, through matrix products when att_scratch is given (a packed forward), key by key when it is NONE
// (decoding).  B says where the intermediate values go: the shared scratch for inference (later values overwrite
// earlier ones), or one set per layer that training keeps for backward (model_train.c).  b->k_pre NULL: the k
// projection is written straight into k_all.
void model_layer_forward(struct model *m, int l, int64_t T, real *xres, const struct layer_buf *b, real *k_all,
			 real *v_all, int64_t q_offset, const int32_t *doc_offsets, int n_docs,
			 struct tensor att_scratch)
{
	const struct model_config *c = &m->cfg;
	const struct model_weights *w = &m->w;
	struct model_acts *a = &m->acts;
	int64_t C = c->hidden, F = c->ffn, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
	int64_t QD = NH * HD, KD = NKV * HD, Tk = q_offset + T;
	real *k_new = k_all + q_offset * KD, *v_new = v_all + q_offset * KD;
	real *k_pre = b->k_pre ? b->k_pre : k_new;
#define BIAS(ptr, n) ((ptr) ? tensor1((ptr) + l * (n), (n)) : TENSOR_NONE)
	struct tensor x = tensor2(xres, T, C), xn1 = tensor2(b->xn1, T, C), proj = tensor2(b->proj, T, C);
	struct tensor q = tensor3(b->q, T, NH, HD), k = tensor3(k_new, T, NKV, HD), v = tensor3(v_new, T, NKV, HD);
	struct tensor inv_freq = tensor1(m->inv_freq, HD / 2);

	if (b->x_in && b->x_in != xres)
		memcpy(b->x_in, xres, (size_t)(T * C) * sizeof(real));
	// attention block
	rmsnorm_forward(xn1, tensor1(b->rstd1, T), x, tensor1(w->ln1 + l * C, C), c->rms_eps);
	linear_forward(m, l, TGT_Q, tensor2(b->q_pre, T, QD), xn1, tensor2(w->wq + l * QD * C, QD, C), BIAS(w->bq, QD));
	linear_forward(m, l, TGT_K, tensor2(k_pre, T, KD), xn1, tensor2(w->wk + l * KD * C, KD, C), BIAS(w->bk, KD));
	linear_forward(m, l, TGT_V, tensor2(v.data, T, KD), xn1, tensor2(w->wv + l * KD * C, KD, C), BIAS(w->bv, KD));
	if (c->qk_norm) {
		// Qwen3: RMSNorm over each head's HD values, before RoPE
		rmsnorm_forward(tensor2(q.data, T * NH, HD), tensor1(b->rstd_q, T * NH), tensor2(b->q_pre, T * NH, HD),
				tensor1(w->q_norm + l * HD, HD), c->rms_eps);
		rmsnorm_forward(tensor2(k.data, T * NKV, HD), tensor1(b->rstd_k, T * NKV), tensor2(k_pre, T * NKV, HD),
				tensor1(w->k_norm + l * HD, HD), c->rms_eps);
	}
	rope_forward(q, a->positions, inv_freq);
	rope_forward(k, a->positions, inv_freq);
	attention_forward(tensor3(b->att, T, NH, HD), tensor2(b->att_lse, NH, T), q, tensor3(k_all, Tk, NKV, HD),
			  tensor3(v_all, Tk, NKV, HD), doc_offsets, n_docs, q_offset, att_scratch);
	linear_forward(m, l, TGT_O, proj, tensor2(b->att, T, QD), tensor2(w->wo + l * C * QD, C, QD), BIAS(w->bo, C));
	residual_forward(x, x, proj);
	if (b->x_mid)
		memcpy(b->x_mid, xres, (size_t)(T * C) * sizeof(real));

	// MLP block: down(silu(gate(xn)) · up(xn))
	struct tensor xn2 = tensor2(b->xn2, T, C), gate = tensor2(b->gate_pre, T, F), up = tensor2(b->up, T, F);
	rmsnorm_forward(xn2, tensor1(b->rstd2, T), x, tensor1(w->ln2 + l * C, C), c->rms_eps);
	linear_forward(m, l, TGT_GATE, gate, xn2, tensor2(w->w_gate + l * F * C, F, C), TENSOR_NONE);
	linear_forward(m, l, TGT_UP, up, xn2, tensor2(w->w_up + l * F * C, F, C), TENSOR_NONE);
	swiglu_forward(tensor2(b->h, T, F), gate, up);
	linear_forward(m, l, TGT_DOWN, proj, tensor2(b->h, T, F), tensor2(w->w_down + l * C * F, C, F), TENSOR_NONE);
	residual_forward(x, x, proj);
#undef BIAS
}

static void check_ids(const struct model *m, const int32_t *ids, int64_t T)
{
	for (int64_t t = 0; t < T; t++)
		if (ids[t] < 0 || ids[t] >= m->cfg.vocab)
			die(EXIT_DATA, "token %lld: id %d is outside the model's vocabulary (%d)", (long long)t, ids[t],
			    m->cfg.vocab);
}

double model_forward(struct model *m, const int32_t *ids, int64_t T, const int32_t *doc_offsets, int n_docs,
		     const uint8_t *loss_mask, real *logits, int64_t *n_targets)
{
	const struct model_config *c = &m->cfg;
	int64_t C = c->hidden, V = c->vocab;
	check_ids(m, ids, T);
	if (n_docs < 1 || doc_offsets[0] != 0 || doc_offsets[n_docs] != T)
		die(EXIT_DATA, "document offsets must run from 0 to the %lld tokens", (long long)T);
	for (int d = 0; d < n_docs; d++)
		if (doc_offsets[d + 1] <= doc_offsets[d])
			die(EXIT_DATA, "document %d is empty or its offsets decrease", d);
	model_ensure_acts(m, T);
	struct model_acts *a = &m->acts;
	for (int d = 0; d < n_docs; d++)
		for (int32_t t = doc_offsets[d]; t < doc_offsets[d + 1]; t++)
			a->positions[t] = t - doc_offsets[d];

	if (m->adapter)
		adapter_begin(m->adapter, T, NULL), adapter_fill_task(m->adapter, m->adapter_task);
	struct layer_buf buf;
	model_layer_buf_infer(m, &buf);
	embedding_forward(tensor2(a->x, T, C), ids, tensor2(m->w.wte, V, C));
	for (int l = 0; l < c->n_layers; l++)
		model_layer_forward(m, l, T, a->x, &buf, a->k, a->v, 0, doc_offsets, n_docs,
				    tensor3(a->att_scores, a->att_threads, ATT_QB, T));
	struct tensor xn = tensor2(a->xn, T, C);
	rmsnorm_forward(xn, tensor1(a->rstd, T), tensor2(a->x, T, C), tensor1(m->w.ln_f, C), c->rms_eps);
	struct tensor lm_head = tensor2(m->w.lm_head, V, C);
	if (logits)
		matmul_forward(tensor2(logits, T, V), xn, lm_head, TENSOR_NONE);

	// Gather the positions whose next token is a target in the same document.
	int64_t M = 0;
	if (loss_mask) {
		for (int64_t t = 0; t + 1 < T; t++) {
			if (!loss_mask[t + 1] || a->positions[t + 1] == 0)
				continue;
			memcpy(a->x_sel + M * C, a->xn + t * C, (size_t)C * sizeof(real));
			a->targets[M++] = ids[t + 1];
		}
	}
	if (n_targets)
		*n_targets = M;
	if (M == 0)
		return 0.0;
	lmhead_ce_forward(tensor1(a->losses, M), tensor1(a->lse, M), tensor2(a->x_sel, M, C), lm_head, a->targets,
			  tensor2(a->ce_tile, CE_TB, CE_VC));
	double sum = 0.0;
	for (int64_t i = 0; i < M; i++)
		sum += a->losses[i];
	return sum / (double)M;
}

// ----------------------------------------------------------------------------
// KV cache and incremental decoding

struct kv_cache *kv_cache_new(const struct model *m, int64_t max_len)
{
	struct kv_cache *cache = xcalloc(1, sizeof *cache);
	size_t n = (size_t)m->cfg.n_layers * (size_t)max_len * (size_t)m->cfg.n_kv_heads * (size_t)m->cfg.head_dim;
	cache->max_len = max_len;
	cache->k = xmalloc(2 * n * sizeof(real));
	cache->v = cache->k + n;
	return cache;
}

void kv_cache_reset(struct kv_cache *cache) { cache->len = 0; }

void kv_cache_free(struct kv_cache *cache)
{
	if (!cache)
		return;
	free(cache->k);
	free(cache);
}

void model_decode(struct model *m, struct kv_cache *cache, const int32_t *ids, int64_t n, real *logits_last)
{
	const struct model_config *c = &m->cfg;
	int64_t C = c->hidden, V = c->vocab, KD = (int64_t)c->n_kv_heads * c->head_dim;
	if (n <= 0)
		return;
	if (cache->len + n > cache->max_len)
		die(EXIT_FAIL, "KV cache full: %lld cached + %lld new tokens > %lld", (long long)cache->len,
		    (long long)n, (long long)cache->max_len);
	check_ids(m, ids, n);
	model_ensure_acts(m, n);
	struct model_acts *a = &m->acts;
	for (int64_t i = 0; i < n; i++)
		a->positions[i] = (int32_t)(cache->len + i);
	int32_t doc_offsets[2] = {0, (int32_t)(cache->len + n)};   // one document: the whole cached sequence

	if (m->adapter)
		adapter_begin(m->adapter, n, NULL), adapter_fill_task(m->adapter, m->adapter_task);
	struct layer_buf buf;
	model_layer_buf_infer(m, &buf);
	embedding_forward(tensor2(a->x, n, C), ids, tensor2(m->w.wte, V, C));
	for (int l = 0; l < c->n_layers; l++) {
		size_t layer = (size_t)l * (size_t)cache->max_len * (size_t)KD;
		model_layer_forward(m, l, n, a->x, &buf, cache->k + layer, cache->v + layer, cache->len, doc_offsets, 1,
				    TENSOR_NONE);
	}
	cache->len += n;
	if (logits_last) {
		struct tensor last = tensor2(a->x + (n - 1) * C, 1, C), xn = tensor2(a->xn, 1, C);
		rmsnorm_forward(xn, tensor1(a->rstd, 1), last, tensor1(m->w.ln_f, C), c->rms_eps);
		matmul_forward(tensor2(logits_last, 1, V), xn, tensor2(m->w.lm_head, V, C), TENSOR_NONE);
	}
}

void model_set_adapter(struct model *m, struct adapter *a, int task_id)
{
	m->adapter = a;
	m->adapter_task = task_id;
}
