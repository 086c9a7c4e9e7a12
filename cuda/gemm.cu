// gemm.cu — cuda_gemm_rowmajor (gemm.cuh): one cuBLASLt matmul per call, row-major in, column-major inside.
//
// cuBLAS is column-major, and a row-major (r,c) matrix with row stride ld is the column-major (c,r) matrix with
// leading dimension ld, its transpose.  So the row-major C = op(A)·op(B) is computed as the column-major
// Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's A is our B and its B is our A, with the same transpose flags, m = N, n = M.
// A bias per column of the row-major C is a bias per row of the column-major D: CUBLASLT_EPILOGUE_BIAS.
//
// Choosing an algorithm (cublasLtMatmulAlgoGetHeuristic) costs tens of microseconds of host time, as much as a
// small product takes on the GPU (decoding runs hundreds per token), so the choice is cached per problem:
// shapes, strides, dtypes, epilogue and the alignment of each pointer (the heuristic must know it: a view at an
// odd offset needs an algorithm that does not assume 16-byte alignment).  The same problem therefore always runs
// the same algorithm, and cuBLASLt's split-K reductions are ordered (cublasLtReductionScheme_t), so results repeat
// bit for bit.  The 32 MiB workspace is llm.c's choice for Hopper (llmc/matmul.cuh).
#include "gemm.cuh"

#include <string.h>

namespace {

constexpr size_t WORKSPACE_BYTES = (size_t)32 << 20;

struct problem {
	int32_t trans_a, trans_b, type_ab, type_c, bias;
	uint32_t align_a, align_b, align_c;
	int64_t m, n, k, lda, ldb, ldc;
};

struct cached {
	struct problem key;
	cublasLtMatmulAlgo_t algo;
	int used;
};

constexpr int CACHE_SIZE = 1024;   // distinct problems of a run: ~10 per layer kind, times a few batch shapes
struct cached cache[CACHE_SIZE];

uint64_t hash_problem(const struct problem *p)
{
	const unsigned char *b = (const unsigned char *)p;
	uint64_t h = 1469598103934665603ull;   // FNV-1a
	for (size_t i = 0; i < sizeof *p; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

// The largest power of two (at most 256) dividing P's address.
uint32_t alignment_of(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	uintptr_t low = a & (~a + 1);
	return low == 0 || low > 256 ? 256u : (uint32_t)low;
}

cudaDataType_t cuda_data_type(enum dtype t)
{
	switch (t) {
	case DTYPE_BF16: return CUDA_R_16BF;
	case DTYPE_F16: return CUDA_R_16F;
	case DTYPE_F32: return CUDA_R_32F;
	default: cuda_unsupported("matrix product", "operand", t);
	}
}

void set_pref_u32(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, uint32_t v)
{
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &v, sizeof v));
}

// The algorithm for problem P (descriptors already made): from the cache, or asked of the heuristic once.
cublasLtMatmulAlgo_t choose_algo(const struct problem *p, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la,
				 cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t lc)
{
	uint64_t h = hash_problem(p);
	int slot = -1;
	for (int probe = 0; probe < CACHE_SIZE; probe++) {
		struct cached *e = &cache[(h + (uint64_t)probe) % CACHE_SIZE];
		if (!e->used) {
			slot = (int)((h + (uint64_t)probe) % CACHE_SIZE);
			break;
		}
		if (memcmp(&e->key, p, sizeof *p) == 0)
			return e->algo;
	}
	cublasLtMatmulPreference_t pref;
	CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
	uint64_t ws = WORKSPACE_BYTES;
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
	set_pref_u32(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p->align_a);
	set_pref_u32(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p->align_b);
	set_pref_u32(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p->align_c);
	set_pref_u32(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p->align_c);
	cublasLtMatmulHeuristicResult_t result;
	int found = 0;
	cublasStatus_t st =
		cublasLtMatmulAlgoGetHeuristic(cuda_cublaslt(), desc, la, lb, lc, lc, pref, 1, &result, &found);
	CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
	if (st != CUBLAS_STATUS_SUCCESS || found == 0)
		die(EXIT_FAIL, "cuBLASLt has no algorithm for the product m=%lld n=%lld k=%lld (transa %d, transb %d, "
			       "lda %lld, ldb %lld, ldc %lld, dtypes %d/%d, bias %d, alignments %u/%u/%u): %s",
		    (long long)p->m, (long long)p->n, (long long)p->k, p->trans_a, p->trans_b, (long long)p->lda,
		    (long long)p->ldb, (long long)p->ldc, p->type_ab, p->type_c, p->bias, p->align_a, p->align_b,
		    p->align_c, st != CUBLAS_STATUS_SUCCESS ? cublasGetStatusString(st) : "none found");
	if (slot >= 0) {   // a full cache just stops remembering
		cache[slot].key = *p;
		cache[slot].algo = result.algo;
		cache[slot].used = 1;
	}
	return result.algo;
}

} // namespace

void cuda_gemm_rowmajor(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, float alpha, const void *A,
			int64_t lda, const void *B, int64_t ldb, enum dtype ab, float beta, void *C, int64_t ldc,
			enum dtype c_dtype, const void *bias)
{
	if (M == 0 || N == 0)
		return;
	if (K == 0)
		die(EXIT_FAIL, "matrix product with an empty inner dimension (%lld x 0 x %lld)", (long long)M,
		    (long long)N);
	if (c_dtype != ab && c_dtype != DTYPE_F32)
		die(EXIT_FAIL, "matrix product: %s inputs cannot produce %s (only %s or f32)", dtype_name(ab),
		    dtype_name(c_dtype), dtype_name(ab));
	cudaDataType_t t_ab = cuda_data_type(ab), t_c = cuda_data_type(c_dtype);

	// column-major: D (m = N, n = M) = opA (m,k) · opB (k,n), cuBLASLt's A = our B, its B = our A
	struct problem p;
	memset(&p, 0, sizeof p);   // the cache compares and hashes the padding too
	p.trans_a = b_trans;
	p.trans_b = a_trans;
	p.type_ab = (int32_t)t_ab;
	p.type_c = (int32_t)t_c;
	p.bias = bias != NULL;
	p.align_a = alignment_of(B);
	p.align_b = alignment_of(A);
	p.align_c = alignment_of(C);
	p.m = N;
	p.n = M;
	p.k = K;
	p.lda = ldb;
	p.ldb = lda;
	p.ldc = ldc;

	cublasLtMatmulDesc_t desc;
	CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	cublasOperation_t op_a = b_trans ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = a_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
	CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
	CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
	if (bias) {
		cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
		CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
		CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
		int32_t bias_type = (int32_t)t_c;
		CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
							    sizeof bias_type));
	}
	// layouts (rows, cols, ld) of the stored column-major matrices
	cublasLtMatrixLayout_t la, lb, lc;
	CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, t_ab, (uint64_t)(b_trans ? K : N), (uint64_t)(b_trans ? N : K), ldb));
	CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, t_ab, (uint64_t)(a_trans ? M : K), (uint64_t)(a_trans ? K : M), lda));
	CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, t_c, (uint64_t)N, (uint64_t)M, ldc));

	cublasLtMatmulAlgo_t algo = choose_algo(&p, desc, la, lb, lc);
	void *workspace = cuda_scratch(SCRATCH_GEMM_WS, WORKSPACE_BYTES);
	CUBLAS_CHECK(cublasLtMatmul(cuda_cublaslt(), desc, &alpha, B, la, A, lb, &beta, C, lc, C, lc, &algo, workspace,
				    WORKSPACE_BYTES, cuda_stream()));

	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lc));
	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
	CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
}

const void *cuda_as_dtype(const void *data, enum dtype have, int64_t n, enum dtype want, void *buffer)
{
	if (have == want)
		return data;
	cuda_convert(buffer, want, data, have, n);
	return buffer;
}
