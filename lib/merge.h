// merge.h — a trained adapter folded into its base: a plain Hugging Face checkpoint, or a PEFT LoRA adapter.
//
// An adapted linear computes y = W x + s Σ_e g_e B_e A_e x (adapter.h).  Where every gate g_e is a constant —
// plain LoRA (g = 1), a moelora task (g = softmax(W_g · E[task]), fixed per task), the attention LoRA of
// mingmoe/sparsedoctor — the delta is itself a LoRA of rank R = n_exp·r:
//   A_cat = [A_1; …; A_N] (R, d_in),  B_cat = [g_1 B_1 … g_N B_N] (d_out, R),  Δ = s · B_cat · A_cat,
// so the merged weight is W' = W + s B_cat A_cat (what PEFT's merge computes, research/engineering.md §4.2) and
// the PEFT export writes A_cat, B_cat with r = R and lora_alpha = α: PEFT's scaling α/R (α/√R with use_rslora)
// is then exactly ours, since s already uses the total rank (moelora: r is the total, r/N per expert).
// Token-routed experts (router top-k) depend on the token and cannot be folded into W: those linears are refused
// unless the caller asks for the attention-only split, which writes the merged checkpoint plus an experts-only
// adapter (routed slots and their routers, nothing else) whose base identity is that merged checkpoint.
//
// The merged checkpoint: every tensor of the base in its own dtype (bf16 stays bf16: W' is summed in double,
// rounded to the nearest fp32, then to the nearest bf16 — the same bytes whatever the thread count); the base's
// other files copied (tokenizer, generation config, …); config.json with a "medmoe_merged" provenance object
// added (so its sha256 — the identity adapters check — differs from the base's: an adapter for the base is
// refused by the merged model and vice versa); sharded in the base's tensor name order into
// model-0000k-of-0000n.safetensors with model.safetensors.index.json when the tensors exceed max_shard bytes
// (greedy packing, as huggingface_hub's split_torch_state_dict_into_shards).
#ifndef MEDMOE_MERGE_H
#define MEDMOE_MERGE_H

#include <stdint.h>

#include "adapter.h"

struct model;

// 1 when SLOT's delta is the same for every token (lora, moelora, the attention LoRA of the routed methods).
int merge_slot_mergeable(const struct adapter_slot *s);
// The LoRA factors of mergeable slot S for moelora task TASK (ignored otherwise): A (R, d_in), B (d_out, R),
// R = s->n_exp·s->r, with Δ = s->scale · B · A.  The moelora gate must be current (adapter_begin computes it).
void merge_slot_factors(const struct adapter *a, const struct adapter_slot *s, int task, float *A, float *B);
// W (d_out, d_in) += s->scale · B · A for mergeable slot S.
void merge_slot_apply(const struct adapter *a, const struct adapter_slot *s, int task, float *W);

enum merge_output { MERGE_CHECKPOINT, MERGE_PEFT };

struct merge_opts {
	const char *base;          // Hugging Face checkpoint directory
	const char *run;           // adapter run directory (adapter.safetensors + adapter_config.json)
	const char *out;
	const char *task;          // moelora: the task to merge
	int all_tasks;             // moelora: OUT/TASK/ per task
	int peft;                  // a PEFT adapter instead of a checkpoint
	int attention_only;        // mingmoe/sparsedoctor: OUT/model (merged attention) + OUT/experts (adapter)
	int force;                 // replace an existing OUT
	uint64_t max_shard;        // bytes per safetensors shard
};

// Everything merge-adapters does.  Bad input (another base, unknown task, a damaged adapter, routed experts
// without attention_only) dies with exit 65 before OUT is created; OUT appears complete or not at all.
void merge_run(const struct merge_opts *o);

// "5GB" (10^9), "500MiB" (2^20), "123" (bytes), as transformers' max_shard_size; -1 when malformed.
int merge_parse_size(const char *s, uint64_t *bytes);

#endif
