// rope.cu — rotary position embedding, rotate-half pairing (transformers apply_rotary_pos_emb), forward and
// backward (ops.h), in place.
//
// One thread per (token, frequency): the angle is positions[t] · inv_freq[i] in fp32, as transformers computes
// freqs (an fp32 product, autocast off), then cos and sin at full precision (sincosf, no fast-math), and the
// thread rotates the pair (i, i + HD/2) of every head of that token, so each cos/sin serves all H heads.
// Consecutive threads take consecutive i: every access of a warp is one contiguous run.  The rotation is
// computed in fp32 and rounded once to the activation dtype (transformers rounds cos/sin to it first).
// Backward is the rotation by the opposite angle (the rotation is orthogonal).
#include "core.cuh"

namespace {

template <typename T, bool BACKWARD>
__global__ void rope_kernel(T *x, const int32_t *positions, const float *inv_freq, int64_t n_tokens, int64_t H,
			    int64_t HD)
{
	int64_t half = HD / 2, n = n_tokens * half, stride = (int64_t)gridDim.x * blockDim.x;
	for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += stride) {
		int64_t t = k / half, i = k % half;
		float angle = (float)positions[t] * inv_freq[i];
		float s, c;
		sincosf(angle, &s, &c);
		if (BACKWARD)
			s = -s;
		T *row = x + t * H * HD;
		for (int64_t h = 0; h < H; h++, row += HD) {
			float x1 = to_float(row[i]), x2 = to_float(row[i + half]);
			row[i] = from_float<T>(x1 * c - x2 * s);
			row[i + half] = from_float<T>(x2 * c + x1 * s);
		}
	}
}

template <bool BACKWARD> void rope(struct tensor x, struct tensor positions, struct tensor inv_freq, const char *op)
{
	cuda_need_device(op, "x", x);
	cuda_need_dtype(op, "positions", positions, DTYPE_I32);
	cuda_need_dtype(op, "inv_freq", inv_freq, DTYPE_F32);
	int64_t T = x.dim[0], H = x.ndim > 1 ? x.dim[1] : 1, HD = x.ndim > 2 ? x.dim[2] : 1;
	if (x.ndim != 3 || HD % 2 != 0 || tensor_numel(positions) != T || tensor_numel(inv_freq) != HD / 2)
		die(EXIT_FAIL, "%s: x (%lld,%lld,%lld) with %lld positions and %lld frequencies (want (T,H,HD), HD even, "
			       "T positions, HD/2 frequencies)", op, (long long)T, (long long)H, (long long)HD,
		    (long long)tensor_numel(positions), (long long)tensor_numel(inv_freq));
	if (tensor_numel(x) == 0)
		return;
	with_act_type(x.dtype, op, "x", [&](auto tag) {
		using Tx = decltype(tag);
		rope_kernel<Tx, BACKWARD><<<cuda_blocks(T * (HD / 2), CUDA_BLOCK), CUDA_BLOCK, 0, cuda_stream()>>>(
			(Tx *)x.data, (const int32_t *)positions.data, (const float *)inv_freq.data, T, H, HD);
		CUDA_LAUNCHED();
	});
}

} // namespace

// x (T,H,HD) in place; positions (T) I32; inv_freq (HD/2) f32
extern "C" void cuda_rope_forward(struct tensor x, struct tensor positions, struct tensor inv_freq)
{
	rope<false>(x, positions, inv_freq, "rope_forward");
}

// dx (T,H,HD) in place
extern "C" void cuda_rope_backward(struct tensor dx, struct tensor positions, struct tensor inv_freq)
{
	rope<true>(dx, positions, inv_freq, "rope_backward");
}
