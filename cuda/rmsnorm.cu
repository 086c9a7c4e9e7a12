// rmsnorm.cu — RMSNorm (transformers LlamaRMSNorm) with fp32 statistics, forward and backward (ops.h); also the
// Qwen3 per-head q/k norm, which the caller runs on q (T,NH,HD) seen as (T·NH, HD).
//
// One warp per row (8 rows per block): the lanes read the row in 16-byte packs (8 bf16 or 4 f32, when D and the
// pointers allow; else one element at a time), sum x² in fp32 each in its own order, and a butterfly gives every
// lane the row's sum.  A second pass over the row (now in L1/L2) writes y = w · (x · r), rounded once to the
// output dtype, as the CPU backend computes it (transformers rounds x·r to the activation dtype before the
// weight multiply; one rounding is closer to the fp32 reference).
//
// dweight sums over all rows: each (column block of 32, row chunk) block writes one partial per column, the
// chunk's rows added in order, and a second kernel adds the partials in chunk order.  The chunk count depends on
// the shape only, so the bits do not depend on the GPU.
#include "core.cuh"

namespace {

constexpr int ROWS_PER_BLOCK = CUDA_BLOCK / 32;
constexpr int DW_ROWS = 8;            // threads along the rows in a dweight block (32 columns × 8)
constexpr int64_t DW_BLOCKS = 512;    // aim for about this many dweight blocks

template <typename Tx, typename Tw, int N>
__global__ void rmsnorm_forward_kernel(Tx *out, float *rstd, const Tx *inp, const Tw *weight, float eps, int64_t rows,
				       int64_t D)
{
	int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (row >= rows)
		return;   // the whole warp: no shuffle is left waiting
	const Tx *x = inp + row * D;
	Tx *y = out + row * D;
	float ss = 0.0f;
	for (int64_t c = (int64_t)lane * N; c < D; c += 32 * N) {
		float v[N];
		load_pack<N>(v, x + c);
#pragma unroll
		for (int j = 0; j < N; j++)
			ss += v[j] * v[j];
	}
	ss = warp_sum(ss);
	float r = 1.0f / sqrtf(ss / (float)D + eps);
	for (int64_t c = (int64_t)lane * N; c < D; c += 32 * N) {
		float v[N], w[N];
		load_pack<N>(v, x + c);
		load_pack<N>(w, weight + c);
#pragma unroll
		for (int j = 0; j < N; j++)
			v[j] = w[j] * (v[j] * r);
		store_pack<N>(y + c, v);
	}
	if (rstd && lane == 0)
		rstd[row] = r;
}

// dx += r·(w ⊙ dy) − (r³/D)·x·Σ_i w_i dy_i x_i, one warp per row as in forward.
template <typename Tx, typename Tw, int N>
__global__ void rmsnorm_backward_kernel(Tx *dinp, const Tx *dout, const Tx *inp, const Tw *weight, const float *rstd,
					int64_t rows, int64_t D)
{
	int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (row >= rows)
		return;
	const Tx *x = inp + row * D, *dy = dout + row * D;
	Tx *dx = dinp + row * D;
	float dot = 0.0f;
	for (int64_t c = (int64_t)lane * N; c < D; c += 32 * N) {
		float xv[N], gv[N], wv[N];
		load_pack<N>(xv, x + c);
		load_pack<N>(gv, dy + c);
		load_pack<N>(wv, weight + c);
#pragma unroll
		for (int j = 0; j < N; j++)
			dot += wv[j] * gv[j] * xv[j];
	}
	dot = warp_sum(dot);
	float r = rstd[row], k = r * r * r / (float)D * dot;
	for (int64_t c = (int64_t)lane * N; c < D; c += 32 * N) {
		float xv[N], gv[N], wv[N], dv[N];
		load_pack<N>(xv, x + c);
		load_pack<N>(gv, dy + c);
		load_pack<N>(wv, weight + c);
		load_pack<N>(dv, dx + c);
#pragma unroll
		for (int j = 0; j < N; j++)
			dv[j] += r * wv[j] * gv[j] - k * xv[j];
		store_pack<N>(dx + c, dv);
	}
}

// partial[p][d] = Σ_{n in chunk p} dy[n][d] · x[n][d] · rstd[n]; block (32, DW_ROWS), grid (column blocks, chunks).
template <typename Tx>
__global__ void rmsnorm_dweight_partial_kernel(float *partial, const Tx *dout, const Tx *inp, const float *rstd,
					       int64_t rows, int64_t D, int64_t rows_per_chunk)
{
	__shared__ float sums[DW_ROWS][33];
	int64_t d = (int64_t)blockIdx.x * 32 + threadIdx.x, p = blockIdx.y;
	int64_t n0 = p * rows_per_chunk, n1 = n0 + rows_per_chunk < rows ? n0 + rows_per_chunk : rows;
	float s = 0.0f;
	if (d < D) {
#pragma unroll 4
		for (int64_t n = n0 + threadIdx.y; n < n1; n += DW_ROWS)
			s += to_float(dout[n * D + d]) * to_float(inp[n * D + d]) * rstd[n];
	}
	sums[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (threadIdx.y == 0 && d < D) {
		float total = 0.0f;
		for (int y = 0; y < DW_ROWS; y++)
			total += sums[y][threadIdx.x];
		partial[p * D + d] = total;
	}
}

// dweight[d] += Σ_p partial[p][d], p in order.
template <typename Tw>
__global__ void rmsnorm_dweight_final_kernel(Tw *dweight, const float *partial, int64_t chunks, int64_t D)
{
	int64_t d = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (d >= D)
		return;
	float s = 0.0f;
	for (int64_t p = 0; p < chunks; p++)
		s += partial[p * D + d];
	dweight[d] = from_float<Tw>(to_float(dweight[d]) + s);
}

int64_t last_dim(struct tensor t) { return t.ndim > 0 ? t.dim[t.ndim - 1] : 1; }

} // namespace

// inp (N,D), weight (D) -> out (N,D), rstd (N) f32 or NONE
extern "C" void cuda_rmsnorm_forward(struct tensor out, struct tensor rstd, struct tensor inp, struct tensor weight,
				     double eps)
{
	const char *op = "rmsnorm_forward";
	cuda_need_device(op, "out", out);
	cuda_need_device(op, "inp", inp);
	cuda_need_device(op, "weight", weight);
	if (rstd.data)
		cuda_need_dtype(op, "rstd", rstd, DTYPE_F32);
	int64_t D = last_dim(inp), rows = D ? tensor_numel(inp) / D : 0;
	cuda_need_same_numel(op, "out", out, "inp", inp);
	if (out.dtype != inp.dtype)
		die(EXIT_FAIL, "%s: out is %s, inp %s", op, dtype_name(out.dtype), dtype_name(inp.dtype));
	if (tensor_numel(weight) != D || (rstd.data && tensor_numel(rstd) != rows))
		die(EXIT_FAIL, "%s: weight has %lld elements and rstd %lld for %lld rows of %lld", op,
		    (long long)tensor_numel(weight), (long long)tensor_numel(rstd), (long long)rows, (long long)D);
	if (rows == 0)
		return;
	unsigned blocks = (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
	with_act_type(inp.dtype, op, "inp", [&](auto tx) {
		using Tx = decltype(tx);
		with_weight_type(weight.dtype, op, "weight", [&](auto tw) {
			using Tw = decltype(tw);
			constexpr int N = pack16<Tx>();
			int vec = D % N == 0 && cuda_aligned(out.data, 16) && cuda_aligned(inp.data, 16) &&
				  cuda_aligned(weight.data, N * sizeof(Tw));
			if (vec)
				rmsnorm_forward_kernel<Tx, Tw, N><<<blocks, CUDA_BLOCK, 0, cuda_stream()>>>(
					(Tx *)out.data, (float *)rstd.data, (const Tx *)inp.data, (const Tw *)weight.data,
					(float)eps, rows, D);
			else
				rmsnorm_forward_kernel<Tx, Tw, 1><<<blocks, CUDA_BLOCK, 0, cuda_stream()>>>(
					(Tx *)out.data, (float *)rstd.data, (const Tx *)inp.data, (const Tw *)weight.data,
					(float)eps, rows, D);
			CUDA_LAUNCHED();
		});
	});
}

// dout (N,D) -> dinp (N,D) +=, dweight (D) += (either may be NONE)
extern "C" void cuda_rmsnorm_backward(struct tensor dinp, struct tensor dweight, struct tensor dout, struct tensor inp,
				      struct tensor weight, struct tensor rstd)
{
	const char *op = "rmsnorm_backward";
	cuda_need_device(op, "dinp", dinp);
	cuda_need_device(op, "dweight", dweight);
	cuda_need_device(op, "dout", dout);
	cuda_need_device(op, "inp", inp);
	cuda_need_device(op, "weight", weight);
	cuda_need_dtype(op, "rstd", rstd, DTYPE_F32);
	int64_t D = last_dim(inp), rows = D ? tensor_numel(inp) / D : 0;
	cuda_need_same_numel(op, "dout", dout, "inp", inp);
	if (dout.dtype != inp.dtype || (dinp.data && dinp.dtype != inp.dtype))
		die(EXIT_FAIL, "%s: dout, inp and dinp must share a dtype (%s, %s, %s)", op, dtype_name(dout.dtype),
		    dtype_name(inp.dtype), dtype_name(dinp.dtype));
	if ((dinp.data && tensor_numel(dinp) != rows * D) || tensor_numel(rstd) != rows || tensor_numel(weight) != D ||
	    (dweight.data && tensor_numel(dweight) != D))
		die(EXIT_FAIL, "%s: shapes do not fit %lld rows of %lld", op, (long long)rows, (long long)D);
	if (rows == 0)
		return;
	if (dinp.data) {
		unsigned blocks = (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
		with_act_type(inp.dtype, op, "inp", [&](auto tx) {
			using Tx = decltype(tx);
			with_weight_type(weight.dtype, op, "weight", [&](auto tw) {
				using Tw = decltype(tw);
				constexpr int N = pack16<Tx>();
				int vec = D % N == 0 && cuda_aligned(dinp.data, 16) && cuda_aligned(dout.data, 16) &&
					  cuda_aligned(inp.data, 16) && cuda_aligned(weight.data, N * sizeof(Tw));
				if (vec)
					rmsnorm_backward_kernel<Tx, Tw, N><<<blocks, CUDA_BLOCK, 0, cuda_stream()>>>(
						(Tx *)dinp.data, (const Tx *)dout.data, (const Tx *)inp.data,
						(const Tw *)weight.data, (const float *)rstd.data, rows, D);
				else
					rmsnorm_backward_kernel<Tx, Tw, 1><<<blocks, CUDA_BLOCK, 0, cuda_stream()>>>(
						(Tx *)dinp.data, (const Tx *)dout.data, (const Tx *)inp.data,
						(const Tw *)weight.data, (const float *)rstd.data, rows, D);
				CUDA_LAUNCHED();
			});
		});
	}
	if (dweight.data) {
		int64_t col_blocks = (D + 31) / 32;
		int64_t chunks = (DW_BLOCKS + col_blocks - 1) / col_blocks, max_chunks = (rows + 63) / 64;
		chunks = chunks < max_chunks ? chunks : max_chunks;
		chunks = chunks < 65535 ? chunks : 65535;
		int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
		chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
		// SCRATCH_REDUCE: used only within this call
		float *partial = (float *)cuda_scratch(SCRATCH_REDUCE, (size_t)(chunks * D) * sizeof(float));
		with_act_type(inp.dtype, op, "inp", [&](auto tx) {
			using Tx = decltype(tx);
			dim3 grid((unsigned)col_blocks, (unsigned)chunks), block(32, DW_ROWS);
			rmsnorm_dweight_partial_kernel<Tx><<<grid, block, 0, cuda_stream()>>>(
				partial, (const Tx *)dout.data, (const Tx *)inp.data, (const float *)rstd.data, rows, D,
				rows_per_chunk);
			CUDA_LAUNCHED();
		});
		with_float_type(dweight.dtype, op, "dweight", [&](auto tw) {
			using Tw = decltype(tw);
			rmsnorm_dweight_final_kernel<Tw><<<cuda_blocks(D, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
				(Tw *)dweight.data, partial, chunks, D);
			CUDA_LAUNCHED();
		});
	}
}
