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
#include "tensor_plan.h"

struct model_train {
	struct model *m;
	int64_t cap;
	int recompute, planned_recompute;
	size_t bytes;
	void *mem;
	struct layer_buf *bufs;   // L of them (recompute: all share one set, x_in their own)
	struct tensor xres, x_tmp, xn_f, rstd_f;
	struct tensor dres, dxn, dh, dg, du, datt, dq, dk, dv, dq_pre, dk_pre, dxsel, dloss;
	int32_t *tok_task;        // (cap) host: each token's task
	int n_docs;
	int64_t T, M;
	double ce_stats[2];       // cross-entropy sum and targets of the micro-batch (model_train_ce_stats)
};

struct model_train *model_train_new(struct model *m)
{
	struct model_train *tr = xcalloc(1, sizeof *tr);
	tr->m = m;
	tr->bufs = xcalloc((size_t)m->cfg.n_layers, sizeof *tr->bufs);
	return tr;
}

void model_train_free(struct model_train *tr)
{
	if (!tr)
		return;
	ops_free(tr->m->device, tr->mem);
	free(tr->bufs);
	free(tr->tok_task);
	free(tr);
}

void model_train_set_recompute(struct model_train *tr, int on) { tr->recompute = on; }

size_t model_train_bytes(const struct model_train *tr) { return tr->bytes; }

double *model_train_ce_stats(struct model_train *tr) { return tr->ce_stats; }

// One allocation for T tokens: a set of layer buffers per layer (one shared set with recomputation, x_in always
// per layer), the residual stream, and the gradients of one layer's backward.
static void plan(struct model_train *tr, int64_t T)
{
	if (T <= tr->cap && tr->planned_recompute == tr->recompute)
		return;
	struct model *m = tr->m;
	const struct model_config *c = &m->cfg;
	int L = c->n_layers, qk = c->qk_norm;
	int64_t C = c->hidden, F = c->ffn, NH = c->n_heads, NKV = c->n_kv_heads;
	int64_t QD = NH * c->head_dim, KD = NKV * c->head_dim;
	enum dtype act = m->act_dtype, stat = m->stat_dtype;
	ops_free(m->device, tr->mem);
	memset(tr->bufs, 0, (size_t)L * sizeof *tr->bufs);
	struct tensor_plan p;
	tensor_plan_begin(&p, m->device);
	for (int l = 0; l < L; l++) {
		struct layer_buf *b = &tr->bufs[l];
		tensor_plan_add(&p, &b->x_in, act, 2, T, C, 0);
		if (l > 0 && tr->recompute)
			continue;
		tensor_plan_add(&p, &b->rstd1, stat, 1, T, 0, 0);
		tensor_plan_add(&p, &b->xn1, act, 2, T, C, 0);
		tensor_plan_add(&p, &b->q, act, 2, T, QD, 0);
		if (qk)
			tensor_plan_add(&p, &b->q_pre, act, 2, T, QD, 0);
		tensor_plan_add(&p, &b->rstd_q, stat, 1, T * NH, 0, 0);
		if (qk)
			tensor_plan_add(&p, &b->k_pre, act, 2, T, KD, 0);
		tensor_plan_add(&p, &b->rstd_k, stat, 1, T * NKV, 0, 0);
		tensor_plan_add(&p, &b->att, act, 2, T, QD, 0);
		tensor_plan_add(&p, &b->att_lse, stat, 1, NH * T, 0, 0);
		tensor_plan_add(&p, &b->x_mid, act, 2, T, C, 0);
		tensor_plan_add(&p, &b->rstd2, stat, 1, T, 0, 0);
		tensor_plan_add(&p, &b->xn2, act, 2, T, C, 0);
		tensor_plan_add(&p, &b->gate_pre, act, 2, T, F, 0);
		tensor_plan_add(&p, &b->up, act, 2, T, F, 0);
		tensor_plan_add(&p, &b->h, act, 2, T, F, 0);
		tensor_plan_add(&p, &b->k_all, act, 2, T, KD, 0);
		tensor_plan_add(&p, &b->v_all, act, 2, T, KD, 0);
	}
	struct tensor proj;
	tensor_plan_add(&p, &tr->xres, act, 2, T, C, 0);
	tensor_plan_add(&p, &tr->x_tmp, act, 2, T, C, 0);
	tensor_plan_add(&p, &tr->xn_f, act, 2, T, C, 0);
	tensor_plan_add(&p, &proj, act, 2, T, C, 0);
	tensor_plan_add(&p, &tr->rstd_f, stat, 1, T, 0, 0);
	tensor_plan_add(&p, &tr->dres, act, 2, T, C, 0);
	tensor_plan_add(&p, &tr->dxn, act, 2, T, C, 0);
	tensor_plan_add(&p, &tr->dh, act, 2, T, F, 0);
	tensor_plan_add(&p, &tr->dg, act, 2, T, F, 0);
	tensor_plan_add(&p, &tr->du, act, 2, T, F, 0);
	tensor_plan_add(&p, &tr->datt, act, 2, T, QD, 0);
	tensor_plan_add(&p, &tr->dq, act, 2, T, QD, 0);
	tensor_plan_add(&p, &tr->dk, act, 2, T, KD, 0);
	tensor_plan_add(&p, &tr->dv, act, 2, T, KD, 0);
	if (qk) {
		tensor_plan_add(&p, &tr->dq_pre, act, 2, T, QD, 0);
		tensor_plan_add(&p, &tr->dk_pre, act, 2, T, KD, 0);
	}
	tensor_plan_add(&p, &tr->dxsel, act, 2, T, C, 0);
	tensor_plan_add(&p, &tr->dloss, stat, 1, T, 0, 0);
	tr->bytes = tensor_plan_bytes(&p);
	tr->mem = tensor_plan_commit(&p);
	for (int l = 0; l < L; l++) {
		struct layer_buf *b = &tr->bufs[l];
		if (l > 0 && tr->recompute) {
			struct tensor x_in = b->x_in;
			*b = tr->bufs[0];
			b->x_in = x_in;
		}
		if (!qk)
			b->q_pre = b->q;
		b->proj = proj;
	}
	if (!qk) {
		tr->dq_pre = tr->dq;
		tr->dk_pre = tr->dk;
	}
	tr->tok_task = xrealloc(tr->tok_task, (size_t)T * sizeof *tr->tok_task);
	tr->cap = T;
	tr->planned_recompute = tr->recompute;
}

double model_train_forward(struct model_train *tr, const int32_t *ids, int64_t T, const int32_t *doc_offsets,
			   int n_docs, const int32_t *doc_task, const uint8_t *loss_mask, int64_t *n_targets)
{
	struct model *m = tr->m;
	if (T < 1 || n_docs < 1 || doc_offsets[0] != 0 || doc_offsets[n_docs] != T)
		die(EXIT_DATA, "document offsets must run from 0 to the %lld tokens", (long long)T);
	plan(tr, T);
	for (int d = 0; d < n_docs; d++)
		for (int32_t t = doc_offsets[d]; t < doc_offsets[d + 1]; t++)
			tr->tok_task[t] = doc_task ? doc_task[d] : 0;
	if (m->adapter)
		m->adapter->recomputing = 0;
	struct forward_bufs fb = {.layers = tr->bufs, .per_layer = 1, .xres = tr->xres, .xn_f = tr->xn_f,
				  .rstd_f = tr->rstd_f};
	double sum = model_forward_packed(m, ids, T, doc_offsets, n_docs, tr->tok_task, loss_mask, &fb, NULL, &tr->M);
	tr->T = T;
	tr->n_docs = n_docs;
	tr->ce_stats[0] = sum;
	tr->ce_stats[1] = (double)tr->M;
	if (n_targets)
		*n_targets = tr->M;
	return tr->M ? sum / (double)tr->M : 0.0;
}

// Backward through a base linear (input gradient only) and its adapter.
static void linear_backward(struct model *m, int l, enum adapter_target tgt, struct tensor dinp, struct tensor dout,
			    struct tensor inp, struct tensor weight)
{
	matmul_backward(dinp, TENSOR_NONE, TENSOR_NONE, dout, inp, weight);
	if (m->adapter)
		adapter_linear_backward(m->adapter, l, tgt, dinp, dout, inp);
}

static void layer_backward(struct model_train *tr, int l, const struct layer_buf *b)
{
	struct model *m = tr->m;
	const struct model_config *c = &m->cfg;
	const struct layer_weights *w = &m->w.layers[l];
	int64_t T = tr->T, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
	struct tensor dres = rows_of(tr->dres, T), dxn = rows_of(tr->dxn, T);
	struct tensor dh = rows_of(tr->dh, T), dg = rows_of(tr->dg, T), du = rows_of(tr->du, T);
	struct tensor datt = rows_of(tr->datt, T), dq = rows_of(tr->dq, T), dk = rows_of(tr->dk, T);
	struct tensor dv = rows_of(tr->dv, T), dq_pre = rows_of(tr->dq_pre, T), dk_pre = rows_of(tr->dk_pre, T);
	struct tensor positions = rows_of(m->acts.positions, T);
#define HEADS(t, H) tensor_reshape(t, 3, T, H, HD)
#define ROWS(t, H) tensor_reshape(t, 2, T *(H), HD, 0)

	// MLP
	tensor_zero(dh);
	tensor_zero(dg);
	tensor_zero(du);
	tensor_zero(dxn);
	linear_backward(m, l, TGT_DOWN, dh, dres, rows_of(b->h, T), w->w_down);
	swiglu_backward(dg, du, dh, rows_of(b->gate_pre, T), rows_of(b->up, T));
	linear_backward(m, l, TGT_GATE, dxn, dg, rows_of(b->xn2, T), w->w_gate);
	linear_backward(m, l, TGT_UP, dxn, du, rows_of(b->xn2, T), w->w_up);
	rmsnorm_backward(dres, TENSOR_NONE, dxn, rows_of(b->x_mid, T), w->ln2, rows_of(b->rstd2, T));

	// attention
	tensor_zero(datt);
	tensor_zero(dq);
	tensor_zero(dk);
	tensor_zero(dv);
	tensor_zero(dxn);
	linear_backward(m, l, TGT_O, datt, dres, rows_of(b->att, T), w->wo);
	attention_backward(HEADS(dq, NH), HEADS(dk, NKV), HEADS(dv, NKV), HEADS(datt, NH), HEADS(rows_of(b->att, T), NH),
			   tensor_reshape(b->att_lse, 2, NH, T, 0), HEADS(rows_of(b->q, T), NH),
			   HEADS(rows_of(b->k_all, T), NKV), HEADS(rows_of(b->v_all, T), NKV),
			   rows_of(m->acts.doc_offsets, tr->n_docs + 1), tr->n_docs, 0);
	rope_backward(HEADS(dq, NH), positions, m->inv_freq);
	rope_backward(HEADS(dk, NKV), positions, m->inv_freq);
	if (c->qk_norm) {
		tensor_zero(dq_pre);
		tensor_zero(dk_pre);
		rmsnorm_backward(ROWS(dq_pre, NH), TENSOR_NONE, ROWS(dq, NH), ROWS(rows_of(b->q_pre, T), NH), w->q_norm,
				 rows_of(b->rstd_q, T * NH));
		rmsnorm_backward(ROWS(dk_pre, NKV), TENSOR_NONE, ROWS(dk, NKV), ROWS(rows_of(b->k_pre, T), NKV), w->k_norm,
				 rows_of(b->rstd_k, T * NKV));
	}
	struct tensor xn1 = rows_of(b->xn1, T);
	linear_backward(m, l, TGT_Q, dxn, dq_pre, xn1, w->wq);
	linear_backward(m, l, TGT_K, dxn, dk_pre, xn1, w->wk);
	linear_backward(m, l, TGT_V, dxn, dv, xn1, w->wv);
	rmsnorm_backward(dres, TENSOR_NONE, dxn, rows_of(b->x_in, T), w->ln1, rows_of(b->rstd1, T));
#undef HEADS
#undef ROWS
}

void model_train_backward(struct model_train *tr, double scale)
{
	if (!tr->T)
		die(EXIT_FAIL, "model_train_backward without model_train_forward");
	struct model *m = tr->m;
	const struct model_config *c = &m->cfg;
	struct model_acts *a = &m->acts;
	int64_t T = tr->T, M = tr->M;
	struct tensor dres = rows_of(tr->dres, T), dxn = rows_of(tr->dxn, T);
	tensor_zero(dres);
	if (M > 0) {
		struct tensor dxsel = rows_of(tr->dxsel, M);
		// the mean over the micro-batch's targets: all ranks' when they share it (ce_stats), else this forward's
		tensor_fill(rows_of(tr->dloss, M), scale / tr->ce_stats[1]);
		tensor_zero(dxsel);
		lmhead_ce_backward(dxsel, TENSOR_NONE, rows_of(a->x_sel, M), m->w.lm_head, rows_of(a->targets, M),
				   rows_of(a->lse, M), rows_of(tr->dloss, M));
		tensor_zero(dxn);
		scatter_rows_add(dxn, dxsel, rows_of(a->sel, M));
		rmsnorm_backward(dres, TENSOR_NONE, dxn, rows_of(tr->xres, T), m->w.ln_f, rows_of(tr->rstd_f, T));
	}
	if (m->adapter) {
		m->adapter->grad_scale = scale;
		adapter_stats_to_host(m->adapter);   // the micro-batch's totals the adapter's backward divides by
	}
	for (int l = c->n_layers - 1; l >= 0; l--) {
		if (tr->planned_recompute) {
			struct tensor x_tmp = rows_of(tr->x_tmp, T);
			tensor_copy(x_tmp, rows_of(tr->bufs[l].x_in, T));
			if (m->adapter)
				m->adapter->recomputing = 1;
			model_layer_forward(m, l, T, x_tmp, &tr->bufs[l], 0, tr->n_docs);
			if (m->adapter)
				m->adapter->recomputing = 0;
		}
		layer_backward(tr, l, &tr->bufs[l]);
	}
	if (m->adapter)
		adapter_backward_finish(m->adapter);
}
