// test_extract.c — answer extraction on realistic model outputs, Chinese and English.
//
// Each case states what the published extractor does with the text (CMB match_choice, CMMLU extract_choice
// minus its random fallback, the English "answer is" rule); "" = unparsed.
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "extract.h"

struct extract_case {
	enum extract_rule rule;
	const char *options;
	int multi;
	const char *text;
	const char *want;
	const char *why;
};

static const struct extract_case cases[] = {
	// ---- CMB (match_choice) ----
	{ EXTRACT_CMB, "ABCDE", 0, "A", "A", "bare letter (fallback: every letter)" },
	{ EXTRACT_CMB, "ABCDE", 0, "答案是B。", "B", "答案是 … 。" },
	{ EXTRACT_CMB, "ABCDE", 0, "答案：C", "C", "full-width colon, up to the end" },
	{ EXTRACT_CMB, "ABCDE", 0, "正确选项为D，因为肝素可以抗凝。", "D", "正确选项为" },
	{ EXTRACT_CMB, "ABCDE", 1, "答案是ABD。", "ABD", "a letter run on a multi-answer question" },
	{ EXTRACT_CMB, "ABCDE", 0, "答案是ABD。", "A", "a run on a single-answer question keeps the first" },
	{ EXTRACT_CMB, "ABCDE", 1, "答案是A、C和E。其余选项B错误", "ACE", "only the captured part up to 。" },
	{ EXTRACT_CMB, "ABCDE", 1, "正确选项应该是B,D", "BD", "应该是" },
	{ EXTRACT_CMB, "ABCDE", 1, "答案是DBA", "ABD", "multi-answer letters come out sorted" },
	{ EXTRACT_CMB, "ABCDE", 1, "答案是A和A", "A", "repeated letters count once" },
	{ EXTRACT_CMB, "ABCDE", 1, "答案：ACD. 解析：B选项错误", "ACD", "an ASCII full stop ends the capture" },
	{ EXTRACT_CMB, "ABCDE", 0, "答案不是A，是C", "A",
	  "CMB's regex misses 答案不是; its fallback takes every letter, and single keeps the first (A)" },
	{ EXTRACT_CMB, "ABCDE", 0, "答案：Ｂ", "B", "full-width letter" },
	{ EXTRACT_CMB, "ABCDE", 0, "我不知道这道题的答案", "", "no letter at all" },
	{ EXTRACT_CMB, "ABCDE", 0, "答案是：无法确定。但B可能对", "",
	  "the regex matched and its capture holds no letter: CMB returns nothing" },
	{ EXTRACT_CMB, "ABCDE", 0, "选项F正确", "", "F is not an option of this question" },
	{ EXTRACT_CMB, "ABCDEF", 0, "选项F正确", "F", "F on a six-option question (CMB id 7951)" },
	{ EXTRACT_CMB, "ABCDE", 0, "答案是\xff\xfe" "C。", "C", "invalid UTF-8 is replaced, not fatal" },
	{ EXTRACT_CMB, "ABCDE", 0, "", "", "empty output" },
	{ EXTRACT_CMB, "ABCDE", 1, "正确选项是：\nA\nC", "AC", "the capture runs over newlines" },
	{ EXTRACT_CMB, "ABCDE", 0, "根据题干描述，患者出现典型的心绞痛症状，故选C。", "C", "no 答案: the fallback" },
	{ EXTRACT_CMB, "ABCDE", 0, "A项错误，B项错误，故选C。", "A",
	  "CMB's fallback takes the first letter mentioned (a known weakness of its rule)" },
	{ EXTRACT_CMB, "ABCDE", 0, "正确答案是：D", "D", "正确答案是 contains 答案是" },

	// ---- CMMLU (extract_choice, deterministic) ----
	{ EXTRACT_CMMLU, "ABCD", 0, "B", "B", "first character" },
	{ EXTRACT_CMMLU, "ABCD", 0, "  C. 肾上腺素", "C", "first character after white space" },
	{ EXTRACT_CMMLU, "ABCD", 0, "ABD", "A", "a run: the first character" },
	{ EXTRACT_CMMLU, "ABCD", 0, "答案是：D", "D", "答案(选项)?(是|为)：? ?X" },
	{ EXTRACT_CMMLU, "ABCD", 0, "本题的答案为选项 A", "A", "答案(是|为)选项 ?X" },
	{ EXTRACT_CMMLU, "ABCD", 0, "综上所述，故选：B", "B", "故?选择?：? ?X" },
	{ EXTRACT_CMMLU, "ABCD", 0, "因此，C选项正确。", "C", "X ?选?项(是|为)?正确" },
	{ EXTRACT_CMMLU, "ABCD", 0, "正确的选项是 D", "D", "正确的?选项(是|为) ?X" },
	{ EXTRACT_CMMLU, "ABCD", 0, "答案不是A，是C", "C", "the weak [^不]是 pattern skips 不是" },
	{ EXTRACT_CMMLU, "ABCD", 0, "我认为A和B都不对，D当选", "D", "recursive 当选: the last letter before it" },
	{ EXTRACT_CMMLU, "ABCD", 0, "首先，A是错的，B也不对，所以C正确", "C", "recursive 正确" },
	{ EXTRACT_CMMLU, "ABCD", 0, "答：B", "B", "答案?：?X" },
	{ EXTRACT_CMMLU, "ABCD", 0, "答案是Ｃ", "C", "full-width letter" },
	{ EXTRACT_CMMLU, "ABCD", 0, "解析：本题考查药理学知识，因此答案为：B", "B", "答案为：X in an explanation" },
	{ EXTRACT_CMMLU, "ABCD", 0, "该患者最可能的诊断是B", "B", "weak [^不]是X" },
	{ EXTRACT_CMMLU, "ABCD", 0, "该患者最可能的诊断不是B", "B", "not weak (不是), but B is the only letter" },
	{ EXTRACT_CMMLU, "ABCD", 0, "我不确定", "", "nothing: no random guess" },
	{ EXTRACT_CMMLU, "ABCD", 0, "这道题选不出来，A、B、C、D都有可能", "", "four letters, no pattern" },
	{ EXTRACT_CMMLU, "ABCD", 0, "答案是E", "", "E is not a CMMLU option" },
	{ EXTRACT_CMMLU, "ABCD", 0, "答案为肾上腺素，即选项C", "C", "答案(选项)?为(.*?)X" },
	{ EXTRACT_CMMLU, "ABCD", 0, "正确答案是 B。", "B", "答案是, a space, the letter" },

	// ---- English ----
	{ EXTRACT_EN, "ABCD", 0, "The answer is (B).", "B", "The answer is (X)" },
	{ EXTRACT_EN, "ABCD", 0, "Answer: C", "C", "answer: X" },
	{ EXTRACT_EN, "ABCD", 0, "B. Hypertension", "B", "leading letter and full stop" },
	{ EXTRACT_EN, "ABCD", 0, "(C) Metformin", "C", "leading parenthesised letter" },
	{ EXTRACT_EN, "ABCD", 0, "D", "D", "bare letter" },
	{ EXTRACT_EN, "ABCD", 0, "A 45-year-old man with chest pain should receive aspirin.", "",
	  "the article A is not an answer" },
	{ EXTRACT_EN, "ABCD", 0, "The answer is not A. The correct answer is D.", "D", "not X is skipped" },
	{ EXTRACT_EN, "ABCDE", 0, "Let's think step by step. Heparin acts on antithrombin.\nTherefore, the answer is E.", "E",
	  "chain of thought, then the answer" },
	{ EXTRACT_EN, "ABCD", 0, "I don't know.", "", "no answer" },
	{ EXTRACT_EN, "ABCD", 0, "the correct answer is d", "", "a lower-case letter is not an option letter" },
	{ EXTRACT_EN, "ABCD", 1, "The answer is A, C and D.", "ACD", "multi-answer" },
	{ EXTRACT_EN, "ABCD", 0, "The answer is CAD-related: B", "B", "CAD is a word, not three letters" },
	{ EXTRACT_EN, "ABCD", 0, "Answer：（B）", "B", "full-width colon and parentheses" },
	{ EXTRACT_EN, "ABCD", 0, "Answer: E", "", "E is not an option here" },
	{ EXTRACT_EN, "ABCD", 1, "ACD", "ACD", "a leading run on a multi-answer question" },
	{ EXTRACT_EN, "ABCD", 0, "ACD", "", "a run is no single answer" },
	{ EXTRACT_EN, "ABCD", 0, "", "", "empty output" },
	{ EXTRACT_EN, "ABCD", 0, "**Answer: B**", "B", "Markdown bold" },
	{ EXTRACT_EN, "ABCD", 0, "The correct answer is option C.", "C", "answer is option X" },
	{ EXTRACT_EN, "ABCD", 0, "Answer:\n\nC", "C", "the letter on a later line" },
};

static void test_cases(void **state)
{
	(void)state;
	int failed = 0;
	struct extractor *x[3] = { extractor_new(EXTRACT_CMB), extractor_new(EXTRACT_CMMLU), extractor_new(EXTRACT_EN) };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct extract_case *c = &cases[i];
		char out[EXTRACT_MAX_LETTERS + 1];
		int parsed = extract_answer(x[c->rule], c->text, strlen(c->text), c->options, (int)strlen(c->options),
					    c->multi, out);
		if (strcmp(out, c->want) || parsed != (c->want[0] != '\0')) {
			fprintf(stderr, "case %zu (%s, %s): \"%s\": got \"%s\" (parsed %d), want \"%s\"\n", i,
				extract_rule_name(c->rule), c->why, c->text, out, parsed, c->want);
			failed++;
		}
	}
	for (int i = 0; i < 3; i++)
		extractor_free(x[i]);
	assert_int_equal(failed, 0);
	assert_true(sizeof cases / sizeof cases[0] >= 40);
}

// The pattern cache holds 8 letter sets; a ninth evicts one, and results stay the same.
static void test_cache_eviction(void **state)
{
	(void)state;
	struct extractor *x = extractor_new(EXTRACT_CMMLU);
	const char *sets[] = { "AB", "ABC", "ABCD", "ABCDE", "ABCDEF", "ABCDEFG", "ABCDEFGH", "BC", "CD", "AB" };
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
			char out[EXTRACT_MAX_LETTERS + 1];
			const char *text = "所以答案是B";
			int parsed = extract_answer(x, text, strlen(text), sets[i], (int)strlen(sets[i]), 0, out);
			assert_int_equal(parsed, strchr(sets[i], 'B') != NULL);
			assert_string_equal(out, strchr(sets[i], 'B') ? "B" : "");
		}
	}
	extractor_free(x);
}

// A long output full of letters: the multi-answer CMB fallback sees all of them.
static void test_long_text(void **state)
{
	(void)state;
	struct extractor *x = extractor_new(EXTRACT_CMB);
	size_t len = 100000;
	char *text = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		text[i] = "xyzG"[i % 4];
	memcpy(text + len - 2, "CA", 2);
	text[len] = '\0';
	char out[EXTRACT_MAX_LETTERS + 1];
	assert_int_equal(extract_answer(x, text, len, "ABCDE", 5, 1, out), 1);
	assert_string_equal(out, "AC");
	free(text);
	extractor_free(x);
}

static void test_rule_for(void **state)
{
	(void)state;
	assert_int_equal(extract_rule_for("cmb", "zh"), EXTRACT_CMB);
	assert_int_equal(extract_rule_for("cmexam", "zh"), EXTRACT_CMB);
	assert_int_equal(extract_rule_for("cmmlu", "zh"), EXTRACT_CMMLU);
	assert_int_equal(extract_rule_for("mmlu", "en"), EXTRACT_EN);
	assert_int_equal(extract_rule_for("medqa", "en"), EXTRACT_EN);
	assert_int_equal(extract_rule_for("medqa", "zh"), EXTRACT_CMB);
	assert_int_equal(extract_rule_for("medmcqa", "en"), EXTRACT_EN);
	assert_string_equal(extract_rule_name(EXTRACT_CMMLU), "cmmlu");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_cache_eviction),
		cmocka_unit_test(test_long_text),
		cmocka_unit_test(test_rule_for),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
