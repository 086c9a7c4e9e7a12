// ops.c — the dispatch of ops.h: each op runs on the backend of its tensors' device (all given tensors must
// share it), plus the views and dtype helpers every backend uses.
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "ops_backend.h"
#include "ops_cuda_plugin.h"

size_t dtype_size(enum dtype t)
{
	static const size_t size[] = {[DTYPE_F32] = 4, [DTYPE_BF16] = 2, [DTYPE_F16] = 2, [DTYPE_F64] = 8,
				      [DTYPE_I32] = 4};
	return size[t];
}

const char *dtype_name(enum dtype t)
{
	static const char *const name[] = {[DTYPE_F32] = "f32", [DTYPE_BF16] = "bf16", [DTYPE_F16] = "f16",
					   [DTYPE_F64] = "f64", [DTYPE_I32] = "i32"};
	return name[t];
}

const char *device_name(enum device d) { return d == DEVICE_CUDA ? "cuda" : "cpu"; }

// ----------------------------------------------------------------------------
// views

struct tensor tensor_reshape(struct tensor t, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
	return tensor_of(t.data, t.dtype, t.device, ndim, d0, ndim > 1 ? d1 : 1, ndim > 2 ? d2 : 1, 1);
}

struct tensor tensor_rows(struct tensor t, int64_t r0, int64_t n)
{
	int64_t row = 1;
	for (int i = 1; i < t.ndim; i++)
		row *= t.dim[i];
	t.data = t.data ? (char *)t.data + (size_t)(r0 * row) * dtype_size(t.dtype) : NULL;
	t.dim[0] = n;
	return t;
}

struct tensor tensor_at(struct tensor t, int64_t offset, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
	void *p = t.data ? (char *)t.data + (size_t)offset * dtype_size(t.dtype) : NULL;
	return tensor_of(p, t.dtype, t.device, ndim, d0, ndim > 1 ? d1 : 1, ndim > 2 ? d2 : 1, 1);
}

// ----------------------------------------------------------------------------
// devices and memory

int device_parse(const char *s, enum device *device, int *index)
{
	*index = -1;
	if (strcmp(s, "cpu") == 0) {
		*device = DEVICE_CPU;
		return 0;
	}
	if (strncmp(s, "cuda", 4) != 0)
		return -1;
	*device = DEVICE_CUDA;
	if (s[4] == '\0')
		return 0;
	char *end;
	long i = s[4] == ':' ? strtol(s + 5, &end, 10) : -1;
	if (s[4] != ':' || end == s + 5 || *end || i < 0 || i > 1023)
		return -1;
	*index = (int)i;
	return 0;
}

int device_available(enum device device)
{
	if (device == DEVICE_CPU)
		return cpu_available();
	const struct ops_table *cuda = cuda_plugin_try(NULL);
	return cuda && cuda->available();
}

void device_init(enum device device, int index)
{
	if (device == DEVICE_CPU)
		cpu_init(index);
	else
		cuda_plugin("--device cuda")->init(index);
}

void device_describe(enum device device, char *buf, size_t n)
{
	const char *why;
	const struct ops_table *cuda = device == DEVICE_CUDA ? cuda_plugin_try(&why) : NULL;
	if (device == DEVICE_CPU)
		cpu_describe(buf, n);
	else if (cuda)
		cuda->describe(buf, n);
	else
		snprintf(buf, n, "CUDA (%s)", why);
}

// CALL on the backend of DEV: cpu_NAME(...) or the plugin's.
#define ON_DEVICE(dev, name, ...) ((dev) == DEVICE_CUDA ? cuda_plugin(#name)->name(__VA_ARGS__) : cpu_##name(__VA_ARGS__))

void *ops_alloc(enum device device, size_t bytes) { return ON_DEVICE(device, alloc, bytes); }

void ops_free(enum device device, void *p)
{
	if (p)
		ON_DEVICE(device, free, p);
}

void ops_sync(enum device device) { ON_DEVICE(device, sync); }

size_t ops_peak_bytes(enum device device) { return ON_DEVICE(device, peak_bytes); }

struct tensor tensor_new(enum dtype dtype, enum device device, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
	struct tensor t = tensor_of(NULL, dtype, device, ndim, d0, ndim > 1 ? d1 : 1, ndim > 2 ? d2 : 1, 1);
	int64_t n = d0 * t.dim[1] * t.dim[2];
	t.data = ops_alloc(device, (size_t)(n > 0 ? n : 1) * dtype_size(dtype));
	return t;
}

void tensor_free(struct tensor t) { ops_free(t.device, t.data); }

// ----------------------------------------------------------------------------
// dispatch

// The device an op runs on: the one every given tensor is on (NONE operands ignored).
static enum device op_device(const char *op, int n, const struct tensor *ts)
{
	int found = 0;
	enum device d = DEVICE_CPU;
	for (int i = 0; i < n; i++) {
		if (!ts[i].data)
			continue;
		if (found && ts[i].device != d)
			die(EXIT_FAIL, "%s: operands on different devices (%s and %s)", op, device_name(d),
			    device_name(ts[i].device));
		d = ts[i].device;
		found = 1;
	}
	return d;
}

#define TENSORS(...) ((const struct tensor[]){__VA_ARGS__})
#define N_TENSORS(...) ((int)(sizeof TENSORS(__VA_ARGS__) / sizeof(struct tensor)))
#define DEVICE_OF(op, ...) op_device(op, N_TENSORS(__VA_ARGS__), TENSORS(__VA_ARGS__))

// Run OP on the device of its listed tensors; ARGS is the full argument list in parentheses.
#define DISPATCH(op, args, ...)                                          \
	do {                                                             \
		if (DEVICE_OF(#op, __VA_ARGS__) == DEVICE_CUDA)          \
			cuda_plugin(#op)->op args;                       \
		else                                                     \
			cpu_##op args;                                   \
	} while (0)

// A copy between devices runs on the CUDA backend (it owns the transfers).
void tensor_copy(struct tensor dst, struct tensor src)
{
	if (tensor_numel(dst) != tensor_numel(src))
		die(EXIT_FAIL, "tensor_copy: %lld elements into %lld", (long long)tensor_numel(src),
		    (long long)tensor_numel(dst));
	if ((dst.dtype == DTYPE_I32) != (src.dtype == DTYPE_I32))
		die(EXIT_FAIL, "tensor_copy: %s into %s", dtype_name(src.dtype), dtype_name(dst.dtype));
	if (dst.device == DEVICE_CUDA || src.device == DEVICE_CUDA)
		cuda_plugin("tensor_copy")->tensor_copy(dst, src);
	else
		cpu_tensor_copy(dst, src);
}

void tensor_zero(struct tensor t) { DISPATCH(tensor_zero, (t), t); }
void tensor_fill(struct tensor t, double value) { DISPATCH(tensor_fill, (t, value), t); }
void tensor_scale(struct tensor t, double s) { DISPATCH(tensor_scale, (t, s), t); }

void gather_rows(struct tensor out, struct tensor inp, struct tensor idx)
{
	DISPATCH(gather_rows, (out, inp, idx), out, inp, idx);
}

void scatter_rows_add(struct tensor out, struct tensor inp, struct tensor idx)
{
	DISPATCH(scatter_rows_add, (out, inp, idx), out, inp, idx);
}

void scatter_rows(struct tensor out, struct tensor inp, struct tensor idx)
{
	DISPATCH(scatter_rows, (out, inp, idx), out, inp, idx);
}

double tensor_sum(struct tensor t)
{
	return ON_DEVICE(t.device, tensor_sum, t);
}

double tensor_sumsq(struct tensor t)
{
	return ON_DEVICE(t.device, tensor_sumsq, t);
}

void matmul_forward(struct tensor out, struct tensor inp, struct tensor weight, struct tensor bias)
{
	DISPATCH(matmul_forward, (out, inp, weight, bias), out, inp, weight, bias);
}

void matmul_backward(struct tensor dinp, struct tensor dweight, struct tensor dbias, struct tensor dout,
		     struct tensor inp, struct tensor weight)
{
	DISPATCH(matmul_backward, (dinp, dweight, dbias, dout, inp, weight), dinp, dweight, dbias, dout, inp, weight);
}

void rmsnorm_forward(struct tensor out, struct tensor rstd, struct tensor inp, struct tensor weight, double eps)
{
	DISPATCH(rmsnorm_forward, (out, rstd, inp, weight, eps), out, rstd, inp, weight);
}

void rmsnorm_backward(struct tensor dinp, struct tensor dweight, struct tensor dout, struct tensor inp,
		      struct tensor weight, struct tensor rstd)
{
	DISPATCH(rmsnorm_backward, (dinp, dweight, dout, inp, weight, rstd), dinp, dweight, dout, inp, weight, rstd);
}

void rope_forward(struct tensor x, struct tensor positions, struct tensor inv_freq)
{
	DISPATCH(rope_forward, (x, positions, inv_freq), x, positions, inv_freq);
}

void rope_backward(struct tensor dx, struct tensor positions, struct tensor inv_freq)
{
	DISPATCH(rope_backward, (dx, positions, inv_freq), dx, positions, inv_freq);
}

void attention_forward(struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
		       struct tensor doc_offsets, struct tensor q_rows, int n_docs, int64_t q_offset)
{
	DISPATCH(attention_forward, (out, lse, q, k, v, doc_offsets, q_rows, n_docs, q_offset), out, lse, q, k, v,
		 doc_offsets, q_rows);
}

void attention_backward(struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout,
			struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v,
			struct tensor doc_offsets, int n_docs, int64_t q_offset)
{
	DISPATCH(attention_backward, (dq, dk, dv, dout, out, lse, q, k, v, doc_offsets, n_docs, q_offset), dq, dk, dv,
		 dout, out, lse, q, k, v, doc_offsets);
}

void swiglu_forward(struct tensor out, struct tensor gate, struct tensor up)
{
	DISPATCH(swiglu_forward, (out, gate, up), out, gate, up);
}

void swiglu_backward(struct tensor dgate, struct tensor dup, struct tensor dout, struct tensor gate,
		     struct tensor up)
{
	DISPATCH(swiglu_backward, (dgate, dup, dout, gate, up), dgate, dup, dout, gate, up);
}

void residual_forward(struct tensor out, struct tensor a, struct tensor b)
{
	DISPATCH(residual_forward, (out, a, b), out, a, b);
}

void residual_backward(struct tensor da, struct tensor db, struct tensor dout)
{
	DISPATCH(residual_backward, (da, db, dout), da, db, dout);
}

void lmhead_ce_forward(struct tensor losses, struct tensor lse, struct tensor x, struct tensor weight,
		       struct tensor targets)
{
	DISPATCH(lmhead_ce_forward, (losses, lse, x, weight, targets), losses, lse, x, weight, targets);
}

void lmhead_ce_backward(struct tensor dx, struct tensor dweight, struct tensor x, struct tensor weight,
			struct tensor targets, struct tensor lse, struct tensor dlosses)
{
	DISPATCH(lmhead_ce_backward, (dx, dweight, x, weight, targets, lse, dlosses), dx, dweight, x, weight, targets,
		 lse, dlosses);
}

void lmhead_logprob(struct tensor out, struct tensor x, struct tensor weight, struct tensor lse, struct tensor rows,
		    struct tensor ids)
{
	DISPATCH(lmhead_logprob, (out, x, weight, lse, rows, ids), out, x, weight, lse, rows, ids);
}

void dropout_forward(struct tensor out, struct tensor inp, double p, uint64_t key)
{
	DISPATCH(dropout_forward, (out, inp, p, key), out, inp);
}

void dropout_backward(struct tensor dinp, struct tensor dout, double p, uint64_t key)
{
	DISPATCH(dropout_backward, (dinp, dout, p, key), dinp, dout);
}

void lora_forward(struct tensor y, struct tensor h, struct tensor x, struct tensor A, struct tensor B,
		  struct tensor gates, double scale)
{
	DISPATCH(lora_forward, (y, h, x, A, B, gates, scale), y, h, x, A, B, gates);
}

void lora_backward(struct tensor dx, struct tensor dA, struct tensor dB, struct tensor dgates, struct tensor dy,
		   struct tensor x, struct tensor h, struct tensor A, struct tensor B, struct tensor gates, double scale)
{
	DISPATCH(lora_backward, (dx, dA, dB, dgates, dy, x, h, A, B, gates, scale), dx, dA, dB, dgates, dy, x, h, A, B,
		 gates);
}

void task_gate_forward(struct tensor gate, struct tensor emb, struct tensor wg)
{
	DISPATCH(task_gate_forward, (gate, emb, wg), gate, emb, wg);
}

void task_gate_backward(struct tensor demb, struct tensor dwg, struct tensor dgate, struct tensor gate,
			struct tensor emb, struct tensor wg)
{
	DISPATCH(task_gate_backward, (demb, dwg, dgate, gate, emb, wg), demb, dwg, dgate, gate, emb, wg);
}

void router_forward(struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x, struct tensor w,
		    struct tensor b)
{
	DISPATCH(router_forward, (gates, probs, topk, x, w, b), gates, probs, topk, x, w, b);
}

void router_stats(struct tensor stats, struct tensor probs, struct tensor topk)
{
	DISPATCH(router_stats, (stats, probs, topk), stats, probs, topk);
}

void router_backward(struct tensor dx, struct tensor dw, struct tensor db, struct tensor dgates, struct tensor gates,
		     struct tensor probs, struct tensor topk, struct tensor x, struct tensor w, struct tensor stats,
		     double n_tokens, double lb_weight)
{
	DISPATCH(router_backward, (dx, dw, db, dgates, gates, probs, topk, x, w, stats, n_tokens, lb_weight), dx, dw, db,
		 dgates, gates, probs, topk, x, w, stats);
}

void router_count(struct tensor counts, struct tensor task_counts, struct tensor topk, struct tensor tok_task)
{
	DISPATCH(router_count, (counts, task_counts, topk, tok_task), counts, task_counts, topk, tok_task);
}

void contrastive_forward(struct tensor stats, struct tensor q, struct tensor znorm, struct tensor x,
			 struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk, double tau)
{
	DISPATCH(contrastive_forward, (stats, q, znorm, x, proj, queue, fill, topk, tau), stats, q, znorm, x, proj,
		 queue, fill, topk);
}

void contrastive_backward(struct tensor dx, struct tensor dproj, struct tensor x, struct tensor q, struct tensor znorm,
			  struct tensor proj, struct tensor queue, struct tensor fill, struct tensor topk, double tau,
			  double coef)
{
	DISPATCH(contrastive_backward, (dx, dproj, x, q, znorm, proj, queue, fill, topk, tau, coef), dx, dproj, x, q,
		 znorm, proj, queue, fill, topk);
}

void queue_push(struct tensor queue, struct tensor head, struct tensor fill, struct tensor q, struct tensor topk)
{
	DISPATCH(queue_push, (queue, head, fill, q, topk), queue, head, fill, q, topk);
}

void adamw_update(struct tensor params, struct tensor grads, struct tensor m, struct tensor v,
		  const struct adamw_step *s)
{
	DISPATCH(adamw_update, (params, grads, m, v, s), params, grads, m, v);
}
