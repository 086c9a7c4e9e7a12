// adapter_linear.c — forward and backward of an adapted linear as ops (adapter.h, DESIGN §4): the gates of its
// kind (none, the task's, the router's), dropout on its input, the dense-masked experts, and for SparseDoctor
// the contrastive loss.  The math of each step is in ops.h and the backends.
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "die.h"
#include "safetensors.h"

static struct adapter_slot *slot_of(struct adapter *a, int l, enum adapter_target tgt)
{
	return &a->slots[l * N_TARGETS + tgt];
}

// Views of a slot's tensors in a family (params or grads) on the adapter's device.
static struct tensor mat(struct tensor family, size_t off, int64_t rows, int64_t cols)
{
	return tensor_at(family, (int64_t)off, 2, rows, cols, 0);
}
#define A_OF(f, s) mat(f, (s)->off_A, (int64_t)(s)->n_exp * (s)->r, (s)->d_in)
#define B_OF(f, s) mat(f, (s)->off_B, (s)->d_out, (int64_t)(s)->n_exp * (s)->r)
#define WR_OF(f, s) mat(f, (s)->off_Wr, (s)->n_routed, (s)->d_in)
#define BR_OF(f, s) tensor_at(f, (int64_t)(s)->off_br, 1, (s)->n_routed, 0, 0)
#define P_OF(f, s, a) mat(f, (s)->off_P, (a)->cfg.con_proj, (s)->d_in)

static struct tensor tok_rows(struct tensor t, int64_t T) { return tensor_rows(t, 0, T); }

// A routed slot's rings, heads and fills, its scalar losses.
static struct tensor queue_of(const struct adapter *a, const struct adapter_slot *s)
{
	return tensor_at(a->dev.queue, (int64_t)s->off_queue, 3, s->n_routed, a->cfg.con_queue, a->cfg.con_proj);
}
static struct tensor head_of(const struct adapter *a, const struct adapter_slot *s)
{
	return tensor_at(a->dev.queue_pos, (int64_t)s->routed_index * 2 * s->n_routed, 1, s->n_routed, 0, 0);
}
static struct tensor fill_of(const struct adapter *a, const struct adapter_slot *s)
{
	return tensor_at(a->dev.queue_pos, ((int64_t)s->routed_index * 2 + 1) * s->n_routed, 1, s->n_routed, 0, 0);
}
// A routed slot's statistics of the micro-batch (adapter.h): the router's (2N), the contrastive loss's (2).  A
// recomputed forward writes the latter to scratch: the statistics count each token once.
static struct tensor router_stats_of(const struct adapter *a, const struct adapter_slot *s)
{
	return tensor_at(a->dev.stats, (int64_t)s->off_stats, 1, 2 * (int64_t)s->n_routed, 0, 0);
}
static struct tensor con_stats_of(const struct adapter *a, const struct adapter_slot *s)
{
	if (a->recomputing)
		return a->dev.stats_scratch;
	return tensor_at(a->dev.stats, (int64_t)s->off_stats + 2 * s->n_routed, 1, 2, 0, 0);
}

// ----------------------------------------------------------------------------
// per forward

void adapter_begin(struct adapter *a, int64_t T, const int32_t *tok_task, int default_task)
{
	adapter_plan_acts(a, T);
	a->T = T;
	a->stats[0] = (double)T;   // the micro-batch's tokens, until the trainer sums the ranks' parts
	const struct adapter_config *c = &a->cfg;
	struct adapter_device *d = &a->dev;
	if (!tok_task && (default_task < 0 || default_task >= c->n_tasks))
		die(EXIT_DATA, "task id %d outside the adapter's task table (%d tasks)", default_task, c->n_tasks);
	for (int64_t t = 0; t < T; t++) {
		int32_t id = tok_task ? tok_task[t] : default_task;
		if (id < 0 || id >= c->n_tasks)
			die(EXIT_DATA, "token %lld: task id %d outside the adapter's task table (%d tasks)", (long long)t, id,
			    c->n_tasks);
		d->host_task[t] = id;
	}
	tensor_copy(tok_rows(d->tok_task, T), tensor_i32(d->host_task, T));
	if (c->method == ADAPTER_MOELORA) {
		// w(task) = softmax(W_g · E[task]) (MOELoRA peft_model.py Gate)
		task_gate_forward(d->task_gate, mat(d->params, a->off_E, c->n_tasks, c->task_emb),
				  mat(d->params, a->off_Wg, c->experts, c->task_emb));
		tensor_zero(d->dtask_gate);
	}
}

// ----------------------------------------------------------------------------
// dropout: one mask per linear, from a hash of (seed, step, layer, linear, element), so backward and
// recomputation draw the same one

static int dropout_active(const struct adapter *a, const struct adapter_slot *s)
{
	return a->training && a->cfg.dropout > 0 && s->kind != SLOT_ROUTED;
}

// Element i of a linear's (T, d_in) input in a forward is element tok_offset·d_in + i of the whole micro-batch:
// the masks follow a token's position in the micro-batch, however the ranks split it.
static uint64_t dropout_key(const struct adapter *a, int l, int tgt, int64_t d_in)
{
	return (a->cfg.seed ^ (a->step * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)(l * N_TARGETS + tgt) << 40)) +
	       (uint64_t)(a->tok_offset * d_in);
}

// x with the slot's dropout applied, or x itself.
static struct tensor dropped_input(struct adapter *a, const struct adapter_slot *s, int l, int tgt, struct tensor x)
{
	if (!dropout_active(a, s))
		return x;
	int64_t T = x.dim[0];
	struct tensor xd = tensor_at(a->dev.x_drop, 0, 2, T, s->d_in, 0);
	dropout_forward(xd, x, a->cfg.dropout, dropout_key(a, l, tgt, s->d_in));
	return xd;
}

// ----------------------------------------------------------------------------
// the adapted linear

// The gates of this forward's tokens: NONE (plain LoRA: every gate 1), the task's gate row, or the router's.
static struct tensor gates_forward(struct adapter *a, struct adapter_slot *s, struct tensor x)
{
	const struct adapter_config *c = &a->cfg;
	struct adapter_device *d = &a->dev;
	int64_t T = x.dim[0];
	struct tensor G = tok_rows(s->G, T);
	if (s->kind == SLOT_LORA)
		return TENSOR_NONE;
	if (s->kind == SLOT_TASK) {
		gather_rows(G, d->task_gate, tok_rows(d->tok_task, T));
		return G;
	}
	struct tensor probs = tok_rows(s->probs, T), topk = tok_rows(s->topk, T);
	router_forward(G, probs, topk, x, WR_OF(d->params, s), BR_OF(d->params, s));
	if (a->training && !a->recomputing)
		router_stats(router_stats_of(a, s), probs, topk);
	if (a->training && !a->recomputing)
		router_count(tensor_at(d->loads, (int64_t)s->routed_index * s->n_routed, 1, s->n_routed, 0, 0),
			     tensor_at(d->loads, (int64_t)a->n_routed_slots * c->experts, 2, c->n_tasks, c->experts, 0), topk,
			     tok_rows(d->tok_task, T));
	return G;
}

void adapter_linear_forward(struct adapter *a, int l, enum adapter_target tgt, struct tensor y, struct tensor x)
{
	struct adapter_slot *s = slot_of(a, l, tgt);
	if (s->kind == SLOT_NONE)
		return;
	const struct adapter_config *c = &a->cfg;
	struct adapter_device *d = &a->dev;
	int64_t T = x.dim[0];
	if (T > a->cap)
		die(EXIT_FAIL, "adapter: %lld tokens but adapter_begin planned %lld", (long long)T, (long long)a->cap);
	struct tensor xin = dropped_input(a, s, l, tgt, x);
	struct tensor G = gates_forward(a, s, x);
	lora_forward(y, tok_rows(s->H, T), xin, A_OF(d->params, s), B_OF(d->params, s), G, s->scale);
	if (s->kind == SLOT_ROUTED && c->method == ADAPTER_SPARSEDOCTOR && a->training)
		contrastive_forward(con_stats_of(a, s), tok_rows(s->q, T), tok_rows(s->znorm, T), x, P_OF(d->params, s, a),
				    queue_of(a, s), fill_of(a, s), tok_rows(s->topk, T), c->con_tau);
}

void adapter_linear_backward(struct adapter *a, int l, enum adapter_target tgt, struct tensor dx, struct tensor dy,
			     struct tensor x)
{
	struct adapter_slot *s = slot_of(a, l, tgt);
	if (s->kind == SLOT_NONE)
		return;
	const struct adapter_config *c = &a->cfg;
	struct adapter_device *d = &a->dev;
	int64_t T = x.dim[0];
	int drop = dropout_active(a, s);
	struct tensor xin = dropped_input(a, s, l, tgt, x);
	struct tensor G = s->kind == SLOT_LORA ? TENSOR_NONE : tok_rows(s->G, T);
	struct tensor dG = s->kind == SLOT_LORA ? TENSOR_NONE : tensor_at(d->dgates, 0, 2, T, s->n_exp, 0);
	tensor_zero(dG);
	// with dropout, the input gradient of the experts goes back through the same mask
	struct tensor dxa = drop && dx.data ? tensor_at(d->dx_drop, 0, 2, T, s->d_in, 0) : dx;
	if (drop && dx.data)
		tensor_zero(dxa);
	lora_backward(dxa, A_OF(d->grads, s), B_OF(d->grads, s), dG, dy, xin, tok_rows(s->H, T), A_OF(d->params, s),
		      B_OF(d->params, s), G, s->scale);
	if (drop && dx.data)
		dropout_backward(dx, dxa, c->dropout, dropout_key(a, l, tgt, s->d_in));
	if (s->kind == SLOT_TASK) {
		scatter_rows_add(d->dtask_gate, dG, tok_rows(d->tok_task, T));
		return;
	}
	if (s->kind != SLOT_ROUTED)
		return;
	// the micro-batch's totals (stats, summed over the ranks that share it): the Switch loss is not a sum over
	// tokens, and the contrastive loss is a mean over the micro-batch's tokens that have a positive
	double lb_weight = c->lb_coef > 0 ? c->lb_coef / a->n_routed_slots * a->grad_scale : 0;
	router_backward(dx, WR_OF(d->grads, s), BR_OF(d->grads, s), dG, G, tok_rows(s->probs, T), tok_rows(s->topk, T), x,
			WR_OF(d->params, s), router_stats_of(a, s), a->stats[0], lb_weight);
	double con_tokens = a->stats[s->off_stats + 2 * s->n_routed + 1];
	if (c->method == ADAPTER_SPARSEDOCTOR && con_tokens > 0)
		contrastive_backward(dx, P_OF(d->grads, s, a), x, tok_rows(s->q, T), tok_rows(s->znorm, T),
				     P_OF(d->params, s, a), queue_of(a, s), fill_of(a, s), tok_rows(s->topk, T), c->con_tau,
				     c->con_lambda / a->n_routed_slots / con_tokens * a->grad_scale);
}

// After every linear's backward: the moelora gate's gradient through softmax, W_g and E.
void adapter_backward_finish(struct adapter *a)
{
	const struct adapter_config *c = &a->cfg;
	struct adapter_device *d = &a->dev;
	if (c->method != ADAPTER_MOELORA)
		return;
	task_gate_backward(mat(d->grads, a->off_E, c->n_tasks, c->task_emb), mat(d->grads, a->off_Wg, c->experts, c->task_emb),
			   d->dtask_gate, d->task_gate, mat(d->params, a->off_E, c->n_tasks, c->task_emb),
			   mat(d->params, a->off_Wg, c->experts, c->task_emb));
	tensor_zero(d->dtask_gate);
}

// From the micro-batch's statistics: lb = N Σ_e f_e P_e per routed slot, the contrastive mean, each averaged over
// the routed slots.
double adapter_aux_loss(struct adapter *a, double *lb, double *con)
{
	adapter_stats_to_host(a);
	double slb = 0, scon = 0, T = a->stats[0];
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		const struct adapter_slot *s = &a->slots[i];
		if (s->kind != SLOT_ROUTED)
			continue;
		const double *st = a->stats + s->off_stats;
		double l = 0;
		for (int e = 0; e < s->n_routed; e++)
			l += (st[e] / T) * (st[s->n_routed + e] / T);
		slb += T > 0 ? s->n_routed * l : 0;
		scon += st[2 * s->n_routed + 1] > 0 ? st[2 * s->n_routed] / st[2 * s->n_routed + 1] : 0;
	}
	int n = a->n_routed_slots ? a->n_routed_slots : 1;
	slb /= n;
	scon /= n;
	if (a->cfg.method != ADAPTER_SPARSEDOCTOR)
		scon = 0;
	if (lb)
		*lb = slb;
	if (con)
		*con = scon;
	return a->cfg.lb_coef * slb + a->cfg.con_lambda * scon;
}

// ----------------------------------------------------------------------------
// sparsedoctor memory queue

void adapter_queue_push(struct adapter *a)
{
	if (a->cfg.method != ADAPTER_SPARSEDOCTOR)
		return;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		struct adapter_slot *s = &a->slots[i];
		if (s->kind == SLOT_ROUTED)
			queue_push(queue_of(a, s), head_of(a, s), fill_of(a, s), tok_rows(s->q, a->T), tok_rows(s->topk, a->T));
	}
}

void adapter_queue_push_rows(struct adapter *a, const struct adapter_slot *s, struct tensor q, struct tensor top)
{
	queue_push(queue_of(a, s), head_of(a, s), fill_of(a, s), q, top);
}

static uint16_t *queue_row(const struct adapter *a, const struct adapter_slot *s, int e, int64_t i)
{
	return a->queue + s->off_queue + ((size_t)e * a->cfg.con_queue + (size_t)i) * a->cfg.con_proj;
}

void adapter_queue_get(const struct adapter *a, const struct adapter_slot *s, int e, int64_t i, real *out)
{
	const uint16_t *h = queue_row(a, s, e, i);
	for (int j = 0; j < a->cfg.con_proj; j++)
		out[j] = st_f16_to_f32(h[j]);
}

void adapter_queue_set(struct adapter *a, const struct adapter_slot *s, int e, int64_t i, const real *v)
{
	uint16_t *h = queue_row(a, s, e, i);
	for (int j = 0; j < a->cfg.con_proj; j++)
		h[j] = st_f32_to_f16((float)v[j]);
}
