// test_eval.c — eval-exam's library against transformers (tests/reference/make_eval_fixtures.py: option
// log-probabilities within 1e-4 and the same predictions, whether the questions are packed together or run one by
// one), the option-sharing plan against full logits for options of unequal lengths, the multi-answer rule on
// hand-made scores, and the refusals of bad exam records (exit 65).
#include "unit.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eval.h"
#include "model.h"
#include "stream.h"

#ifndef MEDMOE_SOURCE_DIR
#define MEDMOE_SOURCE_DIR "."
#endif
#define FIXTURES MEDMOE_SOURCE_DIR "/tests/fixtures/eval"

static struct eval_question *read_stream(const char *path, uint32_t vocab, int *n)
{
	struct stream_reader *r = stream_open(path, "medmoe.exam", 1);
	int cap = 16;
	struct eval_question *qs = calloc((size_t)cap, sizeof *qs);
	msgpack_object rec;
	*n = 0;
	while (stream_next(r, &rec)) {
		assert_true(*n < cap);
		eval_question_read(r, &rec, vocab, &qs[(*n)++]);
	}
	stream_close(r);
	return qs;
}

// Compare one stream's scores and predictions with transformers'.
static void check_stream(struct model *m, const char *name, json_t *rows, int packed)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s.mpk", FIXTURES, name);
	int n;
	struct eval_question *qs = read_stream(path, (uint32_t)m->cfg.vocab, &n);
	assert_int_equal(n, (int)json_array_size(rows));
	if (packed)
		eval_loglik_score(m, qs, n);
	else
		for (int i = 0; i < n; i++)
			eval_loglik_score(m, &qs[i], 1);
	for (int i = 0; i < n; i++) {
		json_t *row = json_array_get(rows, (size_t)i);
		eval_choose(&qs[i], 0);
		assert_string_equal(qs[i].id, json_string_value(json_object_get(row, "id")));
		json_t *scores = json_object_get(row, "scores");
		assert_int_equal(qs[i].n_options, (int)json_array_size(scores));
		for (int k = 0; k < qs[i].n_options; k++) {
			double want = json_real_value(json_array_get(scores, (size_t)k));
			if (fabs(qs[i].scores[k] - want) > 1e-4) {
				print_error("%s %s option %c: %.7f, transformers %.7f\n", name, qs[i].id, qs[i].letters[k],
					    qs[i].scores[k], want);
				fail();
			}
		}
		const char *want = json_string_value(json_object_get(row, "predicted"));
		if (strcmp(qs[i].predicted, want) != 0) {
			print_error("%s %s: predicted %s, transformers' scores give %s\n", name, qs[i].id, qs[i].predicted,
				    want);
			fail();
		}
		eval_question_free(&qs[i]);
	}
	free(qs);
}

static void test_parity_transformers(void **state)
{
	(void)state;
	json_error_t err;
	json_t *root = json_load_file(FIXTURES "/expected.json", 0, &err);
	assert_non_null(root);
	struct model *m = model_load(FIXTURES "/model");
	const char *name;
	json_t *rows;
	json_object_foreach(json_object_get(root, "streams"), name, rows) {
		check_stream(m, name, rows, 1);
		check_stream(m, name, rows, 0);
	}
	model_free(m);
	json_decref(root);
}

static void set_ids(struct u32vec *v, const uint32_t *ids, size_t n)
{
	v->len = 0;
	u32vec_append(v, ids, n);
}

// Options of unequal lengths, some sharing prefixes: every score must equal the direct sum of log-softmax terms
// over full logits of prompt + that option, and the token count must follow the sharing rule.
static void test_option_sharing(void **state)
{
	(void)state;
	struct model *m = model_load(FIXTURES "/model");
	const int64_t V = m->cfg.vocab;
	static const uint32_t prompt[] = {72, 101, 108, 108, 111, 58, 32, 49, 43, 49, 61};
	static const uint32_t o0[] = {65}, o1[] = {66, 67}, o2[] = {66}, o3[] = {66, 68}, o4[] = {68, 69, 70},
			      o5[] = {68, 69};
	const uint32_t *opts[] = {o0, o1, o2, o3, o4, o5};
	size_t lens[] = {1, 2, 1, 2, 3, 2};
	struct eval_question q[2];
	memset(q, 0, sizeof q);
	for (int j = 0; j < 2; j++) {
		q[j].n_options = 6;
		set_ids(&q[j].prompt, prompt, sizeof prompt / sizeof prompt[0] - (size_t)j);   // two different prompts
		for (int i = 0; i < 6; i++) {
			q[j].letters[i] = (char)('A' + i);
			set_ids(&q[j].option_ids[i], opts[i], lens[i]);
		}
	}
	// documents: A (1 token); B C (2: also serves B and B D); D E F (3: also serves D E)
	int64_t P = (int64_t)q[0].prompt.len;
	assert_int_equal(eval_loglik_tokens(&q[0]), 3 * P + 1 + 2 + 3);
	eval_loglik_score(m, q, 2);

	float *logits = malloc((size_t)(P + 3) * (size_t)V * sizeof(float));
	int32_t ids[64];
	for (int j = 0; j < 2; j++) {
		int64_t Pj = (int64_t)q[j].prompt.len;
		for (int i = 0; i < 6; i++) {
			int64_t T = Pj + (int64_t)lens[i];
			for (int64_t t = 0; t < Pj; t++)
				ids[t] = (int32_t)prompt[t];
			for (size_t k = 0; k < lens[i]; k++)
				ids[Pj + (int64_t)k] = (int32_t)opts[i][k];
			int32_t offsets[2] = {0, (int32_t)T};
			model_forward(m, ids, T, offsets, 1, NULL, logits, NULL);
			double want = 0.0;
			for (size_t k = 0; k < lens[i]; k++) {
				const float *row = logits + (Pj - 1 + (int64_t)k) * V;
				double mx = row[0], sum = 0.0;
				for (int64_t v = 1; v < V; v++)
					mx = row[v] > mx ? row[v] : mx;
				for (int64_t v = 0; v < V; v++)
					sum += exp(row[v] - mx);
				want += row[opts[i][k]] - mx - log(sum);
			}
			if (fabs(q[j].scores[i] - want) > 1e-4) {
				print_error("prompt %d option %c: %.7f, from full logits %.7f\n", j, 'A' + i, q[j].scores[i],
					    want);
				fail();
			}
		}
		eval_question_free(&q[j]);
	}
	free(logits);
	model_free(m);
}

static void choose(struct eval_question *q, int multi, const double *p, int n, double threshold)
{
	memset(q, 0, sizeof *q);
	q->multi = multi;
	q->n_options = n;
	for (int i = 0; i < n; i++) {
		q->letters[i] = (char)('A' + i);
		q->scores[i] = log(p[i]) - 3.0;   // any common shift: the rule renormalises
	}
	eval_choose(q, threshold);
	assert_true(q->parsed);
}

static void test_choose(void **state)
{
	(void)state;
	struct eval_question q;
	choose(&q, 0, (double[]){0.1, 0.2, 0.6, 0.1}, 4, 0);
	assert_string_equal(q.predicted, "C");
	choose(&q, 0, (double[]){0.3, 0.3, 0.2, 0.2}, 4, 0);
	assert_string_equal(q.predicted, "A");   // a tie goes to the first
	// multi: uniform is 1/3; B (0.30) falls short of it, A (0.50) is in
	choose(&q, 1, (double[]){0.5, 0.3, 0.2}, 3, 0);
	assert_string_equal(q.predicted, "A");
	choose(&q, 1, (double[]){0.5, 0.3, 0.2}, 3, 0.25);
	assert_string_equal(q.predicted, "AB");
	// sorted letters, and the argmax is kept even when nothing reaches the threshold
	choose(&q, 1, (double[]){0.3, 0.02, 0.28, 0.4}, 4, 0);
	assert_string_equal(q.predicted, "ACD");
	choose(&q, 1, (double[]){0.2, 0.2, 0.2, 0.2, 0.2}, 5, 0.9);
	assert_string_equal(q.predicted, "A");
}

// ---- bad records ----

struct bad_case {
	const char *field;   // the field to spoil
	int kind;
};

static void pack_record(msgpack_packer *pk, const struct bad_case *c)
{
	static const uint32_t prompt[] = {65, 66, 58}, big[] = {65, 9999};
	static const uint32_t opt_ids[4][1] = {{65}, {66}, {67}, {68}};
	int spoil_type = !strcmp(c->field, "type"), spoil_answer = !strcmp(c->field, "answer");
	int spoil_prompt = !strcmp(c->field, "prompt"), spoil_opts = !strcmp(c->field, "option_ids");
	int spoil_letters = !strcmp(c->field, "options");
	msgpack_pack_map(pk, 9);
	pack_kv_str(pk, "id", "q1");
	pack_kv_str(pk, "bench", "cmb");
	pack_kv_str(pk, "lang", "zh");
	pack_str(pk, "categories");
	msgpack_pack_map(pk, 1);
	pack_kv_str(pk, "subject", "anatomy");
	pack_kv_str(pk, "type", spoil_type ? "several" : "single");
	pack_str(pk, "options");
	msgpack_pack_array(pk, 4);
	for (int i = 0; i < 4; i++)
		pack_str(pk, spoil_letters && i == 3 ? "A" : (const char[]){(char)('A' + i), 0});
	pack_kv_str(pk, "answer", spoil_answer ? (c->kind ? "AB" : "E") : "B");
	if (spoil_prompt)
		pack_kv_u32bin(pk, "prompt", big, c->kind ? 0 : 2);
	else
		pack_kv_u32bin(pk, "prompt", prompt, 3);
	pack_str(pk, "option_ids");
	int n_opts = spoil_opts && c->kind == 0 ? 3 : 4;
	msgpack_pack_array(pk, (size_t)n_opts);
	for (int i = 0; i < n_opts; i++)
		pack_u32bin(pk, opt_ids[i], spoil_opts && c->kind == 1 && i == 2 ? 0 : 1);
}

static void read_bad(void *arg)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_record(&pk, arg);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	if (msgpack_unpack_next(&u, sb.data, sb.size, &off) != MSGPACK_UNPACK_SUCCESS)
		exit(99);
	struct stream_reader r = {.path = "test.mpk", .record = 1};
	struct eval_question q;
	eval_question_read(&r, &u.data, 300, &q);
	eval_question_free(&q);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
}

static void test_bad_records(void **state)
{
	(void)state;
	struct bad_case good = {"none", 0};
	assert_int_equal(unit_exit_status(read_bad, &good), 0);
	struct bad_case bad[] = {
		{"type", 0},        // neither single nor multi
		{"answer", 0},      // a letter that is no option
		{"answer", 1},      // two letters for a single-answer question
		{"prompt", 0},      // an id beyond the vocabulary
		{"prompt", 1},      // empty
		{"option_ids", 0},  // 3 entries for 4 options
		{"option_ids", 1},  // an empty entry
		{"options", 0},     // a letter twice
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int status = unit_exit_status(read_bad, &bad[i]);
		if (status != 65) {
			print_error("spoiled %s (%d): exit %d, not 65\n", bad[i].field, bad[i].kind, status);
			fail();
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parity_transformers),
		cmocka_unit_test(test_option_sharing),
		cmocka_unit_test(test_choose),
		cmocka_unit_test(test_bad_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
