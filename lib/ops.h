// ops.h — the op interface of the model engine: one forward and one backward entry point per op.
//
// Every op works on `struct tensor`, a plain view (data pointer, up to 4 dims, device tag) that owns nothing:
// the caller plans memory (one allocation per family, see model.c) and hands out views.  Integer side inputs
// (token ids, positions, document offsets, targets) are int32 arrays on the same device as the tensors.
//
// Backends.  lib/ops_cpu.c is the fp32 reference (OpenBLAS sgemm for matrix products, OpenMP for the rest) and
// accepts only DEVICE_CPU views.  It runs one thread pool, OpenMP's: OpenBLAS is set to one thread and called
// from OpenMP threads (see sgemm_split there).  The CUDA backend (cuda/, a later issue) implements the same names and
// signatures for DEVICE_CUDA views, so model code reads the same on both; a test runs both on the same inputs.
//
// Conventions, as in llm.c's train_gpt2.c:
//   - shapes are spelled out on each declaration, row-major, last dim contiguous;
//   - forward writes its outputs (out = ...); backward ACCUMULATES (+=) into its gradient outputs, so the caller
//     zeroes gradients once per step and residual branches add up for free;
//   - an optional operand is passed as TENSOR_NONE (data NULL) and then skipped (no bias, a frozen weight whose
//     gradient is not wanted).
// Backward: a frozen base passes TENSOR_NONE for every weight gradient, so a base linear costs one product (dinp)
// in backward (DESIGN §4).  Each backward is checked against finite differences in tests/unit/test_grad.c.
//
// Dimension letters: T tokens (packed, all documents together), C hidden, OC output features, NH query heads,
// NKV key/value heads (GQA: query head h reads kv head h / (NH/NKV)), HD head dim, F ffn width, V vocab.
#ifndef MEDMOE_OPS_H
#define MEDMOE_OPS_H

#include <stdint.h>

// The scalar type of the math.  fp32 everywhere in the programs; a test binary compiled with -DMEDMOE_DOUBLE
// from the same sources (tests/unit/test_grad.c) runs the whole forward and backward in fp64, so finite
// differences can check every gradient to ~1e-7 instead of fp32's ~1e-3 (llm.c checks at fp32 tolerances).
#ifdef MEDMOE_DOUBLE
typedef double real;
#else
typedef float real;
#endif

enum device { DEVICE_CPU, DEVICE_CUDA };

struct tensor {
	real *data;
	int64_t dim[4];
	int ndim;
	enum device device;
};

#define TENSOR_NONE ((struct tensor){0})

// CPU backend: warn once (stderr) when OpenBLAS runs kernels older than the CPU supports, with the
// OPENBLAS_CORETYPE value that fixes it.  model_load calls it.
void ops_cpu_check_blas(void);

static inline struct tensor tensor1(real *data, int64_t d0)
{
	return (struct tensor){data, {d0, 1, 1, 1}, 1, DEVICE_CPU};
}
static inline struct tensor tensor2(real *data, int64_t d0, int64_t d1)
{
	return (struct tensor){data, {d0, d1, 1, 1}, 2, DEVICE_CPU};
}
static inline struct tensor tensor3(real *data, int64_t d0, int64_t d1, int64_t d2)
{
	return (struct tensor){data, {d0, d1, d2, 1}, 3, DEVICE_CPU};
}
static inline int64_t tensor_numel(struct tensor t)
{
	int64_t n = 1;
	for (int i = 0; i < t.ndim; i++)
		n *= t.dim[i];
	return t.data ? n : 0;
}

// A general matrix product on the backend's thread pool (what the adapter layers build on):
// C (M,N) = alpha · op(A) · op(B) + beta · C; op(A) = A (M,K) or, with a_trans, Aᵀ of A (K,M);
// op(B) = B (K,N) or, with b_trans, Bᵀ of B (N,K).  Leading dimensions in elements.  Deterministic: the
// result does not depend on the number of threads.
void ops_gemm(int a_trans, int b_trans, int64_t M, int64_t N, int64_t K, real alpha, const real *A, int64_t lda,
	      const real *B, int64_t ldb, real beta, real *C, int64_t ldc);

// ----------------------------------------------------------------------------
// token embedding
// ids (T), wte (V,C) -> out (T,C)
void embedding_forward(struct tensor out, const int32_t *ids, struct tensor wte);
// dout (T,C) -> dwte (V,C) += rows scattered by ids
void embedding_backward(struct tensor dwte, struct tensor dout, const int32_t *ids);

// ----------------------------------------------------------------------------
// linear layer, torch.nn.Linear semantics: out = inp · weightᵀ + bias
// inp (T,C), weight (OC,C), bias (OC) or NONE -> out (T,OC)
void matmul_forward(struct tensor out, struct tensor inp, struct tensor weight, struct tensor bias);
// dout (T,OC) -> dinp (T,C) += dout·weight; dweight (OC,C) += doutᵀ·inp; dbias (OC) += Σ_t dout (each may be NONE)
void matmul_backward(struct tensor dinp, struct tensor dweight, struct tensor dbias, struct tensor dout,
		     struct tensor inp, struct tensor weight);

// ----------------------------------------------------------------------------
// RMSNorm in fp32 (transformers LlamaRMSNorm): out = weight · x / sqrt(mean(x²) + eps), row by row.
// Also the Qwen3 per-head q/k norm: view q (T,NH,HD) as (T·NH, HD).
// inp (N,D), weight (D) -> out (N,D), rstd (N) (kept for backward)
void rmsnorm_forward(struct tensor out, struct tensor rstd, struct tensor inp, struct tensor weight, real eps);
// dout (N,D) -> dinp (N,D) +=, dweight (D) +=
void rmsnorm_backward(struct tensor dinp, struct tensor dweight, struct tensor dout, struct tensor inp,
		      struct tensor weight, struct tensor rstd);

// ----------------------------------------------------------------------------
// rotary position embedding, rotate-half pairing (dim j with j + HD/2), angle = positions[t] · inv_freq[j]:
// x' = x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] (transformers apply_rotary_pos_emb).
// x (T,H,HD) in place; positions (T); inv_freq (HD/2)
void rope_forward(struct tensor x, const int32_t *positions, struct tensor inv_freq);
// dx (T,H,HD) in place: the rotation is orthogonal, so backward rotates by the opposite angle
void rope_backward(struct tensor dx, const int32_t *positions, struct tensor inv_freq);

// ----------------------------------------------------------------------------
// grouped-query attention, causal within documents: softmax(q·kᵀ / sqrt(HD)) · v.
// The keys form one timeline of Tk tokens cut into n_docs documents by doc_offsets (n_docs+1 cumulative
// lengths, doc_offsets[0] = 0, doc_offsets[n_docs] = Tk).  Query i sits at key index q_offset + i
// (q_offset = 0, Tq = Tk for a packed forward; q_offset = cached length for incremental decoding) and attends
// to the keys of its own document up to and including itself.
// With a scratch (P, QB, ≥Tk), P ≥ the number of OpenMP threads, the scores of QB queries at a time are computed
// as matrix products (prefill, training); with TENSOR_NONE each query streams its keys through an online softmax
// (decoding a few tokens).
// q (Tq,NH,HD), k (Tk,NKV,HD), v (Tk,NKV,HD), scratch (P,QB,≥Tk) or NONE -> out (Tq,NH,HD), lse (NH,Tq)
// (lse: log-sum-exp of the scaled scores, kept so backward can recompute the probabilities without (NH,T,T))
void attention_forward(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
		       const int32_t *doc_offsets, int n_docs, int64_t q_offset, struct tensor scratch);
// dout (Tq,NH,HD) -> dq, dk, dv += (the probabilities are recomputed from q, k and lse, block by block as
// in FlashAttention-2's backward; scratch is allocated per call, (2, QB, Tk) per thread)
void attention_backward(struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout,
			struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			const int32_t *doc_offsets, int n_docs, int64_t q_offset);

// ----------------------------------------------------------------------------
// SwiGLU: out = silu(gate) · up, silu(x) = x / (1 + e^−x)
// gate (T,F), up (T,F) -> out (T,F)
void swiglu_forward(struct tensor out, struct tensor gate, struct tensor up);
// dout (T,F) -> dgate, dup +=
void swiglu_backward(struct tensor dgate, struct tensor dup, struct tensor dout, struct tensor gate,
		     struct tensor up);

// ----------------------------------------------------------------------------
// residual add: a (N), b (N) -> out (N) (out may alias a or b)
void residual_forward(struct tensor out, struct tensor a, struct tensor b);
// dout (N) -> da, db +=
void residual_backward(struct tensor da, struct tensor db, struct tensor dout);

// ----------------------------------------------------------------------------
// LM head fused with cross-entropy, tiled so the (T,V) logits are never held: logits of TB rows × VC vocab
// entries at a time go through an online log-sum-exp (running max and rescaled sum, as in flash attention),
// and loss_t = lse_t − x_t·weight[target_t].  Every row has a target (the caller gathers the rows in the loss
// mask first).  The tile sizes are scratch's dims.
// x (T,C), weight (V,C), targets (T), scratch (TB,VC) -> losses (T), lse (T)
void lmhead_ce_forward(struct tensor losses, struct tensor lse, struct tensor x, struct tensor weight,
		       const int32_t *targets, struct tensor scratch);
// dlosses: the gradient of the objective w.r.t. each loss_t (1/M for a mean).  dlogits = (softmax − onehot) ·
// dloss recomputed tile by tile -> dx (T,C) +=, dweight (V,C) += (NONE for a frozen head)
void lmhead_ce_backward(struct tensor dx, struct tensor dweight, struct tensor x, struct tensor weight,
			const int32_t *targets, struct tensor lse, struct tensor dlosses, struct tensor scratch);

#endif
