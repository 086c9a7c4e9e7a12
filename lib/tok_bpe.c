// tok_bpe.c — the BPE model on one pre-token, and the per-thread state it uses (scratch buffers and
// a word cache), so that several threads can encode with one tokenizer without any lock.
//
// The merge loop is HF's Word::merge_all (tokenizers/src/models/bpe/word.rs): the word starts as one
// symbol per character, kept in a doubly linked list; every adjacent pair with a merge goes into a
// min-heap ordered by (rank, position); the top is popped, skipped when stale (its left symbol is gone,
// has no right neighbour, or the pair there no longer merges into the same id), otherwise the right
// symbol is folded into the left and the two new pairs with the neighbours are pushed.
// Character lookup, byte_fallback, unk and fuse_unk follow BPE::merge_word (models/bpe/model.rs).
// The cache mirrors HF's per-thread cache of words under 256 bytes, direct-mapped here.
#include <pthread.h>
#include <string.h>
#include "tok_internal.h"

enum { CACHE_SLOTS = 1 << 14, CACHE_MAX_WORD = 256 };

struct cache_slot {
	uint64_t hash;
	uint32_t key_len, n_ids;
	char *mem;  // key bytes, then n_ids uint32 ids (aligned)
};

struct word_cache {
	uint64_t serial;
	struct cache_slot *slots;
	struct word_cache *next;
};

struct symbol {
	uint32_t id, len;
	int32_t prev, next;
};

struct heap_entry {
	uint32_t rank, pos, new_id;
	uint32_t left, right;  // the pair when pushed: if both are still there, the entry is not stale
};

struct tls_state {
	struct tok_scratch scr;
	struct word_cache *caches;
	struct symbol *syms;
	size_t syms_cap;
	struct heap_entry *heap;
	size_t heap_cap;
	struct bytevec tmp;
};

static _Thread_local struct tls_state *tls;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void cache_free(struct word_cache *c)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		free(c->slots[i].mem);
	free(c->slots);
	free(c);
}

// Runs at thread exit (pthread key destructor).
static void tls_destroy(void *p)
{
	struct tls_state *st = p;
	while (st->caches) {
		struct word_cache *next = st->caches->next;
		cache_free(st->caches);
		st->caches = next;
	}
	struct tok_scratch *s = &st->scr;
	free(s->norm_a.data);
	free(s->norm_b.data);
	free(s->pre_a.data);
	free(s->pre_b.data);
	free(s->pieces_a.data);
	free(s->pieces_b.data);
	free(s->splits.data);
	free(s->split_is_match);
	free(s->word.data);
	pcre2_match_data_free(s->match);
	pcre2_match_context_free(s->match_ctx);
	pcre2_jit_stack_free(s->jit_stack);
	free(st->syms);
	free(st->heap);
	free(st->tmp.data);
	free(st);
	if (tls == st)
		tls = NULL;
}

static void tls_key_init(void)
{
	pthread_key_create(&tls_key, tls_destroy);
}

static struct tls_state *tls_get(void)
{
	if (tls)
		return tls;
	pthread_once(&tls_once, tls_key_init);
	struct tls_state *st = xcalloc(1, sizeof *st);
	// One ovector pair is enough: only the whole match is used (capture groups report rc 0).
	st->scr.match = pcre2_match_data_create(1, NULL);
	st->scr.match_ctx = pcre2_match_context_create(NULL);
	st->scr.jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
	if (!st->scr.match || !st->scr.match_ctx || !st->scr.jit_stack)
		die(EXIT_FAIL, "tokenizer: out of memory for regex matching");
	pcre2_jit_stack_assign(st->scr.match_ctx, NULL, st->scr.jit_stack);
	pthread_setspecific(tls_key, st);
	tls = st;
	return st;
}

struct tok_scratch *tok_scratch_get(void) { return &tls_get()->scr; }

static struct word_cache *cache_for(struct tls_state *st, const struct tokenizer *tok)
{
	for (struct word_cache *c = st->caches; c; c = c->next)
		if (c->serial == tok->serial)
			return c;
	struct word_cache *c = xcalloc(1, sizeof *c);
	c->serial = tok->serial;
	c->slots = xcalloc(CACHE_SLOTS, sizeof *c->slots);
	c->next = st->caches;
	st->caches = c;
	return c;
}

void tok_bpe_release_thread_cache(const struct tokenizer *tok)
{
	if (!tls)
		return;
	for (struct word_cache **pp = &tls->caches; *pp; pp = &(*pp)->next)
		if ((*pp)->serial == tok->serial) {
			struct word_cache *c = *pp;
			*pp = c->next;
			cache_free(c);
			return;
		}
}

static size_t ids_offset(size_t key_len) { return (key_len + 3) & ~(size_t)3; }

static void cache_store(struct cache_slot *slot, uint64_t h, const char *s, size_t len, const uint32_t *ids,
			size_t n)
{
	size_t off = ids_offset(len);
	slot->mem = xrealloc(slot->mem, off + n * sizeof *ids + 1);
	memcpy(slot->mem, s, len);
	if (n)   // a word with no ids (a tokenizer whose vocabulary lacks its characters) has no ids array
		memcpy(slot->mem + off, ids, n * sizeof *ids);
	slot->hash = h;
	slot->key_len = (uint32_t)len;
	slot->n_ids = (uint32_t)n;
}

static void add_symbol(struct tls_state *st, size_t *n, uint32_t id, uint32_t len)
{
	if (*n == st->syms_cap) {
		st->syms_cap = st->syms_cap ? st->syms_cap * 2 : 256;
		st->syms = xrealloc(st->syms, st->syms_cap * sizeof *st->syms);
	}
	st->syms[*n] = (struct symbol){ id, len, (int32_t)*n - 1, (int32_t)*n + 1 };
	(*n)++;
}

static int heap_less(const struct heap_entry *a, const struct heap_entry *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct tls_state *st, size_t *n, struct heap_entry e)
{
	if (*n == st->heap_cap) {
		st->heap_cap = st->heap_cap ? st->heap_cap * 2 : 256;
		st->heap = xrealloc(st->heap, st->heap_cap * sizeof *st->heap);
	}
	size_t i = (*n)++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!heap_less(&e, &st->heap[parent]))
			break;
		st->heap[i] = st->heap[parent];
		i = parent;
	}
	st->heap[i] = e;
}

static struct heap_entry heap_pop(struct tls_state *st, size_t *n)
{
	struct heap_entry top = st->heap[0], last = st->heap[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && heap_less(&st->heap[c + 1], &st->heap[c]))
			c++;
		if (!heap_less(&st->heap[c], &last))
			break;
		st->heap[i] = st->heap[c];
		i = c;
	}
	if (*n)
		st->heap[i] = last;
	return top;
}

static void merge_all(const struct tokenizer *tok, struct tls_state *st, size_t n_syms)
{
	struct symbol *sy = st->syms;
	size_t n_heap = 0;
	if (n_syms)
		sy[n_syms - 1].next = -1;
	for (size_t i = 0; i + 1 < n_syms; i++)
		mergemap_prefetch(&tok->merges, sy[i].id, sy[i + 1].id);
	for (size_t i = 0; i + 1 < n_syms; i++) {
		const struct merge_slot *m = mergemap_get(&tok->merges, sy[i].id, sy[i + 1].id);
		if (m)
			heap_push(st, &n_heap, (struct heap_entry){ m->rank, (uint32_t)i, m->new_id, sy[i].id, sy[i + 1].id });
	}
	while (n_heap) {
		struct heap_entry top = heap_pop(st, &n_heap);
		sy = st->syms;
		struct symbol *left = &sy[top.pos];
		if (left->len == 0 || left->next < 0)
			continue;
		int32_t right_pos = left->next;
		struct symbol right = sy[right_pos];
		// HF's staleness test is "the pair here no longer merges into new_id"; when the pair is the
		// one pushed it trivially holds, so the map is only consulted when the pair changed.
		if (left->id != top.left || right.id != top.right) {
			const struct merge_slot *m = mergemap_get(&tok->merges, left->id, right.id);
			if (!m || m->new_id != top.new_id)
				continue;  // stale entry
		}
		left->id = top.new_id;
		left->len += right.len;
		left->next = right.next;
		sy[right_pos].len = 0;
		if (right.next >= 0 && (size_t)right.next < n_syms) {
			sy[right.next].prev = (int32_t)top.pos;
			mergemap_prefetch(&tok->merges, left->id, sy[right.next].id);
		}
		if (left->prev >= 0) {
			const struct merge_slot *pm = mergemap_get(&tok->merges, sy[left->prev].id, left->id);
			if (pm)
				heap_push(st, &n_heap, (struct heap_entry){ pm->rank, (uint32_t)left->prev, pm->new_id,
									   sy[left->prev].id, left->id });
		}
		left = &st->syms[top.pos];
		if (left->next >= 0 && (size_t)left->next < n_syms) {
			const struct merge_slot *nm = mergemap_get(&tok->merges, left->id, sy[left->next].id);
			if (nm)
				heap_push(st, &n_heap, (struct heap_entry){ nm->rank, top.pos, nm->new_id, left->id,
									   sy[left->next].id });
		}
	}
}

// The vocab id of one character in model form, with the continuing-subword prefix and end-of-word
// suffix added where they apply; the looked-up string is left in st->tmp for byte_fallback.
static int64_t char_id(const struct tokenizer *tok, struct tls_state *st, const char *ch, size_t n, int first,
		       int last)
{
	const char *pre = !first ? tok->subword_prefix : NULL, *suf = last ? tok->word_suffix : NULL;
	st->tmp.len = 0;
	if (pre)
		bytevec_puts(&st->tmp, pre);
	bytevec_append(&st->tmp, ch, n);
	if (suf)
		bytevec_puts(&st->tmp, suf);
	return strmap_get(&tok->vocab, st->tmp.data, st->tmp.len);
}

void tok_bpe_word(const struct tokenizer *tok, const char *s, size_t len, int byte_level_form,
		  struct u32vec *out)
{
	if (len == 0)
		return;
	struct tls_state *st = tls_get();
	const struct byte_level_table *bl = byte_level_form ? byte_level() : NULL;

	if (tok->ignore_merges) {  // a pre-token that is a whole vocab entry is emitted as is
		const char *w = s;
		size_t wlen = len;
		if (bl) {
			st->scr.word.len = 0;
			for (size_t i = 0; i < len; i++)
				bytevec_append(&st->scr.word, bl->str[(unsigned char)s[i]], bl->len[(unsigned char)s[i]]);
			w = st->scr.word.data;
			wlen = st->scr.word.len;
		}
		int64_t id = strmap_get(&tok->vocab, w, wlen);
		if (id >= 0) {
			u32vec_push(out, (uint32_t)id);
			return;
		}
	}

	struct cache_slot *slot = NULL;
	uint64_t h = 0;
	if (len < CACHE_MAX_WORD) {
		h = tok_hash(s, len) ^ (uint64_t)byte_level_form;
		slot = &cache_for(st, tok)->slots[h & (CACHE_SLOTS - 1)];
		if (slot->mem && slot->hash == h && slot->key_len == len && memcmp(slot->mem, s, len) == 0) {
			u32vec_append(out, (const uint32_t *)(void *)(slot->mem + ids_offset(len)), slot->n_ids);
			return;
		}
	}

	size_t n_syms = 0;
	int simple = !tok->subword_prefix && !tok->word_suffix;
	int64_t unk = -1;  // pending unk symbol: its length in bytes (fuse_unk grows it)
	size_t i = 0;
	while (i < len) {
		size_t n;
		const char *ch;
		size_t ch_len;
		int64_t id;
		if (bl) {
			unsigned char b = (unsigned char)s[i];
			n = 1;
			ch = bl->str[b];
			ch_len = bl->len[b];
			id = simple ? tok->byte_level_id[b] : char_id(tok, st, ch, ch_len, i == 0, i + 1 == len);
		} else {
			n = utf8_char_len((unsigned char)s[i]);
			if (n > len - i)
				n = len - i;
			ch = s + i;
			ch_len = n;
			id = simple ? strmap_get(&tok->vocab, ch, n) : char_id(tok, st, ch, n, i == 0, i + n == len);
		}
		if (id >= 0) {
			if (unk >= 0) {
				add_symbol(st, &n_syms, (uint32_t)tok->unk_id, (uint32_t)unk);
				unk = -1;
			}
			add_symbol(st, &n_syms, (uint32_t)id, (uint32_t)n);
			i += n;
			continue;
		}
		if (tok->byte_fallback) {
			// Every byte of the looked-up string as "<0xNN>", or none of them (HF merge_word).
			if (!simple)
				char_id(tok, st, ch, ch_len, i == 0, i + n == len);
			const char *bytes = simple ? ch : st->tmp.data;
			size_t n_bytes = simple ? ch_len : st->tmp.len;
			size_t k = 0;
			while (k < n_bytes && tok->byte_token[(unsigned char)bytes[k]] >= 0)
				k++;
			if (k == n_bytes) {
				for (k = 0; k < n_bytes; k++)
					add_symbol(st, &n_syms, (uint32_t)tok->byte_token[(unsigned char)bytes[k]], 1);
				i += n;
				continue;
			}
		}
		if (tok->unk_id >= 0) {
			if (unk >= 0 && tok->fuse_unk)
				unk += (int64_t)n;
			else {
				if (unk >= 0)
					add_symbol(st, &n_syms, (uint32_t)tok->unk_id, (uint32_t)unk);
				unk = (int64_t)n;
			}
		}
		i += n;
	}
	if (unk >= 0)
		add_symbol(st, &n_syms, (uint32_t)tok->unk_id, (uint32_t)unk);

	merge_all(tok, st, n_syms);

	size_t first = out->len;
	for (size_t k = 0; k < n_syms; k++)
		if (st->syms[k].len)
			u32vec_push(out, st->syms[k].id);
	if (slot)   // out->data is NULL when nothing was ever pushed: no pointer arithmetic on it
		cache_store(slot, h, s, len, out->len > first ? out->data + first : NULL, out->len - first);
}
