// mix_input.h — the inputs of mix-tasks, indexed: per task, where each record lies and how many tokens it
// has (lib/record_index.h), never the records themselves; the task table with stable ids (lib/task_table.h);
// and the header the output stream gets.
#ifndef MEDMOE_MIX_INPUT_H
#define MEDMOE_MIX_INPUT_H

#include <msgpack.h>
#include <stdint.h>
#include "record_index.h"
#include "stream.h"
#include "task_table.h"

// Every record of one task: where it is and how many tokens it has.
struct task_records {
	size_t n, cap;
	struct record_ref *refs;
	uint32_t *tokens;
	int64_t *record_no;
};

struct mix_input {
	struct task_table tasks;
	struct task_records *records;  // per task (index in tasks)
	size_t n_records;              // entries of records
	int64_t *seen_id;              // per task: its task_id in the file being indexed (-1: not seen there)
	struct record_files files;
	char sha256[65];
	const char *first_path;
	msgpack_sbuffer first_header_bytes;
	msgpack_unpacked first_header;  // kept for its tokenizer and template (points into first_header_bytes)
	msgpack_object tokenizer, template;
};

void mix_input_init(struct mix_input *in);
// Index one input (a file: its records are read back later by offset).  The first input fixes the tokenizer;
// another tokenizer, another schema, a truncated stream or inconsistent task ids → exit 65.
void mix_input_add(struct mix_input *in, const char *path);
// After the last input: give every task its id.  Returns the number of tasks.
size_t mix_input_finish(struct mix_input *in);
// Create OUT_PATH with the output header: the inputs' tokenizer (and template), the task table (examples and
// tokens as the caller set them in in->tasks), the input names.
struct stream_writer *mix_input_create_output(const struct mix_input *in, const char *out_path, char **inputs,
					      int n_inputs);
// Copy record J of task T to W, its task_id set to the task's stable id.
void mix_input_copy(struct mix_input *in, struct stream_writer *w, size_t t, size_t j);
void mix_input_free(struct mix_input *in);

#endif
