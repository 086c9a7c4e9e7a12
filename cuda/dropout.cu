// dropout.cu — dropout with a reproducible mask, forward and backward (ops.h).
//
// Element i (flat index) is dropped when u_i < p, u_i = (splitmix64 of key + i) >> 11, times 2^−53: the same
// integer hash and the same double comparison as lib/adapter_linear.c's dropout_apply (lib/rng.c's splitmix64
// adds the golden-ratio increment to its state first, then mixes), so the CPU and the GPU drop the same elements.
// Kept elements are multiplied by the fp32 value of 1/(1−p), as the CPU does, and rounded once.
#include "core.cuh"

namespace {

// lib/rng.c splitmix64 on the state KEY, one step.
__device__ __forceinline__ uint64_t splitmix64_of(uint64_t key)
{
	uint64_t z = key + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

__device__ __forceinline__ bool dropped(uint64_t key, int64_t i, double p)
{
	return (double)(splitmix64_of(key + (uint64_t)i) >> 11) * 0x1.0p-53 < p;
}

// out = inp ⊙ mask · scale (ACCUMULATE: out += ...), out may alias inp.
template <typename T, int N, bool ACCUMULATE>
__global__ void dropout_kernel(T *out, const T *inp, double p, float scale, uint64_t key, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			float x[N], y[N];
			load_pack<N>(x, inp + i);
			if (ACCUMULATE)
				load_pack<N>(y, out + i);
#pragma unroll
			for (int j = 0; j < N; j++) {
				float v = dropped(key, i + j, p) ? 0.0f : x[j] * scale;
				y[j] = ACCUMULATE ? y[j] + v : v;
			}
			store_pack<N>(out + i, y);
		} else {
			for (int64_t j = i; j < n; j++) {
				float v = dropped(key, j, p) ? 0.0f : to_float(inp[j]) * scale;
				out[j] = from_float<T>(ACCUMULATE ? to_float(out[j]) + v : v);
			}
		}
	}
}

template <bool ACCUMULATE>
void dropout(struct tensor out, struct tensor inp, double p, uint64_t key, const char *op, const char *out_name,
	     const char *inp_name)
{
	cuda_need_device(op, out_name, out);
	cuda_need_device(op, inp_name, inp);
	cuda_need_same_numel(op, out_name, out, inp_name, inp);
	if (out.dtype != inp.dtype)
		die(EXIT_FAIL, "%s: %s is %s, %s %s", op, out_name, dtype_name(out.dtype), inp_name, dtype_name(inp.dtype));
	int64_t n = tensor_numel(inp);
	if (n == 0)
		return;
	float scale = (float)(1.0 / (1.0 - p));
	with_act_type(inp.dtype, op, inp_name, [&](auto tag) {
		using T = decltype(tag);
		constexpr int N = pack16<T>();
		if (cuda_aligned(out.data, 16) && cuda_aligned(inp.data, 16))
			dropout_kernel<T, N, ACCUMULATE><<<cuda_blocks((n + N - 1) / N, CUDA_BLOCK), CUDA_BLOCK, 0,
							   cuda_stream()>>>((T *)out.data, (const T *)inp.data, p, scale,
									    key, n);
		else
			dropout_kernel<T, 1, ACCUMULATE><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
				(T *)out.data, (const T *)inp.data, p, scale, key, n);
		CUDA_LAUNCHED();
	});
}

} // namespace

// inp (N) -> out (N) (out may alias inp)
extern "C" void cuda_dropout_forward(struct tensor out, struct tensor inp, double p, uint64_t key)
{
	dropout<false>(out, inp, p, key, "dropout_forward", "out", "inp");
}

// dout (N) -> dinp (N) += dout ⊙ mask / (1−p)
extern "C" void cuda_dropout_backward(struct tensor dinp, struct tensor dout, double p, uint64_t key)
{
	dropout<true>(dinp, dout, p, key, "dropout_backward", "dinp", "dout");
}
