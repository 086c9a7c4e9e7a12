// ops_cpu_internal.h — what the CPU backend's files share: the compute type's math functions, the one
// matrix-product helper, weights seen in the compute type, and the backend's own scratch.
//   ops_cpu.c          devices, memory, copies and conversions, reductions, AdamW, the shared helpers
//   ops_cpu_layers.c   the decoder's ops: matmul, RMSNorm, RoPE, attention, SwiGLU, residual, LM head
//   ops_cpu_adapter.c  the adapter's ops: dropout, LoRA experts, task gate, router, contrastive loss, queue
// The CPU backend computes in `real` (fp32; fp64 in the gradient-check build): activations and gradients are
// DTYPE_REAL, frozen weights any float dtype (converted where they are used, a tile at a time).
#ifndef MEDMOE_OPS_CPU_INTERNAL_H
#define MEDMOE_OPS_CPU_INTERNAL_H

#include <stdint.h>

#include "ops.h"
#include "ops_backend.h"

#ifdef MEDMOE_DOUBLE
#define R_EXP exp
#define R_SQRT sqrt
#define R_LOG log
#define R_COS cos
#define R_SIN sin
#else
#define R_EXP expf
#define R_SQRT sqrtf
#define R_LOG logf
#define R_COS cosf
#define R_SIN sinf
#endif

// The loops that are not BLAS are compiled for each vector width and picked at load time (GCC function
// multiversioning through an ifunc), so one portable binary still uses AVX2/AVX-512 where the CPU has them.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

// T's data as `real *`, after checking that T is a CPU tensor of the compute type (NULL for NONE).
real *cpu_real(struct tensor t, const char *op);
// T's data as `int32_t *` (a CPU I32 tensor; NULL for NONE).
int32_t *cpu_i32(struct tensor t, const char *op);

// C (M,N) = alpha · op(A) · op(B) + beta · C, op(A) = A (M,K) or Aᵀ of A (K,M) with a_trans, op(B) = B (K,N) or
// Bᵀ of B (N,K) with b_trans; leading dimensions in elements.  OpenBLAS runs single-threaded inside the OpenMP
// team, each thread a block of C's columns (a multiple of 16, whole SIMD panels), so every element is summed
// in the same order whatever the thread count: runs repeat bit for bit.
void cpu_gemm(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, real alpha, const real *A, int64_t lda,
	      const real *B, int64_t ldb, real beta, real *C, int64_t ldc);
// One sgemm/dgemm on the calling thread (inside a parallel region of the caller's).
void cpu_gemm_serial(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, real alpha, const real *A,
		     int64_t lda, const real *B, int64_t ldb, real beta, real *C, int64_t ldc);

// out (T,N) (leading dimension ldo; = or, with ACCUMULATE, +=) x (T,K) (ldx) · wᵀ for a 2-D weight w (N,K) of any
// float dtype, for a few rows (T ≤ OPS_ROWWISE_MAX_ROWS: decoding): each element one dot product summed in an
// order fixed by K alone, so a row of out has the same bits whatever T, the thread count or the other rows
// (ops.h matmul_forward); half-precision weights are widened in registers, never as a tile in memory.
void cpu_matmul_rowwise(real *out, int64_t ldo, int accumulate, const real *x, int64_t ldx, int64_t T,
			struct tensor w);

// Whether W can be used in place (DTYPE_REAL and aligned), or goes through a converted tile.
int cpu_weight_direct(struct tensor w);
// Rows r0 .. r0+n−1, columns c0 .. c0+nc−1 of the 2-D weight W in the compute type: W's own memory when it is
// already DTYPE_REAL and suitably aligned (then *ld = W's row length), else converted into BUF (n·nc values,
// *ld = nc).  Converting a tile at a time is how a bf16 checkpoint is computed with in fp32 without ever
// holding an fp32 copy of the model.
const real *cpu_weight_tile(struct tensor w, int64_t r0, int64_t n, int64_t c0, int64_t nc, real *buf, int64_t *ld);
// The whole small weight W (a norm's, a bias) in the compute type: W's memory or a converted copy in BUF.
const real *cpu_weight_vec(struct tensor w, real *buf);
// Columns of a weight tile: enough for every thread's share of a product to be whole SIMD panels.
int64_t cpu_tile_cols(void);

// Backend-owned scratch: SLOT's buffer of at least N values, grown on demand, kept for the program's life.
enum cpu_scratch_slot {
	CPU_SCRATCH_WEIGHT,      // a converted weight tile
	CPU_SCRATCH_WEIGHT_VEC,  // a converted norm weight or bias
	CPU_SCRATCH_ATTENTION,   // per-thread scores of a block of queries
	CPU_SCRATCH_LMHEAD,      // a tile of logits
	CPU_SCRATCH_LORA,        // gate-scaled h, its gradient
	CPU_SCRATCH_ROUTER,      // router logits' gradients
	CPU_SCRATCH_QUEUE,       // the contrastive queue widened to the compute type
	CPU_SCRATCH_CON_SCORES,  // scores of a block of tokens against the queue
	CPU_SCRATCH_CON_GRAD,    // the gradient of the contrastive queries
	CPU_SCRATCH_COPY,        // staging for dtype conversions
	N_CPU_SCRATCH
};
real *cpu_scratch(enum cpu_scratch_slot slot, size_t n);

#endif
