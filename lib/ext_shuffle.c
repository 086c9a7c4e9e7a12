// ext_shuffle.c — two-pass bucket shuffle (see ext_shuffle.h).
#include "ext_shuffle.h"
#include "die.h"
#include "rng.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bucket {
	char *path;
	FILE *fp;
	msgpack_packer pk;
};

struct ext_shuffle {
	size_t n;
	struct bucket *buckets;
	struct rng g;
};

static int write_file(void *data, const char *buf, size_t len)
{
	if (len == 0)  // an empty bin's body may come with a NULL pointer
		return 0;
	return fwrite(buf, 1, len, data) == len ? 0 : -1;
}

struct ext_shuffle *ext_shuffle_open(const char *dir, size_t n_buckets, uint64_t seed)
{
	struct ext_shuffle *s = xcalloc(1, sizeof *s);
	s->n = n_buckets ? n_buckets : 1;
	s->buckets = xcalloc(s->n, sizeof *s->buckets);
	rng_seed(&s->g, seed, 0x736875 /* "shu" */);
	for (size_t i = 0; i < s->n; i++) {
		struct bucket *b = &s->buckets[i];
		b->path = xasprintf("%s/shuffle-%05zu.tmp", dir, i);
		b->fp = fopen(b->path, "w+b");
		if (!b->fp)
			die_errno("%s", b->path);
		msgpack_packer_init(&b->pk, b->fp, write_file);
	}
	return s;
}

void ext_shuffle_add(struct ext_shuffle *s, const msgpack_object *rec)
{
	struct bucket *b = &s->buckets[rng_below(&s->g, s->n)];
	if (msgpack_pack_object(&b->pk, *rec) != 0)
		die_errno("%s", b->path);
}

struct span {
	size_t off, len;
};

void ext_shuffle_drain(struct ext_shuffle *s, void (*fn)(const msgpack_object *rec, void *arg), void *arg)
{
	msgpack_unpacked msg;
	msgpack_unpacked_init(&msg);
	for (size_t i = 0; i < s->n; i++) {
		struct bucket *b = &s->buckets[i];
		if (fflush(b->fp) != 0 || ferror(b->fp))
			die_errno("%s", b->path);
		long size = ftell(b->fp);
		if (size < 0)
			die_errno("%s", b->path);
		char *bytes = xmalloc(size ? (size_t)size : 1);
		rewind(b->fp);
		if (fread(bytes, 1, (size_t)size, b->fp) != (size_t)size)
			die_errno("%s", b->path);
		fclose(b->fp);
		unlink(b->path);
		// Find the records, shuffle their spans, then unpack them in that order.
		struct span *spans = NULL;
		size_t n = 0, cap = 0, off = 0;
		while (off < (size_t)size) {
			size_t start = off;
			if (msgpack_unpack_next(&msg, bytes, (size_t)size, &off) != MSGPACK_UNPACK_SUCCESS)
				die(EXIT_FAIL, "%s: a shuffle bucket is corrupt", b->path);
			if (n == cap) {
				cap = cap ? 2 * cap : 1024;
				spans = xrealloc(spans, cap * sizeof *spans);
			}
			spans[n++] = (struct span){ start, off - start };
		}
		rng_shuffle(&s->g, spans, n, sizeof *spans);
		for (size_t j = 0; j < n; j++) {
			size_t o = 0;
			msgpack_unpack_next(&msg, bytes + spans[j].off, spans[j].len, &o);
			fn(&msg.data, arg);
		}
		free(spans);
		free(bytes);
		free(b->path);
	}
	msgpack_unpacked_destroy(&msg);
	free(s->buckets);
	free(s);
}
