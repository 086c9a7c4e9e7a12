// ops_cpu.c — the CPU reference backend of ops.h: fp32, OpenBLAS for matrix products, OpenMP for the loops.
//
// The math follows transformers' LLaMA/Qwen modules op for op (LlamaRMSNorm, apply_rotary_pos_emb, eager
// attention, LlamaMLP); the only reassociations are inside sums (BLAS, the online softmax), which stay within
// fp32 rounding of the reference.
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blas_select.h"
#include "die.h"

// One source for both precisions (ops.h: real).
#ifdef MEDMOE_DOUBLE
#define GEMM cblas_dgemm
#define R_EXP exp
#define R_SQRT sqrt
#define R_LOG log
#define R_COS cos
#define R_SIN sin
#else
#define GEMM cblas_sgemm
#define R_EXP expf
#define R_SQRT sqrtf
#define R_LOG logf
#define R_COS cosf
#define R_SIN sinf
#endif

// The loops that are not BLAS are compiled for each vector width and picked at load time (GCC function
// multiversioning through an ifunc), so one portable binary still uses AVX2/AVX-512 where the CPU has them.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

static void need_cpu(struct tensor t, const char *op)
{
	if (t.data && t.device != DEVICE_CPU)
		die(EXIT_FAIL, "%s: tensor on a non-CPU device given to the CPU backend", op);
}

// OpenBLAS's kernels are chosen by the CPU's instruction sets before main (blas_select.h); this warns, once
// per pipeline, when that could not be done.
void ops_cpu_check_blas(void)
{
	blas_select_check();
}

// ----------------------------------------------------------------------------
// matrix products: one thread pool

// The Debian OpenBLAS (pthreads build) keeps a thread pool of its own.  Next to libgomp's workers, which spin
// a while after each parallel loop, the two pools fight over the cores: the forward ran 2-3x slower on 2 cores
// unless OMP_WAIT_POLICY=passive was set (bench/model_forward.sh).  So OpenBLAS runs single-threaded, called
// from OpenMP threads, and each product is split across the OpenMP team by columns of its output.
static void blas_one_thread(void)
{
	static int done;
	if (!done) {
		openblas_set_num_threads(1);
		done = 1;
	}
}

// C (M,N) = alpha · op(A) · op(B) + beta · C, where op(A) = A (M,K), or Aᵀ for A (K,M) when a_trans;
// op(B) = Bᵀ for B (N,K) when b_trans, else B (K,N).
// Each OpenMP thread computes a block of C's columns (a multiple of 16, whole SIMD panels), so every element is
// summed in the same order whatever the thread count: runs repeat bit for bit.
static void gemm_split(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, real alpha, const real *A,
		       int64_t lda, const real *B, int64_t ldb, real beta, real *C, int64_t ldc)
{
	blas_one_thread();
	if (M == 0 || N == 0)
		return;
#pragma omp parallel
	{
		int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
		int64_t chunk = ((N + nt - 1) / nt + 15) / 16 * 16, n0 = id * chunk;
		int64_t n1 = n0 + chunk < N ? n0 + chunk : N;
		if (n0 < n1)
			GEMM(CblasRowMajor, a_trans ? CblasTrans : CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans,
			     (int)M, (int)(n1 - n0), (int)K, alpha, A, (int)lda, b_trans ? B + n0 * ldb : B + n0, (int)ldb,
			     beta, C + n0, (int)ldc);
	}
}

static void sgemm_split(int b_trans, int64_t M, int64_t N, int64_t K, real alpha, const real *A, int64_t lda,
			const real *B, int64_t ldb, real beta, real *C, int64_t ldc)
{
	gemm_split(0, b_trans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ops_gemm(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, real alpha, const real *A, int64_t lda,
	      const real *B, int64_t ldb, real beta, real *C, int64_t ldc)
{
	gemm_split(a_trans, b_trans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// ----------------------------------------------------------------------------
// embedding

// ids (T), wte (V,C) -> out (T,C)
void embedding_forward(struct tensor out, const int32_t *ids, struct tensor wte)
{
	need_cpu(out, "embedding_forward");
	need_cpu(wte, "embedding_forward");
	int64_t T = out.dim[0], C = out.dim[1];
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++)
		memcpy(out.data + t * C, wte.data + (int64_t)ids[t] * C, (size_t)C * sizeof(real));
}

// ----------------------------------------------------------------------------
// matmul

// inp (T,C), weight (OC,C), bias (OC) or NONE -> out (T,OC)
void matmul_forward(struct tensor out, struct tensor inp, struct tensor weight, struct tensor bias)
{
	need_cpu(out, "matmul_forward");
	need_cpu(inp, "matmul_forward");
	need_cpu(weight, "matmul_forward");
	int64_t T = inp.dim[0], C = inp.dim[1], OC = weight.dim[0];
	if (T == 0)
		return;
	sgemm_split(1, T, OC, C, 1.0f, inp.data, C, weight.data, C, 0.0f, out.data, OC);
	if (bias.data) {
#pragma omp parallel for
		for (int64_t t = 0; t < T; t++)
			for (int64_t o = 0; o < OC; o++)
				out.data[t * OC + o] += bias.data[o];
	}
}

// ----------------------------------------------------------------------------
// RMSNorm

// inp (N,D), weight (D) -> out (N,D), rstd (N)
VECTOR_CLONES
void rmsnorm_forward(struct tensor out, struct tensor rstd, struct tensor inp, struct tensor weight, real eps)
{
	need_cpu(out, "rmsnorm_forward");
	need_cpu(inp, "rmsnorm_forward");
	int64_t D = inp.dim[inp.ndim - 1], N = tensor_numel(inp) / D;
#pragma omp parallel for
	for (int64_t n = 0; n < N; n++) {
		const real *x = inp.data + n * D;
		real *y = out.data + n * D;
		// transformers: variance = x.pow(2).mean(-1); x * rsqrt(variance + eps), all in fp32
		real ss = 0.0f;
		for (int64_t i = 0; i < D; i++)
			ss += x[i] * x[i];
		real r = 1.0f / R_SQRT(ss / (real)D + eps);
		for (int64_t i = 0; i < D; i++)
			y[i] = weight.data[i] * (x[i] * r);
		if (rstd.data)
			rstd.data[n] = r;
	}
}

// ----------------------------------------------------------------------------
// RoPE

// x (T,H,HD) in place; positions (T); inv_freq (HD/2)
VECTOR_CLONES
void rope_forward(struct tensor x, const int32_t *positions, struct tensor inv_freq)
{
	need_cpu(x, "rope_forward");
	int64_t T = x.dim[0], H = x.dim[1], HD = x.dim[2], half = HD / 2;
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++) {
		for (int64_t i = 0; i < half; i++) {
			// transformers computes freqs = position · inv_freq in fp32, then cos and sin of that
			real angle = (real)positions[t] * inv_freq.data[i];
			real c = R_COS(angle), s = R_SIN(angle);
			for (int64_t h = 0; h < H; h++) {
				real *row = x.data + (t * H + h) * HD;
				real x1 = row[i], x2 = row[i + half];
				row[i] = x1 * c - x2 * s;
				row[i + half] = x2 * c + x1 * s;
			}
		}
	}
}

// ----------------------------------------------------------------------------
// attention

// The document holding key index t: the d with doc_offsets[d] ≤ t < doc_offsets[d+1] (binary search).
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

// The streaming path: each (query, head) walks its keys; no scratch, best for a few queries (decoding).
VECTOR_CLONES
static void attention_stream(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			     const int32_t *doc_offsets, int n_docs, int64_t q_offset)
{
	int64_t Tq = q.dim[0], NH = q.dim[1], HD = q.dim[2], NKV = k.dim[1];
	int64_t group = NH / NKV;
	real scale = 1.0f / R_SQRT((real)HD);
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
	for (int64_t i = 0; i < Tq; i++) {
		for (int64_t h = 0; h < NH; h++) {
			int64_t t = q_offset + i, kvh = h / group;
			int64_t start = doc_start(doc_offsets, n_docs, t);
			const real *qrow = q.data + (i * NH + h) * HD;
			real *orow = out.data + (i * NH + h) * HD;
			// Online softmax (Milakov & Gimelshein 2018) over blocks of keys, as flash attention does: the
			// scores of a block go to a small local array, then the running max m and sum l are updated and
			// the output accumulator rescaled by e^(m_old − m_new) once per block.  No (T,T) scores.
			real m = -INFINITY, l = 0.0f, scores[ATT_BLOCK];
			memset(orow, 0, (size_t)HD * sizeof(real));
			for (int64_t s0 = start; s0 <= t; s0 += ATT_BLOCK) {
				int64_t n = t + 1 - s0 < ATT_BLOCK ? t + 1 - s0 : ATT_BLOCK;
				real block_max = -INFINITY;
				for (int64_t j = 0; j < n; j++) {
					const real *krow = k.data + ((s0 + j) * NKV + kvh) * HD;
					real score = 0.0f;
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
					const real *vrow = v.data + ((s0 + j) * NKV + kvh) * HD;
					real p = R_EXP(scores[j] - m);
					l += p;
#pragma omp simd
					for (int64_t d = 0; d < HD; d++)
						orow[d] += p * vrow[d];
				}
			}
			real inv_l = 1.0f / l;
			for (int64_t d = 0; d < HD; d++)
				orow[d] *= inv_l;
			if (lse.data)
				lse.data[h * Tq + i] = m + R_LOG(l);
		}
	}
}

// The GEMM path, for many queries: per document, head and block of QB queries, the scores are one sgemm
// S = q·kᵀ/sqrt(HD) (QB × keys so far), the causal softmax runs row by row over S in place, and one more sgemm
// gives out = P·v.  Computing the whole block costs up to twice the FLOPs of the causal triangle, but at BLAS
// speed, several times faster than the streaming loops.  The (head, block) pairs of a document are shared out
// among the OpenMP threads, each with its own slice of scratch (P ≥ threads, QB, ≥ Tk).
VECTOR_CLONES
static void attention_gemm(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			   const int32_t *doc_offsets, int n_docs, int64_t q_offset, struct tensor scratch)
{
	int64_t Tq = q.dim[0], NH = q.dim[1], HD = q.dim[2], NKV = k.dim[1], Tk = k.dim[0];
	int64_t group = NH / NKV, P = scratch.dim[0], QB = scratch.dim[1], cols = scratch.dim[2];
	if (cols < Tk || P < omp_get_max_threads())
		die(EXIT_FAIL, "attention_forward: scratch (%lld, %lld, %lld) is too small for %d threads and %lld keys",
		    (long long)P, (long long)QB, (long long)cols, omp_get_max_threads(), (long long)Tk);
	real scale = 1.0f / R_SQRT((real)HD);
	blas_one_thread();
#pragma omp parallel
	{
		real *S = scratch.data + (int64_t)omp_get_thread_num() * QB * cols;
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
				GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_keys, (int)HD, scale,
					    q.data + (i0 * NH + h) * HD, (int)(NH * HD), k.data + (a * NKV + kvh) * HD,
					    (int)(NKV * HD), 0.0f, S, (int)n_keys);
				for (int64_t r = 0; r < rows; r++) {
					real *row = S + r * n_keys;
					int64_t n_vis = q_offset + i0 + r - a + 1;   // causal: keys a .. this query
					real m = -INFINITY, z = 0.0f;
					for (int64_t j = 0; j < n_vis; j++)
						m = row[j] > m ? row[j] : m;
					for (int64_t j = 0; j < n_vis; j++) {
						row[j] = R_EXP(row[j] - m);
						z += row[j];
					}
					real inv_z = 1.0f / z;
					for (int64_t j = 0; j < n_vis; j++)
						row[j] *= inv_z;
					for (int64_t j = n_vis; j < n_keys; j++)
						row[j] = 0.0f;
					if (lse.data)
						lse.data[h * Tq + i0 + r] = m + R_LOG(z);
				}
				// out[i0.., h] (rows, HD) = P (rows, n_keys) · v[a.., kvh] (n_keys, HD)
				GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)HD, (int)n_keys, 1.0f,
					    S, (int)n_keys, v.data + (a * NKV + kvh) * HD, (int)(NKV * HD), 0.0f,
					    out.data + (i0 * NH + h) * HD, (int)(NH * HD));
			}
		}
	}
}

// q (Tq,NH,HD), k (Tk,NKV,HD), v (Tk,NKV,HD), scratch (P,QB,≥Tk) or NONE -> out (Tq,NH,HD), lse (NH,Tq)
void attention_forward(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
		       const int32_t *doc_offsets, int n_docs, int64_t q_offset, struct tensor scratch)
{
	need_cpu(out, "attention_forward");
	need_cpu(q, "attention_forward");
	need_cpu(k, "attention_forward");
	need_cpu(v, "attention_forward");
	need_cpu(scratch, "attention_forward");
	if (scratch.data)
		attention_gemm(out, lse, q, k, v, doc_offsets, n_docs, q_offset, scratch);
	else
		attention_stream(out, lse, q, k, v, doc_offsets, n_docs, q_offset);
}

// ----------------------------------------------------------------------------
// SwiGLU

// gate (T,F), up (T,F) -> out (T,F)
VECTOR_CLONES
void swiglu_forward(struct tensor out, struct tensor gate, struct tensor up)
{
	need_cpu(out, "swiglu_forward");
	int64_t n = tensor_numel(gate);
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++) {
		real g = gate.data[i];
		out.data[i] = g / (1.0f + R_EXP(-g)) * up.data[i];
	}
}

// ----------------------------------------------------------------------------
// residual

// a (N), b (N) -> out (N)
VECTOR_CLONES
void residual_forward(struct tensor out, struct tensor a, struct tensor b)
{
	need_cpu(out, "residual_forward");
	int64_t n = tensor_numel(a);
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++)
		out.data[i] = a.data[i] + b.data[i];
}

// ----------------------------------------------------------------------------
// LM head + cross-entropy

// Σ_j exp(row[j] − m) over one tile of logits, accumulated in fp64.  A plain fp32 running sum over a
// vocabulary tile loses ~1e-4 of log-sum-exp on checkpoints with large logits (init std 0.2: many terms of
// similar size, each add rounding the same way), where torch's logsumexp stays within 1e-6; fp64 partial sums
// make the only fp32 roundings the exps themselves (< 1 ulp each, unbiased) and one per tile.
static double tile_sum_exp(const real *row, int64_t n, real m)
{
	double s = 0.0;
	for (int64_t j = 0; j < n; j++)
		s += (double)R_EXP(row[j] - m);
	return s;
}

// x (T,C), weight (V,C), targets (T), scratch (TB,VC) -> losses (T), lse (T)
VECTOR_CLONES
void lmhead_ce_forward(struct tensor losses, struct tensor lse, struct tensor x, struct tensor weight,
		       const int32_t *targets, struct tensor scratch)
{
	need_cpu(losses, "lmhead_ce_forward");
	need_cpu(x, "lmhead_ce_forward");
	need_cpu(weight, "lmhead_ce_forward");
	need_cpu(scratch, "lmhead_ce_forward");
	int64_t T = x.dim[0], C = x.dim[1], V = weight.dim[0];
	int64_t TB = scratch.dim[0], VC = scratch.dim[1];
	// lse holds the running max and losses the running sum until a row block is done.
	real *run_max = lse.data, *run_sum = losses.data;
	for (int64_t r0 = 0; r0 < T; r0 += TB) {
		int64_t rb = T - r0 < TB ? T - r0 : TB;
		for (int64_t r = r0; r < r0 + rb; r++) {
			run_max[r] = -INFINITY;
			run_sum[r] = 0.0f;
		}
		for (int64_t v0 = 0; v0 < V; v0 += VC) {
			int64_t vc = V - v0 < VC ? V - v0 : VC;
			// tile (rb,vc) = x[r0:r0+rb] · weight[v0:v0+vc]ᵀ
			sgemm_split(1, rb, vc, C, 1.0f, x.data + r0 * C, C, weight.data + v0 * C, C, 0.0f, scratch.data, vc);
#pragma omp parallel for
			for (int64_t r = 0; r < rb; r++) {
				const real *row = scratch.data + r * vc;
				real m = run_max[r0 + r];
				for (int64_t j = 0; j < vc; j++)
					m = row[j] > m ? row[j] : m;
				double s = (double)run_sum[r0 + r] * exp((double)run_max[r0 + r] - (double)m) +
					   tile_sum_exp(row, vc, m);
				run_max[r0 + r] = m;
				run_sum[r0 + r] = (real)s;
			}
		}
#pragma omp parallel for
		for (int64_t r = r0; r < r0 + rb; r++) {
			// the target's logit as its own dot product: exact enough and no bookkeeping across tiles
			const real *w = weight.data + (int64_t)targets[r] * C, *xr = x.data + r * C;
			real logit = 0.0f;
			for (int64_t c = 0; c < C; c++)
				logit += xr[c] * w[c];
			real l = run_max[r] + R_LOG(run_sum[r]);
			lse.data[r] = l;
			losses.data[r] = l - logit;
		}
	}
}

// ----------------------------------------------------------------------------
// backward passes (ops.h: each ACCUMULATES into its gradient outputs)

// dout (T,C) -> dwte (V,C) += rows scattered by ids.  Serial: two tokens with the same id add into one row, and
// a fixed order keeps the sum reproducible.
void embedding_backward(struct tensor dwte, struct tensor dout, const int32_t *ids)
{
	need_cpu(dwte, "embedding_backward");
	int64_t T = dout.dim[0], C = dout.dim[1];
	for (int64_t t = 0; t < T; t++) {
		real *row = dwte.data + (int64_t)ids[t] * C;
		const real *g = dout.data + t * C;
		for (int64_t c = 0; c < C; c++)
			row[c] += g[c];
	}
}

// dout (T,OC) -> dinp (T,C) += dout·weight; dweight (OC,C) += doutᵀ·inp; dbias (OC) += Σ_t dout
void matmul_backward(struct tensor dinp, struct tensor dweight, struct tensor dbias, struct tensor dout,
		     struct tensor inp, struct tensor weight)
{
	need_cpu(dout, "matmul_backward");
	int64_t T = dout.dim[0], OC = dout.dim[1], C = weight.dim[1];
	if (T == 0)
		return;
	if (dinp.data)
		gemm_split(0, 0, T, C, OC, 1.0f, dout.data, OC, weight.data, C, 1.0f, dinp.data, C);
	if (dweight.data)
		gemm_split(1, 0, OC, C, T, 1.0f, dout.data, OC, inp.data, C, 1.0f, dweight.data, C);
	if (dbias.data) {
#pragma omp parallel for
		for (int64_t o = 0; o < OC; o++) {
			real s = 0.0f;
			for (int64_t t = 0; t < T; t++)
				s += dout.data[t * OC + o];
			dbias.data[o] += s;
		}
	}
}

// y = w ⊙ x·r, r = (mean(x²) + eps)^(−1/2):
// dx = r·(w ⊙ dy) − r³/D · x · Σ_i (w_i dy_i x_i);  dw += Σ_n dy ⊙ x·r.
VECTOR_CLONES
void rmsnorm_backward(struct tensor dinp, struct tensor dweight, struct tensor dout, struct tensor inp,
		      struct tensor weight, struct tensor rstd)
{
	need_cpu(dout, "rmsnorm_backward");
	int64_t D = inp.dim[inp.ndim - 1], N = tensor_numel(inp) / D;
	if (dinp.data) {
#pragma omp parallel for
		for (int64_t n = 0; n < N; n++) {
			const real *x = inp.data + n * D, *dy = dout.data + n * D;
			real *dx = dinp.data + n * D, r = rstd.data[n], dot = 0.0f;
			for (int64_t i = 0; i < D; i++)
				dot += weight.data[i] * dy[i] * x[i];
			real c = r * r * r / (real)D * dot;
			for (int64_t i = 0; i < D; i++)
				dx[i] += r * weight.data[i] * dy[i] - c * x[i];
		}
	}
	if (dweight.data) {
#pragma omp parallel for
		for (int64_t i = 0; i < D; i++) {
			real s = 0.0f;
			for (int64_t n = 0; n < N; n++)
				s += dout.data[n * D + i] * inp.data[n * D + i] * rstd.data[n];
			dweight.data[i] += s;
		}
	}
}

// The rotation is orthogonal: its transpose is the rotation by −angle.
VECTOR_CLONES
void rope_backward(struct tensor dx, const int32_t *positions, struct tensor inv_freq)
{
	need_cpu(dx, "rope_backward");
	int64_t T = dx.dim[0], H = dx.dim[1], HD = dx.dim[2], half = HD / 2;
#pragma omp parallel for
	for (int64_t t = 0; t < T; t++) {
		for (int64_t i = 0; i < half; i++) {
			real angle = (real)positions[t] * inv_freq.data[i];
			real c = R_COS(angle), s = R_SIN(angle);
			for (int64_t h = 0; h < H; h++) {
				real *row = dx.data + (t * H + h) * HD;
				real g1 = row[i], g2 = row[i + half];
				row[i] = g1 * c + g2 * s;
				row[i + half] = g2 * c - g1 * s;
			}
		}
	}
}

// Attention backward (FlashAttention-2, Dao 2023, Algorithm 2, with the probabilities recomputed from lse):
//   P = exp(S − lse), dP = dO·Vᵀ, D_i = Σ_j P_ij dP_ij = dO_i·O_i, dS = P ⊙ (dP − D), dQ += scale·dS·K,
//   dK += scale·dSᵀ·Q, dV += Pᵀ·dO.
// A task is one (document, kv head): the query heads of that kv head and the rows of that document are touched
// by no other task, so there are no races and the sums run in a fixed order.
void attention_backward(struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout,
			struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			const int32_t *doc_offsets, int n_docs, int64_t q_offset)
{
	need_cpu(dout, "attention_backward");
	int64_t Tq = q.dim[0], NH = q.dim[1], HD = q.dim[2], NKV = k.dim[1], Tk = k.dim[0];
	int64_t group = NH / NKV, QB = 64;
	real scale = 1.0f / R_SQRT((real)HD);
	blas_one_thread();
#pragma omp parallel
	{
		real *P = xmalloc((size_t)(2 * QB * Tk + QB) * sizeof(real)), *dP = P + QB * Tk, *Drow = dP + QB * Tk;
#pragma omp for schedule(dynamic)
		for (int64_t task = 0; task < (int64_t)n_docs * NKV; task++) {
			int d = (int)(task / NKV);
			int64_t kvh = task % NKV, a = doc_offsets[d], b = doc_offsets[d + 1];
			int64_t i_begin = a - q_offset > 0 ? a - q_offset : 0, i_end = b - q_offset < Tq ? b - q_offset : Tq;
			for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
				for (int64_t i0 = i_begin; i0 < i_end; i0 += QB) {
					int64_t rows = i_end - i0 < QB ? i_end - i0 : QB;
					int64_t n_keys = q_offset + i0 + rows - a;
					const real *qb = q.data + (i0 * NH + h) * HD, *kb = k.data + (a * NKV + kvh) * HD;
					const real *vb = v.data + (a * NKV + kvh) * HD, *dob = dout.data + (i0 * NH + h) * HD;
					int64_t ldq = NH * HD, ldk = NKV * HD;
					GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_keys, (int)HD, scale, qb,
					     (int)ldq, kb, (int)ldk, 0.0f, P, (int)n_keys);
					GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_keys, (int)HD, 1.0f, dob,
					     (int)ldq, vb, (int)ldk, 0.0f, dP, (int)n_keys);
					for (int64_t r = 0; r < rows; r++) {
						const real *o = out.data + ((i0 + r) * NH + h) * HD, *g = dob + r * ldq;
						real D = 0.0f, l = lse.data[h * Tq + i0 + r];
						for (int64_t e = 0; e < HD; e++)
							D += g[e] * o[e];
						Drow[r] = D;
						int64_t n_vis = q_offset + i0 + r - a + 1;
						real *p = P + r * n_keys, *dp = dP + r * n_keys;
						for (int64_t j = 0; j < n_keys; j++) {
							real pj = j < n_vis ? R_EXP(p[j] - l) : 0.0f;
							p[j] = pj;
							dp[j] = pj * (dp[j] - D);   // dS
						}
					}
					// dV (keys, HD) += Pᵀ·dO, dK += scale·dSᵀ·Q, dQ += scale·dS·K
					GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_keys, (int)HD, (int)rows, 1.0f, P,
					     (int)n_keys, dob, (int)ldq, 1.0f, dv.data + (a * NKV + kvh) * HD, (int)ldk);
					GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_keys, (int)HD, (int)rows, scale, dP,
					     (int)n_keys, qb, (int)ldq, 1.0f, dk.data + (a * NKV + kvh) * HD, (int)ldk);
					GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)HD, (int)n_keys, scale, dP,
					     (int)n_keys, kb, (int)ldk, 1.0f, dq.data + (i0 * NH + h) * HD, (int)ldq);
				}
			}
		}
		free(P);
	}
}

// silu(g)·u with σ = 1/(1+e^−g): d/dg = u·σ·(1 + g·(1 − σ)), d/du = g·σ.
VECTOR_CLONES
void swiglu_backward(struct tensor dgate, struct tensor dup, struct tensor dout, struct tensor gate,
		     struct tensor up)
{
	need_cpu(dout, "swiglu_backward");
	int64_t n = tensor_numel(gate);
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++) {
		real g = gate.data[i], sig = 1.0f / (1.0f + R_EXP(-g)), dy = dout.data[i];
		dgate.data[i] += dy * up.data[i] * sig * (1.0f + g * (1.0f - sig));
		dup.data[i] += dy * g * sig;
	}
}

VECTOR_CLONES
void residual_backward(struct tensor da, struct tensor db, struct tensor dout)
{
	need_cpu(dout, "residual_backward");
	int64_t n = tensor_numel(dout);
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++) {
		if (da.data)
			da.data[i] += dout.data[i];
		if (db.data)
			db.data[i] += dout.data[i];
	}
}

// dlogits = (softmax − onehot)·dloss, tile by tile from the saved lse: dx += dlogits·W, dW += dlogitsᵀ·x.
VECTOR_CLONES
void lmhead_ce_backward(struct tensor dx, struct tensor dweight, struct tensor x, struct tensor weight,
			const int32_t *targets, struct tensor lse, struct tensor dlosses, struct tensor scratch)
{
	need_cpu(x, "lmhead_ce_backward");
	int64_t T = x.dim[0], C = x.dim[1], V = weight.dim[0];
	int64_t TB = scratch.dim[0], VC = scratch.dim[1];
	for (int64_t r0 = 0; r0 < T; r0 += TB) {
		int64_t rb = T - r0 < TB ? T - r0 : TB;
		for (int64_t v0 = 0; v0 < V; v0 += VC) {
			int64_t vc = V - v0 < VC ? V - v0 : VC;
			sgemm_split(1, rb, vc, C, 1.0f, x.data + r0 * C, C, weight.data + v0 * C, C, 0.0f, scratch.data, vc);
#pragma omp parallel for
			for (int64_t r = 0; r < rb; r++) {
				real *row = scratch.data + r * vc, l = lse.data[r0 + r], g = dlosses.data[r0 + r];
				for (int64_t j = 0; j < vc; j++)
					row[j] = R_EXP(row[j] - l) * g;
				int64_t tj = targets[r0 + r] - v0;
				if (tj >= 0 && tj < vc)
					row[tj] -= g;
			}
			if (dx.data)
				gemm_split(0, 0, rb, C, vc, 1.0f, scratch.data, vc, weight.data + v0 * C, C, 1.0f,
					   dx.data + r0 * C, C);
			if (dweight.data)
				gemm_split(1, 0, vc, C, rb, 1.0f, scratch.data, vc, x.data + r0 * C, C, 1.0f,
					   dweight.data + v0 * C, C);
		}
	}
}
