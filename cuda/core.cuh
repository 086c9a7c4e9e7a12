// core.cuh — what the base op files (memory, gather, matmul, rmsnorm, rope, swiglu, residual, dropout, adamw,
// lmhead) share beyond common.cuh: lib/die.h and lib/ops.h seen from C++, operand checks, dispatch from a
// tensor's dtype to a template, packed loads of up to 16 bytes, and fixed-order warp and block sums.
//
#ifndef MEDMOE_CUDA_CORE_CUH
#define MEDMOE_CUDA_CORE_CUH

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <type_traits>

#include "../lib/die.h"
#include "../lib/ops.h"

#include "common.cuh"

// ----------------------------------------------------------------------------
// operand checks (host)

// "OP: WHAT: DTYPE is not supported by the CUDA backend" (exit 1).
[[noreturn]] void cuda_unsupported(const char *op, const char *what, enum dtype t);
// Dies unless T is NONE or on the CUDA device.
void cuda_need_device(const char *op, const char *what, struct tensor t);
// Dies unless T is on the CUDA device with dtype WANT.
void cuda_need_dtype(const char *op, const char *what, struct tensor t, enum dtype want);
// Dies unless A and B hold the same number of elements.
void cuda_need_same_numel(const char *op, const char *what_a, struct tensor a, const char *what_b, struct tensor b);

// dst (n, dtype dt) = src (n, dtype st), both on the device, float dtypes converted with one rounding to nearest
// even (I32 only to I32); queued on the stream (cuda/memory.cu).
void cuda_convert(void *dst, enum dtype dt, const void *src, enum dtype st, int64_t n);

// Whether P is aligned to BYTES (a power of two).
static inline int cuda_aligned(const void *p, size_t bytes) { return ((uintptr_t)p & (bytes - 1)) == 0; }

// ----------------------------------------------------------------------------
// dtype dispatch (host): call F with a value of the C++ type of T, so F can launch kernel<decltype(v)>.

// Activations: bf16 or f32 (DESIGN §5).
template <typename F> static void with_act_type(enum dtype t, const char *op, const char *what, F &&f)
{
	switch (t) {
	case DTYPE_BF16: f(__nv_bfloat16{}); return;
	case DTYPE_F32: f(float{}); return;
	default: cuda_unsupported(op, what, t);
	}
}

// Frozen weights: whatever the checkpoint stored (bf16, f16, f32).
template <typename F> static void with_weight_type(enum dtype t, const char *op, const char *what, F &&f)
{
	switch (t) {
	case DTYPE_BF16: f(__nv_bfloat16{}); return;
	case DTYPE_F16: f(__half{}); return;
	case DTYPE_F32: f(float{}); return;
	default: cuda_unsupported(op, what, t);
	}
}

// Any float dtype, f64 included (copies, fills, sums).
template <typename F> static void with_float_type(enum dtype t, const char *op, const char *what, F &&f)
{
	switch (t) {
	case DTYPE_BF16: f(__nv_bfloat16{}); return;
	case DTYPE_F16: f(__half{}); return;
	case DTYPE_F32: f(float{}); return;
	case DTYPE_F64: f(double{}); return;
	default: cuda_unsupported(op, what, t);
	}
}

// ----------------------------------------------------------------------------
// element conversion (device): to float for arithmetic, back with one rounding to nearest even

static __device__ __forceinline__ float to_float(float x) { return x; }
static __device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
static __device__ __forceinline__ float to_float(double x) { return (float)x; }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x)
{
	return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ double from_float<double>(float x) { return (double)x; }

// X as a To with one rounding to nearest even from the source value: f64 converts directly (no double rounding
// through f32), the 16-bit types go exactly through f32, and a type into itself is the identity (so raw words,
// uint16_t and the like, copy bit for bit).
template <typename To, typename Ti> __device__ __forceinline__ To convert(Ti x)
{
	if constexpr (std::is_same<To, Ti>::value)
		return x;
	else if constexpr (std::is_same<Ti, double>::value) {
		if constexpr (std::is_same<To, __nv_bfloat16>::value)
			return __double2bfloat16(x);
		else if constexpr (std::is_same<To, __half>::value)
			return __double2half(x);
		else
			return (To)x;   // f32: round to nearest even
	} else if constexpr (std::is_same<To, double>::value)
		return (double)to_float(x);   // exact
	else
		return from_float<To>(to_float(x));
}

// ----------------------------------------------------------------------------
// packed access (device): N consecutive elements in one load or store of N·sizeof(T) bytes (LDG.128 for 16),
// the pointer aligned to that size.  N = 1 is the scalar path for views whose alignment does not allow more, so
// one kernel template serves both.

template <typename T, int N> struct alignas(sizeof(T) * N) Pack {
	T v[N];
};

// 16-byte packs: 8 bf16/f16 or 4 f32.
template <typename T> constexpr int pack16() { return (int)(16 / sizeof(T)); }

template <int N, typename T> __device__ __forceinline__ void load_pack(float (&f)[N], const T *p)
{
	Pack<T, N> k = *reinterpret_cast<const Pack<T, N> *>(p);
#pragma unroll
	for (int i = 0; i < N; i++)
		f[i] = to_float(k.v[i]);
}

template <int N, typename T> __device__ __forceinline__ void store_pack(T *p, const float (&f)[N])
{
	Pack<T, N> k;
#pragma unroll
	for (int i = 0; i < N; i++)
		k.v[i] = from_float<T>(f[i]);
	*reinterpret_cast<Pack<T, N> *>(p) = k;
}

// ----------------------------------------------------------------------------
// reductions in a fixed order (device): a butterfly over the lanes, then the warps' values in warp order, so the
// same inputs and launch shape give the same bits every run.

template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
#pragma unroll
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

template <typename T> __device__ __forceinline__ T warp_max(T v)
{
#pragma unroll
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

// The sum of V over the block (blockDim.x a multiple of 32, at most 1024), returned to every thread.  SHARED
// holds 32 values of T; the block must not be using it.
template <typename T> __device__ T block_sum(T v, T *shared)
{
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
	v = warp_sum(v);
	__syncthreads();   // SHARED may still be read by a previous call
	if (lane == 0)
		shared[warp] = v;
	__syncthreads();
	v = lane < n_warps ? shared[lane] : (T)0;
	return warp_sum(v);
}

// Threads per block for row kernels and element-wise kernels.
constexpr int CUDA_BLOCK = 256;

#endif
