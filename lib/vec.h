// vec.h — growable arrays of token ids and bytes.
#ifndef MEDMOE_VEC_H
#define MEDMOE_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "die.h"

struct u32vec {
	uint32_t *data;
	size_t len, cap;
};

struct bytevec {
	char *data;
	size_t len, cap;
};

static inline void u32vec_reserve(struct u32vec *v, size_t need)
{
	if (need <= v->cap)
		return;
	size_t cap = v->cap ? v->cap * 2 : 64;
	while (cap < need)
		cap *= 2;
	v->data = xrealloc(v->data, cap * sizeof *v->data);
	v->cap = cap;
}

static inline void u32vec_push(struct u32vec *v, uint32_t x)
{
	u32vec_reserve(v, v->len + 1);
	v->data[v->len++] = x;
}

static inline void u32vec_append(struct u32vec *v, const uint32_t *xs, size_t n)
{
	if (n == 0)
		return;   // an empty vector's data may be NULL: no pointer arithmetic on it
	u32vec_reserve(v, v->len + n);
	memcpy(v->data + v->len, xs, n * sizeof *xs);
	v->len += n;
}

static inline void bytevec_reserve(struct bytevec *v, size_t need)
{
	if (need <= v->cap)
		return;
	size_t cap = v->cap ? v->cap * 2 : 256;
	while (cap < need)
		cap *= 2;
	v->data = xrealloc(v->data, cap);
	v->cap = cap;
}

static inline void bytevec_append(struct bytevec *v, const void *bytes, size_t n)
{
	bytevec_reserve(v, v->len + n + 1);
	memcpy(v->data + v->len, bytes, n);
	v->len += n;
	v->data[v->len] = '\0';  // always NUL-terminated, for convenience
}

static inline void bytevec_puts(struct bytevec *v, const char *s)
{
	bytevec_append(v, s, strlen(s));
}

#endif
