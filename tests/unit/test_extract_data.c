// test_extract_data.c — every question of the published exam files (and the CMB/CMExam fixtures), answered
// in the canonical forms each benchmark's prompt asks for, extracts back to its answer key: the option
// letter sets, multi-answer keys and languages of the real data all go through lib/extract.
//   CMB rule:   "答案：<key>。<explanation>", and the bare key
//   CMMLU rule: "<key>", "答案是：<key>"
//   English:    "The answer is (<key>).", "<key>. <option text>"
// Without $MEDMOE_SHARED the real files are skipped loudly; the fixtures still run.
#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "die.h"
#include "exam.h"
#include "extract.h"

static size_t n_checked;

static void expect(struct extractor *x, const struct exam_item *it, const char *text, const char *file)
{
	char out[EXTRACT_MAX_LETTERS + 1];
	int parsed = extract_answer(x, text, strlen(text), it->letters, it->n_options, it->multi, out);
	if (!parsed || strcmp(out, it->answer))
		fail_msg("%s: %s: \"%.80s\": got \"%s\" (parsed %d), want \"%s\"", file, it->id, text, out, parsed,
			 it->answer);
	n_checked++;
}

static void check_file(const char *bench, const char *path)
{
	size_t n;
	struct exam_item *items = exam_read_all(bench, path, &n);
	assert_true(n > 0);
	struct extractor *x = NULL;
	enum extract_rule rule = 0;
	for (size_t i = 0; i < n; i++) {
		const struct exam_item *it = &items[i];
		enum extract_rule want = extract_rule_for(it->bench, it->lang);
		if (!x || want != rule) {
			extractor_free(x);
			x = extractor_new(rule = want);
		}
		char *text;
		switch (rule) {
		case EXTRACT_CMB:
			text = xasprintf("答案：%s。%s", it->answer, it->explanation ? it->explanation : "");
			expect(x, it, text, path);
			free(text);
			expect(x, it, it->answer, path);
			break;
		case EXTRACT_CMMLU:
			expect(x, it, it->answer, path);
			text = xasprintf("答案是：%s", it->answer);
			expect(x, it, text, path);
			free(text);
			break;
		case EXTRACT_EN: {
			text = xasprintf("The answer is (%s).", it->answer);
			expect(x, it, text, path);
			free(text);
			int k = (int)(strchr(it->letters, it->answer[0]) - it->letters);
			text = xasprintf("%s. %s", it->answer, it->option_text[k]);
			expect(x, it, text, path);
			free(text);
			break;
		}
		}
	}
	extractor_free(x);
	exam_items_free(items, n);
}

static void test_fixtures(void **state)
{
	(void)state;
	static const char *const files[][2] = {
		{ "cmb", "tests/fixtures/exam/cmb_val.json" },
		{ "cmb", "tests/fixtures/exam/cmb_test.json" },
		{ "cmexam", "tests/fixtures/exam/cmexam_test.csv" },
		{ "cmexam", "tests/fixtures/exam/cmexam_zh.csv" },
	};
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		char *path = xasprintf("%s/%s", MEDMOE_SOURCE_DIR, files[f][1]);
		check_file(files[f][0], path);
		free(path);
	}
}

static void test_shared_files(void **state)
{
	(void)state;
	static const char *const files[][2] = {
		{ "cmmlu", "cmmlu/data/test/anatomy.csv" },
		{ "cmmlu", "cmmlu/data/test/clinical_knowledge.csv" },
		{ "cmmlu", "cmmlu/data/test/college_medicine.csv" },
		{ "cmmlu", "cmmlu/data/test/genetics.csv" },
		{ "cmmlu", "cmmlu/data/test/nutrition.csv" },
		{ "cmmlu", "cmmlu/data/test/virology.csv" },
		{ "mmlu", "mmlu_medical/data/test/anatomy_test.csv" },
		{ "mmlu", "mmlu_medical/data/test/clinical_knowledge_test.csv" },
		{ "medqa", "medqa/data_clean/questions/US/dev.jsonl" },
		{ "medqa", "medqa/data_clean/questions/Mainland/dev.jsonl" },
		{ "medqa", "medqa/data_clean/questions/Taiwan/dev.jsonl" },
		{ "medmcqa", "medmcqa/dev.json" },
	};
	char *readme = xasprintf("%s/data/README.md", unit_shared_dir());
	struct stat st;
	int have = stat(readme, &st) == 0;
	free(readme);
	if (!have) {
		printf("# SKIP MEDMOE_SHARED=%s has no data/: the published exam files are not tested\n", unit_shared_dir());
		skip();
	}
	size_t before = n_checked;
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		char *path = xasprintf("%s/data/%s", unit_shared_dir(), files[f][1]);
		check_file(files[f][0], path);
		free(path);
	}
	printf("# %zu answers extracted back from the published files\n", n_checked - before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_shared_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
