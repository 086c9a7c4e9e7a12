// gemm.cuh — matrix products through cuBLASLt for the op files, in the row-major terms of lib/ops_cpu.c's
// ops_gemm (defined in cuda/gemm.cu).
#ifndef MEDMOE_CUDA_GEMM_CUH
#define MEDMOE_CUDA_GEMM_CUH

#include "core.cuh"

// C (M,N) = alpha · op(A) · op(B) + beta · C (+ bias (N), added to every row), all row-major:
//   op(A) = A (M,K) with row stride lda, or Aᵀ for A stored (K,M) when a_trans;
//   op(B) = B (K,N) with row stride ldb, or Bᵀ for B stored (N,K) when b_trans.
// A and B share the dtype AB (bf16, f16 or f32: a weight of another dtype is converted by the caller first); C is
// AB or f32; bias is NULL or in C's dtype.  fp32 accumulation (CUBLAS_COMPUTE_32F; f32 inputs run without TF32).
// Queued on the stream.  Deterministic: one algorithm per shape and alignment, chosen once and kept.
void cuda_gemm_rowmajor(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, float alpha, const void *A,
			int64_t lda, const void *B, int64_t ldb, enum dtype ab, float beta, void *C, int64_t ldc,
			enum dtype c_dtype, const void *bias);

// N elements at DATA (dtype HAVE) in dtype WANT: DATA itself when HAVE is WANT, else BUFFER (room for N elements
// of WANT) holding them converted; for a weight whose dtype differs from the activations' before a product.
const void *cuda_as_dtype(const void *data, enum dtype have, int64_t n, enum dtype want, void *buffer);

#endif
