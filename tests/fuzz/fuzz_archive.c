// fuzz_archive — corpora inside archives and compressed files: zip, tar, tar.gz, jsonl.gz, jsonl.xz members
// found and read through libarchive.  Input: one byte choosing the container, then its bytes.
#include "corpus.h"
#include "fuzz.h"

static const char *const names[] = {"a.zip", "a.tar", "a.tar.gz", "a.jsonl.gz", "a.jsonl.xz", "a.tar.zst"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	if (size < 1)
		return 0;
	const char *path = fuzz_file(names[data[0] % (sizeof names / sizeof names[0])], data + 1, size - 1);
	struct corpus_opts opts = {.skip_bad = data[0] >> 7};
	fuzz_read_corpus(path, &opts);
	fuzz_end();
	return 0;
}
