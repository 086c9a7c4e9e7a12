// memory.cu — data movement and whole-tensor reductions: tensor_copy between any two devices with dtype
// conversion, tensor_zero, tensor_fill, tensor_scale, tensor_sum, tensor_sumsq (ops.h).
//
// Conversions round once, to nearest even, from the source value: f64 converts directly to bf16/f16/f32 (no
// double rounding through f32), the 16-bit types go exactly through f32.  A copy with a dtype change between host
// and device stages the raw source (host -> device) or the converted result (device -> host) in SCRATCH_COPY, in
// chunks of at most 64 MiB, so uploading a large f32 checkpoint into bf16 does not hold a second copy of it on the
// device.  Copies to host memory and the two sums synchronise the stream; nothing else here does.
#include "core.cuh"

namespace {

// dst (n) = src (n), N elements per thread and access where both are aligned to it.
template <typename To, typename Ti, int N> __global__ void convert_kernel(To *dst, const Ti *src, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			Pack<Ti, N> a = *reinterpret_cast<const Pack<Ti, N> *>(src + i);
			Pack<To, N> b;
#pragma unroll
			for (int j = 0; j < N; j++)
				b.v[j] = convert<To>(a.v[j]);
			*reinterpret_cast<Pack<To, N> *>(dst + i) = b;
		} else {
			for (int64_t j = i; j < n; j++)
				dst[j] = convert<To>(src[j]);
		}
	}
}

template <typename To, typename Ti> void convert_launch(To *dst, const Ti *src, int64_t n)
{
	enum { N = 4 };
	int vec = cuda_aligned(dst, N * sizeof(To)) && cuda_aligned(src, N * sizeof(Ti));
	if (vec)
		convert_kernel<To, Ti, N><<<cuda_blocks((n + N - 1) / N, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
			dst, src, n);
	else
		convert_kernel<To, Ti, 1><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(dst, src, n);
	CUDA_LAUNCHED();
}

// ----------------------------------------------------------------------------
// fill and scale

// Every element of P (n elements of type W, a plain bit pattern) = VALUE.
template <typename W> __global__ void fill_kernel(W *p, W value, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x;
	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		p[i] = value;
}

template <typename W> void fill_launch(void *p, W value, int64_t n)
{
	fill_kernel<W><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>((W *)p, value, n);
	CUDA_LAUNCHED();
}

// x *= s in f32 arithmetic (f64 tensors in f64), rounded once.
__device__ __forceinline__ double scale_elem(double x, double s) { return x * s; }
template <typename T> __device__ __forceinline__ T scale_elem(T x, double s)
{
	return from_float<T>(to_float(x) * (float)s);
}

template <typename T, int N> __global__ void scale_kernel(T *p, double s, int64_t n)
{
	int64_t stride = (int64_t)gridDim.x * blockDim.x * N;
	for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
		if (i + N <= n) {
			Pack<T, N> a = *reinterpret_cast<const Pack<T, N> *>(p + i);
#pragma unroll
			for (int j = 0; j < N; j++)
				a.v[j] = scale_elem(a.v[j], s);
			*reinterpret_cast<Pack<T, N> *>(p + i) = a;
		} else {
			for (int64_t j = i; j < n; j++)
				p[j] = scale_elem(p[j], s);
		}
	}
}

// ----------------------------------------------------------------------------
// sums in double, in a fixed order: thread t of block b adds elements b·B + t, + G·B, ... in order; the block
// sums its threads (block_sum's fixed tree); one more block sums the G partials the same way.  G and B depend on
// n only, so the order is the same on every run and every GPU.

constexpr int64_t SUM_BLOCKS_MAX = 1024;

__device__ __forceinline__ double to_double(float x) { return x; }
__device__ __forceinline__ double to_double(double x) { return x; }
__device__ __forceinline__ double to_double(int32_t x) { return x; }
__device__ __forceinline__ double to_double(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ double to_double(__half x) { return __half2float(x); }

template <typename T, bool SQUARE> __global__ void sum_partial_kernel(double *partial, const T *p, int64_t n)
{
	__shared__ double shared[32];
	int64_t stride = (int64_t)gridDim.x * blockDim.x;
	double s = 0.0;
#pragma unroll 4
	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
		double x = to_double(p[i]);
		s += SQUARE ? x * x : x;
	}
	s = block_sum(s, shared);
	if (threadIdx.x == 0)
		partial[blockIdx.x] = s;
}

__global__ void sum_final_kernel(double *out, const double *partial, int n)
{
	__shared__ double shared[32];
	double s = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x)
		s += partial[i];
	s = block_sum(s, shared);
	if (threadIdx.x == 0)
		*out = s;
}

template <bool SQUARE> double sum_of(struct tensor t, const char *op)
{
	cuda_need_device(op, "t", t);
	int64_t n = tensor_numel(t);
	if (n == 0)
		return 0.0;
	int64_t want = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
	int blocks = (int)(want < SUM_BLOCKS_MAX ? want : SUM_BLOCKS_MAX);
	double *partial = (double *)cuda_scratch(SCRATCH_REDUCE, (size_t)(blocks + 1) * sizeof(double));
	double *result = partial + blocks;
	auto launch = [&](auto tag) {
		using T = decltype(tag);
		sum_partial_kernel<T, SQUARE><<<blocks, CUDA_BLOCK, 0, cuda_stream()>>>(partial, (const T *)t.data, n);
	};
	if (t.dtype == DTYPE_I32)
		launch(int32_t{});
	else
		with_float_type(t.dtype, op, "t", launch);
	CUDA_LAUNCHED();
	sum_final_kernel<<<1, CUDA_BLOCK, 0, cuda_stream()>>>(result, partial, blocks);
	CUDA_LAUNCHED();
	double host = 0.0;
	CUDA_CHECK(cudaMemcpyAsync(&host, result, sizeof host, cudaMemcpyDeviceToHost, cuda_stream()));
	CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
	return host;
}

} // namespace

// ----------------------------------------------------------------------------
// shared with the other op files

void cuda_convert(void *dst, enum dtype dt, const void *src, enum dtype st, int64_t n)
{
	if (n <= 0)
		return;
	if (dt == st) {
		CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)n * dtype_size(dt), cudaMemcpyDeviceToDevice, cuda_stream()));
		return;
	}
	if (dt == DTYPE_I32 || st == DTYPE_I32)
		die(EXIT_FAIL, "tensor_copy: %s into %s", dtype_name(st), dtype_name(dt));
	with_float_type(dt, "tensor_copy", "destination", [&](auto to) {
		using To = decltype(to);
		with_float_type(st, "tensor_copy", "source", [&](auto ti) {
			using Ti = decltype(ti);
			convert_launch<To, Ti>((To *)dst, (const Ti *)src, n);
		});
	});
}

// ----------------------------------------------------------------------------
// ops.h

extern "C" void cuda_tensor_copy(struct tensor dst, struct tensor src)
{
	cuda_need_same_numel("tensor_copy", "dst", dst, "src", src);
	if ((dst.dtype == DTYPE_I32) != (src.dtype == DTYPE_I32))
		die(EXIT_FAIL, "tensor_copy: %s into %s", dtype_name(src.dtype), dtype_name(dst.dtype));
	int64_t n = tensor_numel(src);
	if (n == 0)
		return;
	int to_dev = dst.device == DEVICE_CUDA, from_dev = src.device == DEVICE_CUDA;
	if (!to_dev && !from_dev)
		die(EXIT_FAIL, "tensor_copy: a host to host copy given to the CUDA backend");
	size_t ds = dtype_size(dst.dtype), ss = dtype_size(src.dtype);
	cudaStream_t stream = cuda_stream();
	if (to_dev && from_dev) {
		cuda_convert(dst.data, dst.dtype, src.data, src.dtype, n);
		return;
	}
	if (dst.dtype == src.dtype) {
		CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, (size_t)n * ds,
					   to_dev ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, stream));
	} else {
		// Stage in SCRATCH_COPY chunk by chunk; the stream orders each chunk's reuse of the buffer after the
		// previous chunk's kernel or transfer.
		int64_t chunk = ((int64_t)64 << 20) / (int64_t)(ds > ss ? ds : ss);
		int64_t first = n < chunk ? n : chunk;
		void *stage = cuda_scratch(SCRATCH_COPY, (size_t)first * (to_dev ? ss : ds));
		for (int64_t i = 0; i < n; i += chunk) {
			int64_t m = n - i < chunk ? n - i : chunk;
			char *d = (char *)dst.data + (size_t)i * ds;
			const char *s = (const char *)src.data + (size_t)i * ss;
			if (to_dev) {
				CUDA_CHECK(cudaMemcpyAsync(stage, s, (size_t)m * ss, cudaMemcpyHostToDevice, stream));
				cuda_convert(d, dst.dtype, stage, src.dtype, m);
			} else {
				cuda_convert(stage, dst.dtype, s, src.dtype, m);
				CUDA_CHECK(cudaMemcpyAsync(d, stage, (size_t)m * ds, cudaMemcpyDeviceToHost, stream));
			}
		}
	}
	if (!to_dev)
		CUDA_CHECK(cudaStreamSynchronize(stream));   // the host reads DST as soon as we return
}

extern "C" void cuda_tensor_zero(struct tensor t)
{
	cuda_need_device("tensor_zero", "t", t);
	int64_t n = tensor_numel(t);
	if (n > 0)   // all-zero bits are 0 in every dtype
		CUDA_CHECK(cudaMemsetAsync(t.data, 0, (size_t)n * dtype_size(t.dtype), cuda_stream()));
}

extern "C" void cuda_tensor_fill(struct tensor t, double value)
{
	cuda_need_device("tensor_fill", "t", t);
	int64_t n = tensor_numel(t);
	if (n == 0)
		return;
	switch (t.dtype) {
	case DTYPE_F32: fill_launch<float>(t.data, (float)value, n); break;
	case DTYPE_F64: fill_launch<double>(t.data, value, n); break;
	case DTYPE_I32: fill_launch<int32_t>(t.data, (int32_t)value, n); break;
	case DTYPE_BF16: {
		__nv_bfloat16 v = __double2bfloat16(value);
		uint16_t bits;
		memcpy(&bits, &v, sizeof bits);
		fill_launch<uint16_t>(t.data, bits, n);
		break;
	}
	case DTYPE_F16: {
		__half v = __double2half(value);
		uint16_t bits;
		memcpy(&bits, &v, sizeof bits);
		fill_launch<uint16_t>(t.data, bits, n);
		break;
	}
	}
}

extern "C" void cuda_tensor_scale(struct tensor t, double s)
{
	cuda_need_device("tensor_scale", "t", t);
	int64_t n = tensor_numel(t);
	if (n == 0)
		return;
	with_float_type(t.dtype, "tensor_scale", "t", [&](auto tag) {
		using T = decltype(tag);
		enum { N = 16 / sizeof(T) };
		if (cuda_aligned(t.data, 16))
			scale_kernel<T, N><<<cuda_blocks((n + N - 1) / N, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
				(T *)t.data, s, n);
		else
			scale_kernel<T, 1><<<cuda_blocks(n, CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>((T *)t.data, s, n);
		CUDA_LAUNCHED();
	});
}

extern "C" double cuda_tensor_sum(struct tensor t) { return sum_of<false>(t, "tensor_sum"); }

extern "C" double cuda_tensor_sumsq(struct tensor t) { return sum_of<true>(t, "tensor_sumsq"); }
