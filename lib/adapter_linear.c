// adapter_linear.c — forward and backward of an adapted linear, dense-masked (adapter.h, DESIGN §4).
//
// Forward, for one linear with E stacked experts of rank r (er = E·r columns):
//   H = x_d·A_allᵀ (T,er)   x_d = x with dropout, or x
//   G (T,E) gates; Hg = s·G⊙H (block e of H scaled by s·g_e);  y += Hg·B_allᵀ
// Backward, from dy:
//   dB_all += dyᵀ·Hg;  dHg = dy·B_all;  dG_e = s·Σ_j dHg_ej·H_ej;  dH = s·G⊙dHg
//   dA_all += dHᵀ·x_d; dx += (dH·A_all) ⊙ dropout mask;  then through the gates:
//   moelora: dG summed per task (adapter_backward_finish takes it through softmax, W_g, E);
//   routed: g = softmax over the kept logits, so dlogit_k = g_k·(dG_k − Σ_kept g·dG) on the kept, 0 elsewhere
//   (top-k itself is piecewise constant); dW_r += dlogitᵀ·x, db_r += Σ_t dlogit, dx += dlogit·W_r.
#include "adapter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "rng.h"
#include "safetensors.h"

#ifdef MEDMOE_DOUBLE
#define R_EXP exp
#define R_LOG log
#define R_SQRT sqrt
#else
#define R_EXP expf
#define R_LOG logf
#define R_SQRT sqrtf
#endif

static struct adapter_slot *slot_of(struct adapter *a, int l, enum adapter_target tgt)
{
	return &a->slots[l * N_TARGETS + tgt];
}

// ----------------------------------------------------------------------------
// per forward

static int64_t scratch_width(const struct adapter *a)
{
	int64_t w = 1;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		const struct adapter_slot *s = &a->slots[i];
		if (s->kind == SLOT_NONE)
			continue;
		int64_t c[] = {(int64_t)s->n_exp * s->r, s->d_in, s->d_out, a->cfg.con_proj};
		for (size_t k = 0; k < 4; k++)
			w = c[k] > w ? c[k] : w;
	}
	return w;
}

static void ensure_acts(struct adapter *a, int64_t T)
{
	if (T <= a->cap)
		return;
	const struct adapter_config *c = &a->cfg;
	size_t per_tok = 0, iper_tok = (size_t)T;   // tok_task
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		struct adapter_slot *s = &a->slots[i];
		if (s->kind == SLOT_NONE)
			continue;
		per_tok += (size_t)s->n_exp * s->r + (size_t)s->n_exp;
		if (s->kind == SLOT_ROUTED) {
			per_tok += (size_t)s->n_routed;
			iper_tok += (size_t)c->top_k;
			if (c->method == ADAPTER_SPARSEDOCTOR)
				per_tok += (size_t)c->con_proj + 1;
		}
	}
	size_t sw = (size_t)scratch_width(a);
	free(a->act_mem);
	free(a->iact_mem);
	a->act_mem = xmalloc(((size_t)T * per_tok + 3 * (size_t)T * sw) * sizeof(real));
	a->iact_mem = xmalloc((size_t)T * iper_tok * sizeof(int32_t) + sizeof(int32_t));
	real *p = a->act_mem;
	int32_t *ip = a->iact_mem;
	a->tok_task = ip;
	ip += T;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		struct adapter_slot *s = &a->slots[i];
		if (s->kind == SLOT_NONE)
			continue;
		s->H = p;
		p += (size_t)T * s->n_exp * s->r;
		s->G = p;
		p += (size_t)T * s->n_exp;
		if (s->kind == SLOT_ROUTED) {
			s->probs = p;
			p += (size_t)T * s->n_routed;
			s->topk = ip;
			ip += (size_t)T * c->top_k;
			if (c->method == ADAPTER_SPARSEDOCTOR) {
				s->q = p;
				p += (size_t)T * c->con_proj;
				s->znorm = p;
				p += T;
			}
		}
	}
	a->scratch = p;
	a->cap = T;
}

void adapter_begin(struct adapter *a, int64_t T, const int32_t *tok_task)
{
	ensure_acts(a, T);
	a->T = T;
	a->stats[0] = (double)T;   // the micro-batch's tokens, until the trainer sums the ranks' parts
	const struct adapter_config *c = &a->cfg;
	for (int64_t t = 0; t < T; t++) {
		int32_t id = tok_task ? tok_task[t] : 0;
		if (id < 0 || id >= c->n_tasks)
			die(EXIT_DATA, "token %lld: task id %d outside the adapter's task table (%d tasks)", (long long)t, id,
			    c->n_tasks);
		a->tok_task[t] = id;
	}
	if (c->method == ADAPTER_MOELORA) {
		// w(task) = softmax(W_g · E[task]) (MOELoRA peft_model.py Gate)
		const real *E = a->params + a->off_E, *Wg = a->params + a->off_Wg;
		for (int k = 0; k < c->n_tasks; k++) {
			real *w = a->task_gate + (size_t)k * c->experts, m = -INFINITY, z = 0;
			for (int e = 0; e < c->experts; e++) {
				real v = 0;
				for (int j = 0; j < c->task_emb; j++)
					v += Wg[(size_t)e * c->task_emb + j] * E[(size_t)k * c->task_emb + j];
				w[e] = v;
				m = v > m ? v : m;
			}
			for (int e = 0; e < c->experts; e++)
				z += (w[e] = R_EXP(w[e] - m));
			for (int e = 0; e < c->experts; e++)
				w[e] /= z;
		}
	}
	memset(a->dtask_gate, 0, (size_t)c->n_tasks * c->experts * sizeof(real));
}

void adapter_fill_task(struct adapter *a, int task)
{
	if (task < 0 || task >= a->cfg.n_tasks)
		die(EXIT_DATA, "task id %d outside the adapter's task table (%d tasks)", task, a->cfg.n_tasks);
	for (int64_t t = 0; t < a->T; t++)
		a->tok_task[t] = task;
}

// ----------------------------------------------------------------------------
// dropout: a keep/drop decision per element from a hash, so backward and recomputation see the same mask

static int dropout_active(const struct adapter *a, const struct adapter_slot *s)
{
	return a->training && a->cfg.dropout > 0 && s->kind != SLOT_ROUTED;
}

static void dropout_apply(const struct adapter *a, int l, int tgt, const real *x, real *out, int64_t T, int64_t D)
{
	real keep_scale = (real)(1.0 / (1.0 - a->cfg.dropout));
	uint64_t base = a->cfg.seed ^ (a->step * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)(l * N_TARGETS + tgt) << 40);
	double p = a->cfg.dropout;
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++) {
		for (int64_t i = 0; i < D; i++) {
			uint64_t key = base + (uint64_t)((t + a->tok_offset) * D + i);   // position in the whole micro-batch
			double u = (double)(splitmix64(&key) >> 11) * 0x1.0p-53;
			out[t * D + i] = u < p ? 0 : x[t * D + i] * keep_scale;
		}
	}
}

// ----------------------------------------------------------------------------
// gates

// Top-k by logit, ties to the lower index, best first.
static void top_k(const real *logits, int n, int k, int32_t *idx)
{
	for (int j = 0; j < k; j++) {
		int best = -1;
		for (int e = 0; e < n; e++) {
			int taken = 0;
			for (int i = 0; i < j; i++)
				taken |= idx[i] == e;
			if (!taken && (best < 0 || logits[e] > logits[best]))
				best = e;
		}
		idx[j] = best;
	}
}

static void gates_forward(struct adapter *a, struct adapter_slot *s, struct tensor x)
{
	const struct adapter_config *c = &a->cfg;
	int64_t T = x.dim[0];
	int E = s->n_exp;
	if (s->kind == SLOT_LORA) {
		for (int64_t i = 0; i < T; i++)
			s->G[i] = 1;
		return;
	}
	if (s->kind == SLOT_TASK) {
		for (int64_t t = 0; t < T; t++)
			memcpy(s->G + t * E, a->task_gate + (size_t)a->tok_task[t] * c->experts, (size_t)E * sizeof(real));
		return;
	}
	// routed: logits = x·W_rᵀ + b_r (MING MoLoRALinear.switch)
	int N = s->n_routed, k = c->top_k;
	const real *br = a->params + s->off_br;
	ops_gemm(0, 1, T, N, s->d_in, 1, x.data, s->d_in, a->params + s->off_Wr, s->d_in, 0, s->probs, N);
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++) {
		real *lg = s->probs + t * N, *g = s->G + t * E;
		int32_t *idx = s->topk + t * k;
		for (int e = 0; e < N; e++)
			lg[e] += br[e];
		top_k(lg, N, k, idx);
		// softmax over the kept logits (idx[0] holds the largest)
		for (int e = 0; e < E; e++)
			g[e] = e < N ? 0 : 1;   // shared experts always on, weight 1 (MING dev share_experts)
		real z = 0;
		for (int j = 0; j < k; j++)
			z += (g[idx[j]] = R_EXP(lg[idx[j]] - lg[idx[0]]));
		for (int j = 0; j < k; j++)
			g[idx[j]] /= z;
		// full softmax, for the load-balancing loss
		real m = lg[idx[0]], zz = 0;
		for (int e = 0; e < N; e++)
			zz += (lg[e] = R_EXP(lg[e] - m));
		for (int e = 0; e < N; e++)
			lg[e] /= zz;
	}
	// Switch loss (Fedus et al. 2021, eq. 4; MING dev lbl_loss_forward): N Σ_e f_e P_e, f_e = assignments/T
	double f[N], P[N], lb = 0;
	for (int e = 0; e < N; e++)
		f[e] = P[e] = 0;
	for (int64_t t = 0; t < T; t++) {
		for (int j = 0; j < k; j++)
			f[s->topk[t * k + j]] += 1;
		for (int e = 0; e < N; e++)
			P[e] += s->probs[t * N + e];
	}
	for (int e = 0; e < N; e++)
		lb += (f[e] / (double)T) * (P[e] / (double)T);
	s->lb = T ? N * lb : 0;
	if (a->training && !a->recomputing) {
		double *st = a->stats + s->off_stats;
		for (int e = 0; e < N; e++)
			st[e] = f[e], st[N + e] = P[e];
		for (int64_t t = 0; t < T; t++)
			for (int j = 0; j < k; j++) {
				s->load[s->topk[t * k + j]]++;
				a->task_load[(size_t)a->tok_task[t] * c->experts + s->topk[t * k + j]]++;
			}
	}
}

// ----------------------------------------------------------------------------
// sparsedoctor contrastive loss

// The entries of expert e's queue: rows 0 .. fill−1 of its ring (order does not matter for the sums).
static uint16_t *queue_row(const struct adapter *a, const struct adapter_slot *s, int e, int64_t i)
{
	return a->queue + s->off_queue + ((size_t)e * a->cfg.con_queue + (size_t)i) * a->cfg.con_proj;
}

void adapter_queue_get(const struct adapter *a, const struct adapter_slot *s, int e, int64_t i, real *out)
{
	const uint16_t *h = queue_row(a, s, e, i);
	for (int j = 0; j < a->cfg.con_proj; j++)
		out[j] = st_f16_to_f32(h[j]);
}

void adapter_queue_set(struct adapter *a, const struct adapter_slot *s, int e, int64_t i, const real *v)
{
	uint16_t *h = queue_row(a, s, e, i);
	for (int j = 0; j < a->cfg.con_proj; j++)
		h[j] = st_f32_to_f16((float)v[j]);
}

// The slot's whole queue widened to the working precision (N·Q rows of P), for the score products.
static real *queue_keys(const struct adapter *a, const struct adapter_slot *s)
{
	size_t n = (size_t)s->n_routed * a->cfg.con_queue * a->cfg.con_proj;
	real *k = xmalloc(n * sizeof(real));
	const uint16_t *h = a->queue + s->off_queue;
	for (size_t i = 0; i < n; i++)
		k[i] = st_f16_to_f32(h[i]);
	return k;
}

// InfoNCE over the whole queue for a block of tokens, with matrix products: the scores of TB tokens against
// all N·Q ring rows are one product (TB, N·Q) = q_block · queueᵀ / τ, rows not yet filled are skipped.  Returns
// the summed loss of the block's tokens that have a positive (their count added to *valid); when dq is not
// NULL, coef · d(loss)/dq is added to dq (TB, P) through a second product.
#define CON_TB 64

static double contrastive_block(const struct adapter *a, const struct adapter_slot *s, const real *keys,
				int64_t t0, int64_t tb, real *L, real coef, real *dq, int64_t *valid)
{
	const struct adapter_config *c = &a->cfg;
	int P = c->con_proj, Q = c->con_queue, N = s->n_routed;
	int64_t nk = (int64_t)N * Q;
	real inv_tau = (real)(1.0 / c->con_tau);
	ops_gemm(0, 1, tb, nk, P, inv_tau, s->q + t0 * P, P, keys, P, 0, L, nk);
	double sum = 0;
	for (int64_t i = 0; i < tb; i++) {
		real *row = L + i * nk;
		int pos = s->topk[(t0 + i) * c->top_k];
		if (s->q_fill[pos] == 0) {
			memset(row, 0, (size_t)nk * sizeof(real));
			continue;
		}
		double m = -INFINITY, mp = -INFINITY, z = 0, zp = 0;
		for (int e = 0; e < N; e++)
			for (int64_t k = 0; k < s->q_fill[e]; k++) {
				double v = row[(int64_t)e * Q + k];
				m = v > m ? v : m;
				if (e == pos)
					mp = v > mp ? v : mp;
			}
		for (int e = 0; e < N; e++)
			for (int64_t k = 0; k < s->q_fill[e]; k++) {
				double v = row[(int64_t)e * Q + k];
				z += exp(v - m);
				if (e == pos)
					zp += exp(v - mp);
			}
		double lse = m + log(z), lsep = mp + log(zp);
		sum += lse - lsep;
		(*valid)++;
		if (!dq)
			continue;
		// d(loss)/d(score_j) = softmax_all_j − softmax_pos_j; scores are q·k/τ
		for (int e = 0; e < N; e++)
			for (int64_t k = 0; k < Q; k++) {
				real *v = &row[(int64_t)e * Q + k];
				if (k >= s->q_fill[e]) {
					*v = 0;
					continue;
				}
				double d = exp(*v - lse) - (e == pos ? exp(*v - lsep) : 0.0);
				*v = (real)(d * coef) * inv_tau;
			}
	}
	if (dq)
		ops_gemm(0, 0, tb, P, nk, 1, L, nk, keys, P, 1, dq, P);
	return sum;
}

static void contrastive_forward(struct adapter *a, struct adapter_slot *s, struct tensor x)
{
	const struct adapter_config *c = &a->cfg;
	int64_t T = x.dim[0];
	int P = c->con_proj;
	ops_gemm(0, 1, T, P, s->d_in, 1, x.data, s->d_in, a->params + s->off_P, s->d_in, 0, s->q, P);
	for (int64_t t = 0; t < T; t++) {
		real *q = s->q + t * P, nn = 0;
		for (int j = 0; j < P; j++)
			nn += q[j] * q[j];
		nn = R_SQRT(nn);
		s->znorm[t] = nn;
		for (int j = 0; j < P; j++)
			q[j] = nn > 0 ? q[j] / nn : 0;
	}
	int64_t valid = 0;
	double sum = 0;
	real *L = xmalloc((size_t)CON_TB * s->n_routed * c->con_queue * sizeof(real)), *keys = queue_keys(a, s);
	for (int64_t t0 = 0; t0 < T; t0 += CON_TB)
		sum += contrastive_block(a, s, keys, t0, T - t0 < CON_TB ? T - t0 : CON_TB, L, 0, NULL, &valid);
	free(L);
	free(keys);
	s->con = valid ? sum / (double)valid : 0;
	if (!a->recomputing) {
		double *st = a->stats + s->off_stats + 2 * s->n_routed;
		st[0] = sum;
		st[1] = (double)valid;
	}
}

// dz = (dq − q·(q·dq)) / ‖z‖ for q = z/‖z‖; dP += dzᵀ·x; dx += dz·P.
static void contrastive_backward(struct adapter *a, struct adapter_slot *s, struct tensor dx, struct tensor x,
				 real *dz)
{
	const struct adapter_config *c = &a->cfg;
	int64_t T = x.dim[0];
	int P = c->con_proj;
	// the tokens with a positive in the whole micro-batch (stats), so that split over ranks it is the same mean
	double valid = a->stats[s->off_stats + 2 * s->n_routed + 1];
	memset(dz, 0, (size_t)(T * P) * sizeof(real));
	if (!valid)
		return;
	real coef = (real)(c->con_lambda / a->n_routed_slots / valid) * a->grad_scale;
	real *L = xmalloc((size_t)CON_TB * s->n_routed * c->con_queue * sizeof(real)), *keys = queue_keys(a, s);
	int64_t counted = 0;
	for (int64_t t0 = 0; t0 < T; t0 += CON_TB)
		contrastive_block(a, s, keys, t0, T - t0 < CON_TB ? T - t0 : CON_TB, L, coef, dz + t0 * P, &counted);
	free(L);
	free(keys);
	for (int64_t t = 0; t < T; t++) {
		real *d = dz + t * P, qd = 0;
		const real *q = s->q + t * P;
		for (int j = 0; j < P; j++)
			qd += q[j] * d[j];
		for (int j = 0; j < P; j++)
			d[j] = s->znorm[t] > 0 ? (d[j] - q[j] * qd) / s->znorm[t] : 0;
	}
	ops_gemm(1, 0, P, s->d_in, T, 1, dz, P, x.data, s->d_in, 1, a->grads + s->off_P, s->d_in);
	if (dx.data)
		ops_gemm(0, 0, T, s->d_in, P, 1, dz, P, a->params + s->off_P, s->d_in, 1, dx.data, s->d_in);
}

void adapter_queue_push_entry(struct adapter *a, const struct adapter_slot *s, int e, const uint16_t *entry)
{
	memcpy(queue_row(a, s, e, s->q_head[e]), entry, (size_t)a->cfg.con_proj * sizeof(uint16_t));
	s->q_head[e] = (s->q_head[e] + 1) % a->cfg.con_queue;
	if (s->q_fill[e] < a->cfg.con_queue)
		s->q_fill[e]++;
}

void adapter_queue_push(struct adapter *a)
{
	const struct adapter_config *c = &a->cfg;
	if (c->method != ADAPTER_SPARSEDOCTOR)
		return;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		struct adapter_slot *s = &a->slots[i];
		if (s->kind != SLOT_ROUTED)
			continue;
		for (int64_t t = 0; t < a->T; t++) {
			int e = s->topk[t * c->top_k];
			adapter_queue_set(a, s, e, s->q_head[e], s->q + t * c->con_proj);
			s->q_head[e] = (s->q_head[e] + 1) % c->con_queue;
			if (s->q_fill[e] < c->con_queue)
				s->q_fill[e]++;
		}
	}
}

// ----------------------------------------------------------------------------
// the adapted linear

// Hg = s·G⊙H into out (T, er).
static void scale_by_gates(const struct adapter_slot *s, int64_t T, const real *src, real *out)
{
	int E = s->n_exp, r = s->r;
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++)
		for (int e = 0; e < E; e++) {
			real g = s->scale * s->G[t * E + e];
			for (int j = 0; j < r; j++)
				out[(t * E + e) * r + j] = g * src[(t * E + e) * r + j];
		}
}

void adapter_linear_forward(struct adapter *a, int l, enum adapter_target tgt, struct tensor y, struct tensor x)
{
	struct adapter_slot *s = slot_of(a, l, tgt);
	if (s->kind == SLOT_NONE)
		return;
	int64_t T = x.dim[0], er = (int64_t)s->n_exp * s->r, sw = scratch_width(a);
	if (T > a->cap)
		die(EXIT_FAIL, "adapter: %lld tokens but adapter_begin planned %lld", (long long)T, (long long)a->cap);
	real *s0 = a->scratch, *s1 = s0 + T * sw;
	const real *xin = x.data;
	if (dropout_active(a, s)) {
		dropout_apply(a, l, tgt, x.data, s0, T, s->d_in);
		xin = s0;
	}
	ops_gemm(0, 1, T, er, s->d_in, 1, xin, s->d_in, a->params + s->off_A, s->d_in, 0, s->H, er);
	gates_forward(a, s, x);
	scale_by_gates(s, T, s->H, s1);
	ops_gemm(0, 1, T, s->d_out, er, 1, s1, er, a->params + s->off_B, er, 1, y.data, s->d_out);
	if (s->kind == SLOT_ROUTED && a->cfg.method == ADAPTER_SPARSEDOCTOR && a->training)
		contrastive_forward(a, s, x);
}

void adapter_linear_backward(struct adapter *a, int l, enum adapter_target tgt, struct tensor dx, struct tensor dy,
			     struct tensor x)
{
	struct adapter_slot *s = slot_of(a, l, tgt);
	if (s->kind == SLOT_NONE)
		return;
	const struct adapter_config *c = &a->cfg;
	int64_t T = x.dim[0], er = (int64_t)s->n_exp * s->r, sw = scratch_width(a);
	int E = s->n_exp, r = s->r;
	real *s0 = a->scratch, *s1 = s0 + T * sw, *s2 = s1 + T * sw;
	const real *xin = x.data;
	int drop = dropout_active(a, s);
	if (drop) {
		dropout_apply(a, l, tgt, x.data, s0, T, s->d_in);
		xin = s0;
	}
	real *gA = a->grads + s->off_A, *gB = a->grads + s->off_B;
	scale_by_gates(s, T, s->H, s1);
	ops_gemm(1, 0, s->d_out, er, T, 1, dy.data, s->d_out, s1, er, 1, gB, er);
	ops_gemm(0, 0, T, er, s->d_out, 1, dy.data, s->d_out, a->params + s->off_B, er, 0, s2, er);
	real *dG = s1;   // (T, E), Hg no longer needed
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++)
		for (int e = 0; e < E; e++) {
			real acc = 0, g = s->scale * s->G[t * E + e];
			real *dh = s2 + (t * E + e) * r;
			const real *h = s->H + (t * E + e) * r;
			for (int j = 0; j < r; j++) {
				acc += dh[j] * h[j];
				dh[j] *= g;
			}
			dG[t * E + e] = s->scale * acc;
		}
	ops_gemm(1, 0, er, s->d_in, T, 1, s2, er, xin, s->d_in, 1, gA, s->d_in);
	if (dx.data) {
		if (drop) {
			// (dH·A) through the same mask: dropout_apply of the product applies mask and 1/(1−p)
			ops_gemm(0, 0, T, s->d_in, er, 1, s2, er, a->params + s->off_A, s->d_in, 0, s0, s->d_in);
			dropout_apply(a, l, tgt, s0, s0, T, s->d_in);
			for (int64_t i = 0; i < T * s->d_in; i++)
				dx.data[i] += s0[i];
		} else {
			ops_gemm(0, 0, T, s->d_in, er, 1, s2, er, a->params + s->off_A, s->d_in, 1, dx.data, s->d_in);
		}
	}
	if (s->kind == SLOT_TASK) {
		for (int64_t t = 0; t < T; t++)
			for (int e = 0; e < E; e++)
				a->dtask_gate[(size_t)a->tok_task[t] * c->experts + e] += dG[t * E + e];
		return;
	}
	if (s->kind != SLOT_ROUTED)
		return;
	// router: dlogits (T, N) into s2
	int N = s->n_routed, k = c->top_k;
	real *dlog = s2;
	// f and T of the whole micro-batch (stats): the Switch loss is not a sum over tokens, so a rank's part of
	// the micro-batch needs the totals to give its share of the gradient
	double f[N], T_all = a->stats[0];
	for (int e = 0; e < N; e++)
		f[e] = a->stats[s->off_stats + e] / T_all;
	real lb_coef = (real)(c->lb_coef / a->n_routed_slots * N / T_all) * a->grad_scale;
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++) {
		real *d = dlog + t * N, sum = 0;
		const real *g = s->G + t * E, *dg = dG + t * E, *p = s->probs + t * N;
		const int32_t *idx = s->topk + t * k;
		for (int e = 0; e < N; e++)
			d[e] = 0;
		for (int j = 0; j < k; j++)
			sum += g[idx[j]] * dg[idx[j]];
		for (int j = 0; j < k; j++)
			d[idx[j]] = g[idx[j]] * (dg[idx[j]] - sum);
		if (c->lb_coef > 0) {
			// d(N Σ f_e P_e)/dlogit_t = (N/T)·p_t ⊙ (f − Σ_e p_te f_e)
			real pf = 0;
			for (int e = 0; e < N; e++)
				pf += p[e] * (real)f[e];
			for (int e = 0; e < N; e++)
				d[e] += lb_coef * p[e] * ((real)f[e] - pf);
		}
	}
	real *gbr = a->grads + s->off_br;
	for (int64_t t = 0; t < T; t++)
		for (int e = 0; e < N; e++)
			gbr[e] += dlog[t * N + e];
	ops_gemm(1, 0, N, s->d_in, T, 1, dlog, N, x.data, s->d_in, 1, a->grads + s->off_Wr, s->d_in);
	if (dx.data)
		ops_gemm(0, 0, T, s->d_in, N, 1, dlog, N, a->params + s->off_Wr, s->d_in, 1, dx.data, s->d_in);
	if (c->method == ADAPTER_SPARSEDOCTOR)
		contrastive_backward(a, s, dx, x, s0);
}

// w = softmax(u), u = W_g·E[task]: du = w ⊙ (dw − Σ w·dw); dW_g += du ⊗ E[task]; dE[task] += W_gᵀ·du.
void adapter_backward_finish(struct adapter *a)
{
	const struct adapter_config *c = &a->cfg;
	if (c->method != ADAPTER_MOELORA)
		return;
	const real *E = a->params + a->off_E, *Wg = a->params + a->off_Wg;
	real *gE = a->grads + a->off_E, *gWg = a->grads + a->off_Wg;
	for (int k = 0; k < c->n_tasks; k++) {
		const real *w = a->task_gate + (size_t)k * c->experts;
		real *dw = a->dtask_gate + (size_t)k * c->experts, sum = 0;
		for (int e = 0; e < c->experts; e++)
			sum += w[e] * dw[e];
		for (int e = 0; e < c->experts; e++) {
			real du = w[e] * (dw[e] - sum);
			for (int j = 0; j < c->task_emb; j++) {
				gWg[(size_t)e * c->task_emb + j] += du * E[(size_t)k * c->task_emb + j];
				gE[(size_t)k * c->task_emb + j] += du * Wg[(size_t)e * c->task_emb + j];
			}
		}
		memset(dw, 0, (size_t)c->experts * sizeof(real));
	}
}

double adapter_aux_loss(const struct adapter *a, double *lb, double *con)
{
	// from the micro-batch's stats: the same values as each slot's lb and con for an unsplit micro-batch
	double slb = 0, scon = 0, T = a->stats[0];
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		const struct adapter_slot *s = &a->slots[i];
		if (s->kind != SLOT_ROUTED)
			continue;
		const double *st = a->stats + s->off_stats;
		double lb = 0;
		for (int e = 0; e < s->n_routed; e++)
			lb += (st[e] / T) * (st[s->n_routed + e] / T);
		slb += T > 0 ? s->n_routed * lb : 0;
		scon += st[2 * s->n_routed + 1] > 0 ? st[2 * s->n_routed] / st[2 * s->n_routed + 1] : 0;
	}
	int n = a->n_routed_slots ? a->n_routed_slots : 1;
	slb /= n;
	scon /= n;
	if (a->cfg.method != ADAPTER_SPARSEDOCTOR)
		scon = 0;
	if (lb)
		*lb = slb;
	if (con)
		*con = scon;
	return a->cfg.lb_coef * slb + a->cfg.con_lambda * scon;
}
