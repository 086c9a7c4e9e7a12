// stdiff — how far apart two safetensors files are, for tests that allow rounding (data-parallel runs):
//   stdiff A B      one line: "max_abs M rel_l2 R worst NAME" over every tensor both hold (the same names and
//                   shapes are required: exit 1 naming the first that differs), where M = max |a − b| and
//                   R = ‖a − b‖ / ‖a‖ over all values; NAME holds the largest |a − b|.
// Built by the tests against build/libmedmoe.a (its safetensors reader).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "safetensors.h"

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	if (argc != 3)
		die(EXIT_USAGE, "usage: stdiff A.safetensors B.safetensors");
	struct safetensors *a = safetensors_open(argv[1]), *b = safetensors_open(argv[2]);
	if (safetensors_count(a) != safetensors_count(b))
		die(EXIT_FAIL, "%zu tensors in %s, %zu in %s", safetensors_count(a), argv[1], safetensors_count(b), argv[2]);
	double max_abs = 0, d2 = 0, a2 = 0;
	const char *worst = "-";
	for (size_t i = 0; i < safetensors_count(a); i++) {
		const struct st_tensor *ta = safetensors_at(a, i), *tb = safetensors_find(b, ta->name);
		if (!tb || tb->nelem != ta->nelem)
			die(EXIT_FAIL, "%s: %s in %s", ta->name, tb ? "another shape" : "missing", argv[2]);
		float *x = xmalloc((size_t)ta->nelem * sizeof *x + 4), *y = xmalloc((size_t)tb->nelem * sizeof *y + 4);
		st_tensor_to_f32(ta, x);
		st_tensor_to_f32(tb, y);
		for (int64_t k = 0; k < ta->nelem; k++) {
			double d = fabs((double)x[k] - (double)y[k]);
			if (d > max_abs)
				max_abs = d, worst = ta->name;
			d2 += d * d;
			a2 += (double)x[k] * x[k];
		}
		free(x);
		free(y);
	}
	printf("max_abs %.3g rel_l2 %.3g worst %s\n", max_abs, a2 > 0 ? sqrt(d2 / a2) : sqrt(d2), worst);
	return 0;
}
