// tok_train.h — learning byte-level BPE merges from a text corpus: a small vocabulary of whole words and
// pieces fitted to one corpus (init-base --bpe-corpus, for the demo).
//
// Byte-pair encoding as Sennrich et al. (ACL 2016) learn it, over the pre-tokens of a byte-level tokenizer:
// every text is normalized and pre-tokenized exactly as tokenizer_encode() would (so no merge crosses a
// pre-token boundary the encoder will see), each distinct pre-token starts as its bytes, and each round
// merges the most frequent adjacent pair of symbols, counted over all pre-tokens with their frequencies.
// Ties go to the pair whose left symbol, then right symbol, was made first (bytes in byte order before any
// merged symbol), so the same corpus gives the same merges on every machine.  Learning stops after
// MAX_MERGES merges or when no pair occurs MIN_COUNT times.
//
// The merges are then those of a Hugging Face BPE model: applied by rank to each pre-token, they encode
// every text of the corpus (and any other) the way `tokenizers` does with the same tokenizer.json.
#ifndef MEDMOE_TOK_TRAIN_H
#define MEDMOE_TOK_TRAIN_H

#include <stddef.h>
#include "tokenizer.h"

struct bpe_merge {
	char *left, *right;   // the two symbols, as byte strings (not yet in the byte-level character form)
	size_t left_len, right_len;
	long long count;      // how often the pair occurred when it was merged
};

// Learn merges from TEXT (LEN bytes of UTF-8; each line is one text) pre-tokenized by TOK, which must be a
// byte-level tokenizer whose ByteLevel pre-tokenizer is its last step.  Returns the number of merges and
// sets *MERGES to a malloc'd array of them, in rank order (free with bpe_merges_free).
size_t bpe_learn(const struct tokenizer *tok, const char *text, size_t len, size_t max_merges, long long min_count,
		 struct bpe_merge **merges);
void bpe_merges_free(struct bpe_merge *merges, size_t n);

#endif
