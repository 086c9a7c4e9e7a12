// test_model.c — parity with transformers on the fixtures of tests/reference/make_model_fixtures.py (as llm.c's
// test_gpt2.c checks its C forward against PyTorch's debug state): logits within 1e-4, the same argmax at every
// position, the masked mean loss within 1e-5 relative; then incremental decoding through the KV cache against
// the same reference logits.
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

#ifndef MEDMOE_SOURCE_DIR
#define MEDMOE_SOURCE_DIR "."
#endif

struct expected {
	struct safetensors *st;
	int64_t T, V;
	int n_docs;
	int32_t *ids, *doc_offsets;
	uint8_t *loss_mask;
	float *logits;
	float loss;
};

static float *tensor_f32(const struct safetensors *st, const char *name, int64_t *n)
{
	const struct st_tensor *t = safetensors_find(st, name);
	assert_non_null(t);
	float *out = malloc((size_t)t->nelem * sizeof(float) + 1);
	st_tensor_to_f32(t, out);
	if (n)
		*n = t->nelem;
	return out;
}

static void load_expected(struct expected *e, const char *dir)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/expected.safetensors", dir);
	e->st = safetensors_open(path);
	int64_t n_off;
	float *ids = tensor_f32(e->st, "ids", &e->T), *off = tensor_f32(e->st, "doc_offsets", &n_off);
	float *mask = tensor_f32(e->st, "loss_mask", NULL), *loss = tensor_f32(e->st, "loss", NULL);
	e->n_docs = (int)n_off - 1;
	e->ids = malloc((size_t)e->T * sizeof(int32_t));
	e->loss_mask = malloc((size_t)e->T);
	e->doc_offsets = malloc((size_t)n_off * sizeof(int32_t));
	for (int64_t t = 0; t < e->T; t++) {
		e->ids[t] = (int32_t)ids[t];
		e->loss_mask[t] = mask[t] != 0.0f;
	}
	for (int64_t d = 0; d < n_off; d++)
		e->doc_offsets[d] = (int32_t)off[d];
	e->logits = tensor_f32(e->st, "logits", NULL);
	e->V = safetensors_find(e->st, "logits")->shape[1];
	e->loss = loss[0];
	free(ids);
	free(off);
	free(mask);
	free(loss);
}

static void free_expected(struct expected *e)
{
	free(e->ids);
	free(e->doc_offsets);
	free(e->loss_mask);
	free(e->logits);
	safetensors_close(e->st);
}

static int64_t argmax(const float *x, int64_t n)
{
	int64_t best = 0;
	for (int64_t i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

// Compare one row of logits; report the first failure by case, position and vocab index.
static void check_row(const char *name, int64_t t, const float *got, const float *want, int64_t V, double *max_diff)
{
	for (int64_t j = 0; j < V; j++) {
		double d = fabs((double)got[j] - (double)want[j]);
		if (d > *max_diff)
			*max_diff = d;
		if (d > 1e-4)
			fail_msg("%s: position %lld, logit %lld: got %.7f, transformers %.7f (|Δ| %.2e > 1e-4)", name,
				 (long long)t, (long long)j, got[j], want[j], d);
	}
	int64_t a = argmax(got, V), b = argmax(want, V);
	if (a != b)
		fail_msg("%s: position %lld: argmax %lld, transformers %lld", name, (long long)t, (long long)a,
			 (long long)b);
}

static void check_batched_decode(const char *name, struct model *m, const struct expected *e, const float *single)
{
	int n_docs = e->n_docs;
	struct kv_cache *cache = kv_cache_new(m, e->T, n_docs);
	int64_t *next = malloc((size_t)n_docs * sizeof *next);
	int *slots = malloc((size_t)n_docs * sizeof *slots), *docs = malloc((size_t)n_docs * sizeof *docs);
	int32_t *ids = malloc((size_t)n_docs * sizeof *ids);
	float *logits = malloc((size_t)(n_docs * e->V) * sizeof(float));
	for (int d = 0; d < n_docs; d++) {
		int64_t a = e->doc_offsets[d], b = e->doc_offsets[d + 1], prefill = (b - a + 1) / 2;
		model_decode(m, cache, n_docs - 1 - d, e->ids + a, prefill, NULL);
		next[d] = a + prefill;
	}
	int steps = 0;
	for (;;) {
		int n = 0;
		for (int d = 0; d < n_docs; d++)
			if (next[d] < e->doc_offsets[d + 1]) {
				docs[n] = d;
				slots[n] = n_docs - 1 - d;
				ids[n++] = e->ids[next[d]];
			}
		if (n == 0)
			break;
		model_decode_batch(m, cache, n, slots, ids, logits);
		for (int i = 0; i < n; i++) {
			int64_t t = next[docs[i]]++;
			if (memcmp(logits + i * e->V, single + t * e->V, (size_t)e->V * sizeof(float)) != 0)
				fail_msg("%s: batched step %d, document %d, position %lld: logits differ from decoding the "
					 "document alone", name, steps, docs[i], (long long)t);
		}
		steps++;
	}
	for (int d = 0; d < n_docs; d++)
		assert_int_equal(cache->len[n_docs - 1 - d], e->doc_offsets[d + 1] - e->doc_offsets[d]);
	kv_cache_free(cache);
	free(next);
	free(slots);
	free(docs);
	free(ids);
	free(logits);
}

static void parity(const char *name)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/tests/fixtures/model/%s", MEDMOE_SOURCE_DIR, name);
	struct expected e;
	load_expected(&e, dir);
	struct model *m = model_load(dir);
	assert_int_equal(m->cfg.vocab, e.V);

	float *logits = malloc((size_t)(e.T * e.V) * sizeof(float));
	int64_t n_targets = 0;
	double loss = model_forward(m, e.ids, e.T, e.doc_offsets, e.n_docs, e.loss_mask, logits, &n_targets);
	double max_diff = 0.0;
	for (int64_t t = 0; t < e.T; t++)
		check_row(name, t, logits + t * e.V, e.logits + t * e.V, e.V, &max_diff);
	double rel = fabs(loss - e.loss) / fabs(e.loss);
	if (rel > 1e-5)
		fail_msg("%s: loss %.7f, transformers %.7f (relative %.2e > 1e-5)", name, loss, e.loss, rel);
	assert_true(n_targets > 0);

	// The loss alone (no logits requested) goes through the tiled LM head only; it must agree too.
	double loss_only = model_forward(m, e.ids, e.T, e.doc_offsets, e.n_docs, e.loss_mask, NULL, NULL);
	assert_true(fabs(loss_only - loss) <= 1e-6 * fabs(loss));

	// KV cache: each document decoded on its own — a prefill of its first half, then one token at a time —
	// must give transformers' logits at every decoded position.
	struct kv_cache *cache = kv_cache_new(m, e.T, 1);
	float *single = malloc((size_t)(e.T * e.V) * sizeof(float));
	for (int d = 0; d < e.n_docs; d++) {
		int64_t a = e.doc_offsets[d], b = e.doc_offsets[d + 1], prefill = (b - a + 1) / 2;
		kv_cache_reset(cache);
		float *row = single + (a + prefill - 1) * e.V;
		model_decode(m, cache, 0, e.ids + a, prefill, row);
		check_row(name, a + prefill - 1, row, e.logits + (a + prefill - 1) * e.V, e.V, &max_diff);
		for (int64_t t = a + prefill; t < b; t++) {
			model_decode(m, cache, 0, e.ids + t, 1, single + t * e.V);
			check_row(name, t, single + t * e.V, e.logits + t * e.V, e.V, &max_diff);
		}
		assert_int_equal(cache->len[0], b - a);
	}
	// All documents together, each in its own slot (in reverse order), after the same prefills: batched steps
	// of the documents that still have tokens give each the bits of its own decoding above.
	check_batched_decode(name, m, &e, single);
	printf("# %s (%s): max |Δlogit| %.2e, loss %.6f vs %.6f (%lld targets)\n", name,
	       model_arch_name(m->cfg.arch), max_diff, loss, e.loss, (long long)n_targets);
	free(single);
	kv_cache_free(cache);
	free(logits);
	model_free(m);
	free_expected(&e);
}

static void test_llama_gqa_sharded(void **state) { (void)state; parity("llama_gqa"); }
static void test_llama3_scaled_tied_bias_bf16(void **state) { (void)state; parity("llama3_scaled"); }
static void test_llama_linear_mqa(void **state) { (void)state; parity("llama_linear"); }
static void test_qwen2_qkv_bias(void **state) { (void)state; parity("qwen2"); }
static void test_qwen3_qk_norm_f16(void **state) { (void)state; parity("qwen3"); }

// A checkpoint from init-base (its byte tokenizer included) loads, and decoding 300 tokens — a prefill of 100, then
// one at a time, the key walk crossing several blocks of the streaming attention — gives the logits of one full
// forward (GEMM attention) at every position.
static void test_init_base_kv_cache(void **state)
{
	(void)state;
	const char *bin = getenv("MEDMOE_BIN");
	char dir[256], cmd[1024];
	snprintf(dir, sizeof dir, "/tmp/medmoe-test-model.%ld", (long)getpid());
	snprintf(cmd, sizeof cmd, "rm -rf %s && '%s/init-base' --arch qwen3 --layers 2 --hidden 32 --heads 4 "
		 "--kv-heads 2 --seed 5 -o %s", dir, bin ? bin : MEDMOE_SOURCE_DIR "/bin", dir);
	assert_int_equal(system(cmd), 0);
	struct model *m = model_load(dir);
	assert_int_equal(m->cfg.vocab, 265);
	assert_int_equal(strlen(m->tokenizer_sha256), 64);
	assert_int_equal(model_check_tokenizer(m, m->tokenizer_sha256), 0);

	// The byte tokenizer through the project's tokenizer: same identity as the model sees, and a text is its
	// UTF-8 bytes with the specials from 256 (HF tokenizers 0.23.3 gives these ids for this text too).
	struct tokenizer *tok = tokenizer_load(dir);
	assert_string_equal(tokenizer_sha256(tok), m->tokenizer_sha256);
	assert_int_equal(tokenizer_vocab_size(tok), 265);
	struct u32vec enc = {0};
	const char *text = "h\xc3\xa9llo <|im_start|>x";
	tokenizer_encode(tok, text, strlen(text), &enc);
	const uint32_t want_ids[] = {104, 195, 169, 108, 108, 111, 32, 257, 120};
	assert_int_equal(enc.len, 9);
	assert_memory_equal(enc.data, want_ids, sizeof want_ids);
	free(enc.data);
	tokenizer_free(tok);

	int64_t T = 300, V = m->cfg.vocab;
	int32_t *ids = malloc((size_t)T * sizeof *ids), offsets[2] = {0, (int32_t)T};
	for (int64_t t = 0; t < T; t++)
		ids[t] = (int32_t)((t * 37 + 11) % V);
	float *logits = malloc((size_t)(T * V) * sizeof(float)), *row = malloc((size_t)V * sizeof(float));
	model_forward(m, ids, T, offsets, 1, NULL, logits, NULL);
	struct kv_cache *cache = kv_cache_new(m, T, 1);
	double max_diff = 0.0;
	model_decode(m, cache, 0, ids, 100, row);
	check_row("init-base qwen3", 99, row, logits + 99 * V, V, &max_diff);
	for (int64_t t = 100; t < T; t++) {
		model_decode(m, cache, 0, ids + t, 1, row);
		check_row("init-base qwen3", t, row, logits + t * V, V, &max_diff);
	}
	printf("# init-base qwen3: decoding vs full forward over %lld tokens: max |Δlogit| %.2e\n", (long long)T,
	       max_diff);
	kv_cache_free(cache);
	free(row);
	free(logits);
	free(ids);
	model_free(m);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llama_gqa_sharded),
		cmocka_unit_test(test_llama3_scaled_tied_bias_bf16),
		cmocka_unit_test(test_llama_linear_mqa),
		cmocka_unit_test(test_qwen2_qkv_bias),
		cmocka_unit_test(test_qwen3_qk_norm_f16),
		cmocka_unit_test(test_init_base_kv_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
