// gather.cu — gather_rows (also the embedding lookup: wte in its stored dtype -> the activation dtype), its
// backward scatter_rows_add, and scatter_rows (a batched decoding step's new keys into their KV-cache slots)
// (ops.h).
//
// scatter_rows_add must add the rows of one output row in index order, reproducibly, without float atomics.
// Walking i in order per column is correct but serial in M (each step waits a full memory latency).  Instead the
// indices are sorted stably (CUB's radix sort: equal keys keep their order, so each output row's contributions
// come out in increasing i), and one block per output row adds its run of inputs in that order into a register
// accumulator started from the row's old value: per element the additions are exactly those of the serial loop,
// in the same order, rounded to the output dtype once at the end.
#include "core.cuh"

#include <cub/device/device_radix_sort.cuh>

namespace {

// Columns per thread and access: a 16-byte pack of the wider of the two types when every row start is aligned.
template <typename To, typename Ti> constexpr int pack_of()
{
	return pack16<To>() < pack16<Ti>() ? pack16<To>() : pack16<Ti>();
}

// Threads for a row of C columns in packs of N: whole warps, at most CUDA_BLOCK.
int row_threads(int64_t C, int N)
{
	int64_t packs = (C + N - 1) / N, t = (packs + 31) / 32 * 32;
	return (int)(t < CUDA_BLOCK ? t : CUDA_BLOCK);
}

// out (M,C) row i = inp row idx[i] (R,C), converted.  One block per output row.
template <typename To, typename Ti, int N>
__global__ void gather_kernel(To *out, const Ti *inp, const int32_t *idx, int64_t C)
{
	int64_t i = blockIdx.x, r = idx[i];
	To *o = out + i * C;
	const Ti *x = inp + r * C;
	for (int64_t c = (int64_t)threadIdx.x * N; c < C; c += (int64_t)blockDim.x * N) {
		if (c + N <= C) {
			Pack<Ti, N> a = *reinterpret_cast<const Pack<Ti, N> *>(x + c);
			Pack<To, N> b;
#pragma unroll
			for (int j = 0; j < N; j++)
				b.v[j] = convert<To>(a.v[j]);
			*reinterpret_cast<Pack<To, N> *>(o + c) = b;
		} else {
			for (int64_t j = c; j < C; j++)
				o[j] = convert<To>(x[j]);
		}
	}
}

template <typename To, typename Ti> void gather_launch(void *out, const void *inp, const int32_t *idx, int64_t M, int64_t C)
{
	constexpr int N = pack_of<To, Ti>();
	int vec = C % N == 0 && cuda_aligned(out, N * sizeof(To)) && cuda_aligned(inp, N * sizeof(Ti));
	if (vec)
		gather_kernel<To, Ti, N><<<(unsigned)M, row_threads(C, N), 0, cuda_stream()>>>((To *)out, (const Ti *)inp,
											     idx, C);
	else
		gather_kernel<To, Ti, 1><<<(unsigned)M, row_threads(C, 1), 0, cuda_stream()>>>((To *)out, (const Ti *)inp,
											     idx, C);
	CUDA_LAUNCHED();
}

// out (R,C) row idx[i] = inp row i (M,C), converted; indices distinct.  One block per input row.
template <typename To, typename Ti, int N>
__global__ void scatter_kernel(To *out, const Ti *inp, const int32_t *idx, int64_t C)
{
	int64_t i = blockIdx.x, r = idx[i];
	To *o = out + r * C;
	const Ti *x = inp + i * C;
	for (int64_t c = (int64_t)threadIdx.x * N; c < C; c += (int64_t)blockDim.x * N) {
		if (c + N <= C) {
			Pack<Ti, N> a = *reinterpret_cast<const Pack<Ti, N> *>(x + c);
			Pack<To, N> b;
#pragma unroll
			for (int j = 0; j < N; j++)
				b.v[j] = convert<To>(a.v[j]);
			*reinterpret_cast<Pack<To, N> *>(o + c) = b;
		} else {
			for (int64_t j = c; j < C; j++)
				o[j] = convert<To>(x[j]);
		}
	}
}

template <typename To, typename Ti>
void scatter_launch(void *out, const void *inp, const int32_t *idx, int64_t M, int64_t C)
{
	constexpr int N = pack_of<To, Ti>();
	int vec = C % N == 0 && cuda_aligned(out, N * sizeof(To)) && cuda_aligned(inp, N * sizeof(Ti));
	if (vec)
		scatter_kernel<To, Ti, N><<<(unsigned)M, row_threads(C, N), 0, cuda_stream()>>>((To *)out, (const Ti *)inp,
											      idx, C);
	else
		scatter_kernel<To, Ti, 1><<<(unsigned)M, row_threads(C, 1), 0, cuda_stream()>>>((To *)out, (const Ti *)inp,
											      idx, C);
	CUDA_LAUNCHED();
}

__global__ void iota_kernel(int32_t *p, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x;
	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		p[i] = (int32_t)i;
}

// Block s handles the run of sorted positions s, s+1, ... with the key of s, when s starts that run (the others
// return at once): out[key] += inp[order[s]] + inp[order[s+1]] + ..., in that order, per column.
template <typename To, typename Ti, int N>
__global__ void scatter_add_kernel(To *out, const Ti *inp, const int32_t *keys, const int32_t *order, int64_t M,
				   int64_t C)
{
	using Acc = typename std::conditional<std::is_same<To, double>::value || std::is_same<Ti, double>::value,
					      double, float>::type;
	int64_t s0 = blockIdx.x;
	int32_t r = keys[s0];
	if (s0 > 0 && keys[s0 - 1] == r)
		return;
	int64_t s1 = s0 + 1;
	while (s1 < M && keys[s1] == r)
		s1++;
	To *o = out + (int64_t)r * C;
	for (int64_t c = (int64_t)threadIdx.x * N; c < C; c += (int64_t)blockDim.x * N) {
		if (c + N <= C) {
			Pack<To, N> a = *reinterpret_cast<const Pack<To, N> *>(o + c);
			Acc acc[N];
#pragma unroll
			for (int j = 0; j < N; j++)
				acc[j] = convert<Acc>(a.v[j]);
			for (int64_t s = s0; s < s1; s++) {
				Pack<Ti, N> b = *reinterpret_cast<const Pack<Ti, N> *>(inp + (int64_t)order[s] * C + c);
#pragma unroll
				for (int j = 0; j < N; j++)
					acc[j] += convert<Acc>(b.v[j]);
			}
#pragma unroll
			for (int j = 0; j < N; j++)
				a.v[j] = convert<To>(acc[j]);
			*reinterpret_cast<Pack<To, N> *>(o + c) = a;
		} else {
			for (int64_t j = c; j < C; j++) {
				Acc acc = convert<Acc>(o[j]);
				for (int64_t s = s0; s < s1; s++)
					acc += convert<Acc>(inp[(int64_t)order[s] * C + j]);
				o[j] = convert<To>(acc);
			}
		}
	}
}

template <typename To, typename Ti>
void scatter_add_launch(void *out, const void *inp, const int32_t *keys, const int32_t *order, int64_t M, int64_t C)
{
	constexpr int N = pack_of<To, Ti>();
	int vec = C % N == 0 && cuda_aligned(out, N * sizeof(To)) && cuda_aligned(inp, N * sizeof(Ti));
	if (vec)
		scatter_add_kernel<To, Ti, N><<<(unsigned)M, row_threads(C, N), 0, cuda_stream()>>>(
			(To *)out, (const Ti *)inp, keys, order, M, C);
	else
		scatter_add_kernel<To, Ti, 1><<<(unsigned)M, row_threads(C, 1), 0, cuda_stream()>>>(
			(To *)out, (const Ti *)inp, keys, order, M, C);
	CUDA_LAUNCHED();
}

// Elements per row of T seen as (dim[0], rest).
int64_t row_width(struct tensor t) { return t.dim[0] ? tensor_numel(t) / t.dim[0] : 0; }

// The raw word of a dtype, for copies that do not convert.
template <typename F> void with_word_type(enum dtype t, F &&f)
{
	switch (dtype_size(t)) {
	case 2: f(uint16_t{}); return;
	case 4: f(uint32_t{}); return;
	default: f(uint64_t{}); return;
	}
}

} // namespace

// inp (R,C), idx (M) I32 -> out (M,C): out[i] = inp[idx[i]]
extern "C" void cuda_gather_rows(struct tensor out, struct tensor inp, struct tensor idx)
{
	const char *op = "gather_rows";
	cuda_need_device(op, "out", out);
	cuda_need_device(op, "inp", inp);
	cuda_need_dtype(op, "idx", idx, DTYPE_I32);
	int64_t M = tensor_numel(idx), C = row_width(inp);
	if (tensor_numel(out) != M * C)
		die(EXIT_FAIL, "gather_rows: out has %lld elements, not %lld rows of %lld", (long long)tensor_numel(out),
		    (long long)M, (long long)C);
	if (M == 0 || C == 0)
		return;
	if (out.dtype == inp.dtype) {
		with_word_type(out.dtype, [&](auto tag) {
			using W = decltype(tag);
			gather_launch<W, W>(out.data, inp.data, (const int32_t *)idx.data, M, C);
		});
		return;
	}
	with_float_type(out.dtype, op, "out", [&](auto to) {
		using To = decltype(to);
		with_float_type(inp.dtype, op, "inp", [&](auto ti) {
			using Ti = decltype(ti);
			gather_launch<To, Ti>(out.data, inp.data, (const int32_t *)idx.data, M, C);
		});
	});
}

// inp (M,C), idx (M) -> out (R,C): out[idx[i]] += inp[i], i in order
extern "C" void cuda_scatter_rows_add(struct tensor out, struct tensor inp, struct tensor idx)
{
	const char *op = "scatter_rows_add";
	cuda_need_device(op, "out", out);
	cuda_need_device(op, "inp", inp);
	cuda_need_dtype(op, "idx", idx, DTYPE_I32);
	int64_t M = tensor_numel(idx), C = row_width(out);
	if (tensor_numel(inp) != M * C)
		die(EXIT_FAIL, "scatter_rows_add: inp has %lld elements, not %lld rows of %lld",
		    (long long)tensor_numel(inp), (long long)M, (long long)C);
	if (M == 0 || C == 0)
		return;
	if (M > INT32_MAX)
		die(EXIT_FAIL, "scatter_rows_add: %lld rows is more than the CUDA backend sorts", (long long)M);
	// Scratch (SCRATCH_REDUCE, used only within this call): order_in, keys_out, order_out, then CUB's storage.
	size_t sort_bytes = 0;
	CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, (const int32_t *)nullptr, (int32_t *)nullptr,
						   (const int32_t *)nullptr, (int32_t *)nullptr, (int)M, 0, 32,
						   cuda_stream()));
	size_t vec_bytes = ((size_t)M * sizeof(int32_t) + 255) & ~(size_t)255;
	char *base = (char *)cuda_scratch(SCRATCH_REDUCE, 3 * vec_bytes + sort_bytes);
	int32_t *order_in = (int32_t *)base, *keys = (int32_t *)(base + vec_bytes);
	int32_t *order = (int32_t *)(base + 2 * vec_bytes);
	void *sort_storage = base + 3 * vec_bytes;
	iota_kernel<<<cuda_blocks(M, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(order_in, M);
	CUDA_LAUNCHED();
	CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_storage, sort_bytes, (const int32_t *)idx.data, keys,
						   (const int32_t *)order_in, order, (int)M, 0, 32, cuda_stream()));
	with_float_type(out.dtype, op, "out", [&](auto to) {
		using To = decltype(to);
		with_float_type(inp.dtype, op, "inp", [&](auto ti) {
			using Ti = decltype(ti);
			scatter_add_launch<To, Ti>(out.data, inp.data, keys, order, M, C);
		});
	});
}

// inp (M,C), idx (M) distinct -> out (R,C): out[idx[i]] = inp[i]
extern "C" void cuda_scatter_rows(struct tensor out, struct tensor inp, struct tensor idx)
{
	const char *op = "scatter_rows";
	cuda_need_device(op, "out", out);
	cuda_need_device(op, "inp", inp);
	cuda_need_dtype(op, "idx", idx, DTYPE_I32);
	int64_t M = tensor_numel(idx), C = row_width(inp);
	if (tensor_numel(inp) != M * C || (C && tensor_numel(out) % C != 0))
		die(EXIT_FAIL, "scatter_rows: %lld rows of %lld into a %lld-element tensor", (long long)M, (long long)C,
		    (long long)tensor_numel(out));
	if (M == 0 || C == 0)
		return;
	if (out.dtype == inp.dtype) {
		with_word_type(out.dtype, [&](auto tag) {
			using W = decltype(tag);
			scatter_launch<W, W>(out.data, inp.data, (const int32_t *)idx.data, M, C);
		});
		return;
	}
	with_float_type(out.dtype, op, "out", [&](auto to) {
		using To = decltype(to);
		with_float_type(inp.dtype, op, "inp", [&](auto ti) {
			using Ti = decltype(ti);
			scatter_launch<To, Ti>(out.data, inp.data, (const int32_t *)idx.data, M, C);
		});
	});
}
