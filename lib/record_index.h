// record_index.h — random access to the records of stream files, by an index of byte offsets.
//
// Programs that reorder records (mix-tasks) read each input once to note where every record starts and how
// long it is (stream_reader's record_offset and object_end), keep only that, and later read any record back
// with one pread.  Memory is 16 bytes per record, whatever the records hold; stream_seek would refill a whole
// read buffer per record, which is what this avoids.
#ifndef MEDMOE_RECORD_INDEX_H
#define MEDMOE_RECORD_INDEX_H

#include <msgpack.h>
#include <stdint.h>
#include "vec.h"

struct record_ref {
	uint64_t offset;    // byte offset of the record in its file
	uint32_t length;    // its size in bytes
	uint32_t file;      // which input
};

struct record_files {
	size_t n;
	char **paths;
	int *fds;
	struct bytevec buf;     // the bytes of the record last read
	msgpack_unpacked msg;   // and its unpacked form
};

void record_files_init(struct record_files *f);
// Open PATH for random reads; returns its file number.
uint32_t record_files_add(struct record_files *f, const char *path);
// Read the record REF (number RECORD_NO in its file, for messages) into *REC, valid until the next call.
// A short read or bytes that are not one msgpack map → exit 65 naming the file and record.
void record_files_read(struct record_files *f, const struct record_ref *ref, int64_t record_no, msgpack_object *rec);
void record_files_close(struct record_files *f);

#endif
