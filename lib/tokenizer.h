// tokenizer.h — Hugging Face tokenizer.json, id-for-id with `tokenizers` encode(text, add_special_tokens=False).
//
// Supported: model BPE (merges as "a b" strings or ["a","b"] pairs, ignore_merges, byte_fallback, fuse_unk,
// unk_token, continuing_subword_prefix, end_of_word_suffix); normalizers NFC, NFKC, NFD, NFKD, Prepend,
// Replace, Strip, Sequence; pre-tokenizers Split (string or regex through PCRE2, all five behaviours,
// invert), ByteLevel (add_prefix_space, use_regex), Metaspace (replacement, prepend_scheme first/always/never,
// split, or the older add_prefix_space), Sequence; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip,
// Metaspace, Sequence; added tokens (special or not, lstrip/rstrip/single_word/normalized).  Anything
// else is refused by name.  post_processor, truncation and padding are not read: with
// add_special_tokens=False they change nothing.
//
// A loaded tokenizer is read-only; tokenizer_encode and tokenizer_decode may be called from several
// threads at once without locking: each thread keeps its own scratch space and word cache.
#ifndef MEDMOE_TOKENIZER_H
#define MEDMOE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "vec.h"

struct tokenizer;

// PATH is a tokenizer.json or a directory holding one.  A malformed, truncated or unsupported file is
// a data error: "PROG: FILE: FIELD: what", exit 65.
struct tokenizer *tokenizer_load(const char *path);
void tokenizer_free(struct tokenizer *tok);

// Append the ids of UTF-8 TEXT (LEN bytes) to OUT.  Special-token strings inside the text become their
// ids, as Hugging Face does by default.  TEXT must be valid UTF-8 (callers check; see utf8_valid()).
void tokenizer_encode(const struct tokenizer *tok, const char *text, size_t len, struct u32vec *out);

// Append the text of IDS to OUT (skip_special_tokens=False).  Returns -1 if an id is out of range.
int tokenizer_decode(const struct tokenizer *tok, const uint32_t *ids, size_t n, struct bytevec *out);

// The id of a token string (vocab or added token), or -1.
int64_t tokenizer_token_id(const struct tokenizer *tok, const char *token);
// The string of an id (its vocab form, e.g. "Ġthe"), or NULL.
const char *tokenizer_token_str(const struct tokenizer *tok, uint32_t id);

// 1 when ID is an added token marked "special" (what skip_special_tokens would drop), else 0.
int tokenizer_is_special(const struct tokenizer *tok, uint32_t id);

// Identity, carried in stream headers: sha256 (hex) of the tokenizer.json bytes, and the number of ids
// (vocab plus added tokens: max id + 1).
const char *tokenizer_sha256(const struct tokenizer *tok);
uint32_t tokenizer_vocab_size(const struct tokenizer *tok);
// The path it was loaded from (the tokenizer.json itself).
const char *tokenizer_path(const struct tokenizer *tok);

// 1 when S (LEN bytes) is well-formed UTF-8.
int utf8_valid(const char *s, size_t len);

#endif
