// model.c — running a loaded model forward: packed documents (model_forward) and incremental decoding
// (model_decode), the same layer code on every device.  Loading is in model_load.c.
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "die.h"
#include "model_internal.h"
#include "ops.h"
#include "tensor_plan.h"

// ----------------------------------------------------------------------------
// activations

void model_ensure_acts(struct model *m, int64_t T)
{
	struct model_acts *a = &m->acts;
	if (T <= a->cap)
		return;
	const struct model_config *c = &m->cfg;
	int64_t C = c->hidden, F = c->ffn, NH = c->n_heads;
	int64_t QD = NH * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
	enum dtype act = m->act_dtype, stat = m->stat_dtype;
	ops_free(m->device, a->mem);
	free(a->host_positions);
	struct tensor_plan p;
	tensor_plan_begin(&p, m->device);
	tensor_plan_add(&p, &a->x, act, 2, T, C, 0);
	tensor_plan_add(&p, &a->xn, act, 2, T, C, 0);
	tensor_plan_add(&p, &a->q, act, 2, T, QD, 0);
	tensor_plan_add(&p, &a->k, act, 2, T, KD, 0);
	tensor_plan_add(&p, &a->v, act, 2, T, KD, 0);
	tensor_plan_add(&p, &a->att, act, 2, T, QD, 0);
	tensor_plan_add(&p, &a->gate, act, 2, T, F, 0);
	tensor_plan_add(&p, &a->up, act, 2, T, F, 0);
	tensor_plan_add(&p, &a->proj, act, 2, T, C, 0);
	tensor_plan_add(&p, &a->x_sel, act, 2, T, C, 0);
	tensor_plan_add(&p, &a->att_lse, stat, 1, NH * T, 0, 0);
	tensor_plan_add(&p, &a->rstd, stat, 1, T * NH, 0, 0);
	tensor_plan_add(&p, &a->losses, stat, 1, T, 0, 0);
	tensor_plan_add(&p, &a->lse, stat, 1, T, 0, 0);
	tensor_plan_add(&p, &a->ids, DTYPE_I32, 1, T, 0, 0);
	tensor_plan_add(&p, &a->positions, DTYPE_I32, 1, T, 0, 0);
	tensor_plan_add(&p, &a->targets, DTYPE_I32, 1, T, 0, 0);
	tensor_plan_add(&p, &a->sel, DTYPE_I32, 1, T, 0, 0);
	tensor_plan_add(&p, &a->doc_offsets, DTYPE_I32, 1, T + 1, 0, 0);
	tensor_plan_add(&p, &a->kv_rows, DTYPE_I32, 1, T, 0, 0);
	a->mem = tensor_plan_commit(&p);
	a->host_positions = xmalloc(4 * (size_t)T * sizeof(int32_t));
	a->host_sel = a->host_positions + T;
	a->host_targets = a->host_sel + T;
	a->host_kv_rows = a->host_targets + T;
	a->cap = T;
}

// Host int32 values into the first N entries of the i32 tensor DST on the model's device.
static void upload_i32(struct tensor dst, const int32_t *host, int64_t n)
{
	tensor_copy(tensor_rows(dst, 0, n), tensor_i32((int32_t *)host, n));
}

// ----------------------------------------------------------------------------
// one layer

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
	*b = (struct layer_buf){.rstd1 = a->rstd, .xn1 = a->xn, .q_pre = a->q, .rstd_q = a->rstd, .rstd_k = a->rstd,
				.q = a->q, .att = a->att, .att_lse = a->att_lse, .rstd2 = a->rstd, .xn2 = a->xn,
				.gate_pre = a->gate, .up = a->up, .h = a->gate, .proj = a->proj, .k_all = a->k,
				.v_all = a->v};
}

// One decoder layer (model_internal.h).  Inference reuses one set of buffers for every layer (later values
// overwrite earlier ones); training keeps one set per layer for backward (model_train.c).  b->k_pre NONE: the k
// projection is written straight into the key rows (or, in a batched decoding step, into b->k_new).
void model_layer_forward(struct model *m, int l, int64_t T, struct tensor xres, const struct layer_buf *b,
			 int64_t q_offset, int n_docs)
{
	const struct model_config *c = &m->cfg;
	const struct layer_weights *w = &m->w.layers[l];
	struct model_acts *a = &m->acts;
	int batched = b->kv_rows.data != NULL;
	int64_t C = c->hidden, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
	int64_t Tk = batched ? b->k_all.dim[0] : q_offset + T;
	double eps = c->rms_eps;
	struct tensor x = tensor_reshape(xres, 2, T, C, 0), xn1 = rows_of(b->xn1, T), proj = rows_of(b->proj, T);
	struct tensor k_new = batched ? rows_of(b->k_new, T) : tensor_rows(b->k_all, q_offset, T);
	struct tensor v_new = batched ? rows_of(b->v_new, T) : tensor_rows(b->v_all, q_offset, T);
	struct tensor kv_rows = batched ? rows_of(b->kv_rows, T) : TENSOR_NONE;
	struct tensor q_pre = rows_of(b->q_pre, T), k_pre = b->k_pre.data ? rows_of(b->k_pre, T) : k_new;
	struct tensor q = tensor_reshape(rows_of(b->q, T), 3, T, NH, HD), k = tensor_reshape(k_new, 3, T, NKV, HD);
	struct tensor att = rows_of(b->att, T), positions = rows_of(a->positions, T);

	if (b->x_in.data && b->x_in.data != xres.data)
		tensor_copy(rows_of(b->x_in, T), x);
	// attention block
	rmsnorm_forward(xn1, rows_of(b->rstd1, T), x, w->ln1, eps);
	linear_forward(m, l, TGT_Q, q_pre, xn1, w->wq, w->bq);
	linear_forward(m, l, TGT_K, k_pre, xn1, w->wk, w->bk);
	linear_forward(m, l, TGT_V, v_new, xn1, w->wv, w->bv);
	if (c->qk_norm) {
		// Qwen3: RMSNorm over each head's HD values, before RoPE
		rmsnorm_forward(tensor_reshape(q, 2, T * NH, HD, 0), rows_of(b->rstd_q, T * NH),
				tensor_reshape(q_pre, 2, T * NH, HD, 0), w->q_norm, eps);
		rmsnorm_forward(tensor_reshape(k, 2, T * NKV, HD, 0), rows_of(b->rstd_k, T * NKV),
				tensor_reshape(k_pre, 2, T * NKV, HD, 0), w->k_norm, eps);
	}
	rope_forward(q, positions, m->inv_freq);
	rope_forward(k, positions, m->inv_freq);
	if (batched) {   // each token's key and value into its own slot's next row
		scatter_rows(b->k_all, k_new, kv_rows);
		scatter_rows(b->v_all, v_new, kv_rows);
	}
	attention_forward(tensor_reshape(att, 3, T, NH, HD), tensor_reshape(b->att_lse, 2, NH, T, 0), q,
			  tensor_reshape(rows_of(b->k_all, Tk), 3, Tk, NKV, HD),
			  tensor_reshape(rows_of(b->v_all, Tk), 3, Tk, NKV, HD), rows_of(a->doc_offsets, n_docs + 1),
			  kv_rows, n_docs, q_offset);
	linear_forward(m, l, TGT_O, proj, att, w->wo, w->bo);
	residual_forward(x, x, proj);
	if (b->x_mid.data)
		tensor_copy(rows_of(b->x_mid, T), x);

	// MLP block: down(silu(gate(xn)) · up(xn))
	struct tensor xn2 = rows_of(b->xn2, T), gate = rows_of(b->gate_pre, T), up = rows_of(b->up, T);
	struct tensor h = rows_of(b->h, T);
	rmsnorm_forward(xn2, rows_of(b->rstd2, T), x, w->ln2, eps);
	linear_forward(m, l, TGT_GATE, gate, xn2, w->w_gate, TENSOR_NONE);
	linear_forward(m, l, TGT_UP, up, xn2, w->w_up, TENSOR_NONE);
	swiglu_forward(h, gate, up);
	linear_forward(m, l, TGT_DOWN, proj, h, w->w_down, TENSOR_NONE);
	residual_forward(x, x, proj);
}

// ----------------------------------------------------------------------------
// the packed forward

static void check_ids(const struct model *m, const int32_t *ids, int64_t T)
{
	for (int64_t t = 0; t < T; t++)
		if (ids[t] < 0 || ids[t] >= m->cfg.vocab)
			die(EXIT_DATA, "token %lld: id %d is outside the model's vocabulary (%d)", (long long)t, ids[t],
			    m->cfg.vocab);
}

static void check_offsets(const int32_t *doc_offsets, int n_docs, int64_t T)
{
	if (T < 1 || n_docs < 1 || doc_offsets[0] != 0 || doc_offsets[n_docs] != T)
		die(EXIT_DATA, "document offsets must run from 0 to the %lld tokens", (long long)T);
	for (int d = 0; d < n_docs; d++)
		if (doc_offsets[d + 1] <= doc_offsets[d])
			die(EXIT_DATA, "document %d is empty or its offsets decrease", d);
}

// (T,V) logits of the final hidden states XN into the host array LOGITS (through a device buffer off the CPU).
static void logits_to_host(struct model *m, struct tensor xn, int64_t T, real *logits)
{
	int64_t V = m->cfg.vocab;
	struct tensor host = tensor2(logits, T, V);
	if (m->device == DEVICE_CPU) {
		matmul_forward(host, xn, m->w.lm_head, TENSOR_NONE);
		return;
	}
	if (T > OPS_ROWWISE_MAX_ROWS) {   // a whole forward's logits: a buffer for this call only
		struct tensor dev = tensor_new(m->stat_dtype, m->device, 2, T, V, 0);
		matmul_forward(dev, xn, m->w.lm_head, TENSOR_NONE);
		tensor_copy(host, dev);
		tensor_free(dev);
		return;
	}
	struct tensor *dev = &m->acts.logits_dev;   // decoding asks at every step: kept
	if (!dev->data)
		*dev = tensor_new(m->stat_dtype, m->device, 2, OPS_ROWWISE_MAX_ROWS, V, 0);
	matmul_forward(rows_of(*dev, T), xn, m->w.lm_head, TENSOR_NONE);
	tensor_copy(host, rows_of(*dev, T));
}

double model_forward_packed(struct model *m, const int32_t *ids, int64_t T, const int32_t *doc_offsets, int n_docs,
			    const int32_t *tok_task, const uint8_t *loss_mask, const struct forward_bufs *fb,
			    real *logits, int64_t *n_targets)
{
	const struct model_config *c = &m->cfg;
	check_offsets(doc_offsets, n_docs, T);
	check_ids(m, ids, T);
	model_ensure_acts(m, T);
	struct model_acts *a = &m->acts;
	for (int d = 0; d < n_docs; d++)
		for (int32_t t = doc_offsets[d]; t < doc_offsets[d + 1]; t++)
			a->host_positions[t] = t - doc_offsets[d];
	upload_i32(a->ids, ids, T);
	upload_i32(a->positions, a->host_positions, T);
	upload_i32(a->doc_offsets, doc_offsets, n_docs + 1);
	if (m->adapter)
		adapter_begin(m->adapter, T, tok_task, m->adapter_task);

	struct tensor xres = rows_of(fb->xres, T), xn_f = rows_of(fb->xn_f, T);
	gather_rows(xres, m->w.wte, rows_of(a->ids, T));   // the embedding lookup
	for (int l = 0; l < c->n_layers; l++)
		model_layer_forward(m, l, T, xres, fb->per_layer ? &fb->layers[l] : fb->layers, 0, n_docs);
	rmsnorm_forward(xn_f, rows_of(fb->rstd_f, T), xres, m->w.ln_f, c->rms_eps);
	if (logits)
		logits_to_host(m, xn_f, T, logits);

	// The positions whose next token is a target in the same document.
	int64_t M = 0;
	if (loss_mask) {
		for (int64_t t = 0; t + 1 < T; t++) {
			if (!loss_mask[t + 1] || a->host_positions[t + 1] == 0)
				continue;
			a->host_sel[M] = (int32_t)t;
			a->host_targets[M++] = ids[t + 1];
		}
	}
	if (n_targets)
		*n_targets = M;
	if (M == 0)
		return 0.0;
	upload_i32(a->sel, a->host_sel, M);
	upload_i32(a->targets, a->host_targets, M);
	gather_rows(rows_of(a->x_sel, M), xn_f, rows_of(a->sel, M));
	lmhead_ce_forward(rows_of(a->losses, M), rows_of(a->lse, M), rows_of(a->x_sel, M), m->w.lm_head,
			  rows_of(a->targets, M));
	return tensor_sum(rows_of(a->losses, M));
}

double model_forward(struct model *m, const int32_t *ids, int64_t T, const int32_t *doc_offsets, int n_docs,
		     const uint8_t *loss_mask, real *logits, int64_t *n_targets)
{
	check_offsets(doc_offsets, n_docs, T);
	model_ensure_acts(m, T);
	struct layer_buf buf;
	model_layer_buf_infer(m, &buf);
	struct forward_bufs fb = {.layers = &buf, .per_layer = 0, .xres = m->acts.x, .xn_f = m->acts.xn,
				  .rstd_f = m->acts.rstd};
	int64_t M;
	double sum = model_forward_packed(m, ids, T, doc_offsets, n_docs, NULL, loss_mask, &fb, logits, &M);
	if (n_targets)
		*n_targets = M;
	return M ? sum / (double)M : 0.0;
}

void model_target_logprob(struct model *m, const int32_t *rows, const int32_t *ids, int64_t P, double *out)
{
	if (P <= 0)
		return;
	struct tensor idx = tensor_new(DTYPE_I32, m->device, 1, 2 * P, 1, 1);
	struct tensor lp = tensor_new(m->stat_dtype, m->device, 1, P, 1, 1);
	real *host = xmalloc((size_t)P * sizeof *host);
	upload_i32(idx, rows, P);
	tensor_copy(tensor_rows(idx, P, P), tensor_i32((int32_t *)ids, P));
	lmhead_logprob(lp, m->acts.x_sel, m->w.lm_head, m->acts.lse, tensor_rows(idx, 0, P), tensor_rows(idx, P, P));
	tensor_copy(tensor1(host, P), lp);
	for (int64_t p = 0; p < P; p++)
		out[p] = host[p];
	free(host);
	tensor_free(lp);
	tensor_free(idx);
}

// ----------------------------------------------------------------------------
// KV cache and incremental decoding

struct kv_cache *kv_cache_new(const struct model *m, int64_t max_len, int n_slots)
{
	if (max_len < 1 || n_slots < 1 || (int64_t)n_slots * max_len > INT32_MAX)
		die(EXIT_FAIL, "KV cache of %d slots of %lld tokens: the keys of a layer must be indexable by int32",
		    n_slots, (long long)max_len);
	struct kv_cache *cache = xcalloc(1, sizeof *cache);
	int64_t rows = (int64_t)m->cfg.n_layers * n_slots * max_len, KD = (int64_t)m->cfg.n_kv_heads * m->cfg.head_dim;
	cache->max_len = max_len;
	cache->n_slots = n_slots;
	cache->len = xcalloc((size_t)n_slots, sizeof *cache->len);
	cache->slot_offsets = xmalloc(((size_t)n_slots + 1) * sizeof *cache->slot_offsets);
	for (int b = 0; b <= n_slots; b++)
		cache->slot_offsets[b] = (int32_t)(b * max_len);
	cache->device = m->device;
	struct tensor_plan p;
	tensor_plan_begin(&p, m->device);
	tensor_plan_add(&p, &cache->k, m->act_dtype, 2, rows, KD, 0);
	tensor_plan_add(&p, &cache->v, m->act_dtype, 2, rows, KD, 0);
	cache->mem = tensor_plan_commit(&p);
	return cache;
}

void kv_cache_reset(struct kv_cache *cache)
{
	for (int b = 0; b < cache->n_slots; b++)
		cache->len[b] = 0;
}

void kv_cache_free(struct kv_cache *cache)
{
	if (!cache)
		return;
	ops_free(cache->device, cache->mem);
	free(cache->len);
	free(cache->slot_offsets);
	free(cache);
}

// Layer L's keys (or values, T = cache->v) of slots first .. first+n−1: (n·max_len, KD) rows.
static struct tensor kv_rows_of(const struct kv_cache *cache, struct tensor t, int l, int first, int n)
{
	return tensor_rows(t, ((int64_t)l * cache->n_slots + first) * cache->max_len, (int64_t)n * cache->max_len);
}

// The final norm of the N rows of the residual stream X, and their (N,V) logits into the host array LOGITS.
static void decode_logits(struct model *m, struct tensor x, int64_t n, real *logits)
{
	struct tensor xn = rows_of(m->acts.xn, n);
	rmsnorm_forward(xn, rows_of(m->acts.rstd, n), x, m->w.ln_f, m->cfg.rms_eps);
	logits_to_host(m, xn, n, logits);
}

void model_decode(struct model *m, struct kv_cache *cache, int slot, const int32_t *ids, int64_t n,
		  real *logits_last)
{
	const struct model_config *c = &m->cfg;
	if (n <= 0)
		return;
	if (slot < 0 || slot >= cache->n_slots)
		die(EXIT_FAIL, "KV cache slot %d of %d", slot, cache->n_slots);
	int64_t len = cache->len[slot];
	if (len + n > cache->max_len)
		die(EXIT_FAIL, "KV cache full: %lld cached + %lld new tokens > %lld", (long long)len, (long long)n,
		    (long long)cache->max_len);
	check_ids(m, ids, n);
	model_ensure_acts(m, n);
	struct model_acts *a = &m->acts;
	for (int64_t i = 0; i < n; i++)
		a->host_positions[i] = (int32_t)(len + i);
	int32_t doc_offsets[2] = {0, (int32_t)(len + n)};   // one document: the whole cached sequence
	upload_i32(a->ids, ids, n);
	upload_i32(a->positions, a->host_positions, n);
	upload_i32(a->doc_offsets, doc_offsets, 2);

	if (m->adapter)
		adapter_begin(m->adapter, n, NULL, m->adapter_task);
	struct layer_buf buf;
	model_layer_buf_infer(m, &buf);
	struct tensor x = rows_of(a->x, n);
	gather_rows(x, m->w.wte, rows_of(a->ids, n));
	for (int l = 0; l < c->n_layers; l++) {
		buf.k_all = kv_rows_of(cache, cache->k, l, slot, 1);
		buf.v_all = kv_rows_of(cache, cache->v, l, slot, 1);
		model_layer_forward(m, l, n, x, &buf, len, 1);
	}
	cache->len[slot] += n;
	if (logits_last)
		decode_logits(m, tensor_rows(x, n - 1, 1), 1, logits_last);
}

void model_decode_batch(struct model *m, struct kv_cache *cache, int n, const int *slots, const int32_t *ids,
			real *logits)
{
	const struct model_config *c = &m->cfg;
	if (n <= 0)
		return;
	check_ids(m, ids, n);
	model_ensure_acts(m, n > cache->n_slots ? n : cache->n_slots);   // doc_offsets: one per slot
	struct model_acts *a = &m->acts;
	int64_t window = 0;   // the longest: a slot's cached tokens and the new one
	for (int i = 0; i < n; i++) {
		int b = slots[i];
		if (b < 0 || b >= cache->n_slots)
			die(EXIT_FAIL, "KV cache slot %d of %d", b, cache->n_slots);
		if (cache->len[b] + 1 > cache->max_len)
			die(EXIT_FAIL, "KV cache slot %d full: %lld cached + 1 new token > %lld", b,
			    (long long)cache->len[b], (long long)cache->max_len);
		for (int j = 0; j < i; j++)
			if (slots[j] == b)
				die(EXIT_FAIL, "model_decode_batch: slot %d given twice", b);
		a->host_positions[i] = (int32_t)cache->len[b];
		a->host_kv_rows[i] = (int32_t)(b * cache->max_len + cache->len[b]);
		window = cache->len[b] + 1 > window ? cache->len[b] + 1 : window;
	}
	upload_i32(a->ids, ids, n);
	upload_i32(a->positions, a->host_positions, n);
	upload_i32(a->kv_rows, a->host_kv_rows, n);
	upload_i32(a->doc_offsets, cache->slot_offsets, cache->n_slots + 1);

	if (m->adapter)
		adapter_begin(m->adapter, n, NULL, m->adapter_task);
	struct layer_buf buf;
	model_layer_buf_infer(m, &buf);
	// the new keys and values go through the scratch k, v (unused while k_all is the cache)
	buf.kv_rows = a->kv_rows;
	buf.k_new = a->k;
	buf.v_new = a->v;
	struct tensor x = rows_of(a->x, n);
	gather_rows(x, m->w.wte, rows_of(a->ids, n));
	for (int l = 0; l < c->n_layers; l++) {
		buf.k_all = kv_rows_of(cache, cache->k, l, 0, cache->n_slots);
		buf.v_all = kv_rows_of(cache, cache->v, l, 0, cache->n_slots);
		model_layer_forward(m, l, n, x, &buf, window, cache->n_slots);
	}
	for (int i = 0; i < n; i++)
		cache->len[slots[i]]++;
	if (logits)
		decode_logits(m, x, n, logits);
}

void model_set_adapter(struct model *m, struct adapter *a, int task_id)
{
	m->adapter = a;
	m->adapter_task = task_id;
}
