// ops_cpu_layers.c — the decoder's ops on the CPU, each backward beside its forward: linear, RMSNorm, RoPE,
// attention, SwiGLU, residual, the LM head with cross-entropy.
//
// The math follows transformers' LLaMA/Qwen modules op for op (LlamaRMSNorm, apply_rotary_pos_emb, eager
// attention, LlamaMLP); the only reassociations are inside sums (BLAS, the online softmax), which stay within
// fp32 rounding of the reference.  Frozen weights come in their stored dtype and are converted a tile at a time
// (cpu_weight_tile): the summation order of every product is the same as over an fp32 copy of the whole weight.
#include <math.h>
#include <omp.h>
#include <string.h>

#include "die.h"
#include "ops_cpu_internal.h"

// ----------------------------------------------------------------------------
// linear layer

// inp (T,C), weight (OC,C), bias (OC) or NONE -> out (T,OC).  A few rows (decoding) take the row-wise product
// (ops.h: each row's bits independent of the others); more go through BLAS in tiles of the weight's rows (the
// output's columns), so each output element is one full dot product over C, as with the whole weight.
void cpu_matmul_forward(struct tensor out, struct tensor inp, struct tensor weight, struct tensor bias)
{
	real *o = cpu_real(out, "matmul_forward");
	const real *x = cpu_real(inp, "matmul_forward");
	int64_t T = inp.dim[0], C = inp.dim[1], OC = weight.dim[0];
	int64_t tile = cpu_weight_direct(weight) ? OC : cpu_tile_cols();
	if (T == 0)
		return;
	if (T <= OPS_ROWWISE_MAX_ROWS) {
		cpu_matmul_rowwise(o, OC, 0, x, C, T, weight);
	} else {
		real *buf = cpu_weight_direct(weight) ? NULL : cpu_scratch(CPU_SCRATCH_WEIGHT, (size_t)(tile * C));
		for (int64_t o0 = 0; o0 < OC; o0 += tile) {
			int64_t ob = OC - o0 < tile ? OC - o0 : tile, ld;
			const real *w = cpu_weight_tile(weight, o0, ob, 0, C, buf, &ld);
			cpu_gemm(0, 1, T, ob, C, 1, x, C, w, ld, 0, o + o0, OC);
		}
	}
	if (bias.data) {
		const real *b = cpu_weight_vec(bias, cpu_scratch(CPU_SCRATCH_WEIGHT_VEC, (size_t)OC));
#pragma omp parallel for
		for (int64_t t = 0; t < T; t++)
			for (int64_t i = 0; i < OC; i++)
				o[t * OC + i] += b[i];
	}
}

// dout (T,OC) -> dinp (T,C) += dout·weight (tiles of the weight's columns: each element sums over all of OC in
// one product); dweight (OC,C) += doutᵀ·inp; dbias (OC) += Σ_t dout
void cpu_matmul_backward(struct tensor dinp, struct tensor dweight, struct tensor dbias, struct tensor dout,
			 struct tensor inp, struct tensor weight)
{
	const real *dy = cpu_real(dout, "matmul_backward");
	int64_t T = dout.dim[0], OC = dout.dim[1], C = weight.dim[1];
	int64_t tile = cpu_weight_direct(weight) ? C : cpu_tile_cols();
	if (T == 0)
		return;
	if (dinp.data) {
		real *dx = cpu_real(dinp, "matmul_backward");
		real *buf = cpu_weight_direct(weight) ? NULL : cpu_scratch(CPU_SCRATCH_WEIGHT, (size_t)(tile * OC));
		for (int64_t c0 = 0; c0 < C; c0 += tile) {
			int64_t cb = C - c0 < tile ? C - c0 : tile, ld;
			const real *w = cpu_weight_tile(weight, 0, OC, c0, cb, buf, &ld);
			cpu_gemm(0, 0, T, cb, OC, 1, dy, OC, w, ld, 1, dx + c0, C);
		}
	}
	if (dweight.data)
		cpu_gemm(1, 0, OC, C, T, 1, dy, OC, cpu_real(inp, "matmul_backward"), C, 1,
			 cpu_real(dweight, "matmul_backward"), C);
	if (dbias.data) {
		real *db = cpu_real(dbias, "matmul_backward");
#pragma omp parallel for
		for (int64_t o = 0; o < OC; o++) {
			real s = 0;
			for (int64_t t = 0; t < T; t++)
				s += dy[t * OC + o];
			db[o] += s;
		}
	}
}

// ----------------------------------------------------------------------------
// RMSNorm

// inp (N,D), weight (D) -> out (N,D), rstd (N)
VECTOR_CLONES
void cpu_rmsnorm_forward(struct tensor out, struct tensor rstd, struct tensor inp, struct tensor weight, double eps)
{
	real *y = cpu_real(out, "rmsnorm_forward"), *rs = cpu_real(rstd, "rmsnorm_forward");
	const real *x = cpu_real(inp, "rmsnorm_forward");
	int64_t D = inp.dim[inp.ndim - 1], N = tensor_numel(inp) / D;
	const real *w = cpu_weight_vec(weight, cpu_scratch(CPU_SCRATCH_WEIGHT_VEC, (size_t)D));
	real e = (real)eps;
#pragma omp parallel for
	for (int64_t n = 0; n < N; n++) {
		const real *xr = x + n * D;
		real *yr = y + n * D;
		// transformers: variance = x.pow(2).mean(-1); x * rsqrt(variance + eps), all in fp32
		real ss = 0;
		for (int64_t i = 0; i < D; i++)
			ss += xr[i] * xr[i];
		real r = 1 / R_SQRT(ss / (real)D + e);
		for (int64_t i = 0; i < D; i++)
			yr[i] = w[i] * (xr[i] * r);
		if (rs)
			rs[n] = r;
	}
}

// y = w ⊙ x·r, r = (mean(x²) + eps)^(−1/2):
// dx = r·(w ⊙ dy) − r³/D · x · Σ_i (w_i dy_i x_i);  dw += Σ_n dy ⊙ x·r.
VECTOR_CLONES
void cpu_rmsnorm_backward(struct tensor dinp, struct tensor dweight, struct tensor dout, struct tensor inp,
			  struct tensor weight, struct tensor rstd)
{
	const real *dy = cpu_real(dout, "rmsnorm_backward"), *x = cpu_real(inp, "rmsnorm_backward");
	const real *rs = cpu_real(rstd, "rmsnorm_backward");
	int64_t D = inp.dim[inp.ndim - 1], N = tensor_numel(inp) / D;
	const real *w = cpu_weight_vec(weight, cpu_scratch(CPU_SCRATCH_WEIGHT_VEC, (size_t)D));
	if (dinp.data) {
		real *dx = cpu_real(dinp, "rmsnorm_backward");
#pragma omp parallel for
		for (int64_t n = 0; n < N; n++) {
			const real *xr = x + n * D, *g = dy + n * D;
			real *d = dx + n * D, r = rs[n], dot = 0;
			for (int64_t i = 0; i < D; i++)
				dot += w[i] * g[i] * xr[i];
			real c = r * r * r / (real)D * dot;
			for (int64_t i = 0; i < D; i++)
				d[i] += r * w[i] * g[i] - c * xr[i];
		}
	}
	if (dweight.data) {
		real *dw = cpu_real(dweight, "rmsnorm_backward");
#pragma omp parallel for
		for (int64_t i = 0; i < D; i++) {
			real s = 0;
			for (int64_t n = 0; n < N; n++)
				s += dy[n * D + i] * x[n * D + i] * rs[n];
			dw[i] += s;
		}
	}
}

// ----------------------------------------------------------------------------
// RoPE: a rotation of each (j, j + HD/2) pair by positions[t] · inv_freq[j]; backward rotates by the opposite
// angle (the rotation is orthogonal).

VECTOR_CLONES
static void rope_rotate(struct tensor x, struct tensor positions, struct tensor inv_freq, real sign, const char *op)
{
	real *d = cpu_real(x, op);
	const int32_t *pos = cpu_i32(positions, op);
	const real *f = cpu_real(inv_freq, op);
	int64_t T = x.dim[0], H = x.dim[1], HD = x.dim[2], half = HD / 2;
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++) {
		for (int64_t i = 0; i < half; i++) {
			// transformers computes freqs = position · inv_freq in fp32, then cos and sin of that
			real angle = (real)pos[t] * f[i];
			real c = R_COS(angle), s = sign * R_SIN(angle);
			for (int64_t h = 0; h < H; h++) {
				real *row = d + (t * H + h) * HD;
				real x1 = row[i], x2 = row[i + half];
				row[i] = x1 * c - x2 * s;
				row[i + half] = x2 * c + x1 * s;
			}
		}
	}
}

// x (T,H,HD) in place; positions (T); inv_freq (HD/2)
void cpu_rope_forward(struct tensor x, struct tensor positions, struct tensor inv_freq)
{
	rope_rotate(x, positions, inv_freq, 1, "rope_forward");
}

void cpu_rope_backward(struct tensor dx, struct tensor positions, struct tensor inv_freq)
{
	rope_rotate(dx, positions, inv_freq, -1, "rope_backward");
}

// ----------------------------------------------------------------------------
// attention

// The start of the document holding key index t: doc_offsets[d] ≤ t < doc_offsets[d+1] (binary search).
static int64_t doc_start(const int32_t *doc_offsets, int n_docs, int64_t t)
{
	int lo = 0, hi = n_docs - 1;
	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;
		if (doc_offsets[mid] <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	return doc_offsets[lo];
}

// Keys per block of the online softmax (scores of one block live on the stack).
#define ATT_BLOCK 128
// Queries per block of scores on the matrix-product path.
#define ATT_QB 64
// Fewer queries than this (decoding) take the streaming path.
#define ATT_GEMM_MIN_QUERIES 16

// The streaming path: each (query, head) walks its keys; no scratch, best for a few queries (decoding).  Query i
// sits at key q_rows[i] (NULL: q_offset + i); what it computes depends on its own row and keys only.
VECTOR_CLONES
static void attention_stream(real *out, real *lse, const real *q, const real *k, const real *v, int64_t Tq, int64_t NH,
			     int64_t HD, int64_t NKV, const int32_t *doc_offsets, int n_docs, int64_t q_offset,
			     const int32_t *q_rows)
{
	int64_t group = NH / NKV;
	real scale = 1 / R_SQRT((real)HD);
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
	for (int64_t i = 0; i < Tq; i++) {
		for (int64_t h = 0; h < NH; h++) {
			int64_t t = q_rows ? q_rows[i] : q_offset + i, kvh = h / group;
			int64_t start = doc_start(doc_offsets, n_docs, t);
			const real *qrow = q + (i * NH + h) * HD;
			real *orow = out + (i * NH + h) * HD;
			// Online softmax (Milakov & Gimelshein 2018) over blocks of keys, as flash attention does: the
			// scores of a block go to a small local array, then the running max m and sum l are updated and
			// the output accumulator rescaled by e^(m_old − m_new) once per block.  No (T,T) scores.
			real m = -INFINITY, l = 0, scores[ATT_BLOCK];
			memset(orow, 0, (size_t)HD * sizeof(real));
			for (int64_t s0 = start; s0 <= t; s0 += ATT_BLOCK) {
				int64_t n = t + 1 - s0 < ATT_BLOCK ? t + 1 - s0 : ATT_BLOCK;
				real block_max = -INFINITY;
				for (int64_t j = 0; j < n; j++) {
					const real *krow = k + ((s0 + j) * NKV + kvh) * HD;
					real score = 0;
#pragma omp simd reduction(+ : score)
					for (int64_t d = 0; d < HD; d++)
						score += qrow[d] * krow[d];
					scores[j] = score * scale;
					block_max = scores[j] > block_max ? scores[j] : block_max;
				}
				if (block_max > m) {
					real corr = R_EXP(m - block_max);   // 0 on the first block (m = −inf)
					l *= corr;
#pragma omp simd
					for (int64_t d = 0; d < HD; d++)
						orow[d] *= corr;
					m = block_max;
				}
				for (int64_t j = 0; j < n; j++) {
					const real *vrow = v + ((s0 + j) * NKV + kvh) * HD;
					real p = R_EXP(scores[j] - m);
					l += p;
#pragma omp simd
					for (int64_t d = 0; d < HD; d++)
						orow[d] += p * vrow[d];
				}
			}
			real inv_l = 1 / l;
			for (int64_t d = 0; d < HD; d++)
				orow[d] *= inv_l;
			if (lse)
				lse[h * Tq + i] = m + R_LOG(l);
		}
	}
}

// The matrix-product path, for many queries: per document, head and block of QB queries, the scores are one
// product S = q·kᵀ/sqrt(HD) (QB × keys so far), the causal softmax runs row by row over S in place, and one
// more product gives out = P·v.  Computing the whole block costs up to twice the FLOPs of the causal triangle,
// but at BLAS speed, several times faster than the streaming loops.  The (head, block) pairs of a document
// are shared out among the OpenMP threads, each with its own slice of the backend's scratch (QB × Tk).
VECTOR_CLONES
static void attention_gemm(real *out, real *lse, const real *q, const real *k, const real *v, int64_t Tq, int64_t NH,
			   int64_t HD, int64_t NKV, int64_t Tk, const int32_t *doc_offsets, int n_docs, int64_t q_offset)
{
	int64_t group = NH / NKV, QB = ATT_QB;
	real scale = 1 / R_SQRT((real)HD);
	real *scratch = cpu_scratch(CPU_SCRATCH_ATTENTION, (size_t)omp_get_max_threads() * (size_t)(QB * Tk));
#pragma omp parallel
	{
		real *S = scratch + (int64_t)omp_get_thread_num() * QB * Tk;
		for (int d = 0; d < n_docs; d++) {
			int64_t a = doc_offsets[d], b = doc_offsets[d + 1];
			// this document's queries: key index q_offset + i in [a, b)
			int64_t i_begin = a - q_offset > 0 ? a - q_offset : 0, i_end = b - q_offset < Tq ? b - q_offset : Tq;
			int64_t n_blocks = i_end > i_begin ? (i_end - i_begin + QB - 1) / QB : 0;
#pragma omp for schedule(dynamic)
			for (int64_t task = 0; task < NH * n_blocks; task++) {
				int64_t h = task / n_blocks, kvh = h / group, i0 = i_begin + (task % n_blocks) * QB;
				int64_t rows = i_end - i0 < QB ? i_end - i0 : QB;
				int64_t n_keys = q_offset + i0 + rows - a;   // keys a .. the block's last query
				// S (rows, n_keys) = q[i0.., h] (rows, HD) · k[a.., kvh]ᵀ (HD, n_keys) · scale
				cpu_gemm_serial(0, 1, rows, n_keys, HD, scale, q + (i0 * NH + h) * HD, NH * HD,
						k + (a * NKV + kvh) * HD, NKV * HD, 0, S, n_keys);
				for (int64_t r = 0; r < rows; r++) {
					real *row = S + r * n_keys;
					int64_t n_vis = q_offset + i0 + r - a + 1;   // causal: keys a .. this query
					real m = -INFINITY, z = 0;
					for (int64_t j = 0; j < n_vis; j++)
						m = row[j] > m ? row[j] : m;
					for (int64_t j = 0; j < n_vis; j++) {
						row[j] = R_EXP(row[j] - m);
						z += row[j];
					}
					real inv_z = 1 / z;
					for (int64_t j = 0; j < n_vis; j++)
						row[j] *= inv_z;
					for (int64_t j = n_vis; j < n_keys; j++)
						row[j] = 0;
					if (lse)
						lse[h * Tq + i0 + r] = m + R_LOG(z);
				}
				// out[i0.., h] (rows, HD) = P (rows, n_keys) · v[a.., kvh] (n_keys, HD)
				cpu_gemm_serial(0, 0, rows, HD, n_keys, 1, S, n_keys, v + (a * NKV + kvh) * HD, NKV * HD, 0,
						out + (i0 * NH + h) * HD, NH * HD);
			}
		}
	}
}

// q (Tq,NH,HD), k (Tk,NKV,HD), v (Tk,NKV,HD), q_rows (Tq) or NONE -> out (Tq,NH,HD), lse (NH,Tq).  Queries at
// given key rows (a batched decoding step) take the streaming path whatever their number.
void cpu_attention_forward(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			   struct tensor doc_offsets, struct tensor q_rows, int n_docs, int64_t q_offset)
{
	const char *op = "attention_forward";
	real *o = cpu_real(out, op), *l = cpu_real(lse, op);
	const real *qd = cpu_real(q, op), *kd = cpu_real(k, op), *vd = cpu_real(v, op);
	const int32_t *offs = cpu_i32(doc_offsets, op), *rows = cpu_i32(q_rows, op);
	int64_t Tq = q.dim[0], NH = q.dim[1], HD = q.dim[2], NKV = k.dim[1], Tk = k.dim[0];
	if (rows)
		for (int64_t i = 0; i < Tq; i++)
			if (rows[i] < 0 || rows[i] >= Tk)
				die(EXIT_FAIL, "%s: query %lld at key %d of %lld", op, (long long)i, rows[i], (long long)Tk);
	if (Tq >= ATT_GEMM_MIN_QUERIES && !rows)
		attention_gemm(o, l, qd, kd, vd, Tq, NH, HD, NKV, Tk, offs, n_docs, q_offset);
	else
		attention_stream(o, l, qd, kd, vd, Tq, NH, HD, NKV, offs, n_docs, q_offset, rows);
}

// Attention backward (FlashAttention-2, Dao 2023, Algorithm 2, with the probabilities recomputed from lse):
//   P = exp(S − lse), dP = dO·Vᵀ, D_i = Σ_j P_ij dP_ij = dO_i·O_i, dS = P ⊙ (dP − D), dQ += scale·dS·K,
//   dK += scale·dSᵀ·Q, dV += Pᵀ·dO.
// A task is one (document, kv head): the query heads of that kv head and the rows of that document are touched
// by no other task, so there are no races and the sums run in a fixed order.
void cpu_attention_backward(struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout,
			    struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			    struct tensor doc_offsets, int n_docs, int64_t q_offset)
{
	const char *op = "attention_backward";
	real *dqd = cpu_real(dq, op), *dkd = cpu_real(dk, op), *dvd = cpu_real(dv, op);
	const real *dod = cpu_real(dout, op), *od = cpu_real(out, op), *ld = cpu_real(lse, op);
	const real *qd = cpu_real(q, op), *kd = cpu_real(k, op), *vd = cpu_real(v, op);
	const int32_t *offs = cpu_i32(doc_offsets, op);
	int64_t Tq = q.dim[0], NH = q.dim[1], HD = q.dim[2], NKV = k.dim[1], Tk = k.dim[0];
	int64_t group = NH / NKV, QB = ATT_QB, ldq = NH * HD, ldk = NKV * HD;
	real scale = 1 / R_SQRT((real)HD);
	size_t per_thread = (size_t)(2 * QB * Tk + QB);
	real *scratch = cpu_scratch(CPU_SCRATCH_ATTENTION, (size_t)omp_get_max_threads() * per_thread);
#pragma omp parallel
	{
		real *P = scratch + (size_t)omp_get_thread_num() * per_thread, *dP = P + QB * Tk;
#pragma omp for schedule(dynamic)
		for (int64_t task = 0; task < (int64_t)n_docs * NKV; task++) {
			int d = (int)(task / NKV);
			int64_t kvh = task % NKV, a = offs[d], b = offs[d + 1];
			int64_t i_begin = a - q_offset > 0 ? a - q_offset : 0, i_end = b - q_offset < Tq ? b - q_offset : Tq;
			for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
				for (int64_t i0 = i_begin; i0 < i_end; i0 += QB) {
					int64_t rows = i_end - i0 < QB ? i_end - i0 : QB;
					int64_t n_keys = q_offset + i0 + rows - a;
					const real *qb = qd + (i0 * NH + h) * HD, *kb = kd + (a * NKV + kvh) * HD;
					const real *vb = vd + (a * NKV + kvh) * HD, *dob = dod + (i0 * NH + h) * HD;
					cpu_gemm_serial(0, 1, rows, n_keys, HD, scale, qb, ldq, kb, ldk, 0, P, n_keys);
					cpu_gemm_serial(0, 1, rows, n_keys, HD, 1, dob, ldq, vb, ldk, 0, dP, n_keys);
					for (int64_t r = 0; r < rows; r++) {
						const real *o = od + ((i0 + r) * NH + h) * HD, *g = dob + r * ldq;
						real D = 0, l = ld[h * Tq + i0 + r];
						for (int64_t e = 0; e < HD; e++)
							D += g[e] * o[e];
						int64_t n_vis = q_offset + i0 + r - a + 1;
						real *p = P + r * n_keys, *dp = dP + r * n_keys;
						for (int64_t j = 0; j < n_keys; j++) {
							real pj = j < n_vis ? R_EXP(p[j] - l) : 0;
							p[j] = pj;
							dp[j] = pj * (dp[j] - D);   // dS
						}
					}
					// dV (keys, HD) += Pᵀ·dO, dK += scale·dSᵀ·Q, dQ += scale·dS·K
					cpu_gemm_serial(1, 0, n_keys, HD, rows, 1, P, n_keys, dob, ldq, 1, dvd + (a * NKV + kvh) * HD,
							ldk);
					cpu_gemm_serial(1, 0, n_keys, HD, rows, scale, dP, n_keys, qb, ldq, 1,
							dkd + (a * NKV + kvh) * HD, ldk);
					cpu_gemm_serial(0, 0, rows, HD, n_keys, scale, dP, n_keys, kb, ldk, 1,
							dqd + (i0 * NH + h) * HD, ldq);
				}
			}
		}
	}
}

// ----------------------------------------------------------------------------
// SwiGLU

// gate (T,F), up (T,F) -> out (T,F)
VECTOR_CLONES
void cpu_swiglu_forward(struct tensor out, struct tensor gate, struct tensor up)
{
	real *o = cpu_real(out, "swiglu_forward");
	const real *g = cpu_real(gate, "swiglu_forward"), *u = cpu_real(up, "swiglu_forward");
	int64_t n = tensor_numel(gate);
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++)
		o[i] = g[i] / (1 + R_EXP(-g[i])) * u[i];
}

// silu(g)·u with σ = 1/(1+e^−g): d/dg = u·σ·(1 + g·(1 − σ)), d/du = g·σ.
VECTOR_CLONES
void cpu_swiglu_backward(struct tensor dgate, struct tensor dup, struct tensor dout, struct tensor gate,
			 struct tensor up)
{
	real *dg = cpu_real(dgate, "swiglu_backward"), *du = cpu_real(dup, "swiglu_backward");
	const real *dy = cpu_real(dout, "swiglu_backward"), *g = cpu_real(gate, "swiglu_backward");
	const real *u = cpu_real(up, "swiglu_backward");
	int64_t n = tensor_numel(gate);
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++) {
		real sig = 1 / (1 + R_EXP(-g[i]));
		dg[i] += dy[i] * u[i] * sig * (1 + g[i] * (1 - sig));
		du[i] += dy[i] * g[i] * sig;
	}
}

// ----------------------------------------------------------------------------
// residual

// a (N), b (N) -> out (N)
VECTOR_CLONES
void cpu_residual_forward(struct tensor out, struct tensor a, struct tensor b)
{
	real *o = cpu_real(out, "residual_forward");
	const real *x = cpu_real(a, "residual_forward"), *y = cpu_real(b, "residual_forward");
	int64_t n = tensor_numel(a);
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++)
		o[i] = x[i] + y[i];
}

VECTOR_CLONES
void cpu_residual_backward(struct tensor da, struct tensor db, struct tensor dout)
{
	real *ga = cpu_real(da, "residual_backward"), *gb = cpu_real(db, "residual_backward");
	const real *dy = cpu_real(dout, "residual_backward");
	int64_t n = tensor_numel(dout);
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++) {
		if (ga)
			ga[i] += dy[i];
		if (gb)
			gb[i] += dy[i];
	}
}

// ----------------------------------------------------------------------------
// LM head + cross-entropy

// Rows per tile and vocabulary entries per tile of logits (4 MB of fp32).
#define CE_TB 128
#define CE_VC 8192

// x·w for one row of x and one row of the head, in the order every LM-head op sums a target's logit.
static real head_dot(const real *x, struct tensor weight, int64_t row, int64_t C, real *buf)
{
	int64_t ld;
	const real *w = cpu_weight_tile(weight, row, 1, 0, C, buf, &ld);
	real logit = 0;
	for (int64_t c = 0; c < C; c++)
		logit += x[c] * w[c];
	return logit;
}

// Σ_j e^(row_j − m) of one tile in fp64: a sequential fp32 sum over a 151k vocabulary drifts by ~1e-4 in the
// log-likelihood on checkpoints with large weights, where torch's logsumexp stays within 1e-6.
static double tile_sum_exp(const real *row, int64_t n, real m)
{
	double s = 0.0;
	for (int64_t j = 0; j < n; j++)
		s += (double)R_EXP(row[j] - m);
	return s;
}

// x (T,C), weight (V,C), targets (T) -> losses (T), lse (T)
VECTOR_CLONES
void cpu_lmhead_ce_forward(struct tensor losses, struct tensor lse, struct tensor x, struct tensor weight,
			   struct tensor targets)
{
	const char *op = "lmhead_ce_forward";
	real *loss = cpu_real(losses, op), *ls = cpu_real(lse, op);
	const real *xd = cpu_real(x, op);
	const int32_t *tgt = cpu_i32(targets, op);
	int64_t T = x.dim[0], C = x.dim[1], V = weight.dim[0];
	real *tile = cpu_scratch(CPU_SCRATCH_LMHEAD, (size_t)CE_TB * CE_VC);
	real *wbuf = cpu_weight_direct(weight) ? NULL : cpu_scratch(CPU_SCRATCH_WEIGHT, (size_t)CE_VC * (size_t)C);
	real *row_buf = cpu_scratch(CPU_SCRATCH_WEIGHT_VEC, (size_t)omp_get_max_threads() * (size_t)C);
	// lse holds the running max and losses the running sum until every tile is done.  The vocabulary tiles are
	// the outer loop, so a half-precision head is converted once per call, not once per block of rows; each row
	// still sees the tiles in vocabulary order.
	real *run_max = ls, *run_sum = loss;
	for (int64_t r = 0; r < T; r++) {
		run_max[r] = -INFINITY;
		run_sum[r] = 0;
	}
	for (int64_t v0 = 0; v0 < V; v0 += CE_VC) {
		int64_t vc = V - v0 < CE_VC ? V - v0 : CE_VC, ldw;
		const real *w = cpu_weight_tile(weight, v0, vc, 0, C, wbuf, &ldw);
		for (int64_t r0 = 0; r0 < T; r0 += CE_TB) {
			int64_t rb = T - r0 < CE_TB ? T - r0 : CE_TB;
			// tile (rb,vc) = x[r0:r0+rb] · weight[v0:v0+vc]ᵀ
			cpu_gemm(0, 1, rb, vc, C, 1, xd + r0 * C, C, w, ldw, 0, tile, vc);
#pragma omp parallel for
			for (int64_t r = 0; r < rb; r++) {
				const real *row = tile + r * vc;
				real m = run_max[r0 + r];
				for (int64_t j = 0; j < vc; j++)
					m = row[j] > m ? row[j] : m;
				double s = (double)run_sum[r0 + r] * exp((double)run_max[r0 + r] - (double)m) +
					   tile_sum_exp(row, vc, m);
				run_max[r0 + r] = m;
				run_sum[r0 + r] = (real)s;
			}
		}
	}
#pragma omp parallel for
	for (int64_t r = 0; r < T; r++) {
		// the target's logit as its own dot product: exact enough and no bookkeeping across tiles
		real logit = head_dot(xd + r * C, weight, tgt[r], C, row_buf + (int64_t)omp_get_thread_num() * C);
		real l = run_max[r] + R_LOG(run_sum[r]);
		ls[r] = l;
		loss[r] = l - logit;
	}
}

// dlogits = (softmax − onehot)·dloss, tile by tile from the saved lse: dx += dlogits·W, dW += dlogitsᵀ·x.
VECTOR_CLONES
void cpu_lmhead_ce_backward(struct tensor dx, struct tensor dweight, struct tensor x, struct tensor weight,
			    struct tensor targets, struct tensor lse, struct tensor dlosses)
{
	const char *op = "lmhead_ce_backward";
	real *dxd = cpu_real(dx, op), *dwd = cpu_real(dweight, op);
	const real *xd = cpu_real(x, op), *ls = cpu_real(lse, op), *dl = cpu_real(dlosses, op);
	const int32_t *tgt = cpu_i32(targets, op);
	int64_t T = x.dim[0], C = x.dim[1], V = weight.dim[0];
	real *tile = cpu_scratch(CPU_SCRATCH_LMHEAD, (size_t)CE_TB * CE_VC);
	real *wbuf = cpu_weight_direct(weight) ? NULL : cpu_scratch(CPU_SCRATCH_WEIGHT, (size_t)CE_VC * (size_t)C);
	// vocabulary tiles outer (one conversion of a half-precision head per call); each row of dx still adds the
	// tiles up in vocabulary order
	for (int64_t v0 = 0; v0 < V; v0 += CE_VC) {
		int64_t vc = V - v0 < CE_VC ? V - v0 : CE_VC, ldw;
		const real *w = cpu_weight_tile(weight, v0, vc, 0, C, wbuf, &ldw);
		for (int64_t r0 = 0; r0 < T; r0 += CE_TB) {
			int64_t rb = T - r0 < CE_TB ? T - r0 : CE_TB;
			cpu_gemm(0, 1, rb, vc, C, 1, xd + r0 * C, C, w, ldw, 0, tile, vc);
#pragma omp parallel for
			for (int64_t r = 0; r < rb; r++) {
				real *row = tile + r * vc, l = ls[r0 + r], g = dl[r0 + r];
				for (int64_t j = 0; j < vc; j++)
					row[j] = R_EXP(row[j] - l) * g;
				int64_t tj = tgt[r0 + r] - v0;
				if (tj >= 0 && tj < vc)
					row[tj] -= g;
			}
			if (dxd)
				cpu_gemm(0, 0, rb, C, vc, 1, tile, vc, w, ldw, 1, dxd + r0 * C, C);
			if (dwd)
				cpu_gemm(1, 0, vc, C, rb, 1, tile, vc, xd + r0 * C, C, 1, dwd + v0 * C, C);
		}
	}
}

// x (M,C), weight (V,C), lse (M), rows (P), ids (P) -> out (P) = x[rows]·weight[ids] − lse[rows]
void cpu_lmhead_logprob(struct tensor out, struct tensor x, struct tensor weight, struct tensor lse, struct tensor rows,
			struct tensor ids)
{
	const char *op = "lmhead_logprob";
	real *o = cpu_real(out, op);
	const real *xd = cpu_real(x, op), *ls = cpu_real(lse, op);
	const int32_t *rw = cpu_i32(rows, op), *id = cpu_i32(ids, op);
	int64_t P = out.dim[0], C = x.dim[1];
	real *buf = cpu_scratch(CPU_SCRATCH_WEIGHT_VEC, (size_t)C);
	for (int64_t p = 0; p < P; p++)
		o[p] = head_dot(xd + (int64_t)rw[p] * C, weight, id[p], C, buf) - ls[rw[p]];
}
