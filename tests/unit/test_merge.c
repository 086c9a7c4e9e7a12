// test_merge.c — merge-adapters against its contract (lib/merge.h), on the tiny fixture bases:
//   - lora, fp32 base: the merged checkpoint's logits == base + adapter within 1e-5 (qwen2, qwen3);
//   - moelora --all-tasks: every task's checkpoint == base + adapter with that task's gate, within 1e-5;
//   - mingmoe / sparsedoctor --attention-only: merged attention + experts-only adapter == base + full adapter
//     within 2e-5 (see test_mingmoe_attention_only), bit for bit when no attention LoRA is merged; the experts
//     adapter is refused on the original base and the full adapter on the merged one;
//   - half-precision bases (bf16, and the f16 qwen3 fixture): the merged checkpoint keeps the base's dtype, so
//     the exact guarantee is per weight: every merged weight is W + s·B·A rounded to the format (via fp32), within
//     u·|W + s·B·A| (u, the unit roundoff: bf16 2^-8, f16 2^-11), and every other tensor is copied bit for bit.
//     The logits then differ from base + adapter (applied in fp32) only through those roundings.  To first order
//     each merged linear perturbs its output by at most u relative, and RMSNorm keeps the relative size of a
//     perturbation through the layers, so with n merged linears we expect max|Δ| ≲ n·u·max|logit|; the test uses
//     3 linears × 2 layers = 6 and the bound 8·u·max|logit| (LOGIT_K).  Measured: bf16 1.9, f16 4.1 (in units
//     of u·max|logit|).  An fp32 base has u = 2^-24 and the 1e-5 bound above;
//   - sharding: a checkpoint cut into shards with an index loads to the same logits, bit for bit;
//   - PEFT and transformers (tests/reference/make_merge_fixtures.py): our engine with the committed adapter run
//     gives PEFT's logits of base + our PEFT export, and our logits of the merged directory give transformers'
//     logits of it, both within 1e-4.
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter.h"
#include "adapter_io.h"
#include "die.h"
#include "merge.h"
#include "model.h"
#include "rng.h"
#include "safetensors.h"

#ifndef MEDMOE_SOURCE_DIR
#define MEDMOE_SOURCE_DIR "."
#endif

static char tmp_root[256];

static char *fixture(const char *kind, const char *name)
{
	return xasprintf("%s/tests/fixtures/%s/%s", MEDMOE_SOURCE_DIR, kind, name);
}

static char *tmp(const char *name)
{
	return xasprintf("%s/%s", tmp_root, name);
}

enum { T = 21 };
#define LOGIT_K 8   // the half-precision logits bound, in units of u·max|logit| (test_bf16)

static void make_ids(const struct model *m, int32_t *ids, uint64_t seed)
{
	struct rng r;
	rng_seed(&r, seed, 0);
	for (int t = 0; t < T; t++)
		ids[t] = (int32_t)(rng_next(&r) % (uint64_t)m->cfg.vocab);
}

// (T, V) logits of one document.
static float *logits_of(struct model *m, const int32_t *ids)
{
	int32_t offs[2] = {0, T};
	float *out = xmalloc((size_t)(T * m->cfg.vocab) * sizeof(float));
	model_forward(m, ids, T, offs, 1, NULL, out, NULL);
	return out;
}

static double max_diff(const float *a, const float *b, size_t n, double *max_abs)
{
	double d = 0, mx = 0;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		mx = fmax(mx, fabs((double)b[i]));
	}
	if (max_abs)
		*max_abs = mx;
	return d;
}

// An adapter with every parameter random (B non-zero), saved as a run with N_TASKS tasks "taskK".
static struct adapter *random_run(const struct model *m, struct adapter_config *cfg, const char *dir, int n_tasks,
				  uint64_t seed)
{
	cfg->n_tasks = n_tasks;
	cfg->task_emb = 8;
	struct adapter *a = adapter_new_for_model(cfg, m);
	struct rng r;
	rng_seed(&r, seed, 0);
	for (size_t i = 0; i < a->n_params; i++)
		a->params[i] = (float)(0.1 * rng_normal(&r));
	json_t *tasks = json_array();
	for (int k = 0; k < n_tasks; k++) {
		char name[16];
		snprintf(name, sizeof name, "task%d", k);
		json_array_append_new(tasks, json_pack("{s:i, s:s}", "id", k, "name", name));
	}
	mkdir(dir, 0777);
	adapter_save(a, m, dir, tasks, NULL);
	json_decref(tasks);
	return a;
}

static void merge(const char *base, const char *run, const char *out, const char *task, int all_tasks, int attn,
		  int peft, uint64_t max_shard)
{
	struct merge_opts o = {.base = base, .run = run, .out = out, .task = task, .all_tasks = all_tasks,
			       .attention_only = attn, .peft = peft, .max_shard = max_shard, .force = 1};
	merge_run(&o);
}

// A copy of fixture NAME at DIR with every tensor stored as DTYPE (widening is exact; narrowing rounds).
static void write_base_as(const char *name, enum st_dtype dtype, const char *dir)
{
	char *src = fixture("model", name);
	struct safetensors *st = safetensors_open(src);
	mkdir(dir, 0777);
	struct st_writer *w = st_writer_new();
	st_writer_metadata(w, "format", "pt");
	size_t n = safetensors_count(st);
	float **bufs = xcalloc(n, sizeof *bufs);
	for (size_t i = 0; i < n; i++) {
		const struct st_tensor *t = safetensors_at(st, i);
		bufs[i] = xmalloc((size_t)t->nelem * sizeof(float));
		st_tensor_to_f32(t, bufs[i]);
		st_writer_add(w, t->name, dtype, t->ndim, t->shape, bufs[i]);
	}
	char *path = xasprintf("%s/model.safetensors", dir);
	st_writer_write(w, path);
	free(path);
	char *cmd = xasprintf("cp %s/config.json %s/", src, dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	safetensors_close(st);
	free(src);
}

// base + adapter (task) vs the merged checkpoint at MERGED, max |Δ| ≤ tol.
static void compare(struct model *base, struct adapter *a, int task, const char *merged, double tol,
		    const char *what)
{
	int32_t ids[T];
	make_ids(base, ids, 7);
	model_set_adapter(base, a, task);
	float *want = logits_of(base, ids);
	model_set_adapter(base, NULL, 0);
	float *plain = logits_of(base, ids);
	struct model *mm = model_load(merged);
	float *got = logits_of(mm, ids);
	size_t n = (size_t)T * base->cfg.vocab;
	double mx, d = max_diff(got, want, n, &mx), moved = max_diff(plain, want, n, NULL);
	print_message("%s: max |merged - adapter| = %.3g (max |logit| %.3g; the adapter moves them by %.3g)\n", what, d,
		      mx, moved);
	if (!(d <= tol))
		fail_msg("%s: max |Δ| %g > %g", what, d, tol);
	assert_true(moved > 100 * tol);   // the adapter matters, so the comparison means something
	free(want);
	free(plain);
	free(got);
	model_free(mm);
}

static void lora_case(const char *name)
{
	char *bdir = tmp("base-f32"), *run = tmp("run-lora"), *out = tmp("merged-lora");
	write_base_as(name, ST_F32, bdir);   // the qwen3 fixture is stored in f16
	struct model *m = model_load(bdir);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, ADAPTER_LORA);
	cfg.rank = 4;
	cfg.alpha = 8;
	struct adapter *a = random_run(m, &cfg, run, 1, 11);
	merge(bdir, run, out, NULL, 0, 0, 0, 5000000000ull);
	compare(m, a, 0, out, 1e-5, name);
	adapter_free(a);
	model_free(m);
	free(bdir);
	free(run);
	free(out);
}

static void test_lora_qwen2(void **state) { (void)state; lora_case("qwen2"); }
static void test_lora_qwen3(void **state) { (void)state; lora_case("qwen3"); }

static void test_moelora_every_task(void **state)
{
	(void)state;
	char *bdir = fixture("model", "qwen2"), *run = tmp("run-moelora"), *out = tmp("merged-moelora");
	struct model *m = model_load(bdir);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, ADAPTER_MOELORA);
	cfg.experts = 4;
	cfg.rank = 8;
	cfg.alpha = 16;
	struct adapter *a = random_run(m, &cfg, run, 3, 12);
	merge(bdir, run, out, NULL, 1, 0, 0, 5000000000ull);
	for (int k = 0; k < 3; k++) {
		char *dir = xasprintf("%s/task%d", out, k), what[32];
		snprintf(what, sizeof what, "moelora task%d", k);
		compare(m, a, k, dir, 1e-5, what);
		free(dir);
	}
	// the tasks differ: their gates mix the experts differently
	char *d0 = xasprintf("%s/task0", out), *d2 = xasprintf("%s/task2", out);
	struct model *m0 = model_load(d0), *m2 = model_load(d2);
	int32_t ids[T];
	make_ids(m, ids, 7);
	float *l0 = logits_of(m0, ids), *l2 = logits_of(m2, ids);
	assert_true(max_diff(l0, l2, (size_t)T * m->cfg.vocab, NULL) > 1e-2);
	free(l0);
	free(l2);
	model_free(m0);
	model_free(m2);
	free(d0);
	free(d2);
	adapter_free(a);
	model_free(m);
	free(bdir);
	free(run);
	free(out);
}

static const char *g_dir_a, *g_dir_b;
static void load_pair(void *arg)
{
	(void)arg;
	struct model *m = model_load(g_dir_a);
	adapter_load(g_dir_b, m);
}

// TARGETS NULL: all seven linears.  TOL: max |Δ| allowed.
static void routed_case(enum adapter_method method, const char *targets, double tol)
{
	char *bdir = tmp("base-routed"), *run = tmp("run-routed"), *out = tmp("merged-routed");
	write_base_as("qwen3", ST_F32, bdir);
	struct model *m = model_load(bdir);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, method);
	cfg.experts = 4;
	cfg.rank = 4;
	cfg.shared_experts = 1;
	if (targets)
		assert_int_equal(adapter_targets_parse(targets, &cfg.targets), 0);
	cfg.con_proj = 8;
	cfg.con_queue = 16;
	struct adapter *a = random_run(m, &cfg, run, 2, 13);
	merge(bdir, run, out, NULL, 0, 1, 0, 5000000000ull);
	char *mdir = xasprintf("%s/model", out), *edir = xasprintf("%s/experts", out);
	struct model *mm = model_load(mdir);
	struct adapter *e = adapter_load(edir, mm);
	for (int i = 0; i < e->n_layers * N_TARGETS; i++)
		assert_true(e->slots[i].kind == SLOT_NONE || e->slots[i].kind == SLOT_ROUTED);
	int32_t ids[T];
	make_ids(m, ids, 9);
	model_set_adapter(m, a, 0);
	float *want = logits_of(m, ids);
	model_set_adapter(mm, e, 0);
	float *got = logits_of(mm, ids);
	double mx, d = max_diff(got, want, (size_t)T * m->cfg.vocab, &mx);
	print_message("%s (%s) attention-only + experts: max |Δ| = %.3g (max |logit| %.3g)\n", adapter_method_name(method),
		      targets ? targets : "all", d, mx);
	if (!(d <= tol))
		fail_msg("max |Δ| %g > %g", d, tol);
	// the experts adapter belongs to the merged checkpoint, the full one to the base
	g_dir_a = bdir, g_dir_b = edir;
	assert_int_equal(unit_exit_status(load_pair, NULL), 65);
	g_dir_a = mdir, g_dir_b = run;
	assert_int_equal(unit_exit_status(load_pair, NULL), 65);
	free(want);
	free(got);
	adapter_free(e);
	adapter_free(a);
	model_free(mm);
	model_free(m);
	free(mdir);
	free(edir);
	free(bdir);
	free(run);
	free(out);
}

// The routed experts see the merged attention's output, a few fp32 ulps away from base + attention LoRA, and
// their routers' softmax passes that on: 2e-5 here (measured 6e-6 to 1.4e-5 on logits of about 4, with 1 or 2
// threads).  With nothing to merge (experts only) the split itself is exact: Δ = 0.
static void test_mingmoe_attention_only(void **state) { (void)state; routed_case(ADAPTER_MINGMOE, NULL, 2e-5); }
static void test_sparsedoctor_attention_only(void **state)
{
	(void)state;
	routed_case(ADAPTER_SPARSEDOCTOR, NULL, 2e-5);
}
static void test_experts_only_split_is_exact(void **state)
{
	(void)state;
	routed_case(ADAPTER_MINGMOE, "gate,up,down", 0);
}

// UNIT: the unit roundoff of the half format (bf16 2^-8, f16 2^-11).
static void half_case(const char *name, enum st_dtype dtype, int unit_exp)
{
	char *bdir = tmp("base-half"), *run = tmp("run-half"), *out = tmp("merged-half");
	write_base_as(name, dtype, bdir);
	struct model *m = model_load(bdir);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, ADAPTER_LORA);
	cfg.rank = 4;
	cfg.alpha = 8;
	cfg.targets = (1u << TGT_Q) | (1u << TGT_V) | (1u << TGT_DOWN);   // some linears stay as they were
	struct adapter *a = random_run(m, &cfg, run, 1, 14);
	merge(bdir, run, out, NULL, 0, 0, 0, 5000000000ull);
	struct safetensors *sb = safetensors_open(bdir), *sm = safetensors_open(out);
	assert_int_equal(safetensors_count(sb), safetensors_count(sm));
	size_t merged = 0;
	for (size_t i = 0; i < safetensors_count(sb); i++) {
		const struct st_tensor *tb = safetensors_at(sb, i), *tm = safetensors_at(sm, i);
		assert_string_equal(tb->name, tm->name);
		assert_int_equal(tm->dtype, dtype);
		const struct adapter_slot *slot = NULL;
		for (int l = 0; l < m->cfg.n_layers; l++)
			for (int t = 0; t < N_TARGETS; t++) {
				char name[128];
				snprintf(name, sizeof name, "model.layers.%d.%s.%s.weight", l, t < TGT_GATE ? "self_attn" : "mlp",
					 adapter_target_name((enum adapter_target)t));
				if (strcmp(name, tb->name) == 0 && a->slots[l * N_TARGETS + t].kind != SLOT_NONE)
					slot = &a->slots[l * N_TARGETS + t];
			}
		if (!slot) {   // untouched: the same bytes
			assert_int_equal(tb->nbytes, tm->nbytes);
			assert_memory_equal(tb->data, tm->data, tb->nbytes);
			continue;
		}
		merged++;
		float *w = xmalloc((size_t)tb->nelem * sizeof(float)), *got = xmalloc((size_t)tb->nelem * sizeof(float));
		st_tensor_to_f32(tb, w);
		st_tensor_to_f32(tm, got);
		// the exact merged value in double: W + s Σ_k B[o,k] A[k,i]
		const real *A = a->params + slot->off_A, *B = a->params + slot->off_B;
		for (int64_t o = 0; o < slot->d_out; o++)
			for (int64_t c = 0; c < slot->d_in; c++) {
				double x = 0;
				for (int k = 0; k < slot->r; k++)
					x += (double)B[o * slot->r + k] * A[k * slot->d_in + c];
				x = w[o * slot->d_in + c] + slot->scale * x;
				double err = fabs(got[o * slot->d_in + c] - x);
				if (err > ldexp(fabs(x), -unit_exp) * (1 + 1e-5) + 1e-7)
					fail_msg("%s[%lld,%lld]: %.9g, exact %.9g", tb->name, (long long)o, (long long)c,
						 got[o * slot->d_in + c], x);
			}
		free(w);
		free(got);
	}
	assert_int_equal(merged, 3 * (size_t)m->cfg.n_layers);
	safetensors_close(sb);
	safetensors_close(sm);
	// logits: max|Δ| ≤ LOGIT_K·u·max|logit| (each merged weight moves by ≤ u of itself)
	int32_t ids[T];
	make_ids(m, ids, 7);
	model_set_adapter(m, a, 0);
	float *want = logits_of(m, ids);
	struct model *mm = model_load(out);
	float *got = logits_of(mm, ids);
	double mx, d = max_diff(got, want, (size_t)T * m->cfg.vocab, &mx);
	double bound = LOGIT_K * ldexp(mx, -unit_exp);
	print_message("%s %s: max |merged - adapter| = %.3g = %.2f u·max|logit| (max |logit| %.3g), bound %.3g\n", name,
		      st_dtype_name(dtype), d, d / ldexp(mx, -unit_exp), mx, bound);
	if (!(d <= bound))
		fail_msg("%s logits: max |Δ| %g above %g", st_dtype_name(dtype), d, bound);
	free(want);
	free(got);
	model_free(mm);
	adapter_free(a);
	model_free(m);
	free(bdir);
	free(run);
	free(out);
}

static void test_bf16(void **state) { (void)state; half_case("qwen2", ST_BF16, 8); }
static void test_f16(void **state) { (void)state; half_case("qwen3", ST_F16, 11); }

static void test_sharded(void **state)
{
	(void)state;
	char *bdir = fixture("model", "qwen3"), *run = tmp("run-shard"), *one = tmp("one"), *many = tmp("many");
	struct model *m = model_load(bdir);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, ADAPTER_LORA);
	cfg.rank = 2;
	struct adapter *a = random_run(m, &cfg, run, 1, 15);
	merge(bdir, run, one, NULL, 0, 0, 0, 5000000000ull);
	merge(bdir, run, many, NULL, 0, 0, 0, 50000);
	char *index = xasprintf("%s/model.safetensors.index.json", many), *single = xasprintf("%s/model.safetensors", many);
	assert_int_equal(access(index, R_OK), 0);
	assert_int_not_equal(access(single, R_OK), 0);
	struct safetensors *st = safetensors_open(many);
	assert_true(safetensors_count(st) > 3);
	safetensors_close(st);
	struct model *m1 = model_load(one), *m2 = model_load(many);
	int32_t ids[T];
	make_ids(m, ids, 5);
	float *l1 = logits_of(m1, ids), *l2 = logits_of(m2, ids);
	assert_memory_equal(l1, l2, (size_t)T * m->cfg.vocab * sizeof(float));
	free(l1);
	free(l2);
	model_free(m1);
	model_free(m2);
	free(index);
	free(single);
	adapter_free(a);
	model_free(m);
	free(bdir);
	free(run);
	free(one);
	free(many);
}

// The committed fixtures of tests/reference/make_merge_fixtures.py.
static void peft_case(const char *name)
{
	char *bdir = fixture("model", "qwen2"), *cdir = fixture("merge", name);
	char *run = xasprintf("%s/run", cdir), *exp = xasprintf("%s/expected.safetensors", cdir);
	char *out = tmp("merged-fixture");
	struct safetensors *st = safetensors_open(exp);
	const char *task = safetensors_metadata(st, "task");
	const struct st_tensor *tid = safetensors_find(st, "ids"), *tp = safetensors_find(st, "logits_peft"),
			       *tmg = safetensors_find(st, "logits_merged");
	assert_non_null(tid);
	assert_non_null(tp);
	assert_non_null(tmg);
	int64_t n_ids = tid->nelem;
	float *fid = xmalloc((size_t)n_ids * sizeof(float)), *peft = xmalloc((size_t)tp->nelem * sizeof(float)),
	      *hf = xmalloc((size_t)tmg->nelem * sizeof(float));
	st_tensor_to_f32(tid, fid);
	st_tensor_to_f32(tp, peft);
	st_tensor_to_f32(tmg, hf);
	int32_t *ids = xmalloc((size_t)n_ids * sizeof(int32_t)), offs[2] = {0, (int32_t)n_ids};
	for (int64_t t = 0; t < n_ids; t++)
		ids[t] = (int32_t)fid[t];

	struct model *m = model_load(bdir);
	struct adapter *a = adapter_load(run, m);
	int task_id = 0;
	if (task && *task) {
		json_t *cfg = adapter_config_read(run), *t;
		size_t i;
		json_array_foreach(json_object_get(cfg, "tasks"), i, t)
			if (strcmp(json_string_value(json_object_get(t, "name")), task) == 0)
				task_id = (int)json_integer_value(json_object_get(t, "id"));
		json_decref(cfg);
	}
	model_set_adapter(m, a, task_id);
	size_t n = (size_t)n_ids * m->cfg.vocab;
	assert_int_equal(n, (size_t)tp->nelem);
	float *ours = xmalloc(n * sizeof(float));
	model_forward(m, ids, n_ids, offs, 1, NULL, ours, NULL);
	double mx, d = max_diff(ours, peft, n, &mx);
	print_message("%s: max |ours(base + adapter) - PEFT(base + export)| = %.3g (max |logit| %.3g)\n", name, d, mx);
	if (!(d <= 1e-4))
		fail_msg("%s: PEFT parity %g", name, d);

	merge(bdir, run, out, task && *task ? task : NULL, 0, 0, 0, 5000000000ull);
	struct model *mm = model_load(out);
	model_forward(mm, ids, n_ids, offs, 1, NULL, ours, NULL);
	d = max_diff(ours, hf, n, NULL);
	print_message("%s: max |ours(merged) - transformers(merged)| = %.3g\n", name, d);
	if (!(d <= 1e-4))
		fail_msg("%s: merged parity %g", name, d);
	free(ours);
	model_free(mm);
	adapter_free(a);
	model_free(m);
	safetensors_close(st);
	free(fid);
	free(peft);
	free(hf);
	free(ids);
	free(bdir);
	free(cdir);
	free(run);
	free(exp);
	free(out);
}

static void test_peft_lora(void **state) { (void)state; peft_case("lora"); }
static void test_peft_moelora(void **state) { (void)state; peft_case("moelora"); }

static void test_parse_size(void **state)
{
	(void)state;
	uint64_t b;
	assert_int_equal(merge_parse_size("5GB", &b), 0);
	assert_true(b == 5000000000ull);
	assert_int_equal(merge_parse_size("2MiB", &b), 0);
	assert_true(b == 2097152);
	assert_int_equal(merge_parse_size("123", &b), 0);
	assert_true(b == 123);
	assert_int_equal(merge_parse_size("5 GB", &b), -1);
	assert_int_equal(merge_parse_size("0", &b), -1);
	assert_int_equal(merge_parse_size("GB", &b), -1);
	assert_int_equal(merge_parse_size("-1", &b), -1);
}

int main(void)
{
	snprintf(tmp_root, sizeof tmp_root, "/tmp/test_merge.%ld", (long)getpid());
	mkdir(tmp_root, 0777);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_lora_qwen2),
		cmocka_unit_test(test_lora_qwen3),
		cmocka_unit_test(test_moelora_every_task),
		cmocka_unit_test(test_mingmoe_attention_only),
		cmocka_unit_test(test_sparsedoctor_attention_only),
		cmocka_unit_test(test_experts_only_split_is_exact),
		cmocka_unit_test(test_bf16),
		cmocka_unit_test(test_f16),
		cmocka_unit_test(test_sharded),
		cmocka_unit_test(test_peft_lora),
		cmocka_unit_test(test_peft_moelora),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char *cmd = xasprintf("rm -rf %s", tmp_root);
	if (system(cmd) != 0)
		rc = 1;
	free(cmd);
	return rc;
}
