// ops_backend.h — what a backend implements: every op of ops.h under the backend's prefix, with the same
// signature, plus its device and memory functions.  OPS_BACKEND(cpu_) declares lib/ops_cpu*.c's functions and
// OPS_BACKEND(cuda_) cuda/*.cu's (inside extern "C" there); lib/ops.c dispatches to them.  The contracts are the
// comments in ops.h.
#ifndef MEDMOE_OPS_BACKEND_H
#define MEDMOE_OPS_BACKEND_H

#include "ops.h"

#define OPS_BACKEND(P)                                                                                           \
	int P##available(void);                                                                                   \
	void P##init(int index);                                                                                  \
	void P##describe(char *buf, size_t n);                                                                    \
	void *P##alloc(size_t bytes);                                                                             \
	void P##free(void *p);                                                                                    \
	void P##sync(void);                                                                                       \
	size_t P##peak_bytes(void);                                                                               \
	void P##tensor_copy(struct tensor dst, struct tensor src);                                                \
	void P##tensor_zero(struct tensor t);                                                                     \
	void P##tensor_fill(struct tensor t, double value);                                                       \
	void P##tensor_scale(struct tensor t, double s);                                                          \
	void P##gather_rows(struct tensor out, struct tensor inp, struct tensor idx);                             \
	void P##scatter_rows_add(struct tensor out, struct tensor inp, struct tensor idx);                        \
	void P##scatter_rows(struct tensor out, struct tensor inp, struct tensor idx);                            \
	double P##tensor_sum(struct tensor t);                                                                    \
	double P##tensor_sumsq(struct tensor t);                                                                  \
	void P##matmul_forward(struct tensor out, struct tensor inp, struct tensor weight, struct tensor bias);    \
	void P##matmul_backward(struct tensor dinp, struct tensor dweight, struct tensor dbias, struct tensor dout, \
				struct tensor inp, struct tensor weight);                                         \
	void P##rmsnorm_forward(struct tensor out, struct tensor rstd, struct tensor inp, struct tensor weight,     \
				double eps);                                                                      \
	void P##rmsnorm_backward(struct tensor dinp, struct tensor dweight, struct tensor dout, struct tensor inp,  \
				 struct tensor weight, struct tensor rstd);                                       \
	void P##rope_forward(struct tensor x, struct tensor positions, struct tensor inv_freq);                    \
	void P##rope_backward(struct tensor dx, struct tensor positions, struct tensor inv_freq);                 \
	void P##attention_forward(struct tensor out, struct tensor lse, struct tensor q, struct tensor k,          \
				  struct tensor v, struct tensor doc_offsets, struct tensor q_rows, int n_docs,   \
				  int64_t q_offset);                                                              \
	void P##attention_backward(struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout,       \
				   struct tensor out, struct tensor lse, struct tensor q, struct tensor k,        \
				   struct tensor v, struct tensor doc_offsets, int n_docs, int64_t q_offset);     \
	void P##swiglu_forward(struct tensor out, struct tensor gate, struct tensor up);                          \
	void P##swiglu_backward(struct tensor dgate, struct tensor dup, struct tensor dout, struct tensor gate,    \
				struct tensor up);                                                                \
	void P##residual_forward(struct tensor out, struct tensor a, struct tensor b);                            \
	void P##residual_backward(struct tensor da, struct tensor db, struct tensor dout);                        \
	void P##lmhead_ce_forward(struct tensor losses, struct tensor lse, struct tensor x, struct tensor weight,  \
				  struct tensor targets);                                                         \
	void P##lmhead_ce_backward(struct tensor dx, struct tensor dweight, struct tensor x, struct tensor weight, \
				   struct tensor targets, struct tensor lse, struct tensor dlosses);              \
	void P##lmhead_logprob(struct tensor out, struct tensor x, struct tensor weight, struct tensor lse,       \
			       struct tensor rows, struct tensor ids);                                            \
	void P##dropout_forward(struct tensor out, struct tensor inp, double p, uint64_t key);                    \
	void P##dropout_backward(struct tensor dinp, struct tensor dout, double p, uint64_t key);                 \
	void P##lora_forward(struct tensor y, struct tensor h, struct tensor x, struct tensor A, struct tensor B,  \
			     struct tensor gates, double scale);                                                  \
	void P##lora_backward(struct tensor dx, struct tensor dA, struct tensor dB, struct tensor dgates,         \
			      struct tensor dy, struct tensor x, struct tensor h, struct tensor A, struct tensor B,\
			      struct tensor gates, double scale);                                                 \
	void P##task_gate_forward(struct tensor gate, struct tensor emb, struct tensor wg);                       \
	void P##task_gate_backward(struct tensor demb, struct tensor dwg, struct tensor dgate, struct tensor gate, \
				   struct tensor emb, struct tensor wg);                                          \
	void P##router_forward(struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x,      \
			       struct tensor w, struct tensor b);                                                 \
	void P##lb_loss_forward(struct tensor loss, struct tensor probs, struct tensor topk);                     \
	void P##router_backward(struct tensor dx, struct tensor dw, struct tensor db, struct tensor dgates,       \
				struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x,    \
				struct tensor w, double lb_weight);                                               \
	void P##router_count(struct tensor counts, struct tensor task_counts, struct tensor topk,                 \
			     struct tensor tok_task);                                                             \
	void P##contrastive_forward(struct tensor loss, struct tensor q, struct tensor znorm, struct tensor x,    \
				    struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk, \
				    double tau);                                                                  \
	void P##contrastive_backward(struct tensor dx, struct tensor dproj, struct tensor x, struct tensor q,     \
				     struct tensor znorm, struct tensor proj, struct tensor queue,                \
				     struct tensor fill, struct tensor topk, double tau, double coef);            \
	void P##queue_push(struct tensor queue, struct tensor head, struct tensor fill, struct tensor q,          \
			   struct tensor topk);                                                                   \
	void P##adamw_update(struct tensor params, struct tensor grads, struct tensor m, struct tensor v,         \
			     const struct adamw_step *s);

#ifdef __cplusplus
extern "C" {
#endif
OPS_BACKEND(cpu_)
#if defined(MEDMOE_CUDA) && !defined(MEDMOE_DOUBLE)
OPS_BACKEND(cuda_)
#endif
#ifdef __cplusplus
}
#endif

#endif
