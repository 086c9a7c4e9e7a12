// fuzz_corpus — the corpus parsers: JSON array, JSON Lines, CSV, the COVID text dump, and format sniffing.
// Input: one byte choosing the format (and so the file name), then the file.
#include "corpus.h"
#include "fuzz.h"

static const struct {
	const char *name, *format;
} kinds[] = {
	{"c.json", "json"}, {"c.jsonl", "jsonl"}, {"c.csv", "csv"}, {"c.txt", "covid-txt"},
	{"c.json", NULL},   {"c.csv", NULL},      {"c.dat", NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	if (size < 1)
		return 0;
	int k = data[0] % (int)(sizeof kinds / sizeof kinds[0]);
	int skip = (data[0] >> 4) & 1;
	const char *path = fuzz_file(kinds[k].name, data + 1, size - 1);
	struct corpus_opts opts = {.format = kinds[k].format, .skip_bad = skip};
	fuzz_read_corpus(path, &opts);
	fuzz_end();
	return 0;
}
