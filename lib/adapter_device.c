// adapter_device.c — where an adapter's tensors live (adapter.h, struct adapter_device): views of the host
// arrays on the CPU, one allocation on a GPU kept in step with them, and the activations of a forward.
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "die.h"
#include "tensor_plan.h"

static struct tensor host_vec(void *data, enum dtype dtype, size_t n)
{
	return tensor_of(n ? data : NULL, dtype, DEVICE_CPU, 1, (int64_t)n, 1, 1, 1);
}

// The host families, each seen as one tensor (the CPU device's own, or the source of the GPU's copies).
struct host_families {
	struct tensor params, grads, m, v, queue, queue_pos, loads, task_gate;
};

static struct host_families host_families(const struct adapter *a)
{
	size_t N = (size_t)a->cfg.experts, R = (size_t)a->n_routed_slots, NT = (size_t)a->cfg.n_tasks;
	return (struct host_families){
		host_vec(a->params, DTYPE_REAL, a->n_params), host_vec(a->grads, DTYPE_REAL, a->n_params),
		host_vec(a->adam_m, DTYPE_REAL, a->n_params), host_vec(a->adam_v, DTYPE_REAL, a->n_params),
		host_vec(a->queue, DTYPE_F16, a->n_queue),    host_vec(a->queue_pos, DTYPE_I32, 2 * R * N),
		host_vec(a->loads, DTYPE_I32, R * N + NT * N), host_vec(a->task_gate, DTYPE_REAL, NT * N)};
}

void adapter_place(struct adapter *a, enum device device, enum dtype act_dtype)
{
	struct adapter_device *d = &a->dev;
	ops_free(d->device, d->mem);
	ops_free(d->device, d->act_mem);
	d->mem = d->act_mem = NULL;
	a->cap = 0;
	d->device = device;
	d->act_dtype = act_dtype;
	size_t N = (size_t)a->cfg.experts, R = (size_t)a->n_routed_slots, NT = (size_t)a->cfg.n_tasks;
	struct host_families h = host_families(a);
	if (device == DEVICE_CPU) {
		d->params = h.params, d->grads = h.grads, d->m = h.m, d->v = h.v;
		d->queue = h.queue, d->queue_pos = h.queue_pos, d->loads = h.loads, d->task_gate = h.task_gate;
		d->stats = host_vec(a->stats, DTYPE_F64, a->n_stats);
		d->dtask_gate = TENSOR_NONE;
	} else {
		struct tensor_plan p;
		tensor_plan_begin(&p, device);
		tensor_plan_add(&p, &d->params, DTYPE_REAL, 1, (int64_t)a->n_params, 0, 0);
		tensor_plan_add(&p, &d->grads, DTYPE_REAL, 1, (int64_t)a->n_params, 0, 0);
		tensor_plan_add(&p, &d->m, DTYPE_REAL, 1, (int64_t)a->n_params, 0, 0);
		tensor_plan_add(&p, &d->v, DTYPE_REAL, 1, (int64_t)a->n_params, 0, 0);
		tensor_plan_add(&p, &d->queue, DTYPE_F16, 1, (int64_t)a->n_queue, 0, 0);
		tensor_plan_add(&p, &d->queue_pos, DTYPE_I32, 1, (int64_t)(2 * R * N), 0, 0);
		tensor_plan_add(&p, &d->loads, DTYPE_I32, 1, (int64_t)(R * N + NT * N), 0, 0);
		tensor_plan_add(&p, &d->stats, DTYPE_F64, 1, (int64_t)a->n_stats, 0, 0);
		tensor_plan_add(&p, &d->task_gate, DTYPE_REAL, 2, (int64_t)NT, (int64_t)N, 0);
		d->mem = tensor_plan_commit(&p);
	}
	d->task_gate = tensor_reshape(d->task_gate, 2, (int64_t)NT, (int64_t)N, 0);
	adapter_to_device(a);
}

// SRC into DST where both exist (an empty family is NONE on both sides).
static void copy_family(struct tensor dst, struct tensor src)
{
	if (dst.data && src.data)
		tensor_copy(dst, src);
}

void adapter_to_device(struct adapter *a)
{
	struct adapter_device *d = &a->dev;
	if (d->device == DEVICE_CPU)
		return;
	struct host_families h = host_families(a);
	copy_family(d->params, h.params);
	copy_family(d->grads, h.grads);
	copy_family(d->m, h.m);
	copy_family(d->v, h.v);
	copy_family(d->queue, h.queue);
	copy_family(d->queue_pos, h.queue_pos);
}

void adapter_to_host(struct adapter *a)
{
	struct adapter_device *d = &a->dev;
	if (d->device == DEVICE_CPU)
		return;
	struct host_families h = host_families(a);
	copy_family(h.params, d->params);
	copy_family(h.grads, d->grads);
	copy_family(h.m, d->m);
	copy_family(h.v, d->v);
	copy_family(h.queue, d->queue);
	copy_family(h.queue_pos, d->queue_pos);
}

// [0], the tokens, is the host's own (adapter_begin, the trainer): the device holds the slots' statistics.
void adapter_stats_to_host(struct adapter *a)
{
	if (a->dev.device != DEVICE_CPU && a->n_stats > 1)
		tensor_copy(host_vec(a->stats + 1, DTYPE_F64, a->n_stats - 1), tensor_rows(a->dev.stats, 1, (int64_t)a->n_stats - 1));
}

void adapter_stats_to_device(struct adapter *a)
{
	if (a->dev.device != DEVICE_CPU)
		tensor_copy(a->dev.stats, host_vec(a->stats, DTYPE_F64, a->n_stats));
}

void adapter_loads_to_host(struct adapter *a)
{
	struct adapter_device *d = &a->dev;
	if (d->device == DEVICE_CPU)
		return;
	struct host_families h = host_families(a);
	copy_family(h.loads, d->loads);
	copy_family(h.task_gate, tensor_reshape(d->task_gate, 1, tensor_numel(d->task_gate), 0, 0));
}

// The activations of a forward of up to T tokens: per slot, and the scratch every slot shares.
void adapter_plan_acts(struct adapter *a, int64_t T)
{
	if (T <= a->cap)
		return;
	struct adapter_device *d = &a->dev;
	const struct adapter_config *c = &a->cfg;
	ops_free(d->device, d->act_mem);
	int64_t max_in = 1, max_exp = 1;
	struct tensor_plan p;
	tensor_plan_begin(&p, d->device);
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		struct adapter_slot *s = &a->slots[i];
		if (s->kind == SLOT_NONE)
			continue;
		max_in = s->d_in > max_in ? s->d_in : max_in;
		max_exp = s->n_exp > max_exp ? s->n_exp : max_exp;
		tensor_plan_add(&p, &s->H, d->act_dtype, 2, T, (int64_t)s->n_exp * s->r, 0);
		tensor_plan_add(&p, &s->G, DTYPE_REAL, 2, T, s->n_exp, 0);
		if (s->kind == SLOT_ROUTED) {
			tensor_plan_add(&p, &s->probs, DTYPE_REAL, 2, T, s->n_routed, 0);
			tensor_plan_add(&p, &s->topk, DTYPE_I32, 2, T, c->top_k, 0);
			if (c->method == ADAPTER_SPARSEDOCTOR) {
				tensor_plan_add(&p, &s->q, DTYPE_REAL, 2, T, c->con_proj, 0);
				tensor_plan_add(&p, &s->znorm, DTYPE_REAL, 1, T, 0, 0);
			}
		}
	}
	tensor_plan_add(&p, &d->tok_task, DTYPE_I32, 1, T, 0, 0);
	tensor_plan_add(&p, &d->x_drop, d->act_dtype, 2, T, max_in, 0);
	tensor_plan_add(&p, &d->dx_drop, d->act_dtype, 2, T, max_in, 0);
	tensor_plan_add(&p, &d->dgates, DTYPE_REAL, 2, T, max_exp, 0);
	tensor_plan_add(&p, &d->dtask_gate, DTYPE_REAL, 2, c->n_tasks, c->experts, 0);
	tensor_plan_add(&p, &d->stats_scratch, DTYPE_F64, 1, 2, 0, 0);
	d->act_mem = tensor_plan_commit(&p);
	d->host_task = xrealloc(d->host_task, (size_t)T * sizeof *d->host_task);
	a->cap = T;
}
