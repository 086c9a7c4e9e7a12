// adapter.h — the trainable adapters of DESIGN §4 (lora, moelora, mingmoe, sparsedoctor) on a frozen model.
//
// An adapted linear computes y = W x + s Σ_e g_e B_e A_e x.  Every expert of one linear lives in two stacked
// matrices, A_all = [A_1; …; A_E] (E·r, d_in) and B_all = [B_1 … B_E] (d_out, E·r), so the adapter costs two
// products whatever the routing (dense-masked, DESIGN §4): H = x·A_allᵀ, scale H's block e by s·g_e (0 for an
// expert not chosen), y += (s·G⊙H)·B_allᵀ.  adapter_linear_forward / _backward are the op-style entry points a
// grouped path can replace.  The gates g:
//   lora          one expert, g = 1;
//   moelora       g = softmax(W_g · E[task]) (one gate for the whole model, fed only the token's task id);
//                 rank r is the total, split r/N per expert, s = α/r with the total r (MOELoRA's mmoelora.py);
//   mingmoe       attention linears: plain LoRA; MLP linears: a router Linear(d_in, N) with bias on the linear's
//                 input, top-k of its logits, softmax over the kept logits; optional shared experts with g = 1
//                 (MING dev branch); optional Switch load-balancing loss N Σ_e f_e P_e (f_e: share of the top-k
//                 assignments, P_e: mean router probability), averaged over the routed linears;
//   sparsedoctor  mingmoe routing plus a contrastive router loss (our reading, DESIGN §4): per token
//                 q = normalize(P x) with a trainable projection P (proj, d_in) per routed linear; the keys are a
//                 per-expert FIFO memory queue of past q's (detached); the positives are the entries of the
//                 token's top-1 expert; loss = −log Σ_pos e^{q·k/τ} / Σ_all e^{q·k/τ}, mean over the tokens
//                 that have a positive, averaged over the routed linears, weighted λ.  The queue entries are
//                 stored in half precision (2 bytes per value), the scores computed in the working precision.
//                 Its gradient reaches the projection only: the router is supervised through the choice of the
//                 positive expert (its top-1), which is piecewise constant.
// Dropout (on x before A, one mask per linear shared by its experts — the MOELoRA code draws one per expert;
// documented deviation) applies to the non-routed linears: MING's routed training path applies none.
// Masks come from a hash of (seed, step, layer, linear, element), so recomputation and resume reproduce them.
//
// Memory: one allocation per family — params, grads, AdamW m, v — all with the same layout; each tensor is an
// offset into them.  Activations (per layer and linear, for up to `cap` tokens) are another.  Every step of an
// adapted linear is an op of ops.h on the adapter's device (adapter_place): the host arrays are the adapter's
// files' side (initialisation, saving, loading, merging), kept in step by adapter_to_device / adapter_to_host.
//
// Tensor names in RUN/adapter.safetensors (F32), l the layer, P the module path "model.layers.l.self_attn.q_proj"
// (…o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj):
//   lora / mingmoe attention: base_model.model.P.lora_A.weight (r, d_in), .lora_B.weight (d_out, r) — PEFT's names;
//   experts: base_model.model.P.experts.E.lora_A.weight, .lora_B.weight; shared experts: ….shared.S.lora_A.weight…;
//   routers: base_model.model.P.router.weight (N, d_in), .router.bias (N);
//   sparsedoctor projection: base_model.model.P.contrastive_proj.weight (proj, d_in);
//   moelora gate: moelora.task_embedding.weight (tasks, task_emb), moelora.gate.weight (N, task_emb).
#ifndef MEDMOE_ADAPTER_H
#define MEDMOE_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

enum adapter_method { ADAPTER_LORA, ADAPTER_MOELORA, ADAPTER_MINGMOE, ADAPTER_SPARSEDOCTOR };
enum adapter_target { TGT_Q, TGT_K, TGT_V, TGT_O, TGT_GATE, TGT_UP, TGT_DOWN, N_TARGETS };

struct adapter_config {
	enum adapter_method method;
	int experts;          // N routed (mingmoe, sparsedoctor) or gated (moelora) experts
	int rank;             // moelora: total rank (r/N per expert); otherwise per expert
	double alpha;
	int rslora;           // s = α/√r instead of α/r
	int top_k;
	unsigned targets;     // bit per enum adapter_target
	double dropout;
	int task_emb;         // moelora task embedding size
	int n_tasks;          // rows of the task embedding (task ids 0 .. n_tasks−1)
	double lb_coef;       // load-balancing loss weight (0: off)
	int shared_experts;   // always-on experts next to the routed ones
	double con_tau, con_lambda;
	int con_proj, con_queue;   // projection size, queue entries per expert
	uint64_t seed;        // initialisation and dropout
};

// The reference defaults of DESIGN §4 for METHOD (n_tasks left as 1).
void adapter_config_preset(struct adapter_config *c, enum adapter_method method);
const char *adapter_method_name(enum adapter_method m);
int adapter_method_parse(const char *s, enum adapter_method *m);         // -1 when unknown
int adapter_targets_parse(const char *s, unsigned *mask);                // "q,k,v,o,gate,up,down"; -1 bad
void adapter_targets_format(unsigned mask, char *buf, size_t n);
const char *adapter_target_name(enum adapter_target t);                  // "q_proj", ...

enum slot_kind { SLOT_NONE, SLOT_LORA, SLOT_TASK, SLOT_ROUTED };

// One adapted linear: where its tensors sit in the families, and its activations for the last forward.
struct adapter_slot {
	enum slot_kind kind;
	int n_exp;            // experts in the stacked matrices (routed: N routed then the shared ones)
	int n_routed;         // N (SLOT_ROUTED), else 0
	int routed_index;     // 0 .. n_routed_slots−1 (SLOT_ROUTED): its row of loads, queue positions
	size_t off_stats;     // routed: into the adapter's stats (router's 2N, then the contrastive loss's 2)
	int r;                // rank per expert
	int64_t d_in, d_out;
	double scale;
	size_t off_A, off_B, off_Wr, off_br, off_P;   // into params/grads/m/v
	size_t off_queue;     // sparsedoctor: into queue, its (N, con_queue, con_proj) rings
	int32_t *q_head, *q_fill;   // (N) host: next write position, entries filled (into queue_pos)
	int32_t *load;        // (N) host: top-k assignments counted this step (into loads)
	// activations (device), `cap` rows
	struct tensor H;      // (cap, n_exp·r) act: x·A_allᵀ
	struct tensor G;      // (cap, n_exp) gates
	struct tensor probs;  // (cap, N) full router softmax (routed)
	struct tensor topk;   // (cap, k) i32 chosen experts, best first (routed)
	struct tensor q;      // (cap, proj) normalized contrastive queries (sparsedoctor)
	struct tensor znorm;  // (cap) ‖P x‖ (sparsedoctor)
};

// The adapter's tensors on its device.  On the CPU they are views of the host arrays (nothing to copy); on a
// GPU, separate allocations kept in step with the host by adapter_to_device / adapter_to_host.
struct adapter_device {
	enum device device;
	enum dtype act_dtype;         // the model's activation dtype (the adapter's h and dropout scratch)
	void *mem, *act_mem;          // the GPU families; the activations (every device)
	struct tensor params, grads, m, v;   // (n_params) real
	struct tensor queue;          // (n_queue) f16
	struct tensor queue_pos;      // (n_routed_slots·2N) i32: each routed slot's head (N) then fill (N)
	struct tensor loads;          // (n_routed_slots·N + n_tasks·N) i32: per slot, then per task
	struct tensor stats;          // (n_stats) f64: the micro-batch statistics (struct adapter's stats)
	struct tensor stats_scratch;  // (2) f64: where a recomputed forward's statistics go (they count once)
	struct tensor task_gate;      // (n_tasks, N) moelora gate weights
	struct tensor dtask_gate;     // (n_tasks, N) their gradient, accumulated over the linears
	struct tensor tok_task;       // (cap) i32 task id of each token
	struct tensor x_drop;         // (cap, max d_in) act: x with dropout
	struct tensor dx_drop;        // (cap, max d_in) act: the gradient w.r.t. it
	struct tensor dgates;         // (cap, max n_exp) real: a linear's gate gradients
	int32_t *host_task;           // (cap) host staging of tok_task
};

struct adapter {
	struct adapter_config cfg;
	int n_layers;
	int64_t dims[N_TARGETS][2];   // d_in, d_out per target
	struct adapter_slot *slots;   // [l·N_TARGETS + target]
	size_t n_params;
	// host families (on the CPU also the device's): params, grads, AdamW m, v — one allocation
	real *params, *grads, *adam_m, *adam_v;
	size_t off_E, off_Wg;         // moelora gate
	uint16_t *queue;              // sparsedoctor queues, all slots, IEEE half precision (DESIGN §4)
	size_t n_queue;
	int32_t *queue_pos;           // (n_routed_slots·2N) slots' q_head, q_fill
	int32_t *loads;               // (n_routed_slots·N) slots' load, then task_load
	int32_t *task_load;           // (n_tasks, N) top-k assignments per task this step
	// The micro-batch's statistics, which several ranks may share (each forwards a part of it), f64: [0] its
	// tokens, then per routed slot at off_stats the top-k assignments per expert (N), the router probabilities
	// summed per expert (N), the contrastive loss summed over its tokens and the number of those tokens.  A
	// training forward writes its own tokens' values (on the device); the trainer sums them over the ranks before
	// backward (trainer_dist.c); backward and adapter_aux_loss read them, so the objective and its gradient are
	// those of the whole micro-batch however it is split.
	double *stats;
	size_t n_stats;
	int64_t tok_offset;           // tokens of the micro-batch before this forward's (dropout masks by position)
	real *task_gate;              // (n_tasks, N) host copy of the moelora gate (adapter_loads_to_host)
	int n_routed_slots;
	struct adapter_device dev;
	// per forward
	int64_t cap, T;
	int training, recomputing;
	uint64_t step;                // dropout stream
	double grad_scale;            // weight of this micro-batch in the objective (set by model_train_backward)
};

// A fresh adapter for a model with the given geometry (dims[t] = {d_in, d_out}), initialised from cfg.seed
// (A Kaiming-uniform(a=√5) or N(0, 0.01) for moelora, B = 0, routers as torch.nn.Linear, E ~ N(0,1)).
struct adapter *adapter_new(const struct adapter_config *cfg, int n_layers, const int64_t dims[N_TARGETS][2]);
void adapter_free(struct adapter *a);

// The tensors by name, in file order: for saving, loading and tests.  F(name, ndim, shape, data, …): data points
// into params (or grads when GRADS) for contiguous tensors; B blocks of experts are strided and go through
// adapter_tensor_copy.
struct adapter_tensor {
	char name[256];
	int ndim;
	int64_t shape[2];
	size_t off;           // into params
	int64_t ld;           // row stride in params (== shape[1] unless a block of B_all)
};
size_t adapter_tensors(const struct adapter *a, struct adapter_tensor **out);   // caller frees *out
// Copy tensor T of FAMILY (params, grads, …) into OUT (shape[0]·shape[1] floats), or back with to_family.
void adapter_tensor_get(const struct adapter_tensor *t, const real *family, float *out);
void adapter_tensor_set(const struct adapter_tensor *t, real *family, const float *in);

// Put A's tensors on DEVICE (a fresh adapter is on the CPU), with activations in ACT_DTYPE there.
void adapter_place(struct adapter *a, enum device device, enum dtype act_dtype);
// Copy the host families (params, AdamW moments, queues and their positions) to the device, or back (before
// saving).  No-ops on the CPU.
void adapter_to_device(struct adapter *a);
void adapter_to_host(struct adapter *a);
// This step's expert loads (each slot's load, task_load) and the moelora gate (task_gate) into their host
// arrays.
void adapter_loads_to_host(struct adapter *a);
// The micro-batch statistics between the device and the host array (no-ops on the CPU).  The device's are the
// ones that count: the trainer reads them, sums them over the ranks and writes the sums back before backward,
// which (like adapter_aux_loss) reads them again.
void adapter_stats_to_host(struct adapter *a);
void adapter_stats_to_device(struct adapter *a);

// Make room for the activations of T tokens (adapter_begin calls it).
void adapter_plan_acts(struct adapter *a, int64_t T);
// Per forward: make room for T tokens and set each token's task id from the host array TOK_TASK (T), or every
// token to DEFAULT_TASK when it is NULL; a task id outside the table is exit 65.  moelora: the gate of every
// task is computed here.
void adapter_begin(struct adapter *a, int64_t T, const int32_t *tok_task, int default_task);
// y (T,d_out) += adapter(x (T,d_in)) for linear TGT of layer L; no-op where that linear has no adapter.
void adapter_linear_forward(struct adapter *a, int l, enum adapter_target tgt, struct tensor y, struct tensor x);
// dx (T,d_in) += …, parameter gradients += …, given dy (T,d_out) and the forward's x.
void adapter_linear_backward(struct adapter *a, int l, enum adapter_target tgt, struct tensor dx, struct tensor dy,
			     struct tensor x);
// After every linear's backward: the moelora gate's gradient (softmax, W_g, E).
void adapter_backward_finish(struct adapter *a);
// The auxiliary losses of the micro-batch as they enter the objective (already weighted: lb_coef·mean,
// λ·mean), and unweighted means in *lb / *con (when not NULL), from the statistics (the device's, read first).
double adapter_aux_loss(struct adapter *a, double *lb, double *con);
// After the optimizer step: push this forward's contrastive queries into the memory queues.
void adapter_queue_push(struct adapter *a);
// Push rows of Q (n, con_proj) into routed slot S's rings, row i to the ring of expert TOP[i,0] (n, ≥1), in
// row order (trainer_dist.c pushes every rank's entries, in rank order, on every rank).
void adapter_queue_push_rows(struct adapter *a, const struct adapter_slot *s, struct tensor q, struct tensor top);
// Entry I of expert E's ring in routed slot S (con_proj values) in the host copy, through half precision
// (adapter_to_host / adapter_to_device move it).
void adapter_queue_get(const struct adapter *a, const struct adapter_slot *s, int e, int64_t i, real *out);
void adapter_queue_set(struct adapter *a, const struct adapter_slot *s, int e, int64_t i, const real *v);
void adapter_zero_grads(struct adapter *a);
void adapter_zero_loads(struct adapter *a);

#endif
