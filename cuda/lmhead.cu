// lmhead.cu — the LM head fused with cross-entropy, forward and backward, and lmhead_logprob (ops.h).
//
// The (T,V) logits are never held: rows are taken TB at a time and the vocabulary VC entries at a time, with
// TB·VC ≤ TILE_ELEMS (2^25 fp32 logits, 128 MiB: TB = min(T, 4096), VC = as many as fit, all of V for short
// inputs).  A tile's logits are one cuBLASLt product x_tile · W_chunkᵀ with fp32 output (SCRATCH_LMHEAD_0); a
// weight stored in another dtype than x is converted chunk by chunk first (SCRATCH_WEIGHT_CAST).
//
// Forward: per row, an online log-sum-exp (Milakov & Gimelshein 2018): one block per row of the tile, each thread
// keeps a running (max, sum of e^(x−max)) over its entries in order, the threads' pairs are combined in a fixed
// tree, and the result is merged into the row's running pair, which lives in lse (max) and losses (sum) until the
// last chunk, so no other scratch is needed.  Vocabulary chunks are the outer loop (a converted weight chunk
// serves every row block) and are merged in order, so the result is deterministic.  The target's logit is its own
// dot product x_t · W[target_t] in fp32 (row_dot below), and loss_t = lse_t − logit_t.  lmhead_logprob uses the
// same row_dot with the same block shape, so a target's log-probability is exactly −(its loss).
//
// Backward: per tile the logits are recomputed and dlogits = (e^(logit − lse) − onehot) · dloss formed in fp32
// and stored in the activation dtype (SCRATCH_LMHEAD_1: cuBLASLt's operands share a dtype).  dx += dlogits · W is
// accumulated over the vocabulary chunks in an fp32 buffer (SCRATCH_LMHEAD_2) and added to dx once per row block,
// so a bf16 dx is rounded once, not once per chunk; dweight += dlogitsᵀ · x goes straight into dweight (f32).
// Here the rows are the outer loop (the accumulator is one row block).
#include "gemm.cuh"

#include <math.h>

namespace {

constexpr int64_t TILE_ELEMS = (int64_t)1 << 25;
constexpr int64_t ROW_BLOCK = 4096;
constexpr int MERGE_THREADS = 512;   // per row of a tile in the log-sum-exp and dlogits kernels
constexpr int DOT_THREADS = 128;     // per target logit (forward and lmhead_logprob must agree)

struct tiling {
	int64_t rows, vocab;   // TB, VC
};

struct tiling tile_for(int64_t T, int64_t V)
{
	struct tiling t;
	t.rows = T < ROW_BLOCK ? T : ROW_BLOCK;
	int64_t vc = TILE_ELEMS / t.rows;
	t.vocab = vc >= V ? V : vc / 256 * 256;
	return t;
}

// ----------------------------------------------------------------------------
// online log-sum-exp

__device__ __forceinline__ void lse_add(float &m, float &s, float x)
{
	if (x > m) {
		s = s * expf(m - x) + 1.0f;   // e^(−∞) = 0 on the first entry
		m = x;
	} else {
		s += expf(x - m);
	}
}

__device__ __forceinline__ void lse_combine(float &m, float &s, float m2, float s2)
{
	float M = fmaxf(m, m2);
	if (M == -INFINITY)
		return;   // both empty
	s = s * expf(m - M) + s2 * expf(m2 - M);
	m = M;
}

__device__ __forceinline__ void warp_lse(float &m, float &s)
{
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) {
		float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
		lse_combine(m, s, m2, s2);
	}
}

// Row r of the tile logits (rows, vc) merged into (run_max[r], run_sum[r]); FIRST: they hold nothing yet.
template <int N>
__global__ void lse_merge_kernel(float *run_max, float *run_sum, const float *logits, int64_t vc, int first)
{
	__shared__ float shared_m[32], shared_s[32];
	int64_t r = blockIdx.x;
	const float *row = logits + r * vc;
	float m = -INFINITY, s = 0.0f;
	for (int64_t j = (int64_t)threadIdx.x * N; j < vc; j += (int64_t)blockDim.x * N) {
		if (j + N <= vc) {
			float v[N];
			load_pack<N>(v, row + j);
#pragma unroll
			for (int k = 0; k < N; k++)
				lse_add(m, s, v[k]);
		} else {
			for (int64_t k = j; k < vc; k++)
				lse_add(m, s, row[k]);
		}
	}
	warp_lse(m, s);
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
	if (lane == 0) {
		shared_m[warp] = m;
		shared_s[warp] = s;
	}
	__syncthreads();
	if (warp != 0)
		return;
	m = lane < n_warps ? shared_m[lane] : -INFINITY;
	s = lane < n_warps ? shared_s[lane] : 0.0f;
	warp_lse(m, s);
	if (lane == 0) {
		if (!first)
			lse_combine(m, s, run_max[r], run_sum[r]);
		run_max[r] = m;
		run_sum[r] = s;
	}
}

// ----------------------------------------------------------------------------
// target logits

// x · w over C in fp32, by the whole block (DOT_THREADS): thread i adds its packs in order, then block_sum.
template <int N, typename Tx, typename Tw> __device__ float row_dot(const Tx *x, const Tw *w, int64_t C, float *shared)
{
	float s = 0.0f;
	for (int64_t c = (int64_t)threadIdx.x * N; c < C; c += (int64_t)blockDim.x * N) {
		if (c + N <= C) {
			float a[N], b[N];
			load_pack<N>(a, x + c);
			load_pack<N>(b, w + c);
#pragma unroll
			for (int k = 0; k < N; k++)
				s += a[k] * b[k];
		} else {
			for (int64_t k = c; k < C; k++)
				s += to_float(x[k]) * to_float(w[k]);
		}
	}
	return block_sum(s, shared);
}

// lse[r] = max + log(sum); losses[r] = lse[r] − x_r · weight[targets[r]]
template <typename Tx, typename Tw, int N>
__global__ void ce_finish_kernel(float *losses, float *lse, const Tx *x, const Tw *weight, const int32_t *targets,
				 int64_t C)
{
	__shared__ float shared[32];
	int64_t r = blockIdx.x;
	float logit = row_dot<N>(x + r * C, weight + (int64_t)targets[r] * C, C, shared);
	if (threadIdx.x == 0) {
		float l = lse[r] + logf(losses[r]);
		lse[r] = l;
		losses[r] = l - logit;
	}
}

// out[p] = x[rows[p]] · weight[ids[p]] − lse[rows[p]]
template <typename Tx, typename Tw, int N>
__global__ void logprob_kernel(float *out, const Tx *x, const Tw *weight, const float *lse, const int32_t *rows,
			       const int32_t *ids, int64_t C)
{
	__shared__ float shared[32];
	int64_t p = blockIdx.x, r = rows[p];
	float logit = row_dot<N>(x + r * C, weight + (int64_t)ids[p] * C, C, shared);
	if (threadIdx.x == 0)
		out[p] = logit - lse[r];
}

// Whether the packed path of row_dot fits x (·,C) of Tx and weight rows of Tw.
template <typename Tx, typename Tw> int dot_vec(const void *x, const void *w, int64_t C)
{
	constexpr int N = pack16<Tx>();
	return C % N == 0 && cuda_aligned(x, 16) && cuda_aligned(w, N * sizeof(Tw));
}

// ----------------------------------------------------------------------------
// backward pieces

// dl (rows, vc) = (e^(logit − lse[r]) − [v0 + j = target r]) · dloss[r], rounded to Tg
template <typename Tg, int N>
__global__ void dlogits_kernel(Tg *dl, const float *logits, const float *lse, const float *dloss,
			       const int32_t *targets, int64_t vc, int64_t v0)
{
	int64_t r = blockIdx.x;
	float l = lse[r], g = dloss[r];
	int64_t tj = (int64_t)targets[r] - v0;
	const float *row = logits + r * vc;
	Tg *out = dl + r * vc;
	for (int64_t j = (int64_t)threadIdx.x * N; j < vc; j += (int64_t)blockDim.x * N) {
		if (j + N <= vc) {
			float v[N];
			load_pack<N>(v, row + j);
#pragma unroll
			for (int k = 0; k < N; k++) {
				v[k] = expf(v[k] - l) * g;
				if (j + k == tj)
					v[k] -= g;
			}
			store_pack<N>(out + j, v);
		} else {
			for (int64_t k = j; k < vc; k++) {
				float v = expf(row[k] - l) * g;
				out[k] = from_float<Tg>(k == tj ? v - g : v);
			}
		}
	}
}

// dx (n) += acc (n) f32
template <typename T, int N> __global__ void add_f32_kernel(T *dx, const float *acc, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			float a[N], b[N];
			load_pack<N>(a, dx + i);
			load_pack<N>(b, acc + i);
#pragma unroll
			for (int k = 0; k < N; k++)
				a[k] += b[k];
			store_pack<N>(dx + i, a);
		} else {
			for (int64_t k = i; k < n; k++)
				dx[k] = from_float<T>(to_float(dx[k]) + acc[k]);
		}
	}
}

const char *at(const void *p, int64_t elems, enum dtype t) { return (const char *)p + (size_t)elems * dtype_size(t); }

// Checks shared by the three ops: x (T,C) activations, weight (V,C).
void check_head(const char *op, struct tensor x, struct tensor weight, int64_t *T, int64_t *C, int64_t *V)
{
	cuda_need_device(op, "x", x);
	cuda_need_device(op, "weight", weight);
	*C = x.ndim > 1 ? x.dim[x.ndim - 1] : 0;
	*T = *C ? tensor_numel(x) / *C : 0;
	*V = weight.dim[0];
	if (*C == 0 || tensor_numel(weight) != *V * *C)
		die(EXIT_FAIL, "%s: x (%lld,%lld) and a weight of %lld elements do not fit (want weight (V,C))", op,
		    (long long)*T, (long long)*C, (long long)tensor_numel(weight));
	if (x.dtype != DTYPE_BF16 && x.dtype != DTYPE_F32)
		cuda_unsupported(op, "x", x.dtype);
}

void check_rows(const char *op, const char *name, struct tensor t, enum dtype dtype, int64_t n)
{
	cuda_need_dtype(op, name, t, dtype);
	if (tensor_numel(t) != n)
		die(EXIT_FAIL, "%s: %s has %lld elements, want %lld", op, name, (long long)tensor_numel(t), (long long)n);
}

} // namespace

// x (T,C), weight (V,C), targets (T) I32 -> losses (T), lse (T) f32
extern "C" void cuda_lmhead_ce_forward(struct tensor losses, struct tensor lse, struct tensor x, struct tensor weight,
				       struct tensor targets)
{
	const char *op = "lmhead_ce_forward";
	int64_t T, C, V;
	check_head(op, x, weight, &T, &C, &V);
	check_rows(op, "losses", losses, DTYPE_F32, T);
	check_rows(op, "lse", lse, DTYPE_F32, T);
	check_rows(op, "targets", targets, DTYPE_I32, T);
	if (T == 0)
		return;
	enum dtype ab = x.dtype;
	struct tiling tl = tile_for(T, V);
	float *logits = (float *)cuda_scratch(SCRATCH_LMHEAD_0, (size_t)(tl.rows * tl.vocab) * sizeof(float));
	void *cast = weight.dtype != ab ? cuda_scratch(SCRATCH_WEIGHT_CAST, (size_t)(tl.vocab * C) * dtype_size(ab)) : NULL;
	float *run_max = (float *)lse.data, *run_sum = (float *)losses.data;
	for (int64_t v0 = 0; v0 < V; v0 += tl.vocab) {
		int64_t vc = V - v0 < tl.vocab ? V - v0 : tl.vocab;
		const void *w = cuda_as_dtype(at(weight.data, v0 * C, weight.dtype), weight.dtype, vc * C, ab, cast);
		for (int64_t r0 = 0; r0 < T; r0 += tl.rows) {
			int64_t rb = T - r0 < tl.rows ? T - r0 : tl.rows;
			cuda_gemm_rowmajor(0, 1, rb, vc, C, 1.0f, at(x.data, r0 * C, ab), C, w, C, ab, 0.0f, logits, vc,
					   DTYPE_F32, NULL);
			if (vc % 4 == 0)
				lse_merge_kernel<4><<<(unsigned)rb, MERGE_THREADS, 0, cuda_stream()>>>(
					run_max + r0, run_sum + r0, logits, vc, v0 == 0);
			else
				lse_merge_kernel<1><<<(unsigned)rb, MERGE_THREADS, 0, cuda_stream()>>>(
					run_max + r0, run_sum + r0, logits, vc, v0 == 0);
			CUDA_LAUNCHED();
		}
	}
	with_act_type(ab, op, "x", [&](auto tx) {
		using Tx = decltype(tx);
		with_weight_type(weight.dtype, op, "weight", [&](auto tw) {
			using Tw = decltype(tw);
			constexpr int N = pack16<Tx>();
			if (dot_vec<Tx, Tw>(x.data, weight.data, C))
				ce_finish_kernel<Tx, Tw, N><<<(unsigned)T, DOT_THREADS, 0, cuda_stream()>>>(
					run_sum, run_max, (const Tx *)x.data, (const Tw *)weight.data,
					(const int32_t *)targets.data, C);
			else
				ce_finish_kernel<Tx, Tw, 1><<<(unsigned)T, DOT_THREADS, 0, cuda_stream()>>>(
					run_sum, run_max, (const Tx *)x.data, (const Tw *)weight.data,
					(const int32_t *)targets.data, C);
			CUDA_LAUNCHED();
		});
	});
}

// dlosses (T) -> dx (T,C) +=, dweight (V,C) += (either may be NONE)
extern "C" void cuda_lmhead_ce_backward(struct tensor dx, struct tensor dweight, struct tensor x, struct tensor weight,
					struct tensor targets, struct tensor lse, struct tensor dlosses)
{
	const char *op = "lmhead_ce_backward";
	int64_t T, C, V;
	check_head(op, x, weight, &T, &C, &V);
	check_rows(op, "targets", targets, DTYPE_I32, T);
	check_rows(op, "lse", lse, DTYPE_F32, T);
	check_rows(op, "dlosses", dlosses, DTYPE_F32, T);
	cuda_need_device(op, "dx", dx);
	cuda_need_device(op, "dweight", dweight);
	if (dx.data && (dx.dtype != x.dtype || tensor_numel(dx) != T * C))
		die(EXIT_FAIL, "%s: dx must be %s (%lld,%lld) like x", op, dtype_name(x.dtype), (long long)T, (long long)C);
	if (dweight.data && tensor_numel(dweight) != V * C)
		die(EXIT_FAIL, "%s: dweight has %lld elements, want (%lld,%lld)", op, (long long)tensor_numel(dweight),
		    (long long)V, (long long)C);
	if (T == 0 || (!dx.data && !dweight.data))
		return;
	enum dtype ab = x.dtype;
	struct tiling tl = tile_for(T, V);
	float *logits = (float *)cuda_scratch(SCRATCH_LMHEAD_0, (size_t)(tl.rows * tl.vocab) * sizeof(float));
	void *dl = cuda_scratch(SCRATCH_LMHEAD_1, (size_t)(tl.rows * tl.vocab) * dtype_size(ab));
	int direct = dx.data && dx.dtype == DTYPE_F32;   // an f32 dx accumulates in place
	float *acc = dx.data && !direct ? (float *)cuda_scratch(SCRATCH_LMHEAD_2, (size_t)(tl.rows * C) * sizeof(float))
					: NULL;
	void *cast = weight.dtype != ab ? cuda_scratch(SCRATCH_WEIGHT_CAST, (size_t)(tl.vocab * C) * dtype_size(ab)) : NULL;
	for (int64_t r0 = 0; r0 < T; r0 += tl.rows) {
		int64_t rb = T - r0 < tl.rows ? T - r0 : tl.rows;
		const void *xr = at(x.data, r0 * C, ab);
		for (int64_t v0 = 0; v0 < V; v0 += tl.vocab) {
			int64_t vc = V - v0 < tl.vocab ? V - v0 : tl.vocab;
			const void *w = cuda_as_dtype(at(weight.data, v0 * C, weight.dtype), weight.dtype, vc * C, ab, cast);
			cuda_gemm_rowmajor(0, 1, rb, vc, C, 1.0f, xr, C, w, C, ab, 0.0f, logits, vc, DTYPE_F32, NULL);
			with_act_type(ab, op, "x", [&](auto tg) {
				using Tg = decltype(tg);
				if (vc % 4 == 0)
					dlogits_kernel<Tg, 4><<<(unsigned)rb, MERGE_THREADS, 0, cuda_stream()>>>(
						(Tg *)dl, logits, (const float *)lse.data + r0,
						(const float *)dlosses.data + r0, (const int32_t *)targets.data + r0, vc, v0);
				else
					dlogits_kernel<Tg, 1><<<(unsigned)rb, MERGE_THREADS, 0, cuda_stream()>>>(
						(Tg *)dl, logits, (const float *)lse.data + r0,
						(const float *)dlosses.data + r0, (const int32_t *)targets.data + r0, vc, v0);
				CUDA_LAUNCHED();
			});
			if (dx.data) {
				// (rb, C) += dl (rb, vc) · W_chunk (vc, C)
				void *dst = direct ? (void *)at(dx.data, r0 * C, DTYPE_F32) : (void *)acc;
				float beta = direct || v0 > 0 ? 1.0f : 0.0f;
				cuda_gemm_rowmajor(0, 0, rb, C, vc, 1.0f, dl, vc, w, C, ab, beta, dst, C, DTYPE_F32, NULL);
			}
			if (dweight.data)   // dweight[v0..] (vc, C) += dlᵀ (vc, rb) · x_rows (rb, C)
				cuda_gemm_rowmajor(1, 0, vc, C, rb, 1.0f, dl, vc, xr, C, ab, 1.0f,
						   (void *)at(dweight.data, v0 * C, dweight.dtype), C, dweight.dtype, NULL);
		}
		if (acc) {
			int64_t n = rb * C;
			with_act_type(ab, op, "dx", [&](auto tag) {
				using Tg = decltype(tag);
				constexpr int N = pack16<Tg>();
				Tg *d = (Tg *)at(dx.data, r0 * C, ab);
				if (cuda_aligned(d, 16))
					add_f32_kernel<Tg, N><<<cuda_blocks((n + N - 1) / N, CUDA_BLOCK), CUDA_BLOCK, 0,
							       cuda_stream()>>>(d, acc, n);
				else
					add_f32_kernel<Tg, 1><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
						d, acc, n);
				CUDA_LAUNCHED();
			});
		}
	}
}

// x (M,C), weight (V,C), lse (M), rows (P), ids (P) -> out (P) f32
extern "C" void cuda_lmhead_logprob(struct tensor out, struct tensor x, struct tensor weight, struct tensor lse,
				    struct tensor rows, struct tensor ids)
{
	const char *op = "lmhead_logprob";
	int64_t M, C, V;
	check_head(op, x, weight, &M, &C, &V);
	check_rows(op, "lse", lse, DTYPE_F32, M);
	int64_t P = tensor_numel(rows);
	check_rows(op, "ids", ids, DTYPE_I32, P);
	check_rows(op, "out", out, DTYPE_F32, P);
	cuda_need_dtype(op, "rows", rows, DTYPE_I32);
	if (P == 0)
		return;
	with_act_type(x.dtype, op, "x", [&](auto tx) {
		using Tx = decltype(tx);
		with_weight_type(weight.dtype, op, "weight", [&](auto tw) {
			using Tw = decltype(tw);
			constexpr int N = pack16<Tx>();
			if (dot_vec<Tx, Tw>(x.data, weight.data, C))
				logprob_kernel<Tx, Tw, N><<<(unsigned)P, DOT_THREADS, 0, cuda_stream()>>>(
					(float *)out.data, (const Tx *)x.data, (const Tw *)weight.data,
					(const float *)lse.data, (const int32_t *)rows.data, (const int32_t *)ids.data, C);
			else
				logprob_kernel<Tx, Tw, 1><<<(unsigned)P, DOT_THREADS, 0, cuda_stream()>>>(
					(float *)out.data, (const Tx *)x.data, (const Tw *)weight.data,
					(const float *)lse.data, (const int32_t *)rows.data, (const int32_t *)ids.data, C);
			CUDA_LAUNCHED();
		});
	});
}
