// model.h — a LLaMA / Qwen2 / Qwen3 decoder on CPU in fp32, loaded from a Hugging Face directory.
//
// model_load reads DIR/config.json (model_config.h) and DIR's safetensors (one file or an index with shards,
// bf16/f16/f32, memory-mapped and converted to fp32 once).  Every tensor the architecture needs must be there with
// exactly the expected shape: a missing one is named, a wrong shape is named with both shapes (exit 65).
//
// Reading the model is reading model_forward in model.c: embedding, then per layer
//   rmsnorm → q,k,v projections (+bias) → [Qwen3: per-head q/k rmsnorm] → rope → attention → o_proj → residual
//   → rmsnorm → gate,up → swiglu → down → residual,
// then the final rmsnorm and the LM head, fused with cross-entropy over the loss mask so the (T,V) logits are
// only materialised when a caller asks for them.
//
// Memory is planned: the weights are one allocation carved into struct model_weights (per-layer tensors stacked,
// layer l at base + l·size); the activations are one allocation sized for the longest batch seen so far, so a
// training or evaluation loop with a fixed batch size allocates nothing per step.  Because the activations
// live in the model, one model runs one forward at a time (the ops inside use all cores through OpenMP).
#ifndef MEDMOE_MODEL_H
#define MEDMOE_MODEL_H

#include <stdint.h>

#include "model_config.h"
#include "ops.h"

// fp32 parameters; a pointer is NULL where the architecture has no such tensor (no bias, no q/k norm).
struct model_weights {
	real *wte;              // (V,C)        model.embed_tokens.weight
	real *ln1;              // (L,C)        input_layernorm
	real *wq, *bq;          // (L,NH*HD,C), (L,NH*HD)
	real *wk, *bk;          // (L,NKV*HD,C), (L,NKV*HD)
	real *wv, *bv;          // (L,NKV*HD,C), (L,NKV*HD)
	real *wo, *bo;          // (L,C,NH*HD), (L,C)
	real *q_norm, *k_norm;  // (L,HD)       Qwen3
	real *ln2;              // (L,C)        post_attention_layernorm
	real *w_gate, *w_up;    // (L,F,C)
	real *w_down;           // (L,C,F)
	real *ln_f;             // (C)          model.norm
	real *lm_head;          // (V,C)        == wte when tie_word_embeddings
};

// Forward scratch for up to `cap` tokens, one allocation (real) plus one (int32).
struct model_acts {
	int64_t cap;
	real *mem;
	real *x;        // (T,C) the residual stream
	real *xn;       // (T,C) normed input of the current sublayer
	real *q;        // (T,NH,HD)
	real *k, *v;    // (T,NKV,HD)
	real *att;      // (T,NH,HD)
	real *gate;     // (T,F)
	real *up;       // (T,F)
	real *proj;     // (T,C) o_proj / down_proj output before the residual add
	real *att_lse;  // (NH,T)
	real *rstd;     // (T*NH)
	real *x_sel;    // (T,C) final hidden states of the positions that have a target
	real *losses;   // (T)
	real *lse;      // (T)
	real *ce_tile;  // (CE_TB, CE_VC)
	real *att_scores;  // (P, ATT_QB, T) attention scores of a block of queries, per thread
	int att_threads;    // P, OpenMP threads when the activations were planned
	int32_t *imem;
	int32_t *positions;  // (T)
	int32_t *targets;    // (T)
};

struct model {
	struct model_config cfg;
	struct model_weights w;
	real *weights_mem;
	real *inv_freq;         // (HD/2) RoPE inverse frequencies, scaling applied
	struct model_acts acts;
	char *dir;
	char tokenizer_sha256[65];   // of DIR/tokenizer.json; "" when the directory has none
	struct adapter *adapter;     // applied by every forward when set (model_set_adapter); not owned
	int adapter_task;            // the moelora task id model_forward / model_decode use
	struct model_train *train;   // training activations (model_train.h), owned
};

struct model *model_load(const char *dir);
// A model of geometry CFG with zero weights (tests fill them): no files, no tokenizer.
struct model *model_new(const struct model_config *cfg);
// Attach adapter A (NULL detaches) to M: model_forward and model_decode then apply it, with the moelora gate of
// TASK_ID (ignored by the token-routed methods).  The adapter must have been made for M's geometry
// (adapter_load / adapter_new_for_model check it).
struct adapter;
void model_set_adapter(struct model *m, struct adapter *a, int task_id);
void model_free(struct model *m);

// Packed forward.  ids (T) hold n_docs documents back to back, cut by doc_offsets (n_docs+1 cumulative
// lengths, from 0 to T); positions restart at 0 in each document and a token attends only within its own.
// For a medmoe.shard record pass T = doc_offsets[n_docs], its real tokens: the padding after them is not run.
// loss_mask (T) or NULL marks targets: token t (not the first of its document) is predicted from t−1 and
// counts in the loss when loss_mask[t] != 0 (the labels convention of transformers, shifted inside the model).
// logits (T,V) or NULL.  Returns the mean cross-entropy over the targets (0 when there are none) and their
// number in *n_targets (when not NULL); each target's own loss (−log p) is left in m->acts.losses, in position
// order, until the next call (what scoring answer options needs).  Bad ids or offsets → exit 65.
double model_forward(struct model *m, const int32_t *ids, int64_t T, const int32_t *doc_offsets, int n_docs,
		     const uint8_t *loss_mask, real *logits, int64_t *n_targets);

// KV cache for incremental decoding of one sequence: keys and values (L, max_len, NKV*HD).
struct kv_cache {
	int64_t max_len, len;
	real *k, *v;
};
struct kv_cache *kv_cache_new(const struct model *m, int64_t max_len);
void kv_cache_reset(struct kv_cache *cache);
void kv_cache_free(struct kv_cache *cache);

// Feed n tokens after the cache->len already cached (prefill: n > 1; a decoding step: n = 1).  They continue the
// same document (positions cache->len, ...).  logits_last (V) or NULL receives the logits of the last one.
// Dies (exit 1) when the cache would overflow.
void model_decode(struct model *m, struct kv_cache *cache, const int32_t *ids, int64_t n, real *logits_last);

// The token-stream identity check: 0 when SHA256 (hex) is the sha256 of the checkpoint's tokenizer.json, else
// -1 (also when the checkpoint has no tokenizer.json).
int model_check_tokenizer(const struct model *m, const char *sha256);
// The same for a token stream: refuse (exit 65, naming both sides) a stream whose header's tokenizer is not the
// checkpoint's, or whose vocabulary is larger than the model's, or a checkpoint without tokenizer.json.
struct stream_reader;
void model_require_stream(const struct model *m, const struct stream_reader *r);

#endif
