// shard_read.h — batches of packed sequences from a shard directory, for (data-parallel) training.
//
// Each epoch walks the split's N sequences in one order: shard order, or with shuffle a fresh permutation per
// epoch (Fisher–Yates driven by rng.h seeded with (seed, epoch)).  Rank r of world size w takes the positions
// r, r+w, r+2w, ... of that order, so in each epoch every sequence goes to exactly one rank; the ranks' shares
// differ by at most one sequence (a trainer that needs equal step counts stops every rank at the smallest
// share: shard_reader_min_rank_sequences).  A batch holds up to batch_size consecutive sequences of the share.
//
// The cursor is two numbers (epochs finished, sequences of this epoch's share already handed out); the order
// is a pure function of (seed, epoch), so a reader seeked to a saved cursor gives bit-identical batches.
// The cursor also records N, seed, rank, world and shuffle, and seek refuses one that does not match.
// Sequences are fetched with one pread each through the shard's .idx offsets; memory is the offsets (8 bytes
// per sequence), the permutation (4 bytes per sequence) and one batch.
#ifndef MEDMOE_SHARD_READ_H
#define MEDMOE_SHARD_READ_H

#include <stddef.h>
#include <stdint.h>

struct shard_cursor {
	uint64_t epoch;      // epochs finished
	uint64_t position;   // sequences of this rank's share of the current epoch already returned
	// What the position means: seek refuses a cursor saved by a reader that saw other data or another split
	// of it (exact resume would be impossible, so it is an error rather than a silent drift).
	uint64_t sequences;  // N of the split
	uint64_t seed;
	uint32_t rank, world, shuffle;
};

struct shard_reader_options {
	const char *split;   // "train" (NULL means train) or "valid"
	uint32_t rank, world;
	uint32_t batch_size;
	int shuffle;
	uint64_t seed;
};

struct shard_batch {
	uint32_t n_seqs, seq_len;
	uint32_t *ids;            // n_seqs × seq_len token ids (padding: 0)
	uint8_t *mask;            // n_seqs × seq_len, 1 = the position carries loss
	uint64_t *seq_index;      // each row's sequence number in the split (shard order)
	uint32_t n_docs;
	uint32_t *doc_seq;        // per document: its row,
	uint32_t *doc_begin;      // its first position,
	uint32_t *doc_end;        // one past its last position,
	uint32_t *doc_task_id;    // and its task id
	size_t cap_docs;
};

struct shard_reader;

// Open DIR's manifest and indexes, and verify every shard of the split (size, sha256 and header as the manifest
// says; DIR/.medmoe-verified caches the result by size, inode and ctime so that the next run does not hash them
// again).  Bad options → exit 2; a damaged directory → exit 65, before any token is read.  A shard that changes
// after that is refused when it is first read.
struct shard_reader *shard_reader_open(const char *dir, const struct shard_reader_options *opt);
uint32_t shard_reader_seq_len(const struct shard_reader *r);
uint64_t shard_reader_sequences(const struct shard_reader *r);           // N, the whole split
uint64_t shard_reader_rank_sequences(const struct shard_reader *r);      // this rank's share of an epoch
uint64_t shard_reader_min_rank_sequences(const struct shard_reader *r);  // the smallest share of any rank
const char *shard_reader_tokenizer_sha256(const struct shard_reader *r);
// Fill B with the next batch; returns its number of sequences.  0 marks the end of an epoch: the cursor has
// moved to the start of the next one.
uint32_t shard_reader_next(struct shard_reader *r, struct shard_batch *b);
// Data parallelism with one cursor for any number of ranks: advance by a whole batch, as shard_reader_next,
// but fill B with only block PART of PARTS of it (contiguous rows n·PART/PARTS .. n·(PART+1)/PARTS − 1, so the
// parts in order are the batch and their sizes differ by at most one).  Returns the whole batch's size (0: the
// end of an epoch, the same for every part); b->n_seqs is the part's, and may be 0.  Every rank reads with
// rank 0 of world 1 and its own part: the order, the epochs and the cursor do not depend on the rank count.
uint32_t shard_reader_next_part(struct shard_reader *r, struct shard_batch *b, uint32_t part, uint32_t parts);
struct shard_cursor shard_reader_tell(const struct shard_reader *r);
// Continue from C (from shard_reader_tell); a cursor of another reader setup → exit 65.
void shard_reader_seek(struct shard_reader *r, struct shard_cursor c);
void shard_reader_close(struct shard_reader *r);
void shard_batch_free(struct shard_batch *b);

#endif
