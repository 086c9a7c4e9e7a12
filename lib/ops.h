// ops.h — the op interface of the model engine: every name the model, adapter and trainer code call to touch
// tensor data, one forward and one backward per op, dispatched on the device of the tensors (DESIGN §5).
//
// A tensor is a plain view (data pointer, dtype, device, up to 4 dims) that owns nothing: callers plan memory
// (one allocation per family, from ops_alloc) and hand out views.  Each name here is a small function in
// lib/ops.c that looks at the device of its first tensor argument and calls the backend's function of the same
// name with a prefix: cpu_NAME (lib/ops_cpu*.c, always built) or cuda_NAME (cuda/*.cu, built when nvcc is
// present; declared in lib/ops_cuda.h).  One binary holds both, so a test can run the same op on both and
// compare (tests/unit/test_backend_ops.c).  A CUDA tensor in a build without the CUDA backend is one clear error.
//
// Dtypes.  Frozen weights stay in their stored dtype (bf16, f16, f32): the CPU backend converts them to its
// compute type where it computes (a tile of rows at a time), the CUDA backend reads bf16/f16 directly.
// Activations are the backend's activation dtype (CPU: `real`; CUDA: bf16, or f32 with --dtype f32), with the
// statistics that need range (rstd, lse, losses) and everything of the adapter's optimizer — master parameters,
// gradients, AdamW moments — in f32 (f64 in the gradient-check build).  Integer side inputs (token ids,
// positions, document offsets, targets, top-k indices, counts) are DTYPE_I32 tensors on the same device.
//
// Conventions, as in llm.c's train_gpt2.c:
//   - shapes are spelled out on each declaration, row-major, last dim contiguous;
//   - forward writes its outputs (out = ...); backward ACCUMULATES (+=) into its gradient outputs, so the caller
//     zeroes gradients once and residual branches add up for free;
//   - an optional operand is TENSOR_NONE (data NULL) and is then skipped (no bias, a frozen weight whose
//     gradient is not wanted);
//   - scalars are double whatever the compute type; the backend rounds them to its own;
//   - a frozen base passes TENSOR_NONE for every weight gradient, so a base linear costs one product (dinp) in
//     backward (DESIGN §4);
//   - results are deterministic: the same inputs give the same bytes on the same backend, whatever the thread
//     count or scheduling (no floating-point atomics, fixed reduction orders);
//   - backends own their scratch memory; nothing in an op's signature depends on a thread count.
// Each backward is checked against finite differences in tests/unit/test_grad.c, and every op against the fp64
// build of the CPU backend (and CPU against CUDA) in tests/unit/test_backend_ops.c.
//
// Dimension letters: T tokens (packed, all documents together), C hidden, OC output features, NH query heads,
// NKV key/value heads (GQA: query head h reads kv head h / (NH/NKV)), HD head dim, F ffn width, V vocab,
// E experts of one adapted linear (routed + shared), N routed experts, R rank per expert, K top-k,
// NT tasks, D a contrastive projection's width, Q queue entries per expert.
#ifndef MEDMOE_OPS_H
#define MEDMOE_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The CPU backend's compute type: fp32 in the programs; a test binary compiled with -DMEDMOE_DOUBLE from the
// same sources (tests/unit/test_grad.c) runs the whole forward and backward in fp64, so finite differences can
// check every gradient to ~1e-7 instead of fp32's ~1e-3.
#ifdef MEDMOE_DOUBLE
typedef double real;
#define DTYPE_REAL DTYPE_F64
#else
typedef float real;
#define DTYPE_REAL DTYPE_F32
#endif

enum dtype { DTYPE_F32, DTYPE_BF16, DTYPE_F16, DTYPE_F64, DTYPE_I32 };
enum device { DEVICE_CPU, DEVICE_CUDA };

struct tensor {
	void *data;
	int64_t dim[4];
	int ndim;
	enum dtype dtype;
	enum device device;
};

#ifdef __cplusplus
#define TENSOR_NONE (tensor{})
#else
#define TENSOR_NONE ((struct tensor){0})
#endif

// CPU backend: warn once (stderr) when OpenBLAS runs kernels older than the CPU supports, with the
// OPENBLAS_CORETYPE value that fixes it.  model_load calls it.
void ops_cpu_check_blas(void);

size_t dtype_size(enum dtype t);
const char *dtype_name(enum dtype t);
const char *device_name(enum device d);

// ----------------------------------------------------------------------------
// views (no data is touched)

static inline struct tensor tensor_of(void *data, enum dtype dtype, enum device device, int ndim, int64_t d0,
				      int64_t d1, int64_t d2, int64_t d3)
{
	return (struct tensor){data, {d0, d1, d2, d3}, ndim, dtype, device};
}
// Host views of `real` arrays (the CPU backend's compute type), for tests and host-side code.
static inline struct tensor tensor1(real *data, int64_t d0)
{
	return tensor_of(data, DTYPE_REAL, DEVICE_CPU, 1, d0, 1, 1, 1);
}
static inline struct tensor tensor2(real *data, int64_t d0, int64_t d1)
{
	return tensor_of(data, DTYPE_REAL, DEVICE_CPU, 2, d0, d1, 1, 1);
}
static inline struct tensor tensor3(real *data, int64_t d0, int64_t d1, int64_t d2)
{
	return tensor_of(data, DTYPE_REAL, DEVICE_CPU, 3, d0, d1, d2, 1);
}
// Host view of an int32 array.
static inline struct tensor tensor_i32(int32_t *data, int64_t n)
{
	return tensor_of(data, DTYPE_I32, DEVICE_CPU, 1, n, 1, 1, 1);
}
static inline int64_t tensor_numel(struct tensor t)
{
	int64_t n = 1;
	for (int i = 0; i < t.ndim; i++)
		n *= t.dim[i];
	return t.data ? n : 0;
}
// The same data seen with other dims (numel unchanged, checked by the ops that care).
struct tensor tensor_reshape(struct tensor t, int ndim, int64_t d0, int64_t d1, int64_t d2);
// Rows r0 .. r0+n−1 of the first dimension (the rest unchanged).
struct tensor tensor_rows(struct tensor t, int64_t r0, int64_t n);
// Element OFFSET of T's data, seen as a tensor of NDIM dims (same dtype and device).
struct tensor tensor_at(struct tensor t, int64_t offset, int ndim, int64_t d0, int64_t d1, int64_t d2);

// ----------------------------------------------------------------------------
// devices and memory

// "cpu", "cuda", "cuda:N" -> device and index (-1: the default one); -1 when malformed.
int device_parse(const char *s, enum device *device, int *index);
// Whether this build and machine have DEVICE (no message; for tests that add a backend when present).
int device_available(enum device device);
// Make DEVICE usable (for CUDA: pick GPU INDEX, create the stream and the cuBLAS handle).  Dies with one clear
// line (exit 1) when this build has no such backend or the machine no such device.
void device_init(enum device device, int index);
// What DEVICE is, in words ("CPU, 16 threads", "NVIDIA H100 80GB HBM3 (cuda:0, 80 GiB)").
void device_describe(enum device device, char *buf, size_t n);
// Zero-filled memory on DEVICE (dies when out of memory, naming the size and the device); freed by ops_free.
void *ops_alloc(enum device device, size_t bytes);
void ops_free(enum device device, void *p);
// A tensor with its own memory (ops_alloc), for small and test allocations; tensor_free releases it.
struct tensor tensor_new(enum dtype dtype, enum device device, int ndim, int64_t d0, int64_t d1, int64_t d2);
void tensor_free(struct tensor t);
// Wait for every queued op on DEVICE (a no-op on the CPU); timing and host reads of results need it.
void ops_sync(enum device device);
// Peak bytes allocated through ops_alloc on DEVICE since the start (backend scratch included).
size_t ops_peak_bytes(enum device device);

// ----------------------------------------------------------------------------
// data movement and reductions

// dst = src, element by element: same numel; any two devices; float dtypes converted (round to nearest even),
// I32 only to I32.
void tensor_copy(struct tensor dst, struct tensor src);
void tensor_zero(struct tensor t);
void tensor_fill(struct tensor t, double value);
// t *= s (float dtypes)
void tensor_scale(struct tensor t, double s);
// inp (R,C), idx (M) I32 -> out (M,C): out[i] = inp[idx[i]]; the embedding lookup is this with wte (V,C).
void gather_rows(struct tensor out, struct tensor inp, struct tensor idx);
// inp (M,C), idx (M) -> out (R,C): out[idx[i]] += inp[i], i in order (repeated indices add up reproducibly);
// the backward of gather_rows.
void scatter_rows_add(struct tensor out, struct tensor inp, struct tensor idx);
// inp (M,C), idx (M) I32 of distinct rows -> out (R,C): out[idx[i]] = inp[i], converted to out's dtype; the other
// rows of out are left as they are (batched decoding writes each sequence's new key into its own cache slot).
void scatter_rows(struct tensor out, struct tensor inp, struct tensor idx);
// Σ t and Σ t², in double, in a fixed order.
double tensor_sum(struct tensor t);
double tensor_sumsq(struct tensor t);

// ----------------------------------------------------------------------------
// linear layer, torch.nn.Linear semantics: out = inp · weightᵀ + bias
// inp (T,C), weight (OC,C), bias (OC) or NONE -> out (T,OC)
// On the CPU a product of at most OPS_ROWWISE_MAX_ROWS rows (decoding) computes each row of out on its own, in
// an order that does not depend on T: a row gets the same bits alone or among others, which makes batched
// greedy decoding token-identical to decoding one sequence at a time.
#define OPS_ROWWISE_MAX_ROWS 64
void matmul_forward(struct tensor out, struct tensor inp, struct tensor weight, struct tensor bias);
// dout (T,OC) -> dinp (T,C) += dout·weight; dweight (OC,C) += doutᵀ·inp; dbias (OC) += Σ_t dout (each may be NONE)
void matmul_backward(struct tensor dinp, struct tensor dweight, struct tensor dbias, struct tensor dout,
		     struct tensor inp, struct tensor weight);

// ----------------------------------------------------------------------------
// RMSNorm with fp32 statistics (transformers LlamaRMSNorm): out = weight · x / sqrt(mean(x²) + eps), row by row.
// Also the Qwen3 per-head q/k norm: view q (T,NH,HD) as (T·NH, HD).
// inp (N,D), weight (D) -> out (N,D), rstd (N) f32/real (kept for backward; may be NONE)
void rmsnorm_forward(struct tensor out, struct tensor rstd, struct tensor inp, struct tensor weight, double eps);
// dout (N,D) -> dinp (N,D) +=, dweight (D) +=
void rmsnorm_backward(struct tensor dinp, struct tensor dweight, struct tensor dout, struct tensor inp,
		      struct tensor weight, struct tensor rstd);

// ----------------------------------------------------------------------------
// rotary position embedding, rotate-half pairing (dim j with j + HD/2), angle = positions[t] · inv_freq[j]
// computed in fp32: x' = x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] (transformers
// apply_rotary_pos_emb).
// x (T,H,HD) in place; positions (T) I32; inv_freq (HD/2) f32/real
void rope_forward(struct tensor x, struct tensor positions, struct tensor inv_freq);
// dx (T,H,HD) in place: the rotation is orthogonal, so backward rotates by the opposite angle
void rope_backward(struct tensor dx, struct tensor positions, struct tensor inv_freq);

// ----------------------------------------------------------------------------
// grouped-query attention, causal within documents: softmax(q·kᵀ / sqrt(HD)) · v, never holding (T,T) scores.
// The keys form one timeline of Tk tokens cut into n_docs documents by doc_offsets (n_docs+1 cumulative
// lengths, doc_offsets[0] = 0, doc_offsets[n_docs] = Tk; I32 on the tensors' device).  Query i sits at key
// index q_offset + i (q_offset = 0, Tq = Tk for a packed forward; q_offset = cached length for incremental
// decoding) and attends to the keys of its own document up to and including itself.
// q_rows (Tq) I32 or NONE: each query's key index given instead, in any order (a batched decoding step: one new
// token per KV-cache slot, the slots being the documents); q_offset is then an upper bound on the keys any
// query sees (its document's start to itself, inclusive), or 0 for Tk, which the CUDA backend sizes its key
// splits by.  Each query's result is the same bits whether it comes alone or with others.
// q (Tq,NH,HD), k (Tk,NKV,HD), v (Tk,NKV,HD) -> out (Tq,NH,HD), lse (NH,Tq) f32/real or NONE
// (lse: log-sum-exp of the scaled scores, kept so backward recomputes the probabilities block by block)
void attention_forward(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
		       struct tensor doc_offsets, struct tensor q_rows, int n_docs, int64_t q_offset);
// dout (Tq,NH,HD) -> dq, dk, dv += (FlashAttention-2's backward, Dao 2023, Algorithm 2)
void attention_backward(struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout,
			struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			struct tensor doc_offsets, int n_docs, int64_t q_offset);

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
// dout (N) -> da, db += (either may be NONE)
void residual_backward(struct tensor da, struct tensor db, struct tensor dout);

// ----------------------------------------------------------------------------
// LM head fused with cross-entropy, in tiles of rows × vocab entries so the (T,V) logits are never held: an
// online log-sum-exp per row (running max, rescaled sum) and loss_t = lse_t − x_t·weight[target_t].  Every row
// has a target (the caller gathers the rows in the loss mask first).
// x (T,C), weight (V,C), targets (T) I32 -> losses (T), lse (T) (f32/real)
void lmhead_ce_forward(struct tensor losses, struct tensor lse, struct tensor x, struct tensor weight,
		       struct tensor targets);
// dlosses (T): the gradient of the objective w.r.t. each loss_t (1/M for a mean).  dlogits = (softmax − onehot)
// · dloss, recomputed tile by tile from lse -> dx (T,C) +=, dweight (V,C) += (NONE for a frozen head)
void lmhead_ce_backward(struct tensor dx, struct tensor dweight, struct tensor x, struct tensor weight,
			struct tensor targets, struct tensor lse, struct tensor dlosses);
// The log-probability of chosen tokens at chosen rows, from lmhead_ce_forward's lse (option scoring):
// x (M,C), weight (V,C), lse (M), rows (P) I32, ids (P) I32 -> out (P) f32/real: x[rows_p]·weight[ids_p] − lse[rows_p],
// the dot product summed in the order lmhead_ce_forward sums a target's logit, so a target's own log-probability
// is exactly −(its loss).
void lmhead_logprob(struct tensor out, struct tensor x, struct tensor weight, struct tensor lse, struct tensor rows,
		    struct tensor ids);

// ----------------------------------------------------------------------------
// The adapter ops (adapter.h, DESIGN §4).  An adapted linear holds E experts of rank R stacked:
// A_all (E·R, C) = [A_1; …; A_E] and B_all (OC, E·R) = [B_1 … B_E]; its gates G (T,E) weigh the experts per
// token, and it adds  y += s · Σ_e G_e · B_e A_e x  as two products (dense-masked: an expert not chosen has
// gate 0).  Parameters, their gradients and the gates are f32/real whatever the activation dtype.

// Dropout with a reproducible mask: element i (flat index) is kept when u_i ≥ p, u_i = the top 53 bits of
// splitmix64(key + i) / 2^53, and kept elements are scaled by 1/(1−p); KEY folds (seed, step, layer, linear) so
// backward and recomputation draw the same mask.
// inp (N) -> out (N) (out may alias inp)
void dropout_forward(struct tensor out, struct tensor inp, double p, uint64_t key);
// dout (N) -> dinp (N) += dout ⊙ mask / (1−p)
void dropout_backward(struct tensor dinp, struct tensor dout, double p, uint64_t key);

// h = x·A_allᵀ; y += (s · G ⊙ h)·B_allᵀ, gate e scaling the R columns of expert e (G NONE: every gate 1).
// x (T,C), A (E·R,C), B (OC,E·R), gates (T,E) or NONE -> h (T,E·R) (kept for backward), y (T,OC) +=
void lora_forward(struct tensor y, struct tensor h, struct tensor x, struct tensor A, struct tensor B,
		  struct tensor gates, double scale);
// dy (T,OC) -> dx (T,C) +=, dA (E·R,C) +=, dB (OC,E·R) +=, dgates (T,E) += s · Σ_{j∈e} (dy·B_all)_j h_j
// (dx, dgates may be NONE)
void lora_backward(struct tensor dx, struct tensor dA, struct tensor dB, struct tensor dgates, struct tensor dy,
		   struct tensor x, struct tensor h, struct tensor A, struct tensor B, struct tensor gates,
		   double scale);

// MOELoRA's gate (one for the whole model, fed the task id only; MOELoRA peft_model.py Gate):
// emb (NT,D), wg (N,D) -> gate (NT,N) = softmax over N of emb·wgᵀ
void task_gate_forward(struct tensor gate, struct tensor emb, struct tensor wg);
// dgate (NT,N) -> demb (NT,D) +=, dwg (N,D) +=  (through the softmax: du = w ⊙ (dw − Σ w·dw))
void task_gate_backward(struct tensor demb, struct tensor dwg, struct tensor dgate, struct tensor gate,
			struct tensor emb, struct tensor wg);

// A token router (MING-MOE's MoLoRALinear switch): logits = x·wᵀ + b; the K largest, ties to the lower index,
// best first -> topk (T,K) I32; gates (T,E): softmax over the K kept logits at the chosen experts, 0 at the
// other routed ones, 1 at the shared experts E > N (always on); probs (T,N): the full softmax (for the
// load-balancing loss).
// x (T,C), w (N,C), b (N) -> gates (T,E), probs (T,N), topk (T,K)
void router_forward(struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x, struct tensor w,
		    struct tensor b);
// The router's part of the micro-batch statistics the Switch load-balancing loss N Σ_e f_e P_e (Fedus et al.
// 2021, eq. 4) is computed from: stats[e] = top-k assignments to expert e, stats[N+e] = Σ_t probs[t,e], in f64
// (the trainer sums them over the ranks that share a micro-batch; f_e = stats[e]/tokens, P_e = stats[N+e]/tokens).
// probs (T,N), topk (T,K) -> stats (2N) f64
void router_stats(struct tensor stats, struct tensor probs, struct tensor topk);
// dgates (T,E) (from lora_backward) and the load-balancing loss, weighted lb_weight in the objective ->
// dlogits on the kept experts g_k·(dG_k − Σ_kept g·dG) (top-k itself is piecewise constant), plus
// lb_weight·(N/n)·p ⊙ (f − Σ_e p_e f_e) with f_e = stats[e]/n the micro-batch's assignment shares over its n
// tokens; then dx (T,C) +=, dw (N,C) +=, db (N) += (dx may be NONE).  stats (2N) f64 as router_stats wrote it,
// summed over the micro-batch.
void router_backward(struct tensor dx, struct tensor dw, struct tensor db, struct tensor dgates, struct tensor gates,
		     struct tensor probs, struct tensor topk, struct tensor x, struct tensor w, struct tensor stats,
		     double n_tokens, double lb_weight);
// Expert load statistics: topk (T,K), tok_task (T) I32 -> counts (N) I32 += assignments per expert,
// task_counts (NT,N) I32 += per task of the token (either may be NONE)
void router_count(struct tensor counts, struct tensor task_counts, struct tensor topk, struct tensor tok_task);

// SparseDoctor's contrastive router loss over an expert memory queue (adapter.h has our reading): z = x·projᵀ,
// q = z/‖z‖; the keys are every filled entry of the per-expert rings queue (N,Q,D) f16 (entries 0 .. fill_e−1
// of ring e); a token whose top-1 expert's ring is empty is left out; each other token's loss is
// −log Σ_{k∈ring(top1)} e^{q·k/τ} / Σ_{all k} e^{q·k/τ}, and the loss of the micro-batch is their mean.
// x (T,C), proj (D,C), queue (N,Q,D), fill (N) I32, topk (T,K) -> q (T,D), znorm (T) (kept for backward),
// stats (2) f64: [Σ of the tokens' losses, the number of tokens with a positive] (summed over the micro-batch's
// parts by the trainer)
void contrastive_forward(struct tensor stats, struct tensor q, struct tensor znorm, struct tensor x,
			 struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk, double tau);
// coef · d(Σ of the tokens' losses)/d· -> dx (T,C) +=, dproj (D,C) += (the queue is detached; coef: the weight
// of one token's loss in the objective, e.g. λ / (tokens with a positive in the micro-batch); dx may be NONE)
void contrastive_backward(struct tensor dx, struct tensor dproj, struct tensor x, struct tensor q, struct tensor znorm,
			  struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk, double tau,
			  double coef);
// Push each token's q into its top-1 expert's ring, tokens in order (a later token overwrites an earlier one
// when a ring wraps within the batch): q (T,D), topk (T,K) -> queue (N,Q,D) f16, head (N) I32 (next write
// position), fill (N) I32 (entries filled, ≤ Q), all updated in place.
void queue_push(struct tensor queue, struct tensor head, struct tensor fill, struct tensor q, struct tensor topk);

// ----------------------------------------------------------------------------
// the optimizer

// AdamW as torch.optim.AdamW (Loshchilov & Hutter 2019, decoupled weight decay), step t 1-based:
//   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
//   p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps)
struct adamw_step {
	double lr, beta1, beta2, eps, weight_decay;
	uint64_t t;
};
// params, grads, m, v (n) f32/real: params, m, v updated in place
void adamw_update(struct tensor params, struct tensor grads, struct tensor m, struct tensor v,
		  const struct adamw_step *s);

#ifdef __cplusplus
}
#endif

#endif
