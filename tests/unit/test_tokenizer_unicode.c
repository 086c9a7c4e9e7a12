// test_tokenizer_unicode.c — the NFC/NFKC shortcut: the "stable" character sets that are copied
// without running utf8proc, checked against utf8proc's own Unicode data for every code point, and
// stretch-wise normalization compared with whole-string utf8proc on random texts built to stress it
// (combining marks of several classes, Hangul jamo, kana sound marks, singletons, compatibility forms).
#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>
#include "die.h"
#include "tok_internal.h"

enum { N_CODE_POINTS = 0x110000 };

static int is_surrogate(uint32_t cp) { return cp >= 0xD800 && cp <= 0xDFFF; }

// Every character that occurs after the first position of some character's full canonical
// decomposition: the only characters composition (canonical, in NFKC too) can ever attach to what
// precedes them.
static uint8_t *later_elements(void)
{
	const utf8proc_option_t opt = UTF8PROC_DECOMPOSE;
	uint8_t *later = xcalloc(N_CODE_POINTS, 1);
	for (uint32_t cp = 0; cp < N_CODE_POINTS; cp++) {
		if (is_surrogate(cp))
			continue;
		utf8proc_int32_t d[32];
		int last = 0;
		utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32, opt, &last);
		assert_true(n >= 1 && n <= 32);
		for (utf8proc_ssize_t k = 1; k < n; k++)
			later[d[k]] = 1;
	}
	return later;
}

static void check_stable_set(int (*stable)(uint32_t), utf8proc_option_t decompose, utf8proc_option_t compose,
			     const char *name)
{
	uint8_t *later = later_elements();
	size_t n_stable = 0, bad = 0;
	for (uint32_t cp = 0; cp < N_CODE_POINTS; cp++) {
		if (is_surrogate(cp) || !stable(cp))
			continue;
		n_stable++;
		utf8proc_int32_t d[32];
		int last = 0;
		utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32, decompose, &last);
		// A starter, nothing composes onto it, and on its own it normalizes to itself.
		char buf[4];
		size_t len = utf8_encode(cp, buf);
		utf8proc_uint8_t *norm = NULL;
		utf8proc_ssize_t nlen = utf8proc_map((const utf8proc_uint8_t *)buf, (utf8proc_ssize_t)len, &norm, compose);
		int ok = utf8proc_get_property((utf8proc_int32_t)cp)->combining_class == 0 && !later[cp] &&
			 utf8proc_get_property(d[0])->combining_class == 0 && !later[d[0]] && n >= 1 &&
			 nlen == (utf8proc_ssize_t)len && memcmp(norm, buf, len) == 0;
		free(norm);
		if (!ok && ++bad <= 5)
			print_error("%s: U+%04X is in the stable set but is not stable\n", name, cp);
	}
	free(later);
	assert_true(n_stable > 20000);
	if (bad)
		fail_msg("%s: %zu code points wrongly in the stable set", name, bad);
}

static void test_nfc_stable_set(void **state)
{
	(void)state;
	check_stable_set(tok_nfc_stable, UTF8PROC_DECOMPOSE, UTF8PROC_STABLE | UTF8PROC_COMPOSE, "NFC");
}

static void test_nfkc_stable_set(void **state)
{
	(void)state;
	check_stable_set(tok_nfkc_stable, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
			 UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, "NFKC");
}

static struct tokenizer *load_normalizer(const char *type)
{
	char path[] = "/tmp/test_tokenizer_unicode.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "{\"normalizer\":{\"type\":\"%s\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		type);
	fclose(f);
	struct tokenizer *tok = tokenizer_load(path);
	unlink(path);
	return tok;
}

static void check_stretches(const char *type, utf8proc_option_t opt)
{
	// Stable characters next to ones that compose, reorder or decompose.
	static const char *const frags[] = {
		"a", "e", "A", " ", "\xcc\x81" /* U+0301 acute, ccc 230 */, "\xcc\x88" /* U+0308 */,
		"\xcc\xa3" /* U+0323 dot below, ccc 220 */, "\xe1\x84\x80" /* U+1100 Hangul L */,
		"\xe1\x85\xa1" /* U+1161 V */, "\xe1\x86\xa8" /* U+11A8 T */, "\xea\xb0\x80" /* U+AC00 LV */,
		"\xe3\x81\x8b" /* U+304B ka */, "\xe3\x82\x99" /* U+3099 voiced mark */, "\xe2\x80\x80" /* U+2000 */,
		"\xe2\x84\xab" /* U+212B angstrom */, "\xc3\x85" /* U+00C5 */, "\xef\xbc\xa1" /* full-width A */,
		"\xe4\xb8\xad" /* U+4E2D */, "\xe0\xb7\x99" /* U+0DD9 */, "\xe0\xb7\x8f" /* U+0DCF */,
		"\xe0\xad\x87" /* U+0B47 */, "\xe0\xac\xbe" /* U+0B3E */, "\xc2\xa0" /* NBSP */, "\xef\xac\x81" /* fi */,
		"\xe2\x80\x94" /* em dash */, "\xcd\x84" /* U+0344, decomposes to two marks */, "\xc2\xb2" /* ² */,
		"\xef\xbe\x9e" /* half-width voiced mark */, "\xef\xbd\xb6" /* half-width ka */,
	};
	const size_t n_frags = sizeof frags / sizeof frags[0];
	struct tokenizer *tok = load_normalizer(type);
	struct tok_scratch *scr = tok_scratch_get();
	struct bytevec text = { 0 };
	uint64_t seed = 12345;
	size_t bad = 0;
	for (int t = 0; t < 20000; t++) {
		text.len = 0;
		bytevec_reserve(&text, 1);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		size_t n = (seed >> 33) % 12;
		for (size_t k = 0; k < n; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			bytevec_puts(&text, frags[(seed >> 33) % n_frags]);
		}
		size_t got_len;
		const char *got = tok_normalize(tok, text.data, text.len, &got_len, scr);
		utf8proc_uint8_t *want = NULL;
		utf8proc_ssize_t want_len = text.len ? utf8proc_map((const utf8proc_uint8_t *)text.data,
								    (utf8proc_ssize_t)text.len, &want, opt) : 0;
		if ((size_t)want_len != got_len || (got_len && memcmp(want, got, got_len) != 0))
			if (++bad <= 3)
				print_error("%s of \"%s\": %zu bytes, utf8proc gives %zd\n", type, text.data, got_len,
					    want_len);
		free(want);
	}
	free(text.data);
	tokenizer_free(tok);
	if (bad)
		fail_msg("%s: %zu of 20000 texts normalize differently by stretches", type, bad);
}

static void test_nfc_stretches(void **state)
{
	(void)state;
	check_stretches("NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE);
}

static void test_nfkc_stretches(void **state)
{
	(void)state;
	check_stretches("NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nfc_stable_set),
		cmocka_unit_test(test_nfkc_stable_set),
		cmocka_unit_test(test_nfc_stretches),
		cmocka_unit_test(test_nfkc_stretches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
