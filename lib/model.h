// model.h — a LLaMA / Qwen2 / Qwen3 decoder, loaded from a Hugging Face directory, run on a device.
//
// model_load reads DIR/config.json (model_config.h) and DIR's safetensors (one file or an index with shards).
// Every tensor the architecture needs must be there with exactly the expected shape: a missing one is named, a
// wrong shape is named with both shapes (exit 65).  The frozen weights keep their stored dtype: on the CPU they
// stay in the memory-mapped files (a bf16 checkpoint costs its file size, and the CPU backend converts a tile
// at a time where it computes); on a GPU they are copied into one device allocation (bf16/f16 as stored; f32
// becomes bf16 unless the weights dtype asks for f32).
//
// Reading the model is reading model_layer_forward in model.c: embedding, then per layer
//   rmsnorm → q,k,v projections (+bias) → [Qwen3: per-head q/k rmsnorm] → rope → attention → o_proj → residual
//   → rmsnorm → gate,up → swiglu → down → residual,
// then the final rmsnorm and the LM head, fused with cross-entropy over the loss mask so the (T,V) logits are
// only materialised when a caller asks for them.  Every step is an op of ops.h, so the same code runs on each
// backend.
//
// Memory is planned (tensor_plan.h): the activations are one allocation per dtype family sized for the longest
// batch seen so far, so a training or evaluation loop with a fixed batch size allocates nothing per step.  One
// model runs one forward at a time.
#ifndef MEDMOE_MODEL_H
#define MEDMOE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model_config.h"
#include "ops.h"

// One layer's frozen weights; NONE where the architecture has no such tensor (no bias, no q/k norm).
struct layer_weights {
	struct tensor ln1;              // (C)        input_layernorm
	struct tensor wq, bq;           // (NH*HD,C), (NH*HD)
	struct tensor wk, bk;           // (NKV*HD,C), (NKV*HD)
	struct tensor wv, bv;           // (NKV*HD,C), (NKV*HD)
	struct tensor wo, bo;           // (C,NH*HD), (C)
	struct tensor q_norm, k_norm;   // (HD)       Qwen3
	struct tensor ln2;              // (C)        post_attention_layernorm
	struct tensor w_gate, w_up;     // (F,C)
	struct tensor w_down;           // (C,F)
};

struct model_weights {
	struct tensor wte;              // (V,C)      model.embed_tokens.weight
	struct tensor ln_f;             // (C)        model.norm
	struct tensor lm_head;          // (V,C)      == wte when tie_word_embeddings
	struct layer_weights *layers;   // [n_layers]
};

// Inference scratch for up to `cap` tokens: act = the activation dtype, stat = f32 (real on the CPU).
struct model_acts {
	int64_t cap;
	void *mem;
	struct tensor x;        // (cap,C) act   the residual stream
	struct tensor xn;       // (cap,C) act   normed input of the current sublayer
	struct tensor q;        // (cap,NH*HD) act
	struct tensor k, v;     // (cap,NKV*HD) act
	struct tensor att;      // (cap,NH*HD) act
	struct tensor gate, up; // (cap,F) act
	struct tensor proj;     // (cap,C) act   o_proj / down_proj output before the residual add
	struct tensor att_lse;  // (NH*cap) stat
	struct tensor rstd;     // (cap*NH) stat
	struct tensor x_sel;    // (cap,C) act   final hidden states of the positions that have a target
	struct tensor losses;   // (cap) stat
	struct tensor lse;      // (cap) stat
	struct tensor ids, positions, targets, sel;   // (cap) i32: token ids, positions, target ids and rows
	struct tensor doc_offsets;                    // (cap+1) i32
	struct tensor kv_rows;                        // (cap) i32: a batched decoding step's cache rows
	int32_t *host_positions, *host_sel, *host_targets, *host_kv_rows;   // (cap) host staging of the index tensors
	struct tensor logits_dev;   // (OPS_ROWWISE_MAX_ROWS,V) stat, off the CPU: a decoding step's logits on the way out
};

struct model {
	struct model_config cfg;
	struct model_weights w;
	enum device device;
	enum dtype act_dtype;        // activations: `real` on the CPU, bf16 (or f32) on CUDA
	enum dtype stat_dtype;       // norms' rstd, lse, losses: `real` on the CPU, f32 on CUDA
	void *weights_mem;           // the frozen weights' allocation (NULL when they are views of mapped files)
	struct safetensors *st;      // the mapped checkpoint, kept for the model's life (CPU)
	struct tensor inv_freq;      // (HD/2) stat: RoPE inverse frequencies, scaling applied
	struct model_acts acts;
	char *dir;
	char tokenizer_sha256[65];   // of DIR/tokenizer.json; "" when the directory has none
	struct adapter *adapter;     // applied by every forward when set (model_set_adapter); not owned
	int adapter_task;            // the moelora task id model_forward / model_decode use
};

// Where and how to load: the device, and the dtype the frozen weights get there (0 = the default: as stored on
// the CPU, as stored on CUDA except f32 → bf16).
struct model_options {
	enum device device;
	enum dtype weight_dtype;
	int weight_dtype_given;
};

// model_load(dir) is model_load_with(dir, CPU, stored dtypes).
struct model *model_load(const char *dir);
struct model *model_load_with(const char *dir, const struct model_options *opt);
// A CPU model of geometry CFG with zero `real` weights in one allocation (tests fill them through m->w): no
// files, no tokenizer.
struct model *model_new(const struct model_config *cfg);
// Attach adapter A (NULL detaches) to M: model_forward and model_decode then apply it, with the moelora gate of
// TASK_ID (ignored by the token-routed methods).  The adapter must have been made for M's geometry and device
// (adapter_load / adapter_new_for_model check it).
struct adapter;
void model_set_adapter(struct model *m, struct adapter *a, int task_id);
void model_free(struct model *m);

// Packed forward.  ids (T) hold n_docs documents back to back, cut by doc_offsets (n_docs+1 cumulative
// lengths, from 0 to T; host arrays); positions restart at 0 in each document and a token attends only within
// its own.  For a medmoe.shard record pass T = doc_offsets[n_docs], its real tokens: the padding after them is
// not run.  loss_mask (T) or NULL marks targets: token t (not the first of its document) is predicted from t−1
// and counts in the loss when loss_mask[t] != 0 (the labels convention of transformers, shifted inside the
// model).  logits (T,V) or NULL: a host array that receives the full logits.  Returns the mean cross-entropy
// over the targets (0 when there are none) and their number in *n_targets (when not NULL); each target's final
// hidden state and log-sum-exp stay in m->acts.x_sel / m->acts.lse, in position order, until the next call
// (what scoring answer options needs, model_target_logprob).  Bad ids or offsets → exit 65.
double model_forward(struct model *m, const int32_t *ids, int64_t T, const int32_t *doc_offsets, int n_docs,
		     const uint8_t *loss_mask, real *logits, int64_t *n_targets);
// After model_forward: out[p] = log p(ids[p] | context of target row rows[p]) for P (row, token) pairs, from the
// last forward's final hidden states (host arrays in and out).
void model_target_logprob(struct model *m, const int32_t *rows, const int32_t *ids, int64_t P, double *out);

// KV cache for incremental decoding of up to n_slots sequences at once, one per slot, each of at most max_len
// tokens: keys and values (L, n_slots, max_len, NKV*HD) on the model's device; slot b holds len[b] tokens.  A
// caller empties a slot by setting its len to 0 (kv_cache_reset empties them all).
struct kv_cache {
	int64_t max_len;
	int n_slots;
	int64_t *len;              // (n_slots) host
	int32_t *slot_offsets;     // (n_slots+1) host: b·max_len, each slot one document of a batched step's keys
	enum device device;
	struct tensor k, v;        // (L·n_slots·max_len, NKV*HD)
	void *mem;
};
struct kv_cache *kv_cache_new(const struct model *m, int64_t max_len, int n_slots);
void kv_cache_reset(struct kv_cache *cache);
void kv_cache_free(struct kv_cache *cache);

// Feed n tokens to slot SLOT after the cache->len[slot] already cached (prefill: n > 1; a decoding step: n = 1).
// They continue the same document (positions len[slot], ...).  logits_last (V) or NULL: a host array that
// receives the logits of the last one.  Dies (exit 1) when the slot would overflow.
void model_decode(struct model *m, struct kv_cache *cache, int slot, const int32_t *ids, int64_t n,
		  real *logits_last);
// One decoding step of N sequences together: token ids[i] continues slot slots[i] (distinct slots), all N in one
// forward (one product per linear, the keys and values of each written into its slot, each query attending to
// its own slot only).  logits (N,V) or NULL: a host array that receives each one's next-token logits.  On the CPU
// a step of at most OPS_ROWWISE_MAX_ROWS slots gives each slot the same bits as model_decode of its token alone
// (ops.h), so batched greedy decoding is token-identical to one sequence at a time.
void model_decode_batch(struct model *m, struct kv_cache *cache, int n, const int *slots, const int32_t *ids,
			real *logits);

// The token-stream identity check: 0 when SHA256 (hex) is the sha256 of the checkpoint's tokenizer.json, else
// -1 (also when the checkpoint has no tokenizer.json).
int model_check_tokenizer(const struct model *m, const char *sha256);
// The same for a token stream: refuse (exit 65, naming both sides) a stream whose header's tokenizer is not the
// checkpoint's, or whose vocabulary is larger than the model's, or a checkpoint without tokenizer.json.
struct stream_reader;
void model_require_stream(const struct model *m, const struct stream_reader *r);

#endif
