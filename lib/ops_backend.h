// ops_backend.h — what a backend implements: every op of ops.h under the backend's prefix, with the same
// signature, plus its device and memory functions, as one list (an X-macro: F(return type, name, parameters)).
//   cpu_*    lib/ops_cpu*.c, linked into every program;
//   cuda_*   cuda/*.cu, built into the plugin libmedmoe_cuda.so when nvcc is present and loaded by
//            lib/ops_cuda_plugin.c on first use (a CPU run never loads cuBLAS);
//   ref64_*  the CPU sources built in fp64, for tests/unit/test_backend_ops.c.
// lib/ops.c dispatches to them.  The contracts are the comments in ops.h.
#ifndef MEDMOE_OPS_BACKEND_H
#define MEDMOE_OPS_BACKEND_H

#include "ops.h"

#define OPS_BACKEND_FUNCS(F) \
	F(int, available, (void)) \
	F(void, init, (int index)) \
	F(void, describe, (char *buf, size_t n)) \
	F(void *, alloc, (size_t bytes)) \
	F(void, free, (void *p)) \
	F(void, sync, (void)) \
	F(size_t, peak_bytes, (void)) \
	F(void, tensor_copy, (struct tensor dst, struct tensor src)) \
	F(void, tensor_zero, (struct tensor t)) \
	F(void, tensor_fill, (struct tensor t, double value)) \
	F(void, tensor_scale, (struct tensor t, double s)) \
	F(void, gather_rows, (struct tensor out, struct tensor inp, struct tensor idx)) \
	F(void, scatter_rows_add, (struct tensor out, struct tensor inp, struct tensor idx)) \
	F(void, scatter_rows, (struct tensor out, struct tensor inp, struct tensor idx)) \
	F(double, tensor_sum, (struct tensor t)) \
	F(double, tensor_sumsq, (struct tensor t)) \
	F(void, matmul_forward, (struct tensor out, struct tensor inp, struct tensor weight, struct tensor bias)) \
	F(void, matmul_backward, (struct tensor dinp, struct tensor dweight, struct tensor dbias, \
		struct tensor dout, struct tensor inp, struct tensor weight)) \
	F(void, rmsnorm_forward, (struct tensor out, struct tensor rstd, struct tensor inp, struct tensor weight, \
		double eps)) \
	F(void, rmsnorm_backward, (struct tensor dinp, struct tensor dweight, struct tensor dout, \
		struct tensor inp, struct tensor weight, struct tensor rstd)) \
	F(void, rope_forward, (struct tensor x, struct tensor positions, struct tensor inv_freq)) \
	F(void, rope_backward, (struct tensor dx, struct tensor positions, struct tensor inv_freq)) \
	F(void, attention_forward, (struct tensor out, struct tensor lse, struct tensor q, struct tensor k, \
		struct tensor v, struct tensor doc_offsets, struct tensor q_rows, int n_docs, int64_t q_offset)) \
	F(void, attention_backward, (struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout, \
		struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v, \
		struct tensor doc_offsets, int n_docs, int64_t q_offset)) \
	F(void, swiglu_forward, (struct tensor out, struct tensor gate, struct tensor up)) \
	F(void, swiglu_backward, (struct tensor dgate, struct tensor dup, struct tensor dout, struct tensor gate, \
		struct tensor up)) \
	F(void, residual_forward, (struct tensor out, struct tensor a, struct tensor b)) \
	F(void, residual_backward, (struct tensor da, struct tensor db, struct tensor dout)) \
	F(void, lmhead_ce_forward, (struct tensor losses, struct tensor lse, struct tensor x, \
		struct tensor weight, struct tensor targets)) \
	F(void, lmhead_ce_backward, (struct tensor dx, struct tensor dweight, struct tensor x, \
		struct tensor weight, struct tensor targets, struct tensor lse, struct tensor dlosses)) \
	F(void, lmhead_logprob, (struct tensor out, struct tensor x, struct tensor weight, struct tensor lse, \
		struct tensor rows, struct tensor ids)) \
	F(void, dropout_forward, (struct tensor out, struct tensor inp, double p, uint64_t key)) \
	F(void, dropout_backward, (struct tensor dinp, struct tensor dout, double p, uint64_t key)) \
	F(void, lora_forward, (struct tensor y, struct tensor h, struct tensor x, struct tensor A, \
		struct tensor B, struct tensor gates, double scale)) \
	F(void, lora_backward, (struct tensor dx, struct tensor dA, struct tensor dB, struct tensor dgates, \
		struct tensor dy, struct tensor x, struct tensor h, struct tensor A, struct tensor B, \
		struct tensor gates, double scale)) \
	F(void, task_gate_forward, (struct tensor gate, struct tensor emb, struct tensor wg)) \
	F(void, task_gate_backward, (struct tensor demb, struct tensor dwg, struct tensor dgate, \
		struct tensor gate, struct tensor emb, struct tensor wg)) \
	F(void, router_forward, (struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x, \
		struct tensor w, struct tensor b)) \
	F(void, router_stats, (struct tensor stats, struct tensor probs, struct tensor topk)) \
	F(void, router_backward, (struct tensor dx, struct tensor dw, struct tensor db, struct tensor dgates, \
		struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x, struct tensor w, \
		struct tensor stats, double n_tokens, double lb_weight)) \
	F(void, router_count, (struct tensor counts, struct tensor task_counts, struct tensor topk, \
		struct tensor tok_task)) \
	F(void, contrastive_forward, (struct tensor stats, struct tensor q, struct tensor znorm, struct tensor x, \
		struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk, double tau)) \
	F(void, contrastive_backward, (struct tensor dx, struct tensor dproj, struct tensor x, struct tensor q, \
		struct tensor znorm, struct tensor proj, struct tensor queue, struct tensor fill, \
		struct tensor topk, double tau, double coef)) \
	F(void, queue_push, (struct tensor queue, struct tensor head, struct tensor fill, struct tensor q, \
		struct tensor topk)) \
	F(void, adamw_update, (struct tensor params, struct tensor grads, struct tensor m, struct tensor v, \
		const struct adamw_step *s)) \

#define OPS_DECLARE_CPU(ret, name, params) ret cpu_##name params;
#define OPS_DECLARE_CUDA(ret, name, params) ret cuda_##name params;
#define OPS_DECLARE_REF64(ret, name, params) ret ref64_##name params;
#define OPS_POINTER(ret, name, params) ret(*name) params;

#ifdef __cplusplus
extern "C" {
#endif
OPS_BACKEND_FUNCS(OPS_DECLARE_CPU)

// A backend reached through function pointers (the CUDA plugin).
struct ops_table {
	OPS_BACKEND_FUNCS(OPS_POINTER)
};
#ifdef __cplusplus
}
#endif

#endif
