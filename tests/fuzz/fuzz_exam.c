// fuzz_exam — the exam parsers (CMB JSON, CMExam CSV, CMMLU and MMLU CSV, MedQA JSON Lines, MedMCQA JSON
// Lines), then each question's prompt.  Input: one byte choosing the benchmark, then the file.
#include <stdlib.h>

#include "exam.h"
#include "fuzz.h"

static const struct {
	const char *bench, *name;
} kinds[] = {
	{"cmb", "cmb.json"},          {"cmexam", "test.csv"},          {"cmmlu", "anatomy.csv"},
	{"mmlu", "anatomy_test.csv"}, {"medqa", "test.jsonl"},         {"medmcqa", "dev.json"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	if (size < 1)
		return 0;
	int k = data[0] % (int)(sizeof kinds / sizeof kinds[0]);
	const char *path = fuzz_file(kinds[k].name, data + 1, size - 1);
	static struct exam_reader *volatile r;
	static struct exam_item item;
	r = NULL;
	FUZZ_RUN({
		r = exam_open(kinds[k].bench, path, (data[0] >> 4) & 1);
		while (exam_next(r, &item)) {
			char *prompt = exam_prompt(&item, NULL, 0);
			free(prompt);
			exam_item_free(&item);
		}
	});
	exam_item_free(&item);
	if (r)
		exam_close(r);
	fuzz_end();
	return 0;
}
