// model_train.c — training forward (activations kept per layer) and backward through the frozen model.
//
// Backward of one layer, from dres = d(objective)/d(layer output) (the residual stream carries it through):
//   MLP:  dh = dres·W_down (+ adapter), swiglu → dgate, dup; dxn2 = dgate·W_gate + dup·W_up (+ adapters);
//         dres += rmsnorm_backward(dxn2) at x_mid
//   attention: datt = dres·W_o (+ adapter); attention_backward → dq, dk, dv; RoPE backward on dq, dk;
//         Qwen3 q/k norm backward; dxn1 = dq·W_q + dk·W_k + dv·W_v (+ adapters); dres += rmsnorm_backward(dxn1)
// following llm.c's train_gpt2.c layout (one buffer per activation, gradients accumulated with +=).
#include "model_train.h"

#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "die.h"
#include "model_internal.h"
#include "ops.h"

struct model_train {
	int64_t cap;
	int recompute, planned_recompute;
	size_t bytes;
	real *mem;
	struct layer_buf *bufs;   // L of them (recompute: all share one set, x_in their own)
	real **kl, **vl;          // per layer keys/values (T,KD)
	real *xres, *x_tmp, *xn_f, *rstd_f;
	real *dres, *dxn, *dh, *dg, *du, *datt, *dq, *dk, *dv, *dq_pre, *dk_pre, *dxsel, *dloss;
	int32_t *imem, *sel, *tok_task, *doc_offsets;
	int n_docs, cap_docs;
	int64_t T, M;
	double ce_stats[2];       // cross-entropy sum and targets of the micro-batch (model_train_ce_stats)
};

void model_train_set_recompute(struct model *m, int on)
{
	if (!m->train)
		m->train = xcalloc(1, sizeof *m->train);
	m->train->recompute = on;
}

size_t model_train_bytes(const struct model *m) { return m->train ? m->train->bytes : 0; }

double *model_train_ce_stats(struct model *m)
{
	if (!m->train)
		m->train = xcalloc(1, sizeof *m->train);
	return m->train->ce_stats;
}

void model_train_free(struct model *m)
{
	struct model_train *tr = m->train;
	if (!tr)
		return;
	free(tr->mem);
	free(tr->imem);
	free(tr->bufs);
	free(tr->kl);
	free(tr->vl);
	free(tr);
	m->train = NULL;
}

static void plan(struct model *m, int64_t T, int n_docs)
{
	if (!m->train)
		m->train = xcalloc(1, sizeof *m->train);
	struct model_train *tr = m->train;
	if (T <= tr->cap && tr->planned_recompute == tr->recompute && n_docs <= tr->cap_docs)
		return;
	const struct model_config *c = &m->cfg;
	int L = c->n_layers;
	size_t N = (size_t)T, C = (size_t)c->hidden, F = (size_t)c->ffn, NH = (size_t)c->n_heads;
	size_t NKV = (size_t)c->n_kv_heads, QD = NH * c->head_dim, KD = NKV * c->head_dim, qk = c->qk_norm ? 1 : 0;
	// one layer's set, without x_in
	size_t set = N * (1 + C + qk * QD + NH + qk * KD + NKV + QD + QD + NH + C + 1 + C + 3 * F + 2 * KD);
	size_t n_sets = tr->recompute ? 1 : (size_t)L;
	size_t total = n_sets * set + (size_t)L * N * C                   // sets, x_in per layer
		       + N * C * 4 + N                                    // xres, x_tmp, xn_f, proj; rstd_f
		       + N * (C + C + 3 * F + QD + QD + 2 * KD + qk * (QD + KD) + C + 1);   // gradients
	free(tr->mem);
	free(tr->imem);
	free(tr->bufs);
	free(tr->kl);
	free(tr->vl);
	tr->mem = xcalloc(total, sizeof(real));
	tr->bytes = total * sizeof(real);
	tr->bufs = xcalloc((size_t)L, sizeof *tr->bufs);
	tr->kl = xcalloc((size_t)L, sizeof(real *));
	tr->vl = xcalloc((size_t)L, sizeof(real *));
	real *p = tr->mem;
#define TAKE(n) (p += (n), p - (n))
	for (int l = 0; l < L; l++) {
		struct layer_buf *b = &tr->bufs[l];
		b->x_in = TAKE(N * C);
		if (l > 0 && tr->recompute) {
			real *x_in = b->x_in;
			*b = tr->bufs[0];
			b->x_in = x_in;
			tr->kl[l] = tr->kl[0];
			tr->vl[l] = tr->vl[0];
			continue;
		}
		b->rstd1 = TAKE(N);
		b->xn1 = TAKE(N * C);
		b->q = TAKE(N * QD);
		b->q_pre = qk ? TAKE(N * QD) : b->q;
		b->rstd_q = TAKE(N * NH);
		b->k_pre = qk ? TAKE(N * KD) : NULL;
		b->rstd_k = TAKE(N * NKV);
		b->att = TAKE(N * QD);
		b->att_lse = TAKE(N * NH);
		b->x_mid = TAKE(N * C);
		b->rstd2 = TAKE(N);
		b->xn2 = TAKE(N * C);
		b->gate_pre = TAKE(N * F);
		b->up = TAKE(N * F);
		b->h = TAKE(N * F);
		tr->kl[l] = TAKE(N * KD);
		tr->vl[l] = TAKE(N * KD);
	}
	tr->xres = TAKE(N * C);
	tr->x_tmp = TAKE(N * C);
	tr->xn_f = TAKE(N * C);
	real *proj = TAKE(N * C);
	for (int l = 0; l < L; l++)
		tr->bufs[l].proj = proj;
	tr->rstd_f = TAKE(N);
	tr->dres = TAKE(N * C);
	tr->dxn = TAKE(N * C);
	tr->dh = TAKE(N * F);
	tr->dg = TAKE(N * F);
	tr->du = TAKE(N * F);
	tr->datt = TAKE(N * QD);
	tr->dq = TAKE(N * QD);
	tr->dk = TAKE(N * KD);
	tr->dv = TAKE(N * KD);
	tr->dq_pre = qk ? TAKE(N * QD) : tr->dq;
	tr->dk_pre = qk ? TAKE(N * KD) : tr->dk;
	tr->dxsel = TAKE(N * C);
	tr->dloss = TAKE(N);
#undef TAKE
	tr->imem = xmalloc((3 * N + (size_t)n_docs + 1) * sizeof(int32_t));
	tr->sel = tr->imem;
	tr->tok_task = tr->sel + N;
	tr->doc_offsets = tr->tok_task + N;
	tr->cap = T;
	tr->cap_docs = n_docs;
	tr->planned_recompute = tr->recompute;
}

double model_train_forward(struct model *m, const int32_t *ids, int64_t T, const int32_t *doc_offsets, int n_docs,
			   const int32_t *doc_task, const uint8_t *loss_mask, int64_t *n_targets)
{
	const struct model_config *c = &m->cfg;
	int64_t C = c->hidden, V = c->vocab;
	if (T < 1 || n_docs < 1 || doc_offsets[0] != 0 || doc_offsets[n_docs] != T)
		die(EXIT_DATA, "document offsets must run from 0 to the %lld tokens", (long long)T);
	for (int d = 0; d < n_docs; d++)
		if (doc_offsets[d + 1] <= doc_offsets[d])
			die(EXIT_DATA, "document %d is empty or its offsets decrease", d);
	for (int64_t t = 0; t < T; t++)
		if (ids[t] < 0 || ids[t] >= c->vocab)
			die(EXIT_DATA, "token %lld: id %d is outside the model's vocabulary (%d)", (long long)t, ids[t], c->vocab);
	model_ensure_acts(m, T);
	plan(m, T, n_docs);
	struct model_train *tr = m->train;
	struct model_acts *a = &m->acts;
	tr->T = T;
	memcpy(tr->doc_offsets, doc_offsets, (size_t)(n_docs + 1) * sizeof(int32_t));
	tr->n_docs = n_docs;
	for (int d = 0; d < n_docs; d++)
		for (int32_t t = doc_offsets[d]; t < doc_offsets[d + 1]; t++) {
			a->positions[t] = t - doc_offsets[d];
			tr->tok_task[t] = doc_task ? doc_task[d] : 0;
		}
	if (m->adapter) {
		adapter_begin(m->adapter, T, tr->tok_task);
		m->adapter->recomputing = 0;
	}
	embedding_forward(tensor2(tr->xres, T, C), ids, tensor2(m->w.wte, V, C));
	struct tensor scratch = tensor3(a->att_scores, a->att_threads, ATT_QB, T);
	for (int l = 0; l < c->n_layers; l++)
		model_layer_forward(m, l, T, tr->xres, &tr->bufs[l], tr->kl[l], tr->vl[l], 0, tr->doc_offsets, n_docs,
				    scratch);
	rmsnorm_forward(tensor2(tr->xn_f, T, C), tensor1(tr->rstd_f, T), tensor2(tr->xres, T, C), tensor1(m->w.ln_f, C),
			c->rms_eps);
	int64_t M = 0;
	if (loss_mask) {
		for (int64_t t = 0; t + 1 < T; t++) {
			if (!loss_mask[t + 1] || a->positions[t + 1] == 0)
				continue;
			memcpy(a->x_sel + M * C, tr->xn_f + t * C, (size_t)C * sizeof(real));
			a->targets[M] = ids[t + 1];
			tr->sel[M++] = (int32_t)t;
		}
	}
	tr->M = M;
	tr->ce_stats[0] = 0;
	tr->ce_stats[1] = (double)M;
	if (n_targets)
		*n_targets = M;
	if (M == 0)
		return 0.0;
	lmhead_ce_forward(tensor1(a->losses, M), tensor1(a->lse, M), tensor2(a->x_sel, M, C),
			  tensor2(m->w.lm_head, V, C), a->targets, tensor2(a->ce_tile, CE_TB, CE_VC));
	double sum = 0.0;
	for (int64_t i = 0; i < M; i++)
		sum += a->losses[i];
	tr->ce_stats[0] = sum;
	return sum / (double)M;
}

static void zero(real *p, int64_t n) { memset(p, 0, (size_t)n * sizeof(real)); }

// Backward through a base linear (input gradient only) and its adapter.
static void linear_backward(struct model *m, int l, enum adapter_target tgt, struct tensor dinp, struct tensor dout,
			    struct tensor inp, struct tensor weight)
{
	matmul_backward(dinp, TENSOR_NONE, TENSOR_NONE, dout, inp, weight);
	if (m->adapter)
		adapter_linear_backward(m->adapter, l, tgt, dinp, dout, inp);
}

static void layer_backward(struct model *m, int l, const struct layer_buf *b, real *kl, real *vl)
{
	struct model_train *tr = m->train;
	const struct model_config *c = &m->cfg;
	const struct model_weights *w = &m->w;
	int64_t T = tr->T, C = c->hidden, F = c->ffn, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
	int64_t QD = NH * HD, KD = NKV * HD;
	struct tensor dres = tensor2(tr->dres, T, C), dxn = tensor2(tr->dxn, T, C);
	struct tensor inv_freq = tensor1(m->inv_freq, HD / 2);

	// MLP
	zero(tr->dh, T * F);
	zero(tr->dg, T * F);
	zero(tr->du, T * F);
	zero(tr->dxn, T * C);
	linear_backward(m, l, TGT_DOWN, tensor2(tr->dh, T, F), dres, tensor2(b->h, T, F),
			tensor2(w->w_down + l * C * F, C, F));
	swiglu_backward(tensor2(tr->dg, T, F), tensor2(tr->du, T, F), tensor2(tr->dh, T, F), tensor2(b->gate_pre, T, F),
			tensor2(b->up, T, F));
	linear_backward(m, l, TGT_GATE, dxn, tensor2(tr->dg, T, F), tensor2(b->xn2, T, C),
			tensor2(w->w_gate + l * F * C, F, C));
	linear_backward(m, l, TGT_UP, dxn, tensor2(tr->du, T, F), tensor2(b->xn2, T, C), tensor2(w->w_up + l * F * C, F, C));
	rmsnorm_backward(dres, TENSOR_NONE, dxn, tensor2(b->x_mid, T, C), tensor1(w->ln2 + l * C, C),
			 tensor1(b->rstd2, T));

	// attention
	zero(tr->datt, T * QD);
	zero(tr->dq, T * QD);
	zero(tr->dk, T * KD);
	zero(tr->dv, T * KD);
	zero(tr->dxn, T * C);
	linear_backward(m, l, TGT_O, tensor2(tr->datt, T, QD), dres, tensor2(b->att, T, QD),
			tensor2(w->wo + l * C * QD, C, QD));
	attention_backward(tensor3(tr->dq, T, NH, HD), tensor3(tr->dk, T, NKV, HD), tensor3(tr->dv, T, NKV, HD),
			   tensor3(tr->datt, T, NH, HD), tensor3(b->att, T, NH, HD), tensor2(b->att_lse, NH, T),
			   tensor3(b->q, T, NH, HD), tensor3(kl, T, NKV, HD), tensor3(vl, T, NKV, HD), tr->doc_offsets,
			   tr->n_docs, 0);
	rope_backward(tensor3(tr->dq, T, NH, HD), m->acts.positions, inv_freq);
	rope_backward(tensor3(tr->dk, T, NKV, HD), m->acts.positions, inv_freq);
	if (c->qk_norm) {
		zero(tr->dq_pre, T * QD);
		zero(tr->dk_pre, T * KD);
		rmsnorm_backward(tensor2(tr->dq_pre, T * NH, HD), TENSOR_NONE, tensor2(tr->dq, T * NH, HD),
				 tensor2(b->q_pre, T * NH, HD), tensor1(w->q_norm + l * HD, HD), tensor1(b->rstd_q, T * NH));
		rmsnorm_backward(tensor2(tr->dk_pre, T * NKV, HD), TENSOR_NONE, tensor2(tr->dk, T * NKV, HD),
				 tensor2(b->k_pre, T * NKV, HD), tensor1(w->k_norm + l * HD, HD), tensor1(b->rstd_k, T * NKV));
	}
	struct tensor xn1 = tensor2(b->xn1, T, C);
	linear_backward(m, l, TGT_Q, dxn, tensor2(tr->dq_pre, T, QD), xn1, tensor2(w->wq + l * QD * C, QD, C));
	linear_backward(m, l, TGT_K, dxn, tensor2(tr->dk_pre, T, KD), xn1, tensor2(w->wk + l * KD * C, KD, C));
	linear_backward(m, l, TGT_V, dxn, tensor2(tr->dv, T, KD), xn1, tensor2(w->wv + l * KD * C, KD, C));
	rmsnorm_backward(dres, TENSOR_NONE, dxn, tensor2(b->x_in, T, C), tensor1(w->ln1 + l * C, C),
			 tensor1(b->rstd1, T));
}

void model_train_backward(struct model *m, double scale)
{
	struct model_train *tr = m->train;
	if (!tr || !tr->T)
		die(EXIT_FAIL, "model_train_backward without model_train_forward");
	const struct model_config *c = &m->cfg;
	struct model_acts *a = &m->acts;
	int64_t T = tr->T, C = c->hidden, V = c->vocab, M = tr->M;
	zero(tr->dres, T * C);
	if (M > 0) {
		// the mean over the micro-batch's targets: all ranks' when they share it (ce_stats), else this forward's
		for (int64_t i = 0; i < M; i++)
			tr->dloss[i] = (real)(scale / tr->ce_stats[1]);
		zero(tr->dxsel, M * C);
		lmhead_ce_backward(tensor2(tr->dxsel, M, C), TENSOR_NONE, tensor2(a->x_sel, M, C),
				   tensor2(m->w.lm_head, V, C), a->targets, tensor1(a->lse, M), tensor1(tr->dloss, M),
				   tensor2(a->ce_tile, CE_TB, CE_VC));
		zero(tr->dxn, T * C);
		for (int64_t i = 0; i < M; i++)
			memcpy(tr->dxn + (int64_t)tr->sel[i] * C, tr->dxsel + i * C, (size_t)C * sizeof(real));
		rmsnorm_backward(tensor2(tr->dres, T, C), TENSOR_NONE, tensor2(tr->dxn, T, C), tensor2(tr->xres, T, C),
				 tensor1(m->w.ln_f, C), tensor1(tr->rstd_f, T));
	}
	if (m->adapter)
		m->adapter->grad_scale = (real)scale;
	struct tensor scratch = tensor3(a->att_scores, a->att_threads, ATT_QB, T);
	for (int l = c->n_layers - 1; l >= 0; l--) {
		if (tr->planned_recompute) {
			memcpy(tr->x_tmp, tr->bufs[l].x_in, (size_t)(T * C) * sizeof(real));
			if (m->adapter)
				m->adapter->recomputing = 1;
			model_layer_forward(m, l, T, tr->x_tmp, &tr->bufs[l], tr->kl[l], tr->vl[l], 0, tr->doc_offsets,
					    tr->n_docs, scratch);
			if (m->adapter)
				m->adapter->recomputing = 0;
		}
		layer_backward(m, l, &tr->bufs[l], tr->kl[l], tr->vl[l]);
	}
	if (m->adapter)
		adapter_backward_finish(m->adapter);
}
