// exam_prompt.c — the benchmarks' standard prompt templates, and the choice of few-shot examples.
//
// Each template, with its source, is written out in docs/exam-prompts.md; the comments here name
// the source file only.  Three families:
//   CMMLU style (cmmlu; medqa zh)          header + "题目：q\nA. ..\n答案是：" blocks   (CMMLU src/mp_utils.py)
//   MMLU style (mmlu; medqa en; medmcqa)  header + "q\nA. ..\nAnswer:" blocks          (hendrycks/test evaluate.py,
//                                                                                      lm-evaluation-harness mmlu)
//   CMB, CMExam: their own instruction per question (CMB src/generate_fewshot.py + workers/base.py;
//                CMExam src/preprocess/prompt_templates.py + src/LoRA/templates/med_template.json)
#include "exam.h"

#include <string.h>
#include <utf8proc.h>

#include "die.h"
#include "vec.h"

const char *exam_field(const struct exam_item *item, const char *key)
{
	for (int i = 0; i < item->n_fields; i++)
		if (strcmp(item->field_key[i], key) == 0)
			return item->field_val[i];
	return NULL;
}

static const char *field_or(const struct exam_item *item, const char *key, const char *fallback)
{
	const char *v = exam_field(item, key);
	return v ? v : fallback;
}

static void put_answer(struct bytevec *b, const struct exam_item *item) { bytevec_puts(b, item->answer); }

// ---- CMMLU style ------------------------------------------------------------------------------------

// "题目：{q}\nA. {a}\nB. {b}...\n答案是：" and, for a shot, "{answer}\n\n" (format_example in mp_utils.py).
static void cmmlu_block(struct bytevec *b, const struct exam_item *q, int solved)
{
	bytevec_puts(b, "题目：");
	bytevec_puts(b, q->question);
	for (int i = 0; i < q->n_options; i++) {
		char head[5] = { '\n', q->letters[i], '.', ' ', '\0' };
		bytevec_puts(b, head);
		bytevec_puts(b, q->option_text[i]);
	}
	bytevec_puts(b, "\n答案是：");
	if (solved) {
		put_answer(b, q);
		bytevec_puts(b, "\n\n");
	}
}

static void cmmlu_prompt(struct bytevec *b, const struct exam_item *item, const struct exam_item *const *shots,
			 size_t n_shots)
{
	// gen_prompt in mp_utils.py; MedQA (Mainland, Taiwan) has no subject, so the subject is 医学.
	bytevec_puts(b, "以下是关于");
	bytevec_puts(b, field_or(item, "subject_zh", "医学"));
	bytevec_puts(b, "的单项选择题，请直接给出正确答案的选项。\n\n");
	for (size_t i = 0; i < n_shots; i++)
		cmmlu_block(b, shots[i], 1);
	cmmlu_block(b, item, 0);
}

// ---- MMLU style -------------------------------------------------------------------------------------

// What Python's str.isspace() calls white space, which str.strip() removes: ASCII \t\n\v\f\r, the
// separators U+001C..U+001F, and Unicode's Zs/Zl/Zp plus U+0085 (NBSP and U+3000 included).
static int py_space(utf8proc_int32_t cp)
{
	if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85)
		return 1;
	utf8proc_category_t cat = utf8proc_category(cp);
	return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

// Append s without the white space at its two ends (Python's str.strip()).
static void put_stripped(struct bytevec *b, const char *s)
{
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	size_t len = strlen(s), i = 0, start = len, end = 0;
	while (i < len) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
		if (n <= 0)
			n = 1, cp = -1;  // not reached for checked input; count the byte as text
		if (cp < 0 || !py_space(cp)) {
			if (start == len)
				start = i;
			end = i + (size_t)n;
		}
		i += (size_t)n;
	}
	if (start < end)
		bytevec_append(b, s + start, end - start);
}

// "{q}\nA. {a}\n...\nAnswer:" and, for a shot, " {answer}\n\n".  The question is stripped of white
// space at both ends, as lm-evaluation-harness's mmlu template does ({{question.strip()}}).
static void mmlu_block(struct bytevec *b, const struct exam_item *q, int solved)
{
	put_stripped(b, q->question);
	for (int i = 0; i < q->n_options; i++) {
		char head[5] = { '\n', q->letters[i], '.', ' ', '\0' };
		bytevec_puts(b, head);
		bytevec_puts(b, q->option_text[i]);
	}
	bytevec_puts(b, "\nAnswer:");
	if (solved) {
		bytevec_puts(b, " ");
		put_answer(b, q);
		bytevec_puts(b, "\n\n");
	}
}

static void mmlu_prompt(struct bytevec *b, const struct exam_item *item, const struct exam_item *const *shots,
			size_t n_shots)
{
	// Hendrycks' gen_prompt writes the subject with '_' → ' ' (and a stray double space, which
	// lm-evaluation-harness dropped; we follow the harness).  MedQA US and MedMCQA: "medicine".
	bytevec_puts(b, "The following are multiple choice questions (with answers) about ");
	const char *subject = field_or(item, "subject", "medicine");
	for (const char *p = subject; *p; p++)
		bytevec_append(b, *p == '_' ? " " : p, 1);
	bytevec_puts(b, ".\n\n");
	for (size_t i = 0; i < n_shots; i++)
		mmlu_block(b, shots[i], 1);
	mmlu_block(b, item, 0);
}

// ---- CMB --------------------------------------------------------------------------------------------

// query_prompt_2 (the direct-answer one) of src/generate_fewshot.py, with option_str = "A. text" lines.
static void cmb_query(struct bytevec *b, const struct exam_item *q)
{
	bytevec_puts(b, "以下是中国");
	bytevec_puts(b, field_or(q, "exam_type", ""));
	bytevec_puts(b, "中");
	bytevec_puts(b, field_or(q, "exam_class", ""));
	bytevec_puts(b, "考试的一道");
	bytevec_puts(b, field_or(q, "question_type", ""));
	bytevec_puts(b, "，不需要做任何分析和解释，直接输出答案选项。\n");
	bytevec_puts(b, q->question);
	for (int i = 0; i < q->n_options; i++) {
		char head[4] = { q->letters[i], '.', ' ', '\0' };
		bytevec_puts(b, "\n");
		bytevec_puts(b, head);
		bytevec_puts(b, q->option_text[i]);
	}
}

static void cmb_prompt(struct bytevec *b, const struct exam_item *item, const struct exam_item *const *shots,
		       size_t n_shots)
{
	// The reference worker's wrapping (workers/mymodel.py: fewshot_template "问：{user}\n答：{gpt}\n",
	// instruction "问：{instruction}\n答："; its model-specific system prompt left out) and the
	// few-shot answer "答案是{answer}。" (workers/base.py format_fewshot_user_and_gpt).
	for (size_t i = 0; i < n_shots; i++) {
		bytevec_puts(b, "问：");
		cmb_query(b, shots[i]);
		bytevec_puts(b, "\n答：答案是");
		put_answer(b, shots[i]);
		bytevec_puts(b, "。\n");
	}
	// The answer's own opening "答案是" ends the prompt, so the next token is the letter in both
	// scoring modes (a letter's logit right after "答：" would compete with "答案是" of the shots).
	bytevec_puts(b, "问：");
	cmb_query(b, item);
	bytevec_puts(b, "\n答：答案是");
}

// ---- CMExam -----------------------------------------------------------------------------------------

// Template 1 of src/preprocess/prompt_templates.py, prompt "问题: {}, \n 选项: {}" (Options as in the
// file, "A text" lines), wrapped by src/LoRA/templates/med_template.json "{instruction}\n### 回答:\n";
// the completion is "答案: {answer}", whose "答案:" we keep as the cue.
static void cmexam_block(struct bytevec *b, const struct exam_item *q, int solved)
{
	bytevec_puts(b, "问题: ");
	bytevec_puts(b, q->question);
	bytevec_puts(b, ", \n 选项: ");
	for (int i = 0; i < q->n_options; i++) {
		char head[3] = { q->letters[i], ' ', '\0' };
		if (i)
			bytevec_puts(b, "\n");
		bytevec_puts(b, head);
		bytevec_puts(b, q->option_text[i]);
	}
	bytevec_puts(b, "\n### 回答:\n答案:");
	if (solved) {
		bytevec_puts(b, " ");
		put_answer(b, q);
		bytevec_puts(b, "\n\n");
	}
}

static void cmexam_prompt(struct bytevec *b, const struct exam_item *item, const struct exam_item *const *shots,
			  size_t n_shots)
{
	for (size_t i = 0; i < n_shots; i++)
		cmexam_block(b, shots[i], 1);
	cmexam_block(b, item, 0);
}

enum style { CMMLU_STYLE, MMLU_STYLE, CMB_STYLE, CMEXAM_STYLE };

static enum style style_of(const struct exam_item *item)
{
	const char *bench = item->bench;
	if (strcmp(bench, "cmmlu") == 0 || (strcmp(bench, "medqa") == 0 && strcmp(item->lang, "zh") == 0))
		return CMMLU_STYLE;
	if (strcmp(bench, "mmlu") == 0 || strcmp(bench, "medqa") == 0 || strcmp(bench, "medmcqa") == 0)
		return MMLU_STYLE;
	if (strcmp(bench, "cmb") == 0)
		return CMB_STYLE;
	if (strcmp(bench, "cmexam") == 0)
		return CMEXAM_STYLE;
	die(EXIT_FAIL, "exam_prompt: unknown benchmark \"%s\"", bench);
}

char *exam_prompt(const struct exam_item *item, const struct exam_item *const *shots, size_t n_shots)
{
	struct bytevec b = { 0 };
	switch (style_of(item)) {
	case CMMLU_STYLE:
		cmmlu_prompt(&b, item, shots, n_shots);
		break;
	case MMLU_STYLE:
		mmlu_prompt(&b, item, shots, n_shots);
		break;
	case CMB_STYLE:
		cmb_prompt(&b, item, shots, n_shots);
		break;
	case CMEXAM_STYLE:
		cmexam_prompt(&b, item, shots, n_shots);
		break;
	}
	return b.data;
}

const char *exam_answer_lead(const struct exam_item *item)
{
	enum style style = style_of(item);
	return style == MMLU_STYLE || style == CMEXAM_STYLE ? " " : "";
}

// ---- few-shot choice --------------------------------------------------------------------------------

static int same_field(const struct exam_item *a, const struct exam_item *b, const char *key)
{
	const char *x = exam_field(a, key), *y = exam_field(b, key);
	return x && y && strcmp(x, y) == 0;
}

// Shots share the subject where the benchmark has one: CMMLU/MMLU use their subject's dev file;
// CMB's generate_fewshot.py select_items() filters on exam_type and exam_class (it then samples at
// random; we take the first ones, so that runs repeat).
static int same_subject(const struct exam_item *item, const struct exam_item *shot)
{
	if (strcmp(item->bench, "cmmlu") == 0 || strcmp(item->bench, "mmlu") == 0)
		return same_field(item, shot, "subject");
	if (strcmp(item->bench, "cmb") == 0)
		return same_field(item, shot, "exam_type") && same_field(item, shot, "exam_class");
	return 1;
}

size_t exam_pick_shots(const struct exam_item *item, const struct exam_item *pool, size_t n_pool, size_t k,
		       const struct exam_item **shots)
{
	size_t n = 0;
	for (size_t i = 0; i < n_pool && n < k; i++) {
		const struct exam_item *c = &pool[i];
		if (strcmp(c->bench, item->bench) != 0 || strcmp(c->lang, item->lang) != 0 || !same_subject(item, c))
			continue;
		if (strcmp(c->id, item->id) == 0 && strcmp(c->question, item->question) == 0)
			continue;  // the question itself, when --shots-from is the file under test
		shots[n++] = c;
	}
	return n;
}
