// test_exam_data.c — lib/exam on the published exam files in $MEDMOE_SHARED/data: every CMMLU, MMLU,
// MedQA and MedMCQA file reads whole with the row counts of shared/data/README.md and valid answers;
// exact prompts for the first question of a file (0-shot and with dev shots); shots of the same
// subject; the CMB answer key (no question text) is refused by name.  Without the shared data the
// whole file is skipped with a TAP plan "1..0 # SKIP" (cmocka's own skip() prints "not ok").
#include "exam_check.h"

#include <sys/stat.h>

static char *shared_path(const char *rel)
{
	return xasprintf("%s/data/%s", unit_shared_dir(), rel);
}

struct file_count {
	const char *path;
	size_t rows;
};

// ---- the real files -------------------------------------------------------------------------------

static void test_cmmlu_files(void **state)
{
	(void)state;
	// shared/data/README.md, Files table
	static const struct file_count files[] = {
		{ "cmmlu/data/dev/anatomy.csv", 5 }, { "cmmlu/data/dev/clinical_knowledge.csv", 5 },
		{ "cmmlu/data/dev/college_medical_statistics.csv", 5 }, { "cmmlu/data/dev/college_medicine.csv", 5 },
		{ "cmmlu/data/dev/genetics.csv", 5 }, { "cmmlu/data/dev/nutrition.csv", 5 },
		{ "cmmlu/data/dev/virology.csv", 5 }, { "cmmlu/data/test/anatomy.csv", 148 },
		{ "cmmlu/data/test/clinical_knowledge.csv", 237 }, { "cmmlu/data/test/college_medical_statistics.csv", 106 },
		{ "cmmlu/data/test/college_medicine.csv", 273 }, { "cmmlu/data/test/genetics.csv", 176 },
		{ "cmmlu/data/test/nutrition.csv", 145 }, { "cmmlu/data/test/virology.csv", 169 },
	};
	size_t total = 0;
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		char *path = shared_path(files[f].path);
		size_t n;
		struct exam_item *items = exam_read_all("cmmlu", path, &n);
		if (n != files[f].rows)
			fail_msg("%s: %zu questions, want %zu", path, n, files[f].rows);
		check_items(path, items, n, 4, 0);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(items[i].lang, "zh");
			assert_non_null(exam_field(&items[i], "subject_zh"));
			if (count_newlines_in_fields(&items[i]))
				fail_msg("%s: item %zu: a newline (README: none in these files)", path, i + 1);
		}
		total += n;
		exam_items_free(items, n);
		free(path);
	}
	assert_int_equal(total, 35 + 1254);
}

static void test_mmlu_files(void **state)
{
	(void)state;
	static const struct file_count files[] = {
		{ "mmlu_medical/data/dev/anatomy_dev.csv", 5 }, { "mmlu_medical/data/dev/clinical_knowledge_dev.csv", 5 },
		{ "mmlu_medical/data/dev/college_biology_dev.csv", 5 }, { "mmlu_medical/data/dev/college_medicine_dev.csv", 5 },
		{ "mmlu_medical/data/dev/medical_genetics_dev.csv", 5 }, { "mmlu_medical/data/test/anatomy_test.csv", 135 },
		{ "mmlu_medical/data/test/clinical_knowledge_test.csv", 265 },
		{ "mmlu_medical/data/test/college_biology_test.csv", 144 },
		{ "mmlu_medical/data/test/college_medicine_test.csv", 173 },
		{ "mmlu_medical/data/test/medical_genetics_test.csv", 100 }, { "mmlu_medical/data/val/anatomy_val.csv", 14 },
		{ "mmlu_medical/data/val/clinical_knowledge_val.csv", 29 }, { "mmlu_medical/data/val/college_biology_val.csv", 16 },
		{ "mmlu_medical/data/val/college_medicine_val.csv", 22 }, { "mmlu_medical/data/val/medical_genetics_val.csv", 11 },
	};
	size_t total = 0;
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		char *path = shared_path(files[f].path);
		size_t n;
		struct exam_item *items = exam_read_all("mmlu", path, &n);
		if (n != files[f].rows)
			fail_msg("%s: %zu questions, want %zu", path, n, files[f].rows);
		check_items(path, items, n, 4, 0);
		// README: quoted fields with newlines: college_medicine_test 16, college_biology test and val 1 each.
		int newlines = 0;
		for (size_t i = 0; i < n; i++)
			newlines += count_newlines_in_fields(&items[i]);
		int want = strstr(path, "college_medicine_test") ? 16 : strstr(path, "college_biology_test") ? 1
			: strstr(path, "college_biology_val") ? 1 : 0;
		if (newlines != want)
			fail_msg("%s: %d fields with a newline, want %d", path, newlines, want);
		const char *slash = strrchr(files[f].path, '/') + 1;
		const char *subject = exam_field(&items[0], "subject");
		assert_non_null(subject);
		assert_int_equal(strncmp(slash, subject, strlen(subject)), 0);
		assert_int_equal(slash[strlen(subject)], '_');
		total += n;
		exam_items_free(items, n);
		free(path);
	}
	assert_int_equal(total, 25 + 92 + 817);
}

static void test_medqa_files(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		size_t rows;
		int options;
		const char *lang;
	} files[] = {
		{ "medqa/data_clean/questions/US/dev.jsonl", 1272, 5, "en" },
		{ "medqa/data_clean/questions/US/4_options/phrases_no_exclude_dev.jsonl", 1272, 4, "en" },
		{ "medqa/data_clean/questions/Mainland/dev.jsonl", 3425, 5, "zh" },
		{ "medqa/data_clean/questions/Mainland/4_options/dev.jsonl", 3425, 4, "zh" },
		{ "medqa/data_clean/questions/Taiwan/dev.jsonl", 1412, 4, "zh" },
	};
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		char *path = shared_path(files[f].path);
		size_t n;
		struct exam_item *items = exam_read_all("medqa", path, &n);
		if (n != files[f].rows)
			fail_msg("%s: %zu questions, want %zu", path, n, files[f].rows);
		check_items(path, items, n, files[f].options, 0);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(items[i].lang, files[f].lang);
			assert_non_null(exam_field(&items[i], "meta_info"));
		}
		exam_items_free(items, n);
		free(path);
	}
}

static void test_medmcqa_file(void **state)
{
	(void)state;
	char *path = shared_path("medmcqa/dev.json");
	size_t n;
	struct exam_item *items = exam_read_all("medmcqa", path, &n);
	assert_int_equal(n, 4183);
	check_items(path, items, n, 4, 0);
	// README: choice_type single 2,816 / multi 1,367 (one cop either way); exp null 1,977; topic_name null 3,760.
	size_t single = 0, multi = 0, no_exp = 0, no_topic = 0;
	for (size_t i = 0; i < n; i++) {
		const char *ct = exam_field(&items[i], "choice_type");
		single += strcmp(ct, "single") == 0;
		multi += strcmp(ct, "multi") == 0;
		no_exp += items[i].explanation == NULL;
		no_topic += strcmp(exam_field(&items[i], "topic_name"), "") == 0;
		assert_non_null(exam_field(&items[i], "subject_name"));
	}
	assert_int_equal(single, 2816);
	assert_int_equal(multi, 1367);
	assert_int_equal(no_exp, 1977);
	assert_int_equal(no_topic, 3760);
	assert_string_equal(items[0].id, "45258d3d-b974-44dd-a161-c3fccbdadd88");
	assert_string_equal(items[0].answer, "A");  // cop 1 = opa
	exam_items_free(items, n);
	free(path);
}

// ---- exact prompts --------------------------------------------------------------------------------

// The first question of path, as a prompt with shots picked from pool_path (NULL: 0-shot).
static char *first_prompt(const char *bench, const char *path, const char *pool_path, size_t k, size_t *n_shots)
{
	struct exam_reader *r = exam_open(bench, path, 0);
	struct exam_item item;
	assert_int_equal(exam_next(r, &item), 1);
	size_t n_pool = 0;
	struct exam_item *pool = pool_path ? exam_read_all(bench, pool_path, &n_pool) : NULL;
	const struct exam_item *shots[8];
	size_t n = pool ? exam_pick_shots(&item, pool, n_pool, k, shots) : 0;
	char *prompt = exam_prompt(&item, shots, n);
	if (n_shots)
		*n_shots = n;
	exam_items_free(pool, n_pool);
	exam_item_free(&item);
	exam_close(r);
	return prompt;
}

static void test_prompt_cmmlu(void **state)
{
	(void)state;
	char *test = shared_path("cmmlu/data/test/anatomy.csv"), *dev = shared_path("cmmlu/data/dev/anatomy.csv");
	char *p = first_prompt("cmmlu", test, NULL, 0, NULL);
	assert_same_text(p, "以下是关于解剖学的单项选择题，请直接给出正确答案的选项。\n\n"
			 "题目：女性生殖腺是\nA. 卵巢\nB. 前庭大腺\nC. 前庭球\nD. 乳腺\n答案是：", "cmmlu 0-shot");
	free(p);
	size_t n_shots;
	p = first_prompt("cmmlu", test, dev, 1, &n_shots);
	assert_int_equal(n_shots, 1);
	assert_same_text(p, "以下是关于解剖学的单项选择题，请直接给出正确答案的选项。\n\n"
			 "题目：壁胸膜的分部不包括\nA. 肋胸膜\nB. 肺胸膜\nC. 膈胸膜\nD. 胸膜顶\n答案是：B\n\n"
			 "题目：女性生殖腺是\nA. 卵巢\nB. 前庭大腺\nC. 前庭球\nD. 乳腺\n答案是：", "cmmlu 1-shot");
	free(p);
	free(test);
	free(dev);
}

static void test_prompt_mmlu(void **state)
{
	(void)state;
	char *test = shared_path("mmlu_medical/data/test/anatomy_test.csv");
	char *dev = shared_path("mmlu_medical/data/dev/anatomy_dev.csv");
	static const char *const question =
		"A lesion causing compression of the facial nerve at the stylomastoid foramen will cause ipsilateral\n"
		"A. paralysis of the facial muscles.\n"
		"B. paralysis of the facial muscles and loss of taste.\n"
		"C. paralysis of the facial muscles, loss of taste and lacrimation.\n"
		"D. paralysis of the facial muscles, loss of taste, lacrimation and decreased salivation.\n"
		"Answer:";
	static const char *const header = "The following are multiple choice questions (with answers) about anatomy.\n\n";
	char *want = xasprintf("%s%s", header, question);
	char *p = first_prompt("mmlu", test, NULL, 0, NULL);
	assert_same_text(p, want, "mmlu 0-shot");
	free(p);
	free(want);
	size_t n_shots;
	p = first_prompt("mmlu", test, dev, 1, &n_shots);
	assert_int_equal(n_shots, 1);
	want = xasprintf("%sWhat is the embryological origin of the hyoid bone?\nA. The first pharyngeal arch\n"
			 "B. The first and second pharyngeal arches\nC. The second pharyngeal arch\n"
			 "D. The second and third pharyngeal arches\nAnswer: D\n\n%s", header, question);
	assert_same_text(p, want, "mmlu 1-shot");
	free(p);
	free(want);
	free(test);
	// A two-word subject is written with a space (Hendrycks' format_subject).
	test = shared_path("mmlu_medical/data/test/clinical_knowledge_test.csv");
	p = first_prompt("mmlu", test, NULL, 0, NULL);
	assert_ptr_equal(strstr(p, "The following are multiple choice questions (with answers) about clinical knowledge.\n\n"), p);
	free(p);
	free(test);
	free(dev);
}

static void test_prompt_medqa(void **state)
{
	(void)state;
	char *us = shared_path("medqa/data_clean/questions/US/4_options/phrases_no_exclude_dev.jsonl");
	char *p = first_prompt("medqa", us, NULL, 0, NULL);
	assert_same_text(p, "The following are multiple choice questions (with answers) about medicine.\n\n"
			 "A 21-year-old sexually active male complains of fever, pain during urination, and inflammation "
			 "and pain in the right knee. A culture of the joint fluid shows a bacteria that does not ferment "
			 "maltose and has no polysaccharide capsule. The physician orders antibiotic therapy for the "
			 "patient. The mechanism of action of action of the medication given blocks cell wall synthesis, "
			 "which of the following was given?\nA. Gentamicin\nB. Ciprofloxacin\nC. Ceftriaxone\n"
			 "D. Trimethoprim\nAnswer:", "medqa US");
	free(p);
	free(us);
	char *tw = shared_path("medqa/data_clean/questions/Taiwan/dev.jsonl");
	p = first_prompt("medqa", tw, NULL, 0, NULL);
	assert_same_text(p, "以下是关于医学的单项选择题，请直接给出正确答案的选项。\n\n"
			 "题目：在病人接受全身麻醉施行胸腰脊椎側彎（scoliosis）矯正手術時，下列何方法對脊椎神經功能監測最可靠？\n"
			 "A. motor evoked potentials\nB. somato-sensory evoked potentials\nC. electromyography\n"
			 "D. wake-up test\n答案是：", "medqa Taiwan");
	free(p);
	free(tw);
}

static void test_prompt_medmcqa(void **state)
{
	(void)state;
	char *path = shared_path("medmcqa/dev.json");
	size_t n_shots;
	// Shots from the same file: the question itself is never its own shot.
	char *p = first_prompt("medmcqa", path, path, 1, &n_shots);
	assert_int_equal(n_shots, 1);
	assert_same_text(p, "The following are multiple choice questions (with answers) about medicine.\n\n"
			 "Which of the following is not true about glomerular capillaries')\n"
			 "A. The oncotic pressure of the fluid leaving the capillaries is less than that of fluid entering it\n"
			 "B. Glucose concentration in the capillaries is the same as that in glomerular filtrate\n"
			 "C. Constriction of afferent aeriole decreases the blood flow to the glomerulas\n"
			 "D. Hematocrit of the fluid leaving the capillaries is less than that of the fluid entering it\n"
			 "Answer: A\n\n"
			 "Which of the following is not true for myelinated nerve fibers:\n"
			 "A. Impulse through myelinated fibers is slower than non-myelinated fibers\n"
			 "B. Membrane currents are generated at nodes of Ranvier\n"
			 "C. Saltatory conduction of impulses is seen\n"
			 "D. Local anesthesia is effective only when the nerve is not covered by myelin sheath\nAnswer:",
			 "medmcqa 1-shot");
	assert_int_equal(p[strlen(p) - 1], ':');
	free(p);
	free(path);
}

static void test_shots_same_subject(void **state)
{
	(void)state;
	// A pool of every CMMLU dev file: an anatomy question gets the anatomy dev questions, in order.
	static const char *const subjects[] = { "clinical_knowledge", "anatomy", "virology" };
	struct exam_item *pool = NULL;
	size_t n_pool = 0;
	for (int s = 0; s < 3; s++) {
		char *rel = xasprintf("cmmlu/data/dev/%s.csv", subjects[s]);
		char *path = shared_path(rel);
		size_t n;
		struct exam_item *items = exam_read_all("cmmlu", path, &n);
		pool = xrealloc(pool, (n_pool + n) * sizeof *pool);
		memcpy(pool + n_pool, items, n * sizeof *items);
		n_pool += n;
		free(items);
		free(path);
		free(rel);
	}
	char *test = shared_path("cmmlu/data/test/anatomy.csv");
	struct exam_reader *r = exam_open("cmmlu", test, 0);
	struct exam_item item;
	assert_int_equal(exam_next(r, &item), 1);
	assert_string_equal(item.id, "anatomy_test/0");
	const struct exam_item *shots[8];
	size_t n = exam_pick_shots(&item, pool, n_pool, 8, shots);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		char *want = xasprintf("anatomy_dev/%zu", i);
		assert_string_equal(shots[i]->id, want);
		free(want);
	}
	assert_int_equal(exam_pick_shots(&item, pool, n_pool, 2, shots), 2);
	exam_item_free(&item);
	exam_close(r);
	exam_items_free(pool, n_pool);
	free(test);
}

// For every published file: its second question as a shot for its first (both orders), and the lead.
static void test_shot_consistency(void **state)
{
	(void)state;
	static const char *const files[][3] = {
		{ "cmmlu", "cmmlu/data/test/genetics.csv", "" },
		{ "mmlu", "mmlu_medical/data/test/college_medicine_test.csv", " " },
		{ "medqa", "medqa/data_clean/questions/US/dev.jsonl", " " },
		{ "medqa", "medqa/data_clean/questions/Mainland/dev.jsonl", "" },
		{ "medmcqa", "medmcqa/dev.json", " " },
	};
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		char *path = shared_path(files[f][1]);
		size_t n;
		struct exam_item *items = exam_read_all(files[f][0], path, &n);
		assert_true(n >= 2);
		assert_string_equal(exam_answer_lead(&items[0]), files[f][2]);
		assert_shot_consistent(&items[0], &items[1]);
		assert_shot_consistent(&items[1], &items[0]);
		exam_items_free(items, n);
		free(path);
	}
}

static void test_cmb_answer_key(void **state)
{
	(void)state;
	// The published CMB answer key has no question text: named, not crashed on.
	char *key = shared_path("cmb/data/CMB-test-choice-answer.json");
	char err[4096];
	int status = child_read("cmb", key, err, sizeof err);
	if (status != EXIT_DATA || !strstr(err, "record 1: question: missing"))
		fail_msg("CMB answer key: exit %d, stderr \"%s\"", status, err);
	free(key);
}

int main(void)
{
	struct stat st;
	char *readme = shared_path("README.md");
	if (stat(readme, &st) != 0) {
		printf("1..0 # SKIP MEDMOE_SHARED=%s has no data/README.md: the published exam files are not tested\n",
		       unit_shared_dir());
		free(readme);
		return 0;
	}
	free(readme);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmmlu_files),
		cmocka_unit_test(test_mmlu_files),
		cmocka_unit_test(test_medqa_files),
		cmocka_unit_test(test_medmcqa_file),
		cmocka_unit_test(test_prompt_cmmlu),
		cmocka_unit_test(test_prompt_mmlu),
		cmocka_unit_test(test_prompt_medqa),
		cmocka_unit_test(test_prompt_medmcqa),
		cmocka_unit_test(test_shots_same_subject),
		cmocka_unit_test(test_shot_consistency),
		cmocka_unit_test(test_cmb_answer_key),
	};
	return cmocka_run_group_tests_name("exam_data", tests, NULL, NULL);
}
