// common.cuh — what every cuda/*.cu file shares: the error checks, the one stream and the cuBLAS handles,
// backend-owned scratch, and element access by dtype.  Defined in cuda/common.cu.
//
// The CUDA backend implements ops_backend.h's list as cuda_* functions (the contracts are in lib/ops.h) as
// extern "C" launchers, one file per op family with its forward and backward kernels next to each other (as
// llm.c's llmc/ and ggml's ggml-cuda/).  Every op is queued on cuda_stream(); nothing synchronises except
// the ops that return a value to the host (tensor_sum, tensor_sumsq) and copies to host memory.
#ifndef MEDMOE_CUDA_COMMON_CUH
#define MEDMOE_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "../lib/ops_backend.h"

// The plugin's exports: every function of ops_backend.h's list as cuda_NAME (lib/ops_cuda_plugin.c finds them).
extern "C" {
OPS_BACKEND_FUNCS(OPS_DECLARE_CUDA)
}

// Any failing CUDA or cuBLAS call ends the program with one line naming the call, file and line (exit 1).
#define CUDA_CHECK(call) cuda_check_error((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) cuda_check_cublas((call), #call, __FILE__, __LINE__)
void cuda_check_error(cudaError_t err, const char *call, const char *file, int line);
void cuda_check_cublas(cublasStatus_t status, const char *call, const char *file, int line);
// After a kernel launch: a launch error (bad configuration) is reported at once.
#define CUDA_LAUNCHED() CUDA_CHECK(cudaGetLastError())

cudaStream_t cuda_stream(void);
cublasHandle_t cuda_cublas(void);
cublasLtHandle_t cuda_cublaslt(void);

// Backend-owned scratch: SLOT's buffer of at least BYTES on the device, grown (never shrunk) on demand and kept
// until the program ends, counted in cuda_peak_bytes.  A buffer is valid until the next call with the same
// slot; every op family has its own slots, so ops never clobber each other's scratch.  Growing synchronises the
// stream first (the old buffer may still be in use by queued kernels).
enum cuda_scratch_slot {
	SCRATCH_COPY,          // tensor_copy staging (host <-> device with a dtype change)
	SCRATCH_REDUCE,        // tensor_sum / tensor_sumsq partial sums
	SCRATCH_GEMM_WS,       // cuBLASLt workspace
	SCRATCH_WEIGHT_CAST,   // a weight converted for a product (f32 master -> bf16, ...)
	SCRATCH_LMHEAD_0, SCRATCH_LMHEAD_1, SCRATCH_LMHEAD_2,
	SCRATCH_ATTENTION_0, SCRATCH_ATTENTION_1,
	SCRATCH_ADAPTER_0, SCRATCH_ADAPTER_1, SCRATCH_ADAPTER_2, SCRATCH_ADAPTER_3,
	SCRATCH_ROUTER_0, SCRATCH_ROUTER_1,
	SCRATCH_CONTRASTIVE_0, SCRATCH_CONTRASTIVE_1, SCRATCH_CONTRASTIVE_2,
	N_SCRATCH_SLOTS
};
void *cuda_scratch(enum cuda_scratch_slot slot, size_t bytes);

// Grid size for N elements at BLOCK threads each (capped: kernels stride over the rest).
static inline unsigned cuda_blocks(int64_t n, int block)
{
	int64_t b = (n + block - 1) / block;
	return (unsigned)(b < 1 ? 1 : b > 65535 * 16 ? 65535 * 16 : b);
}

#endif
