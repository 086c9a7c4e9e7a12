// contrastive.cu — SparseDoctor's contrastive router loss over the per-expert memory queue, and the queue push
// (lib/ops.h contrastive_forward / contrastive_backward / queue_push; adapter.h has our reading of the method).
// The math is the CPU backend's (lib/ops_cpu_adapter.c: contrastive_block, contrastive_forward/backward,
// queue_push):
//   z = x·projᵀ, q = z/‖z‖; for a block of TB tokens the scores against every ring row are one product
//   L (TB, N·Q) = q·queueᵀ/τ; over the filled rows (entries 0 .. fill_e−1 of ring e) a token's loss is
//   lse(all) − lse(ring of its top-1 expert); the forward returns the sum over the tokens whose ring is not
//   empty and their number (the micro-batch statistics the mean is taken from).
//   Backward: d(loss_t)/d(score_j) = softmax_all_j − softmax_pos_j, dq = dL·queue, then through the norm
//   dz = (dq − q·(q·dq))/‖z‖ scaled by coef (a token loss's weight: the caller divides by the micro-batch's
//   valid tokens, summed over the ranks), dproj += dzᵀ·x, dx += dz·proj.
//
// Precision: with bf16 activations the score products run on tensor cores in f16 (q rounded to f16, the queue
// is f16 already; |scores| ≤ 1/τ, the derivative scores ≤ 1/τ in f16 too) with fp32 accumulation; with f32
// activations the queue is widened to f32 and the products are fp32, like the CPU code.  The log-sum-exps are
// taken in double, as the CPU code does.
//
// Determinism: every reduction is per token by one block (or warp) with a fixed thread-to-element assignment
// and a fixed tree; the loss is one block's fixed-order sum over the tokens; the products are cuBLAS on one
// stream; the queue push gives every token its slot from per-expert prefix counts, so no two tokens write the
// same slot (a later token wins a wrapped slot because only the last Q tokens of each expert write).
#include "adapter_util.cuh"

#define CON_ROW_THREADS 256
#define CON_SCORES_MAX (1 << 24)   // floats of scores per token block (64 MiB)

// The largest of V over the block (blockDim.x a power of two; BUF blockDim.x floats); every thread gets it.
__device__ __forceinline__ float block_max_float(float v, float *buf)
{
	buf[threadIdx.x] = v;
	__syncthreads();
	for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
		if (threadIdx.x < s)
			buf[threadIdx.x] = fmaxf(buf[threadIdx.x], buf[threadIdx.x + s]);
		__syncthreads();
	}
	float m = buf[0];
	__syncthreads();
	return m;
}

// ----------------------------------------------------------------------------
// kernels

// One warp per token: znorm[t] = ‖z_t‖ (f32, lanes over columns then a fixed butterfly), q_t = z_t/‖z_t‖ (0 when
// the norm is 0).
template <typename QE> __global__ void con_normalize_kernel(QE *q, float *znorm, const float *z, int64_t T, int D)
{
	int lane = threadIdx.x % 32;
	int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32,
		n_warps = (int64_t)gridDim.x * blockDim.x / 32;
	for (int64_t t = warp; t < T; t += n_warps) {
		const float *zr = z + t * D;
		float s = 0.0f;
		for (int j = lane; j < D; j += 32)
			s += zr[j] * zr[j];
		float nn = sqrtf(warp_sum(s));
		if (lane == 0)
			znorm[t] = nn;
		for (int j = lane; j < D; j += 32)
			q[t * D + j] = from_float<QE>(nn > 0.0f ? zr[j] / nn : 0.0f);
	}
}

// One block per token of a block of rows (token t0 + blockIdx.x; its scores are row blockIdx.x of L, N·Q wide).
// Forward: tok_loss[t] = lse(all filled) − lse(filled rows of ring pos), tok_valid[t] = 1, or 0 and 0 when
// ring pos is empty.  BACKWARD: dL (same layout as L; may be L itself) = (softmax_all − softmax_pos)/τ on the
// filled rows, 0 elsewhere and on a token without positives.
template <bool BACKWARD, typename DL>
__global__ void con_row_kernel(const float *L, DL *dL, double *tok_loss, float *tok_valid, const int32_t *topk,
			       const int32_t *fill, int64_t t0, int N, int Q, int K, float inv_tau)
{
	extern __shared__ int fills[];   // N
	__shared__ double dbuf[CON_ROW_THREADS];
	__shared__ float fbuf[CON_ROW_THREADS];
	int64_t r = blockIdx.x, t = t0 + r, NK = (int64_t)N * Q;
	for (int e = threadIdx.x; e < N; e += blockDim.x) {
		int f = fill[e];
		fills[e] = f < 0 ? 0 : f > Q ? Q : f;
	}
	__syncthreads();
	int pos = topk[t * K];
	const float *row = L + r * NK;
	DL *drow = dL + r * NK;
	if (pos < 0 || pos >= N || fills[pos] == 0) {   // the same for the whole block
		if constexpr (BACKWARD) {
			for (int64_t j = threadIdx.x; j < NK; j += blockDim.x)
				drow[j] = from_float<DL>(0.0f);
		} else if (threadIdx.x == 0) {
			tok_loss[t] = 0.0;
			tok_valid[t] = 0.0f;
		}
		return;
	}
	float m = -INFINITY, mp = -INFINITY;
	for (int e = 0; e < N; e++)
		for (int k = threadIdx.x; k < fills[e]; k += blockDim.x) {
			float v = row[(int64_t)e * Q + k];
			m = fmaxf(m, v);
			if (e == pos)
				mp = fmaxf(mp, v);
		}
	m = block_max_float(m, fbuf);
	mp = block_max_float(mp, fbuf);
	double z = 0.0, zp = 0.0;
	for (int e = 0; e < N; e++)
		for (int k = threadIdx.x; k < fills[e]; k += blockDim.x) {
			double v = row[(int64_t)e * Q + k];
			z += exp(v - m);
			if (e == pos)
				zp += exp(v - mp);
		}
	z = block_sum_double(z, dbuf);
	zp = block_sum_double(zp, dbuf);
	double lse = m + log(z), lsep = mp + log(zp);
	if constexpr (!BACKWARD) {
		if (threadIdx.x == 0) {
			tok_loss[t] = lse - lsep;
			tok_valid[t] = 1.0f;
		}
	} else {
		// each element is read and written by the same thread, so dL may be L
		for (int e = 0; e < N; e++)
			for (int k = threadIdx.x; k < Q; k += blockDim.x) {
				int64_t j = (int64_t)e * Q + k;
				double d = 0.0;
				if (k < fills[e])
					d = exp(row[j] - lse) - (e == pos ? exp(row[j] - lsep) : 0.0);
				drow[j] = from_float<DL>((float)d * inv_tau);
			}
	}
}

// One block: the sum of tok_loss and the number of valid tokens (fixed-order sums) -> stats (2).
__global__ void con_stats_kernel(double *stats, const double *tok_loss, const float *tok_valid, int64_t T)
{
	__shared__ double buf[1024];
	double s = 0.0, n = 0.0;
	for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
		s += tok_loss[t];
		n += tok_valid[t];
	}
	s = block_sum_double(s, buf);
	n = block_sum_double(n, buf);
	if (threadIdx.x == 0) {
		stats[0] = s;
		stats[1] = n;
	}
}

// One warp per token: dz = coef·(dq − q·(q·dq))/‖z‖ (0 when the norm is 0): coef, a token loss's weight in the
// objective, already divides by the micro-batch's tokens with a positive (the caller's statistics).
template <typename E, typename QE>
__global__ void con_dz_kernel(E *dz, const float *dq, const QE *q, const float *znorm, float coef, int64_t T, int D)
{
	int lane = threadIdx.x % 32;
	int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32,
		n_warps = (int64_t)gridDim.x * blockDim.x / 32;
	float s = coef;
	for (int64_t t = warp; t < T; t += n_warps) {
		const float *d = dq + t * D;
		const QE *qr = q + t * D;
		float qd = 0.0f;
		for (int j = lane; j < D; j += 32)
			qd += to_float(qr[j]) * d[j];
		qd = warp_sum(qd);
		float zn = znorm[t];
		for (int j = lane; j < D; j += 32)
			dz[t * D + j] = from_float<E>(zn > 0.0f ? s * (d[j] - to_float(qr[j]) * qd) / zn : 0.0f);
	}
}

// ----------------------------------------------------------------------------
// the shared part of forward and backward

struct con_dims {
	int64_t T, C, NK;
	int D, N, Q, K;
};

static struct con_dims con_check(const char *op, struct tensor x, struct tensor q, struct tensor znorm,
				 struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk)
{
	struct con_dims d;
	need_tensor(znorm, DTYPE_F32, 0, op, "znorm");
	need_tensor(proj, DTYPE_F32, 0, op, "proj");
	need_tensor(queue, DTYPE_F16, 0, op, "queue");
	need_tensor(fill, DTYPE_I32, 0, op, "fill");
	need_tensor(topk, DTYPE_I32, 0, op, "topk");
	if (!is_act_dtype(x.dtype) || !is_act_dtype(q.dtype) || !x.data || !q.data)
		die(EXIT_FAIL, "%s: x is %s and q %s (bf16 or f32)", op, dtype_name(x.dtype), dtype_name(q.dtype));
	d.T = x.dim[0];
	d.C = x.dim[1];
	d.D = (int)proj.dim[0];
	d.N = (int)queue.dim[0];
	d.Q = (int)queue.dim[1];
	d.K = (int)topk.dim[1];
	d.NK = (int64_t)d.N * d.Q;
	if (proj.dim[1] != d.C || queue.dim[2] != d.D || q.dim[0] != d.T || q.dim[1] != d.D || znorm.dim[0] != d.T ||
	    fill.dim[0] != d.N || topk.dim[0] != d.T || d.K < 1)
		die(EXIT_FAIL,
		    "%s: shapes do not match: x (%lld,%lld), proj (%d,%lld), queue (%d,%d,%lld), q (%lld,%lld), topk "
		    "(%lld,%d)",
		    op, (long long)d.T, (long long)d.C, d.D, (long long)proj.dim[1], d.N, d.Q, (long long)queue.dim[2],
		    (long long)q.dim[0], (long long)q.dim[1], (long long)topk.dim[0], d.K);
	return d;
}

// The operands of the score products in their compute dtype: the queue (f16 as stored, or widened to f32) and q
// (rounded to f16, or f32), in SCRATCH_CONTRASTIVE_1.
struct con_operands {
	enum dtype ct;
	const void *keys, *qs;
};

static struct con_operands con_operands(const char *op, struct con_dims d, struct tensor x, struct tensor q,
					struct tensor queue)
{
	struct con_operands o;
	o.ct = x.dtype == DTYPE_F32 ? DTYPE_F32 : DTYPE_F16;
	struct carve cv = {0, NULL};
	size_t o_keys = carve_add(&cv, o.ct == DTYPE_F16 ? 0 : (size_t)(d.NK * d.D) * sizeof(float));
	size_t o_q = carve_add(&cv, q.dtype == o.ct ? 0 : (size_t)(d.T * d.D) * dtype_size(o.ct));
	carve_take(&cv, SCRATCH_CONTRASTIVE_1);
	if (o.ct == DTYPE_F16) {
		o.keys = queue.data;
		__half *qs = (__half *)carve_at(&cv, o_q);
		cast_from<__half>(qs, q, d.T * d.D, op);
		o.qs = qs;
	} else {
		float *keys = (float *)carve_at(&cv, o_keys);
		cast_from<float>(keys, queue, d.NK * d.D, op);
		o.keys = keys;
		if (q.dtype == DTYPE_F32) {
			o.qs = q.data;
		} else {
			float *qs = (float *)carve_at(&cv, o_q);
			cast_from<float>(qs, q, d.T * d.D, op);
			o.qs = qs;
		}
	}
	return o;
}

// Tokens per block of scores: the (TB, N·Q) scores stay under CON_SCORES_MAX floats.
static int64_t con_block_tokens(struct con_dims d)
{
	int64_t tb = CON_SCORES_MAX / (d.NK > 0 ? d.NK : 1);
	return tb < 1 ? 1 : tb > d.T ? d.T : tb;
}

// ----------------------------------------------------------------------------
// launchers

// x (T,C), proj (D,C), queue (N,Q,D) f16, fill (N) I32, topk (T,K) -> q (T,D), znorm (T),
// stats (2) f64: Σ of the valid tokens' losses, their number
extern "C" void cuda_contrastive_forward(struct tensor stats, struct tensor q, struct tensor znorm, struct tensor x,
					 struct tensor proj, struct tensor queue, struct tensor fill,
					 struct tensor topk, double tau)
{
	const char *op = "contrastive_forward";
	need_tensor(stats, DTYPE_F64, 0, op, "stats");
	struct con_dims d = con_check(op, x, q, znorm, proj, queue, fill, topk);
	if (d.T == 0) {
		CUDA_CHECK(cudaMemsetAsync(stats.data, 0, 2 * sizeof(double), cuda_stream()));
		return;
	}
	int64_t TB = con_block_tokens(d);
	struct carve cv = {0, NULL};
	size_t o_z = carve_add(&cv, (size_t)(d.T * d.D) * sizeof(float));
	size_t o_loss = carve_add(&cv, (size_t)d.T * sizeof(double));
	size_t o_valid = carve_add(&cv, (size_t)d.T * sizeof(float));
	size_t o_L = carve_add(&cv, (size_t)(TB * d.NK) * sizeof(float));
	carve_take(&cv, SCRATCH_CONTRASTIVE_2);
	float *z = (float *)carve_at(&cv, o_z), *L = (float *)carve_at(&cv, o_L);
	double *tok_loss = (double *)carve_at(&cv, o_loss);
	float *tok_valid = (float *)carve_at(&cv, o_valid);

	// z (T,D) = x·projᵀ, then q and znorm
	const void *proj_op = as_dtype(proj, x.dtype, SCRATCH_CONTRASTIVE_0, op);
	gemm_rm(op, 0, 1, d.T, d.D, d.C, 1.0f, x.data, x.dtype, d.C, proj_op, x.dtype, d.C, 0.0f, z, DTYPE_F32, d.D);
	unsigned wgrid = cuda_blocks(d.T * 32, 256);
	if (q.dtype == DTYPE_BF16)
		con_normalize_kernel<__nv_bfloat16>
		    <<<wgrid, 256, 0, cuda_stream()>>>((__nv_bfloat16 *)q.data, (float *)znorm.data, z, d.T, d.D);
	else
		con_normalize_kernel<float>
		    <<<wgrid, 256, 0, cuda_stream()>>>((float *)q.data, (float *)znorm.data, z, d.T, d.D);
	CUDA_LAUNCHED();

	// the scores, block by block, and each token's loss
	struct con_operands o = con_operands(op, d, x, q, queue);
	float inv_tau = (float)(1.0 / tau);
	size_t esz = dtype_size(o.ct);
	for (int64_t t0 = 0; t0 < d.T; t0 += TB) {
		int64_t tb = d.T - t0 < TB ? d.T - t0 : TB;
		gemm_rm(op, 0, 1, tb, d.NK, d.D, inv_tau, (const char *)o.qs + (size_t)(t0 * d.D) * esz, o.ct, d.D,
			o.keys, o.ct, d.D, 0.0f, L, DTYPE_F32, d.NK);
		con_row_kernel<false, float>
		    <<<(unsigned)tb, CON_ROW_THREADS, (size_t)d.N * sizeof(int), cuda_stream()>>>(
			L, L, tok_loss, tok_valid, (const int32_t *)topk.data, (const int32_t *)fill.data, t0, d.N, d.Q,
			d.K, inv_tau);
		CUDA_LAUNCHED();
	}
	con_stats_kernel<<<1, 1024, 0, cuda_stream()>>>((double *)stats.data, tok_loss, tok_valid, d.T);
	CUDA_LAUNCHED();
}

// coef · d(Σ of the valid tokens' losses)/d· -> dx (T,C) +=, dproj (D,C) += (dx may be NONE)
extern "C" void cuda_contrastive_backward(struct tensor dx, struct tensor dproj, struct tensor x, struct tensor q,
					  struct tensor znorm, struct tensor proj, struct tensor queue,
					  struct tensor fill, struct tensor topk, double tau, double coef)
{
	const char *op = "contrastive_backward";
	need_tensor(dproj, DTYPE_F32, 1, op, "dproj");
	struct con_dims d = con_check(op, x, q, znorm, proj, queue, fill, topk);
	if (dx.data && (dx.dim[0] != d.T || dx.dim[1] != d.C))
		die(EXIT_FAIL, "%s: dx is (%lld,%lld), x (%lld,%lld)", op, (long long)dx.dim[0],
		    (long long)dx.dim[1], (long long)d.T, (long long)d.C);
	if (dproj.data && (dproj.dim[0] != d.D || dproj.dim[1] != d.C))
		die(EXIT_FAIL, "%s: dproj is (%lld,%lld), proj (%d,%lld)", op, (long long)dproj.dim[0],
		    (long long)dproj.dim[1], d.D, (long long)d.C);
	if (d.T == 0 || (!dx.data && !dproj.data))
		return;
	enum dtype at = x.dtype;
	int64_t TB = con_block_tokens(d);
	struct con_operands o = con_operands(op, d, x, q, queue);
	struct carve cv = {0, NULL};
	size_t o_dq = carve_add(&cv, (size_t)(d.T * d.D) * sizeof(float));
	size_t o_dz = carve_add(&cv, (size_t)(d.T * d.D) * dtype_size(at));
	size_t o_L = carve_add(&cv, (size_t)(TB * d.NK) * sizeof(float));
	size_t o_dL = carve_add(&cv, o.ct == DTYPE_F32 ? 0 : (size_t)(TB * d.NK) * dtype_size(o.ct));
	carve_take(&cv, SCRATCH_CONTRASTIVE_2);
	float *dq = (float *)carve_at(&cv, o_dq), *L = (float *)carve_at(&cv, o_L);
	void *dz = carve_at(&cv, o_dz);

	// per block of tokens: the scores again, dL in place (f32) or into an f16 buffer, dq = dL·queue (no keys at
	// all: dq = 0, without a product of inner dimension 0)
	float inv_tau = (float)(1.0 / tau);
	size_t esz = dtype_size(o.ct);
	if (d.NK == 0)
		CUDA_CHECK(cudaMemsetAsync(dq, 0, (size_t)(d.T * d.D) * sizeof(float), cuda_stream()));
	for (int64_t t0 = 0; t0 < d.T && d.NK > 0; t0 += TB) {
		int64_t tb = d.T - t0 < TB ? d.T - t0 : TB;
		gemm_rm(op, 0, 1, tb, d.NK, d.D, inv_tau, (const char *)o.qs + (size_t)(t0 * d.D) * esz, o.ct, d.D,
			o.keys, o.ct, d.D, 0.0f, L, DTYPE_F32, d.NK);
		void *dL = L;
		if (o.ct == DTYPE_F32) {
			con_row_kernel<true, float>
			    <<<(unsigned)tb, CON_ROW_THREADS, (size_t)d.N * sizeof(int), cuda_stream()>>>(
				L, L, NULL, NULL, (const int32_t *)topk.data, (const int32_t *)fill.data, t0, d.N, d.Q,
				d.K, inv_tau);
		} else {
			dL = carve_at(&cv, o_dL);
			con_row_kernel<true, __half>
			    <<<(unsigned)tb, CON_ROW_THREADS, (size_t)d.N * sizeof(int), cuda_stream()>>>(
				L, (__half *)dL, NULL, NULL, (const int32_t *)topk.data, (const int32_t *)fill.data, t0,
				d.N, d.Q, d.K, inv_tau);
		}
		CUDA_LAUNCHED();
		// dq (tb,D) = dL (tb,NK) · keys (NK,D)
		gemm_rm(op, 0, 0, tb, d.D, d.NK, 1.0f, dL, o.ct, d.NK, o.keys, o.ct, d.D, 0.0f, dq + t0 * d.D,
			DTYPE_F32, d.D);
	}
	// through the normalisation, weighted coef
	unsigned wgrid = cuda_blocks(d.T * 32, 256);
	float c = (float)coef;
	if (at == DTYPE_BF16 && q.dtype == DTYPE_BF16)
		con_dz_kernel<__nv_bfloat16, __nv_bfloat16>
		    <<<wgrid, 256, 0, cuda_stream()>>>((__nv_bfloat16 *)dz, dq, (const __nv_bfloat16 *)q.data,
						       (const float *)znorm.data, c, d.T, d.D);
	else if (at == DTYPE_BF16)
		con_dz_kernel<__nv_bfloat16, float><<<wgrid, 256, 0, cuda_stream()>>>(
		    (__nv_bfloat16 *)dz, dq, (const float *)q.data, (const float *)znorm.data, c, d.T, d.D);
	else if (q.dtype == DTYPE_BF16)
		con_dz_kernel<float, __nv_bfloat16><<<wgrid, 256, 0, cuda_stream()>>>(
		    (float *)dz, dq, (const __nv_bfloat16 *)q.data, (const float *)znorm.data, c, d.T, d.D);
	else
		con_dz_kernel<float, float><<<wgrid, 256, 0, cuda_stream()>>>(
		    (float *)dz, dq, (const float *)q.data, (const float *)znorm.data, c, d.T, d.D);
	CUDA_LAUNCHED();
	// dproj (D,C) += dzᵀ (D,T) · x (T,C);  dx (T,C) += dz (T,D) · proj (D,C)
	if (dproj.data)
		gemm_rm(op, 1, 0, d.D, d.C, d.T, 1.0f, dz, at, d.D, x.data, at, d.C, 1.0f, dproj.data, DTYPE_F32, d.C);
	if (dx.data) {
		const void *proj_op = as_dtype(proj, at, SCRATCH_CONTRASTIVE_0, op);
		gemm_rm(op, 0, 0, d.T, d.C, d.D, 1.0f, dz, at, d.D, proj_op, at, d.C, 1.0f, dx.data, dx.dtype, d.C);
	}
}

// ----------------------------------------------------------------------------
// the queue push

// One block of 1024 threads walks the tokens in chunks of 1024, in order.  A token's rank among the tokens of
// its top-1 expert = the expert's count before the chunk + the count in earlier warps of the chunk + its rank in
// its warp (__match_any_sync groups the lanes by expert).  At the end counts, old heads, new heads and fills.
__global__ void queue_rank_kernel(int32_t *rank, int32_t *count, int32_t *old_head, int32_t *head, int32_t *fill,
				  const int32_t *topk, int64_t T, int N, int Q, int K)
{
	extern __shared__ int qs[];   // base (N), then per-warp counts (32 × N)
	int *base = qs, *wcnt = qs + N;
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	for (int i = threadIdx.x; i < 33 * N; i += blockDim.x)
		qs[i] = 0;
	__syncthreads();
	for (int64_t c0 = 0; c0 < T; c0 += blockDim.x) {
		int64_t t = c0 + threadIdx.x;
		int e = t < T ? topk[t * K] : -1;
		if (e < 0 || e >= N)
			e = -1;
		unsigned same = __match_any_sync(0xffffffffu, e);
		unsigned before = same & ((1u << lane) - 1u);
		if (e >= 0 && before == 0)   // the lowest lane of its group counts the group
			wcnt[warp * N + e] = __popc(same);
		__syncthreads();
		if (e >= 0) {
			int r = base[e] + __popc(before);
			for (int w = 0; w < warp; w++)
				r += wcnt[w * N + e];
			rank[t] = r;
		}
		__syncthreads();
		for (int e2 = threadIdx.x; e2 < N; e2 += blockDim.x) {
			int s = 0;
			for (int w = 0; w < 32; w++) {
				s += wcnt[w * N + e2];
				wcnt[w * N + e2] = 0;
			}
			base[e2] += s;
		}
		__syncthreads();
	}
	for (int e = threadIdx.x; e < N; e += blockDim.x) {
		int h = head[e], n = base[e];
		int64_t f = (int64_t)fill[e] + n;
		count[e] = n;
		old_head[e] = h;
		head[e] = (int)(((int64_t)h + n) % Q);
		fill[e] = (int)(f < Q ? f : Q);
	}
}

// One thread per element of q: token t of rank r among its expert's c tokens writes slot (old head + r) mod Q
// when it is one of the last Q (r ≥ c − Q), so each slot has one writer: the latest token that lands on it.
template <typename QE>
__global__ void queue_write_kernel(__half *queue, const QE *q, const int32_t *rank, const int32_t *count,
				   const int32_t *old_head, const int32_t *topk, int64_t T, int N, int Q, int D, int K)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < T * D;
	     i += (int64_t)gridDim.x * blockDim.x) {
		int64_t t = i / D;
		int j = (int)(i - t * D);
		int e = topk[t * K];
		if (e < 0 || e >= N)
			continue;
		int r = rank[t];
		if (r < count[e] - Q)
			continue;
		int64_t slot = ((int64_t)old_head[e] + r) % Q;
		queue[((int64_t)e * Q + slot) * D + j] = __float2half_rn(to_float(q[i]));
	}
}

// q (T,D), topk (T,K) -> queue (N,Q,D) f16, head (N), fill (N) updated in place
extern "C" void cuda_queue_push(struct tensor queue, struct tensor head, struct tensor fill, struct tensor q,
				struct tensor topk)
{
	const char *op = "queue_push";
	need_tensor(queue, DTYPE_F16, 0, op, "queue");
	need_tensor(head, DTYPE_I32, 0, op, "head");
	need_tensor(fill, DTYPE_I32, 0, op, "fill");
	need_tensor(topk, DTYPE_I32, 0, op, "topk");
	if (!is_act_dtype(q.dtype))
		die(EXIT_FAIL, "%s: q is %s (bf16 or f32)", op, dtype_name(q.dtype));
	int N = (int)queue.dim[0], Q = (int)queue.dim[1], D = (int)queue.dim[2], K = (int)topk.dim[1];
	int64_t T = q.dim[0];
	if (q.dim[1] != D || topk.dim[0] != T || head.dim[0] != N || fill.dim[0] != N || K < 1)
		die(EXIT_FAIL, "%s: shapes do not match: queue (%d,%d,%d), q (%lld,%lld), topk (%lld,%d)", op, N, Q,
		    D, (long long)T, (long long)q.dim[1], (long long)topk.dim[0], K);
	if (T == 0 || N == 0 || Q == 0)
		return;
	if (T > INT32_MAX)
		die(EXIT_FAIL, "%s: %lld tokens", op, (long long)T);
	struct carve cv = {0, NULL};
	size_t o_rank = carve_add(&cv, (size_t)T * sizeof(int32_t));
	size_t o_count = carve_add(&cv, (size_t)N * sizeof(int32_t));
	size_t o_head = carve_add(&cv, (size_t)N * sizeof(int32_t));
	carve_take(&cv, SCRATCH_CONTRASTIVE_2);
	int32_t *rank = (int32_t *)carve_at(&cv, o_rank), *count = (int32_t *)carve_at(&cv, o_count);
	int32_t *old_head = (int32_t *)carve_at(&cv, o_head);
	size_t shared = (size_t)33 * N * sizeof(int);
	if (shared > 48 * 1024)
		die(EXIT_FAIL, "%s: %d experts is more than the push kernel's shared memory holds", op, N);
	queue_rank_kernel<<<1, 1024, shared, cuda_stream()>>>(
	    rank, count, old_head, (int32_t *)head.data, (int32_t *)fill.data, (const int32_t *)topk.data, T, N, Q, K);
	CUDA_LAUNCHED();
	unsigned grid = cuda_blocks(T * D, 256);
	if (q.dtype == DTYPE_BF16)
		queue_write_kernel<__nv_bfloat16>
		    <<<grid, 256, 0, cuda_stream()>>>((__half *)queue.data, (const __nv_bfloat16 *)q.data, rank, count,
						      old_head, (const int32_t *)topk.data, T, N, Q, D, K);
	else
		queue_write_kernel<float><<<grid, 256, 0, cuda_stream()>>>((__half *)queue.data, (const float *)q.data,
									   rank, count, old_head,
									   (const int32_t *)topk.data, T, N, Q, D, K);
	CUDA_LAUNCHED();
}
