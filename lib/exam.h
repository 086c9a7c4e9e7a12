// exam.h — read licensing-exam benchmark files as published and build their standard prompts.
//
// Six benchmarks, each read from its own files without conversion (formats: shared/data/README.md):
//   cmmlu    CSV with header ",Question,A,B,C,D,Answer"; subject = file name (data/{dev,test}/<subject>.csv)
//   mmlu     CSV without header (question,A,B,C,D,answer); subject = file name minus _dev/_val/_test
//   medqa    JSON Lines {question, options{A..D|E}, answer, answer_idx, meta_info}; zh or en by content
//   medmcqa  JSON Lines {id, question, opa..opd, cop 1-4, choice_type, exp, subject_name, topic_name}
//   cmb      one JSON array of {exam_type, exam_class, exam_subject, question, answer, question_type, option{A..}}
//   cmexam   CSV with header Question,Options,Answer,Explanation,<annotation columns>
//            (or the Chinese spellings 问题,选项,答案,答案解析)
// One exam_item per question, in file order.  The prompt templates and their sources are in
// docs/exam-prompts.md; exam_prompt() builds them.
//
// Bad records (malformed JSON line, missing or mistyped field, invalid UTF-8, an answer letter that is
// not one of the options) stop the program through die_data() ("PROG: FILE: record N: FIELD: what",
// exit 65), where N is the 1-based question number (= the line for JSON Lines).  With skip_bad the
// record is reported by warn_data() and skipped instead; exam_skipped() counts them.  A file that
// cannot be parsed at all (broken JSON array, broken CSV quoting, wrong header) always dies.
#ifndef MEDMOE_EXAM_H
#define MEDMOE_EXAM_H

// Exam files are read whole; one bigger than this is refused (exit 65).  The largest (MedMCQA train) is ~100 MB.
#define EXAM_MAX_FILE_BYTES (1ull << 30)

#include <stddef.h>

#define EXAM_MAX_OPTIONS 8   // letters A..H; the benchmarks use at most 6 (CMB id 7951: A..F)
#define EXAM_MAX_FIELDS 12

struct exam_item {
	char *id;            // unique within a file, and across the files of one published release:
	                     //   medmcqa, cmb: the file's own id (cmb without ids: "<file stem>:<question n>")
	                     //   cmmlu: "<subject>_<dir>/<index column>"  e.g. "anatomy_test/0"
	                     //   mmlu: "<file stem>/<row from 0>"         e.g. "anatomy_test/0"
	                     //   medqa: "<dir>/<file stem>:<line>"        e.g. "US/dev:1", "4_options/dev:1"
	                     //   cmexam: "<file stem>:<question n>"       e.g. "test:1"
	                     // (<dir> = the name of the folder holding the file, left out when there is none)
	const char *bench;   // "cmmlu", "mmlu", "medqa", "medmcqa", "cmb", "cmexam" (static storage)
	const char *lang;    // "zh" or "en" (static storage)
	int multi;           // 1 = more than one answer letter may be correct (CMB 多项选择题, CMExam)
	int n_options;
	char letters[EXAM_MAX_OPTIONS];          // 'A', 'B', ... in prompt order
	char *option_text[EXAM_MAX_OPTIONS];
	char answer[EXAM_MAX_OPTIONS + 1];       // the correct letters, sorted, NUL-terminated: "B", "ACD"
	int n_fields;        // every category field the bench has, in a fixed order per bench
	char *field_key[EXAM_MAX_FIELDS];        // e.g. "subject", "exam_class", "Clinical Department"
	char *field_val[EXAM_MAX_FIELDS];        // a JSON null is stored as "" (medmcqa topic_name)
	char *question;      // as written in the file
	char *explanation;   // medmcqa exp, cmb explanation, cmexam Explanation/答案解析; NULL when absent
};

struct exam_reader;

// 1 when name is one of the six benchmarks above.
int exam_bench_known(const char *bench);
// The list for usage messages: "cmmlu|mmlu|medqa|medmcqa|cmb|cmexam".
const char *exam_bench_list(void);

// Open path ("-" = stdin, only for the JSON benches: the CSV ones take their subject from the file name).
// Unknown bench → die(EXIT_USAGE); unreadable file → die_errno; unparseable file → die_data.
struct exam_reader *exam_open(const char *bench, const char *path, int skip_bad);
// Fill *item with the next question: 1 = item (free it with exam_item_free), 0 = end of file.
int exam_next(struct exam_reader *r, struct exam_item *item);
size_t exam_skipped(const struct exam_reader *r);
void exam_close(struct exam_reader *r);
void exam_item_free(struct exam_item *item);

// The value of category field key, or NULL when item has none.
const char *exam_field(const struct exam_item *item, const char *key);

// Every question of a file (the shot pool of --shots-from); bad records die (no skipping in a pool).
struct exam_item *exam_read_all(const char *bench, const char *path, size_t *n_items);
void exam_items_free(struct exam_item *items, size_t n_items);

// Choose up to k solved examples for item from pool, deterministically: the first ones in file order
// that share item's subject where the bench has subjects (cmmlu, mmlu: subject; cmb: exam_type and
// exam_class, as CMB's generate_fewshot.py selects; medqa, medmcqa, cmexam: any) and language, never
// the question itself (same id and text).  Writes pointers into pool to shots[0..], returns how many (≤ k).
size_t exam_pick_shots(const struct exam_item *item, const struct exam_item *pool, size_t n_pool, size_t k,
		       const struct exam_item **shots);

// The full prompt, a fresh string: the bench's header/instruction, the n_shots solved examples (each
// with its answer), then item's question with its lettered options and the answer cue, in the
// template of item's bench and language.  Ends at the cue ("答案是：", "Answer:", "答：答案是", "答案:"),
// with no trailing space, so the model's next token is the answer; exam_answer_lead() says what goes
// between the cue and the letters.
char *exam_prompt(const struct exam_item *item, const struct exam_item *const *shots, size_t n_shots);

// What the solved examples put between the cue and the answer letters: " " after the English
// "Answer:" and CMExam's "答案:", "" after CMMLU's "答案是：" and CMB's "答案是".  The letter a model
// should produce next is this followed by the letter (for option_ids of medmoe.exam).
const char *exam_answer_lead(const struct exam_item *item);

#endif
