// task_table.h — task names and their stable ids (the MOELoRA gate's input), across several streams.
//
// Ids are "carried" when an input's header has a task table (mix-tasks writes one: "tasks": [{name, id,
// examples, tokens}]); carried ids are kept, and two inputs that disagree (one name, two ids, or one id, two
// names) are an error naming both files.  Every other task gets an id by sorted name, the smallest ids no
// carried task holds — so the same set of task names always gets the same ids.  The task_id in the records of
// a stream without a table is that run's own numbering (tokenize numbers each file alone), so it is replaced;
// it must still be consistent inside its file.
#ifndef MEDMOE_TASK_TABLE_H
#define MEDMOE_TASK_TABLE_H

#include <msgpack.h>
#include <stdint.h>
#include "stream.h"

struct task_entry {
	char *name;
	int64_t id;             // -1 until carried or assigned
	const char *id_source;  // the file whose table carried the id (NULL: assigned here)
	uint64_t examples, tokens;
};

struct task_table {
	size_t n;
	struct task_entry *tasks;
};

// The task named NAME (LEN bytes), added when new; returns its index.
size_t task_table_intern(struct task_table *tt, const char *name, size_t len);
// Read R's header table, if any, as carried ids.  Returns 1 when the header had a table.
int task_table_read_header(struct task_table *tt, const struct stream_reader *r);
// Give every task without an id one (see above).
void task_table_assign(struct task_table *tt);
// Pack "tasks": [{name, id, examples, tokens}] (key and value), in id order.
void task_table_pack(msgpack_packer *pk, const struct task_table *tt);
void task_table_free(struct task_table *tt);

#endif
