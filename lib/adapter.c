// adapter.c — adapter state: presets, layout of the parameter families, initialisation, tensor names.
// The math of an adapted linear is in adapter_linear.c.
#include "adapter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "rng.h"

static const char *const method_names[] = {"lora", "moelora", "mingmoe", "sparsedoctor"};
static const char *const target_short[N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char *const target_path[N_TARGETS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
						   "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
						   "mlp.down_proj"};

#define ALL_TARGETS ((1u << N_TARGETS) - 1)

void adapter_config_preset(struct adapter_config *c, enum adapter_method method)
{
	memset(c, 0, sizeof *c);
	c->method = method;
	c->alpha = 32;
	c->rank = 16;
	c->targets = ALL_TARGETS;
	c->n_tasks = 1;
	c->task_emb = 64;
	c->top_k = 2;
	c->con_tau = 0.07;
	c->con_lambda = 0.1;
	c->con_proj = 128;
	c->con_queue = 4096;
	switch (method) {
	case ADAPTER_LORA:
		c->experts = 1;
		c->dropout = 0.05;   // PEFT LoRA as MING's attention LoRA uses it (TrainingArguments lora_dropout)
		break;
	case ADAPTER_MOELORA:      // MOELoRA experiments/moelora.bash: r 16 total, N 8, α 32, dropout 0.1
		c->experts = 8;
		c->dropout = 0.1;
		break;
	case ADAPTER_MINGMOE:      // MING sft_molora_r16a32.sh: r 16 per expert, α 32, N 8, k 2, lbl 0.01
	case ADAPTER_SPARSEDOCTOR:
		c->experts = 8;
		c->dropout = 0.05;
		c->lb_coef = 0.01;
		break;
	}
}

const char *adapter_method_name(enum adapter_method m) { return method_names[m]; }

int adapter_method_parse(const char *s, enum adapter_method *m)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, method_names[i]) == 0) {
			*m = (enum adapter_method)i;
			return 0;
		}
	return -1;
}

const char *adapter_target_name(enum adapter_target t) { return strchr(target_path[t], '.') + 1; }

int adapter_targets_parse(const char *s, unsigned *mask)
{
	*mask = 0;
	char *copy = xstrdup(s), *save = NULL;
	int rc = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int t = 0; t < N_TARGETS; t++)
			if (strcmp(tok, target_short[t]) == 0 || strcmp(tok, adapter_target_name(t)) == 0) {
				*mask |= 1u << t;
				found = 1;
			}
		if (!found)
			rc = -1;
	}
	free(copy);
	return *mask ? rc : -1;
}

void adapter_targets_format(unsigned mask, char *buf, size_t n)
{
	size_t used = 0;
	buf[0] = 0;
	for (int t = 0; t < N_TARGETS; t++)
		if (mask & (1u << t) && used < n)
			used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? "," : "", target_short[t]);
}

static int is_mlp(int t) { return t >= TGT_GATE; }

// The slot plan: which kind of adapter each target gets under the method.
static enum slot_kind slot_kind_of(const struct adapter_config *c, int t)
{
	if (!(c->targets & (1u << t)))
		return SLOT_NONE;
	switch (c->method) {
	case ADAPTER_LORA:
		return SLOT_LORA;
	case ADAPTER_MOELORA:
		return SLOT_TASK;
	default:
		return is_mlp(t) ? SLOT_ROUTED : SLOT_LORA;
	}
}

static void check_config(const struct adapter_config *c)
{
	if (c->experts < 1 || c->rank < 1 || c->alpha <= 0)
		die(EXIT_USAGE, "adapter: experts, rank and alpha must be positive");
	if (c->method == ADAPTER_MOELORA && c->rank % c->experts)
		die(EXIT_USAGE, "moelora: the total rank %d must be a multiple of the %d experts", c->rank, c->experts);
	if ((c->method == ADAPTER_MINGMOE || c->method == ADAPTER_SPARSEDOCTOR) &&
	    (c->top_k < 1 || c->top_k > c->experts))
		die(EXIT_USAGE, "top-k must be between 1 and the %d experts", c->experts);
	if (c->dropout < 0 || c->dropout >= 1)
		die(EXIT_USAGE, "dropout must be in [0, 1)");
	if (c->n_tasks < 1 || c->task_emb < 1 || c->shared_experts < 0)
		die(EXIT_USAGE, "adapter: bad task table, task embedding or shared expert count");
	if (c->method == ADAPTER_SPARSEDOCTOR && (c->con_proj < 1 || c->con_queue < 1 || c->con_tau <= 0))
		die(EXIT_USAGE, "sparsedoctor: projection, queue length and temperature must be positive");
	if (!c->targets)
		die(EXIT_USAGE, "adapter: no target linears");
}

// torch.nn.init.kaiming_uniform_(a=√5) on a (out, fan_in) weight: bound = gain·√(3/fan_in), gain = √(2/(1+a²)),
// i.e. 1/√fan_in — also nn.Linear's default weight and bias init.
static void init_uniform(struct rng *r, real *w, size_t n, double bound)
{
	for (size_t i = 0; i < n; i++)
		w[i] = (real)((2.0 * rng_uniform(r) - 1.0) * bound);
}

static void init_normal(struct rng *r, real *w, size_t n, double std)
{
	for (size_t i = 0; i < n; i++)
		w[i] = (real)(rng_normal(r) * std);
}

struct adapter *adapter_new(const struct adapter_config *cfg, int n_layers, const int64_t dims[N_TARGETS][2])
{
	check_config(cfg);
	struct adapter *a = xcalloc(1, sizeof *a);
	a->cfg = *cfg;
	a->n_layers = n_layers;
	memcpy(a->dims, dims, sizeof a->dims);
	a->slots = xcalloc((size_t)n_layers * N_TARGETS, sizeof *a->slots);
	const struct adapter_config *c = &a->cfg;
	size_t off = 0;
	if (c->method == ADAPTER_MOELORA) {
		a->off_E = off;
		off += (size_t)c->n_tasks * c->task_emb;
		a->off_Wg = off;
		off += (size_t)c->experts * c->task_emb;
	}
	for (int l = 0; l < n_layers; l++) {
		for (int t = 0; t < N_TARGETS; t++) {
			struct adapter_slot *s = &a->slots[l * N_TARGETS + t];
			s->kind = slot_kind_of(c, t);
			if (s->kind == SLOT_NONE)
				continue;
			s->d_in = dims[t][0];
			s->d_out = dims[t][1];
			int r_total;
			switch (s->kind) {
			case SLOT_TASK:
				s->n_exp = c->experts;
				s->r = c->rank / c->experts;
				r_total = c->rank;
				break;
			case SLOT_ROUTED:
				s->n_routed = c->experts;
				s->n_exp = c->experts + c->shared_experts;
				s->r = r_total = c->rank;
				a->n_routed_slots++;
				break;
			default:
				s->n_exp = 1;
				s->r = r_total = c->rank;
				break;
			}
			s->scale = (real)(c->rslora ? c->alpha / sqrt((double)r_total) : c->alpha / r_total);
			size_t er = (size_t)s->n_exp * s->r;
			s->off_A = off;
			off += er * (size_t)s->d_in;
			s->off_B = off;
			off += (size_t)s->d_out * er;
			if (s->kind == SLOT_ROUTED) {
				s->off_Wr = off;
				off += (size_t)s->n_routed * s->d_in;
				s->off_br = off;
				off += (size_t)s->n_routed;
				if (c->method == ADAPTER_SPARSEDOCTOR) {
					s->off_P = off;
					off += (size_t)c->con_proj * s->d_in;
					s->off_queue = a->n_queue;
					a->n_queue += (size_t)s->n_routed * c->con_queue * c->con_proj;
				}
			}
		}
	}
	a->n_params = off;
	// one allocation for the four families
	a->params = xcalloc(4 * off + 1, sizeof(real));
	a->grads = a->params + off;
	a->adam_m = a->grads + off;
	a->adam_v = a->adam_m + off;
	a->queue = xcalloc(a->n_queue + 1, sizeof(uint16_t));
	size_t N = (size_t)c->experts, R = (size_t)a->n_routed_slots;
	a->queue_pos = xcalloc(2 * R * N + 1, sizeof(int32_t));
	a->loads = xcalloc(R * N + (size_t)c->n_tasks * N + 1, sizeof(int32_t));
	a->task_load = a->loads + R * N;
	a->n_stats = 1;
	for (int i = 0; i < n_layers * N_TARGETS; i++)
		if (a->slots[i].kind == SLOT_ROUTED) {
			a->slots[i].off_stats = a->n_stats;
			a->n_stats += 2 * (size_t)a->slots[i].n_routed + 2;
		}
	a->stats = xcalloc(a->n_stats, sizeof(double));
	a->task_gate = xcalloc((size_t)c->n_tasks * N + 1, sizeof(real));
	for (int i = 0, ri = 0; i < n_layers * N_TARGETS; i++) {
		struct adapter_slot *s = &a->slots[i];
		if (s->kind != SLOT_ROUTED)
			continue;
		s->routed_index = ri;
		s->load = a->loads + (size_t)ri * N;
		s->q_head = a->queue_pos + (size_t)ri * 2 * N;
		s->q_fill = s->q_head + N;
		ri++;
	}

	// Initialisation, in layout order from one generator.
	struct rng r;
	rng_seed(&r, c->seed, 0);
	if (c->method == ADAPTER_MOELORA) {
		init_normal(&r, a->params + a->off_E, (size_t)c->n_tasks * c->task_emb, 1.0);   // nn.Embedding
		init_uniform(&r, a->params + a->off_Wg, (size_t)c->experts * c->task_emb, 1.0 / sqrt(c->task_emb));
	}
	for (int i = 0; i < n_layers * N_TARGETS; i++) {
		struct adapter_slot *s = &a->slots[i];
		if (s->kind == SLOT_NONE)
			continue;
		size_t nA = (size_t)s->n_exp * s->r * s->d_in;
		if (s->kind == SLOT_TASK)
			init_normal(&r, a->params + s->off_A, nA, 0.01);   // MOELoRA reset_lora_parameters
		else
			init_uniform(&r, a->params + s->off_A, nA, 1.0 / sqrt((double)s->d_in));
		// B = 0 (calloc)
		if (s->kind == SLOT_ROUTED) {
			double bound = 1.0 / sqrt((double)s->d_in);
			init_uniform(&r, a->params + s->off_Wr, (size_t)s->n_routed * s->d_in, bound);
			init_uniform(&r, a->params + s->off_br, (size_t)s->n_routed, bound);
			if (c->method == ADAPTER_SPARSEDOCTOR)
				init_uniform(&r, a->params + s->off_P, (size_t)c->con_proj * s->d_in, bound);
		}
	}
	adapter_place(a, DEVICE_CPU, DTYPE_REAL);
	return a;
}

void adapter_free(struct adapter *a)
{
	if (!a)
		return;
	ops_free(a->dev.device, a->dev.mem);
	ops_free(a->dev.device, a->dev.act_mem);
	free(a->dev.host_task);
	free(a->slots);
	free(a->params);
	free(a->queue);
	free(a->queue_pos);
	free(a->loads);
	free(a->stats);
	free(a->task_gate);
	free(a);
}

static void add_tensor(struct adapter_tensor **v, size_t *n, size_t *cap, const char *name, int ndim, int64_t d0,
		       int64_t d1, size_t off, int64_t ld)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		*v = xrealloc(*v, *cap * sizeof **v);
	}
	struct adapter_tensor *t = &(*v)[(*n)++];
	snprintf(t->name, sizeof t->name, "%s", name);
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = ndim == 2 ? d1 : 1;
	t->off = off;
	t->ld = ndim == 2 ? d1 : 1;
	if (ld)
		t->ld = ld;
}

size_t adapter_tensors(const struct adapter *a, struct adapter_tensor **out)
{
	struct adapter_tensor *v = NULL;
	size_t n = 0, cap = 0;
	const struct adapter_config *c = &a->cfg;
	char name[256];
	if (c->method == ADAPTER_MOELORA) {
		add_tensor(&v, &n, &cap, "moelora.task_embedding.weight", 2, c->n_tasks, c->task_emb, a->off_E, 0);
		add_tensor(&v, &n, &cap, "moelora.gate.weight", 2, c->experts, c->task_emb, a->off_Wg, 0);
	}
	for (int l = 0; l < a->n_layers; l++) {
		for (int t = 0; t < N_TARGETS; t++) {
			const struct adapter_slot *s = &a->slots[l * N_TARGETS + t];
			if (s->kind == SLOT_NONE)
				continue;
			char prefix[128];
			snprintf(prefix, sizeof prefix, "base_model.model.model.layers.%d.%s", l, target_path[t]);
			int64_t er = (int64_t)s->n_exp * s->r;
			for (int e = 0; e < s->n_exp; e++) {
				char who[48] = "";
				if (s->kind != SLOT_LORA)
					snprintf(who, sizeof who, e < s->n_routed || s->kind == SLOT_TASK ? ".experts.%d" : ".shared.%d",
						 e < s->n_routed || s->kind == SLOT_TASK ? e : e - s->n_routed);
				snprintf(name, sizeof name, "%s%s.lora_A.weight", prefix, who);
				add_tensor(&v, &n, &cap, name, 2, s->r, s->d_in, s->off_A + (size_t)e * s->r * s->d_in, 0);
				snprintf(name, sizeof name, "%s%s.lora_B.weight", prefix, who);
				add_tensor(&v, &n, &cap, name, 2, s->d_out, s->r, s->off_B + (size_t)e * s->r, er);
			}
			if (s->kind == SLOT_ROUTED) {
				snprintf(name, sizeof name, "%s.router.weight", prefix);
				add_tensor(&v, &n, &cap, name, 2, s->n_routed, s->d_in, s->off_Wr, 0);
				snprintf(name, sizeof name, "%s.router.bias", prefix);
				add_tensor(&v, &n, &cap, name, 1, s->n_routed, 0, s->off_br, 0);
				if (c->method == ADAPTER_SPARSEDOCTOR) {
					snprintf(name, sizeof name, "%s.contrastive_proj.weight", prefix);
					add_tensor(&v, &n, &cap, name, 2, c->con_proj, s->d_in, s->off_P, 0);
				}
			}
		}
	}
	*out = v;
	return n;
}

void adapter_tensor_get(const struct adapter_tensor *t, const real *family, float *out)
{
	for (int64_t i = 0; i < t->shape[0]; i++)
		for (int64_t j = 0; j < t->shape[1]; j++)
			out[i * t->shape[1] + j] = (float)family[t->off + (size_t)(i * t->ld + j)];
}

void adapter_tensor_set(const struct adapter_tensor *t, real *family, const float *in)
{
	for (int64_t i = 0; i < t->shape[0]; i++)
		for (int64_t j = 0; j < t->shape[1]; j++)
			family[t->off + (size_t)(i * t->ld + j)] = (real)in[i * t->shape[1] + j];
}

void adapter_zero_grads(struct adapter *a) { tensor_zero(a->dev.grads); }

void adapter_zero_loads(struct adapter *a) { tensor_zero(a->dev.loads); }
