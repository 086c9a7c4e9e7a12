// ops_cpu_adapter.c — the adapter's ops on the CPU (ops.h, adapter.h, DESIGN §4), each backward beside its
// forward: dropout, dense-masked LoRA experts, MOELoRA's task gate, the token router and its load-balancing
// loss, SparseDoctor's contrastive loss and memory queue.
#include <math.h>
#include <string.h>

#include "die.h"
#include "ops_cpu_internal.h"
#include "rng.h"
#include "safetensors.h"

// The f64 statistics an op writes (the micro-batch's normalisers, ops.h).
static double *stats_of(struct tensor t, const char *op)
{
	if (t.device != DEVICE_CPU || t.dtype != DTYPE_F64)
		die(EXIT_FAIL, "%s: the statistics must be an f64 CPU tensor, not %s", op, dtype_name(t.dtype));
	return t.data;
}

// ----------------------------------------------------------------------------
// dropout: a keep/drop decision per element from a hash, so backward and recomputation see the same mask

static void dropout_mask(real *out, const real *inp, int64_t n, double p, uint64_t key, int accumulate)
{
	real keep_scale = (real)(1.0 / (1.0 - p));
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++) {
		uint64_t k = key + (uint64_t)i;
		double u = (double)(splitmix64(&k) >> 11) * 0x1.0p-53;
		real v = u < p ? 0 : inp[i] * keep_scale;
		out[i] = accumulate ? out[i] + v : v;
	}
}

// inp (N) -> out (N)
void cpu_dropout_forward(struct tensor out, struct tensor inp, double p, uint64_t key)
{
	dropout_mask(cpu_real(out, "dropout_forward"), cpu_real(inp, "dropout_forward"), tensor_numel(inp), p, key, 0);
}

// dout (N) -> dinp (N) += the same mask
void cpu_dropout_backward(struct tensor dinp, struct tensor dout, double p, uint64_t key)
{
	dropout_mask(cpu_real(dinp, "dropout_backward"), cpu_real(dout, "dropout_backward"), tensor_numel(dout), p, key, 1);
}

// ----------------------------------------------------------------------------
// LoRA experts, dense-masked.  Forward: h = x·A_allᵀ; hg = s·G⊙h; y += hg·B_allᵀ.  Backward, from dy:
// dB_all += dyᵀ·hg; dhg = dy·B_all; dG_e = s·Σ_j dhg_ej·h_ej; dh = s·G⊙dhg; dA_all += dhᵀ·x; dx += dh·A_all.

// hg (T,E·R) = s·G⊙h, gate e scaling the R columns of expert e (G NULL: every gate 1).
static void scale_by_gates(real *hg, const real *h, const real *G, int64_t T, int64_t E, int64_t R, real s)
{
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++)
		for (int64_t e = 0; e < E; e++) {
			real g = G ? s * G[t * E + e] : s;
			for (int64_t j = 0; j < R; j++)
				hg[(t * E + e) * R + j] = g * h[(t * E + e) * R + j];
		}
}

// x (T,C), A (E·R,C), B (OC,E·R), gates (T,E) or NONE -> h (T,E·R), y (T,OC) +=
void cpu_lora_forward(struct tensor y, struct tensor h, struct tensor x, struct tensor A, struct tensor B,
		      struct tensor gates, double scale)
{
	const char *op = "lora_forward";
	real *yd = cpu_real(y, op), *hd = cpu_real(h, op);
	const real *xd = cpu_real(x, op), *Ad = cpu_real(A, op), *Bd = cpu_real(B, op), *G = cpu_real(gates, op);
	int64_t T = x.dim[0], C = x.dim[1], er = A.dim[0], OC = B.dim[0], E = gates.data ? gates.dim[1] : 1;
	real *hg = cpu_scratch(CPU_SCRATCH_LORA, (size_t)(T * er));
	if (T <= OPS_ROWWISE_MAX_ROWS) {   // decoding: each token's bits independent of the others (ops.h)
		cpu_matmul_rowwise(hd, er, 0, xd, C, T, A);
		scale_by_gates(hg, hd, G, T, E, er / E, (real)scale);
		cpu_matmul_rowwise(yd, OC, 1, hg, er, T, B);
		return;
	}
	cpu_gemm(0, 1, T, er, C, 1, xd, C, Ad, C, 0, hd, er);
	scale_by_gates(hg, hd, G, T, E, er / E, (real)scale);
	cpu_gemm(0, 1, T, OC, er, 1, hg, er, Bd, er, 1, yd, OC);
}

// dy (T,OC) -> dx (T,C) +=, dA +=, dB +=, dgates (T,E) +=
void cpu_lora_backward(struct tensor dx, struct tensor dA, struct tensor dB, struct tensor dgates, struct tensor dy,
		       struct tensor x, struct tensor h, struct tensor A, struct tensor B, struct tensor gates,
		       double scale)
{
	const char *op = "lora_backward";
	real *dxd = cpu_real(dx, op), *gA = cpu_real(dA, op), *gB = cpu_real(dB, op), *dG = cpu_real(dgates, op);
	const real *dyd = cpu_real(dy, op), *xd = cpu_real(x, op), *hd = cpu_real(h, op), *Ad = cpu_real(A, op);
	const real *Bd = cpu_real(B, op), *G = cpu_real(gates, op);
	int64_t T = x.dim[0], C = x.dim[1], er = A.dim[0], OC = B.dim[0], E = gates.data ? gates.dim[1] : 1, R = er / E;
	real s = (real)scale;
	real *hg = cpu_scratch(CPU_SCRATCH_LORA, (size_t)(2 * T * er)), *dh = hg + T * er;
	scale_by_gates(hg, hd, G, T, E, R, s);
	cpu_gemm(1, 0, OC, er, T, 1, dyd, OC, hg, er, 1, gB, er);
	cpu_gemm(0, 0, T, er, OC, 1, dyd, OC, Bd, er, 0, dh, er);
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++)
		for (int64_t e = 0; e < E; e++) {
			real acc = 0, g = G ? s * G[t * E + e] : s;
			real *d = dh + (t * E + e) * R;
			const real *hr = hd + (t * E + e) * R;
			for (int64_t j = 0; j < R; j++) {
				acc += d[j] * hr[j];
				d[j] *= g;
			}
			if (dG)
				dG[t * E + e] += s * acc;
		}
	cpu_gemm(1, 0, er, C, T, 1, dh, er, xd, C, 1, gA, C);
	if (dxd)
		cpu_gemm(0, 0, T, C, er, 1, dh, er, Ad, C, 1, dxd, C);
}

// ----------------------------------------------------------------------------
// MOELoRA's task gate

// emb (NT,D), wg (N,D) -> gate (NT,N) = softmax(emb·wgᵀ) per task
void cpu_task_gate_forward(struct tensor gate, struct tensor emb, struct tensor wg)
{
	const char *op = "task_gate_forward";
	real *w = cpu_real(gate, op);
	const real *E = cpu_real(emb, op), *Wg = cpu_real(wg, op);
	int64_t NT = emb.dim[0], D = emb.dim[1], N = wg.dim[0];
	for (int64_t k = 0; k < NT; k++) {
		real *row = w + k * N, m = -INFINITY, z = 0;
		for (int64_t e = 0; e < N; e++) {
			real v = 0;
			for (int64_t j = 0; j < D; j++)
				v += Wg[e * D + j] * E[k * D + j];
			row[e] = v;
			m = v > m ? v : m;
		}
		for (int64_t e = 0; e < N; e++)
			z += (row[e] = R_EXP(row[e] - m));
		for (int64_t e = 0; e < N; e++)
			row[e] /= z;
	}
}

// w = softmax(u), u = W_g·E[task]: du = w ⊙ (dw − Σ w·dw); dW_g += du ⊗ E[task]; dE[task] += W_gᵀ·du.
void cpu_task_gate_backward(struct tensor demb, struct tensor dwg, struct tensor dgate, struct tensor gate,
			    struct tensor emb, struct tensor wg)
{
	const char *op = "task_gate_backward";
	real *gE = cpu_real(demb, op), *gWg = cpu_real(dwg, op);
	const real *dw = cpu_real(dgate, op), *w = cpu_real(gate, op), *E = cpu_real(emb, op), *Wg = cpu_real(wg, op);
	int64_t NT = emb.dim[0], D = emb.dim[1], N = wg.dim[0];
	for (int64_t k = 0; k < NT; k++) {
		real sum = 0;
		for (int64_t e = 0; e < N; e++)
			sum += w[k * N + e] * dw[k * N + e];
		for (int64_t e = 0; e < N; e++) {
			real du = w[k * N + e] * (dw[k * N + e] - sum);
			for (int64_t j = 0; j < D; j++) {
				gWg[e * D + j] += du * E[k * D + j];
				gE[k * D + j] += du * Wg[e * D + j];
			}
		}
	}
}

// ----------------------------------------------------------------------------
// the token router

// Top-k by logit, ties to the lower index, best first.
static void top_k(const real *logits, int64_t n, int64_t k, int32_t *idx)
{
	for (int64_t j = 0; j < k; j++) {
		int32_t best = -1;
		for (int32_t e = 0; e < n; e++) {
			int taken = 0;
			for (int64_t i = 0; i < j; i++)
				taken |= idx[i] == e;
			if (!taken && (best < 0 || logits[e] > logits[best]))
				best = e;
		}
		idx[j] = best;
	}
}

// x (T,C), w (N,C), b (N) -> gates (T,E), probs (T,N), topk (T,K)
void cpu_router_forward(struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x, struct tensor w,
			struct tensor b)
{
	const char *op = "router_forward";
	real *G = cpu_real(gates, op), *P = cpu_real(probs, op);
	int32_t *top = cpu_i32(topk, op);
	const real *xd = cpu_real(x, op), *Wr = cpu_real(w, op), *br = cpu_real(b, op);
	int64_t T = x.dim[0], C = x.dim[1], N = w.dim[0], E = gates.dim[1], k = topk.dim[1];
	// logits = x·W_rᵀ + b_r (MING MoLoRALinear.switch), computed in probs' rows
	if (T <= OPS_ROWWISE_MAX_ROWS)
		cpu_matmul_rowwise(P, N, 0, xd, C, T, w);
	else
		cpu_gemm(0, 1, T, N, C, 1, xd, C, Wr, C, 0, P, N);
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++) {
		real *lg = P + t * N, *g = G + t * E;
		int32_t *idx = top + t * k;
		for (int64_t e = 0; e < N; e++)
			lg[e] += br[e];
		top_k(lg, N, k, idx);
		// softmax over the kept logits (idx[0] holds the largest)
		for (int64_t e = 0; e < E; e++)
			g[e] = e < N ? 0 : 1;   // shared experts always on, weight 1 (MING dev share_experts)
		real z = 0;
		for (int64_t j = 0; j < k; j++)
			z += (g[idx[j]] = R_EXP(lg[idx[j]] - lg[idx[0]]));
		for (int64_t j = 0; j < k; j++)
			g[idx[j]] /= z;
		// the full softmax, for the load-balancing loss
		real m = lg[idx[0]], zz = 0;
		for (int64_t e = 0; e < N; e++)
			zz += (lg[e] = R_EXP(lg[e] - m));
		for (int64_t e = 0; e < N; e++)
			lg[e] /= zz;
	}
}

// The micro-batch statistics of the Switch loss (Fedus et al. 2021, eq. 4; MING dev lbl_loss_forward):
// assignments and router probabilities summed per expert, in double, in token order.
void cpu_router_stats(struct tensor stats, struct tensor probs, struct tensor topk)
{
	double *st = stats_of(stats, "router_stats");
	const real *P = cpu_real(probs, "router_stats");
	const int32_t *top = cpu_i32(topk, "router_stats");
	int64_t T = probs.dim[0], N = probs.dim[1], k = topk.dim[1];
	for (int64_t e = 0; e < 2 * N; e++)
		st[e] = 0;
	for (int64_t t = 0; t < T; t++) {
		for (int64_t j = 0; j < k; j++)
			st[top[t * k + j]] += 1;
		for (int64_t e = 0; e < N; e++)
			st[N + e] += P[t * N + e];
	}
}

// g = softmax over the kept logits, so dlogit_k = g_k·(dG_k − Σ_kept g·dG) on the kept, 0 elsewhere; the
// load-balancing term d(N Σ f_e P_e)/dlogit_t = (N/n)·p_t ⊙ (f − Σ_e p_te f_e) over the micro-batch's n tokens
// (f constant: top-k is piecewise constant); then db += Σ_t dlogit, dw += dlogitᵀ·x, dx += dlogit·w.
void cpu_router_backward(struct tensor dx, struct tensor dw, struct tensor db, struct tensor dgates, struct tensor gates,
			 struct tensor probs, struct tensor topk, struct tensor x, struct tensor w, struct tensor stats,
			 double n_tokens, double lb_weight)
{
	const char *op = "router_backward";
	real *dxd = cpu_real(dx, op), *gW = cpu_real(dw, op), *gb = cpu_real(db, op);
	const real *dG = cpu_real(dgates, op), *G = cpu_real(gates, op), *P = cpu_real(probs, op);
	const real *xd = cpu_real(x, op), *Wr = cpu_real(w, op);
	const int32_t *top = cpu_i32(topk, op);
	int64_t T = x.dim[0], C = x.dim[1], N = w.dim[0], E = gates.dim[1], k = topk.dim[1];
	real *dlog = cpu_scratch(CPU_SCRATCH_ROUTER, (size_t)(T * N));
	const double *st = stats_of(stats, op);
	double f[N];
	for (int64_t e = 0; e < N; e++)
		f[e] = n_tokens > 0 ? st[e] / n_tokens : 0;
	real lbw = (real)(n_tokens > 0 ? lb_weight * (double)N / n_tokens : 0);
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++) {
		real *d = dlog + t * N, sum = 0;
		const real *g = G + t * E, *dg = dG + t * E, *p = P + t * N;
		const int32_t *idx = top + t * k;
		for (int64_t e = 0; e < N; e++)
			d[e] = 0;
		for (int64_t j = 0; j < k; j++)
			sum += g[idx[j]] * dg[idx[j]];
		for (int64_t j = 0; j < k; j++)
			d[idx[j]] = g[idx[j]] * (dg[idx[j]] - sum);
		if (lb_weight != 0) {
			real pf = 0;
			for (int64_t e = 0; e < N; e++)
				pf += p[e] * (real)f[e];
			for (int64_t e = 0; e < N; e++)
				d[e] += lbw * p[e] * ((real)f[e] - pf);
		}
	}
	for (int64_t t = 0; t < T; t++)
		for (int64_t e = 0; e < N; e++)
			gb[e] += dlog[t * N + e];
	cpu_gemm(1, 0, N, C, T, 1, dlog, N, xd, C, 1, gW, C);
	if (dxd)
		cpu_gemm(0, 0, T, C, N, 1, dlog, N, Wr, C, 1, dxd, C);
}

// topk (T,K), tok_task (T) -> counts (N) +=, task_counts (NT,N) +=
void cpu_router_count(struct tensor counts, struct tensor task_counts, struct tensor topk, struct tensor tok_task)
{
	const char *op = "router_count";
	int32_t *cnt = cpu_i32(counts, op), *tcnt = cpu_i32(task_counts, op);
	const int32_t *top = cpu_i32(topk, op), *task = cpu_i32(tok_task, op);
	int64_t T = topk.dim[0], k = topk.dim[1], N = task_counts.data ? task_counts.dim[1] : counts.dim[0];
	for (int64_t t = 0; t < T; t++)
		for (int64_t j = 0; j < k; j++) {
			int32_t e = top[t * k + j];
			if (cnt)
				cnt[e]++;
			if (tcnt)
				tcnt[(int64_t)task[t] * N + e]++;
		}
}

// ----------------------------------------------------------------------------
// SparseDoctor's contrastive loss over the memory queue

// The whole queue (N,Q,D) f16 widened to the compute type, for the score products.
static real *queue_keys(struct tensor queue)
{
	int64_t n = tensor_numel(queue);
	if (queue.device != DEVICE_CPU || queue.dtype != DTYPE_F16)
		die(EXIT_FAIL, "contrastive: the queue must be an f16 CPU tensor");
	real *keys = cpu_scratch(CPU_SCRATCH_QUEUE, (size_t)n);
	const uint16_t *h = queue.data;
	for (int64_t i = 0; i < n; i++)
		keys[i] = st_f16_to_f32(h[i]);
	return keys;
}

// Tokens per block of scores (a block's scores against every ring row are one product).
#define CON_TB 64

struct con_args {
	const real *q, *keys;
	const int32_t *fill, *topk;
	int64_t N, Q, D, k;
	real inv_tau;
};

// InfoNCE over the whole queue for the block of tokens t0 .. t0+tb−1: the scores of the block against all N·Q
// ring rows are one product L (tb, N·Q) = q_block·keysᵀ/τ, rows not yet filled are skipped.  Returns the
// summed loss of the block's tokens that have a positive (their count added to *valid); when dq is not NULL,
// coef · d(loss)/dq is added to dq (tb, D) through a second product.
static double contrastive_block(const struct con_args *c, int64_t t0, int64_t tb, real *L, real coef, real *dq,
				int64_t *valid)
{
	int64_t N = c->N, Q = c->Q, D = c->D, nk = N * Q;
	cpu_gemm(0, 1, tb, nk, D, c->inv_tau, c->q + t0 * D, D, c->keys, D, 0, L, nk);
	double sum = 0;
	for (int64_t i = 0; i < tb; i++) {
		real *row = L + i * nk;
		int pos = c->topk[(t0 + i) * c->k];
		if (c->fill[pos] == 0) {
			memset(row, 0, (size_t)nk * sizeof(real));
			continue;
		}
		double m = -INFINITY, mp = -INFINITY, z = 0, zp = 0;
		for (int64_t e = 0; e < N; e++)
			for (int64_t j = 0; j < c->fill[e]; j++) {
				double v = row[e * Q + j];
				m = v > m ? v : m;
				if (e == pos)
					mp = v > mp ? v : mp;
			}
		for (int64_t e = 0; e < N; e++)
			for (int64_t j = 0; j < c->fill[e]; j++) {
				double v = row[e * Q + j];
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
		for (int64_t e = 0; e < N; e++)
			for (int64_t j = 0; j < Q; j++) {
				real *v = &row[e * Q + j];
				if (j >= c->fill[e]) {
					*v = 0;
					continue;
				}
				double d = exp(*v - lse) - (e == pos ? exp(*v - lsep) : 0.0);
				*v = (real)(d * coef) * c->inv_tau;
			}
	}
	if (dq)
		cpu_gemm(0, 0, tb, D, nk, 1, L, nk, c->keys, D, 1, dq, D);
	return sum;
}

// x (T,C), proj (D,C), queue (N,Q,D), fill (N), topk (T,K) -> q (T,D), znorm (T), stats (2)
void cpu_contrastive_forward(struct tensor stats, struct tensor q, struct tensor znorm, struct tensor x,
			     struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk, double tau)
{
	const char *op = "contrastive_forward";
	real *qd = cpu_real(q, op), *zn = cpu_real(znorm, op);
	const real *xd = cpu_real(x, op), *Pw = cpu_real(proj, op);
	int64_t T = x.dim[0], C = x.dim[1], D = proj.dim[0];
	cpu_gemm(0, 1, T, D, C, 1, xd, C, Pw, C, 0, qd, D);
	for (int64_t t = 0; t < T; t++) {
		real *row = qd + t * D, nn = 0;
		for (int64_t j = 0; j < D; j++)
			nn += row[j] * row[j];
		nn = R_SQRT(nn);
		zn[t] = nn;
		for (int64_t j = 0; j < D; j++)
			row[j] = nn > 0 ? row[j] / nn : 0;
	}
	struct con_args c = {qd, queue_keys(queue), cpu_i32(fill, op), cpu_i32(topk, op), queue.dim[0], queue.dim[1], D,
			     topk.dim[1], (real)(1.0 / tau)};
	real *L = cpu_scratch(CPU_SCRATCH_CON_SCORES, (size_t)(CON_TB * c.N * c.Q));
	int64_t valid = 0;
	double sum = 0;
	for (int64_t t0 = 0; t0 < T; t0 += CON_TB)
		sum += contrastive_block(&c, t0, T - t0 < CON_TB ? T - t0 : CON_TB, L, 0, NULL, &valid);
	double *st = stats_of(stats, op);
	st[0] = sum;
	st[1] = (double)valid;
}

// dz = (dq − q·(q·dq)) / ‖z‖ for q = z/‖z‖; dproj += dzᵀ·x; dx += dz·proj.
void cpu_contrastive_backward(struct tensor dx, struct tensor dproj, struct tensor x, struct tensor q, struct tensor znorm,
			      struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk, double tau,
			      double coef)
{
	const char *op = "contrastive_backward";
	real *dxd = cpu_real(dx, op), *gP = cpu_real(dproj, op);
	const real *xd = cpu_real(x, op), *qd = cpu_real(q, op), *zn = cpu_real(znorm, op), *Pw = cpu_real(proj, op);
	const int32_t *fl = cpu_i32(fill, op), *top = cpu_i32(topk, op);
	int64_t T = x.dim[0], C = x.dim[1], D = proj.dim[0], k = topk.dim[1];
	struct con_args c = {qd, queue_keys(queue), fl, top, queue.dim[0], queue.dim[1], D, k, (real)(1.0 / tau)};
	real *L = cpu_scratch(CPU_SCRATCH_CON_SCORES, (size_t)(CON_TB * c.N * c.Q));
	real *dz = cpu_scratch(CPU_SCRATCH_CON_GRAD, (size_t)(T * D));
	memset(dz, 0, (size_t)(T * D) * sizeof(real));
	real coef_tok = (real)coef;
	int64_t counted = 0;
	for (int64_t t0 = 0; t0 < T; t0 += CON_TB)
		contrastive_block(&c, t0, T - t0 < CON_TB ? T - t0 : CON_TB, L, coef_tok, dz + t0 * D, &counted);
	for (int64_t t = 0; t < T; t++) {
		real *d = dz + t * D, qdot = 0;
		const real *qr = qd + t * D;
		for (int64_t j = 0; j < D; j++)
			qdot += qr[j] * d[j];
		for (int64_t j = 0; j < D; j++)
			d[j] = zn[t] > 0 ? (d[j] - qr[j] * qdot) / zn[t] : 0;
	}
	cpu_gemm(1, 0, D, C, T, 1, dz, D, xd, C, 1, gP, C);
	if (dxd)
		cpu_gemm(0, 0, T, C, D, 1, dz, D, Pw, C, 1, dxd, C);
}

// q (T,D), topk (T,K) -> queue (N,Q,D), head (N), fill (N) updated, tokens in order
void cpu_queue_push(struct tensor queue, struct tensor head, struct tensor fill, struct tensor q, struct tensor topk)
{
	const char *op = "queue_push";
	int32_t *hd = cpu_i32(head, op), *fl = cpu_i32(fill, op);
	const real *qd = cpu_real(q, op);
	const int32_t *top = cpu_i32(topk, op);
	int64_t T = q.dim[0], D = q.dim[1], k = topk.dim[1], Q = queue.dim[1];
	uint16_t *ring = queue.data;
	for (int64_t t = 0; t < T; t++) {
		int32_t e = top[t * k];
		uint16_t *row = ring + ((int64_t)e * Q + hd[e]) * D;
		for (int64_t j = 0; j < D; j++)
			row[j] = st_f32_to_f16((float)qd[t * D + j]);
		hd[e] = (int32_t)((hd[e] + 1) % Q);
		if (fl[e] < Q)
			fl[e]++;
	}
}
