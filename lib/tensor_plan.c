// tensor_plan.c — a family of tensors carved out of one allocation (tensor_plan.h).
#include "tensor_plan.h"

#include <stdlib.h>

#include "die.h"

#define PLAN_ALIGN 256

void tensor_plan_begin(struct tensor_plan *p, enum device device)
{
	*p = (struct tensor_plan){.device = device};
}

void tensor_plan_add(struct tensor_plan *p, struct tensor *dst, enum dtype dtype, int ndim, int64_t d0, int64_t d1,
		     int64_t d2)
{
	*dst = tensor_of(NULL, dtype, p->device, ndim, d0, ndim > 1 ? d1 : 1, ndim > 2 ? d2 : 1, 1);
	int64_t n = dst->dim[0] * dst->dim[1] * dst->dim[2];
	if (n <= 0) {
		*dst = TENSOR_NONE;
		return;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 32;
		p->items = xrealloc(p->items, p->cap * sizeof *p->items);
	}
	p->items[p->n++] = (struct tensor_plan_item){dst, p->bytes};
	p->bytes += ((size_t)n * dtype_size(dtype) + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;
}

void *tensor_plan_commit(struct tensor_plan *p)
{
	char *base = ops_alloc(p->device, p->bytes);
	for (size_t i = 0; i < p->n; i++)
		p->items[i].dst->data = base + p->items[i].offset;
	free(p->items);
	p->items = NULL;
	p->n = p->cap = 0;
	return base;
}

size_t tensor_plan_bytes(const struct tensor_plan *p) { return p->bytes; }
