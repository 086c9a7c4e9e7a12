// tok_added.c — added tokens (HF AddedVocabulary, tokenizers/src/tokenizer/added_vocabulary.rs).
//
// Text is cut at added tokens before anything else: first the tokens with normalized=false on the raw
// text, then the normalized=true ones on each normalized remainder.  Matching is leftmost-longest (HF
// uses aho-corasick with MatchKind::LeftmostLongest), scanning on after the end of each raw match.
// A single_word token only counts when no word character touches it; lstrip/rstrip widen a match over
// the whitespace beside it, so that whitespace belongs to the token.
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"

static int by_first_byte_then_longest(const void *a, const void *b)
{
	const struct added_token *x = *(const struct added_token *const *)a;
	const struct added_token *y = *(const struct added_token *const *)b;
	unsigned char fx = (unsigned char)x->content[0], fy = (unsigned char)y->content[0];
	if (fx != fy)
		return fx < fy ? -1 : 1;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return 0;
}

void added_matcher_build(struct added_matcher *m, const struct added_token *tokens, size_t n, int normalized)
{
	memset(m, 0, sizeof *m);
	m->tokens = xcalloc(n ? n : 1, sizeof *m->tokens);
	for (size_t i = 0; i < n; i++)
		if (!tokens[i].normalized == !normalized && tokens[i].len > 0)
			m->tokens[m->n++] = &tokens[i];
	qsort(m->tokens, m->n, sizeof *m->tokens, by_first_byte_then_longest);
	size_t k = 0;
	for (int b = 0; b <= 256; b++) {
		while (b < 256 && k < m->n && (unsigned char)m->tokens[k]->content[0] < b)
			k++;
		m->first[b] = (uint32_t)(b == 256 ? m->n : k);
	}
}

void added_matcher_free(struct added_matcher *m)
{
	free(m->tokens);
	memset(m, 0, sizeof *m);
}

// The leftmost match at or after FROM, the longest one there.
static const struct added_token *find_next(const struct added_matcher *m, const char *s, size_t len,
					   size_t from, size_t *at)
{
	for (size_t i = from; i < len; i++) {
		unsigned char b = (unsigned char)s[i];
		for (uint32_t k = m->first[b]; k < m->first[b + 1]; k++) {
			const struct added_token *t = m->tokens[k];
			if (t->len <= len - i && memcmp(s + i, t->content, t->len) == 0) {
				*at = i;
				return t;
			}
		}
	}
	return NULL;
}

static uint32_t cp_before(const char *s, size_t at, size_t *start)
{
	size_t k = at - 1;
	while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	size_t n;
	*start = k;
	return utf8_decode((const unsigned char *)s + k, at - k, &n);
}

void added_split(const struct tokenizer *tok, const struct added_matcher *m, const char *s, size_t len,
		 plain_fn plain, struct u32vec *out, struct tok_scratch *scr)
{
	size_t done = 0, from = 0, at;
	const struct added_token *t;
	while (m->n && (t = find_next(m, s, len, from, &at)) != NULL) {
		size_t start = at, stop = at + t->len, n, k;
		from = stop;
		if (t->single_word) {
			int word_before = start > 0 && ucp_is_word(cp_before(s, start, &k));
			int word_after = stop < len && ucp_is_word(utf8_decode((const unsigned char *)s + stop,
									       len - stop, &n));
			if (word_before || word_after)
				continue;
		}
		if (t->lstrip) {
			size_t new_start = start;
			while (new_start > 0 && ucp_is_whitespace(cp_before(s, new_start, &k)))
				new_start = k;
			start = new_start > done ? new_start : done;
		}
		if (t->rstrip)
			while (stop < len && ucp_is_whitespace(utf8_decode((const unsigned char *)s + stop, len - stop, &n)))
				stop += n;
		if (start > done)
			plain(tok, s + done, start - done, out, scr);
		u32vec_push(out, t->id);
		done = stop;
	}
	if (done < len)
		plain(tok, s + done, len - done, out, scr);
}
