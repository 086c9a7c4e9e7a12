// test_grad.c — every gradient against central finite differences, in DOUBLE precision.
//
// This file compiles the engine's own sources (ops_cpu.c, model.c, model_train.c, adapter*.c) with
// MEDMOE_DOUBLE, so `real` is double and BLAS is dgemm: the same code as the fp32 programs, run in fp64.  With
// h = 1e-5 a central difference has truncation error ~h²·f''' ≈ 1e-10 and rounding error ~1e-16/h ≈ 1e-11, far
// below the 1e-6 relative tolerance asked of each tensor (llm.c checks its fp32 gradients at ~1e-2).
// The model checks use the fourth-order difference (8(f(x+h) − f(x−h)) − (f(x+2h) − f(x−2h)))/12h with h = 1e-4:
// truncation ~h⁴ ≈ 1e-16 and rounding ~1e-16/h ≈ 1e-12, so even the small gradients of a rarely routed expert
// (~1e-5) are checked to better than 1e-6 relative.  An expert that no token chose has an exactly zero gradient
// and exactly zero differences; that is accepted, as long as most tensors of a method are not zero.  Top-k
// routing is piecewise constant: an element whose ±2h perturbation changes any token's chosen experts sits at a
// kink, is skipped and counted (at most a tenth of them).
// The objective itself carries ~1e-15 relative rounding (thousands of fp64 operations), which the difference
// quotient turns into ~1e-11 absolute noise; gradients below ~1e-4 (a rarely routed expert) therefore get an
// absolute floor of FD_FLOOR = 1e-10 on top of the 1e-6 relative tolerance.
// The symbols defined here take the place of the archive's fp32 objects at link time.
#include "unit.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#define MEDMOE_DOUBLE 1
#include "../../lib/ops.c"
#include "../../lib/ops_cpu.c"
#include "../../lib/ops_cpu_layers.c"
#include "../../lib/ops_cpu_adapter.c"
#include "../../lib/tensor_plan.c"
#include "../../lib/model_load.c"
#include "../../lib/model.c"
#include "../../lib/model_train.c"
#include "../../lib/adapter.c"
#include "../../lib/adapter_device.c"
#include "../../lib/adapter_linear.c"

#define FD_H 1e-5
#define FD_TOL 1e-6
#define FD_FLOOR 1e-10

static void fill(struct rng *r, real *p, size_t n, double scale)
{
	for (size_t i = 0; i < n; i++)
		p[i] = scale * rng_normal(r);
}

// Compare ANALYTIC with the central difference of F over the N parameters at P.  Per tensor:
// ‖g − fd‖ ≤ tol·‖fd‖ and every |g_i − fd_i| ≤ tol·max|fd|.
static void check_tensor(const char *name, real *p, size_t n, size_t stride, const real *analytic,
			 double (*f)(void *), void *ctx)
{
	double num = 0, den = 0, maxfd = 0, maxerr = 0;
	for (size_t i = 0; i < n; i += stride) {
		real save = p[i];
		p[i] = save + FD_H;
		double fp = f(ctx);
		p[i] = save - FD_H;
		double fm = f(ctx);
		p[i] = save;
		double fd = (fp - fm) / (2 * FD_H), g = analytic[i];
		num += (g - fd) * (g - fd);
		den += fd * fd;
		maxfd = fmax(maxfd, fabs(fd));
		maxerr = fmax(maxerr, fabs(g - fd));
	}
	if (den == 0)
		fail_msg("%s: finite differences are all zero (the test would check nothing)", name);
	if (sqrt(num) > FD_TOL * sqrt(den) || maxerr > FD_TOL * maxfd)
		fail_msg("%s: relative error %.3g (max element error %.3g of max %.3g)", name, sqrt(num / den), maxerr,
			 maxfd);
}

// ----------------------------------------------------------------------------
// op weight gradients (the model path below only exercises input gradients)

struct op_ctx {
	int which;
	real *x, *w, *b, *out, *aux, *tile, *coef;
	int32_t *ids;
	int64_t T, C, OC;
};

static double op_objective(void *vctx)
{
	struct op_ctx *c = vctx;
	int64_t T = c->T, C = c->C, OC = c->OC;
	double s = 0;
	switch (c->which) {
	case 0:   // matmul with bias
		matmul_forward(tensor2(c->out, T, OC), tensor2(c->x, T, C), tensor2(c->w, OC, C), tensor1(c->b, OC));
		for (int64_t i = 0; i < T * OC; i++)
			s += c->coef[i] * c->out[i];
		break;
	case 1:   // rmsnorm
		rmsnorm_forward(tensor2(c->out, T, C), tensor1(c->aux, T), tensor2(c->x, T, C), tensor1(c->w, C), 1e-6);
		for (int64_t i = 0; i < T * C; i++)
			s += c->coef[i] * c->out[i];
		break;
	case 2:   // embedding: a row gather
		gather_rows(tensor2(c->out, T, C), tensor2(c->w, OC, C), tensor_i32(c->ids, T));
		for (int64_t i = 0; i < T * C; i++)
			s += c->coef[i] * c->out[i];
		break;
	case 3:   // LM head + CE, vocabulary OC
		lmhead_ce_forward(tensor1(c->out, T), tensor1(c->aux, T), tensor2(c->x, T, C), tensor2(c->w, OC, C),
				  tensor_i32(c->ids, T));
		for (int64_t i = 0; i < T; i++)
			s += c->coef[i] * c->out[i];
		break;
	}
	return s;
}

static void test_op_weight_grads(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 7, 0);
	int64_t T = 7, C = 6, OC = 11;
	real x[7 * 6], w[11 * 6], b[11], out[7 * 11], aux[7], tile[15], coef[7 * 11];
	real dx[7 * 6], dw[11 * 6], db[11];
	int32_t ids[7] = {3, 0, 10, 3, 5, 9, 1};
	struct op_ctx c = {0, x, w, b, out, aux, tile, coef, ids, T, C, OC};
	fill(&r, x, (size_t)(T * C), 1);
	fill(&r, w, (size_t)(OC * C), 1);
	fill(&r, b, (size_t)OC, 1);
	fill(&r, coef, (size_t)(T * OC), 1);

	memset(dx, 0, sizeof dx), memset(dw, 0, sizeof dw), memset(db, 0, sizeof db);
	matmul_backward(tensor2(dx, T, C), tensor2(dw, OC, C), tensor1(db, OC), tensor2(coef, T, OC), tensor2(x, T, C),
			tensor2(w, OC, C));
	check_tensor("matmul dinp", x, (size_t)(T * C), 1, dx, op_objective, &c);
	check_tensor("matmul dweight", w, (size_t)(OC * C), 1, dw, op_objective, &c);
	check_tensor("matmul dbias", b, (size_t)OC, 1, db, op_objective, &c);

	c.which = 1;
	op_objective(&c);
	memset(dx, 0, sizeof dx), memset(dw, 0, sizeof dw);
	rmsnorm_backward(tensor2(dx, T, C), tensor1(dw, C), tensor2(coef, T, C), tensor2(x, T, C), tensor1(w, C),
			 tensor1(aux, T));
	check_tensor("rmsnorm dinp", x, (size_t)(T * C), 1, dx, op_objective, &c);
	check_tensor("rmsnorm dweight", w, (size_t)C, 1, dw, op_objective, &c);

	c.which = 2;
	memset(dw, 0, sizeof dw);
	scatter_rows_add(tensor2(dw, OC, C), tensor2(coef, T, C), tensor_i32(ids, T));
	check_tensor("embedding dwte", w, (size_t)(OC * C), 1, dw, op_objective, &c);

	c.which = 3;
	op_objective(&c);
	memset(dx, 0, sizeof dx), memset(dw, 0, sizeof dw);
	lmhead_ce_backward(tensor2(dx, T, C), tensor2(dw, OC, C), tensor2(x, T, C), tensor2(w, OC, C), tensor_i32(ids, T),
			   tensor1(aux, T), tensor1(coef, T));
	check_tensor("lmhead dx", x, (size_t)(T * C), 1, dx, op_objective, &c);
	check_tensor("lmhead dweight", w, (size_t)(OC * C), 1, dw, op_objective, &c);
}

// attention (GQA 4:2, three documents), RoPE and SwiGLU: input gradients of Σ coef·out
struct act_ctx {
	int which;
	real *q, *k, *v, *out, *lse, *scratch, *coef, *inv_freq;
	int32_t *offs, *pos;
};

#define AT 17   // ≥ 16 queries: the forward takes the CPU backend's matrix-product path
#define ANH 4
#define ANKV 2
#define AHD 6

static double act_objective(void *vctx)
{
	struct act_ctx *c = vctx;
	double s = 0;
	int64_t n = (int64_t)AT * ANH * AHD;
	if (c->which == 0) {
		attention_forward(tensor3(c->out, AT, ANH, AHD), tensor2(c->lse, ANH, AT), tensor3(c->q, AT, ANH, AHD),
				  tensor3(c->k, AT, ANKV, AHD), tensor3(c->v, AT, ANKV, AHD), tensor_i32(c->offs, 4),
				  TENSOR_NONE, 3, 0);
	} else if (c->which == 1) {
		memcpy(c->out, c->q, (size_t)n * sizeof(real));
		rope_forward(tensor3(c->out, AT, ANH, AHD), tensor_i32(c->pos, AT), tensor1(c->inv_freq, AHD / 2));
	} else {
		swiglu_forward(tensor2(c->out, AT, ANH * AHD), tensor2(c->q, AT, ANH * AHD), tensor2(c->k, AT, ANH * AHD));
	}
	for (int64_t i = 0; i < n; i++)
		s += c->coef[i] * c->out[i];
	return s;
}

static void test_op_input_grads(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 8, 0);
	size_t nq = (size_t)AT * ANH * AHD, nk = (size_t)AT * ANKV * AHD;
	real q[AT * ANH * AHD], k[AT * ANH * AHD], v[AT * ANKV * AHD], out[AT * ANH * AHD], lse[ANH * AT];
	real scratch[4 * AT], coef[AT * ANH * AHD], inv_freq[AHD / 2];
	real dq[AT * ANH * AHD], dk[AT * ANH * AHD], dv[AT * ANKV * AHD];
	int32_t offs[4] = {0, 5, 6, AT}, pos[AT];
	for (int t = 0; t < AT; t++)
		pos[t] = t < 5 ? t : t < 6 ? 0 : t - 6;
	for (int i = 0; i < AHD / 2; i++)
		inv_freq[i] = pow(10000.0, -2.0 * i / AHD);
	fill(&r, q, nq, 1), fill(&r, k, nq, 1), fill(&r, v, nk, 1), fill(&r, coef, nq, 1);
	struct act_ctx c = {0, q, k, v, out, lse, scratch, coef, inv_freq, offs, pos};

	act_objective(&c);
	memset(dq, 0, sizeof dq), memset(dk, 0, sizeof dk), memset(dv, 0, sizeof dv);
	attention_backward(tensor3(dq, AT, ANH, AHD), tensor3(dk, AT, ANKV, AHD), tensor3(dv, AT, ANKV, AHD),
			   tensor3(coef, AT, ANH, AHD), tensor3(out, AT, ANH, AHD), tensor2(lse, ANH, AT),
			   tensor3(q, AT, ANH, AHD), tensor3(k, AT, ANKV, AHD), tensor3(v, AT, ANKV, AHD), tensor_i32(offs, 4), 3,
			   0);
	check_tensor("attention dq", q, nq, 1, dq, act_objective, &c);
	check_tensor("attention dk", k, nk, 1, dk, act_objective, &c);
	check_tensor("attention dv", v, nk, 1, dv, act_objective, &c);

	c.which = 1;
	memcpy(dq, coef, sizeof dq);
	rope_backward(tensor3(dq, AT, ANH, AHD), tensor_i32(pos, AT), tensor1(inv_freq, AHD / 2));
	check_tensor("rope dx", q, nq, 1, dq, act_objective, &c);

	c.which = 2;
	memset(dq, 0, sizeof dq), memset(dk, 0, sizeof dk);
	swiglu_backward(tensor2(dq, AT, ANH * AHD), tensor2(dk, AT, ANH * AHD), tensor2(coef, AT, ANH * AHD),
			tensor2(q, AT, ANH * AHD), tensor2(k, AT, ANH * AHD));
	check_tensor("swiglu dgate", q, nq, 1, dq, act_objective, &c);
	check_tensor("swiglu dup", k, nq, 1, dk, act_objective, &c);

	real a[5] = {0}, b[5] = {0}, g[5] = {1, -2, 3, 0.5, 7};
	residual_backward(tensor1(a, 5), tensor1(b, 5), tensor1(g, 5));
	assert_memory_equal(a, g, sizeof g);
	assert_memory_equal(b, g, sizeof g);
}

// ----------------------------------------------------------------------------
// the whole model with each method: every adapter tensor

struct model_ctx {
	struct model *m;
	struct model_train *tr;
	struct adapter *a;
	int32_t ids[24], doc_offsets[4], doc_task[3];
	uint8_t mask[24];
	int64_t T;
	int n_docs;
};

static double model_objective(void *vctx)
{
	struct model_ctx *c = vctx;
	double ce = model_train_forward(c->tr, c->ids, c->T, c->doc_offsets, c->n_docs, c->doc_task, c->mask, NULL);
	return ce + adapter_aux_loss(c->a, NULL, NULL);
}

// A tiny Qwen3-like model (q/k norm, qkv bias, GQA) with random weights.
static struct model *tiny_model(struct rng *r)
{
	struct model_config cfg = {.arch = ARCH_QWEN3, .hidden = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
				   .head_dim = 4, .ffn = 24, .vocab = 37, .rms_eps = 1e-6f, .qkv_bias = 1, .qk_norm = 1,
				   .rope_theta = 10000, .rope_type = ROPE_DEFAULT};
	struct model *m = model_new(&cfg);
	struct weight_spec *specs;
	size_t n = weight_specs(m, &specs);
	for (size_t i = 0; i < n; i++)
		fill(r, specs[i].dst->data, (size_t)tensor_numel(*specs[i].dst), 0.3);
	free(specs);
	for (int l = 0; l < cfg.n_layers; l++)   // norm weights near 1, as trained models have
		for (int i = 0; i < cfg.hidden; i++)
			((real *)m->w.layers[l].ln1.data)[i] += 1, ((real *)m->w.layers[l].ln2.data)[i] += 1;
	return m;
}

static void model_dims(const struct model *m, int64_t dims[N_TARGETS][2])
{
	const struct model_config *c = &m->cfg;
	int64_t C = c->hidden, F = c->ffn, QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
	int64_t d[N_TARGETS][2] = {{C, QD}, {C, KD}, {C, KD}, {QD, C}, {C, F}, {C, F}, {F, C}};
	memcpy(dims, d, sizeof d);
}

// The chosen experts of every routed linear, concatenated (to detect a perturbation crossing a routing kink).
static size_t routes(const struct adapter *a, int32_t *out)
{
	size_t n = 0;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		const struct adapter_slot *s = &a->slots[i];
		if (s->kind != SLOT_ROUTED)
			continue;
		if (out)
			memcpy(out + n, s->topk.data, (size_t)(a->T * a->cfg.top_k) * sizeof(int32_t));
		n += (size_t)(a->T * a->cfg.top_k);
	}
	return n;
}

static void check_method(enum adapter_method method, int recompute, double dropout)
{
	struct rng r;
	rng_seed(&r, 11 + method, 0);
	struct model_ctx c = {0};
	c.m = tiny_model(&r);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, method);
	cfg.experts = 4;
	cfg.rank = method == ADAPTER_MOELORA ? 8 : 3;
	cfg.top_k = 2;
	cfg.n_tasks = 3;
	cfg.task_emb = 5;
	cfg.dropout = dropout;
	cfg.lb_coef = 0.3;   // large, so its gradient is visible next to the cross-entropy's
	cfg.shared_experts = method == ADAPTER_MINGMOE ? 1 : 0;
	cfg.con_proj = 6;
	cfg.con_queue = 5;
	cfg.con_lambda = 0.5;
	cfg.con_tau = 0.5;
	cfg.seed = 3;
	int64_t dims[N_TARGETS][2];
	model_dims(c.m, dims);
	c.a = adapter_new(&cfg, c.m->cfg.n_layers, dims);
	fill(&r, c.a->params, c.a->n_params, 0.2);   // B = 0 at init would hide every A gradient
	if (c.a->n_queue) {
		// a partly filled queue of unit vectors: expert e holds e+1 entries (expert 3 is full... up to 5)
		for (int i = 0; i < c.a->n_layers * N_TARGETS; i++) {
			struct adapter_slot *s = &c.a->slots[i];
			if (s->kind != SLOT_ROUTED)
				continue;
			for (int e = 0; e < s->n_routed; e++) {
				s->q_fill[e] = e + 1 < cfg.con_queue ? e + 1 : cfg.con_queue;
				for (int64_t k = 0; k < s->q_fill[e]; k++) {
					real row[16], nn = 0;
					fill(&r, row, (size_t)cfg.con_proj, 1);
					for (int j = 0; j < cfg.con_proj; j++)
						nn += row[j] * row[j];
					for (int j = 0; j < cfg.con_proj; j++)
						row[j] /= sqrt(nn);
					adapter_queue_set(c.a, s, e, k, row);
				}
			}
		}
	}
	model_set_adapter(c.m, c.a, 0);
	c.a->training = 1;
	c.tr = model_train_new(c.m);
	model_train_set_recompute(c.tr, recompute);
	c.T = 19;
	c.n_docs = 3;
	int32_t offs[4] = {0, 7, 15, 19}, tasks[3] = {2, 0, 1};
	memcpy(c.doc_offsets, offs, sizeof offs);
	memcpy(c.doc_task, tasks, sizeof tasks);
	for (int64_t t = 0; t < c.T; t++) {
		c.ids[t] = (int32_t)(rng_next(&r) % 37);
		c.mask[t] = t % 5 != 1;
	}
	adapter_zero_grads(c.a);
	model_objective(&c);
	model_train_backward(c.tr, 1.0);
	size_t n_routes = routes(c.a, NULL), n_kinks = 0, n_checked = 0;
	int32_t *base_routes = xmalloc((n_routes + 1) * sizeof(int32_t)), *now = xmalloc((n_routes + 1) * sizeof(int32_t));
	routes(c.a, base_routes);
	struct adapter_tensor *ts;
	size_t n = adapter_tensors(c.a, &ts), n_zero = 0;
	double worst = 0;
	char worst_name[400] = "";
	real *g = xmalloc(c.a->n_params * sizeof(real));
	memcpy(g, c.a->grads, c.a->n_params * sizeof(real));
	for (size_t i = 0; i < n; i++) {
		char what[320];
		snprintf(what, sizeof what, "%s %s%s", adapter_method_name(method), ts[i].name, recompute ? " (recompute)" : "");
		// element e of the tensor lives at off + row·ld + col (B blocks are strided within B_all)
		// up to 24 elements spread over the tensor (coprime stride), to keep the test to seconds
		size_t cnt = (size_t)(ts[i].shape[0] * ts[i].shape[1]), stride = cnt > 24 ? cnt / 24 : 1;
		while (stride > 1 && cnt % stride == 0)
			stride--;
		double num = 0, den = 0, maxfd = 0, maxerr = 0, h = 1e-4;
		for (size_t k = 0; k < cnt && k < 24; k++) {
			size_t e = k * stride % cnt;
			n_checked++;
			size_t idx = ts[i].off + (size_t)((int64_t)(e / ts[i].shape[1]) * ts[i].ld + (int64_t)(e % ts[i].shape[1]));
			real save = c.a->params[idx];
			double f[4], d[4] = {-2, -1, 1, 2};
			int kink = 0;
			for (int j = 0; j < 4; j++) {
				c.a->params[idx] = save + d[j] * h;
				f[j] = model_objective(&c);
				routes(c.a, now);
				kink |= memcmp(now, base_routes, n_routes * sizeof(int32_t)) != 0;
			}
			c.a->params[idx] = save;
			if (kink) {
				n_kinks++;
				continue;
			}
			double fd = (8 * (f[2] - f[1]) - (f[3] - f[0])) / (12 * h), an = g[idx];
			num += (an - fd) * (an - fd);
			den += fd * fd;
			maxfd = fmax(maxfd, fabs(fd));
			maxerr = fmax(maxerr, fabs(an - fd));
		}
		if (den == 0 && maxerr == 0) {
			n_zero++;
			continue;
		}
		if (sqrt(num) > FD_TOL * sqrt(den) + FD_FLOOR * 5 || maxerr > FD_TOL * maxfd + FD_FLOOR)
			fail_msg("%s: relative error %.3g (max element error %.3g of max %.3g)", what, sqrt(num / den),
				 maxerr, maxfd);
		if (sqrt(num / den) > worst) {
			worst = sqrt(num / den);
			snprintf(worst_name, sizeof worst_name, "%s (gradient norm %.2g)", ts[i].name, sqrt(den));
		}
	}
	if (getenv("FD_VERBOSE"))
		printf("# %s%s: %zu tensors, %zu elements, %zu at routing kinks, %zu zero; worst relative error %.2g: %s\n",
		       adapter_method_name(method), recompute ? " (recompute)" : "", n, n_checked, n_kinks, n_zero, worst,
		       worst_name);
	if (n_kinks * 10 > n_checked)
		fail_msg("%s: %zu of %zu perturbations crossed a routing kink", adapter_method_name(method), n_kinks, n_checked);
	free(base_routes);
	free(now);
	if (n_zero * 4 > n)
		fail_msg("%s: %zu of %zu tensors have zero gradients", adapter_method_name(method), n_zero, n);
	free(ts);
	free(g);
	adapter_free(c.a);
	model_train_free(c.tr);
	model_free(c.m);
}

static void test_fd_lora(void **state) { (void)state; check_method(ADAPTER_LORA, 0, 0.2); }
static void test_fd_moelora(void **state) { (void)state; check_method(ADAPTER_MOELORA, 0, 0.1); }
static void test_fd_mingmoe(void **state) { (void)state; check_method(ADAPTER_MINGMOE, 0, 0.0); }
static void test_fd_sparsedoctor(void **state) { (void)state; check_method(ADAPTER_SPARSEDOCTOR, 0, 0.05); }
static void test_fd_recompute(void **state) { (void)state; check_method(ADAPTER_MINGMOE, 1, 0.1); }

int main(void)
{
	omp_set_num_threads(1);   // tiny matrices: threads cost more than they give
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_op_weight_grads), cmocka_unit_test(test_op_input_grads), cmocka_unit_test(test_fd_lora),
		cmocka_unit_test(test_fd_moelora),      cmocka_unit_test(test_fd_mingmoe),
		cmocka_unit_test(test_fd_sparsedoctor), cmocka_unit_test(test_fd_recompute),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
