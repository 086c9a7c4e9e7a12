// test_exam.c — lib/exam on files of our own: the CMB and CMExam fixtures (tests/fixtures/exam,
// made-up questions in the published formats: exact prompts, multi-answer, shots), and refusals of bad
// input (exit 65 with the file, record and field named; --skip-bad).  The published files in
// shared/data are tested by test_exam_data.c.
#include "exam_check.h"

#include <sys/stat.h>

static char *fixture(const char *name)
{
	const char *top = getenv("MEDMOE_TOP");  // set by tests/run.sh
#ifdef MEDMOE_SOURCE_DIR
	if (!top)
		top = MEDMOE_SOURCE_DIR;
#endif
	return xasprintf("%s/tests/fixtures/exam/%s", top ? top : ".", name);
}

// ---- CMB and CMExam fixtures ----------------------------------------------------------------------

static void test_cmb_fixture(void **state)
{
	(void)state;
	char *test_path = fixture("cmb_test.json"), *val_path = fixture("cmb_val.json");
	size_t n, n_val;
	struct exam_item *items = exam_read_all("cmb", test_path, &n);
	struct exam_item *val = exam_read_all("cmb", val_path, &n_val);
	assert_int_equal(n, 3);
	assert_int_equal(n_val, 3);
	check_items(test_path, items, n, 0, 1);
	check_items(val_path, val, n_val, 0, 1);
	assert_string_equal(items[0].id, "1");
	assert_int_equal(items[0].n_options, 4);  // option E is " ": left out, as CMB's own scripts do
	assert_int_equal(val[0].n_options, 4);    // option E is ""
	assert_int_equal(items[1].multi, 1);
	assert_string_equal(items[1].answer, "AD");  // written "DA" in the file
	assert_int_equal(items[1].n_options, 5);
	assert_string_equal(exam_field(&items[1], "exam_subject"), "临床执业医师");
	assert_string_equal(exam_field(&items[1], "question_type"), "多项选择题");
	assert_null(items[0].explanation);
	assert_string_equal(val[2].explanation, "维生素C和B族维生素为水溶性维生素。");
	assert_string_equal(val[0].id, "cmb_val:1");  // no ids in the file: stem and question number

	const struct exam_item *shots[4];
	size_t n_shots = exam_pick_shots(&items[0], val, n_val, 3, shots);
	assert_int_equal(n_shots, 2);  // only two val questions share 医师考试/执业医师
	char *p = exam_prompt(&items[0], shots, n_shots);
	assert_same_text(p,
			 "问：以下是中国医师考试中执业医师考试的一道单项选择题，不需要做任何分析和解释，直接输出答案选项。\n"
			 "成人正常心率的范围是\nA. 40～60次/分\nB. 60～100次/分\nC. 100～120次/分\nD. 120～140次/分\n"
			 "答：答案是B。\n"
			 "问：以下是中国医师考试中执业医师考试的一道多项选择题，不需要做任何分析和解释，直接输出答案选项。\n"
			 "属于水溶性维生素的有\nA. 维生素A\nB. 维生素C\nC. 维生素D\nD. 维生素B1\n"
			 "答：答案是BD。\n"
			 "问：以下是中国医师考试中执业医师考试的一道单项选择题，不需要做任何分析和解释，直接输出答案选项。\n"
			 "正常成人血红蛋白（男性）的参考下限约为\nA. 90 g/L\nB. 110 g/L\nC. 120 g/L\nD. 160 g/L\n答：答案是",
			 "cmb 2-shot");
	free(p);
	assert_int_equal(exam_pick_shots(&items[2], val, n_val, 3, shots), 0);  // no 药师考试 in val
	assert_string_equal(exam_answer_lead(&items[0]), "");
	assert_shot_consistent(&items[0], &val[0]);
	assert_shot_consistent(&items[0], &val[2]);
	exam_items_free(items, n);
	exam_items_free(val, n_val);
	free(test_path);
	free(val_path);
}

static void test_cmexam_fixture(void **state)
{
	(void)state;
	char *path = fixture("cmexam_test.csv");
	size_t n;
	struct exam_item *items = exam_read_all("cmexam", path, &n);
	assert_int_equal(n, 3);
	check_items(path, items, n, 0, 1);
	assert_int_equal(items[0].n_options, 5);
	assert_int_equal(items[2].n_options, 4);
	assert_int_equal(items[0].multi, 0);
	assert_int_equal(items[1].multi, 1);
	assert_string_equal(items[1].answer, "ACD");
	assert_string_equal(items[1].explanation, "渗出液蛋白含量高、比重高、常自凝（A、C、D对）；细胞多, 外观混浊。");
	assert_string_equal(items[1].id, "cmexam_test:2");
	static const char *const keys[] = { "Disease Group", "Clinical Department", "Medical Discipline",
					    "Area of Competency", "Difficulty level" };
	static const char *const vals[] = { "不符合", "病理科", "临床医学", "医学基础知识", "3" };
	assert_int_equal(items[1].n_fields, 5);
	for (int i = 0; i < 5; i++) {
		assert_string_equal(items[1].field_key[i], keys[i]);
		assert_string_equal(items[1].field_val[i], vals[i]);
	}
	const struct exam_item *shots[2];
	size_t n_shots = exam_pick_shots(&items[1], items, n, 1, shots);
	assert_int_equal(n_shots, 1);
	char *p = exam_prompt(&items[1], shots, n_shots);
	assert_same_text(p,
			 "问题: 胰岛素的主要生理作用是, \n 选项: A 升高血糖\nB 降低血糖\nC 促进脂肪分解\nD 促进蛋白质分解\n"
			 "E 抑制糖原合成\n### 回答:\n答案: B\n\n"
			 "问题: 下列属于急性炎症渗出液特点的是, \n 选项: A 蛋白含量高\nB 细胞少\nC 比重高\nD 常自凝\n"
			 "E 外观清亮\n### 回答:\n答案:",
			 "cmexam 1-shot");
	free(p);
	assert_string_equal(exam_answer_lead(&items[1]), " ");
	assert_shot_consistent(&items[1], &items[0]);
	assert_shot_consistent(&items[0], &items[1]);
	exam_items_free(items, n);
	free(path);

	// The Chinese header spelling (问题, 选项, 答案, 答案解析), after a UTF-8 byte order mark.
	path = fixture("cmexam_zh.csv");
	items = exam_read_all("cmexam", path, &n);
	assert_int_equal(n, 2);
	check_items(path, items, n, 4, 1);
	assert_string_equal(items[0].question, "维持血浆胶体渗透压的主要成分是");
	assert_string_equal(items[1].answer, "AC");
	assert_int_equal(items[1].multi, 1);
	assert_int_equal(items[1].n_fields, 1);
	assert_string_equal(items[1].field_key[0], "难度");
	assert_string_equal(items[1].field_val[0], "3");
	assert_string_equal(items[1].explanation, "亮氨酸和赖氨酸为必需氨基酸（A、C对）。");
	exam_items_free(items, n);
	free(path);
}

// ---- refusals -------------------------------------------------------------------------------------

static char *tmpdir;

static char *write_tmp(const char *name, const char *content)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	return path;
}

// bench reading a file holding content must exit 65 with want (e.g. "record 2: answer_idx: ") in the message.
static void refuse(const char *bench, const char *name, const char *content, const char *want)
{
	char *path = write_tmp(name, content);
	char err[4096];
	int status = child_read(bench, path, err, sizeof err);
	if (status != EXIT_DATA || !strstr(err, want))
		fail_msg("%s %s: exit %d, stderr \"%s\"; want exit 65 and \"%s\"", bench, name, status, err, want);
	if (!strstr(err, path))
		fail_msg("%s %s: the message \"%s\" does not name the file", bench, name, err);
	unlink(path);
	free(path);
}

#define MEDQA_OK "{\"question\": \"q\", \"options\": {\"A\": \"x\", \"B\": \"y\"}, \"answer\": \"y\", " \
		 "\"meta_info\": \"step1\", \"answer_idx\": \"B\"}\n"

static void test_refusals(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/test_exam_XXXXXX";
	tmpdir = mkdtemp(tmpl);
	assert_non_null(tmpdir);

	refuse("medqa", "a.jsonl", MEDQA_OK "{\"question\": \"q\", \"options\": {\"A\": \"x\"\n", "record 2: malformed JSON");
	refuse("medqa", "b.jsonl", "{\"question\": \"q\", \"options\": {\"A\": \"x\", \"B\": \"y\"}, \"answer\": \"y\", "
	       "\"meta_info\": \"m\"}\n", "record 1: answer_idx: missing");
	refuse("medqa", "c.jsonl", MEDQA_OK "\n" MEDQA_OK "{\"question\": \"q\", \"options\": {\"A\": \"x\", \"B\": \"y\"}, "
	       "\"answer\": \"y\", \"meta_info\": \"m\", \"answer_idx\": \"C\"}\n", "record 4: answer_idx: ");
	refuse("medqa", "d.jsonl", "{\"question\": \"q\xff\", \"options\": {\"A\": \"x\", \"B\": \"y\"}, \"answer\": \"y\", "
	       "\"meta_info\": \"m\", \"answer_idx\": \"B\"}\n", "record 1: malformed JSON");
	refuse("medqa", "e.jsonl", "{\"question\": \"q\", \"options\": {\"A\": \"x\", \"C\": \"y\"}, \"answer\": \"y\", "
	       "\"meta_info\": \"m\", \"answer_idx\": \"C\"}\n", "record 1: options: ");
	refuse("medqa", "f.jsonl", "[1, 2]\n", "record 1: not a JSON object");
	refuse("medmcqa", "g.json", "{\"id\": \"u\", \"question\": \"q\", \"opa\": \"a\", \"opb\": \"b\", \"opc\": \"c\", "
	       "\"opd\": \"d\", \"cop\": 0, \"choice_type\": \"single\", \"exp\": null, \"subject_name\": \"S\", "
	       "\"topic_name\": null}\n", "record 1: cop: ");
	refuse("medmcqa", "h.json", "{\"id\": \"u\", \"question\": \"q\", \"opa\": \"a\", \"opb\": 2, \"opc\": \"c\", "
	       "\"opd\": \"d\", \"cop\": 1}\n", "record 1: opb: not a string");
	refuse("mmlu", "x_test.csv", "q,a,b,c,d,A\nq2,a,b\xc3\x28,c,d,B\n", "record 2: field 3 is not valid UTF-8");
	refuse("mmlu", "y_test.csv", "q,a,b,c,d,E\n", "record 1: answer: ");
	refuse("mmlu", "z_test.csv", "q,a,b,c,d,A\nq,a,b,c,A\n", "record 2: 5 CSV fields, expected 6");
	refuse("cmmlu", "anatomy.csv", "Question,A,B,C,D,Answer\nq,a,b,c,d,A\n", "record 0: not a CMMLU file");
	refuse("cmmlu", "no_such_subject.csv", ",Question,A,B,C,D,Answer\n0,q,a,b,c,d,A\n", "is not a CMMLU subject");
	refuse("cmb", "i.json", "{\"question\": \"q\"}", "a CMB file is one JSON array");
	refuse("cmb", "j.json", "[{\"question\": \"q\", \"answer\": \"AB\", \"question_type\": \"单项选择题\", "
	       "\"exam_type\": \"t\", \"exam_class\": \"c\", \"exam_subject\": \"s\", \"option\": {\"A\": \"x\", \"B\": \"y\"}}]",
	       "record 1: answer: ");
	refuse("cmb", "k.json", "[{\"question\": \"q\", \"answer\": \"A\", \"question_type\": \"单项选择题\", "
	       "\"exam_type\": \"t\", \"exam_class\": \"c\", \"exam_subject\": \"s\", \"option\": {\"A\": \"x\", \"B\": \"y\"}},\n"
	       "{\"question\": \"q\", \"answer\": \"A\"", "malformed JSON at line 2");
	refuse("cmexam", "l.csv", "Question,Options,Answer\nq,\"A x\nB y\",B\nq,\"A x\nC y\",A\n", "record 2: Options: ");
	refuse("cmexam", "m.csv", "问题,选项,答案\nq,\"A x\nB y\",AF\n", "record 1: 答案: ");
	refuse("cmexam", "n.csv", "Question,Choices,Answer\nq,\"A x\nB y\",A\n", "record 0: not a CMExam file");

	// An unknown benchmark is a usage error.
	char err[512];
	assert_int_equal(child_read("usmle", "/dev/null", err, sizeof err), EXIT_USAGE);
	assert_non_null(strstr(err, "cmmlu|mmlu|medqa|medmcqa|cmb|cmexam"));
	rmdir(tmpdir);
}

static void test_skip_bad(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/test_exam_XXXXXX";
	tmpdir = mkdtemp(tmpl);
	assert_non_null(tmpdir);
	char *path = write_tmp("skip.jsonl", MEDQA_OK "{\"question\": 1}\n" MEDQA_OK "not json\n" MEDQA_OK);
	struct exam_reader *r = exam_open("medqa", path, 1);
	struct exam_item item;
	size_t n = 0;
	while (exam_next(r, &item)) {
		// "<dir name>/<stem>:<line>": the good records are on lines 1, 3, 5
		char *id = xasprintf("%s/skip:%zu", strrchr(tmpdir, '/') + 1, 2 * n + 1);
		assert_string_equal(item.id, id);
		free(id);
		exam_item_free(&item);
		n++;
	}
	assert_int_equal(n, 3);
	assert_int_equal(exam_skipped(r), 2);
	exam_close(r);
	unlink(path);
	free(path);
	rmdir(tmpdir);
}

// The MMLU-style templates strip the question as Python's str.strip() does (lm-evaluation-harness
// writes {{question.strip()}}): Unicode white space too, inner white space kept.
static void test_prompt_strip(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/test_exam_XXXXXX";
	tmpdir = mkdtemp(tmpl);
	assert_non_null(tmpdir);
	char *path = write_tmp("strip.json", "{\"id\": \"u\", \"question\": \"\\u3000 Which\\u00a0one?\\t\\u00a0\\n\", "
			       "\"opa\": \" a \", \"opb\": \"b\", \"opc\": \"c\", \"opd\": \"d\", \"cop\": 4, "
			       "\"choice_type\": \"single\", \"exp\": null, \"subject_name\": \"Anatomy\", "
			       "\"topic_name\": null}\n");
	size_t n;
	struct exam_item *items = exam_read_all("medmcqa", path, &n);
	assert_int_equal(n, 1);
	assert_string_equal(items[0].answer, "D");
	char *p = exam_prompt(&items[0], NULL, 0);
	assert_same_text(p, "The following are multiple choice questions (with answers) about medicine.\n\n"
			 "Which\u00a0one?\nA.  a \nB. b\nC. c\nD. d\nAnswer:", "stripped question");
	free(p);
	exam_items_free(items, n);
	unlink(path);
	free(path);
	rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmb_fixture),
		cmocka_unit_test(test_cmexam_fixture),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_skip_bad),
		cmocka_unit_test(test_prompt_strip),
	};
	return cmocka_run_group_tests_name("exam", tests, NULL, NULL);
}
