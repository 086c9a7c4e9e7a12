// test_tokenizer.c — the tokenizer on small tokenizer.json files written here into a temp dir: merge
// forms and order, ignore_merges, byte_fallback/unk, Split behaviours, added-token options, the project's
// own byte-level base tokenizer, decoders, and the refusals (run in a forked child: die() exits 65).
#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "die.h"
#include "tokenizer.h"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_tokenizer.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int rc = system(cmd);
	free(cmd);
	return rc;
}

static char *write_json(const char *name, const char *json)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(json, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

static struct tokenizer *load_json(const char *name, const char *json)
{
	char *path = write_json(name, json);
	struct tokenizer *tok = tokenizer_load(path);
	free(path);
	return tok;
}

// Encodes TEXT and checks the ids against EXPECT (N ids); names the first difference.
static void check_ids(const struct tokenizer *tok, const char *text, const uint32_t *expect, size_t n)
{
	struct u32vec got = { 0 };
	tokenizer_encode(tok, text, strlen(text), &got);
	size_t i = 0;
	while (i < n && i < got.len && got.data[i] == expect[i])
		i++;
	if (i < n || got.len != n) {
		print_error("\"%s\": first difference at position %zu: expected %zu ids, got %zu:", text, i, n, got.len);
		for (size_t k = 0; k < got.len; k++)
			print_error(" %u", got.data[k]);
		print_error("\n");
		fail();
	}
	free(got.data);
}
#define CHECK_IDS(tok, text, ...)                                                              \
	do {                                                                                   \
		static const uint32_t expect_[] = { __VA_ARGS__ };                             \
		check_ids(tok, text, expect_, sizeof expect_ / sizeof expect_[0]);             \
	} while (0)

static void check_decode(const struct tokenizer *tok, const uint32_t *ids, size_t n, const char *expect)
{
	struct bytevec out = { 0 };
	assert_int_equal(tokenizer_decode(tok, ids, n, &out), 0);
	assert_non_null(out.data);
	assert_string_equal(out.data, expect);
	free(out.data);
}

#define BPE_HEAD "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,\"pre_tokenizer\":null,\"decoder\":null,"

static const char legacy_json[] = BPE_HEAD
	"\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"bc\":5},"
	"\"merges\":[\"a b\",\"ab c\",\"b c\"]}}";
static const char pairs_json[] = BPE_HEAD
	"\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"bc\":5},"
	"\"merges\":[[\"a\",\"b\"],[\"ab\",\"c\"],[\"b\",\"c\"]]}}";
// The same vocab with "b c" ranked first: "abc" must then become a + bc.
static const char bc_first_json[] = BPE_HEAD
	"\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"bc\":5},"
	"\"merges\":[\"b c\",\"a b\",\"ab c\"]}}";

static void test_merge_forms_agree(void **state)
{
	(void)state;
	struct tokenizer *legacy = load_json("legacy.json", legacy_json);
	struct tokenizer *pairs = load_json("pairs.json", pairs_json);
	// a b c a b: rank 0 merges both "a b", rank 1 then "ab c"; the last "ab" has no c after it.
	CHECK_IDS(legacy, "abcab", 4, 3);
	CHECK_IDS(pairs, "abcab", 4, 3);
	CHECK_IDS(legacy, "cba", 2, 1, 0);
	CHECK_IDS(pairs, "cba", 2, 1, 0);
	assert_int_equal(tokenizer_vocab_size(legacy), 6);
	assert_int_equal(tokenizer_token_id(pairs, "abc"), 4);
	assert_string_equal(tokenizer_token_str(pairs, 5), "bc");
	assert_null(tokenizer_token_str(pairs, 6));
	assert_int_equal(tokenizer_token_id(pairs, "zz"), -1);
	tokenizer_free(legacy);
	tokenizer_free(pairs);
}

static void test_merge_rank_order(void **state)
{
	(void)state;
	struct tokenizer *tok = load_json("bcfirst.json", bc_first_json);
	CHECK_IDS(tok, "abc", 0, 5);
	// Two "b c" candidates and one "a b": the lowest rank wins everywhere, leftmost first.
	CHECK_IDS(tok, "abcbc", 0, 5, 5);
	tokenizer_free(tok);
}

static const char ignore_merges_json[] = BPE_HEAD
	"\"model\":{\"type\":\"BPE\",\"ignore_merges\":%s,\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4},"
	"\"merges\":[\"a b\"]}}";

static void test_ignore_merges(void **state)
{
	(void)state;
	char *on = xasprintf(ignore_merges_json, "true"), *off = xasprintf(ignore_merges_json, "false");
	struct tokenizer *t_on = load_json("ignore_on.json", on), *t_off = load_json("ignore_off.json", off);
	// "abc" is in the vocab but no merge sequence reaches it: only ignore_merges emits it whole.
	CHECK_IDS(t_on, "abc", 4);
	CHECK_IDS(t_off, "abc", 3, 2);
	// A word that is not in the vocab still goes through the merges.
	CHECK_IDS(t_on, "abca", 3, 2, 0);
	CHECK_IDS(t_on, "cab", 2, 3);
	tokenizer_free(t_on);
	tokenizer_free(t_off);
	free(on);
	free(off);
}

// continuing_subword_prefix: inner characters are looked up as "##c", and a merge's result drops the
// prefix of its right side ("a" + "##b" -> "ab"); end_of_word_suffix: the last character carries "</w>".
static void test_subword_prefix_and_suffix(void **state)
{
	(void)state;
	struct tokenizer *pre = load_json("prefix.json", BPE_HEAD
		"\"model\":{\"type\":\"BPE\",\"continuing_subword_prefix\":\"##\",\"vocab\":{\"a\":0,\"##b\":1,"
		"\"ab\":2,\"##c\":3,\"abc\":4},\"merges\":[\"a ##b\",\"ab ##c\"]}}");
	CHECK_IDS(pre, "abc", 4);
	CHECK_IDS(pre, "ab", 2);
	CHECK_IDS(pre, "acb", 0, 3, 1);
	tokenizer_free(pre);
	struct tokenizer *suf = load_json("suffix.json", BPE_HEAD
		"\"model\":{\"type\":\"BPE\",\"end_of_word_suffix\":\"</w>\",\"vocab\":{\"a\":0,\"b</w>\":1,"
		"\"b\":2,\"ab</w>\":3},\"merges\":[\"a b</w>\"]}}");
	CHECK_IDS(suf, "ab", 3);
	CHECK_IDS(suf, "ba", 2);  // "a</w>" is not in the vocab and there is no unk: it is dropped, as in HF
	tokenizer_free(suf);
}

// SentencePiece-style BPE (the LLaMA-2 layout): Prepend/Replace normalizers, byte fallback, unk.
static const char sp_json[] =
	"{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,"
	"\"rstrip\":false,\"normalized\":false,\"special\":true}],"
	"\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
	"{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
	"\"pre_tokenizer\":null,"
	"\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},"
	"\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
	"\"start\":1,\"stop\":0}]},"
	"\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":%s,\"byte_fallback\":true,"
	"\"vocab\":{\"<unk>\":0,\"<0xC3>\":1,\"<0xA9>\":2,\"\xe2\x96\x81\":3,\"a\":4,\"\xe2\x96\x81" "a\":5},"
	"\"merges\":[\"\xe2\x96\x81 a\"]}}";

static void test_byte_fallback_and_unk(void **state)
{
	(void)state;
	char *fused = xasprintf(sp_json, "true"), *unfused = xasprintf(sp_json, "false");
	struct tokenizer *tok = load_json("sp_fused.json", fused), *tok2 = load_json("sp.json", unfused);
	// "▁a" merges; é (C3 A9) is not in the vocab but both byte tokens are.
	CHECK_IDS(tok, "a\xc3\xa9", 5, 1, 2);
	CHECK_IDS(tok, "a a", 5, 5);
	// ü (C3 BC) lacks <0xBC>: it becomes <unk>; fuse_unk folds the run of two into one.
	CHECK_IDS(tok, "a\xc3\xbc\xc3\xbc", 5, 0);
	CHECK_IDS(tok2, "a\xc3\xbc\xc3\xbc", 5, 0, 0);
	// Decoding: byte tokens back to é, the leading space the Prepend added is stripped.
	static const uint32_t ids[] = { 5, 1, 2, 5 };
	check_decode(tok, ids, 4, "a\xc3\xa9 a");
	// A lone <0xC3> is not UTF-8: one U+FFFD per byte.
	static const uint32_t lone[] = { 3, 1, 4 };
	check_decode(tok, lone, 3, "\xef\xbf\xbd" "a");
	tokenizer_free(tok);
	tokenizer_free(tok2);
	free(fused);
	free(unfused);
}

// A vocab with "a▁" (a character before "▁"): a word may not be cut before its "▁"s, and the merge
// across them must happen.  "▁a▁a": "a ▁" (rank 0) merges first, and the "▁ a" entries go stale.
static void test_metaspace_merge_across(void **state)
{
	(void)state;
	struct tokenizer *tok = load_json("across.json",
		"{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
		"{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
		"\"model\":{\"type\":\"BPE\",\"vocab\":{\"\xe2\x96\x81\":0,\"a\":1,\"a\xe2\x96\x81\":2,\"\xe2\x96\x81" "a\":3},"
		"\"merges\":[\"a \xe2\x96\x81\",\"\xe2\x96\x81 a\"]}}");
	CHECK_IDS(tok, "a a", 0, 2, 1);
	tokenizer_free(tok);
}

// Split on the literal "-" with each behaviour; ignore_merges emits each piece whole, so the ids
// spell the pieces: a=0 b=1 -=2 a-=3 -b=4 --=5.
static const char split_json[] = "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,"
	"\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"%s\",\"invert\":%s},"
	"\"decoder\":null,\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,"
	"\"vocab\":{\"a\":0,\"b\":1,\"-\":2,\"a-\":3,\"-b\":4,\"--\":5},\"merges\":[]}}";

static struct tokenizer *split_tok(const char *behavior, const char *invert)
{
	char *json = xasprintf(split_json, behavior, invert);
	char *name = xasprintf("split_%s_%s.json", behavior, invert);
	struct tokenizer *tok = load_json(name, json);
	free(json);
	free(name);
	return tok;
}

static void test_split_behaviours(void **state)
{
	(void)state;
	struct tokenizer *t;
	t = split_tok("Removed", "false");
	CHECK_IDS(t, "a--b", 0, 1);
	tokenizer_free(t);
	t = split_tok("Isolated", "false");
	CHECK_IDS(t, "a--b", 0, 2, 2, 1);
	tokenizer_free(t);
	t = split_tok("MergedWithPrevious", "false");
	CHECK_IDS(t, "a--b", 3, 2, 1);
	tokenizer_free(t);
	t = split_tok("MergedWithNext", "false");
	CHECK_IDS(t, "a--b", 0, 2, 4);
	tokenizer_free(t);
	t = split_tok("Contiguous", "false");
	CHECK_IDS(t, "a--b", 0, 5, 1);
	tokenizer_free(t);
	t = split_tok("Removed", "true");  // inverted: the dashes are what is kept
	CHECK_IDS(t, "a--b", 2, 2);
	tokenizer_free(t);
}

// Added tokens over a character vocabulary: a=0 b=1 ' '=2 x=3; <m> (lstrip) 10, <n> (rstrip) 11,
// x as a single_word added token 12, <big> 13 and <bigger> 14 for longest match.
static const char added_json[] = "{\"version\":\"1.0\",\"added_tokens\":["
	"{\"id\":10,\"content\":\"<m>\",\"single_word\":false,\"lstrip\":true,\"rstrip\":false,\"normalized\":false,\"special\":true},"
	"{\"id\":11,\"content\":\"<n>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":true,\"normalized\":false,\"special\":true},"
	"{\"id\":12,\"content\":\"x\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":false},"
	"{\"id\":13,\"content\":\"<big>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
	"{\"id\":14,\"content\":\"<bigger>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],"
	"\"normalizer\":null,\"pre_tokenizer\":null,\"decoder\":null,"
	"\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\" \":2,\"x\":3},\"merges\":[]}}";

static void test_added_tokens(void **state)
{
	(void)state;
	struct tokenizer *tok = load_json("added.json", added_json);
	CHECK_IDS(tok, "a  <m>b", 0, 10, 1);       // lstrip takes the spaces before <m>
	CHECK_IDS(tok, "a<n>  b", 0, 11, 1);       // rstrip takes the spaces after <n>
	CHECK_IDS(tok, "a x b", 0, 2, 12, 2, 1);   // x alone is the added token
	CHECK_IDS(tok, "axb", 0, 3, 1);            // inside a word it is not
	CHECK_IDS(tok, "<bigger><big>", 14, 13);   // longest match at the leftmost position
	check_ids(tok, "", NULL, 0);
	assert_int_equal(tokenizer_vocab_size(tok), 15);
	assert_int_equal(tokenizer_token_id(tok, "<bigger>"), 14);
	assert_true(tokenizer_is_special(tok, 10));
	assert_false(tokenizer_is_special(tok, 12));  // x is added but not special
	assert_false(tokenizer_is_special(tok, 0));
	assert_false(tokenizer_is_special(tok, 99));
	tokenizer_free(tok);
}

// GPT-2's bytes_to_unicode, restated: printable Latin-1 stands for itself, the other 68 bytes take
// U+0100.. in byte order.
static uint32_t gpt2_char(unsigned b)
{
	unsigned next = 256;
	for (unsigned c = 0; c < 256; c++) {
		int printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174);
		if (c == b)
			return printable ? c : next;
		if (!printable)
			next++;
	}
	return 0;
}

static void json_char(struct bytevec *out, uint32_t cp)
{
	char buf[16];
	if (cp == '"' || cp == '\\')
		snprintf(buf, sizeof buf, "\\%c", (char)cp);
	else if (cp < 0x80)
		snprintf(buf, sizeof buf, "%c", (char)cp);
	else
		snprintf(buf, sizeof buf, "\\u%04X", cp);
	bytevec_puts(out, buf);
}

// A byte-level tokenizer: the 256 byte characters as ids 0..255, then EXTRA vocab entries (already
// in byte-level form, JSON-escaped) from id 256, the given pre-tokenizer and added tokens.
static char *byte_level_json(const char *pre_tokenizer, const char *added, const char *const *extra, size_t n_extra,
			     int ignore_merges)
{
	struct bytevec j = { 0 };
	char *head = xasprintf("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[%s],"
			       "\"normalizer\":null,\"pre_tokenizer\":%s,\"post_processor\":null,"
			       "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
			       "\"use_regex\":false},\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
			       "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
			       "\"byte_fallback\":false,\"ignore_merges\":%s,\"vocab\":{",
			       added, pre_tokenizer, ignore_merges ? "true" : "false");
	bytevec_puts(&j, head);
	free(head);
	for (unsigned b = 0; b < 256; b++) {
		bytevec_puts(&j, b ? ",\"" : "\"");
		json_char(&j, gpt2_char(b));
		char num[16];
		snprintf(num, sizeof num, "\":%u", b);
		bytevec_puts(&j, num);
	}
	for (size_t i = 0; i < n_extra; i++) {
		char *e = xasprintf(",\"%s\":%zu", extra[i], 256 + i);
		bytevec_puts(&j, e);
		free(e);
	}
	bytevec_puts(&j, "},\"merges\":[]}}");
	return j.data;
}

// The layout `init-base` writes: no merges, ByteLevel without prefix space or regex, special tokens
// from id 256.
static char *base_tokenizer_json(void)
{
	static const char *specials[] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
					  "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<s>", "</s>" };
	struct bytevec added = { 0 };
	for (size_t i = 0; i < 9; i++) {
		char *t = xasprintf("%s{\"id\":%zu,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,"
				    "\"rstrip\":false,\"normalized\":false,\"special\":true}",
				    i ? "," : "", 256 + i, specials[i]);
		bytevec_puts(&added, t);
		free(t);
	}
	char *json = byte_level_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
				     "\"use_regex\":false}",
				     added.data, NULL, 0, 0);
	free(added.data);
	return json;
}

static void test_byte_level_base(void **state)
{
	(void)state;
	assert_int_equal(gpt2_char(' '), 0x120);   // "Ġ"
	assert_int_equal(gpt2_char('\n'), 0x10A);  // "Ċ"
	assert_int_equal(gpt2_char(0), 0x100);
	assert_int_equal(gpt2_char(0xAD), 0x143);
	char *json = base_tokenizer_json();
	struct tokenizer *tok = load_json("base.json", json);
	free(json);
	assert_int_equal(tokenizer_vocab_size(tok), 265);
	assert_int_equal(tokenizer_token_id(tok, "<|im_start|>"), 257);
	assert_string_equal(tokenizer_token_str(tok, ' '), "\xc4\xa0");

	// Every byte of a UTF-8 text (controls, Latin-1, CJK, emoji) is its own id.
	const char text[] = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c\t\x01\x7f\n\xf0\x9f\x98\x80 \"q\" \\";
	struct u32vec ids = { 0 };
	tokenizer_encode(tok, text, strlen(text), &ids);
	assert_int_equal(ids.len, strlen(text));
	for (size_t i = 0; i < ids.len; i++)
		assert_int_equal(ids.data[i], (unsigned char)text[i]);
	struct bytevec back = { 0 };
	assert_int_equal(tokenizer_decode(tok, ids.data, ids.len, &back), 0);
	assert_int_equal(back.len, strlen(text));
	assert_memory_equal(back.data, text, back.len);

	// Special tokens in the text become their ids; the bytes around them stay 1:1.
	CHECK_IDS(tok, "<|im_start|>hi<|im_end|>\n", 257, 'h', 'i', 258, '\n');
	// A cut-off UTF-8 character decodes to one U+FFFD (Rust's from_utf8_lossy).
	static const uint32_t cut[] = { 'a', 0xE4, 0xB8, 'b' };
	check_decode(tok, cut, 4, "a\xef\xbf\xbd" "b");
	static const uint32_t bad_id[] = { 'a', 265 };
	back.len = 0;
	assert_int_equal(tokenizer_decode(tok, bad_id, 2, &back), -1);
	free(back.data);
	free(ids.data);
	tokenizer_free(tok);
}

// ByteLevel with add_prefix_space and use_regex (the GPT-2 regex); ignore_merges makes every
// pre-token that is in the vocab come out whole, so the ids show the pre-tokens.
static void test_byte_level_gpt2_regex(void **state)
{
	(void)state;
	static const char *const extra[] = { "\u0120hello", "\u0120world", "'s", "\u0120123" };
	char *json = byte_level_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}", "",
				     extra, 4, 1);
	struct tokenizer *tok = load_json("gpt2.json", json);
	free(json);
	CHECK_IDS(tok, "hello world's", 256, 257, 258);
	CHECK_IDS(tok, " hello 123!", 256, 259, '!');
	// Two spaces before a word: "\s+(?!\S)" leaves the last one to the word.
	CHECK_IDS(tok, "hello  world", 256, ' ', 257);
	tokenizer_free(tok);
}

// The LLaMA-3 Split regex (digits in runs of up to three) and Qwen's (single digits), then ByteLevel.
static void test_split_regex_llama3_qwen(void **state)
{
	(void)state;
	static const char *const extra[] = { "123", "45", "\u0120abc", "'LL", "I" };
	for (int qwen = 0; qwen < 2; qwen++) {
		char *pre = xasprintf("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
				      "{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
				      "\\\\p{N}%s| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
				      "\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
				      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}",
				      qwen ? "" : "{1,3}");
		char *json = byte_level_json(pre, "", extra, 5, 1);
		struct tokenizer *tok = load_json(qwen ? "qwen_regex.json" : "llama3_regex.json", json);
		if (qwen)
			CHECK_IDS(tok, "12345 abc", '1', '2', '3', '4', '5', 258);
		else
			CHECK_IDS(tok, "12345 abc", 256, 257, 258);
		CHECK_IDS(tok, "I'LL", 260, 259);  // the case-insensitive contraction
		tokenizer_free(tok);
		free(json);
		free(pre);
	}
}

// NFKC folds full-width forms and composes; Strip and a regex Replace run in sequence after it.
static void test_normalizers(void **state)
{
	(void)state;
	static const char json[] = "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":{\"type\":\"Sequence\","
		"\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true},"
		"{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\"_\"}]},\"pre_tokenizer\":null,"
		"\"decoder\":null,\"model\":{\"type\":\"BPE\",\"vocab\":{\"A\":0,\"B\":1,\"1\":2,\"\u00e9\":3,\"_\":4},"
		"\"merges\":[]}}";
	struct tokenizer *tok = load_json("nfkc.json", json);
	// Full-width A B 1, then e + combining acute, with spaces around and between.
	CHECK_IDS(tok, "  \xef\xbc\xa1\xef\xbc\xa2   \xef\xbc\x91" "e\xcc\x81 ", 0, 1, 4, 2, 3);
	// Without a decoder, decoding joins the token strings with spaces, as HF does.
	static const uint32_t ids[] = { 0, 4, 3 };
	check_decode(tok, ids, 3, "A _ \xc3\xa9");
	tokenizer_free(tok);
}

// Decoder steps in sequence: a regex Replace on each token, Fuse, then Strip from both ends.
static void test_decoder_sequence(void **state)
{
	(void)state;
	struct tokenizer *tok = load_json("decoders.json",
		"{\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"_+\"},"
		"\"content\":\" \"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\"x\",\"start\":2,\"stop\":1}]},"
		"\"model\":{\"type\":\"BPE\",\"vocab\":{\"xx\":0,\"a_\":1,\"__b\":2,\"x\":3},\"merges\":[]}}");
	static const uint32_t ids[] = { 0, 1, 2, 3 };
	check_decode(tok, ids, 4, "a  b");  // "xx" "a " " b" "x" -> "xxa  bx" -> strip 2 x left, 1 right
	static const uint32_t none[] = { 0 };
	check_decode(tok, none, 0, "");
	tokenizer_free(tok);
}

// Runs tokenizer_load(PATH) in a child; returns its exit status and leaves its stderr in ERR.
static int load_in_child(const char *path, char *err, size_t err_size)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 2);
		close(fds[0]);
		set_progname("test_tokenizer");
		tokenizer_load(path);
		_exit(0);
	}
	close(fds[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < err_size && (r = read(fds[0], err + n, err_size - 1 - n)) > 0)
		n += (size_t)r;
	err[n] = '\0';
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect_refusal(const char *name, const char *json, const char *message)
{
	char *path = write_json(name, json);
	char err[1024];
	int rc = load_in_child(path, err, sizeof err);
	if (rc != 65 || !strstr(err, message)) {
		print_error("%s: exit %d, stderr \"%s\"; wanted 65 and \"%s\"\n", name, rc, err, message);
		fail();
	}
	free(path);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_refusal("metaspace.json",
		       "{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"__\"},"
		       "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		       "pre_tokenizer.replacement: not one character");
	expect_refusal("metaspace_scheme.json",
		       "{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"last\"},"
		       "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		       "pre_tokenizer.prepend_scheme: unsupported \"last\"");
	expect_refusal("metaspace_prefix.json",
		       "{\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_space\":false},"
		       "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		       "decoder.add_prefix_space: false does not match prepend_scheme \"always\"");
	expect_refusal("nested.json",
		       "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"},"
		       "{\"type\":\"Digits\"}]},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		       "pre_tokenizer.pretokenizers[1].type: unsupported \"Digits\"");
	expect_refusal("lowercase.json",
		       "{\"normalizer\":{\"type\":\"Lowercase\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		       "normalizer.type: unsupported \"Lowercase\"");
	expect_refusal("wordpiece.json", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}",
		       "model.type: unsupported \"WordPiece\"");
	expect_refusal("decoder.json",
		       "{\"decoder\":{\"type\":\"CTC\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		       "decoder.type: unsupported \"CTC\"");
	expect_refusal("badmerge.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a q\"]}}",
		       "model.merges[0]: token \"q\" is not in the vocabulary");
	expect_refusal("badregex.json",
		       "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\","
		       "\"invert\":false},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		       "pre_tokenizer.pattern: bad regex");
	// A file cut off halfway is malformed JSON, not a crash.
	size_t half = strlen(pairs_json) / 2;
	char *truncated = xstrndup(pairs_json, half);
	expect_refusal("truncated.json", truncated, "malformed JSON");
	free(truncated);
	expect_refusal("empty.json", "", "malformed JSON");
}

static void test_sha256_and_directory(void **state)
{
	(void)state;
	char *path = write_json("tokenizer.json", pairs_json);
	struct tokenizer *tok = tokenizer_load(tmpdir);  // a directory means its tokenizer.json
	assert_string_equal(tokenizer_path(tok), path);
	char *cmd = xasprintf("sha256sum '%s'", path);
	FILE *p = popen(cmd, "r");
	char want[65] = { 0 };
	assert_non_null(p);
	assert_int_equal(fread(want, 1, 64, p), 64);
	pclose(p);
	assert_string_equal(tokenizer_sha256(tok), want);
	tokenizer_free(tok);
	free(cmd);
	free(path);
}

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_true(utf8_valid("", 0));
	assert_true(utf8_valid("a\xc3\xa9\xe4\xb8\x96\xf0\x9f\x98\x80", 10));
	assert_true(utf8_valid("a\0b", 3));
	assert_false(utf8_valid("\xc0\x80", 2));          // overlong NUL
	assert_false(utf8_valid("\xed\xa0\x80", 3));      // a surrogate
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4));  // above U+10FFFF
	assert_false(utf8_valid("\xe4\xb8", 2));          // cut off
	assert_false(utf8_valid("\x80", 1));              // a stray continuation byte
	assert_false(utf8_valid("\xff", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_forms_agree),
		cmocka_unit_test(test_merge_rank_order),
		cmocka_unit_test(test_ignore_merges),
		cmocka_unit_test(test_subword_prefix_and_suffix),
		cmocka_unit_test(test_byte_fallback_and_unk),
		cmocka_unit_test(test_metaspace_merge_across),
		cmocka_unit_test(test_split_behaviours),
		cmocka_unit_test(test_added_tokens),
		cmocka_unit_test(test_byte_level_base),
		cmocka_unit_test(test_byte_level_gpt2_regex),
		cmocka_unit_test(test_split_regex_llama3_qwen),
		cmocka_unit_test(test_normalizers),
		cmocka_unit_test(test_decoder_sequence),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_sha256_and_directory),
		cmocka_unit_test(test_utf8_valid),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
