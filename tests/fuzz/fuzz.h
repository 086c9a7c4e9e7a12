// fuzz.h — what the libFuzzer targets share (tests/fuzz/README.md says how they are built and run).
//
// Each target is one LLVMFuzzerTestOneInput over one input family.  The library reports bad input by dying;
// here die*() longjmps back to the target instead of exiting (die_set_exit), silently, so a clean refusal is
// an ordinary return.  Only a sanitizer report, a hang or an allocation over libFuzzer's malloc limit counts as
// a finding.  The same sources build, without libFuzzer, into replay programs (replay.c) that `make test` runs
// on the committed seeds and regression inputs.
#ifndef MEDMOE_FUZZ_H
#define MEDMOE_FUZZ_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

extern jmp_buf fuzz_jmp;

// Once per process: die → longjmp, quiet; one OpenMP thread; a scratch directory; MEDMOE_SCHEMAS.
void fuzz_init(void);
// DATA written to NAME in the scratch directory; returns its path (valid until the next call with NAME).
const char *fuzz_file(const char *name, const uint8_t *data, size_t size);
// The scratch directory (for targets that build a directory of files).
const char *fuzz_dir(void);

// At the end of every input: frees the JSON and closes the descriptors a die() left behind.
void fuzz_end(void);

// Split DATA at the byte sequence "\n--medmoe-part--\n" into at most MAX parts; returns how many.
size_t fuzz_parts(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, size_t max);

// Run the statement; a die() inside it comes back here.
#define FUZZ_RUN(...)                           \
	do {                                    \
		if (setjmp(fuzz_jmp) == 0) {    \
			__VA_ARGS__;            \
		}                               \
	} while (0)

struct corpus_opts;
// Open PATH as a corpus with OPTS and read every conversation (the corpus and archive targets).
void fuzz_read_corpus(const char *path, const struct corpus_opts *opts);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
