// tok_maps.c — the tokenizer's two hash maps: token string -> id, and (left id, right id) -> merge.
// Open addressing with linear probing at load factor <= 1/2; both are built once and then only read,
// so lookups from several threads need no lock.
#include <string.h>
#include "tok_internal.h"

// A multiply-xorshift hash over 8-byte words (the mixing constants are splitmix64's).
uint64_t tok_hash(const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xBF58476D1CE4E5B9ull);
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
		h ^= h >> 31;
		p += 8;
		len -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, p, len);
	h = (h ^ w) * 0x94D049BB133111EBull;
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ull;
	return h ^ (h >> 32);
}

static size_t table_size(size_t expect)
{
	size_t n = 16;
	while (n < expect * 2)
		n *= 2;
	return n;
}

void strmap_init(struct strmap *m, size_t expect)
{
	size_t n = table_size(expect);
	m->slots = xcalloc(n, sizeof *m->slots);
	m->mask = n - 1;
	m->count = 0;
}

static void strmap_grow(struct strmap *m)
{
	struct strmap old = *m;
	strmap_init(m, (old.mask + 1));
	for (size_t i = 0; i <= old.mask; i++)
		if (old.slots[i].key)
			strmap_put(m, old.slots[i].key, old.slots[i].len, old.slots[i].val);
	free(old.slots);
}

void strmap_put(struct strmap *m, const char *key, size_t len, uint32_t val)
{
	if ((m->count + 1) * 2 > m->mask + 1)
		strmap_grow(m);
	uint64_t h = tok_hash(key, len);
	for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
		struct strmap_slot *s = &m->slots[i];
		if (!s->key) {
			*s = (struct strmap_slot){ key, (uint32_t)len, val, h };
			m->count++;
			return;
		}
		if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
			s->val = val;
			return;
		}
	}
}

int64_t strmap_get(const struct strmap *m, const char *key, size_t len)
{
	uint64_t h = tok_hash(key, len);
	for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
		const struct strmap_slot *s = &m->slots[i];
		if (!s->key)
			return -1;
		if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
			return s->val;
	}
}

void strmap_free(struct strmap *m)
{
	free(m->slots);
	m->slots = NULL;
}

static uint64_t pair_key(uint32_t left, uint32_t right) { return (uint64_t)left << 32 | right; }

void mergemap_init(struct mergemap *m, size_t expect)
{
	size_t n = table_size(expect);
	m->slots = xmalloc(n * sizeof *m->slots);
	for (size_t i = 0; i < n; i++)
		m->slots[i].rank = UINT32_MAX;
	m->mask = n - 1;
	m->count = 0;
}

void mergemap_put(struct mergemap *m, uint32_t left, uint32_t right, uint32_t rank, uint32_t new_id)
{
	if ((m->count + 1) * 2 > m->mask + 1) {
		struct mergemap old = *m;
		mergemap_init(m, old.mask + 1);
		for (size_t i = 0; i <= old.mask; i++)
			if (old.slots[i].rank != UINT32_MAX)
				mergemap_put(m, (uint32_t)(old.slots[i].key >> 32), (uint32_t)old.slots[i].key,
					     old.slots[i].rank, old.slots[i].new_id);
		free(old.slots);
	}
	uint64_t key = pair_key(left, right);
	for (size_t i = mergemap_slot(key, m->mask);; i = (i + 1) & m->mask) {
		struct merge_slot *s = &m->slots[i];
		if (s->rank == UINT32_MAX) {
			*s = (struct merge_slot){ key, rank, new_id };
			m->count++;
			return;
		}
		if (s->key == key) {  // a repeated merge: the later one wins, as in HF's HashMap collect
			s->rank = rank;
			s->new_id = new_id;
			return;
		}
	}
}

const struct merge_slot *mergemap_get(const struct mergemap *m, uint32_t left, uint32_t right)
{
	uint64_t key = pair_key(left, right);
	for (size_t i = mergemap_slot(key, m->mask);; i = (i + 1) & m->mask) {
		const struct merge_slot *s = &m->slots[i];
		if (s->rank == UINT32_MAX)
			return NULL;
		if (s->key == key)
			return s;
	}
}

void mergemap_free(struct mergemap *m)
{
	free(m->slots);
	m->slots = NULL;
}
