// exam.c — read the six exam benchmarks' own files into exam_items (formats: exam.h, shared/data/README.md).
//
// Every file is read whole into memory first (the largest published split, CMExam train, is tens of MB):
// JSON Lines are then cut at '\n', a CMB file is one jansson array, a CSV file is parsed by libcsv into
// rows.  A record-level problem is recorded in the reader (field + message) by bad() and turned into
// die_data or, with skip_bad, warn_data + skip, in exam_next.
#include "exam.h"

#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "die.h"
#include "infile.h"
#include "vec.h"

enum bench { CMMLU, MMLU, MEDQA, MEDMCQA, CMB, CMEXAM, N_BENCH };
static const char *const bench_names[N_BENCH] = { "cmmlu", "mmlu", "medqa", "medmcqa", "cmb", "cmexam" };

// CMMLU's English file names → the Chinese subject names its prompt uses
// (haonan-li/CMMLU src/categories.py, name_en2zh; all 67 subjects).
static const char *const cmmlu_subjects[][2] = {
	{ "agronomy", "农学" }, { "anatomy", "解剖学" }, { "ancient_chinese", "古汉语" }, { "arts", "艺术学" },
	{ "astronomy", "天文学" }, { "business_ethics", "商业伦理" },
	{ "chinese_civil_service_exam", "中国公务员考试" }, { "chinese_driving_rule", "中国驾驶规则" },
	{ "chinese_food_culture", "中国饮食文化" }, { "chinese_foreign_policy", "中国外交政策" },
	{ "chinese_history", "中国历史" }, { "chinese_literature", "中国文学" },
	{ "chinese_teacher_qualification", "中国教师资格" }, { "clinical_knowledge", "临床知识" },
	{ "college_actuarial_science", "大学精算学" }, { "college_education", "大学教育学" },
	{ "college_engineering_hydrology", "大学工程水文学" }, { "college_law", "大学法律" },
	{ "college_mathematics", "大学数学" }, { "college_medical_statistics", "大学医学统计" },
	{ "college_medicine", "大学医学" }, { "computer_science", "计算机科学" },
	{ "computer_security", "计算机安全" }, { "conceptual_physics", "概念物理学" },
	{ "construction_project_management", "建设工程管理" }, { "economics", "经济学" },
	{ "education", "教育学" }, { "electrical_engineering", "电气工程" }, { "elementary_chinese", "小学语文" },
	{ "elementary_commonsense", "小学常识" }, { "elementary_information_and_technology", "小学信息技术" },
	{ "elementary_mathematics", "初等数学" }, { "ethnology", "民族学" }, { "food_science", "食品科学" },
	{ "genetics", "遗传学" }, { "global_facts", "全球事实" }, { "high_school_biology", "高中生物" },
	{ "high_school_chemistry", "高中化学" }, { "high_school_geography", "高中地理" },
	{ "high_school_mathematics", "高中数学" }, { "high_school_physics", "高中物理学" },
	{ "high_school_politics", "高中政治" }, { "human_sexuality", "人类性行为" },
	{ "international_law", "国际法学" }, { "journalism", "新闻学" }, { "jurisprudence", "法理学" },
	{ "legal_and_moral_basis", "法律与道德基础" }, { "logical", "逻辑学" }, { "machine_learning", "机器学习" },
	{ "management", "管理学" }, { "marketing", "市场营销" }, { "marxist_theory", "马克思主义理论" },
	{ "modern_chinese", "现代汉语" }, { "nutrition", "营养学" }, { "philosophy", "哲学" },
	{ "professional_accounting", "专业会计" }, { "professional_law", "专业法学" },
	{ "professional_medicine", "专业医学" }, { "professional_psychology", "专业心理学" },
	{ "public_relations", "公共关系" }, { "security_study", "安全研究" }, { "sociology", "社会学" },
	{ "sports_science", "体育学" }, { "traditional_chinese_medicine", "中医中药" }, { "virology", "病毒学" },
	{ "world_history", "世界历史" }, { "world_religions", "世界宗教" },
};

// A CSV file parsed whole: rows of NUL-terminated fields.
struct csv_row {
	char **fields;
	size_t n_fields;
	int has_nul;         // a field held a NUL byte (reported as a bad record, not silently cut)
};

struct csv_table {
	struct csv_row *rows;
	size_t n_rows, cap_rows;
	struct csv_row cur;  // the row libcsv is filling
	size_t cap_fields;
};

struct exam_reader {
	enum bench bench;
	char *path;          // as given, for messages
	char *stem;          // file name without directory and extension
	char *dir;           // name of the directory holding the file ("" when none)
	int skip_bad;
	size_t skipped;

	char *buf;           // the whole file
	size_t len;

	size_t pos;          // JSON Lines: next byte; line: lines consumed
	long long line;

	json_t *array;       // CMB: the array and the next index
	size_t index;

	struct csv_table csv;   // CSV benches: the rows, the next one, the header's column map
	size_t row, first_row;
	int col_question, col_options, col_answer, col_explanation;
	int n_extra;         // CMExam: annotation columns kept as fields
	int col_extra[EXAM_MAX_FIELDS];

	char *subject, *subject_zh;  // CMMLU / MMLU
	const char *lang;            // MedQA: decided by the first question read

	long long rec;               // record number of the item being read (for messages)
	char err_field[128];
	char err_msg[512];
};

int exam_bench_known(const char *bench)
{
	for (int b = 0; b < N_BENCH; b++)
		if (strcmp(bench, bench_names[b]) == 0)
			return 1;
	return 0;
}

const char *exam_bench_list(void) { return "cmmlu|mmlu|medqa|medmcqa|cmb|cmexam"; }

// Record a problem with the current record; returns -1 for "return bad(...)".
static int bad(struct exam_reader *r, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct exam_reader *r, const char *field, const char *fmt, ...)
{
	va_list ap;
	snprintf(r->err_field, sizeof r->err_field, "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
	va_end(ap);
	return -1;
}

static int utf8_valid(const char *s, size_t len)
{
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	size_t i = 0;
	while (i < len) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
		if (n <= 0)
			return 0;
		i += (size_t)n;
	}
	return 1;
}

// Han ideographs (CJK Unified + Extension A/B.., compatibility): enough to tell MedQA's zh files from US.
static int has_han(const char *s)
{
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	utf8proc_int32_t cp;
	utf8proc_ssize_t n;
	while (*p && (n = utf8proc_iterate(p, -1, &cp)) > 0) {
		if ((cp >= 0x3400 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FFFF))
			return 1;
		p += n;
	}
	return 0;
}

static void add_field(struct exam_item *item, const char *key, const char *val)
{
	if (item->n_fields == EXAM_MAX_FIELDS)
		die(EXIT_FAIL, "exam: more than %d category fields", EXAM_MAX_FIELDS);
	item->field_key[item->n_fields] = xstrdup(key);
	item->field_val[item->n_fields] = xstrdup(val ? val : "");
	item->n_fields++;
}

static void add_option(struct exam_item *item, char letter, const char *text)
{
	item->letters[item->n_options] = letter;
	item->option_text[item->n_options] = xstrdup(text);
	item->n_options++;
}

static int has_letter(const struct exam_item *item, char letter)
{
	for (int i = 0; i < item->n_options; i++)
		if (item->letters[i] == letter)
			return 1;
	return 0;
}

// Check and store the answer letters (surrounding blanks allowed): each must be an option's letter,
// no repeats; more than one only when item->multi.  Stored sorted.
static int set_answer(struct exam_reader *r, struct exam_item *item, const char *field, const char *text)
{
	size_t n = 0;
	char letters[EXAM_MAX_OPTIONS + 1];
	const char *s = text;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	size_t len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n'))
		len--;
	if (len == 0)
		return bad(r, field, "empty answer");
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!has_letter(item, c))
			return bad(r, field, "answer \"%.*s\": '%c' is not one of the option letters", (int)len, s, c);
		if (memchr(letters, c, n))
			return bad(r, field, "answer \"%.*s\" repeats '%c'", (int)len, s, c);
		letters[n++] = c;
	}
	if (n > 1 && !item->multi)
		return bad(r, field, "answer \"%.*s\" has %zu letters in a single-answer question", (int)len, s, n);
	// insertion sort: at most 8 letters
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && letters[j - 1] > letters[j]; j--) {
			char t = letters[j];
			letters[j] = letters[j - 1];
			letters[j - 1] = t;
		}
	memcpy(item->answer, letters, n);
	item->answer[n] = '\0';
	return 0;
}

// ---- JSON helpers -------------------------------------------------------------------------------

// The string member key of obj, or (nullable) "" for null.  Missing or another type → bad.
static int json_text(struct exam_reader *r, json_t *obj, const char *key, int nullable, const char **out)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return bad(r, key, "missing");
	if (json_is_null(v) && nullable) {
		*out = "";
		return 0;
	}
	if (!json_is_string(v))
		return bad(r, key, "not a string");
	*out = json_string_value(v);
	return 0;
}

// ---- MedQA, MedMCQA: JSON Lines ------------------------------------------------------------------

static int read_medqa(struct exam_reader *r, json_t *obj, struct exam_item *item)
{
	const char *question, *answer_idx, *answer_text, *meta;
	if (json_text(r, obj, "question", 0, &question) || json_text(r, obj, "answer_idx", 0, &answer_idx) ||
	    json_text(r, obj, "answer", 0, &answer_text) || json_text(r, obj, "meta_info", 0, &meta))
		return -1;
	json_t *options = json_object_get(obj, "options");
	if (!options)
		return bad(r, "options", "missing");
	if (!json_is_object(options))
		return bad(r, "options", "not an object");
	// Letters run A, B, ... without gaps; nothing else may be in the object.
	for (char letter = 'A'; letter < 'A' + EXAM_MAX_OPTIONS; letter++) {
		char key[2] = { letter, '\0' };
		json_t *v = json_object_get(options, key);
		if (!v)
			break;
		if (!json_is_string(v))
			return bad(r, "options", "option %s is not a string", key);
		add_option(item, letter, json_string_value(v));
	}
	if ((size_t)item->n_options != json_object_size(options))
		return bad(r, "options", "keys must be the letters A, B, C, ... without gaps");
	if (item->n_options < 2)
		return bad(r, "options", "fewer than 2 options");
	if (set_answer(r, item, "answer_idx", answer_idx))
		return -1;
	// answer repeats the correct option's text: a mismatch means the record is not what it claims.
	if (strcmp(answer_text, item->option_text[item->answer[0] - 'A']) != 0)
		return bad(r, "answer", "\"%s\" is not the text of option %s", answer_text, item->answer);
	item->question = xstrdup(question);
	if (!r->lang) {
		int zh = has_han(question);
		for (int i = 0; i < item->n_options && !zh; i++)
			zh = has_han(item->option_text[i]);
		r->lang = zh ? "zh" : "en";
	}
	item->lang = r->lang;
	add_field(item, "meta_info", meta);
	item->id = *r->dir ? xasprintf("%s/%s:%lld", r->dir, r->stem, r->rec) : xasprintf("%s:%lld", r->stem, r->rec);
	return 0;
}

static int read_medmcqa(struct exam_reader *r, json_t *obj, struct exam_item *item)
{
	static const char *const op_keys[4] = { "opa", "opb", "opc", "opd" };
	const char *id, *question, *choice_type, *subject, *topic, *op;
	if (json_text(r, obj, "id", 0, &id) || json_text(r, obj, "question", 0, &question))
		return -1;
	for (int i = 0; i < 4; i++) {
		if (json_text(r, obj, op_keys[i], 0, &op))
			return -1;
		add_option(item, (char)('A' + i), op);
	}
	json_t *cop = json_object_get(obj, "cop");
	if (!cop)
		return bad(r, "cop", "missing");
	// cop is 1-based in the official release (1 = opa); some re-uploads use 0-3, which we refuse.
	if (!json_is_integer(cop) || json_integer_value(cop) < 1 || json_integer_value(cop) > 4)
		return bad(r, "cop", "must be an integer 1-4 (1 = opa)");
	char answer[2] = { (char)('A' + json_integer_value(cop) - 1), '\0' };
	if (set_answer(r, item, "cop", answer) || json_text(r, obj, "choice_type", 0, &choice_type) ||
	    json_text(r, obj, "subject_name", 0, &subject) || json_text(r, obj, "topic_name", 1, &topic))
		return -1;
	json_t *exp = json_object_get(obj, "exp");
	if (exp && !json_is_null(exp)) {
		if (!json_is_string(exp))
			return bad(r, "exp", "not a string");
		item->explanation = xstrdup(json_string_value(exp));
	}
	item->id = xstrdup(id);
	item->question = xstrdup(question);
	item->lang = "en";
	add_field(item, "subject_name", subject);
	add_field(item, "topic_name", topic);
	add_field(item, "choice_type", choice_type);
	return 0;
}

// Next JSON Lines record: 1 = filled, 0 = end, -1 = bad.  Blank lines are skipped.
static int next_jsonl(struct exam_reader *r, struct exam_item *item)
{
	for (;;) {
		if (r->pos >= r->len)
			return 0;
		const char *start = r->buf + r->pos;
		const char *nl = memchr(start, '\n', r->len - r->pos);
		size_t n = nl ? (size_t)(nl - start) : r->len - r->pos;
		r->pos += n + (nl ? 1 : 0);
		r->rec = ++r->line;
		size_t blank = 0;
		while (blank < n && (start[blank] == ' ' || start[blank] == '\t' || start[blank] == '\r'))
			blank++;
		if (blank == n)
			continue;
		json_error_t err;
		json_t *obj = json_loadb(start, n, 0, &err);
		if (!obj)
			return bad(r, NULL, "malformed JSON at column %d: %s", err.column, err.text);
		int rc;
		if (!json_is_object(obj))
			rc = bad(r, NULL, "not a JSON object");
		else
			rc = r->bench == MEDQA ? read_medqa(r, obj, item) : read_medmcqa(r, obj, item);
		json_decref(obj);
		return rc < 0 ? -1 : 1;
	}
}

// ---- CMB: one JSON array --------------------------------------------------------------------------

static int read_cmb(struct exam_reader *r, json_t *obj, struct exam_item *item)
{
	const char *question, *answer, *question_type, *exam_type, *exam_class, *exam_subject;
	// question first: the published answer key (CMB-test-choice-answer.json) has everything but the
	// question text and options, and this is the field to name when someone feeds it in.
	if (json_text(r, obj, "question", 0, &question))
		return -1;
	if (json_text(r, obj, "answer", 0, &answer) || json_text(r, obj, "question_type", 0, &question_type) ||
	    json_text(r, obj, "exam_type", 0, &exam_type) || json_text(r, obj, "exam_class", 0, &exam_class) ||
	    json_text(r, obj, "exam_subject", 0, &exam_subject))
		return -1;
	json_t *options = json_object_get(obj, "option");
	if (!options)
		return bad(r, "option", "missing");
	if (!json_is_object(options))
		return bad(r, "option", "not an object");
	const char *key;
	json_t *v;
	json_object_foreach(options, key, v) {
		if (strlen(key) != 1 || key[0] < 'A' || key[0] >= 'A' + EXAM_MAX_OPTIONS)
			return bad(r, "option", "key \"%s\" is not a letter A-%c", key, 'A' + EXAM_MAX_OPTIONS - 1);
		if (!json_is_string(v))
			return bad(r, "option", "option %s is not a string", key);
	}
	// In letter order; empty and " " options are left out, as CMB's generate_fewshot.py does.
	for (char letter = 'A'; letter < 'A' + EXAM_MAX_OPTIONS; letter++) {
		char k[2] = { letter, '\0' };
		v = json_object_get(options, k);
		if (v && strcmp(json_string_value(v), "") != 0 && strcmp(json_string_value(v), " ") != 0)
			add_option(item, letter, json_string_value(v));
	}
	if (item->n_options < 2)
		return bad(r, "option", "fewer than 2 non-empty options");
	item->multi = strcmp(question_type, "多项选择题") == 0;
	if (set_answer(r, item, "answer", answer))
		return -1;
	json_t *id = json_object_get(obj, "id");
	if (json_is_integer(id))
		item->id = xasprintf("%lld", (long long)json_integer_value(id));
	else if (json_is_string(id))
		item->id = xstrdup(json_string_value(id));
	else if (!id || json_is_null(id))
		item->id = xasprintf("%s:%lld", r->stem, r->rec);
	else
		return bad(r, "id", "not an integer or a string");
	json_t *expl = json_object_get(obj, "explanation");
	if (json_is_string(expl))
		item->explanation = xstrdup(json_string_value(expl));
	item->question = xstrdup(question);
	item->lang = "zh";
	add_field(item, "exam_type", exam_type);
	add_field(item, "exam_class", exam_class);
	add_field(item, "exam_subject", exam_subject);
	add_field(item, "question_type", question_type);
	return 0;
}

static int next_cmb(struct exam_reader *r, struct exam_item *item)
{
	if (r->index >= json_array_size(r->array))
		return 0;
	json_t *obj = json_array_get(r->array, r->index++);
	r->rec = (long long)r->index;
	if (!json_is_object(obj))
		return bad(r, NULL, "not a JSON object");
	return read_cmb(r, obj, item) < 0 ? -1 : 1;
}

// ---- CSV benches ----------------------------------------------------------------------------------

static void csv_on_field(void *s, size_t len, void *data)
{
	struct csv_table *t = data;
	if (t->cur.n_fields == t->cap_fields) {
		t->cap_fields = t->cap_fields ? 2 * t->cap_fields : 16;
		t->cur.fields = xrealloc(t->cur.fields, t->cap_fields * sizeof *t->cur.fields);
	}
	char *text = xmalloc(len + 1);
	if (len)
		memcpy(text, s, len);
	text[len] = '\0';
	if (memchr(text, '\0', len))
		t->cur.has_nul = 1;
	t->cur.fields[t->cur.n_fields++] = text;
}

static void csv_on_row(int terminator, void *data)
{
	(void)terminator;
	struct csv_table *t = data;
	if (t->n_rows == t->cap_rows) {
		t->cap_rows = t->cap_rows ? 2 * t->cap_rows : 256;
		t->rows = xrealloc(t->rows, t->cap_rows * sizeof *t->rows);
	}
	t->rows[t->n_rows++] = t->cur;
	memset(&t->cur, 0, sizeof t->cur);
	t->cap_fields = 0;
}

// pandas (which every benchmark's own scripts read these files with) keeps blanks at the edges of
// unquoted fields; libcsv trims them unless told that nothing is a space.
static int csv_no_space(unsigned char c)
{
	(void)c;
	return 0;
}

static void csv_read(struct exam_reader *r)
{
	struct csv_parser p;
	if (csv_init(&p, CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
		die(EXIT_FAIL, "exam: cannot initialise libcsv");
	csv_set_space_func(&p, csv_no_space);
	const char *data = r->buf;
	size_t len = r->len;
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {  // a UTF-8 byte order mark (Excel-saved CSV)
		data += 3;
		len -= 3;
	}
	if (csv_parse(&p, data, len, csv_on_field, csv_on_row, &r->csv) != len ||
	    csv_fini(&p, csv_on_field, csv_on_row, &r->csv) != 0)
		die_data(r->path, (long long)r->csv.n_rows + (r->bench == MMLU), NULL, "CSV: %s",
			 csv_strerror(csv_error(&p)));  // the record: the question the bad row would be (header = 0)
	csv_free(&p);
}

static const char *csv_cell(const struct csv_row *row, int col) { return row->fields[col]; }

// Check a CSV row's shape and encoding before its cells are used.
static int csv_row_ok(struct exam_reader *r, const struct csv_row *row, size_t want)
{
	if (row->n_fields != want)
		return bad(r, NULL, "%zu CSV fields, expected %zu", row->n_fields, want);
	if (row->has_nul)
		return bad(r, NULL, "a field contains a NUL byte");
	for (size_t i = 0; i < row->n_fields; i++)
		if (!utf8_valid(row->fields[i], strlen(row->fields[i])))
			return bad(r, NULL, "field %zu is not valid UTF-8", i + 1);
	return 0;
}

static int read_cmmlu(struct exam_reader *r, const struct csv_row *row, struct exam_item *item)
{
	if (csv_row_ok(r, row, 7))
		return -1;
	for (int i = 0; i < 4; i++)
		add_option(item, (char)('A' + i), csv_cell(row, 2 + i));
	if (set_answer(r, item, "Answer", csv_cell(row, 6)))
		return -1;
	item->question = xstrdup(csv_cell(row, 1));
	item->lang = "zh";
	// The unnamed first column is CMMLU's own 0-based row index; dev and test share it, hence the split.
	const char *index = csv_cell(row, 0);
	char fallback[32];
	if (!*index) {
		snprintf(fallback, sizeof fallback, "%lld", r->rec - 1);
		index = fallback;
	}
	item->id = *r->dir ? xasprintf("%s_%s/%s", r->stem, r->dir, index) : xasprintf("%s/%s", r->stem, index);
	add_field(item, "subject", r->subject);
	add_field(item, "subject_zh", r->subject_zh);
	return 0;
}

static int read_mmlu(struct exam_reader *r, const struct csv_row *row, struct exam_item *item)
{
	if (csv_row_ok(r, row, 6))
		return -1;
	for (int i = 0; i < 4; i++)
		add_option(item, (char)('A' + i), csv_cell(row, 1 + i));
	if (set_answer(r, item, "answer", csv_cell(row, 5)))
		return -1;
	item->question = xstrdup(csv_cell(row, 0));
	item->lang = "en";
	item->id = xasprintf("%s/%lld", r->stem, r->rec - 1);
	add_field(item, "subject", r->subject);
	return 0;
}

// CMExam's Options cell: one option per line, "A text" (williamliujl/CMExam data; the MING copy
// ming/eval/datasets/cmexam_test_*.csv).  Letters must run A, B, ... in order.
static int cmexam_options(struct exam_reader *r, struct exam_item *item, const char *field, const char *cell)
{
	const char *s = cell;
	while (*s) {
		const char *end = strchr(s, '\n');
		size_t n = end ? (size_t)(end - s) : strlen(s);
		size_t m = n;
		if (m > 0 && s[m - 1] == '\r')
			m--;
		if (m > 0) {
			char want = (char)('A' + item->n_options);
			if (item->n_options == EXAM_MAX_OPTIONS)
				return bad(r, field, "more than %d options", EXAM_MAX_OPTIONS);
			if (m < 2 || s[0] != want || s[1] != ' ')
				return bad(r, field, "line \"%.*s\" is not \"%c <option text>\"", (int)m, s, want);
			char *text = xstrndup(s + 2, m - 2);
			add_option(item, want, text);
			free(text);
		}
		s += n + (end ? 1 : 0);
	}
	if (item->n_options < 2)
		return bad(r, field, "fewer than 2 options");
	return 0;
}

static int read_cmexam(struct exam_reader *r, const struct csv_row *row, struct exam_item *item)
{
	const struct csv_row *header = &r->csv.rows[0];
	if (csv_row_ok(r, row, header->n_fields))
		return -1;
	const char *options_name = csv_cell(header, r->col_options);
	if (cmexam_options(r, item, options_name, csv_cell(row, r->col_options)))
		return -1;
	// CMExam marks multi-answer questions only by their answer ("AB", "ACDE"): one letter = single.
	const char *answer = csv_cell(row, r->col_answer);
	size_t n_letters = 0;
	for (const char *p = answer; *p; p++)
		n_letters += *p >= 'A' && *p <= 'Z';
	item->multi = n_letters > 1;
	if (set_answer(r, item, csv_cell(header, r->col_answer), answer))
		return -1;
	item->question = xstrdup(csv_cell(row, r->col_question));
	if (r->col_explanation >= 0)
		item->explanation = xstrdup(csv_cell(row, r->col_explanation));
	item->lang = "zh";
	item->id = xasprintf("%s:%lld", r->stem, r->rec);
	for (int i = 0; i < r->n_extra; i++)
		add_field(item, csv_cell(header, r->col_extra[i]), csv_cell(row, r->col_extra[i]));
	return 0;
}

static int next_csv(struct exam_reader *r, struct exam_item *item)
{
	if (r->row >= r->csv.n_rows)
		return 0;
	const struct csv_row *row = &r->csv.rows[r->row++];
	r->rec = (long long)(r->row - r->first_row);
	int rc = r->bench == CMMLU ? read_cmmlu(r, row, item)
		: r->bench == MMLU ? read_mmlu(r, row, item)
		: read_cmexam(r, row, item);
	return rc < 0 ? -1 : 1;
}

// Header checks, at open: a wrong header means a wrong file, not a bad record, so it always dies.
static void cmmlu_header(struct exam_reader *r)
{
	static const char *const want[7] = { "", "Question", "A", "B", "C", "D", "Answer" };
	const struct csv_row *h = r->csv.n_rows ? &r->csv.rows[0] : NULL;
	int ok = h && h->n_fields == 7;
	for (int i = 0; ok && i < 7; i++)
		ok = strcmp(h->fields[i], want[i]) == 0;
	if (!ok)
		die_data(r->path, 0, NULL, "not a CMMLU file: the header must be \",Question,A,B,C,D,Answer\"");
	r->first_row = r->row = 1;
}

static int find_column(const struct csv_row *h, const char *en, const char *zh)
{
	for (size_t i = 0; i < h->n_fields; i++)
		if (strcmp(h->fields[i], en) == 0 || strcmp(h->fields[i], zh) == 0)
			return (int)i;
	return -1;
}

static void cmexam_header(struct exam_reader *r)
{
	if (r->csv.n_rows == 0)
		die_data(r->path, 0, NULL, "empty file: no CMExam header");
	const struct csv_row *h = &r->csv.rows[0];
	r->col_question = find_column(h, "Question", "问题");
	r->col_options = find_column(h, "Options", "选项");
	r->col_answer = find_column(h, "Answer", "答案");
	r->col_explanation = find_column(h, "Explanation", "答案解析");
	if (r->col_question < 0 || r->col_options < 0 || r->col_answer < 0)
		die_data(r->path, 0, NULL, "not a CMExam file: the header needs Question, Options and Answer "
			 "(or 问题, 选项 and 答案)");
	// Every other named column is an annotation (Disease Group, Clinical Department, ...); an unnamed
	// one is a pandas row index.
	for (size_t i = 0; i < h->n_fields; i++) {
		int c = (int)i;
		if (c == r->col_question || c == r->col_options || c == r->col_answer || c == r->col_explanation ||
		    !*h->fields[i])
			continue;
		if (r->n_extra == EXAM_MAX_FIELDS)
			die_data(r->path, 0, NULL, "more than %d annotation columns", EXAM_MAX_FIELDS);
		if (!utf8_valid(h->fields[i], strlen(h->fields[i])))
			die_data(r->path, 0, NULL, "column %zu name is not valid UTF-8", i + 1);
		r->col_extra[r->n_extra++] = c;
	}
	r->first_row = r->row = 1;
}

static void subject_from_name(struct exam_reader *r)
{
	if (r->bench == CMMLU) {
		for (size_t i = 0; i < sizeof cmmlu_subjects / sizeof cmmlu_subjects[0]; i++)
			if (strcmp(r->stem, cmmlu_subjects[i][0]) == 0) {
				r->subject = xstrdup(cmmlu_subjects[i][0]);
				r->subject_zh = xstrdup(cmmlu_subjects[i][1]);
				return;
			}
		die_data(r->path, -1, NULL, "\"%s\" is not a CMMLU subject: the file name gives the subject "
			 "(e.g. data/test/anatomy.csv)", r->stem);
	}
	// MMLU: <subject>_dev.csv, <subject>_val.csv, <subject>_test.csv (hendrycks/test data/)
	static const char *const suffixes[] = { "_dev", "_val", "_test" };
	size_t len = strlen(r->stem);
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(suffixes[i]);
		if (len > n && strcmp(r->stem + len - n, suffixes[i]) == 0) {
			r->subject = xstrndup(r->stem, len - n);
			return;
		}
	}
	r->subject = xstrdup(r->stem);
}

// ---- opening, iterating ---------------------------------------------------------------------------

static void read_whole(struct exam_reader *r)
{
	FILE *f = infile_fopen_stream(r->path);   // a directory is refused; a pipe is read
	if (!f)
		die_errno("%s", r->path);
	struct bytevec b = { 0 };
	char chunk[1 << 16];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		// An exam file is read whole: bounded, so that /dev/zero or a runaway pipe ends in a message.
		if (b.len + n > EXAM_MAX_FILE_BYTES)
			die_data(r->path, -1, NULL, "more than %llu bytes: not an exam file", (unsigned long long)EXAM_MAX_FILE_BYTES);
		bytevec_append(&b, chunk, n);
	}
	if (ferror(f))
		die_errno("%s", r->path);
	if (f != stdin)
		fclose(f);
	r->buf = b.data ? b.data : xstrdup("");
	r->len = b.len;
}

static void split_name(struct exam_reader *r)
{
	const char *slash = strrchr(r->path, '/');
	const char *base = slash ? slash + 1 : r->path;
	const char *dot = strrchr(base, '.');
	r->stem = dot && dot != base ? xstrndup(base, (size_t)(dot - base)) : xstrdup(base);
	if (!slash) {
		r->dir = xstrdup("");
		return;
	}
	const char *end = slash;
	while (end > r->path && end[-1] == '/')
		end--;
	const char *start = end;
	while (start > r->path && start[-1] != '/')
		start--;
	r->dir = xstrndup(start, (size_t)(end - start));
	if (strcmp(r->dir, ".") == 0)
		r->dir[0] = '\0';
}

struct exam_reader *exam_open(const char *bench, const char *path, int skip_bad)
{
	int b = 0;
	while (b < N_BENCH && strcmp(bench, bench_names[b]) != 0)
		b++;
	if (b == N_BENCH)
		die(EXIT_USAGE, "unknown exam benchmark \"%s\" (expected %s)", bench, exam_bench_list());
	struct exam_reader *r = xcalloc(1, sizeof *r);
	r->bench = (enum bench)b;
	r->path = xstrdup(path);
	r->skip_bad = skip_bad;
	if ((r->bench == CMMLU || r->bench == MMLU) && strcmp(path, "-") == 0)
		die(EXIT_USAGE, "--exam %s reads the subject from the file name: give the file, not stdin", bench);
	split_name(r);
	read_whole(r);
	switch (r->bench) {
	case CMMLU:
		subject_from_name(r);
		csv_read(r);
		cmmlu_header(r);
		break;
	case MMLU:
		subject_from_name(r);
		csv_read(r);
		break;
	case CMEXAM:
		csv_read(r);
		cmexam_header(r);
		break;
	case CMB: {
		json_error_t err;
		r->array = json_loadb(r->buf, r->len, 0, &err);
		if (!r->array)
			die_data(r->path, -1, NULL, "malformed JSON at line %d column %d: %s", err.line, err.column, err.text);
		if (!json_is_array(r->array))
			die_data(r->path, -1, NULL, "a CMB file is one JSON array of questions");
		break;
	}
	default:
		break;
	}
	return r;
}

int exam_next(struct exam_reader *r, struct exam_item *item)
{
	for (;;) {
		memset(item, 0, sizeof *item);
		item->bench = bench_names[r->bench];
		r->err_field[0] = '\0';
		int rc = r->bench == CMB ? next_cmb(r, item)
			: r->bench == MEDQA || r->bench == MEDMCQA ? next_jsonl(r, item)
			: next_csv(r, item);
		if (rc >= 0)
			return rc;
		exam_item_free(item);
		const char *field = r->err_field[0] ? r->err_field : NULL;
		if (!r->skip_bad)
			die_data(r->path, r->rec, field, "%s", r->err_msg);
		warn_data(r->path, r->rec, field, "%s (skipped)", r->err_msg);
		r->skipped++;
	}
}

size_t exam_skipped(const struct exam_reader *r) { return r->skipped; }

void exam_close(struct exam_reader *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->csv.n_rows; i++) {
		for (size_t j = 0; j < r->csv.rows[i].n_fields; j++)
			free(r->csv.rows[i].fields[j]);
		free(r->csv.rows[i].fields);
	}
	for (size_t j = 0; j < r->csv.cur.n_fields; j++)
		free(r->csv.cur.fields[j]);
	free(r->csv.cur.fields);
	free(r->csv.rows);
	if (r->array)
		json_decref(r->array);
	free(r->buf);
	free(r->path);
	free(r->stem);
	free(r->dir);
	free(r->subject);
	free(r->subject_zh);
	free(r);
}

void exam_item_free(struct exam_item *item)
{
	free(item->id);
	for (int i = 0; i < item->n_options; i++)
		free(item->option_text[i]);
	for (int i = 0; i < item->n_fields; i++) {
		free(item->field_key[i]);
		free(item->field_val[i]);
	}
	free(item->question);
	free(item->explanation);
	memset(item, 0, sizeof *item);
}

struct exam_item *exam_read_all(const char *bench, const char *path, size_t *n_items)
{
	struct exam_reader *r = exam_open(bench, path, 0);
	struct exam_item *items = NULL;
	size_t n = 0, cap = 0;
	struct exam_item item;
	while (exam_next(r, &item)) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			items = xrealloc(items, cap * sizeof *items);
		}
		items[n++] = item;
	}
	exam_close(r);
	*n_items = n;
	return items;
}

void exam_items_free(struct exam_item *items, size_t n_items)
{
	for (size_t i = 0; i < n_items; i++)
		exam_item_free(&items[i]);
	free(items);
}
