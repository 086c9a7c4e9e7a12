// ops_cpu.c — the CPU backend's base: the device, memory, copies and dtype conversions, reductions, AdamW, and
// the helpers its other files share (ops_cpu_internal.h): the one matrix-product path and weight tiles.
#include "ops_cpu_internal.h"

#include <cblas.h>
#include <malloc.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_select.h"
#include "die.h"
#include "safetensors.h"

#ifdef MEDMOE_DOUBLE
#define GEMM cblas_dgemm
#else
#define GEMM cblas_sgemm
#endif

real *cpu_real(struct tensor t, const char *op)
{
	if (!t.data)
		return NULL;
	if (t.device != DEVICE_CPU || t.dtype != DTYPE_REAL)
		die(EXIT_FAIL, "%s: the CPU backend computes on %s CPU tensors, not %s on %s", op, dtype_name(DTYPE_REAL),
		    dtype_name(t.dtype), device_name(t.device));
	return t.data;
}

int32_t *cpu_i32(struct tensor t, const char *op)
{
	if (!t.data)
		return NULL;
	if (t.device != DEVICE_CPU || t.dtype != DTYPE_I32)
		die(EXIT_FAIL, "%s: expected an i32 CPU tensor, got %s on %s", op, dtype_name(t.dtype),
		    device_name(t.device));
	return t.data;
}

// ----------------------------------------------------------------------------
// the device and its memory

int cpu_available(void) { return 1; }

void cpu_init(int index)
{
	if (index > 0)
		die(EXIT_USAGE, "--device cpu takes no index");
}

void cpu_describe(char *buf, size_t n) { snprintf(buf, n, "CPU, %d threads", omp_get_max_threads()); }

static size_t live_bytes, peak_bytes;

void *cpu_alloc(size_t bytes)
{
	void *p = calloc(1, bytes ? bytes : 1);
	if (!p)
		die(EXIT_FAIL, "out of memory (%zu bytes on the CPU)", bytes);
#pragma omp atomic
	live_bytes += malloc_usable_size(p);
	if (live_bytes > peak_bytes)
		peak_bytes = live_bytes;
	return p;
}

void cpu_free(void *p)
{
	if (!p)
		return;
#pragma omp atomic
	live_bytes -= malloc_usable_size(p);
	free(p);
}

void cpu_sync(void) {}

size_t cpu_peak_bytes(void) { return peak_bytes; }

real *cpu_scratch(enum cpu_scratch_slot slot, size_t n)
{
	static real *buf[N_CPU_SCRATCH];
	static size_t cap[N_CPU_SCRATCH];
	if (n > cap[slot]) {
		cpu_free(buf[slot]);
		buf[slot] = cpu_alloc(n * sizeof(real));
		cap[slot] = n;
	}
	return buf[slot];
}

// ----------------------------------------------------------------------------
// element conversions

static inline double load_elem(const void *p, enum dtype t, int64_t i)
{
	switch (t) {
	case DTYPE_F32: return ((const float *)p)[i];
	case DTYPE_F64: return ((const double *)p)[i];
	case DTYPE_BF16: {
		uint16_t h;
		memcpy(&h, (const char *)p + 2 * i, 2);
		return st_bf16_to_f32(h);
	}
	case DTYPE_F16: {
		uint16_t h;
		memcpy(&h, (const char *)p + 2 * i, 2);
		return st_f16_to_f32(h);
	}
	default: return ((const int32_t *)p)[i];
	}
}

// Half-precision targets round from fp32 (an f64 value is first rounded to fp32).
static inline void store_elem(void *p, enum dtype t, int64_t i, double v)
{
	uint16_t h;
	switch (t) {
	case DTYPE_F32: ((float *)p)[i] = (float)v; break;
	case DTYPE_F64: ((double *)p)[i] = v; break;
	case DTYPE_BF16:
		h = st_f32_to_bf16((float)v);
		memcpy((char *)p + 2 * i, &h, 2);
		break;
	case DTYPE_F16:
		h = st_f32_to_f16((float)v);
		memcpy((char *)p + 2 * i, &h, 2);
		break;
	default: ((int32_t *)p)[i] = (int32_t)v; break;
	}
}

// Half-precision rows widened to the compute type: the hot conversions of weight tiles, written so the
// compiler vectorises them (bf16 is the top half of an fp32; _Float16 widens with F16C where the CPU has it).
VECTOR_CLONES
static void widen_bf16(real *dst, const uint16_t *src, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		uint32_t bits = (uint32_t)src[i] << 16;
		float f;
		memcpy(&f, &bits, 4);
		dst[i] = f;
	}
}

// _Float16 where the compiler has it (gcc 12 on x86-64); else the exact software conversion (clang 14, which
// builds the fuzz targets, has no _Float16 on x86).
#ifdef __FLT16_MAX__
typedef _Float16 half_t;
static inline real half_to_real(half_t h) { return (real)h; }
#else
typedef uint16_t half_t;
static inline real half_to_real(half_t h) { return (real)st_f16_to_f32(h); }
#endif

VECTOR_CLONES
static void widen_f16(real *dst, const half_t *src, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = half_to_real(src[i]);
}

// N elements of SRC (dtype S) into DST (dtype D).
static void convert(void *dst, enum dtype d, const void *src, enum dtype s, int64_t n)
{
	if (d == s) {
		memcpy(dst, src, (size_t)n * dtype_size(d));
		return;
	}
	if (d == DTYPE_REAL && s == DTYPE_BF16 && (uintptr_t)src % 2 == 0) {
		widen_bf16(dst, src, n);
		return;
	}
	if (d == DTYPE_REAL && s == DTYPE_F16 && (uintptr_t)src % 2 == 0) {
		widen_f16(dst, src, n);
		return;
	}
#pragma omp parallel for if (n > 1 << 16)
	for (int64_t i = 0; i < n; i++)
		store_elem(dst, d, i, load_elem(src, s, i));
}

void cpu_tensor_copy(struct tensor dst, struct tensor src)
{
	convert(dst.data, dst.dtype, src.data, src.dtype, tensor_numel(src));
}

void cpu_tensor_zero(struct tensor t)
{
	if (t.data)
		memset(t.data, 0, (size_t)tensor_numel(t) * dtype_size(t.dtype));
}

void cpu_tensor_fill(struct tensor t, double value)
{
	int64_t n = tensor_numel(t);
	for (int64_t i = 0; i < n; i++)
		store_elem(t.data, t.dtype, i, value);
}

void cpu_tensor_scale(struct tensor t, double s)
{
	real *p = cpu_real(t, "tensor_scale"), f = (real)s;
	int64_t n = tensor_numel(t);
	for (int64_t i = 0; i < n; i++)
		p[i] *= f;
}

// inp (R,C) any float dtype, idx (M) -> out (M,C) real
void cpu_gather_rows(struct tensor out, struct tensor inp, struct tensor idx)
{
	real *o = cpu_real(out, "gather_rows");
	const int32_t *ix = cpu_i32(idx, "gather_rows");
	int64_t M = out.dim[0], C = tensor_numel(out) / (M ? M : 1);
	size_t esize = dtype_size(inp.dtype);
#pragma omp parallel for if (M * C > 1 << 14)
	for (int64_t i = 0; i < M; i++)
		convert(o + i * C, DTYPE_REAL, (const char *)inp.data + (size_t)ix[i] * (size_t)C * esize, inp.dtype, C);
}

// Serial: rows with the same index add up in the order of i, reproducibly.
void cpu_scatter_rows_add(struct tensor out, struct tensor inp, struct tensor idx)
{
	real *o = cpu_real(out, "scatter_rows_add");
	const real *in = cpu_real(inp, "scatter_rows_add");
	const int32_t *ix = cpu_i32(idx, "scatter_rows_add");
	int64_t M = inp.dim[0], C = tensor_numel(inp) / (M ? M : 1);
	for (int64_t i = 0; i < M; i++) {
		real *row = o + (int64_t)ix[i] * C;
		const real *g = in + i * C;
		for (int64_t c = 0; c < C; c++)
			row[c] += g[c];
	}
}

// inp (M,C), idx (M) distinct -> out (R,C) rows idx[i], any float dtypes (converted)
void cpu_scatter_rows(struct tensor out, struct tensor inp, struct tensor idx)
{
	const int32_t *ix = cpu_i32(idx, "scatter_rows");
	int64_t M = tensor_numel(idx), C = M ? tensor_numel(inp) / M : 0;
	size_t osize = dtype_size(out.dtype), isize = dtype_size(inp.dtype);
	if (M == 0 || C == 0)
		return;
	if (tensor_numel(inp) != M * C || tensor_numel(out) % C != 0)
		die(EXIT_FAIL, "scatter_rows: %lld rows of %lld into rows of a %lld-element tensor", (long long)M,
		    (long long)C, (long long)tensor_numel(out));
	for (int64_t i = 0; i < M; i++) {
		if (ix[i] < 0 || ix[i] >= tensor_numel(out) / C)
			die(EXIT_FAIL, "scatter_rows: row %d of %lld", ix[i], (long long)(tensor_numel(out) / C));
		convert((char *)out.data + (size_t)ix[i] * (size_t)C * osize, out.dtype,
			(const char *)inp.data + (size_t)i * (size_t)C * isize, inp.dtype, C);
	}
}

double cpu_tensor_sum(struct tensor t)
{
	double s = 0;
	int64_t n = tensor_numel(t);
	for (int64_t i = 0; i < n; i++)
		s += load_elem(t.data, t.dtype, i);
	return s;
}

double cpu_tensor_sumsq(struct tensor t)
{
	double s = 0;
	int64_t n = tensor_numel(t);
	for (int64_t i = 0; i < n; i++) {
		double v = load_elem(t.data, t.dtype, i);
		s += v * v;
	}
	return s;
}

// OpenBLAS's kernels are chosen by the CPU's instruction sets before main (blas_select.h); this warns, once
// per pipeline, when that could not be done.
void ops_cpu_check_blas(void)
{
	blas_select_check();
}

// ----------------------------------------------------------------------------
// matrix products: one thread pool

// The Debian OpenBLAS (pthreads build) keeps a thread pool of its own.  Next to libgomp's workers, which spin
// a while after each parallel loop, the two pools fight over the cores: the forward ran 2-3x slower on 2 cores
// unless OMP_WAIT_POLICY=passive was set (bench/model_forward.sh).  So OpenBLAS runs single-threaded, called
// from OpenMP threads, and each product is split across the OpenMP team by columns of its output.
static void blas_one_thread(void)
{
	static int done;
	if (!done) {
		openblas_set_num_threads(1);
		done = 1;
	}
}

void cpu_gemm_serial(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, real alpha, const real *A,
		     int64_t lda, const real *B, int64_t ldb, real beta, real *C, int64_t ldc)
{
	GEMM(CblasRowMajor, a_trans ? CblasTrans : CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (int)M, (int)N,
	     (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void cpu_gemm(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, real alpha, const real *A, int64_t lda,
	      const real *B, int64_t ldb, real beta, real *C, int64_t ldc)
{
	blas_one_thread();
	if (M == 0 || N == 0)
		return;
#pragma omp parallel
	{
		int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
		int64_t chunk = ((N + nt - 1) / nt + 15) / 16 * 16, n0 = id * chunk;
		int64_t n1 = n0 + chunk < N ? n0 + chunk : N;
		if (n0 < n1)
			cpu_gemm_serial(a_trans, b_trans, M, n1 - n0, K, alpha, A, lda, b_trans ? B + n0 * ldb : B + n0, ldb,
					beta, C + n0, ldc);
	}
}

// ----------------------------------------------------------------------------
// the row-wise product of a few rows (decoding)
//
// BLAS picks its kernels and blocking by the shape, so the bits of one output row of sgemm depend on how many
// rows came with it; batched decoding must give each sequence the bits it gets alone.  Here every output element
// is one dot product: RW_LANES running partial sums over the columns in order (lane l takes columns ≡ l mod
// RW_LANES), a fixed pairwise sum of the lanes, then the columns past the last whole vector in order.  The code
// is GCC's generic vectors (exact IEEE lane-wise operations, no contraction under -std=c11), so the order is
// the source's on every instruction set.  A half-precision weight is widened in registers as it is loaded: the
// weight's bytes are read once per block of RW_NT rows of x, and no converted tile goes through memory.

#define RW_LANES (64 / (int)sizeof(real))
#define RW_NR 4   // weight rows (output columns) per block
#define RW_NT 4   // rows of x per block

typedef real rw_vec __attribute__((vector_size(64)));
typedef float rw_fvec __attribute__((vector_size(RW_LANES * 4)));
typedef uint32_t rw_u32 __attribute__((vector_size(RW_LANES * 4)));
typedef uint16_t rw_u16 __attribute__((vector_size(RW_LANES * 2)));
#ifdef __FLT16_MAX__
typedef _Float16 rw_h16 __attribute__((vector_size(RW_LANES * 2)));
#endif

// Vectors go by pointer: passing them by value would tie the ABI to the instruction set (-Wpsabi).
static inline void rw_load_real(rw_vec *v, const real *p) { memcpy(v, p, sizeof *v); }

static inline void rw_load_bf16(rw_vec *v, const uint16_t *p)
{
	rw_u16 h;
	memcpy(&h, p, sizeof h);
	rw_u32 bits = __builtin_convertvector(h, rw_u32) << 16;   // bf16 is the top half of an fp32
	*v = __builtin_convertvector((rw_fvec)bits, rw_vec);
}

static inline void rw_load_f16(rw_vec *v, const half_t *p)
{
#ifdef __FLT16_MAX__
	rw_h16 h;
	memcpy(&h, p, sizeof h);
	*v = __builtin_convertvector(h, rw_vec);
#else
	for (int k = 0; k < RW_LANES; k++)
		(*v)[k] = half_to_real(p[k]);
#endif
}

static inline real rw_elem_real(const real *p) { return *p; }
static inline real rw_elem_f16(const half_t *p) { return half_to_real(*p); }
static inline real rw_elem_bf16(const uint16_t *p)
{
	uint32_t bits = (uint32_t)*p << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

// The lanes of V summed pairwise: lane l + w into lane l for w = RW_LANES/2, …, 1 (halves of the vector added
// as vectors, then the last four lanes one by one).
typedef real rw_half __attribute__((vector_size(32)));
typedef real rw_quarter __attribute__((vector_size(16)));
static inline real rw_hsum(const rw_vec *v)
{
	rw_half lo, hi;
	memcpy(&lo, v, sizeof lo);
	memcpy(&hi, (const char *)v + sizeof lo, sizeof hi);
	lo += hi;
	rw_quarter a, b;
	memcpy(&a, &lo, sizeof a);
	memcpy(&b, (const char *)&lo + sizeof a, sizeof b);
	a += b;
	real l[16 / sizeof(real)];
	memcpy(l, &a, sizeof l);
	for (int w = (int)(16 / sizeof(real)) / 2; w >= 1; w /= 2)
		for (int i = 0; i < w; i++)
			l[i] += l[i + w];
	return l[0];
}

// out[t·ldo + n] (=, or += with ACC) Σ_k x[t·ldx + k] · w[n·ldw + k] for t < T ≤ RW_NT, n < N ≤ RW_NR.
// Missing rows repeat the last one (their results are dropped), so every element runs the same instructions.
#define RW_BLOCK(NAME, WT, LOADW, ELEMW)                                                                          \
	static inline __attribute__((always_inline)) void NAME(real *out, int64_t ldo, int acc, const real *x,    \
				int64_t ldx, int64_t T, const WT *w, int64_t ldw, int64_t N, int64_t K)           \
	{                                                                                                         \
		const real *xr[RW_NT];                                                                            \
		const WT *wr[RW_NR];                                                                              \
		for (int i = 0; i < RW_NT; i++)                                                                   \
			xr[i] = x + (i < T ? i : T - 1) * ldx;                                                    \
		for (int j = 0; j < RW_NR; j++)                                                                   \
			wr[j] = w + (j < N ? j : N - 1) * ldw;                                                    \
		rw_vec sum[RW_NT][RW_NR];                                                                         \
		memset(sum, 0, sizeof sum);                                                                       \
		int64_t k = 0;                                                                                    \
		for (; k + RW_LANES <= K; k += RW_LANES) {                                                        \
			rw_vec wv[RW_NR];                                                                         \
			_Pragma("GCC unroll 4") for (int j = 0; j < RW_NR; j++) LOADW(&wv[j], wr[j] + k);         \
			_Pragma("GCC unroll 4") for (int i = 0; i < RW_NT; i++)                                   \
			{                                                                                         \
				rw_vec xv;                                                                        \
				rw_load_real(&xv, xr[i] + k);                                                     \
				_Pragma("GCC unroll 4") for (int j = 0; j < RW_NR; j++) sum[i][j] += xv * wv[j];  \
			}                                                                                         \
		}                                                                                                 \
		for (int64_t i = 0; i < T; i++)                                                                   \
			for (int64_t j = 0; j < N; j++) {                                                         \
				real s = rw_hsum(&sum[i][j]);                                                     \
				for (int64_t kk = k; kk < K; kk++)                                                \
					s += xr[i][kk] * ELEMW(wr[j] + kk);                                       \
				real *o = out + i * ldo + j;                                                      \
				*o = acc ? *o + s : s;                                                            \
			}                                                                                         \
	}

RW_BLOCK(rw_block_real, real, rw_load_real, rw_elem_real)
RW_BLOCK(rw_block_bf16, uint16_t, rw_load_bf16, rw_elem_bf16)
RW_BLOCK(rw_block_f16, half_t, rw_load_f16, rw_elem_f16)

// Weight rows n0 .. n1−1 against every row of x: blocks of RW_NR weight rows, each against the rows of x RW_NT
// at a time (the weight block stays in L1 while x streams by).  Weights of another dtype (f64 in the fp32
// build, f32 in the fp64 one) are converted a block at a time into BUF (RW_NR·K).
VECTOR_CLONES
static void rw_rows(real *out, int64_t ldo, int acc, const real *x, int64_t ldx, int64_t T, struct tensor w,
		    int64_t n0, int64_t n1, real *buf)
{
	int64_t K = w.dim[w.ndim - 1];
	for (int64_t n = n0; n < n1; n += RW_NR) {
		int64_t nb = n1 - n < RW_NR ? n1 - n : RW_NR;
		for (int64_t t = 0; t < T; t += RW_NT) {
			int64_t tb = T - t < RW_NT ? T - t : RW_NT;
			real *o = out + t * ldo + n;
			const real *xt = x + t * ldx;
			switch (w.dtype) {
			case DTYPE_REAL:
				rw_block_real(o, ldo, acc, xt, ldx, tb, (const real *)w.data + n * K, K, nb, K);
				break;
			case DTYPE_BF16:
				rw_block_bf16(o, ldo, acc, xt, ldx, tb, (const uint16_t *)w.data + n * K, K, nb, K);
				break;
			case DTYPE_F16:
				rw_block_f16(o, ldo, acc, xt, ldx, tb, (const half_t *)w.data + n * K, K, nb, K);
				break;
			default:
				if (t == 0)
					convert(buf, DTYPE_REAL, (const char *)w.data + (size_t)(n * K) * dtype_size(w.dtype),
						w.dtype, nb * K);
				rw_block_real(o, ldo, acc, xt, ldx, tb, buf, K, nb, K);
			}
		}
	}
}

void cpu_matmul_rowwise(real *out, int64_t ldo, int accumulate, const real *x, int64_t ldx, int64_t T,
			struct tensor w)
{
	if (w.device != DEVICE_CPU)
		die(EXIT_FAIL, "a weight on %s given to the CPU backend", device_name(w.device));
	int64_t N = w.dim[0], K = w.dim[w.ndim - 1];
	if (T <= 0 || N <= 0)
		return;
	int other = w.dtype != DTYPE_REAL && w.dtype != DTYPE_BF16 && w.dtype != DTYPE_F16;
	real *buf = other ? cpu_scratch(CPU_SCRATCH_WEIGHT, (size_t)omp_get_max_threads() * RW_NR * (size_t)K) : NULL;
	// Static shares of whole blocks: which thread computes a row changes nothing in its bits.
	int64_t n_blocks = (N + RW_NR - 1) / RW_NR;
#pragma omp parallel if (N * K * T > 1 << 15)
	{
		int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
		int64_t b0 = n_blocks * id / nt, b1 = n_blocks * (id + 1) / nt;
		int64_t n0 = b0 * RW_NR, n1 = b1 * RW_NR < N ? b1 * RW_NR : N;
		if (n0 < n1)
			rw_rows(out, ldo, accumulate, x, ldx, T, w, n0, n1, buf ? buf + id * RW_NR * K : NULL);
	}
}

int64_t cpu_tile_cols(void)
{
	int64_t t = 64 * (int64_t)omp_get_max_threads();
	return t > 512 ? t : 512;
}

int cpu_weight_direct(struct tensor w)
{
	return w.dtype == DTYPE_REAL && (uintptr_t)w.data % sizeof(real) == 0;
}

const real *cpu_weight_tile(struct tensor w, int64_t r0, int64_t n, int64_t c0, int64_t nc, real *buf, int64_t *ld)
{
	if (w.device != DEVICE_CPU)
		die(EXIT_FAIL, "a weight on %s given to the CPU backend", device_name(w.device));
	int64_t cols = w.dim[w.ndim - 1];
	if (cpu_weight_direct(w)) {
		*ld = cols;
		return (const real *)w.data + r0 * cols + c0;
	}
	size_t esize = dtype_size(w.dtype);
#pragma omp parallel for if (n * nc > 1 << 14)
	for (int64_t r = 0; r < n; r++)
		convert(buf + r * nc, DTYPE_REAL, (const char *)w.data + ((size_t)(r0 + r) * (size_t)cols + (size_t)c0) * esize,
			w.dtype, nc);
	*ld = nc;
	return buf;
}

const real *cpu_weight_vec(struct tensor w, real *buf)
{
	if (!w.data)
		return NULL;
	if (cpu_weight_direct(w))
		return w.data;
	convert(buf, DTYPE_REAL, w.data, w.dtype, tensor_numel(w));
	return buf;
}

// ----------------------------------------------------------------------------
// AdamW (ops.h), in the compute type with the bias corrections folded into two scalars as torch does:
// denom = sqrt(v)/sqrt(bc2) + eps; p -= (lr/bc1) · m / denom.
void cpu_adamw_update(struct tensor params, struct tensor grads, struct tensor m, struct tensor v,
		      const struct adamw_step *s)
{
	real *p = cpu_real(params, "adamw_update"), *mm = cpu_real(m, "adamw_update"), *vv = cpu_real(v, "adamw_update");
	const real *g = cpu_real(grads, "adamw_update");
	int64_t n = tensor_numel(params);
	double bc1 = 1.0 - pow(s->beta1, (double)s->t), bc2 = 1.0 - pow(s->beta2, (double)s->t);
	// 1 − β is formed in double and rounded once, as torch passes it to its fp32 kernels (1 − (float)0.999
	// would be 1.3e-5 off)
	real b1 = (real)s->beta1, b2 = (real)s->beta2, c1 = (real)(1.0 - s->beta1), c2 = (real)(1.0 - s->beta2);
	real step = (real)(s->lr / bc1), decay = (real)(1.0 - s->lr * s->weight_decay);
	real rbc2 = (real)(1.0 / sqrt(bc2)), eps = (real)s->eps;
#pragma omp parallel for
	for (int64_t i = 0; i < n; i++) {
		mm[i] = b1 * mm[i] + c1 * g[i];
		vv[i] = b2 * vv[i] + c2 * g[i] * g[i];
		p[i] = p[i] * decay - step * mm[i] / (sqrtf((float)vv[i]) * rbc2 + eps);
	}
}
