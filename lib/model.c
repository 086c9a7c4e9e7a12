// model.c — running a loaded model forward: packed documents (model_forward) and incremental decoding
// (model_decode).  Loading is in model_load.c.
#include "model.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "die.h"
#include "model_internal.h"
#include "ops.h"


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
