// tok_internal.h — what the tokenizer's files share: the loaded tokenizer, its hash maps, the pipeline
// steps (normalizer, pre-tokenizer, decoder) as flat arrays, and per-thread scratch space.
//
// The pipeline follows Hugging Face `tokenizers` (tokenizer/mod.rs, added_vocabulary.rs):
//   raw text -> split out non-normalized added tokens -> normalize each remaining piece
//   -> split out normalized added tokens -> pre-tokenize -> BPE per pre-token.
// Nested Sequence components are flattened into one step list when loaded.
#ifndef MEDMOE_TOK_INTERNAL_H
#define MEDMOE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>
#include "tokenizer.h"
#include "vec.h"

// ---- hash maps (tok_maps.c) ----

// String -> u32, open addressing.  Keys are borrowed (they live in the tokenizer's string arena).
struct strmap_slot {
	const char *key;  // NULL: empty
	uint32_t len, val;
	uint64_t hash;
};
struct strmap {
	struct strmap_slot *slots;
	size_t mask, count;
};
uint64_t tok_hash(const void *bytes, size_t len);
void strmap_init(struct strmap *m, size_t expect);
void strmap_put(struct strmap *m, const char *key, size_t len, uint32_t val);  // overwrites
int64_t strmap_get(const struct strmap *m, const char *key, size_t len);
void strmap_free(struct strmap *m);

// (left id, right id) -> (rank, merged id): HF's `merges: HashMap<Pair, (u32, u32)>` (models/bpe/model.rs).
struct merge_slot {
	uint64_t key;
	uint32_t rank;    // UINT32_MAX: empty
	uint32_t new_id;
};
struct mergemap {
	struct merge_slot *slots;
	size_t mask, count;
};
void mergemap_init(struct mergemap *m, size_t expect);
void mergemap_put(struct mergemap *m, uint32_t left, uint32_t right, uint32_t rank, uint32_t new_id);
const struct merge_slot *mergemap_get(const struct mergemap *m, uint32_t left, uint32_t right);
// Starts loading the slot of (LEFT, RIGHT) into cache: the table is megabytes, so a word's lookups are
// memory-bound, and issuing them together hides most of the latency.
static inline size_t mergemap_slot(uint64_t key, size_t mask)
{
	uint64_t h = key * 0x9E3779B97F4A7C15ull;
	return (size_t)(h ^ (h >> 29)) & mask;
}
static inline void mergemap_prefetch(const struct mergemap *m, uint32_t left, uint32_t right)
{
	__builtin_prefetch(&m->slots[mergemap_slot((uint64_t)left << 32 | right, m->mask)]);
}
void mergemap_free(struct mergemap *m);

// ---- patterns: a literal string or a PCRE2 regex (tok_pattern.c) ----

struct tok_pattern {
	pcre2_code *re;   // NULL for a literal
	char *lit;
	size_t lit_len;
};
// Compiles REGEX (UTF + UCP, JIT) or keeps LITERAL; errors name FILE and FIELD.
void tok_pattern_regex(struct tok_pattern *p, const char *regex, const char *file, const char *field);
void tok_pattern_literal(struct tok_pattern *p, const char *lit, size_t len);
void tok_pattern_free(struct tok_pattern *p);
// Finds the next match in S[from..len): 1 and [*start, *end) on a match, 0 when there is none.
// Empty matches are reported (the caller steps over them).
int tok_pattern_find(const struct tok_pattern *p, const char *s, size_t len, size_t from, size_t *start,
		     size_t *end);

// ---- UTF-8 helpers (tok_utf8.c) ----

// Decodes the code point at S (well-formed UTF-8 assumed); *n gets its length in bytes.
uint32_t utf8_decode(const unsigned char *s, size_t len, size_t *n);
size_t utf8_encode(uint32_t cp, char *out);
// Length of the UTF-8 character whose lead byte is B (1 for a stray byte).
static inline size_t utf8_char_len(unsigned char b)
{
	return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}
// Appends S to OUT with every ill-formed sequence replaced by U+FFFD, one per maximal subpart
// (Rust's String::from_utf8_lossy, which HF's ByteLevel decoder uses).
void utf8_append_lossy(struct bytevec *out, const char *s, size_t len);
// Unicode White_Space (Rust char::is_whitespace) and alphanumeric-or-underscore (HF single_word).
int ucp_is_whitespace(uint32_t cp);
int ucp_is_word(uint32_t cp);

// GPT-2 bytes_to_unicode (HF pre_tokenizers/byte_level.rs): each byte as a printable character.
struct byte_level_table {
	char str[256][3];     // UTF-8 of the character for byte b (NUL-terminated)
	uint8_t len[256];
	int16_t byte_of[324];  // code point -> byte, -1 when not a byte-level character
};
const struct byte_level_table *byte_level(void);

// ---- pipeline steps ----

enum norm_type { NORM_NFC, NORM_NFKC, NORM_NFD, NORM_NFKD, NORM_PREPEND, NORM_REPLACE, NORM_STRIP };
struct norm_step {
	enum norm_type type;
	char *text;  // Prepend: what to prepend; Replace: the replacement
	size_t text_len;
	struct tok_pattern pattern;  // Replace
	int strip_left, strip_right;  // Strip
};

enum split_behavior { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum pretok_type { PRETOK_SPLIT, PRETOK_BYTELEVEL, PRETOK_METASPACE };
// Metaspace's prepend_scheme: where the replacement is put before a piece that does not start with it.
enum prepend_scheme { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
struct pretok_step {
	enum pretok_type type;
	struct tok_pattern pattern;  // Split; ByteLevel with use_regex: the GPT-2 regex; Metaspace: the replacement
	enum split_behavior behavior;
	int invert;
	int add_prefix_space, use_regex;  // ByteLevel
	char *replacement;                // Metaspace: one character (UTF-8), "▁" in practice
	size_t replacement_len;
	enum prepend_scheme prepend;      // Metaspace
	int split;                        // Metaspace: cut before every replacement (MergedWithNext)
};

enum dec_type { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
struct dec_step {
	enum dec_type type;
	struct tok_pattern pattern;  // Replace
	char *text;                  // Replace: the replacement; Strip: the character stripped; Metaspace: the
	size_t text_len;             // replacement character
	size_t strip_start, strip_stop;
	enum prepend_scheme prepend; // Metaspace
};

// An added token (HF AddedToken).
struct added_token {
	char *content;  // as matched: normalized tokens hold their normalized form
	size_t len;
	uint32_t id;
	int special, single_word, lstrip, rstrip, normalized;
};

// Leftmost-longest matcher over a few added tokens: candidates indexed by first byte, longest first.
struct added_matcher {
	const struct added_token **tokens;  // sorted by first byte, then by length, longest first
	size_t n;
	uint32_t first[257];  // tokens with first byte b are tokens[first[b] .. first[b+1])
};

struct tokenizer {
	char *path;
	char sha256[65];
	uint64_t serial;  // unique per load: keys the per-thread word caches

	// Model (BPE).
	struct strmap vocab;         // model vocab only (what BPE looks up)
	struct strmap all_tokens;    // vocab plus added tokens (tokenizer_token_id)
	char **id_str;               // id -> token string (added content wins), NULL for gaps
	uint32_t *id_len;
	uint8_t *id_special;         // 1 for added tokens marked special
	uint32_t n_ids;
	struct mergemap merges;
	int64_t unk_id;              // -1: no unk token
	int fuse_unk, byte_fallback, ignore_merges;
	int split_at_metaspace;      // see encode_model in tokenizer.c
	char *subword_prefix, *word_suffix;  // NULL when absent or empty
	int64_t byte_token[256];     // byte_fallback: id of "<0xNN>", -1 when absent
	int64_t byte_level_id[256];  // id of byte_char[b] in the vocab, -1 when absent

	struct added_token *added;
	size_t n_added;
	struct added_matcher raw_matcher, norm_matcher;

	struct norm_step *norm;
	size_t n_norm;
	struct pretok_step *pretok;
	size_t n_pretok;
	struct dec_step *dec;
	size_t n_dec;
	int has_decoder;

	// String arena for vocab strings.
	char **arena;
	size_t n_arena;
};

// ---- per-thread scratch (tok_bpe.c) ----

struct piece {
	size_t off, len;
};
struct piecevec {
	struct piece *data;
	size_t len, cap;
};
void piecevec_push(struct piecevec *v, size_t off, size_t len);

struct tok_scratch {
	struct bytevec norm_a, norm_b;       // normalizer ping-pong
	struct bytevec pre_a, pre_b;         // pre-tokenizer text when a step rewrites it
	struct piecevec pieces_a, pieces_b;  // pre-tokenizer pieces
	struct piecevec splits;              // Split: matches before behaviours
	uint8_t *split_is_match;
	size_t split_is_match_cap;
	struct bytevec word;                 // a pre-token in model form (byte-level mapped)
	pcre2_match_data *match;
	pcre2_match_context *match_ctx;
	pcre2_jit_stack *jit_stack;
	// Where the text being encoded starts, at each level (raw text, its normalized form): a piece that starts
	// there starts at offset 0 of the original, the only one Metaspace's prepend_scheme "first" prefixes.
	const char *raw_origin, *norm_origin;
};
struct tok_scratch *tok_scratch_get(void);

// ---- stages ----
// tok_normalize.c: the normalized S, *OUT_LEN bytes: S itself when no step changed it, else a scratch
// buffer valid until the next call in this thread.  The loader also runs it on normalized added tokens.
const char *tok_normalize(const struct tokenizer *tok, const char *s, size_t len, size_t *out_len,
			  struct tok_scratch *scr);
// 1 when NFC (NFKC) leaves CP alone whatever surrounds it: such characters are copied, not normalized.
int tok_nfc_stable(uint32_t cp);
int tok_nfkc_stable(uint32_t cp);
// tok_pretokenize.c: splits TEXT into pre-tokens.  On return *TEXT_OUT is the buffer the pieces index
// (TEXT or a scratch buffer) and *BYTE_LEVEL_FORM is 1 when the pieces still need the byte-level mapping.
// AT_START: TEXT begins at offset 0 of the original input (Metaspace's prepend_scheme "first").
void tok_pretokenize(const struct tokenizer *tok, const char *text, size_t len, int at_start,
		     struct tok_scratch *scr, const char **text_out, struct piecevec **pieces_out,
		     int *byte_level_form);
// tok_bpe.c: appends the ids of one pre-token.
// BYTE_LEVEL_FORM: S is raw bytes that the model sees as GPT-2 byte characters.
void tok_bpe_word(const struct tokenizer *tok, const char *s, size_t len, int byte_level_form,
		  struct u32vec *out);
// Frees the calling thread's word cache for TOK (other threads free theirs when they exit).
void tok_bpe_release_thread_cache(const struct tokenizer *tok);
// tok_added.c
void added_matcher_build(struct added_matcher *m, const struct added_token *tokens, size_t n, int normalized);
void added_matcher_free(struct added_matcher *m);
// Splits S by the matcher: calls PLAIN for text between tokens and pushes token ids to OUT.
typedef void (*plain_fn)(const struct tokenizer *tok, const char *s, size_t len, struct u32vec *out,
			 struct tok_scratch *scr);
void added_split(const struct tokenizer *tok, const struct added_matcher *m, const char *s, size_t len,
		 plain_fn plain, struct u32vec *out, struct tok_scratch *scr);

#endif
