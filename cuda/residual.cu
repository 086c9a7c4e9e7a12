// residual.cu — the residual add, out = a + b, and its backward da, db += dout (ops.h).
//
// Element-wise in fp32, rounded once; 16-byte packs when every pointer allows.  out may alias a or b: each
// thread reads its elements before it writes them.
#include "core.cuh"

namespace {

template <typename T, int N> __global__ void residual_forward_kernel(T *out, const T *a, const T *b, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			float x[N], y[N];
			load_pack<N>(x, a + i);
			load_pack<N>(y, b + i);
#pragma unroll
			for (int j = 0; j < N; j++)
				x[j] += y[j];
			store_pack<N>(out + i, x);
		} else {
			for (int64_t j = i; j < n; j++)
				out[j] = from_float<T>(to_float(a[j]) + to_float(b[j]));
		}
	}
}

// da, db (either NULL) += dout
template <typename T, int N> __global__ void residual_backward_kernel(T *da, T *db, const T *dout, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			float g[N], x[N];
			load_pack<N>(g, dout + i);
			if (da) {
				load_pack<N>(x, da + i);
#pragma unroll
				for (int j = 0; j < N; j++)
					x[j] += g[j];
				store_pack<N>(da + i, x);
			}
			if (db) {
				load_pack<N>(x, db + i);
#pragma unroll
				for (int j = 0; j < N; j++)
					x[j] += g[j];
				store_pack<N>(db + i, x);
			}
		} else {
			for (int64_t j = i; j < n; j++) {
				float g = to_float(dout[j]);
				if (da)
					da[j] = from_float<T>(to_float(da[j]) + g);
				if (db)
					db[j] = from_float<T>(to_float(db[j]) + g);
			}
		}
	}
}

void need_like(const char *op, struct tensor ref, const char *ref_name, struct tensor t, const char *name)
{
	cuda_need_device(op, name, t);
	cuda_need_same_numel(op, ref_name, ref, name, t);
	if (t.dtype != ref.dtype)
		die(EXIT_FAIL, "%s: %s is %s, %s %s", op, ref_name, dtype_name(ref.dtype), name, dtype_name(t.dtype));
}

} // namespace

// a (N), b (N) -> out (N) (out may alias a or b)
extern "C" void cuda_residual_forward(struct tensor out, struct tensor a, struct tensor b)
{
	const char *op = "residual_forward";
	cuda_need_device(op, "a", a);
	need_like(op, a, "a", b, "b");
	need_like(op, a, "a", out, "out");
	int64_t n = tensor_numel(a);
	if (n == 0)
		return;
	with_act_type(a.dtype, op, "a", [&](auto tag) {
		using T = decltype(tag);
		constexpr int N = pack16<T>();
		if (cuda_aligned(out.data, 16) && cuda_aligned(a.data, 16) && cuda_aligned(b.data, 16))
			residual_forward_kernel<T, N><<<cuda_blocks((n + N - 1) / N, CUDA_BLOCK), CUDA_BLOCK, 0,
							cuda_stream()>>>((T *)out.data, (const T *)a.data,
									 (const T *)b.data, n);
		else
			residual_forward_kernel<T, 1><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
				(T *)out.data, (const T *)a.data, (const T *)b.data, n);
		CUDA_LAUNCHED();
	});
}

// dout (N) -> da, db += (either may be NONE)
extern "C" void cuda_residual_backward(struct tensor da, struct tensor db, struct tensor dout)
{
	const char *op = "residual_backward";
	cuda_need_device(op, "dout", dout);
	if (da.data)
		need_like(op, dout, "dout", da, "da");
	if (db.data)
		need_like(op, dout, "dout", db, "db");
	int64_t n = tensor_numel(dout);
	if (n == 0 || (!da.data && !db.data))
		return;
	with_act_type(dout.dtype, op, "dout", [&](auto tag) {
		using T = decltype(tag);
		constexpr int N = pack16<T>();
		if (cuda_aligned(da.data, 16) && cuda_aligned(db.data, 16) && cuda_aligned(dout.data, 16))
			residual_backward_kernel<T, N><<<cuda_blocks((n + N - 1) / N, CUDA_BLOCK), CUDA_BLOCK, 0,
							 cuda_stream()>>>((T *)da.data, (T *)db.data,
									  (const T *)dout.data, n);
		else
			residual_backward_kernel<T, 1><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
				(T *)da.data, (T *)db.data, (const T *)dout.data, n);
		CUDA_LAUNCHED();
	});
}
