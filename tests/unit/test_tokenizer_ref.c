// test_tokenizer_ref.c — the real Qwen3 and Mistral tokenizers against the ids Hugging Face `tokenizers`
// produced (encode(text, add_special_tokens=False)) for $MEDMOE_SHARED/tokenizers/*/{edge-cases,corpus}
// .ids.jsonl: every record must match.  Also decode(encode(text)) against what HF's decoder gives, and
// two threads encoding at once.  Skips loudly when MEDMOE_SHARED is absent.
#include "unit.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>
#include "die.h"
#include "tokenizer.h"

struct record {
	char *text;
	size_t len;
	uint32_t *ids;
	size_t n_ids;
};

struct refset {
	struct record *recs;
	size_t n;
};

struct model {
	const char *name;
	struct tokenizer *tok;
	struct refset edge, corpus;
};

static struct model models[2] = { { .name = "qwen3" }, { .name = "mistral" } };
static int have_shared;

static void read_refs(const char *path, struct refset *set)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die_errno("%s", path);
	char *line = NULL;
	size_t cap = 0;
	size_t alloc = 0;
	while (getline(&line, &cap, f) > 0) {
		json_error_t err;
		json_t *o = json_loads(line, 0, &err);
		json_t *text = json_object_get(o, "text"), *ids = json_object_get(o, "ids");
		if (!json_is_string(text) || !json_is_array(ids))
			die_data(path, (int64_t)set->n + 1, NULL, "not a {\"text\", \"ids\"} record");
		if (set->n == alloc) {
			alloc = alloc ? alloc * 2 : 256;
			set->recs = xrealloc(set->recs, alloc * sizeof *set->recs);
		}
		struct record *r = &set->recs[set->n++];
		r->len = json_string_length(text);
		r->text = xmalloc(r->len + 1);
		memcpy(r->text, json_string_value(text), r->len + 1);
		r->n_ids = json_array_size(ids);
		r->ids = xmalloc((r->n_ids + 1) * sizeof *r->ids);
		for (size_t i = 0; i < r->n_ids; i++)
			r->ids[i] = (uint32_t)json_integer_value(json_array_get(ids, i));
		json_decref(o);
	}
	free(line);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	const char *shared = unit_shared_dir();
	char *probe = xasprintf("%s/tokenizers/qwen3/tokenizer.json", shared);
	FILE *f = fopen(probe, "r");
	free(probe);
	if (!f)
		return 0;
	fclose(f);
	have_shared = 1;
	for (int m = 0; m < 2; m++) {
		char *dir = xasprintf("%s/tokenizers/%s", shared, models[m].name);
		models[m].tok = tokenizer_load(dir);
		char *edge = xasprintf("%s/edge-cases.ids.jsonl", dir), *corpus = xasprintf("%s/corpus.ids.jsonl", dir);
		read_refs(edge, &models[m].edge);
		read_refs(corpus, &models[m].corpus);
		free(dir);
		free(edge);
		free(corpus);
	}
	return 0;
}

static void free_refs(struct refset *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->recs[i].text);
		free(set->recs[i].ids);
	}
	free(set->recs);
}

static int teardown(void **state)
{
	(void)state;
	for (int m = 0; m < 2; m++) {
		tokenizer_free(models[m].tok);
		free_refs(&models[m].edge);
		free_refs(&models[m].corpus);
	}
	return 0;
}

static void need_shared(void)
{
	if (!have_shared) {
		print_message("SKIP: MEDMOE_SHARED=%s has no tokenizers/: the real-tokenizer tests do not run\n",
			      unit_shared_dir());
		skip();
	}
}

// The number of records whose ids differ; the first few are described on stderr.
static size_t compare_ids(const struct model *m, const char *file, const struct refset *set, size_t first,
			  size_t step, int quiet)
{
	size_t bad = 0;
	struct u32vec got = { 0 };
	for (size_t r = first; r < set->n; r += step) {
		const struct record *rec = &set->recs[r];
		got.len = 0;
		tokenizer_encode(m->tok, rec->text, rec->len, &got);
		size_t i = 0;
		while (i < rec->n_ids && i < got.len && got.data[i] == rec->ids[i])
			i++;
		if (i == rec->n_ids && i == got.len)
			continue;
		if (++bad > 5 || quiet)
			continue;
		print_error("%s %s record %zu: first difference at id %zu (%zu expected, %zu got)\n", m->name, file,
			    r + 1, i, rec->n_ids, got.len);
		for (size_t k = i; k < i + 8 && k < rec->n_ids; k++)
			print_error("  expected %u \"%s\"\n", rec->ids[k], tokenizer_token_str(m->tok, rec->ids[k]));
		for (size_t k = i; k < i + 8 && k < got.len; k++)
			print_error("  got      %u \"%s\"\n", got.data[k], tokenizer_token_str(m->tok, got.data[k]));
	}
	free(got.data);
	return bad;
}

static void check_model_file(int model, int corpus)
{
	need_shared();
	const struct model *m = &models[model];
	const struct refset *set = corpus ? &m->corpus : &m->edge;
	const char *file = corpus ? "corpus.ids.jsonl" : "edge-cases.ids.jsonl";
	assert_true(set->n > 0);
	size_t bad = compare_ids(m, file, set, 0, 1, 0);
	if (bad)
		fail_msg("%s %s: %zu of %zu records differ", m->name, file, bad, set->n);
}

static void test_qwen3_edge_cases(void **state) { (void)state; check_model_file(0, 0); }
static void test_qwen3_corpus(void **state) { (void)state; check_model_file(0, 1); }
static void test_mistral_edge_cases(void **state) { (void)state; check_model_file(1, 0); }
static void test_mistral_corpus(void **state) { (void)state; check_model_file(1, 1); }

// What HF's decoder gives back.  Qwen: the byte-level pipeline is lossless after the NFC normalizer,
// so NFC(text).  Mistral: the Prepend normalizer puts "▁" before every piece between added tokens,
// the decoder turns it into a space, and Strip removes one leading space from the whole string.
static char *expected_decode(const struct model *m, const char *text, size_t len, size_t *out_len)
{
	if (strcmp(m->name, "qwen3") == 0) {
		utf8proc_uint8_t *nfc = NULL;
		utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &nfc,
						  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
		assert_true(n >= 0);
		*out_len = (size_t)n;
		return (char *)nfc;
	}
	static const char *const specials[] = { "<unk>", "<s>", "</s>" };
	struct bytevec out = { 0 };
	size_t i = 0, plain = 0;
	bytevec_reserve(&out, len + 2);
	while (i <= len) {
		size_t hit = 0;
		for (int k = 0; k < 3 && i < len; k++)
			if (strncmp(text + i, specials[k], strlen(specials[k])) == 0)
				hit = strlen(specials[k]);
		if (!hit && i < len) {
			i++;
			continue;
		}
		if (i > plain) {  // " " for the prepended "▁", and the decoder turns every "▁" into a space
			bytevec_append(&out, " ", 1);
			for (size_t k = plain; k < i; k++) {
				if (strncmp(text + k, "\xe2\x96\x81", 3) == 0 && k + 3 <= i) {
					bytevec_append(&out, " ", 1);
					k += 2;
				} else
					bytevec_append(&out, text + k, 1);
			}
		}
		bytevec_append(&out, text + i, hit);
		i += hit ? hit : 1;
		plain = i;
	}
	size_t cut = out.len > 0 && out.data[0] == ' ';
	*out_len = out.len - cut;
	memmove(out.data, out.data + cut, *out_len + 1);
	return out.data;
}

static void check_round_trip(int model)
{
	need_shared();
	const struct model *m = &models[model];
	const struct refset *sets[2] = { &m->edge, &m->corpus };
	size_t bad = 0, total = 0;
	struct bytevec text = { 0 };
	for (int s = 0; s < 2; s++)
		for (size_t r = 0; r < sets[s]->n; r++) {
			const struct record *rec = &sets[s]->recs[r];
			total++;
			text.len = 0;
			bytevec_reserve(&text, 1);
			text.data[0] = '\0';
			assert_int_equal(tokenizer_decode(m->tok, rec->ids, rec->n_ids, &text), 0);
			size_t want_len;
			char *want = expected_decode(m, rec->text, rec->len, &want_len);
			if (want_len != text.len || memcmp(want, text.data, want_len) != 0) {
				if (++bad <= 3)
					print_error("%s %s record %zu: decoded \"%s\", expected \"%s\"\n", m->name,
						    s ? "corpus" : "edge-cases", r + 1, text.data, want);
			}
			free(want);
		}
	free(text.data);
	if (bad)
		fail_msg("%s: %zu of %zu texts do not round-trip", m->name, bad, total);
}

static void test_qwen3_round_trip(void **state) { (void)state; check_round_trip(0); }

// Random texts built from fragments that stress the pipeline (contractions, digit runs, whitespace
// kinds, combining marks, CJK, emoji, special tokens and near-misses, the "▁" and "Ġ" characters
// themselves, text that looks like a byte token): decode(encode(text)) must give what HF's decoder
// gives, and every id must be in range.
static void check_random_round_trip(int model)
{
	static const char *const frags[] = {
		"a", "Z", "the", " ", "  ", "\t", "\n", "\r\n", "\n\n", "\xc3\xa9", "e\xcc\x81", "\xe4\xb8\xad",
		"\xe6\x96\x87", "\xf0\x9f\x98\x80", "\xe2\x80\x8d", "'s", "'LL", "'\xc5\xbf", "1", "123", "4567",
		"\xc2\xa0", "\xe3\x80\x80", "<|im_start|>", "<|im_end", "<s>", "</s>", "<unk>", "\xef\xbc\xa1",
		"\xe2\x96\x81", "<0x41>", ".", ",", "!!", "\xc4\xa0", "\x01", "\xe2\x80\xa8", "\xd9\x85",
		"\xe0\xa4\xb0\xe0\xa5\x8b", "\xea\xb0\x80",
	};
	const size_t n_frags = sizeof frags / sizeof frags[0];
	need_shared();
	const struct model *m = &models[model];
	uint64_t seed = 0x5EED0000u + (uint64_t)model;
	struct bytevec text = { 0 }, back = { 0 };
	struct u32vec ids = { 0 };
	size_t bad = 0;
	for (int t = 0; t < 3000; t++) {
		text.len = 0;
		bytevec_reserve(&text, 1);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		size_t n = 1 + (seed >> 33) % 40;
		for (size_t k = 0; k < n; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			bytevec_puts(&text, frags[(seed >> 33) % n_frags]);
		}
		ids.len = 0;
		tokenizer_encode(m->tok, text.data, text.len, &ids);
		for (size_t k = 0; k < ids.len; k++)
			assert_true(ids.data[k] < tokenizer_vocab_size(m->tok));
		back.len = 0;
		assert_int_equal(tokenizer_decode(m->tok, ids.data, ids.len, &back), 0);
		size_t want_len;
		char *want = expected_decode(m, text.data, text.len, &want_len);
		if (want_len != back.len || memcmp(want, back.data, want_len) != 0)
			if (++bad <= 3)
				print_error("%s random text %d: \"%s\" decoded as \"%s\"\n", m->name, t, text.data,
					    back.len ? back.data : "");
		free(want);
	}
	free(text.data);
	free(back.data);
	free(ids.data);
	if (bad)
		fail_msg("%s: %zu of 3000 random texts do not round-trip", m->name, bad);
}

static void test_qwen3_random_round_trip(void **state) { (void)state; check_random_round_trip(0); }
static void test_mistral_random_round_trip(void **state) { (void)state; check_random_round_trip(1); }
static void test_mistral_round_trip(void **state) { (void)state; check_round_trip(1); }

struct thread_job {
	const struct model *m;
	size_t first, bad;
};

static void *encode_half(void *arg)
{
	struct thread_job *job = arg;
	// Each thread walks every record (so both hit the same words at about the same time), starting
	// at a different offset; the comparison is against the reference ids.
	job->bad = compare_ids(job->m, "corpus.ids.jsonl", &job->m->corpus, job->first, 1, 1);
	job->bad += compare_ids(job->m, "corpus.ids.jsonl", &job->m->corpus, 0, 1, 1);
	return NULL;
}

static void test_two_threads(void **state)
{
	(void)state;
	need_shared();
	for (int model = 0; model < 2; model++) {
		struct thread_job jobs[2] = { { &models[model], 0, 0 }, { &models[model], models[model].corpus.n / 2, 0 } };
		pthread_t th[2];
		for (int t = 0; t < 2; t++)
			assert_int_equal(pthread_create(&th[t], NULL, encode_half, &jobs[t]), 0);
		for (int t = 0; t < 2; t++)
			assert_int_equal(pthread_join(th[t], NULL), 0);
		if (jobs[0].bad || jobs[1].bad)
			fail_msg("%s: %zu and %zu records differ when encoding from two threads", models[model].name,
				 jobs[0].bad, jobs[1].bad);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qwen3_edge_cases),
		cmocka_unit_test(test_qwen3_corpus),
		cmocka_unit_test(test_mistral_edge_cases),
		cmocka_unit_test(test_mistral_corpus),
		cmocka_unit_test(test_qwen3_round_trip),
		cmocka_unit_test(test_mistral_round_trip),
		cmocka_unit_test(test_qwen3_random_round_trip),
		cmocka_unit_test(test_mistral_random_round_trip),
		cmocka_unit_test(test_two_threads),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
