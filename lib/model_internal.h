// model_internal.h — what model.c shares with model_train.c: the per-layer forward and where it writes.
#ifndef MEDMOE_MODEL_INTERNAL_H
#define MEDMOE_MODEL_INTERNAL_H

#include "model.h"
#include "ops.h"

// LM-head tile: CE_TB rows × CE_VC vocab entries of logits at a time (4 MB), see lmhead_ce_forward.
#define CE_TB 128
#define CE_VC 8192
// Attention: queries per block of scores on the GEMM path (attention_forward with a scratch).
#define ATT_QB 64

// Where one layer's forward writes its intermediate values.  Inference points them all at the shared scratch
// (aliasing where a value is dead); training gives each layer its own so backward finds them.
struct layer_buf {
	real *x_in;      // (T,C) layer input, saved (training) or NULL
	real *rstd1;     // (T)
	real *xn1;       // (T,C)
	real *q_pre;     // (T,QD) q projection (before the Qwen3 q norm; == q otherwise)
	real *rstd_q;    // (T·NH)
	real *k_pre;     // (T,KD) k projection before the k norm, or NULL: straight into the key rows
	real *rstd_k;    // (T·NKV)
	real *q;         // (T,QD) after norm and RoPE
	real *att;       // (T,QD)
	real *att_lse;   // (NH,T)
	real *x_mid;     // (T,C) residual after attention, saved (training) or NULL
	real *rstd2;     // (T)
	real *xn2;       // (T,C)
	real *gate_pre;  // (T,F)
	real *up;        // (T,F)
	real *h;         // (T,F) silu(gate)·up
	real *proj;      // (T,C) scratch
};

// The shared forward scratch, sized for T tokens.
void model_ensure_acts(struct model *m, int64_t T);
void model_layer_buf_infer(struct model *m, struct layer_buf *b);
void model_layer_forward(struct model *m, int l, int64_t T, real *xres, const struct layer_buf *b, real *k_all,
			 real *v_all, int64_t q_offset, const int32_t *doc_offsets, int n_docs,
			 struct tensor att_scratch);
void model_train_free(struct model *m);

#endif
