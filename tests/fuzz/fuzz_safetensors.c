// fuzz_safetensors — the safetensors header and tensor table (one file, mapped), then every tensor converted.
#include <stdlib.h>

#include "fuzz.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	const char *path = fuzz_file("model.safetensors", data, size);
	static struct safetensors *volatile st;
	st = NULL;
	FUZZ_RUN({
		st = safetensors_open(path);
		for (size_t i = 0; i < safetensors_count(st); i++) {
			const struct st_tensor *t = safetensors_at(st, i);
			if (t->nelem > (1 << 20))
				continue;
			float *buf = malloc((size_t)(t->nelem ? t->nelem : 1) * sizeof(float));
			st_tensor_to_f32(t, buf);
			free(buf);
		}
		(void)safetensors_metadata(st, "format");
		(void)safetensors_total_elems(st);
	});
	safetensors_close(st);
	fuzz_end();
	return 0;
}
