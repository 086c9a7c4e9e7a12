// lora.cu — the dense-masked adapted linear (lib/ops.h lora_forward / lora_backward; DESIGN §4): E experts of
// rank R stacked in A_all (E·R, C) and B_all (OC, E·R), two cuBLAS products per direction and one small kernel
// for the gates.  The math is lib/adapter_linear.c's:
//   forward   h = x·A_allᵀ;  hg = s·G⊙h (block e of h scaled by s·g_e);  y += hg·B_allᵀ
//   backward  dB += dyᵀ·hg;  dHg = dy·B_all;  dG_e += s·Σ_{j∈e} dHg_j·h_j;  dH = s·G⊙dHg;
//             dA += dHᵀ·x;  dx += dH·A_all
// A and B are fp32 masters; with bf16 activations the products read bf16 copies of them (SCRATCH_ADAPTER_0/2)
// and accumulate in fp32, and dA/dB are fp32 outputs of bf16 × bf16 products (beta = 1).  Every sum has a fixed
// order (cuBLAS products on one stream are reproducible; the gate kernel sums a token's R columns in order).
#include "adapter_util.cuh"

// ----------------------------------------------------------------------------
// gates

// hg (T, E·R) = s·G⊙h; G (T,E) f32 or NULL (every gate 1).
template <typename E>
__global__ void lora_gate_scale_kernel(E *hg, const E *h, const float *gates, int64_t T, int ER, int R, int n_exp,
				       float scale)
{
	int64_t n = T * ER;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
		int64_t t = i / ER;
		int j = (int)(i - t * ER);
		float g = gates ? scale * gates[t * n_exp + j / R] : scale;
		hg[i] = from_float<E>(g * to_float(h[i]));
	}
}

// One thread per (token, expert): dgates[t,e] += s·Σ_j dHg[t,eR+j]·h[t,eR+j] (j in order), and
// dH = s·g_e·dHg.  dHg is f32 (the product's fp32 output), dH the activation dtype.
template <typename E>
__global__ void lora_gate_backward_kernel(E *dH, float *dgates, const float *dHg, const E *h, const float *gates,
					  int64_t T, int n_exp, int R, float scale)
{
	int64_t n = T * n_exp;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
		// i = t·E + e, and block e of token t starts at column e·R: element i·R of the (T, E·R) matrices.
		const float *d = dHg + i * R;
		const E *hh = h + i * R;
		float acc = 0.0f, g = scale * (gates ? gates[i] : 1.0f);
		for (int j = 0; j < R; j++) {
			acc += d[j] * to_float(hh[j]);
			dH[i * R + j] = from_float<E>(g * d[j]);
		}
		if (dgates)
			dgates[i] += scale * acc;
	}
}

// ----------------------------------------------------------------------------
// launchers

struct lora_dims {
	int64_t T, C, OC, ER;
	int n_exp, R;
};

static struct lora_dims lora_check(const char *op, struct tensor x, struct tensor h, struct tensor A, struct tensor B,
				   struct tensor gates, struct tensor dgates)
{
	struct lora_dims d;
	need_tensor(A, DTYPE_F32, 0, op, "A");
	need_tensor(B, DTYPE_F32, 0, op, "B");
	need_tensor(gates, DTYPE_F32, 1, op, "gates");
	need_tensor(dgates, DTYPE_F32, 1, op, "dgates");
	if (!is_act_dtype(x.dtype) || h.dtype != x.dtype)
		die(EXIT_FAIL, "%s: x is %s and h %s (bf16 or f32, the same)", op, dtype_name(x.dtype),
		    dtype_name(h.dtype));
	d.T = x.dim[0];
	d.C = x.dim[1];
	d.ER = A.dim[0];
	d.OC = B.dim[0];
	d.n_exp = gates.data ? (int)gates.dim[1] : dgates.data ? (int)dgates.dim[1] : 1;
	if (A.dim[1] != d.C || B.dim[1] != d.ER || h.dim[0] != d.T || h.dim[1] != d.ER || d.n_exp < 1 ||
	    d.ER % d.n_exp != 0 || (gates.data && gates.dim[0] != d.T) || (dgates.data && dgates.dim[0] != d.T))
		die(EXIT_FAIL,
		    "%s: shapes do not match: x (%lld,%lld), A (%lld,%lld), B (%lld,%lld), h (%lld,%lld), %d experts",
		    op, (long long)x.dim[0], (long long)x.dim[1], (long long)A.dim[0], (long long)A.dim[1],
		    (long long)B.dim[0], (long long)B.dim[1], (long long)h.dim[0], (long long)h.dim[1], d.n_exp);
	d.R = (int)(d.ER / d.n_exp);
	return d;
}

// x (T,C), A (E·R,C), B (OC,E·R), gates (T,E) or NONE -> h (T,E·R), y (T,OC) +=
extern "C" void cuda_lora_forward(struct tensor y, struct tensor h, struct tensor x, struct tensor A, struct tensor B,
				  struct tensor gates, double scale)
{
	const char *op = "lora_forward";
	struct lora_dims d = lora_check(op, x, h, A, B, gates, TENSOR_NONE);
	if (y.dim[0] != d.T || y.dim[1] != d.OC)
		die(EXIT_FAIL, "%s: y is (%lld,%lld), expected (%lld,%lld)", op, (long long)y.dim[0],
		    (long long)y.dim[1], (long long)d.T, (long long)d.OC);
	if (d.T == 0)
		return;
	enum dtype at = x.dtype;
	const void *A_op = as_dtype(A, at, SCRATCH_ADAPTER_0, op);
	const void *B_op = as_dtype(B, at, SCRATCH_ADAPTER_2, op);
	// h (T,ER) = x (T,C) · Aᵀ
	gemm_rm(op, 0, 1, d.T, d.ER, d.C, 1.0f, x.data, at, d.C, A_op, at, d.C, 0.0f, h.data, h.dtype, d.ER);
	void *hg = cuda_scratch(SCRATCH_ADAPTER_1, (size_t)(d.T * d.ER) * dtype_size(at));
	unsigned grid = cuda_blocks(d.T * d.ER, 256);
	const float *g = (const float *)gates.data;
	if (at == DTYPE_BF16)
		lora_gate_scale_kernel<__nv_bfloat16><<<grid, 256, 0, cuda_stream()>>>(
		    (__nv_bfloat16 *)hg, (const __nv_bfloat16 *)h.data, g, d.T, (int)d.ER, d.R, d.n_exp, (float)scale);
	else
		lora_gate_scale_kernel<float><<<grid, 256, 0, cuda_stream()>>>(
		    (float *)hg, (const float *)h.data, g, d.T, (int)d.ER, d.R, d.n_exp, (float)scale);
	CUDA_LAUNCHED();
	// y (T,OC) += hg (T,ER) · Bᵀ
	gemm_rm(op, 0, 1, d.T, d.OC, d.ER, 1.0f, hg, at, d.ER, B_op, at, d.ER, 1.0f, y.data, y.dtype, d.OC);
}

// dy (T,OC) -> dx (T,C) +=, dA (E·R,C) +=, dB (OC,E·R) +=, dgates (T,E) += (dx, dgates may be NONE)
extern "C" void cuda_lora_backward(struct tensor dx, struct tensor dA, struct tensor dB, struct tensor dgates,
				   struct tensor dy, struct tensor x, struct tensor h, struct tensor A, struct tensor B,
				   struct tensor gates, double scale)
{
	const char *op = "lora_backward";
	struct lora_dims d = lora_check(op, x, h, A, B, gates, dgates);
	need_tensor(dA, DTYPE_F32, 1, op, "dA");
	need_tensor(dB, DTYPE_F32, 1, op, "dB");
	if (dy.dim[0] != d.T || dy.dim[1] != d.OC || dy.dtype != x.dtype || (dx.data && dx.dim[1] != d.C) ||
	    (dA.data && (dA.dim[0] != d.ER || dA.dim[1] != d.C)) ||
	    (dB.data && (dB.dim[0] != d.OC || dB.dim[1] != d.ER)))
		die(EXIT_FAIL, "%s: dy, dx, dA or dB does not match x (%lld,%lld), A (%lld,%lld), B (%lld,%lld)", op,
		    (long long)d.T, (long long)d.C, (long long)d.ER, (long long)d.C, (long long)d.OC, (long long)d.ER);
	if (d.T == 0)
		return;
	enum dtype at = x.dtype;
	size_t esz = dtype_size(at);
	const void *B_op = as_dtype(B, at, SCRATCH_ADAPTER_2, op);
	void *hg = cuda_scratch(SCRATCH_ADAPTER_1, (size_t)(d.T * d.ER) * esz);
	float *dHg = (float *)cuda_scratch(SCRATCH_ADAPTER_3, (size_t)(d.T * d.ER) * sizeof(float));
	unsigned grid = cuda_blocks(d.T * d.ER, 256);
	const float *g = (const float *)gates.data;
	if (dB.data) {
		// dB (OC,ER) += dyᵀ (OC,T) · hg (T,ER)
		if (at == DTYPE_BF16)
			lora_gate_scale_kernel<__nv_bfloat16>
			    <<<grid, 256, 0, cuda_stream()>>>((__nv_bfloat16 *)hg, (const __nv_bfloat16 *)h.data, g,
							      d.T, (int)d.ER, d.R, d.n_exp, (float)scale);
		else
			lora_gate_scale_kernel<float><<<grid, 256, 0, cuda_stream()>>>(
			    (float *)hg, (const float *)h.data, g, d.T, (int)d.ER, d.R, d.n_exp, (float)scale);
		CUDA_LAUNCHED();
		gemm_rm(op, 1, 0, d.OC, d.ER, d.T, 1.0f, dy.data, at, d.OC, hg, at, d.ER, 1.0f, dB.data, DTYPE_F32,
			d.ER);
	}
	// dHg (T,ER) = dy (T,OC) · B (OC,ER), in f32
	gemm_rm(op, 0, 0, d.T, d.ER, d.OC, 1.0f, dy.data, at, d.OC, B_op, at, d.ER, 0.0f, dHg, DTYPE_F32, d.ER);
	// dgates, and dH = s·G⊙dHg into the hg buffer (its product above is queued before on the same stream)
	void *dH = hg;
	unsigned ggrid = cuda_blocks(d.T * d.n_exp, 256);
	if (at == DTYPE_BF16)
		lora_gate_backward_kernel<__nv_bfloat16><<<ggrid, 256, 0, cuda_stream()>>>(
		    (__nv_bfloat16 *)dH, (float *)dgates.data, dHg, (const __nv_bfloat16 *)h.data, g, d.T, d.n_exp, d.R,
		    (float)scale);
	else
		lora_gate_backward_kernel<float><<<ggrid, 256, 0, cuda_stream()>>>(
		    (float *)dH, (float *)dgates.data, dHg, (const float *)h.data, g, d.T, d.n_exp, d.R, (float)scale);
	CUDA_LAUNCHED();
	// dA (ER,C) += dHᵀ (ER,T) · x (T,C)
	if (dA.data)
		gemm_rm(op, 1, 0, d.ER, d.C, d.T, 1.0f, dH, at, d.ER, x.data, at, d.C, 1.0f, dA.data, DTYPE_F32, d.C);
	// dx (T,C) += dH (T,ER) · A (ER,C)
	if (dx.data) {
		if (dx.dim[0] != d.T)
			die(EXIT_FAIL, "%s: dx has %lld rows, x %lld", op, (long long)dx.dim[0], (long long)d.T);
		const void *A_op = as_dtype(A, at, SCRATCH_ADAPTER_0, op);
		gemm_rm(op, 0, 0, d.T, d.C, d.ER, 1.0f, dH, at, d.ER, A_op, at, d.C, 1.0f, dx.data, dx.dtype, d.C);
	}
}
