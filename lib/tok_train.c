// tok_train.c — byte-level BPE merges learned from a corpus (see tok_train.h for the rule).
#include "tok_train.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "tok_internal.h"

// A distinct pre-token: its current symbols and how often it occurs.
struct word {
	struct u32vec symbols;
	long long count;
};

// (left, right) symbol pair -> count, open addressing; cleared every round.
struct pair_slot {
	uint64_t key;   // UINT64_MAX: empty
	long long count;
};
struct pair_counts {
	struct pair_slot *slots;
	size_t mask;
};

static void pairs_clear(struct pair_counts *p, size_t expect)
{
	size_t cap = 64;
	while (cap < 2 * expect)
		cap *= 2;
	if (cap - 1 != p->mask) {
		free(p->slots);
		p->slots = xmalloc(cap * sizeof *p->slots);
		p->mask = cap - 1;
	}
	for (size_t i = 0; i < cap; i++)
		p->slots[i] = (struct pair_slot){ UINT64_MAX, 0 };
}

static void pairs_add(struct pair_counts *p, uint32_t left, uint32_t right, long long n)
{
	uint64_t key = (uint64_t)left << 32 | right;
	size_t i = mergemap_slot(key, p->mask);
	while (p->slots[i].key != UINT64_MAX && p->slots[i].key != key)
		i = (i + 1) & p->mask;
	p->slots[i].key = key;
	p->slots[i].count += n;
}

// Distinct pre-tokens of every line of TEXT, with their counts.
static size_t collect_words(const struct tokenizer *tok, const char *text, size_t len, struct word **words_out)
{
	struct strmap index;
	strmap_init(&index, 4096);
	struct word *words = NULL;
	size_t n_words = 0, cap = 0;
	struct tok_scratch *scr = tok_scratch_get();
	for (size_t start = 0; start < len;) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t norm_len;
		const char *norm = tok_normalize(tok, text + start, end - start, &norm_len, scr);
		const char *pre;
		struct piecevec *pieces;
		int byte_level_form;
		tok_pretokenize(tok, norm, norm_len, 1, scr, &pre, &pieces, &byte_level_form);
		if (!byte_level_form)
			die(EXIT_FAIL, "internal: BPE learning needs a tokenizer whose last pre-tokenizer is ByteLevel");
		for (size_t k = 0; k < pieces->len; k++) {
			const char *s = pre + pieces->data[k].off;
			size_t n = pieces->data[k].len;
			int64_t w = strmap_get(&index, s, n);
			if (w < 0) {
				if (n_words == cap) {
					cap = cap ? 2 * cap : 1024;
					words = xrealloc(words, cap * sizeof *words);
				}
				words[n_words] = (struct word){ 0 };
				for (size_t b = 0; b < n; b++)
					u32vec_push(&words[n_words].symbols, (unsigned char)s[b]);
				strmap_put(&index, xstrndup(s, n), n, (uint32_t)n_words);
				w = (int64_t)n_words++;
			}
			words[w].count++;
		}
		start = end + 1;
	}
	for (size_t i = 0; i <= index.mask; i++)
		free((char *)index.slots[i].key);
	strmap_free(&index);
	*words_out = words;
	return n_words;
}

size_t bpe_learn(const struct tokenizer *tok, const char *text, size_t len, size_t max_merges, long long min_count,
		 struct bpe_merge **merges_out)
{
	struct word *words;
	size_t n_words = collect_words(tok, text, len, &words);

	// Symbols: 0..255 the bytes, then one per merge, each with its byte string.
	struct bytevec *sym = xcalloc(256 + max_merges, sizeof *sym);
	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		bytevec_append(&sym[b], &c, 1);
	}
	struct bpe_merge *merges = xcalloc(max_merges ? max_merges : 1, sizeof *merges);
	struct pair_counts pairs = { 0 };
	size_t n_merges = 0;
	uint32_t n_syms = 256;
	while (n_merges < max_merges) {
		size_t n_pairs = 0;
		for (size_t w = 0; w < n_words; w++)
			n_pairs += words[w].symbols.len;
		pairs_clear(&pairs, n_pairs);
		for (size_t w = 0; w < n_words; w++) {
			const uint32_t *s = words[w].symbols.data;
			for (size_t i = 0; i + 1 < words[w].symbols.len; i++)
				pairs_add(&pairs, s[i], s[i + 1], words[w].count);
		}
		// The most frequent pair; among equals the one with the smallest key (left, then right symbol).
		uint64_t best = UINT64_MAX;
		long long best_count = 0;
		for (size_t i = 0; i <= pairs.mask; i++) {
			const struct pair_slot *p = &pairs.slots[i];
			if (p->key == UINT64_MAX)
				continue;
			if (p->count > best_count || (p->count == best_count && p->key < best)) {
				best = p->key;
				best_count = p->count;
			}
		}
		if (best == UINT64_MAX || best_count < min_count)
			break;
		uint32_t left = (uint32_t)(best >> 32), right = (uint32_t)best;
		// The merged symbol; one that spells an existing symbol (ab+c after a+bc) is that symbol, as in a
		// tokenizer.json's vocabulary, where a string has one id.
		struct bytevec *next = &sym[n_syms];
		next->len = 0;
		bytevec_append(next, sym[left].data, sym[left].len);
		bytevec_append(next, sym[right].data, sym[right].len);
		uint32_t made = n_syms;
		for (uint32_t k = 256; k < n_syms; k++)
			if (sym[k].len == next->len && memcmp(sym[k].data, next->data, next->len) == 0)
				made = k;
		if (made == n_syms)
			n_syms++;
		merges[n_merges] = (struct bpe_merge){
			.left = xstrndup(sym[left].data, sym[left].len), .left_len = sym[left].len,
			.right = xstrndup(sym[right].data, sym[right].len), .right_len = sym[right].len,
			.count = best_count,
		};
		n_merges++;
		// Replace the pair, left to right without overlaps, in every pre-token.
		for (size_t w = 0; w < n_words; w++) {
			struct u32vec *s = &words[w].symbols;
			size_t out = 0;
			for (size_t i = 0; i < s->len; i++) {
				if (i + 1 < s->len && s->data[i] == left && s->data[i + 1] == right) {
					s->data[out++] = made;
					i++;
				} else {
					s->data[out++] = s->data[i];
				}
			}
			s->len = out;
		}
	}
	for (size_t w = 0; w < n_words; w++)
		free(words[w].symbols.data);
	free(words);
	for (size_t i = 0; i < 256 + max_merges; i++)
		free(sym[i].data);
	free(sym);
	free(pairs.slots);
	*merges_out = merges;
	return n_merges;
}

void bpe_merges_free(struct bpe_merge *merges, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(merges[i].left);
		free(merges[i].right);
	}
	free(merges);
}
