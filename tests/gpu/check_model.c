// check_model.c — model-level CPU vs GPU parity for make check-gpu (issue 12): logits, loss and every adapter
// gradient of one checkpoint and each method, the CPU backend being the reference, as llm.c's test_gpt2.cu compares
// its CUDA model with the reference dump.
//
// usage: check_model [-c] [-s SEED] [-m METHOD] F32_DIR BF16_DIR
//        check_model -p      exit 0 when a GPU can be used (and print what it is), else 1
//   F32_DIR   a tiny checkpoint with f32 weights: the CPU (fp32) against CUDA in f32 mode (--dtype f32: f32 weights
//             and activations), each quantity within 1e-5 relative (issue 12);
//   BF16_DIR  the same weights rounded to bf16 (init-base --dtype bf16, same seed): the CPU (fp32 compute on the
//             bf16 weights) against CUDA in bf16 mode (the default: bf16 weights and activations, f32 statistics
//             and adapter).  Issue 12 asks 1e-2 there; see "bf16 tolerance" below.
//   -c        compare the CPU with a second CPU model instead of the GPU: a self-test of the comparisons on a
//             machine without a GPU (every row must PASS with zero errors).
// Errors are ‖Δ‖/‖ref‖ per tensor (the logits, each adapter gradient tensor), |Δ|/|ref| per loss; the weighted
// auxiliary loss against the objective it enters.  What 1e-5 leaves in f32: the CPU itself, run with OpenBLAS's
// Haswell kernels and then its SkylakeX ones (other summation orders), differs by ~6e-7 in the logits and at most
// 4e-6 in a gradient tensor (a router bias; ~1.5e-6 typically) on these checkpoints (measured on the build
// machine, 2026-11-29): a GPU's different summation orders should land near that.
//
// For each method (all four, or -m's) and mode, one packed batch of several documents (one of a single token),
// with a task id per document and a partial loss mask, runs through
//   1. model_forward with the adapter in evaluation mode: the (T,V) logits and the mean loss;
//   2. model_train_forward + model_train_backward in training mode (dropout on, the load-balancing and contrastive
//      losses on): the cross-entropy, the weighted auxiliary loss and every tensor of the adapter's gradient;
//   3. on the GPU, the same with activation recomputation: the gradient must be the same bytes.
// The adapter starts from its initialisation with B drawn too (B = 0 would make A's gradient and the adapter's
// output vanish) and, for sparsedoctor, memory queues filled with random unit vectors (one ring left empty).
//
// bf16 tolerance.  Rounding only the weights to bf16 (the CPU on F32_DIR against the CPU on BF16_DIR, both fp32
// compute) already moves the logits by ~0.4% and the adapter gradients by ~1-1.5% on these tiny models (measured
// on the build machine, 2026-11-29; a router bias of tiny norm by up to 8% with --init-std 0.1): the gradient
// of a 2-layer net amplifies a 2^-9 perturbation about tenfold.  The GPU's bf16 mode rounds every activation
// and activation gradient as well, about as many times again, so a fixed 1e-2 on every gradient would fail
// correct code.  This program therefore measures that floor in the same run, per quantity, and allows
// max(1e-2, 5 × floor): a bug (a wrong index, a missing term) moves a quantity by far more; the row shows the
// errors, the floor and the tightest error/tolerance ratio.
//
// Routing near-ties: in bf16 a router logit carries ~1e-2 relative noise, and a token whose 2nd and 3rd logits
// are that close may pick another expert on the GPU, which moves that expert's gradient by far more than 1e-2.
// So in bf16 mode the routers' biases are spread 0.6 apart and their weights scaled by 0.1 (the routing then
// hardly depends on the token, but every op still runs); f32 mode keeps the initialisation's routers.  Every
// routed linear's top-k choices are compared, and differing ones are counted in the detail column.
//
// Output: one line per (method, mode), "ROW\tmodel ARCH METHOD\tMODE\tPASS|FAIL|SKIP\tdetail", for
// tests/gpu/check-gpu.sh's table; progress and failures on stderr.  Exit 1 when a row failed.  Without a GPU
// (or a build without the CUDA backend) the CPU reference and the bf16 floor still run, every row says SKIP,
// and the exit is 0.
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "adapter_io.h"
#include "die.h"
#include "model.h"
#include "model_train.h"
#include "ops.h"
#include "outfile.h"
#include "rng.h"

enum { T_TOK = 120, N_DOCS = 4, N_TASKS = 3 };
static const int32_t doc_offsets[N_DOCS + 1] = {0, 50, 51, 88, 120};   // a 1-token document too
static const int32_t doc_task[N_DOCS] = {0, 2, 1, 2};

struct mode {
	const char *name;
	enum dtype weights;   // on the GPU
	double tol;
	int spread_routers;
	int floor;            // tolerance max(tol, FLOOR_FACTOR × the bf16 weight-rounding floor)
};
static const struct mode modes[2] = {{"f32", DTYPE_F32, 1e-5, 0, 0}, {"bf16", DTYPE_BF16, 1e-2, 1, 1}};
#define FLOOR_FACTOR 5.0

// What one backend computed for the batch.
struct result {
	real *logits;          // (T,V)
	double eval_loss, ce, aux;
	real *grads;           // (n_params)
	int32_t *topk;         // every routed slot's (T,K), slot after slot
	size_t n_topk;
	int recompute_same;    // GPU: the recomputed gradient's bytes equal (−1: not run)
	double recompute_err;
};

static double rel_err(const real *got, const real *ref, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)got[i] - (double)ref[i];
		if (!isfinite(got[i]) || !isfinite(ref[i]))
			return NAN;
		num += d * d;
		den += (double)ref[i] * ref[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double scalar_err(double got, double ref)
{
	if (!isfinite(got) || !isfinite(ref))
		return NAN;
	return ref != 0 ? fabs(got - ref) / fabs(ref) : fabs(got);
}

// The same starting point on every backend: the initialisation of cfg.seed, then B (and, in bf16 mode, the
// routers) drawn here from SEED, on the host copy; adapter_to_device moves it.
static void prepare_adapter(struct adapter *a, uint64_t seed, int spread_routers)
{
	struct rng r;
	rng_seed(&r, seed, 77);
	struct adapter_tensor *ts;
	size_t n = adapter_tensors(a, &ts);
	for (size_t i = 0; i < n; i++) {
		struct adapter_tensor *t = &ts[i];
		size_t cnt = (size_t)t->shape[0] * (size_t)(t->ndim > 1 ? t->shape[1] : 1);
		float *v = xmalloc(cnt * sizeof *v);
		adapter_tensor_get(t, a->params, v);
		int changed = 0;
		if (strstr(t->name, "lora_B")) {
			for (size_t j = 0; j < cnt; j++)
				v[j] = (float)(0.05 * rng_normal(&r));
			changed = 1;
		} else if (spread_routers && strstr(t->name, "router.bias")) {
			for (size_t j = 0; j < cnt; j++)
				v[j] = (float)(0.6 * (double)((3 * j) % cnt));
			changed = 1;
		} else if (spread_routers && strstr(t->name, "router.weight")) {
			for (size_t j = 0; j < cnt; j++)
				v[j] *= 0.1f;
			changed = 1;
		}
		if (changed)
			adapter_tensor_set(t, a->params, v);
		free(v);
	}
	free(ts);
	// sparsedoctor: ring e holds 1 + (5e mod Q) random unit vectors, ring 2 none (its tokens are left out)
	if (a->cfg.method == ADAPTER_SPARSEDOCTOR) {
		int N = a->cfg.experts, Q = a->cfg.con_queue, D = a->cfg.con_proj;
		real *row = xmalloc((size_t)D * sizeof *row);
		for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
			struct adapter_slot *s = &a->slots[i];
			if (s->kind != SLOT_ROUTED)
				continue;
			for (int e = 0; e < N; e++) {
				s->q_fill[e] = e == 2 ? 0 : 1 + (5 * e) % Q;
				s->q_head[e] = s->q_fill[e] % Q;
				for (int k = 0; k < s->q_fill[e]; k++) {
					double nn = 0;
					for (int j = 0; j < D; j++)
						row[j] = (real)rng_normal(&r), nn += (double)row[j] * row[j];
					for (int j = 0; j < D; j++)
						row[j] = (real)(row[j] / sqrt(nn));
					adapter_queue_set(a, s, e, k, row);
				}
			}
		}
		free(row);
	}
	adapter_to_device(a);
}

static void host_grads(struct adapter *a, real *out)
{
	tensor_copy(tensor_of(out, DTYPE_REAL, DEVICE_CPU, 1, (int64_t)a->n_params, 1, 1, 1), a->dev.grads);
}

static size_t count_topk(const struct adapter *a, int64_t T)
{
	size_t n = 0;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++)
		if (a->slots[i].kind == SLOT_ROUTED)
			n += (size_t)(T * a->cfg.top_k);
	return n;
}

static void host_topk(const struct adapter *a, int64_t T, int32_t *out)
{
	for (int i = 0; i < a->n_layers * N_TARGETS; i++) {
		const struct adapter_slot *s = &a->slots[i];
		if (s->kind != SLOT_ROUTED)
			continue;
		int64_t n = T * a->cfg.top_k;
		tensor_copy(tensor_i32(out, n), tensor_reshape(tensor_rows(s->topk, 0, T), 1, n, 0, 0));
		out += n;
	}
}

// One training forward and backward; the gradient into GRADS (host).
static void train_pass(struct model *m, struct adapter *a, int recompute, const int32_t *ids, const uint8_t *mask,
		       double *ce, double *aux, real *grads, int32_t *topk)
{
	struct model_train *tr = model_train_new(m);
	model_train_set_recompute(tr, recompute);
	a->training = 1;
	a->step = 3;   // any step: the dropout masks hash it, the same on both backends
	adapter_zero_grads(a);
	adapter_zero_loads(a);
	*ce = model_train_forward(tr, ids, T_TOK, doc_offsets, N_DOCS, doc_task, mask, NULL);
	*aux = adapter_aux_loss(a, NULL, NULL);
	if (topk)
		host_topk(a, T_TOK, topk);
	model_train_backward(tr, 1.0);
	ops_sync(m->device);
	host_grads(a, grads);
	model_train_free(tr);
}

static void run_backend(struct model *m, const struct adapter_config *cfg, const struct mode *md, uint64_t seed,
			const int32_t *ids, const uint8_t *mask, int is_ref, struct result *res)
{
	int64_t V = m->cfg.vocab;
	struct adapter *a = adapter_new_for_model(cfg, m);
	prepare_adapter(a, seed, md->spread_routers);
	model_set_adapter(m, a, 1);
	a->training = 0;
	res->logits = xmalloc((size_t)(T_TOK * V) * sizeof(real));
	res->eval_loss = model_forward(m, ids, T_TOK, doc_offsets, N_DOCS, mask, res->logits, NULL);
	res->grads = xmalloc((a->n_params + 1) * sizeof(real));
	res->n_topk = count_topk(a, T_TOK);
	res->topk = xmalloc((res->n_topk + 1) * sizeof(int32_t));
	train_pass(m, a, 0, ids, mask, &res->ce, &res->aux, res->grads, res->topk);
	res->recompute_same = -1;
	if (!is_ref) {
		real *again = xmalloc((a->n_params + 1) * sizeof(real));
		double ce2, aux2;
		train_pass(m, a, 1, ids, mask, &ce2, &aux2, again, NULL);
		res->recompute_same = memcmp(again, res->grads, a->n_params * sizeof(real)) == 0;
		res->recompute_err = rel_err(again, res->grads, a->n_params);
		free(again);
	}
	model_set_adapter(m, NULL, 0);
	adapter_free(a);
}

static void result_free(struct result *r)
{
	free(r->logits);
	free(r->grads);
	free(r->topk);
	memset(r, 0, sizeof *r);
}

// What one comparison measured: the relative error of each compared quantity.
struct errors {
	double logits, eval, ce, aux;   // aux: |Δ| of the weighted auxiliary loss over the objective it enters
	double *grad;                   // per adapter tensor, in adapter_tensors order
	size_t n_grad;
	size_t flips;                   // routing choices that differ
};

static void measure(const struct model *m, const struct adapter_tensor *ts, size_t nt, const struct result *ref,
		    const struct result *got, struct errors *e)
{
	e->logits = rel_err(got->logits, ref->logits, (size_t)(T_TOK * m->cfg.vocab));
	e->eval = scalar_err(got->eval_loss, ref->eval_loss);
	e->ce = scalar_err(got->ce, ref->ce);
	e->aux = isfinite(got->aux) ? fabs(got->aux - ref->aux) / fabs(ref->ce + ref->aux) : NAN;
	e->n_grad = nt;
	e->grad = xmalloc((nt + 1) * sizeof *e->grad);
	for (size_t i = 0; i < nt; i++) {
		size_t cnt = (size_t)ts[i].shape[0] * (size_t)(ts[i].ndim > 1 ? ts[i].shape[1] : 1);
		float *g = xmalloc(cnt * sizeof *g), *r = xmalloc(cnt * sizeof *r);
		adapter_tensor_get(&ts[i], got->grads, g);
		adapter_tensor_get(&ts[i], ref->grads, r);
		double num = 0, den = 0;
		int finite = 1;
		for (size_t j = 0; j < cnt; j++) {
			double d = (double)g[j] - r[j];
			finite &= isfinite(g[j]) && isfinite(r[j]);
			num += d * d, den += (double)r[j] * r[j];
		}
		e->grad[i] = !finite ? NAN : den > 0 ? sqrt(num / den) : sqrt(num);
		free(g);
		free(r);
	}
	e->flips = 0;
	for (size_t i = 0; i < ref->n_topk; i++)
		e->flips += got->topk[i] != ref->topk[i];
}

// The tolerance of a quantity whose bf16 weight-rounding floor is FLOOR (NULL floor: the mode's fixed one).
static double tol_of(const struct mode *md, const struct errors *floor, double floor_value)
{
	double t = md->tol;
	if (floor && FLOOR_FACTOR * floor_value > t)
		t = FLOOR_FACTOR * floor_value;
	return t;
}

static const char *short_name(const char *name)
{
	return strncmp(name, "base_model.model.model.", 23) ? name : name + 23;
}

// GOT against REF (and, in bf16 mode, the floor FLOOR measured between the two CPU runs): a row and its verdict.
static int compare(const char *arch, const char *method, const struct mode *md, struct model *cpu,
		   const struct adapter_config *cfg, const struct result *ref, const struct result *got,
		   const struct errors *floor)
{
	struct adapter *shape = adapter_new_for_model(cfg, cpu);
	struct adapter_tensor *ts;
	size_t nt = adapter_tensors(shape, &ts);
	struct errors e;
	measure(cpu, ts, nt, ref, got, &e);
	int ok = 1;
	const char *what[4] = {"logits", "eval loss", "train cross-entropy", "auxiliary loss"};
	double errs[4] = {e.logits, e.eval, e.ce, e.aux};
	double floors[4] = {0};
	if (floor)
		floors[0] = floor->logits, floors[1] = floor->eval, floors[2] = floor->ce, floors[3] = floor->aux;
	for (int q = 0; q < 4; q++) {
		double tol = tol_of(md, floor, floors[q]);
		if (!(errs[q] <= tol)) {
			ok = 0;
			fprintf(stderr, "check_model: %s %s %s: %s: relative error %.3g > tolerance %.3g\n", arch, method,
				md->name, what[q], errs[q], tol);
		}
	}
	// gradients: the largest error, and the largest error over its tolerance
	size_t worst = 0, tightest = 0;
	double worst_ratio = 0, floor_max = 0;
	int n_bad = 0;
	for (size_t i = 0; i < nt; i++) {
		double tol = tol_of(md, floor, floor ? floor->grad[i] : 0), ratio = e.grad[i] / tol;
		if (floor && floor->grad[i] > floor_max)
			floor_max = floor->grad[i];
		if (isnan(e.grad[i]) || e.grad[i] > e.grad[worst])
			worst = i;
		if (isnan(ratio) || ratio > worst_ratio)
			worst_ratio = ratio, tightest = i;
		if (!(e.grad[i] <= tol)) {
			n_bad++;
			fprintf(stderr, "check_model: %s %s %s: gradient %s: relative error %.3g > tolerance %.3g%s\n", arch,
				method, md->name, ts[i].name, e.grad[i], tol, floor ? " (floor-based)" : "");
		}
	}
	ok &= n_bad == 0;
	if (got->recompute_same == 0) {
		ok = 0;
		fprintf(stderr, "check_model: %s %s %s: the gradient with recomputation differs (relative %.3g)\n", arch,
			method, md->name, got->recompute_err);
	}
	printf("ROW\tmodel %s %s\t%s\t%s\tlogits %.2g, loss %.2g, train ce %.2g, aux %.2g; grads max %.2g (%s)", arch,
	       method, md->name, ok ? "PASS" : "FAIL", e.logits, e.eval, e.ce, e.aux, e.grad[worst],
	       short_name(ts[worst].name));
	if (floor)
		printf(", worst err/tol %.2f (%s); bf16 floor: logits %.2g, grads max %.2g", worst_ratio,
		       short_name(ts[tightest].name), floor->logits, floor_max);
	printf("; %zu/%zu tensors over tol; %zu of %zu routing choices differ; recompute %s\n", (size_t)n_bad, nt, e.flips,
	       ref->n_topk, got->recompute_same == 1 ? "same bytes" : got->recompute_same == 0 ? "DIFFERS" : "-");
	fflush(stdout);
	free(e.grad);
	free(ts);
	adapter_free(shape);
	return ok;
}

static const char *arch_name(const struct model *m)
{
	return m->cfg.qk_norm ? "qwen3" : m->cfg.qkv_bias ? "qwen2" : "llama";
}

#define USAGE "usage: check_model [-c] [-s SEED] [-m METHOD] F32_DIR BF16_DIR | check_model -p"

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	uint64_t seed = 1;
	const char *only = NULL;
	int self_test = 0;
	int ch;
	while ((ch = getopt(argc, argv, "cps:m:")) != -1) {
		switch (ch) {
		case 'p':
			if (!device_available(DEVICE_CUDA))
				return 1;
			{
				char what[256];
				device_init(DEVICE_CUDA, -1);
				device_describe(DEVICE_CUDA, what, sizeof what);
				printf("%s\n", what);
			}
			return 0;
		case 'c': self_test = 1; break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'm': only = optarg; break;
		default: die(EXIT_USAGE, USAGE);
		}
	}
	if (argc - optind != 2)
		die(EXIT_USAGE, USAGE);
	int have_gpu = !self_test && device_available(DEVICE_CUDA);
	if (have_gpu)
		device_init(DEVICE_CUDA, -1);
	else if (!self_test)
		fprintf(stderr, "check_model: no CUDA backend or GPU here: the CPU reference runs, every GPU comparison "
				"is SKIPPED\n");
	struct model_options co = {.device = DEVICE_CPU};
	struct model *cpu_f32 = model_load_with(argv[optind], &co);   // bf16 mode: the floor's other side
	int failed = 0;
	for (int mi = 0; mi < 2; mi++) {
		const struct mode *md = &modes[mi];
		const char *dir = argv[optind + mi];
		struct model *cpu = mi == 0 ? cpu_f32 : model_load_with(dir, &co);
		struct model *gpu = NULL;
		if (self_test)
			gpu = model_load_with(dir, &co);
		if (have_gpu) {
			struct model_options go = {.device = DEVICE_CUDA, .weight_dtype = md->weights, .weight_dtype_given = 1};
			gpu = model_load_with(dir, &go);
		}
		const char *arch = arch_name(cpu);
		// the batch: random ids, every 7th target left out of the loss
		struct rng r;
		rng_seed(&r, seed, 5);
		int32_t ids[T_TOK];
		uint8_t mask[T_TOK];
		for (int t = 0; t < T_TOK; t++) {
			ids[t] = (int32_t)rng_below(&r, (uint64_t)cpu->cfg.vocab);
			mask[t] = t % 7 != 3;
		}
		for (int method = 0; method < 4; method++) {
			const char *mname = adapter_method_name((enum adapter_method)method);
			if (only && strcmp(only, mname) != 0)
				continue;
			struct adapter_config cfg;
			adapter_config_preset(&cfg, (enum adapter_method)method);
			cfg.n_tasks = N_TASKS;
			cfg.con_queue = 16;
			cfg.con_proj = 8;
			cfg.task_emb = 16;
			cfg.seed = seed;
			fprintf(stderr, "check_model: %s %s %s\n", arch, mname, md->name);
			struct result ref = {0}, got = {0}, fl = {0};
			run_backend(cpu, &cfg, md, seed, ids, mask, 1, &ref);
			// bf16 mode: what rounding the weights to bf16 alone does, the CPU on the f32 checkpoint against ref
			struct errors floor = {0};
			if (md->floor) {
				run_backend(cpu_f32, &cfg, md, seed, ids, mask, 1, &fl);
				struct adapter *shape = adapter_new_for_model(&cfg, cpu);
				struct adapter_tensor *ts;
				size_t nt = adapter_tensors(shape, &ts);
				measure(cpu, ts, nt, &ref, &fl, &floor);
				free(ts);
				adapter_free(shape);
			}
			if (!gpu) {
				printf("ROW\tmodel %s %s\t%s\tSKIP\tno GPU here (the CPU reference ran: loss %.6f, train ce %.6f", arch,
				       mname, md->name, ref.eval_loss, ref.ce);
				if (md->floor) {
					double gmax = 0;
					for (size_t i = 0; i < floor.n_grad; i++)
						gmax = floor.grad[i] > gmax ? floor.grad[i] : gmax;
					printf("; bf16 floor: logits %.2g, grads max %.2g", floor.logits, gmax);
				}
				printf(")\n");
			} else {
				run_backend(gpu, &cfg, md, seed, ids, mask, 0, &got);
				failed |= !compare(arch, mname, md, cpu, &cfg, &ref, &got, md->floor ? &floor : NULL);
			}
			free(floor.grad);
			result_free(&ref);
			result_free(&got);
			result_free(&fl);
		}
		if (cpu != cpu_f32)
			model_free(cpu);
		if (gpu)
			model_free(gpu);
	}
	model_free(cpu_f32);
	close_stdout_or_die();
	return failed ? 1 : 0;
}
