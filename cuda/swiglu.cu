// swiglu.cu — SwiGLU, out = silu(gate) · up with silu(g) = g / (1 + e^−g) (transformers LlamaMLP's
// act_fn(gate_proj(x)) * up_proj(x)), forward and backward (ops.h).
//
// Element-wise in fp32 (expf at full precision), rounded once to the activation dtype; 16-byte packs when every
// pointer is 16-byte aligned, else one element per access.
#include "core.cuh"

namespace {

template <typename T, int N> __global__ void swiglu_forward_kernel(T *out, const T *gate, const T *up, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			float g[N], u[N];
			load_pack<N>(g, gate + i);
			load_pack<N>(u, up + i);
#pragma unroll
			for (int j = 0; j < N; j++)
				g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
			store_pack<N>(out + i, g);
		} else {
			for (int64_t j = i; j < n; j++) {
				float g = to_float(gate[j]);
				out[j] = from_float<T>(g / (1.0f + expf(-g)) * to_float(up[j]));
			}
		}
	}
}

// σ = 1/(1+e^−g): d/dg = dy·u·σ·(1 + g·(1 − σ)), d/du = dy·g·σ (accumulated).
__device__ __forceinline__ void swiglu_grad(float g, float u, float dy, float &dg, float &du)
{
	float sig = 1.0f / (1.0f + expf(-g));
	dg += dy * u * sig * (1.0f + g * (1.0f - sig));
	du += dy * g * sig;
}

template <typename T, int N>
__global__ void swiglu_backward_kernel(T *dgate, T *dup, const T *dout, const T *gate, const T *up, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			float g[N], u[N], dy[N], dg[N], du[N];
			load_pack<N>(g, gate + i);
			load_pack<N>(u, up + i);
			load_pack<N>(dy, dout + i);
			load_pack<N>(dg, dgate + i);
			load_pack<N>(du, dup + i);
#pragma unroll
			for (int j = 0; j < N; j++)
				swiglu_grad(g[j], u[j], dy[j], dg[j], du[j]);
			store_pack<N>(dgate + i, dg);
			store_pack<N>(dup + i, du);
		} else {
			for (int64_t j = i; j < n; j++) {
				float dg = to_float(dgate[j]), du = to_float(dup[j]);
				swiglu_grad(to_float(gate[j]), to_float(up[j]), to_float(dout[j]), dg, du);
				dgate[j] = from_float<T>(dg);
				dup[j] = from_float<T>(du);
			}
		}
	}
}

void need_same(const char *op, struct tensor a, const char *name_a, struct tensor b, const char *name_b)
{
	cuda_need_device(op, name_b, b);
	cuda_need_same_numel(op, name_a, a, name_b, b);
	if (a.dtype != b.dtype)
		die(EXIT_FAIL, "%s: %s is %s, %s %s", op, name_a, dtype_name(a.dtype), name_b, dtype_name(b.dtype));
}

} // namespace

// gate (T,F), up (T,F) -> out (T,F)
extern "C" void cuda_swiglu_forward(struct tensor out, struct tensor gate, struct tensor up)
{
	const char *op = "swiglu_forward";
	cuda_need_device(op, "gate", gate);
	need_same(op, gate, "gate", up, "up");
	need_same(op, gate, "gate", out, "out");
	int64_t n = tensor_numel(gate);
	if (n == 0)
		return;
	with_act_type(gate.dtype, op, "gate", [&](auto tag) {
		using T = decltype(tag);
		constexpr int N = pack16<T>();
		if (cuda_aligned(out.data, 16) && cuda_aligned(gate.data, 16) && cuda_aligned(up.data, 16))
			swiglu_forward_kernel<T, N><<<cuda_blocks((n + N - 1) / N, CUDA_BLOCK), CUDA_BLOCK, 0,
						      cuda_stream()>>>((T *)out.data, (const T *)gate.data,
								       (const T *)up.data, n);
		else
			swiglu_forward_kernel<T, 1><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
				(T *)out.data, (const T *)gate.data, (const T *)up.data, n);
		CUDA_LAUNCHED();
	});
}

// dout (T,F) -> dgate, dup +=
extern "C" void cuda_swiglu_backward(struct tensor dgate, struct tensor dup, struct tensor dout, struct tensor gate,
				     struct tensor up)
{
	const char *op = "swiglu_backward";
	cuda_need_device(op, "gate", gate);
	need_same(op, gate, "gate", up, "up");
	need_same(op, gate, "gate", dout, "dout");
	need_same(op, gate, "gate", dgate, "dgate");
	need_same(op, gate, "gate", dup, "dup");
	int64_t n = tensor_numel(gate);
	if (n == 0)
		return;
	with_act_type(gate.dtype, op, "gate", [&](auto tag) {
		using T = decltype(tag);
		constexpr int N = pack16<T>();
		if (cuda_aligned(dgate.data, 16) && cuda_aligned(dup.data, 16) && cuda_aligned(dout.data, 16) &&
		    cuda_aligned(gate.data, 16) && cuda_aligned(up.data, 16))
			swiglu_backward_kernel<T, N><<<cuda_blocks((n + N - 1) / N, CUDA_BLOCK), CUDA_BLOCK, 0,
						       cuda_stream()>>>((T *)dgate.data, (T *)dup.data,
									(const T *)dout.data, (const T *)gate.data,
									(const T *)up.data, n);
		else
			swiglu_backward_kernel<T, 1><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
				(T *)dgate.data, (T *)dup.data, (const T *)dout.data, (const T *)gate.data,
				(const T *)up.data, n);
		CUDA_LAUNCHED();
	});
}
