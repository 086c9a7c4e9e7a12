// common.cu — the CUDA backend's device, stream, library handles, memory accounting and scratch (common.cuh), and
// the device and memory functions of ops_backend.h's list (cuda_*): init, describe, alloc, free, sync, peak_bytes.
//
// One device per process, one stream, one cuBLAS and one cuBLASLt handle, all made by cuda_init (or on first use).
// Memory is counted here: every ops_alloc and every scratch buffer, so cuda_peak_bytes is what the planner asked
// for plus what the backend kept for itself.  Not thread-safe: the model drives the device from one host thread.
#include "core.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct allocation {
	void *p;
	size_t bytes;
};

static struct {
	int ready, index, sm_count;
	char name[256];
	size_t total_mem;
	cudaStream_t stream;
	cublasHandle_t cublas;
	cublasLtHandle_t cublaslt;
	size_t live, peak;   // bytes held through cuda_alloc and cuda_scratch
	struct allocation *allocs;   // live cuda_alloc blocks (few: one per family, plus tests' tensors)
	size_t n_allocs, cap_allocs;
	struct allocation scratch[N_SCRATCH_SLOTS];
} g;

// ----------------------------------------------------------------------------
// errors

void cuda_check_error(cudaError_t err, const char *call, const char *file, int line)
{
	if (err != cudaSuccess)
		die(EXIT_FAIL, "%s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString(err), cudaGetErrorName(err));
}

void cuda_check_cublas(cublasStatus_t status, const char *call, const char *file, int line)
{
	if (status != CUBLAS_STATUS_SUCCESS)
		die(EXIT_FAIL, "%s:%d: %s: %s", file, line, call, cublasGetStatusString(status));
}

void cuda_unsupported(const char *op, const char *what, enum dtype t)
{
	die(EXIT_FAIL, "%s: %s: dtype %s is not supported by the CUDA backend", op, what, dtype_name(t));
}

void cuda_need_device(const char *op, const char *what, struct tensor t)
{
	if (t.data && t.device != DEVICE_CUDA)
		die(EXIT_FAIL, "%s: %s is on the %s, not the CUDA device", op, what, device_name(t.device));
}

void cuda_need_dtype(const char *op, const char *what, struct tensor t, enum dtype want)
{
	cuda_need_device(op, what, t);
	if (t.dtype != want)
		die(EXIT_FAIL, "%s: %s is %s; the CUDA backend wants %s", op, what, dtype_name(t.dtype), dtype_name(want));
}

void cuda_need_same_numel(const char *op, const char *what_a, struct tensor a, const char *what_b, struct tensor b)
{
	if (tensor_numel(a) != tensor_numel(b))
		die(EXIT_FAIL, "%s: %s has %lld elements, %s %lld", op, what_a, (long long)tensor_numel(a), what_b,
		    (long long)tensor_numel(b));
}

// ----------------------------------------------------------------------------
// the device

int cuda_available(void)
{
	int count = 0;
	return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

void cuda_init(int index)
{
	if (g.ready) {
		if (index >= 0 && index != g.index)
			die(EXIT_FAIL, "cuda:%d: this process already uses cuda:%d (one device per process)", index, g.index);
		return;
	}
	int count = 0;
	cudaError_t err = cudaGetDeviceCount(&count);
	if (err != cudaSuccess)
		die(EXIT_FAIL, "--device cuda: no usable CUDA device: cudaGetDeviceCount: %s (%s)",
		    cudaGetErrorString(err), cudaGetErrorName(err));
	if (count == 0)
		die(EXIT_FAIL, "--device cuda: no CUDA device on this machine (cudaGetDeviceCount: 0)");
	if (index >= count)
		die(EXIT_FAIL, "--device cuda:%d: this machine has %d CUDA device%s (cuda:0 .. cuda:%d)", index, count,
		    count == 1 ? "" : "s", count - 1);
	g.index = index < 0 ? 0 : index;
	CUDA_CHECK(cudaSetDevice(g.index));
	cudaDeviceProp prop;
	CUDA_CHECK(cudaGetDeviceProperties(&prop, g.index));
	snprintf(g.name, sizeof g.name, "%s", prop.name);
	g.sm_count = prop.multiProcessorCount;
	g.total_mem = prop.totalGlobalMem;
	// A blocking stream: everything of ours is queued on it, and a stray call on the legacy default stream (a
	// plain cudaMemcpy, say) still waits for it instead of racing it.
	CUDA_CHECK(cudaStreamCreate(&g.stream));
	CUBLAS_CHECK(cublasCreate(&g.cublas));
	CUBLAS_CHECK(cublasSetStream(g.cublas, g.stream));
	// No TF32 in f32 products: the f32 path is the one compared against the CPU backend.
	CUBLAS_CHECK(cublasSetMathMode(g.cublas, CUBLAS_DEFAULT_MATH));
	CUBLAS_CHECK(cublasLtCreate(&g.cublaslt));
	g.ready = 1;
}

static void ready(void)
{
	if (!g.ready)
		cuda_init(-1);
}

void cuda_describe(char *buf, size_t n)
{
	ready();
	snprintf(buf, n, "%s (cuda:%d, %zu GiB, %d SMs)", g.name, g.index, (g.total_mem + (1u << 29)) >> 30,
		 g.sm_count);
}

cudaStream_t cuda_stream(void)
{
	ready();
	return g.stream;
}

cublasHandle_t cuda_cublas(void)
{
	ready();
	return g.cublas;
}

cublasLtHandle_t cuda_cublaslt(void)
{
	ready();
	return g.cublaslt;
}

void cuda_sync(void) { CUDA_CHECK(cudaStreamSynchronize(cuda_stream())); }

// ----------------------------------------------------------------------------
// memory

static void count_bytes(size_t add, size_t sub)
{
	g.live = g.live + add - sub;
	if (g.live > g.peak)
		g.peak = g.live;
}

// cudaMalloc or die naming the size, the device and what is free.
static void *device_malloc(size_t bytes, const char *what)
{
	void *p = NULL;
	cudaError_t err = cudaMalloc(&p, bytes);
	if (err != cudaSuccess) {
		(void)cudaGetLastError();   // an allocation failure is not sticky; clear it
		size_t free_b = 0, total_b = 0;
		(void)cudaMemGetInfo(&free_b, &total_b);
		die(EXIT_FAIL, "%s: out of memory on cuda:%d (%s): %zu bytes (%.2f GiB) wanted, %.2f GiB free of %.2f GiB "
			       "(%s)", what, g.index, g.name, bytes, bytes / 1073741824.0, free_b / 1073741824.0,
		    total_b / 1073741824.0, cudaGetErrorString(err));
	}
	return p;
}

void *cuda_alloc(size_t bytes)
{
	ready();
	size_t n = bytes ? bytes : 1;
	void *p = device_malloc(n, "ops_alloc");
	// Zero-filled (ops.h), queued like everything else: any later use of P is on the same stream.
	CUDA_CHECK(cudaMemsetAsync(p, 0, n, g.stream));
	if (g.n_allocs == g.cap_allocs) {
		g.cap_allocs = g.cap_allocs ? 2 * g.cap_allocs : 64;
		g.allocs = (struct allocation *)xrealloc(g.allocs, g.cap_allocs * sizeof *g.allocs);
	}
	g.allocs[g.n_allocs++] = {p, n};
	count_bytes(n, 0);
	return p;
}

void cuda_free(void *p)
{
	if (!p)
		return;
	for (size_t i = g.n_allocs; i-- > 0;) {
		if (g.allocs[i].p != p)
			continue;
		count_bytes(0, g.allocs[i].bytes);
		g.allocs[i] = g.allocs[--g.n_allocs];
		CUDA_CHECK(cudaFree(p));   // waits for the device: queued kernels may still use P
		return;
	}
	die(EXIT_FAIL, "ops_free: %p was not allocated by the CUDA backend", p);
}

size_t cuda_peak_bytes(void) { return g.peak; }

void *cuda_scratch(enum cuda_scratch_slot slot, size_t bytes)
{
	ready();
	struct allocation *s = &g.scratch[slot];
	if (s->p && s->bytes >= bytes)
		return s->p;
	// Grow by at least half again, in whole MiB, so a slowly growing demand does not reallocate every call.
	size_t want = bytes > s->bytes + s->bytes / 2 ? bytes : s->bytes + s->bytes / 2;
	want = want ? (want + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1) : (size_t)1 << 20;
	if (s->p) {
		CUDA_CHECK(cudaStreamSynchronize(g.stream));   // queued kernels may still read the old buffer
		CUDA_CHECK(cudaFree(s->p));
		count_bytes(0, s->bytes);
		s->p = NULL;
		s->bytes = 0;
	}
	s->p = device_malloc(want, "backend scratch");
	s->bytes = want;
	count_bytes(want, 0);
	return s->p;
}
