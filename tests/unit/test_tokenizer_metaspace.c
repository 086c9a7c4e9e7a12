// test_tokenizer_metaspace.c — the Metaspace pre-tokenizer and decoder against Hugging Face `tokenizers`
// (tests/fixtures/metaspace, from tests/reference/make_metaspace_fixtures.py): every variant of the fixture
// (prepend_scheme first / always / never, split true / false, the add_prefix_space form, beside NFKC) applied
// to the fixture's own small tokenizer and to the shared Mistral one, ids and decoded text identical on every
// text.  The Mistral half skips loudly when MEDMOE_SHARED is absent.
#include "unit.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "die.h"
#include "tokenizer.h"

#ifndef MEDMOE_SOURCE_DIR
#define MEDMOE_SOURCE_DIR "."
#endif

static json_t *expected;   // tests/fixtures/metaspace/expected.json

static json_t *load_json(const char *path)
{
	json_error_t err;
	json_t *j = json_load_file(path, 0, &err);
	if (!j)
		die_data(path, -1, NULL, "line %d: %s", err.line, err.text);
	return j;
}

static int setup(void **state)
{
	(void)state;
	expected = load_json(MEDMOE_SOURCE_DIR "/tests/fixtures/metaspace/expected.json");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	json_decref(expected);
	return 0;
}

// BASE (a tokenizer.json object) with the variant's normalizer, pre_tokenizer and decoder, written to a
// temporary file and loaded.
static struct tokenizer *load_variant(const json_t *base, const char *name)
{
	json_t *spec = json_deep_copy(base), *v = json_object_get(json_object_get(expected, "variants"), name);
	const char *key;
	json_t *val;
	json_object_foreach(v, key, val)
		json_object_set(spec, key, val);
	char path[] = "/tmp/medmoe-metaspace-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_int_equal(json_dumpf(spec, f, 0), 0);
	fclose(f);
	json_decref(spec);
	struct tokenizer *tok = tokenizer_load(path);
	unlink(path);
	return tok;
}

// Encode TEXT and compare with the JSON array WANT; describes the first difference.  Returns 0 when equal.
static int compare(const struct tokenizer *tok, const char *what, const char *text, size_t len, const json_t *want,
		   struct u32vec *got)
{
	got->len = 0;
	tokenizer_encode(tok, text, len, got);
	size_t n = json_array_size(want), i = 0;
	while (i < n && i < got->len && (json_int_t)got->data[i] == json_integer_value(json_array_get(want, i)))
		i++;
	if (i == n && i == got->len)
		return 0;
	print_error("%s: text \"%.60s\": first difference at id %zu (%zu expected, %zu got)\n", what, text, i, n,
		    got->len);
	for (size_t k = i; k < i + 6 && k < n; k++) {
		uint32_t id = (uint32_t)json_integer_value(json_array_get(want, k));
		print_error("  expected %u \"%s\"\n", id, tokenizer_token_str(tok, id));
	}
	for (size_t k = i; k < i + 6 && k < got->len; k++)
		print_error("  got      %u \"%s\"\n", got->data[k], tokenizer_token_str(tok, got->data[k]));
	return 1;
}

// The fixture's own texts: ids and decoded text.  Returns the number of differences.
static size_t check_texts(const struct tokenizer *tok, const char *model, const char *variant, const json_t *rows)
{
	const json_t *texts = json_object_get(expected, "texts");
	size_t bad = 0;
	struct u32vec got = { 0 };
	struct bytevec dec = { 0 };
	assert_int_equal(json_array_size(rows), json_array_size(texts));
	for (size_t i = 0; i < json_array_size(texts); i++) {
		const json_t *t = json_array_get(texts, i), *row = json_array_get(rows, i);
		char *what = xasprintf("%s %s text %zu", model, variant, i);
		if (compare(tok, what, json_string_value(t), json_string_length(t), json_object_get(row, "ids"), &got)) {
			bad++;
		} else {
			dec.len = 0;
			assert_int_equal(tokenizer_decode(tok, got.data, got.len, &dec), 0);
			const json_t *want = json_object_get(row, "decoded");
			if (dec.len != json_string_length(want) || memcmp(dec.data, json_string_value(want), dec.len)) {
				print_error("%s: decoded \"%.*s\", expected \"%s\"\n", what, (int)dec.len, dec.data,
					    json_string_value(want));
				bad++;
			}
		}
		free(what);
	}
	free(got.data);
	free(dec.data);
	return bad;
}

static void test_tiny(void **state)
{
	(void)state;
	json_t *base = load_json(MEDMOE_SOURCE_DIR "/tests/fixtures/metaspace/tiny.json");
	const char *name;
	json_t *rows;
	size_t bad = 0, n = 0;
	json_object_foreach(json_object_get(expected, "tiny"), name, rows) {
		struct tokenizer *tok = load_variant(base, name);
		bad += check_texts(tok, "tiny", name, rows);
		tokenizer_free(tok);
		n++;
	}
	json_decref(base);
	assert_true(n >= 10);
	if (bad)
		fail_msg("%zu differences", bad);
}

// A shared file of texts (one {"text"} per line) and its legacy reference ids (one {"ids"} per line).
struct lines {
	char **text;
	size_t *len;
	json_t **ids;
	size_t n;
};

static void read_lines(struct lines *l, const char *texts_path, const char *ids_path)
{
	FILE *ft = fopen(texts_path, "r"), *fi = fopen(ids_path, "r");
	if (!ft || !fi)
		die_errno("%s", !ft ? texts_path : ids_path);
	char *a = NULL, *b = NULL;
	size_t ca = 0, cb = 0;
	memset(l, 0, sizeof *l);
	while (getline(&a, &ca, ft) > 0 && getline(&b, &cb, fi) > 0) {
		json_t *t = json_loads(a, 0, NULL), *r = json_loads(b, 0, NULL);
		assert_non_null(t);
		assert_non_null(r);
		l->text = xrealloc(l->text, (l->n + 1) * sizeof *l->text);
		l->len = xrealloc(l->len, (l->n + 1) * sizeof *l->len);
		l->ids = xrealloc(l->ids, (l->n + 1) * sizeof *l->ids);
		l->len[l->n] = json_string_length(json_object_get(t, "text"));
		l->text[l->n] = xstrndup(json_string_value(json_object_get(t, "text")), l->len[l->n]);
		l->ids[l->n] = json_incref(json_object_get(r, "ids"));
		l->n++;
		json_decref(t);
		json_decref(r);
	}
	free(a);
	free(b);
	fclose(ft);
	fclose(fi);
}

static void free_lines(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->text[i]);
		json_decref(l->ids[i]);
	}
	free(l->text);
	free(l->len);
	free(l->ids);
}

// Lines 0..LIMIT-1 of L: the ids of DIFFERS[line] where the variant changes them, else the legacy ones.
static size_t check_lines(const struct tokenizer *tok, const char *what, const struct lines *l, size_t limit,
			  const json_t *differs)
{
	size_t bad = 0;
	struct u32vec got = { 0 };
	for (size_t i = 0; i < limit && i < l->n; i++) {
		char key[32];
		snprintf(key, sizeof key, "%zu", i);
		const json_t *want = json_object_get(differs, key);
		char *w = xasprintf("%s line %zu", what, i);
		bad += (size_t)compare(tok, w, l->text[i], l->len[i], want ? want : l->ids[i], &got);
		free(w);
		if (bad > 5)
			break;
	}
	free(got.data);
	return bad;
}

static void test_mistral(void **state)
{
	(void)state;
	const char *shared = unit_shared_dir();
	char *dir = xasprintf("%s/tokenizers", shared), *path = xasprintf("%s/mistral/tokenizer.json", dir);
	FILE *probe = fopen(path, "r");
	if (!probe) {
		print_message("SKIP: MEDMOE_SHARED=%s has no tokenizers/mistral: the Mistral Metaspace variants do not "
			      "run\n", shared);
		free(dir);
		free(path);
		skip();
	}
	fclose(probe);
	json_t *base = load_json(path);
	struct lines edge, corpus;
	char *a = xasprintf("%s/edge-cases.jsonl", dir), *b = xasprintf("%s/mistral/edge-cases.ids.jsonl", dir);
	read_lines(&edge, a, b);
	free(a);
	free(b);
	a = xasprintf("%s/corpus.jsonl", dir);
	b = xasprintf("%s/mistral/corpus.ids.jsonl", dir);
	read_lines(&corpus, a, b);
	free(a);
	free(b);
	const char *name;
	json_t *row;
	size_t bad = 0, n = 0;
	json_object_foreach(json_object_get(expected, "mistral"), name, row) {
		struct tokenizer *tok = load_variant(base, name);
		bad += check_texts(tok, "mistral", name, json_object_get(row, "texts"));
		char *what = xasprintf("mistral %s edge-cases", name);
		bad += check_lines(tok, what, &edge, edge.n, json_object_get(row, "edge"));
		free(what);
		what = xasprintf("mistral %s corpus", name);
		bad += check_lines(tok, what, &corpus, (size_t)json_integer_value(json_object_get(row, "corpus_lines")),
				   json_object_get(row, "corpus"));
		free(what);
		tokenizer_free(tok);
		n++;
	}
	free_lines(&edge);
	free_lines(&corpus);
	json_decref(base);
	free(dir);
	free(path);
	assert_true(n >= 10);
	if (bad)
		fail_msg("%zu differences", bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tiny),
		cmocka_unit_test(test_mistral),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
