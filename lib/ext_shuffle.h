// ext_shuffle.h — a uniform random shuffle of more records than fit in memory, in two passes.
//
// Rao's method (C. R. Rao, "Generation of random permutations of given number of elements using random
// sampling numbers", Sankhyā A 23, 1961; the same scheme as the "two-pass shuffle" of large data sets):
// pass 1 appends every record to one of B bucket files chosen uniformly at random; pass 2 loads one bucket at a
// time, Fisher–Yates shuffles it in memory and hands its records on.  The result is a uniformly random
// permutation; memory holds one bucket (about input size / B), disk holds one copy of the input.
// Bucket files live in a directory the caller owns (the output's temporary directory), and are removed as they
// are read, so a crash leaves nothing behind that the output directory's cleanup would not remove.
#ifndef MEDMOE_EXT_SHUFFLE_H
#define MEDMOE_EXT_SHUFFLE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

struct ext_shuffle;

struct ext_shuffle *ext_shuffle_open(const char *dir, size_t n_buckets, uint64_t seed);
void ext_shuffle_add(struct ext_shuffle *s, const msgpack_object *rec);
// Call FN(REC, ARG) for every record, in shuffled order; then remove the buckets and free S.
void ext_shuffle_drain(struct ext_shuffle *s, void (*fn)(const msgpack_object *rec, void *arg), void *arg);

#endif
