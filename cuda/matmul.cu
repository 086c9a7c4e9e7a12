// matmul.cu — the linear layer (ops.h matmul_forward / matmul_backward), torch.nn.Linear semantics, through
// cuBLASLt (gemm.cuh).
//
// The activations (inp, out, dout, dinp) are bf16 or f32; the weight is whatever the checkpoint stored.  cuBLASLt
// multiplies two operands of one dtype, so a weight of another dtype is first converted to the activations' dtype
// in SCRATCH_WEIGHT_CAST (one extra pass over the weight, small next to the product for a batch of tokens).  The
// bias goes through the GEMM's epilogue, in the output's dtype.  Backward accumulates with beta = 1: dinp in its
// own dtype (one rounding per call), dweight in f32.  dbias is a column sum in a fixed order (below).
#include "gemm.cuh"

namespace {

// dbias (OC) += Σ_t dout (T,OC): block (32, DBIAS_ROWS) owns 32 columns; thread (x, y) adds rows y, y + DBIAS_ROWS,
// ... of column x in order, then thread (x, 0) adds the DBIAS_ROWS partial sums in order.  Fixed order, no atomics.
constexpr int DBIAS_ROWS = 16;

template <typename Tg, typename Tb> __global__ void dbias_kernel(Tb *dbias, const Tg *dout, int64_t T, int64_t OC)
{
	__shared__ float partial[DBIAS_ROWS][33];
	int64_t o = (int64_t)blockIdx.x * 32 + threadIdx.x;
	float s = 0.0f;
	if (o < OC) {
#pragma unroll 8
		for (int64_t t = threadIdx.y; t < T; t += DBIAS_ROWS)
			s += to_float(dout[t * OC + o]);
	}
	partial[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (threadIdx.y == 0 && o < OC) {
		float total = 0.0f;
		for (int y = 0; y < DBIAS_ROWS; y++)
			total += partial[y][threadIdx.x];
		dbias[o] = from_float<Tb>(to_float(dbias[o]) + total);
	}
}

int64_t last_dim(struct tensor t) { return t.ndim > 0 ? t.dim[t.ndim - 1] : 1; }

size_t round256(size_t n) { return (n + 255) & ~(size_t)255; }

} // namespace

// inp (T,C), weight (OC,C), bias (OC) or NONE -> out (T,OC)
extern "C" void cuda_matmul_forward(struct tensor out, struct tensor inp, struct tensor weight, struct tensor bias)
{
	const char *op = "matmul_forward";
	cuda_need_device(op, "out", out);
	cuda_need_device(op, "inp", inp);
	cuda_need_device(op, "weight", weight);
	cuda_need_device(op, "bias", bias);
	int64_t C = last_dim(inp), T = C ? tensor_numel(inp) / C : 0, OC = weight.dim[0];
	if (tensor_numel(weight) != OC * C || tensor_numel(out) != T * OC || (bias.data && tensor_numel(bias) != OC))
		die(EXIT_FAIL, "matmul_forward: shapes do not fit: inp (%lld,%lld), weight %lld elements for %lld outputs, "
			       "out %lld elements", (long long)T, (long long)C, (long long)tensor_numel(weight),
		    (long long)OC, (long long)tensor_numel(out));
	if (T == 0 || OC == 0)
		return;
	enum dtype ab = inp.dtype;
	size_t w_bytes = weight.dtype != ab ? round256((size_t)(OC * C) * dtype_size(ab)) : 0;
	size_t b_bytes = bias.data && bias.dtype != out.dtype ? (size_t)OC * dtype_size(out.dtype) : 0;
	char *cast = w_bytes + b_bytes ? (char *)cuda_scratch(SCRATCH_WEIGHT_CAST, w_bytes + b_bytes) : NULL;
	const void *w = cuda_as_dtype(weight.data, weight.dtype, OC * C, ab, cast);
	const void *b = bias.data ? cuda_as_dtype(bias.data, bias.dtype, OC, out.dtype, cast ? cast + w_bytes : NULL) : NULL;
	cuda_gemm_rowmajor(0, 1, T, OC, C, 1.0f, inp.data, C, w, C, ab, 0.0f, out.data, OC, out.dtype, b);
}

// dout (T,OC) -> dinp (T,C) += dout·weight; dweight (OC,C) += doutᵀ·inp; dbias (OC) += Σ_t dout
extern "C" void cuda_matmul_backward(struct tensor dinp, struct tensor dweight, struct tensor dbias,
				     struct tensor dout, struct tensor inp, struct tensor weight)
{
	const char *op = "matmul_backward";
	cuda_need_device(op, "dinp", dinp);
	cuda_need_device(op, "dweight", dweight);
	cuda_need_device(op, "dbias", dbias);
	cuda_need_device(op, "dout", dout);
	cuda_need_device(op, "inp", inp);
	cuda_need_device(op, "weight", weight);
	int64_t OC = last_dim(dout), T = OC ? tensor_numel(dout) / OC : 0;
	int64_t C = weight.dim[0] ? tensor_numel(weight) / weight.dim[0] : 0;
	if (weight.dim[0] != OC || (dinp.data && tensor_numel(dinp) != T * C) ||
	    (dweight.data && tensor_numel(dweight) != OC * C) || (dbias.data && tensor_numel(dbias) != OC) ||
	    (dweight.data && tensor_numel(inp) != T * C))
		die(EXIT_FAIL, "matmul_backward: shapes do not fit: dout (%lld,%lld), weight (%lld,%lld)", (long long)T,
		    (long long)OC, (long long)weight.dim[0], (long long)C);
	if (T == 0 || OC == 0)
		return;
	enum dtype ab = dout.dtype;
	if (dinp.data) {
		void *cast = weight.dtype != ab ? cuda_scratch(SCRATCH_WEIGHT_CAST, (size_t)(OC * C) * dtype_size(ab)) : NULL;
		const void *w = cuda_as_dtype(weight.data, weight.dtype, OC * C, ab, cast);
		cuda_gemm_rowmajor(0, 0, T, C, OC, 1.0f, dout.data, OC, w, C, ab, 1.0f, dinp.data, C, dinp.dtype, NULL);
	}
	if (dweight.data) {
		if (inp.dtype != ab)
			die(EXIT_FAIL, "matmul_backward: inp is %s but dout %s", dtype_name(inp.dtype), dtype_name(ab));
		cuda_gemm_rowmajor(1, 0, OC, C, T, 1.0f, dout.data, OC, inp.data, C, ab, 1.0f, dweight.data, C,
				   dweight.dtype, NULL);
	}
	if (dbias.data) {
		with_act_type(ab, op, "dout", [&](auto tg) {
			using Tg = decltype(tg);
			with_float_type(dbias.dtype, op, "dbias", [&](auto tb) {
				using Tb = decltype(tb);
				dim3 block(32, DBIAS_ROWS);
				dbias_kernel<Tg, Tb><<<(unsigned)((OC + 31) / 32), block, 0, cuda_stream()>>>(
					(Tb *)dbias.data, (const Tg *)dout.data, T, OC);
				CUDA_LAUNCHED();
			});
		});
	}
}
