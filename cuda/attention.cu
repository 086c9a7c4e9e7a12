// attention.cu — grouped-query attention over packed documents, causal within each document, never holding the
// (T,T) scores (lib/ops.h attention_forward / attention_backward): FlashAttention-2 (Dao 2023, "FlashAttention-2:
// Faster Attention with Better Parallelism and Work Partitioning"), forward Algorithm 1 and backward Algorithm 2,
// with the backward split in two passes so that no sum depends on scheduling.
//
// Forward (Algorithm 1): a block owns BR queries of one head; it walks tiles of BC keys from the first query's
// document start to the last query's position.  Per tile, S = Q·Kᵀ·scale (masked to each query's document and
// past), the online softmax (Milakov & Gimelshein 2018) updates the running max m and sum l and rescales the
// output accumulator by e^(m_old − m_new), and O += P·V.  At the end O /= l and lse = m + log l (NH,Tq) f32.
// Backward (Algorithm 2, probabilities recomputed from lse): D_i = dO_i·O_i; then, without atomics,
//   - dK/dV pass: a block owns BC keys of one kv head and walks every query that can see them (the query heads
//     of its group, in order, then the query tiles in order): P = exp(S·scale − lse), dP = dO·Vᵀ,
//     dS = P ⊙ (dP − D), dV += Pᵀ·dO, dK += scale·dSᵀ·Q, accumulated in shared memory and added to dk, dv once;
//   - dQ pass: a block owns BR queries of one head and walks their key tiles like the forward:
//     dQ += scale·dS·K.
// Each output row has exactly one owning block, and each block sums in a fixed order, so the same inputs give
// the same bytes.  S and dP are computed twice (once per pass); that is the price of determinism (FA2 itself
// adds dQ with atomics).
//
// Tiles.  A warp owns 16 rows of a tile; a tile product is a warp-level product out of shared memory:
// bf16 activations use the tensor cores through WMMA (16×16×16 bf16 fragments, fp32 accumulate), f32
// activations plain FMA (no TF32: f32 is what the user asked for).  The softmax, masks and rescaling are scalar
// code on fp32 values in shared memory (each row of a warp's tile is handled by a pair of lanes).  The head dim
// is padded with zeros to HDP ∈ {64, 128, 256}, so any HD ≤ 256 works (HD that is not a power of two pays for the
// padding).  Shared memory per block (bytes, HDP = 64 / 128 / 256; tile rows × keys in parentheses):
//   bf16  forward 72,448 / 113,408 / 131,456 (BR 64/64/32 queries × BC 64 keys, 2·BR threads)
//         dQ      81,920 / 131,072 / 148,480 (BR 64/64/32 × BC 64)
//         dK/dV   82,432 / 139,776 / 144,384 (BC 64/64/32 keys × BR 32 queries, 2·BC threads)
//   f32   forward 67,584 / 116,736 / 140,416 (BR 64/64/32 × BC 32)
//         dQ      84,480 / 150,016 / 119,936 (BR 64/64/16 × BC 32)
//         dK/dV   63,104 / 112,256 / 138,880 (BC 32/32/16 × BR 32)
// All fit the 163 KiB a block may have on an A100 (227 KiB on an H100); the launchers raise each kernel's limit
// once and die with the numbers on a GPU that has less.
//
// Documents.  doc_offsets (n_docs+1, I32 on the device) cut the keys into documents; query i sits at key
// q_offset + i.  A block's queries may straddle documents: each row keeps its own [document start, position]
// window; a warp skips a tile that lies wholly outside the windows of its rows, and key tiles before the
// block's first document start or after its last position are never visited.
//
// Decoding.  A forward of at most 16 queries (incremental decoding, q_offset > 0) would give the tile kernel one
// block per head walking the whole cache; it takes a split-K path instead (FlashDecoding: blocks of 256 keys per
// (query, head) in parallel, each with its own online softmax, then one ordered merge of the partial (m, l, O)).
// Its backward, when asked for, is the tile kernels'.  Queries at given key rows (q_rows: a batched decoding
// step, one new token per KV-cache slot) always take the split-K path, whatever their number: each (query, head)
// has its own window there, and a split is a fixed chunk of 256 keys of it, so a query's result is the same
// bits whether it comes alone or with others (splits past its window are empty and add exact zeros).
#include <mma.h>
#include <string.h>
#include <type_traits>

#include "adapter_util.cuh"

typedef __nv_bfloat16 bf16;

// ----------------------------------------------------------------------------
// configuration

// Tensor cores for bf16; FMA for f32.
template <typename E> struct att_tc : std::integral_constant<bool, std::is_same<E, bf16>::value> {};

// Leading dimensions of the shared tiles: operands of the element type (multiples of 8 elements = 16 bytes, as
// WMMA wants, and 8 elements of skew against bank conflicts; FMA: odd, so a warp reading a column of rows hits 32
// banks) and fp32 tiles (multiples of 4 for WMMA).
template <typename E> __host__ __device__ constexpr int ld_e(int x)
{
	return att_tc<E>::value ? x + 8 : x + 1;
}
template <typename E> __host__ __device__ constexpr int ld_f(int x)
{
	return att_tc<E>::value ? x + 4 : x + 1;
}
__host__ __device__ constexpr size_t att_align(size_t x)
{
	return (x + 127) / 128 * 128;
}

template <typename E, int HDP> struct att_cfg {
	static constexpr bool TC = att_tc<E>::value, BIG = HDP > 128;
	static constexpr int FWD_BR = BIG ? 32 : 64, FWD_BC = TC ? 64 : 32;
	static constexpr int DQ_BR = BIG ? (TC ? 32 : 16) : 64, DQ_BC = TC ? 64 : 32;
	static constexpr int KV_BC = TC ? (BIG ? 32 : 64) : (BIG ? 16 : 32), KV_BR = 32;
	static constexpr int LDQ = ld_e<E>(HDP), LDO = ld_f<E>(HDP);
};

// Shared memory of the forward: Q (BR,HDP), K, V (BC,HDP), S (BR,BC) f32, P (BR,BC), O (BR,HDP) f32, and per row
// the document start, position and rescale factor.
template <typename E, int HDP> struct att_fwd_smem {
	typedef att_cfg<E, HDP> C;
	static constexpr int BR = C::FWD_BR, BC = C::FWD_BC, LDS = ld_f<E>(BC), LDP = ld_e<E>(BC);
	static constexpr size_t Q = 0, K = Q + att_align(sizeof(E) * BR * C::LDQ),
				V = K + att_align(sizeof(E) * BC * C::LDQ), S = V + att_align(sizeof(E) * BC * C::LDQ),
				P = S + att_align(sizeof(float) * BR * LDS), O = P + att_align(sizeof(E) * BR * LDP),
				ROWS = O + att_align(sizeof(float) * BR * C::LDO),
				BYTES = ROWS + att_align(3 * sizeof(int) * BR);
};

// dQ pass: Q, dO (BR,HDP), K, V (BC,HDP), S/dP (BR,BC) f32, dS (BR,BC), dQ (BR,HDP) f32, per row start, position,
// lse, D.
template <typename E, int HDP> struct att_dq_smem {
	typedef att_cfg<E, HDP> C;
	static constexpr int BR = C::DQ_BR, BC = C::DQ_BC, LDS = ld_f<E>(BC), LDP = ld_e<E>(BC);
	static constexpr size_t Q = 0, DO = Q + att_align(sizeof(E) * BR * C::LDQ),
				K = DO + att_align(sizeof(E) * BR * C::LDQ), V = K + att_align(sizeof(E) * BC * C::LDQ),
				S = V + att_align(sizeof(E) * BC * C::LDQ),
				DS = S + att_align(sizeof(float) * BR * LDS), DQ = DS + att_align(sizeof(E) * BR * LDP),
				ROWS = DQ + att_align(sizeof(float) * BR * C::LDO),
				BYTES = ROWS + att_align(4 * sizeof(int) * BR);
};

// dK/dV pass (rows are keys): K, V (BC,HDP), Q, dO (BR,HDP), Sᵀ/dPᵀ (BC,BR) f32, Pᵀ, dSᵀ (BC,BR), dK, dV (BC,HDP)
// f32, per query row start, position, lse, D.
template <typename E, int HDP> struct att_dkv_smem {
	typedef att_cfg<E, HDP> C;
	static constexpr int BC = C::KV_BC, BR = C::KV_BR, LDS = ld_f<E>(BR), LDP = ld_e<E>(BR);
	static constexpr size_t K = 0, V = K + att_align(sizeof(E) * BC * C::LDQ),
				Q = V + att_align(sizeof(E) * BC * C::LDQ), DO = Q + att_align(sizeof(E) * BR * C::LDQ),
				S = DO + att_align(sizeof(E) * BR * C::LDQ),
				PT = S + att_align(sizeof(float) * BC * LDS),
				DST = PT + att_align(sizeof(E) * BC * LDP), DK = DST + att_align(sizeof(E) * BC * LDP),
				DV = DK + att_align(sizeof(float) * BC * C::LDO),
				ROWS = DV + att_align(sizeof(float) * BC * C::LDO),
				BYTES = ROWS + att_align(4 * sizeof(int) * BR);
};

// ----------------------------------------------------------------------------
// device helpers

// The document holding key index t: the d with doc_offsets[d] ≤ t < doc_offsets[d+1] (binary search, as
// lib/ops_cpu.c doc_start); always in [0, n_docs−1].
__device__ __forceinline__ int att_doc_index(const int32_t *doc_offsets, int n_docs, int t)
{
	int lo = 0, hi = n_docs - 1;
	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;
		if (doc_offsets[mid] <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

// Rows 0 .. n_valid−1 of a tile of NROWS rows into shared memory S (leading dimension LDS): row r is HD elements
// at G + r·STRIDE; columns HD .. HDP−1 and rows n_valid .. NROWS−1 are zeros.  VEC: G and STRIDE allow 16-byte
// loads (checked by the launcher); otherwise element by element.
template <typename E, int NROWS, int HDP>
__device__ __forceinline__ void att_load_tile(E *s, int lds, const E *g, int64_t stride, int n_valid, int HD, int vec)
{
	constexpr int W = 16 / (int)sizeof(E), CPR = HDP / W;
	for (int idx = threadIdx.x; idx < NROWS * CPR; idx += blockDim.x) {
		int r = idx / CPR, c = idx % CPR * W;
		E *dst = s + r * lds + c;
		if (r < n_valid && c < HD) {
			const E *src = g + r * stride + c;
			if (vec && c + W <= HD) {
				uint4 raw = *reinterpret_cast<const uint4 *>(src);
				if constexpr (att_tc<E>::value) {
					// 16-byte aligned: ld and c are multiples of 8
					*reinterpret_cast<uint4 *>(dst) = raw;
				} else {
					E vals[W];
					memcpy(vals, &raw, sizeof raw);   // the bits of raw are not E objects
					for (int u = 0; u < W; u++)
						dst[u] = vals[u];
				}
			} else {
				for (int u = 0; u < W; u++)
					dst[u] = c + u < HD ? src[u] : from_float<E>(0.0f);
			}
		} else {
			for (int u = 0; u < W; u++)
				dst[u] = from_float<E>(0.0f);
		}
	}
}

template <typename F> __device__ __forceinline__ void att_zero(F *p, int n)
{
	for (int i = threadIdx.x; i < n; i += blockDim.x)
		p[i] = 0.0f;
}

// Warp-level tile products out of shared memory (the calling warp's 16 rows of A):
//   att_abt:    out (16,N) f32 = A (16,K) · B (N,K)ᵀ      (B's rows are the output columns)
//   att_ab_acc: out (16,N) f32 += A (16,K) · B (K,N)
// bf16: WMMA 16×16×16 fragments (N, K multiples of 16; leading dimensions multiples of 8 elements and fragment
// pointers 32-byte aligned, which the layouts above give).  f32: FMA, lane c owns output columns c, c+32, ….
// Writes to OUT are visible to the other lanes after __syncwarp().
template <int N, int K>
__device__ __forceinline__ void att_abt(float *out, int ldo, const bf16 *A, int lda, const bf16 *B, int ldb)
{
	using namespace nvcuda;
	wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[N / 16];
	for (int n = 0; n < N / 16; n++)
		wmma::fill_fragment(acc[n], 0.0f);
	for (int k = 0; k < K; k += 16) {
		wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
		wmma::load_matrix_sync(a, A + k, lda);
		for (int n = 0; n < N / 16; n++) {
			// Bᵀ as a column-major (K,N) matrix: element (k, n) at B[n·ldb + k]
			wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
			wmma::load_matrix_sync(b, B + n * 16 * ldb + k, ldb);
			wmma::mma_sync(acc[n], a, b, acc[n]);
		}
	}
	for (int n = 0; n < N / 16; n++)
		wmma::store_matrix_sync(out + n * 16, acc[n], ldo, wmma::mem_row_major);
}

template <int N, int K>
__device__ __forceinline__ void att_ab_acc(float *out, int ldo, const bf16 *A, int lda, const bf16 *B, int ldb)
{
	using namespace nvcuda;
	wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a[K / 16];
	for (int k = 0; k < K / 16; k++)
		wmma::load_matrix_sync(a[k], A + k * 16, lda);
	for (int n = 0; n < N; n += 16) {
		wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
		wmma::load_matrix_sync(c, out + n, ldo, wmma::mem_row_major);
		for (int k = 0; k < K / 16; k++) {
			wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
			wmma::load_matrix_sync(b, B + k * 16 * ldb + n, ldb);
			wmma::mma_sync(c, a[k], b, c);
		}
		wmma::store_matrix_sync(out + n, c, ldo, wmma::mem_row_major);
	}
}

template <int N, int K>
__device__ __forceinline__ void att_abt(float *out, int ldo, const float *A, int lda, const float *B, int ldb)
{
	int lane = threadIdx.x % 32;
	for (int c = lane; c < N; c += 32) {
		float acc[16];
		for (int r = 0; r < 16; r++)
			acc[r] = 0.0f;
		for (int k = 0; k < K; k++) {
			float b = B[c * ldb + k];
			for (int r = 0; r < 16; r++)
				acc[r] += A[r * lda + k] * b;
		}
		for (int r = 0; r < 16; r++)
			out[r * ldo + c] = acc[r];
	}
}

template <int N, int K>
__device__ __forceinline__ void att_ab_acc(float *out, int ldo, const float *A, int lda, const float *B, int ldb)
{
	int lane = threadIdx.x % 32;
	for (int c = lane; c < N; c += 32) {
		float acc[16];
		for (int r = 0; r < 16; r++)
			acc[r] = out[r * ldo + c];
		for (int k = 0; k < K; k++) {
			float b = B[k * ldb + c];
			for (int r = 0; r < 16; r++)
				acc[r] += A[r * lda + k] * b;
		}
		for (int r = 0; r < 16; r++)
			out[r * ldo + c] = acc[r];
	}
}

// ----------------------------------------------------------------------------
// forward (Algorithm 1)

// Grid (query blocks, NH), the last query block first (it has the most keys); 2·BR threads, warp w owning rows
// 16w .. 16w+15 of the block; lane pair (2ρ, 2ρ+1) owns row ρ of its warp, the even and odd columns of a tile.
template <typename E, int HDP>
__global__ void __launch_bounds__(2 * att_cfg<E, HDP>::FWD_BR)
att_fwd_kernel(E *out, float *lse, const E *q, const E *k, const E *v, const int32_t *doc_offsets, int n_docs,
	       int Tq, int Tk, int NH, int NKV, int HD, int q_offset, float scale, int vec)
{
	typedef att_cfg<E, HDP> C;
	typedef att_fwd_smem<E, HDP> SM;
	constexpr int BR = SM::BR, BC = SM::BC, LDQ = C::LDQ, LDO = C::LDO, LDS = SM::LDS, LDP = SM::LDP;
	extern __shared__ __align__(128) unsigned char att_smem[];
	E *sQ = (E *)(att_smem + SM::Q), *sK = (E *)(att_smem + SM::K), *sV = (E *)(att_smem + SM::V);
	E *sP = (E *)(att_smem + SM::P);
	float *sS = (float *)(att_smem + SM::S), *sO = (float *)(att_smem + SM::O);
	int *sA = (int *)(att_smem + SM::ROWS), *sT = sA + BR;
	float *sAl = (float *)(sT + BR);

	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	int i0 = (gridDim.x - 1 - blockIdx.x) * BR, h = blockIdx.y, kvh = h / (NH / NKV);
	int n_rows = min(BR, Tq - i0);
	for (int r = threadIdx.x; r < BR; r += blockDim.x) {
		if (r < n_rows) {
			int t = q_offset + i0 + r;
			sT[r] = t;
			sA[r] = doc_offsets[att_doc_index(doc_offsets, n_docs, t)];
		} else {   // an empty window [1, 0]
			sA[r] = 1;
			sT[r] = 0;
		}
	}
	att_zero(sO, BR * LDO);
	att_load_tile<E, BR, HDP>(sQ, LDQ, q + ((int64_t)i0 * NH + h) * HD, (int64_t)NH * HD, n_rows, HD, vec);
	__syncthreads();

	int kstart = sA[0], kend = sT[n_rows - 1];
	int w0 = warp * 16, wa = 1, wt = 0;   // the warp's key window: its first row's start .. its last row's position
	if (w0 < n_rows) {
		wa = sA[w0];
		wt = sT[min(w0 + 15, n_rows - 1)];
	}
	int half = lane & 1, r = w0 + (lane >> 1), ra = sA[r], rt = sT[r];
	float m = -INFINITY, l = 0.0f;
	for (int j0 = kstart; j0 <= kend; j0 += BC) {
		__syncthreads();   // every warp is done with the previous K and V
		int nk = min(BC, Tk - j0);
		att_load_tile<E, BC, HDP>(sK, LDQ, k + ((int64_t)j0 * NKV + kvh) * HD, (int64_t)NKV * HD, nk, HD, vec);
		att_load_tile<E, BC, HDP>(sV, LDQ, v + ((int64_t)j0 * NKV + kvh) * HD, (int64_t)NKV * HD, nk, HD, vec);
		__syncthreads();
		if (j0 > wt || j0 + BC - 1 < wa)   // wholly outside this warp's windows (warp-uniform)
			continue;
		att_abt<BC, HDP>(sS + w0 * LDS, LDS, sQ + w0 * LDQ, LDQ, sK, LDQ);
		__syncwarp();
		// online softmax of row r over this tile's columns half, half+2, …
		float s[BC / 2], mt = -INFINITY;
		for (int c2 = 0; c2 < BC / 2; c2++) {
			int c = half + 2 * c2, j = j0 + c;
			s[c2] = j >= ra && j <= rt ? sS[r * LDS + c] * scale : -INFINITY;
			mt = fmaxf(mt, s[c2]);
		}
		mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
		float m_new = fmaxf(m, mt);
		float alpha = m_new == -INFINITY ? 1.0f : expf(m - m_new);   // 0 on the row's first keys (m = −inf)
		float ls = 0.0f;
		for (int c2 = 0; c2 < BC / 2; c2++) {
			float p = s[c2] == -INFINITY ? 0.0f : expf(s[c2] - m_new);
			ls += p;
			sP[r * LDP + half + 2 * c2] = from_float<E>(p);
		}
		ls += __shfl_xor_sync(0xffffffffu, ls, 1);
		l = l * alpha + ls;
		m = m_new;
		if (half == 0)
			sAl[r] = alpha;
		__syncwarp();
		if (!__all_sync(0xffffffffu, alpha == 1.0f)) {   // no row's max moved: nothing to rescale
			for (int e = lane; e < 16 * HDP; e += 32)
				sO[(w0 + e / HDP) * LDO + e % HDP] *= sAl[w0 + e / HDP];
			__syncwarp();
		}
		att_ab_acc<HDP, BC>(sO + w0 * LDO, LDO, sP + w0 * LDP, LDP, sV, LDQ);
	}
	__syncwarp();
	if (half == 0) {
		sAl[r] = l > 0.0f ? 1.0f / l : 0.0f;
		if (lse && r < n_rows)
			lse[(int64_t)h * Tq + i0 + r] = l > 0.0f ? m + logf(l) : -INFINITY;
	}
	__syncwarp();
	for (int e = lane; e < 16 * HD; e += 32) {
		int row = w0 + e / HD, d = e % HD;
		if (row < n_rows)
			out[((int64_t)(i0 + row) * NH + h) * HD + d] = from_float<E>(sO[row * LDO + d] * sAl[row]);
	}
}

// ----------------------------------------------------------------------------
// forward for a few queries (decoding): split-K over the keys, as FlashDecoding does

#define ATT_DECODE_MAX_Q 16   // calls with at most this many queries take the split-K path
#define ATT_SPLIT_KEYS 256   // keys per block (64 per warp)
#define ATT_SPLIT_GROUP 4   // keys whose loads are issued together

// Grid (Tq·NH rows, splits), 4 warps.  Block s of row (i,h) takes chunk s of the row's window [a, t], keys
// a + 256·s .. a + 256·s + 255 (and chunks s + n_splits, s + 2·n_splits, … in order, should the launcher's
// splits not cover the window), warp w the w-th 64 keys of a chunk, in order, with an online softmax; a lane
// owns dims lane, lane+32, … (U = HDP/32 of them), and the scores are warp sums by a fixed butterfly.  The warps
// are merged in order (warp 0 .. 3) and the block writes its partial (m, l, o[HD]) (all −inf / 0 when its keys
// are outside the window).  Query i sits at key q_rows[i] (NULL: q_offset + i).
template <typename E, int U>
__global__ void __launch_bounds__(128)
att_decode_kernel(float *part, const E *q, const E *k, const E *v, const int32_t *doc_offsets, int n_docs,
		  const int32_t *q_rows, int Tq, int NH, int NKV, int HD, int q_offset, float scale)
{
	__shared__ float sm[4], sl[4], so[4][32 * U];
	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	int row = blockIdx.x, s = blockIdx.y, n_splits = gridDim.y;   // row = i·NH + h
	int i = row / NH, h = row % NH, kvh = h / (NH / NKV);
	int t = q_rows ? q_rows[i] : q_offset + i, a = doc_offsets[att_doc_index(doc_offsets, n_docs, t)];
	float qv[U], o[U], m = -INFINITY, l = 0.0f;
	for (int u = 0; u < U; u++) {
		int d = lane + 32 * u;
		qv[u] = d < HD ? to_float(q[(int64_t)row * HD + d]) : 0.0f;
		o[u] = 0.0f;
	}
	for (int64_t c0 = a + (int64_t)s * ATT_SPLIT_KEYS; c0 <= t; c0 += (int64_t)n_splits * ATT_SPLIT_KEYS) {
		int j_begin = (int)c0 + warp * (ATT_SPLIT_KEYS / 4);
		int j_end = min(j_begin + ATT_SPLIT_KEYS / 4, t + 1);
		for (int j0 = j_begin; j0 < j_end; j0 += ATT_SPLIT_GROUP) {
			float kv[ATT_SPLIT_GROUP][U], vv[ATT_SPLIT_GROUP][U], x[ATT_SPLIT_GROUP];
			for (int g = 0; g < ATT_SPLIT_GROUP; g++) {   // the loads of the group first, then the math
				int64_t base = ((int64_t)(j0 + g) * NKV + kvh) * HD;
				for (int u = 0; u < U; u++) {
					int d = lane + 32 * u;
					int in = j0 + g < j_end && d < HD;
					kv[g][u] = in ? to_float(k[base + d]) : 0.0f;
					vv[g][u] = in ? to_float(v[base + d]) : 0.0f;
				}
			}
			for (int g = 0; g < ATT_SPLIT_GROUP; g++) {
				float dot = 0.0f;
				for (int u = 0; u < U; u++)
					dot += qv[u] * kv[g][u];
				x[g] = warp_sum(dot) * scale;
			}
			for (int g = 0; g < ATT_SPLIT_GROUP && j0 + g < j_end; g++) {
				// c = 0 on the first key (m = −inf)
				float m_new = fmaxf(m, x[g]), c = expf(m - m_new), p = expf(x[g] - m_new);
				l = l * c + p;
				for (int u = 0; u < U; u++)
					o[u] = o[u] * c + p * vv[g][u];
				m = m_new;
			}
		}
	}
	if (lane == 0) {
		sm[warp] = m;
		sl[warp] = l;
	}
	for (int u = 0; u < U; u++)
		so[warp][lane + 32 * u] = o[u];
	__syncthreads();
	if (warp == 0) {
		float M = fmaxf(fmaxf(sm[0], sm[1]), fmaxf(sm[2], sm[3])), L = 0.0f, O[U];
		for (int u = 0; u < U; u++)
			O[u] = 0.0f;
		for (int w = 0; w < 4; w++) {
			float c = sm[w] == -INFINITY ? 0.0f : expf(sm[w] - M);
			L += sl[w] * c;
			for (int u = 0; u < U; u++)
				O[u] += so[w][lane + 32 * u] * c;
		}
		float *pr = part + ((int64_t)row * n_splits + s) * (HD + 2);
		if (lane == 0) {
			pr[0] = M;
			pr[1] = L;
		}
		for (int u = 0; u < U; u++)
			if (lane + 32 * u < HD)
				pr[2 + lane + 32 * u] = O[u];
	}
}

// One warp per row: the splits merged in order -> out = O/L, lse = M + log L.
template <typename E>
__global__ void att_decode_combine_kernel(E *out, float *lse, const float *part, int Tq, int NH, int HD, int n_splits)
{
	int lane = threadIdx.x % 32;
	int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32,
		n_warps = (int64_t)gridDim.x * blockDim.x / 32;
	for (int64_t row = warp; row < (int64_t)Tq * NH; row += n_warps) {
		const float *pr = part + row * n_splits * (HD + 2);
		float M = -INFINITY, L = 0.0f;
		for (int s = 0; s < n_splits; s++)
			M = fmaxf(M, pr[(int64_t)s * (HD + 2)]);
		for (int s = 0; s < n_splits; s++) {
			float ms = pr[(int64_t)s * (HD + 2)];
			L += ms == -INFINITY ? 0.0f : pr[(int64_t)s * (HD + 2) + 1] * expf(ms - M);
		}
		for (int d = lane; d < HD; d += 32) {
			float O = 0.0f;
			for (int s = 0; s < n_splits; s++) {
				float ms = pr[(int64_t)s * (HD + 2)];
				O += ms == -INFINITY ? 0.0f : pr[(int64_t)s * (HD + 2) + 2 + d] * expf(ms - M);
			}
			out[row * HD + d] = from_float<E>(L > 0.0f ? O / L : 0.0f);
		}
		if (lse && lane == 0) {
			int64_t i = row / NH, h = row % NH;
			lse[h * Tq + i] = L > 0.0f ? M + logf(L) : -INFINITY;
		}
	}
}

// ----------------------------------------------------------------------------
// backward (Algorithm 2)

// D (NH,Tq) = rowsum(dO ⊙ O), one warp per (query, head), lanes over the head dim then a fixed butterfly.
template <typename E> __global__ void att_bwd_dot_kernel(float *D, const E *dout, const E *out, int Tq, int NH, int HD)
{
	int lane = threadIdx.x % 32;
	int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32,
		n_warps = (int64_t)gridDim.x * blockDim.x / 32;
	for (int64_t w = warp; w < (int64_t)Tq * NH; w += n_warps) {
		int64_t i = w / NH, h = w % NH;
		const E *g = dout + w * HD, *o = out + w * HD;
		float s = 0.0f;
		for (int d = lane; d < HD; d += 32)
			s += to_float(g[d]) * to_float(o[d]);
		s = warp_sum(s);
		if (lane == 0)
			D[h * Tq + i] = s;
	}
}

// dQ pass: grid (query blocks, NH), as the forward.  dq += scale · Σ_tiles dS·K.
template <typename E, int HDP>
__global__ void __launch_bounds__(2 * att_cfg<E, HDP>::DQ_BR)
att_dq_kernel(E *dq, const E *q, const E *k, const E *v, const E *dout, const float *lse, const float *Dsum,
	      const int32_t *doc_offsets, int n_docs, int Tq, int Tk, int NH, int NKV, int HD, int q_offset,
	      float scale, int vec)
{
	typedef att_cfg<E, HDP> C;
	typedef att_dq_smem<E, HDP> SM;
	constexpr int BR = SM::BR, BC = SM::BC, LDQ = C::LDQ, LDO = C::LDO, LDS = SM::LDS, LDP = SM::LDP;
	extern __shared__ __align__(128) unsigned char att_smem[];
	E *sQ = (E *)(att_smem + SM::Q), *sdO = (E *)(att_smem + SM::DO), *sK = (E *)(att_smem + SM::K);
	E *sV = (E *)(att_smem + SM::V), *sdS = (E *)(att_smem + SM::DS);
	float *sS = (float *)(att_smem + SM::S), *sdQ = (float *)(att_smem + SM::DQ);
	int *sA = (int *)(att_smem + SM::ROWS), *sT = sA + BR;
	float *sL = (float *)(sT + BR), *sD = sL + BR;

	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	int i0 = (gridDim.x - 1 - blockIdx.x) * BR, h = blockIdx.y, kvh = h / (NH / NKV);
	int n_rows = min(BR, Tq - i0);
	for (int r = threadIdx.x; r < BR; r += blockDim.x) {
		if (r < n_rows) {
			int t = q_offset + i0 + r;
			sT[r] = t;
			sA[r] = doc_offsets[att_doc_index(doc_offsets, n_docs, t)];
			sL[r] = lse[(int64_t)h * Tq + i0 + r];
			sD[r] = Dsum[(int64_t)h * Tq + i0 + r];
		} else {
			sA[r] = 1;
			sT[r] = 0;
			sL[r] = 0.0f;
			sD[r] = 0.0f;
		}
	}
	att_zero(sdQ, BR * LDO);
	att_load_tile<E, BR, HDP>(sQ, LDQ, q + ((int64_t)i0 * NH + h) * HD, (int64_t)NH * HD, n_rows, HD, vec);
	att_load_tile<E, BR, HDP>(sdO, LDQ, dout + ((int64_t)i0 * NH + h) * HD, (int64_t)NH * HD, n_rows, HD, vec);
	__syncthreads();

	int kstart = sA[0], kend = sT[n_rows - 1];
	int w0 = warp * 16, wa = 1, wt = 0;
	if (w0 < n_rows) {
		wa = sA[w0];
		wt = sT[min(w0 + 15, n_rows - 1)];
	}
	int half = lane & 1, r = w0 + (lane >> 1), ra = sA[r], rt = sT[r];
	float lr = sL[r], dr = sD[r];
	for (int j0 = kstart; j0 <= kend; j0 += BC) {
		__syncthreads();
		int nk = min(BC, Tk - j0);
		att_load_tile<E, BC, HDP>(sK, LDQ, k + ((int64_t)j0 * NKV + kvh) * HD, (int64_t)NKV * HD, nk, HD, vec);
		att_load_tile<E, BC, HDP>(sV, LDQ, v + ((int64_t)j0 * NKV + kvh) * HD, (int64_t)NKV * HD, nk, HD, vec);
		__syncthreads();
		if (j0 > wt || j0 + BC - 1 < wa)
			continue;
		att_abt<BC, HDP>(sS + w0 * LDS, LDS, sQ + w0 * LDQ, LDQ, sK, LDQ);   // S
		__syncwarp();
		float p[BC / 2];
		for (int c2 = 0; c2 < BC / 2; c2++) {
			int c = half + 2 * c2, j = j0 + c;
			p[c2] = j >= ra && j <= rt && lr != -INFINITY ? expf(sS[r * LDS + c] * scale - lr) : 0.0f;
		}
		__syncwarp();   // S is read before dP overwrites it
		att_abt<BC, HDP>(sS + w0 * LDS, LDS, sdO + w0 * LDQ, LDQ, sV, LDQ);   // dP = dO·Vᵀ
		__syncwarp();
		for (int c2 = 0; c2 < BC / 2; c2++) {
			int c = half + 2 * c2;
			sdS[r * LDP + c] = from_float<E>(p[c2] * (sS[r * LDS + c] - dr));
		}
		__syncwarp();
		att_ab_acc<HDP, BC>(sdQ + w0 * LDO, LDO, sdS + w0 * LDP, LDP, sK, LDQ);
	}
	__syncwarp();
	for (int e = lane; e < 16 * HD; e += 32) {
		int row = w0 + e / HD, d = e % HD;
		if (row < n_rows) {
			int64_t at = ((int64_t)(i0 + row) * NH + h) * HD + d;
			dq[at] = from_float<E>(to_float(dq[at]) + scale * sdQ[row * LDO + d]);
		}
	}
}

// dK/dV pass: grid (key blocks, NKV); 2·BC threads, warp w owning keys 16w .. 16w+15 of the block, lane pair
// (2κ, 2κ+1) owning key κ of its warp and the even and odd query columns of a tile.  The queries that can see a
// key of the block are those at positions j0 .. end of the last key's document; they are walked head by head
// (the query heads of this kv head, in order) and tile by tile.  dk += scale·Σ dSᵀ·Q, dv += Σ Pᵀ·dO.
template <typename E, int HDP>
__global__ void __launch_bounds__(2 * att_cfg<E, HDP>::KV_BC)
att_dkv_kernel(E *dk, E *dv, const E *q, const E *k, const E *v, const E *dout, const float *lse,
	       const float *Dsum, const int32_t *doc_offsets, int n_docs, int Tq, int Tk, int NH, int NKV, int HD,
	       int q_offset, float scale, int vec)
{
	typedef att_cfg<E, HDP> C;
	typedef att_dkv_smem<E, HDP> SM;
	constexpr int BR = SM::BR, BC = SM::BC, LDQ = C::LDQ, LDO = C::LDO, LDS = SM::LDS, LDP = SM::LDP;
	extern __shared__ __align__(128) unsigned char att_smem[];
	E *sK = (E *)(att_smem + SM::K), *sV = (E *)(att_smem + SM::V), *sQ = (E *)(att_smem + SM::Q);
	E *sdO = (E *)(att_smem + SM::DO), *sPT = (E *)(att_smem + SM::PT), *sdST = (E *)(att_smem + SM::DST);
	float *sS = (float *)(att_smem + SM::S), *sdK = (float *)(att_smem + SM::DK),
	      *sdV = (float *)(att_smem + SM::DV);
	int *sA = (int *)(att_smem + SM::ROWS), *sT = sA + BR;
	float *sL = (float *)(sT + BR), *sD = sL + BR;

	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	int j0 = blockIdx.x * BC, kvh = blockIdx.y, group = NH / NKV;
	int nk = min(BC, Tk - j0), j1 = j0 + nk - 1;
	// the queries that can see keys j0 .. j1: positions j0 .. the end of j1's document (exclusive)
	int doc_end = doc_offsets[att_doc_index(doc_offsets, n_docs, j1) + 1];
	int i_lo = max(0, j0 - q_offset), i_hi = min(Tq, doc_end - q_offset);
	if (i_lo >= i_hi)   // no query sees these keys: nothing to add (the whole block returns)
		return;
	att_zero(sdK, BC * LDO);
	att_zero(sdV, BC * LDO);
	att_load_tile<E, BC, HDP>(sK, LDQ, k + ((int64_t)j0 * NKV + kvh) * HD, (int64_t)NKV * HD, nk, HD, vec);
	att_load_tile<E, BC, HDP>(sV, LDQ, v + ((int64_t)j0 * NKV + kvh) * HD, (int64_t)NKV * HD, nk, HD, vec);

	int w0 = warp * 16, kw0 = j0 + w0, kw1 = min(j0 + w0 + 15, j1);   // the warp's keys (none when w0 ≥ nk)
	int half = lane & 1, c = w0 + (lane >> 1), j = j0 + c;   // the lane pair's key
	for (int hh = 0; hh < group; hh++) {
		int h = kvh * group + hh;
		for (int i0 = i_lo; i0 < i_hi; i0 += BR) {
			int n_rows = min(BR, i_hi - i0);
			__syncthreads();   // every warp is done with the previous Q, dO and rows (and K, V are loaded)
			for (int r = threadIdx.x; r < BR; r += blockDim.x) {
				if (r < n_rows) {
					int t = q_offset + i0 + r;
					sT[r] = t;
					sA[r] = doc_offsets[att_doc_index(doc_offsets, n_docs, t)];
					sL[r] = lse[(int64_t)h * Tq + i0 + r];
					sD[r] = Dsum[(int64_t)h * Tq + i0 + r];
				} else {
					sA[r] = 1;
					sT[r] = 0;
					sL[r] = 0.0f;
					sD[r] = 0.0f;
				}
			}
			att_load_tile<E, BR, HDP>(sQ, LDQ, q + ((int64_t)i0 * NH + h) * HD, (int64_t)NH * HD, n_rows,
						  HD, vec);
			att_load_tile<E, BR, HDP>(sdO, LDQ, dout + ((int64_t)i0 * NH + h) * HD, (int64_t)NH * HD,
						  n_rows, HD, vec);
			__syncthreads();
			// no key of this warp is seen by a query of this tile (warp-uniform): the windows [sA, sT] rise
			// with the row, so the earliest start is row 0's and the latest position the last row's
			if (w0 >= nk || sT[n_rows - 1] < kw0 || sA[0] > kw1)
				continue;
			att_abt<BR, HDP>(sS + w0 * LDS, LDS, sK + w0 * LDQ, LDQ, sQ, LDQ);   // Sᵀ = K·Qᵀ
			__syncwarp();
			float p[BR / 2];
			for (int c2 = 0; c2 < BR / 2; c2++) {
				int rq = half + 2 * c2;
				p[c2] = j >= sA[rq] && j <= sT[rq] && sL[rq] != -INFINITY
					    ? expf(sS[c * LDS + rq] * scale - sL[rq])
					    : 0.0f;
				sPT[c * LDP + rq] = from_float<E>(p[c2]);
			}
			__syncwarp();
			att_abt<BR, HDP>(sS + w0 * LDS, LDS, sV + w0 * LDQ, LDQ, sdO, LDQ);   // dPᵀ = V·dOᵀ
			__syncwarp();
			for (int c2 = 0; c2 < BR / 2; c2++) {
				int rq = half + 2 * c2;
				sdST[c * LDP + rq] = from_float<E>(p[c2] * (sS[c * LDS + rq] - sD[rq]));
			}
			__syncwarp();
			att_ab_acc<HDP, BR>(sdV + w0 * LDO, LDO, sPT + w0 * LDP, LDP, sdO, LDQ);
			att_ab_acc<HDP, BR>(sdK + w0 * LDO, LDO, sdST + w0 * LDP, LDP, sQ, LDQ);
		}
	}
	__syncthreads();
	for (int e = lane; e < 16 * HD; e += 32) {
		int key = w0 + e / HD, d = e % HD;
		if (key < nk) {
			int64_t at = ((int64_t)(j0 + key) * NKV + kvh) * HD + d;
			if (dk)
				dk[at] = from_float<E>(to_float(dk[at]) + scale * sdK[key * LDO + d]);
			if (dv)
				dv[at] = from_float<E>(to_float(dv[at]) + sdV[key * LDO + d]);
		}
	}
}

// ----------------------------------------------------------------------------
// launchers

struct att_dims {
	int Tq, Tk, NH, NKV, HD, n_docs, q_offset, vec;
	float scale;
	const int32_t *q_rows;   // each query's key index, or NULL: q_offset + i (q_offset is then a window bound)
};

static struct att_dims att_check(const char *op, struct tensor q, struct tensor k, struct tensor v,
				 struct tensor doc_offsets, struct tensor q_rows, int n_docs, int64_t q_offset)
{
	struct att_dims d;
	if (q.dtype != k.dtype || q.dtype != v.dtype || !is_act_dtype(q.dtype))
		die(EXIT_FAIL, "%s: q, k, v are %s, %s, %s (bf16 or f32, all the same)", op, dtype_name(q.dtype),
		    dtype_name(k.dtype), dtype_name(v.dtype));
	need_tensor(doc_offsets, DTYPE_I32, 0, op, "doc_offsets");
	if (q.dim[0] > INT32_MAX || k.dim[0] > INT32_MAX || q_offset < 0 || q_offset > INT32_MAX)
		die(EXIT_FAIL, "%s: %lld queries at offset %lld over %lld keys is more than the kernels index", op,
		    (long long)q.dim[0], (long long)q_offset, (long long)k.dim[0]);
	d.Tq = (int)q.dim[0];
	d.Tk = (int)k.dim[0];
	d.NH = (int)q.dim[1];
	d.NKV = (int)k.dim[1];
	d.HD = (int)q.dim[2];
	d.n_docs = n_docs;
	d.q_offset = (int)q_offset;
	if (d.NKV < 1 || d.NH % d.NKV != 0 || k.dim[2] != d.HD || v.dim[0] != d.Tk || v.dim[1] != d.NKV ||
	    v.dim[2] != d.HD || d.HD < 1 || d.NH > 65535)
		die(EXIT_FAIL,
		    "%s: q (%d,%d,%d), k (%lld,%lld,%lld), v (%lld,%lld,%lld) do not make grouped attention", op, d.Tq,
		    d.NH, d.HD, (long long)k.dim[0], (long long)k.dim[1], (long long)k.dim[2], (long long)v.dim[0],
		    (long long)v.dim[1], (long long)v.dim[2]);
	if (d.HD > 256)
		die(EXIT_FAIL, "%s: head dim %d (at most 256)", op, d.HD);
	need_tensor(q_rows, DTYPE_I32, 1, op, "q_rows");
	d.q_rows = (const int32_t *)q_rows.data;
	if (d.q_rows && tensor_numel(q_rows) != d.Tq)
		die(EXIT_FAIL, "%s: %lld query rows for %d queries", op, (long long)tensor_numel(q_rows), d.Tq);
	if (n_docs < 1 || doc_offsets.dim[0] < (int64_t)n_docs + 1 || (!d.q_rows && q_offset + d.Tq > d.Tk))
		die(EXIT_FAIL, "%s: %d documents (%lld offsets), queries %lld .. %lld of %d keys", op, n_docs,
		    (long long)doc_offsets.dim[0], (long long)q_offset, (long long)q_offset + d.Tq - 1, d.Tk);
	d.scale = 1.0f / sqrtf((float)d.HD);
	d.vec = (d.HD * (int)dtype_size(q.dtype)) % 16 == 0;
	return d;
}

// 16-byte loads need every base pointer 16-byte aligned (rows are, when HD·size is a multiple of 16).
static int att_aligned(const void *p)
{
	return p == NULL || (uintptr_t)p % 16 == 0;
}

// Raise KERNEL's dynamic shared memory limit to BYTES once (dies when the GPU cannot give that much).
template <typename Kernel> static void att_smem_limit(Kernel kernel, size_t bytes, int *done, const char *op)
{
	if (*done)
		return;
	int dev, optin;
	CUDA_CHECK(cudaGetDevice(&dev));
	CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
	if ((size_t)optin < bytes)
		die(EXIT_FAIL, "%s: the kernel needs %zu bytes of shared memory per block, this GPU gives %d", op,
		    bytes, optin);
	CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
	*done = 1;
}

template <typename E, int HDP>
static void att_forward_run(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			    struct tensor doc_offsets, struct att_dims d)
{
	typedef att_fwd_smem<E, HDP> SM;
	static int ready;
	att_smem_limit(att_fwd_kernel<E, HDP>, SM::BYTES, &ready, "attention_forward");
	dim3 grid((unsigned)((d.Tq + SM::BR - 1) / SM::BR), (unsigned)d.NH);
	att_fwd_kernel<E, HDP><<<grid, 2 * SM::BR, SM::BYTES, cuda_stream()>>>(
	    (E *)out.data, (float *)lse.data, (const E *)q.data, (const E *)k.data, (const E *)v.data,
	    (const int32_t *)doc_offsets.data, d.n_docs, d.Tq, d.Tk, d.NH, d.NKV, d.HD, d.q_offset, d.scale, d.vec);
	CUDA_LAUNCHED();
}

template <typename E, int U>
static void att_decode_run(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			   struct tensor doc_offsets, struct att_dims d)
{
	// enough splits for the longest window: q_offset + Tq keys, or with q_rows the caller's bound (0: Tk)
	int64_t window = d.q_rows ? (d.q_offset > 0 ? d.q_offset : d.Tk) : (int64_t)d.q_offset + d.Tq;
	int n_splits = (int)((window + ATT_SPLIT_KEYS - 1) / ATT_SPLIT_KEYS);
	if (n_splits > 65535)
		die(EXIT_FAIL, "attention_forward: %lld keys is more than the decode path splits", (long long)window);
	int rows = d.Tq * d.NH;
	float *part = (float *)cuda_scratch(SCRATCH_ATTENTION_1, (size_t)rows * n_splits * (d.HD + 2) * sizeof(float));
	att_decode_kernel<E, U><<<dim3((unsigned)rows, (unsigned)n_splits), 128, 0, cuda_stream()>>>(
	    part, (const E *)q.data, (const E *)k.data, (const E *)v.data, (const int32_t *)doc_offsets.data, d.n_docs,
	    d.q_rows, d.Tq, d.NH, d.NKV, d.HD, d.q_offset, d.scale);
	CUDA_LAUNCHED();
	att_decode_combine_kernel<E><<<cuda_blocks((int64_t)rows * 32, 256), 256, 0, cuda_stream()>>>(
	    (E *)out.data, (float *)lse.data, part, d.Tq, d.NH, d.HD, n_splits);
	CUDA_LAUNCHED();
}

template <typename E, int HDP>
static void att_forward_dispatch(struct tensor out, struct tensor lse, struct tensor q, struct tensor k,
				 struct tensor v, struct tensor doc_offsets, struct att_dims d)
{
	if (d.Tq <= ATT_DECODE_MAX_Q || d.q_rows)
		att_decode_run<E, HDP / 32>(out, lse, q, k, v, doc_offsets, d);
	else
		att_forward_run<E, HDP>(out, lse, q, k, v, doc_offsets, d);
}

template <typename E, int HDP>
static void att_backward_run(struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout,
			     struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			     struct tensor doc_offsets, const float *Dsum, struct att_dims d)
{
	if (dq.data) {
		typedef att_dq_smem<E, HDP> SM;
		static int ready;
		att_smem_limit(att_dq_kernel<E, HDP>, SM::BYTES, &ready, "attention_backward");
		dim3 grid((unsigned)((d.Tq + SM::BR - 1) / SM::BR), (unsigned)d.NH);
		att_dq_kernel<E, HDP><<<grid, 2 * SM::BR, SM::BYTES, cuda_stream()>>>(
		    (E *)dq.data, (const E *)q.data, (const E *)k.data, (const E *)v.data, (const E *)dout.data,
		    (const float *)lse.data, Dsum, (const int32_t *)doc_offsets.data, d.n_docs, d.Tq, d.Tk, d.NH, d.NKV,
		    d.HD, d.q_offset, d.scale, d.vec);
		CUDA_LAUNCHED();
	}
	if (dk.data || dv.data) {
		typedef att_dkv_smem<E, HDP> SM;
		static int ready;
		att_smem_limit(att_dkv_kernel<E, HDP>, SM::BYTES, &ready, "attention_backward");
		dim3 grid((unsigned)((d.Tk + SM::BC - 1) / SM::BC), (unsigned)d.NKV);
		att_dkv_kernel<E, HDP><<<grid, 2 * SM::BC, SM::BYTES, cuda_stream()>>>(
		    (E *)dk.data, (E *)dv.data, (const E *)q.data, (const E *)k.data, (const E *)v.data,
		    (const E *)dout.data, (const float *)lse.data, Dsum, (const int32_t *)doc_offsets.data, d.n_docs,
		    d.Tq, d.Tk, d.NH, d.NKV, d.HD, d.q_offset, d.scale, d.vec);
		CUDA_LAUNCHED();
	}
}

// q (Tq,NH,HD), k (Tk,NKV,HD), v (Tk,NKV,HD), q_rows (Tq) or NONE -> out (Tq,NH,HD), lse (NH,Tq) f32 or NONE
extern "C" void cuda_attention_forward(struct tensor out, struct tensor lse, struct tensor q, struct tensor k,
				       struct tensor v, struct tensor doc_offsets, struct tensor q_rows, int n_docs,
				       int64_t q_offset)
{
	const char *op = "attention_forward";
	struct att_dims d = att_check(op, q, k, v, doc_offsets, q_rows, n_docs, q_offset);
	need_tensor(lse, DTYPE_F32, 1, op, "lse");
	if (out.dtype != q.dtype || out.dim[0] != d.Tq || out.dim[1] != d.NH || out.dim[2] != d.HD ||
	    (lse.data && (lse.dim[0] != d.NH || lse.dim[1] != d.Tq)))
		die(EXIT_FAIL, "%s: out (%s) or lse does not match q (%d,%d,%d)", op, dtype_name(out.dtype), d.Tq,
		    d.NH, d.HD);
	if (d.Tq == 0)
		return;
	d.vec = d.vec && att_aligned(q.data) && att_aligned(k.data) && att_aligned(v.data);
	int HDP = d.HD <= 64 ? 64 : d.HD <= 128 ? 128 : 256;
	if (q.dtype == DTYPE_BF16) {
		if (HDP == 64)
			att_forward_dispatch<bf16, 64>(out, lse, q, k, v, doc_offsets, d);
		else if (HDP == 128)
			att_forward_dispatch<bf16, 128>(out, lse, q, k, v, doc_offsets, d);
		else
			att_forward_dispatch<bf16, 256>(out, lse, q, k, v, doc_offsets, d);
	} else {
		if (HDP == 64)
			att_forward_dispatch<float, 64>(out, lse, q, k, v, doc_offsets, d);
		else if (HDP == 128)
			att_forward_dispatch<float, 128>(out, lse, q, k, v, doc_offsets, d);
		else
			att_forward_dispatch<float, 256>(out, lse, q, k, v, doc_offsets, d);
	}
}

// dout (Tq,NH,HD) -> dq, dk, dv += (each may be NONE)
extern "C" void cuda_attention_backward(struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout,
					struct tensor out, struct tensor lse, struct tensor q, struct tensor k,
					struct tensor v, struct tensor doc_offsets, int n_docs, int64_t q_offset)
{
	const char *op = "attention_backward";
	struct att_dims d = att_check(op, q, k, v, doc_offsets, TENSOR_NONE, n_docs, q_offset);
	need_tensor(lse, DTYPE_F32, 0, op, "lse");
	if (out.dtype != q.dtype || dout.dtype != q.dtype || (dq.data && dq.dtype != q.dtype) ||
	    (dk.data && dk.dtype != q.dtype) || (dv.data && dv.dtype != q.dtype))
		die(EXIT_FAIL, "%s: out, dout, dq, dk, dv must all be %s like q", op, dtype_name(q.dtype));
	if (out.dim[0] != d.Tq || out.dim[1] != d.NH || out.dim[2] != d.HD || dout.dim[0] != d.Tq ||
	    dout.dim[1] != d.NH || dout.dim[2] != d.HD || lse.dim[0] != d.NH || lse.dim[1] != d.Tq ||
	    (dq.data && (dq.dim[0] != d.Tq || dq.dim[1] != d.NH || dq.dim[2] != d.HD)) ||
	    (dk.data && (dk.dim[0] != d.Tk || dk.dim[1] != d.NKV || dk.dim[2] != d.HD)) ||
	    (dv.data && (dv.dim[0] != d.Tk || dv.dim[1] != d.NKV || dv.dim[2] != d.HD)))
		die(EXIT_FAIL, "%s: out, dout, lse, dq, dk or dv does not match q (%d,%d,%d) and k (%d,%d,%d)", op,
		    d.Tq, d.NH, d.HD, d.Tk, d.NKV, d.HD);
	if (d.Tq == 0 || (!dq.data && !dk.data && !dv.data))
		return;
	d.vec = d.vec && att_aligned(q.data) && att_aligned(k.data) && att_aligned(v.data) && att_aligned(dout.data);
	float *Dsum = (float *)cuda_scratch(SCRATCH_ATTENTION_0, (size_t)d.NH * d.Tq * sizeof(float));
	unsigned grid = cuda_blocks((int64_t)d.Tq * d.NH * 32, 256);
	int HDP = d.HD <= 64 ? 64 : d.HD <= 128 ? 128 : 256;
	if (q.dtype == DTYPE_BF16) {
		att_bwd_dot_kernel<bf16><<<grid, 256, 0, cuda_stream()>>>(Dsum, (const bf16 *)dout.data,
									  (const bf16 *)out.data, d.Tq, d.NH, d.HD);
		CUDA_LAUNCHED();
		if (HDP == 64)
			att_backward_run<bf16, 64>(dq, dk, dv, dout, lse, q, k, v, doc_offsets, Dsum, d);
		else if (HDP == 128)
			att_backward_run<bf16, 128>(dq, dk, dv, dout, lse, q, k, v, doc_offsets, Dsum, d);
		else
			att_backward_run<bf16, 256>(dq, dk, dv, dout, lse, q, k, v, doc_offsets, Dsum, d);
	} else {
		att_bwd_dot_kernel<float><<<grid, 256, 0, cuda_stream()>>>(Dsum, (const float *)dout.data,
									   (const float *)out.data, d.Tq, d.NH, d.HD);
		CUDA_LAUNCHED();
		if (HDP == 64)
			att_backward_run<float, 64>(dq, dk, dv, dout, lse, q, k, v, doc_offsets, Dsum, d);
		else if (HDP == 128)
			att_backward_run<float, 128>(dq, dk, dv, dout, lse, q, k, v, doc_offsets, Dsum, d);
		else
			att_backward_run<float, 256>(dq, dk, dv, dout, lse, q, k, v, doc_offsets, Dsum, d);
	}
}
