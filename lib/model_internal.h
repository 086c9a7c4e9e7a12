// model_internal.h — what model.c shares with model_load.c and model_train.c: the per-layer forward, where it
// writes, and the packed forward both inference and training run.
#ifndef MEDMOE_MODEL_INTERNAL_H
#define MEDMOE_MODEL_INTERNAL_H

#include "model.h"
#include "ops.h"

// Where one layer's forward writes its intermediate values, as tensors of `cap` rows (a forward of T tokens uses
// the first T).  Inference points them all at the shared scratch (aliasing where a value is dead); training
// gives each layer its own so backward finds them.  Widths: QD = NH·HD, KD = NKV·HD.
struct layer_buf {
	struct tensor x_in;      // (cap,C) layer input, saved (training) or NONE
	struct tensor rstd1;     // (cap) stat
	struct tensor xn1;       // (cap,C)
	struct tensor q_pre;     // (cap,QD) q projection (before the Qwen3 q norm; == q otherwise)
	struct tensor rstd_q;    // (cap·NH) stat
	struct tensor k_pre;     // (cap,KD) k projection before the k norm, or NONE: straight into the key rows
	struct tensor rstd_k;    // (cap·NKV) stat
	struct tensor q;         // (cap,QD) after norm and RoPE
	struct tensor att;       // (cap,QD)
	struct tensor att_lse;   // (NH·cap) stat
	struct tensor x_mid;     // (cap,C) residual after attention, saved (training) or NONE
	struct tensor rstd2;     // (cap) stat
	struct tensor xn2;       // (cap,C)
	struct tensor gate_pre;  // (cap,F)
	struct tensor up;        // (cap,F)
	struct tensor h;         // (cap,F) silu(gate)·up
	struct tensor proj;      // (cap,C) scratch
	struct tensor k_all;     // (kv rows,KD) this layer's keys: the forward's own rows, or a KV cache's
	struct tensor v_all;     // (kv rows,KD)
	// A batched decoding step (model_decode_batch), else NONE: token i's key and value are computed into k_new,
	// v_new and scattered to row kv_rows[i] of k_all / v_all, where its query then sits (attention's q_rows).
	struct tensor kv_rows;   // (cap) i32
	struct tensor k_new;     // (cap,KD)
	struct tensor v_new;     // (cap,KD)
};

// The shared inference scratch, sized for at least T tokens.
void model_ensure_acts(struct model *m, int64_t T);
void model_layer_buf_infer(struct model *m, struct layer_buf *b);
// One decoder layer over the T tokens of the residual stream XRES (T,C), updated in place.  Their keys and
// values are written to b->k_all/v_all at rows q_offset..q_offset+T−1; attention then reads q_offset + T rows,
// within the documents of m->acts.doc_offsets (n_docs), the positions in m->acts.positions.  With b->kv_rows
// (a batched decoding step) they go to rows kv_rows instead, attention reads all of k_all / v_all, and q_offset
// is the longest window a query has (ops.h attention_forward).
void model_layer_forward(struct model *m, int l, int64_t T, struct tensor xres, const struct layer_buf *b,
			 int64_t q_offset, int n_docs);

// Everything a packed forward writes besides the layers' buffers.
struct forward_bufs {
	const struct layer_buf *layers;   // one set per layer, or one shared set (per_layer 0)
	int per_layer;
	struct tensor xres;               // (cap,C) the residual stream
	struct tensor xn_f;               // (cap,C) after the final norm
	struct tensor rstd_f;             // (cap) stat
};
// The packed forward of model_forward and model_train_forward: checks the batch, uploads ids and positions,
// runs the layers and the final norm, then the LM head over the targets (m->acts: x_sel, targets, sel, losses,
// lse).  TOK_TASK (T) or NULL is each token's task for the adapter.  LOGITS (T,V) host or NULL.  Returns the
// sum of the targets' cross-entropies (in double, in position order) and their number in *n_targets.
double model_forward_packed(struct model *m, const int32_t *ids, int64_t T, const int32_t *doc_offsets, int n_docs,
			    const int32_t *tok_task, const uint8_t *loss_mask, const struct forward_bufs *fb,
			    real *logits, int64_t *n_targets);

// The rows of a (cap, ...) tensor a forward of T tokens uses.
static inline struct tensor rows_of(struct tensor t, int64_t T) { return tensor_rows(t, 0, T); }

#endif
