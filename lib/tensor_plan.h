// tensor_plan.h — memory planned up front: a family of tensors (the frozen weights, a model's activations, an
// adapter's parameters) sized first, then carved out of one allocation on one device (ops_alloc), each tensor
// starting on a 256-byte boundary (what vector loads and cuBLAS like).
//
//   struct tensor_plan p;
//   tensor_plan_begin(&p, DEVICE_CUDA);
//   tensor_plan_add(&p, &acts->x, DTYPE_BF16, 2, T, C, 0);
//   ...
//   acts->mem = tensor_plan_commit(&p);      // later: ops_free(device, acts->mem)
#ifndef MEDMOE_TENSOR_PLAN_H
#define MEDMOE_TENSOR_PLAN_H

#include <stddef.h>

#include "ops.h"

struct tensor_plan {
	enum device device;
	size_t n, cap, bytes;
	struct tensor_plan_item {
		struct tensor *dst;
		size_t offset;
	} *items;
};

void tensor_plan_begin(struct tensor_plan *p, enum device device);
// *DST becomes a tensor of NDIM dims (d1, d2 ignored beyond NDIM) once the plan is committed; a tensor with no
// elements becomes TENSOR_NONE.
void tensor_plan_add(struct tensor_plan *p, struct tensor *dst, enum dtype dtype, int ndim, int64_t d0, int64_t d1,
		     int64_t d2);
// One zero-filled allocation for everything added; returns it (the caller frees it with ops_free).
void *tensor_plan_commit(struct tensor_plan *p);
// The bytes the plan allocates (after tensor_plan_commit, or so far).
size_t tensor_plan_bytes(const struct tensor_plan *p);

#endif
