// adapter_util.cuh — what the attention and adapter files (attention.cu, lora.cu, router.cu, contrastive.cu)
// share beyond core.cuh: argument checks, a row-major cuBLAS product with fp32 accumulation, a dtype cast into
// backend scratch, carving one scratch buffer into several, and fixed-order block sums.  Header-only (static inline functions and templates), so each .cu takes what it
// uses.
#ifndef MEDMOE_CUDA_ADAPTER_UTIL_CUH
#define MEDMOE_CUDA_ADAPTER_UTIL_CUH

#include "core.cuh"   // die(), to_float/from_float, warp_sum

// The activation dtypes the kernels are instantiated for.
static inline int is_act_dtype(enum dtype t)
{
	return t == DTYPE_BF16 || t == DTYPE_F32;
}

static inline cudaDataType cuda_data_type(enum dtype t, const char *op)
{
	switch (t) {
	case DTYPE_F32:
		return CUDA_R_32F;
	case DTYPE_BF16:
		return CUDA_R_16BF;
	case DTYPE_F16:
		return CUDA_R_16F;
	default:
		die(EXIT_FAIL, "%s: no cuBLAS product for %s operands", op, dtype_name(t));
	}
}

// ----------------------------------------------------------------------------
// row-major products through cuBLAS (column-major): C (M,N) = alpha · op(A) · op(B) + beta · C, op(X) = Xᵀ when
// its flag is set; A is (M,K) as used (stored (K,M) when transposed), B (K,N) likewise.  Row-major C is
// column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS is called with the operands swapped.  Accumulation is fp32
// (CUBLAS_COMPUTE_32F); A and B share one dtype (bf16, f16 or f32), C is that dtype or f32 — the combinations
// cublasGemmEx supports.
static inline void gemm_rm(const char *op, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A,
			   enum dtype at, int64_t lda, const void *B, enum dtype bt, int64_t ldb, float beta, void *C,
			   enum dtype ct, int64_t ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (at != bt || (ct != at && ct != DTYPE_F32) || (at == DTYPE_F32 && ct != DTYPE_F32))
		die(EXIT_FAIL, "%s: no product of %s by %s into %s", op, dtype_name(at), dtype_name(bt),
		    dtype_name(ct));
	if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
		die(EXIT_FAIL, "%s: product of %lld x %lld x %lld is too large for cuBLAS", op, (long long)M,
		    (long long)N, (long long)K);
	CUBLAS_CHECK(cublasGemmEx(cuda_cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N,
				  (int)M, (int)K, &alpha, B, cuda_data_type(bt, op), (int)ldb, A,
				  cuda_data_type(at, op), (int)lda, &beta, C, cuda_data_type(ct, op), (int)ldc,
				  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// ----------------------------------------------------------------------------
// dtype casts

template <typename D, typename S> __global__ void cast_kernel(D *dst, const S *src, int64_t n)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
		dst[i] = from_float<D>(to_float(src[i]));
}

template <typename D> static inline void cast_from(D *dst, struct tensor src, int64_t n, const char *op)
{
	unsigned grid = cuda_blocks(n, 256);
	switch (src.dtype) {
	case DTYPE_F32:
		cast_kernel<D, float><<<grid, 256, 0, cuda_stream()>>>(dst, (const float *)src.data, n);
		break;
	case DTYPE_BF16:
		cast_kernel<D, __nv_bfloat16><<<grid, 256, 0, cuda_stream()>>>(dst, (const __nv_bfloat16 *)src.data, n);
		break;
	case DTYPE_F16:
		cast_kernel<D, __half><<<grid, 256, 0, cuda_stream()>>>(dst, (const __half *)src.data, n);
		break;
	default:
		die(EXIT_FAIL, "%s: cannot convert %s", op, dtype_name(src.dtype));
	}
	CUDA_LAUNCHED();
}

// T's data in dtype WANT: T itself when it has that dtype, else a converted copy in SLOT's scratch (valid until
// the next use of the slot), for the operand of a product whose other side is WANT (an fp32 master parameter
// met by bf16 activations: bf16 copy, fp32 accumulation).
static inline const void *as_dtype(struct tensor t, enum dtype want, enum cuda_scratch_slot slot, const char *op)
{
	if (t.dtype == want)
		return t.data;
	int64_t n = tensor_numel(t);
	void *dst = cuda_scratch(slot, (size_t)(n > 0 ? n : 1) * dtype_size(want));
	switch (want) {
	case DTYPE_F32:
		cast_from<float>((float *)dst, t, n, op);
		break;
	case DTYPE_BF16:
		cast_from<__nv_bfloat16>((__nv_bfloat16 *)dst, t, n, op);
		break;
	case DTYPE_F16:
		cast_from<__half>((__half *)dst, t, n, op);
		break;
	default:
		die(EXIT_FAIL, "%s: cannot convert to %s", op, dtype_name(want));
	}
	return dst;
}

// ----------------------------------------------------------------------------
// several buffers out of one scratch slot: plan the sizes, then take the slot once

struct carve {
	size_t used;
	char *base;
};
// Reserve BYTES (256-byte aligned); returns the offset to pass to carve_at once the slot is taken.
static inline size_t carve_add(struct carve *c, size_t bytes)
{
	size_t at = c->used;
	c->used += (bytes + 255) / 256 * 256;
	return at;
}
static inline void carve_take(struct carve *c, enum cuda_scratch_slot slot)
{
	c->base = (char *)cuda_scratch(slot, c->used > 0 ? c->used : 256);
}
static inline void *carve_at(const struct carve *c, size_t offset)
{
	return c->base + offset;
}

// ----------------------------------------------------------------------------
// fixed-order reductions

// The sum of V over the block (blockDim.x a power of two, at most 1024; BUF blockDim.x doubles of shared
// memory), by a fixed tree: the same inputs give the same bits whatever the scheduling.  Every thread gets the
// total; BUF may be reused after the call.
__device__ __forceinline__ double block_sum_double(double v, double *buf)
{
	buf[threadIdx.x] = v;
	__syncthreads();
	for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
		if (threadIdx.x < s)
			buf[threadIdx.x] += buf[threadIdx.x + s];
		__syncthreads();
	}
	double total = buf[0];
	__syncthreads();
	return total;
}

// The same for floats.
__device__ __forceinline__ float block_sum_float(float v, float *buf)
{
	buf[threadIdx.x] = v;
	__syncthreads();
	for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
		if (threadIdx.x < s)
			buf[threadIdx.x] += buf[threadIdx.x + s];
		__syncthreads();
	}
	float total = buf[0];
	__syncthreads();
	return total;
}

// Die unless T is on the GPU with dtype WANT (NONE passes when OPTIONAL).
static inline void need_tensor(struct tensor t, enum dtype want, int optional, const char *op, const char *name)
{
	if (!t.data) {
		if (!optional)
			die(EXIT_FAIL, "%s: %s is missing", op, name);
		return;
	}
	if (t.device != DEVICE_CUDA)
		die(EXIT_FAIL, "%s: %s is not on the GPU", op, name);
	if (t.dtype != want)
		die(EXIT_FAIL, "%s: %s is %s, expected %s", op, name, dtype_name(t.dtype), dtype_name(want));
}

#endif
