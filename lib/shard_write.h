// shard_write.h — packing token documents into fixed-length training sequences, written as shard files and
// a manifest (DESIGN §2, schemas/medmoe.shard.json and medmoe.shard.md).
//
// Packing is greedy first-fit over a small window of open sequences (SHARD_PACK_WINDOW): a document goes into
// the first open sequence with room for it whole, or opens a new one; when the window is full the fullest
// sequence is written out.  Documents are never split across sequences, so attention can be masked per
// document with doc_offsets (cumulative lengths: 0, end of document 1, ..., number of real tokens).  A document
// longer than seq_len is cut to seq_len (truncate) or left out (drop), and counted either way.  With pack off,
// every document gets a sequence of its own, padded.  Padding holds id 0 and mask 0, after the last offset.
//
// The validation split is decided per document by h = the first 8 bytes of sha256(record id), big-endian:
// with a fraction F it is valid when h < F·2^64, so adding data never moves a document between splits; with a
// count C the C documents of smallest h are valid (they are held in memory until the end; new data can only
// push a document out of valid, never into it).  Every copy of an up-sampled example (same id) lands in the
// same split, so valid never leaks into train.
//
// Shard files of one split hold sequences_per_shard = max(1, shard_tokens / seq_len) sequences each, named
// SPLIT-NNNNN.mpk, and beside each SPLIT-NNNNN.idx: little-endian uint64 byte offsets of every record and of
// the end of the file, so a reader can fetch any sequence with one pread.  The sha256 of both is computed
// while writing.  The caller builds everything inside an outdir's temporary directory and commits it after
// shard_builder_finish has written manifest.json, so a manifest never names an incomplete shard.
#ifndef MEDMOE_SHARD_WRITE_H
#define MEDMOE_SHARD_WRITE_H

#include <msgpack.h>
#include <stdint.h>
#include "shard_manifest.h"
#include "stream.h"

#define SHARD_PACK_WINDOW 16

// One document, pointing into a record (nothing is copied).
struct shard_doc {
	const char *id;
	size_t id_len;
	const char *task;
	size_t task_len;
	uint32_t task_id;
	const uint8_t *ids_le;  // LEN little-endian uint32, as in the record's bin
	const uint8_t *mask;    // LEN bytes
	uint32_t len;
};

// Fill DOC from a medmoe.tokens record REC; dies (exit 65) naming FILE, RECORD and the field when it is wrong:
// everything `shard --verify` checks of a document (ids below VOCAB, mask bytes 0 or 1, a UTF-8 task name, a
// task id up to SHARD_MAX_TASK_ID) is checked here, so shard never writes what its own --verify refuses.
void shard_doc_from_record(const char *file, int64_t record, const msgpack_object *rec, uint32_t vocab,
			   struct shard_doc *doc);

enum shard_overflow { SHARD_TRUNCATE, SHARD_DROP };

struct shard_options {
	uint32_t seq_len;
	uint64_t shard_tokens;
	int pack;                       // 0: one document per sequence, padded
	enum shard_overflow overflow;
	double valid_fraction;          // used when valid_count is 0
	uint64_t valid_count;
	int shuffle;                    // documents were shuffled with shuffle_seed (recorded in the manifest)
	uint64_t shuffle_seed;
	const char *input;              // for the manifest
};

struct shard_builder;

// Start writing into DIR (an existing, empty directory).  HEADER is the input stream's header: its tokenizer
// identity goes into every shard and the manifest, its task table (if any) into the manifest.
struct shard_builder *shard_builder_open(const char *dir, const struct shard_options *opt,
					 const msgpack_object *header);
void shard_builder_add(struct shard_builder *b, const struct shard_doc *doc);
// Write out what is still open, then manifest.json.  Frees B.  PRINT_SUMMARY: a few lines on stderr.
void shard_builder_finish(struct shard_builder *b, int print_summary);

// h of a record id as above (exposed for tests).
uint64_t shard_split_hash(const char *id, size_t len);

#endif
