// shard_verify.h — `shard --verify`: does a shard directory hold what its manifest says?
//
// For every shard of both splits: the sha256 and size of the shard file and of its index; then every record:
// the header (schema, seq_len, split, tokenizer sha256 as in the manifest), ids and mask of seq_len entries,
// doc_offsets starting at 0 and rising to at most seq_len, one task id per document, mask 0 on the padding, the
// index's offset of each record; then the shard's counts (sequences, documents, tokens, loss tokens), the
// split's totals and the per-task token totals.  Each failure is one message "shard: FILE: what" on stderr.
#ifndef MEDMOE_SHARD_VERIFY_H
#define MEDMOE_SHARD_VERIFY_H

// The number of failures found (0: everything holds).  QUIET leaves out the closing "ok" line.
int shard_verify(const char *dir, int quiet);

#endif
