// adamw.cu — AdamW (torch.optim.AdamW, decoupled weight decay) on the fp32 master parameters (ops.h).
//
// The formula and its fp32 operation order are lib/optim.c's adamw_update: the scalars are made in double on the
// host and rounded to fp32 once, then per element
//   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g·g;  p = p·(1 − lr·wd) − (lr/bc1)·m / (sqrt(v)·(1/sqrt(bc2)) + eps).
// Every operation is written with an explicitly rounded intrinsic (__fmul_rn, ...), which nvcc never contracts
// into a fused multiply-add, and sqrt and division are IEEE-rounded: the CPU (which compiles this without FMA)
// and the GPU give the same bits.
#include "core.cuh"

#include <math.h>

namespace {

struct adamw_scalars {
	float b1, one_minus_b1, b2, one_minus_b2, step, decay, rbc2, eps;
};

__device__ __forceinline__ void adamw_elem(float &p, float g, float &m, float &v, const adamw_scalars &s)
{
	m = __fadd_rn(__fmul_rn(s.b1, m), __fmul_rn(s.one_minus_b1, g));
	v = __fadd_rn(__fmul_rn(s.b2, v), __fmul_rn(__fmul_rn(s.one_minus_b2, g), g));
	float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(v), s.rbc2), s.eps);
	p = __fsub_rn(__fmul_rn(p, s.decay), __fdiv_rn(__fmul_rn(s.step, m), denom));
}

template <int N>
__global__ void adamw_kernel(float *params, const float *grads, float *m, float *v, adamw_scalars s, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			Pack<float, N> p = *reinterpret_cast<const Pack<float, N> *>(params + i);
			Pack<float, N> g = *reinterpret_cast<const Pack<float, N> *>(grads + i);
			Pack<float, N> mm = *reinterpret_cast<const Pack<float, N> *>(m + i);
			Pack<float, N> vv = *reinterpret_cast<const Pack<float, N> *>(v + i);
#pragma unroll
			for (int j = 0; j < N; j++)
				adamw_elem(p.v[j], g.v[j], mm.v[j], vv.v[j], s);
			*reinterpret_cast<Pack<float, N> *>(params + i) = p;
			*reinterpret_cast<Pack<float, N> *>(m + i) = mm;
			*reinterpret_cast<Pack<float, N> *>(v + i) = vv;
		} else {
			for (int64_t j = i; j < n; j++)
				adamw_elem(params[j], grads[j], m[j], v[j], s);
		}
	}
}

} // namespace

// params, grads, m, v (n) f32: params, m, v updated in place
extern "C" void cuda_adamw_update(struct tensor params, struct tensor grads, struct tensor m, struct tensor v,
				  const struct adamw_step *st)
{
	const char *op = "adamw_update";
	cuda_need_dtype(op, "params", params, DTYPE_F32);
	cuda_need_dtype(op, "grads", grads, DTYPE_F32);
	cuda_need_dtype(op, "m", m, DTYPE_F32);
	cuda_need_dtype(op, "v", v, DTYPE_F32);
	cuda_need_same_numel(op, "params", params, "grads", grads);
	cuda_need_same_numel(op, "params", params, "m", m);
	cuda_need_same_numel(op, "params", params, "v", v);
	int64_t n = tensor_numel(params);
	if (n == 0)
		return;
	double bc1 = 1.0 - pow(st->beta1, (double)st->t), bc2 = 1.0 - pow(st->beta2, (double)st->t);
	adamw_scalars s;
	s.b1 = (float)st->beta1;
	s.b2 = (float)st->beta2;
	s.one_minus_b1 = (float)(1.0 - st->beta1);   // formed in double, rounded once, as the CPU backend and torch
	s.one_minus_b2 = (float)(1.0 - st->beta2);
	s.step = (float)(st->lr / bc1);
	s.decay = (float)(1.0 - st->lr * st->weight_decay);
	s.rbc2 = (float)(1.0 / sqrt(bc2));
	s.eps = (float)st->eps;
	float *p = (float *)params.data, *mm = (float *)m.data, *vv = (float *)v.data;
	const float *g = (const float *)grads.data;
	if (cuda_aligned(p, 16) && cuda_aligned(g, 16) && cuda_aligned(mm, 16) && cuda_aligned(vv, 16))
		adamw_kernel<4><<<cuda_blocks((n + 3) / 4, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(p, g, mm, vv, s, n);
	else
		adamw_kernel<1><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(p, g, mm, vv, s, n);
	CUDA_LAUNCHED();
}
