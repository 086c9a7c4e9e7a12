// mpk_scan.h — check msgpack bytes before msgpack-c unpacks them.
//
// msgpack-c allocates an array's or a map's elements as soon as it reads the count, before it has seen a single
// element: a 5-byte array header claiming 2^32−1 elements asks for ~100 GB ("out of memory", no file named).
// The scanner walks an object's structure without allocating anything and says when the object is complete, so
// msgpack-c only ever sees whole objects whose every count is backed by bytes actually read (an element takes at
// least one byte), and whose size stays under the limits below.  It also refuses the one byte msgpack never uses
// (0xc1) and nesting deeper than msgpack-c's own stack (32), naming what it found and where.
//
// Incremental: feed it the bytes of one object as they arrive (always from the object's first byte, with more
// each time); it resumes where it stopped, so a large object costs one pass, not one per refill.
#ifndef MEDMOE_MPK_SCAN_H
#define MEDMOE_MPK_SCAN_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

// One object (a stream record, a shard sequence) may take at most this many bytes...
#define MPK_MAX_OBJECT_BYTES (1ull << 30)
// ...and hold at most this many values in all (msgpack-c spends 24 bytes on each, 48 on a map entry).
#define MPK_MAX_OBJECT_VALUES (1ull << 22)
// msgpack-c's unpacker refuses deeper nesting (MSGPACK_EMBED_STACK_SIZE).
#define MPK_MAX_DEPTH 32

enum mpk_status { MPK_COMPLETE, MPK_NEED_MORE, MPK_BAD };

struct mpk_scan {
	uint64_t pos;                      // bytes of the object walked so far (may run past what was fed: a body)
	uint64_t values;                   // values seen so far
	int depth;
	int done;                          // the last value has been seen (its body may still be coming)
	uint64_t left[MPK_MAX_DEPTH];      // values still to come in each open container
	const char *why;                   // MPK_BAD: what is wrong (a static string)
};

void mpk_scan_init(struct mpk_scan *s);
// BUF holds the object's first AVAIL bytes.  MPK_COMPLETE: the object is s->pos bytes long.  MPK_NEED_MORE: call
// again with more bytes (the same start).  MPK_BAD: s->why says what is wrong, at byte s->pos of the object.
enum mpk_status mpk_scan_feed(struct mpk_scan *s, const void *buf, size_t avail);

// One complete object at BUF[*OFF..LEN) into MSG, *OFF moved past it.  Returns NULL on success, else why not
// (a static string): "truncated" when the bytes end inside the object.
const char *mpk_unpack(msgpack_unpacked *msg, const void *buf, size_t len, size_t *off);

#endif
