// shard_manifest.h — reading a shard directory's manifest.json (fields in schemas/medmoe.shard.md), for
// `shard --verify` and the training reader.
#ifndef MEDMOE_SHARD_MANIFEST_H
#define MEDMOE_SHARD_MANIFEST_H

#include <jansson.h>
#include <stdint.h>

// The limits shard writes within and a manifest is checked against.
#define SHARD_MAX_SEQ_LEN (1u << 24)   // the longest --seq-len: the packer keeps 2 × 16 open sequences of 5 bytes per token
#define SHARD_MAX_TASK_ID 65535        // the trainer's gate has one row per task id, up to this one

struct shard_file_entry {
	char *file, *index;          // names inside the directory
	uint64_t sequences, documents, tokens, loss_tokens, bytes;
	char sha256[65], index_sha256[65];
	uint64_t first;              // split-wide number of its first sequence
};

struct shard_split_entry {
	const char *name;
	uint64_t sequences, documents, tokens, loss_tokens;
	size_t n_shards;
	struct shard_file_entry *shards;
	json_t *tasks;               // [{name, id, documents, tokens, loss_tokens}] (borrowed from root)
};

struct shard_manifest {
	char *dir, *path;
	uint32_t seq_len;
	char tokenizer_sha256[65];
	uint32_t vocab_size;         // token ids are below it
	struct shard_split_entry train, valid;
	json_t *root;
};

// Load DIR/manifest.json; a missing file, a missing/mistyped field, a count the shard sizes cannot hold or that
// disagrees with the split's total → exit 65 naming the manifest and field.  The files themselves are checked by
// shard_verify (all of them) and by the reader (each shard's size, sha256 and index when it is first opened).
struct shard_manifest *shard_manifest_load(const char *dir);
// "train" or "valid"; NULL for another name.
const struct shard_split_entry *shard_manifest_split(const struct shard_manifest *m, const char *name);
void shard_manifest_free(struct shard_manifest *m);

#endif
