// test_adapter.c — the adapters against references (fp32 build):
//   - PEFT parity for plain LoRA: loss and every LoRA gradient on the fixtures of
//     tests/reference/make_lora_fixtures.py (transformers + peft), within 1e-4 relative;
//   - MOELoRA with equal gate weights is a plain LoRA of the same total rank (B scaled by 1/N: each expert's
//     weight is 1/N);
//   - mingmoe with k = N and equal router logits is the dense mixture (1/N) Σ_e B_e A_e;
//   - the load-balancing and contrastive losses against their direct formulas;
//   - inference (model_forward with the adapter attached) equals the training forward without dropout;
//   - save + load round trip, and refusal of an adapter trained on another base.
#include "unit.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter.h"
#include "adapter_io.h"
#include "die.h"
#include "model.h"
#include "model_train.h"
#include "rng.h"
#include "safetensors.h"

#ifndef MEDMOE_SOURCE_DIR
#define MEDMOE_SOURCE_DIR "."
#endif

static void fixture_dir(char *buf, size_t n, const char *kind, const char *name)
{
	snprintf(buf, n, "%s/tests/fixtures/%s/%s", MEDMOE_SOURCE_DIR, kind, name);
}

static float *read_f32(const struct safetensors *st, const char *name, int64_t *n)
{
	const struct st_tensor *t = safetensors_find(st, name);
	if (!t)
		fail_msg("fixture tensor %s missing", name);
	float *x = xmalloc((size_t)t->nelem * sizeof(float));
	st_tensor_to_f32(t, x);
	if (n)
		*n = t->nelem;
	return x;
}

// ----------------------------------------------------------------------------
// PEFT parity

static void peft_case(const char *name)
{
	char mdir[512], ldir[512], path[600];
	fixture_dir(mdir, sizeof mdir, "model", name);
	fixture_dir(ldir, sizeof ldir, "lora", name);
	struct model *m = model_load(mdir);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, ADAPTER_LORA);
	cfg.rank = 4;
	cfg.alpha = 8;
	cfg.dropout = 0;
	struct adapter *a = adapter_new_for_model(&cfg, m);
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", ldir);
	struct safetensors *peft = safetensors_open(path);
	snprintf(path, sizeof path, "%s/expected.safetensors", ldir);
	struct safetensors *exp = safetensors_open(path);
	struct adapter_tensor *ts;
	size_t n = adapter_tensors(a, &ts);
	assert_int_equal(n, safetensors_count(peft));   // every PEFT tensor, by PEFT's own name
	for (size_t i = 0; i < n; i++) {
		float *v = read_f32(peft, ts[i].name, NULL);
		adapter_tensor_set(&ts[i], a->params, v);
		free(v);
	}
	int64_t T, nd;
	float *fids = read_f32(exp, "ids", &T), *foff = read_f32(exp, "doc_offsets", &nd), *fmask = read_f32(exp, "loss_mask", NULL);
	float *loss = read_f32(exp, "loss", NULL);
	int32_t ids[256], offs[16];
	uint8_t mask[256];
	for (int64_t t = 0; t < T; t++)
		ids[t] = (int32_t)fids[t], mask[t] = fmask[t] != 0;
	for (int64_t d = 0; d < nd; d++)
		offs[d] = (int32_t)foff[d];
	model_set_adapter(m, a, 0);
	a->training = 1;
	adapter_zero_grads(a);
	struct model_train *tr = model_train_new(m);
	double got = model_train_forward(tr, ids, T, offs, (int)nd - 1, NULL, mask, NULL);
	model_train_backward(tr, 1.0);
	model_train_free(tr);
	if (fabs(got - loss[0]) > 1e-5 * fabs(loss[0]))
		fail_msg("%s: loss %.7f, PEFT %.7f", name, got, loss[0]);
	for (size_t i = 0; i < n; i++) {
		char gname[300];
		snprintf(gname, sizeof gname, "grad.%s", ts[i].name);
		int64_t cnt;
		float *want = read_f32(exp, gname, &cnt), *have = xmalloc((size_t)cnt * sizeof(float));
		adapter_tensor_get(&ts[i], a->grads, have);
		double num = 0, den = 0;
		for (int64_t k = 0; k < cnt; k++) {
			num += ((double)have[k] - want[k]) * ((double)have[k] - want[k]);
			den += (double)want[k] * want[k];
		}
		if (den == 0 || sqrt(num / den) > 1e-4)
			fail_msg("%s: %s: relative gradient error %.3g", name, ts[i].name, den ? sqrt(num / den) : 1.0);
		free(want);
		free(have);
	}
	free(ts);
	free(fids), free(foff), free(fmask), free(loss);
	safetensors_close(peft);
	safetensors_close(exp);
	adapter_free(a);
	model_free(m);
}

static void test_peft_parity_qwen2(void **state) { (void)state; peft_case("qwen2"); }
static void test_peft_parity_qwen3(void **state) { (void)state; peft_case("qwen3"); }

// ----------------------------------------------------------------------------
// one adapted linear on its own: y = adapter(x) for x (T, d_in), no base

#define T_ 9
#define DIN 12
#define DOUT 10

static struct adapter *single(enum adapter_method method, int experts, int rank, int top_k, uint64_t seed)
{
	struct adapter_config c;
	adapter_config_preset(&c, method);
	c.experts = experts;
	c.rank = rank;
	c.top_k = top_k;
	c.dropout = 0;
	c.targets = 1u << TGT_GATE;   // an MLP linear: routed under mingmoe/sparsedoctor
	c.n_tasks = 2;
	c.task_emb = 4;
	c.con_proj = 5;
	c.con_queue = 3;
	c.seed = seed;
	int64_t dims[N_TARGETS][2];
	for (int t = 0; t < N_TARGETS; t++)
		dims[t][0] = DIN, dims[t][1] = DOUT;
	struct adapter *a = adapter_new(&c, 1, dims);
	struct rng r;
	rng_seed(&r, seed, 9);
	for (size_t i = 0; i < a->n_params; i++)   // B non-zero too
		a->params[i] = (float)(0.3 * rng_normal(&r));
	return a;
}

static void run_single(struct adapter *a, const float *x, float *y, const int32_t *tasks)
{
	memset(y, 0, sizeof(float) * T_ * DOUT);
	adapter_begin(a, T_, tasks, 0);
	adapter_linear_forward(a, 0, TGT_GATE, tensor2(y, T_, DOUT), tensor2((float *)x, T_, DIN));
}

static void test_moelora_equal_gates_is_lora(void **state)
{
	(void)state;
	int N = 4, R = 8;
	struct adapter *moe = single(ADAPTER_MOELORA, N, R, 1, 3), *lora = single(ADAPTER_LORA, 1, R, 1, 4);
	// equal gate weights: W_g = 0 gives softmax = 1/N for every task
	memset(moe->params + moe->off_Wg, 0, sizeof(float) * (size_t)N * moe->cfg.task_emb);
	struct adapter_slot *sm = &moe->slots[TGT_GATE], *sl = &lora->slots[TGT_GATE];
	assert_int_equal(sm->n_exp * sm->r, sl->r);   // same total rank
	assert_true(fabs(sm->scale - sl->scale) < 1e-7);   // s = α/r with the total r
	memcpy(lora->params + sl->off_A, moe->params + sm->off_A, sizeof(float) * R * DIN);
	for (int i = 0; i < DOUT * R; i++)
		lora->params[sl->off_B + i] = moe->params[sm->off_B + i] / (float)N;
	struct rng r;
	rng_seed(&r, 5, 0);
	float x[T_ * DIN], y1[T_ * DOUT], y2[T_ * DOUT];
	for (int i = 0; i < T_ * DIN; i++)
		x[i] = (float)rng_normal(&r);
	int32_t tasks[T_] = {0, 1, 0, 1, 1, 0, 0, 1, 0};
	run_single(moe, x, y1, tasks);
	run_single(lora, x, y2, NULL);
	for (int i = 0; i < T_ * DOUT; i++)
		if (fabsf(y1[i] - y2[i]) > 1e-5f * (1 + fabsf(y2[i])))
			fail_msg("y[%d]: moelora %g, lora %g", i, y1[i], y2[i]);
	adapter_free(moe);
	adapter_free(lora);
}

static void test_mingmoe_all_experts_is_dense_mixture(void **state)
{
	(void)state;
	int N = 4, R = 3;
	struct adapter *a = single(ADAPTER_MINGMOE, N, R, N, 6);
	struct adapter_slot *s = &a->slots[TGT_GATE];
	memset(a->params + s->off_Wr, 0, sizeof(float) * (size_t)N * DIN);   // equal logits
	memset(a->params + s->off_br, 0, sizeof(float) * (size_t)N);
	struct rng r;
	rng_seed(&r, 7, 0);
	float x[T_ * DIN], y[T_ * DOUT];
	for (int i = 0; i < T_ * DIN; i++)
		x[i] = (float)rng_normal(&r);
	run_single(a, x, y, NULL);
	// direct: y = s/N Σ_e B_e A_e x, B_e = columns e·r.. of B_all (DOUT, N·r), A_e = rows e·r.. of A_all
	const float *A = a->params + s->off_A, *B = a->params + s->off_B;
	for (int t = 0; t < T_; t++)
		for (int o = 0; o < DOUT; o++) {
			double want = 0;
			for (int e = 0; e < N; e++)
				for (int j = 0; j < R; j++) {
					double h = 0;
					for (int i = 0; i < DIN; i++)
						h += (double)A[(e * R + j) * DIN + i] * x[t * DIN + i];
					want += (double)s->scale / N * B[o * N * R + e * R + j] * h;
				}
			if (fabs(y[t * DOUT + o] - want) > 1e-5 * (1 + fabs(want)))
				fail_msg("y[%d,%d]: %g, dense mixture %g", t, o, y[t * DOUT + o], want);
		}
	adapter_free(a);
}

static void test_lb_and_contrastive_direct(void **state)
{
	(void)state;
	int N = 4, K = 2, P = 5, Q = 3;
	struct adapter *a = single(ADAPTER_SPARSEDOCTOR, N, 2, K, 8);
	struct adapter_slot *s = &a->slots[TGT_GATE];
	struct rng r;
	rng_seed(&r, 9, 0);
	// a queue: expert e holds min(e+1, Q) unit vectors (expert 0: one entry)
	for (int e = 0; e < N; e++) {
		s->q_fill[e] = e + 1 < Q ? e + 1 : Q;
		s->q_head[e] = s->q_fill[e] % Q;
		for (int k = 0; k < s->q_fill[e]; k++) {
			float row[8], nn = 0;
			for (int j = 0; j < P; j++)
				row[j] = (float)rng_normal(&r), nn += row[j] * row[j];
			for (int j = 0; j < P; j++)
				row[j] /= sqrtf(nn);
			adapter_queue_set(a, s, e, k, row);
		}
	}
	float x[T_ * DIN], y[T_ * DOUT];
	for (int i = 0; i < T_ * DIN; i++)
		x[i] = (float)rng_normal(&r);
	a->training = 1;
	run_single(a, x, y, NULL);
	double lb, con;
	adapter_aux_loss(a, &lb, &con);
	// direct formulas from the router weights, in double
	const float *Wr = a->params + s->off_Wr, *br = a->params + s->off_br, *Pw = a->params + s->off_P;
	double f[4] = {0}, Pm[4] = {0}, con_sum = 0;
	int n_valid = 0;
	for (int t = 0; t < T_; t++) {
		double lg[4], mx = -INFINITY, z = 0;
		for (int e = 0; e < N; e++) {
			lg[e] = br[e];
			for (int i = 0; i < DIN; i++)
				lg[e] += (double)Wr[e * DIN + i] * x[t * DIN + i];
			mx = fmax(mx, lg[e]);
		}
		int first = 0, second = -1;
		for (int e = 1; e < N; e++)
			if (lg[e] > lg[first])
				first = e;
		for (int e = 0; e < N; e++)
			if (e != first && (second < 0 || lg[e] > lg[second]))
				second = e;
		f[first] += 1.0 / T_, f[second] += 1.0 / T_;
		for (int e = 0; e < N; e++)
			z += exp(lg[e] - mx);
		for (int e = 0; e < N; e++)
			Pm[e] += exp(lg[e] - mx) / z / T_;
		// InfoNCE over the queue: positives are the entries of the top-1 expert
		double q[8], nn = 0;
		for (int j = 0; j < P; j++) {
			q[j] = 0;
			for (int i = 0; i < DIN; i++)
				q[j] += (double)Pw[j * DIN + i] * x[t * DIN + i];
			nn += q[j] * q[j];
		}
		double all = 0, pos = 0;
		for (int e = 0; e < N; e++)
			for (int k = 0; k < s->q_fill[e]; k++) {
				float row[8];
				adapter_queue_get(a, s, e, k, row);
				double d = 0;
				for (int j = 0; j < P; j++)
					d += q[j] / sqrt(nn) * row[j];
				all += exp(d / a->cfg.con_tau);
				if (e == first)
					pos += exp(d / a->cfg.con_tau);
			}
		con_sum += -log(pos / all);
		n_valid++;
	}
	double want_lb = 0;
	for (int e = 0; e < N; e++)
		want_lb += N * f[e] * Pm[e];
	if (fabs(lb - want_lb) > 1e-5 * want_lb)
		fail_msg("lb %.8f, direct %.8f", lb, want_lb);
	if (fabs(con - con_sum / n_valid) > 1e-4 * (con_sum / n_valid))
		fail_msg("contrastive %.8f, direct %.8f", con, con_sum / n_valid);
	adapter_free(a);
}

// ----------------------------------------------------------------------------
// inference path == training forward; save/load round trip; another base refused

static char tmp_root[256];

static void test_inference_and_round_trip(void **state)
{
	(void)state;
	char mdir[512];
	fixture_dir(mdir, sizeof mdir, "model", "qwen2");
	struct model *m = model_load(mdir);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, ADAPTER_MINGMOE);
	cfg.experts = 4;
	cfg.rank = 4;
	cfg.shared_experts = 1;
	cfg.seed = 3;
	struct adapter *a = adapter_new_for_model(&cfg, m);
	struct rng r;
	rng_seed(&r, 1, 0);
	for (size_t i = 0; i < a->n_params; i++)
		a->params[i] = (float)(0.05 * rng_normal(&r));
	int32_t ids[30], offs[2] = {0, 30};
	uint8_t mask[30];
	for (int t = 0; t < 30; t++)
		ids[t] = (int32_t)(rng_next(&r) % (uint64_t)m->cfg.vocab), mask[t] = 1;
	model_set_adapter(m, a, 0);
	a->training = 0;
	struct model_train *tr = model_train_new(m);
	double l_train = model_train_forward(tr, ids, 30, offs, 1, NULL, mask, NULL);
	model_train_free(tr);
	double l_inf = model_forward(m, ids, 30, offs, 1, mask, NULL, NULL);
	if (fabs(l_train - l_inf) > 1e-5)
		fail_msg("training forward %.7f, inference %.7f", l_train, l_inf);
	// decoding with the KV cache applies the adapter too: the last position's logits match the packed forward
	int64_t V = m->cfg.vocab;
	float *logits = xmalloc((size_t)(30 * V) * sizeof(float)), *last = xmalloc((size_t)V * sizeof(float));
	model_forward(m, ids, 30, offs, 1, NULL, logits, NULL);
	struct kv_cache *cache = kv_cache_new(m, 64, 1);
	model_decode(m, cache, 0, ids, 20, NULL);
	for (int t = 20; t < 30; t++)
		model_decode(m, cache, 0, ids + t, 1, last);
	for (int64_t v = 0; v < V; v++)
		if (fabsf(last[v] - logits[29 * V + v]) > 1e-4f)
			fail_msg("decode logit %lld: %g, forward %g", (long long)v, last[v], logits[29 * V + v]);
	// a batched step of three sequences (prefixes of 20, 13 and 7 tokens, in slots 2, 0, 1) gives each the bits
	// of its own decoding step alone, the adapter included
	struct kv_cache *batch = kv_cache_new(m, 64, 3);
	float *three = xmalloc((size_t)(3 * V) * sizeof(float));
	int slots[3] = {2, 0, 1}, lens[3] = {20, 13, 7};
	int32_t next[3];
	for (int i = 0; i < 3; i++) {
		model_decode(m, batch, slots[i], ids, lens[i], NULL);
		next[i] = ids[lens[i]];
	}
	model_decode_batch(m, batch, 3, slots, next, three);
	for (int i = 0; i < 3; i++) {
		kv_cache_reset(cache);
		model_decode(m, cache, 0, ids, lens[i], NULL);
		model_decode(m, cache, 0, ids + lens[i], 1, last);
		if (memcmp(last, three + i * V, (size_t)V * sizeof(float)) != 0)
			fail_msg("batched step, sequence %d (%d tokens): logits differ from decoding it alone", i,
				 lens[i] + 1);
		assert_int_equal(batch->len[slots[i]], lens[i] + 1);
	}
	kv_cache_free(batch);
	free(three);
	kv_cache_free(cache);
	free(logits);
	free(last);
	model_set_adapter(m, NULL, 0);
	double l_base = model_forward(m, ids, 30, offs, 1, mask, NULL, NULL);
	assert_true(fabs(l_base - l_inf) > 1e-4);   // the adapter changes something

	snprintf(tmp_root, sizeof tmp_root, "/tmp/test_adapter.%ld", (long)getpid());
	mkdir(tmp_root, 0777);
	adapter_save(a, m, tmp_root, NULL, NULL);
	struct adapter *b = adapter_load(tmp_root, m);
	assert_int_equal(a->n_params, b->n_params);
	assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
	model_set_adapter(m, b, 0);
	double l_loaded = model_forward(m, ids, 30, offs, 1, mask, NULL, NULL);
	assert_true(l_loaded == l_inf);
	adapter_free(b);
	adapter_free(a);
	model_free(m);
}

static void load_on_other_base(void *arg)
{
	(void)arg;
	char mdir[512];
	fixture_dir(mdir, sizeof mdir, "model", "llama_gqa");   // another config.json and no tokenizer
	struct model *m = model_load(mdir);
	adapter_load(tmp_root, m);
}

static void test_other_base_refused(void **state)
{
	(void)state;
	assert_int_equal(unit_exit_status(load_on_other_base, NULL), 65);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_root);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peft_parity_qwen2),
		cmocka_unit_test(test_peft_parity_qwen3),
		cmocka_unit_test(test_moelora_equal_gates_is_lora),
		cmocka_unit_test(test_mingmoe_all_experts_is_dense_mixture),
		cmocka_unit_test(test_lb_and_contrastive_direct),
		cmocka_unit_test(test_inference_and_round_trip),
		cmocka_unit_test(test_other_base_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
