// fuzz_config — a Hugging Face config.json into struct model_config, then the RoPE frequencies it implies.
#include <math.h>
#include <stdlib.h>

#include "fuzz.h"
#include "model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	const char *path = fuzz_file("config.json", data, size);
	FUZZ_RUN({
		struct model_config cfg;
		model_config_load(&cfg, path);
		float *f = malloc((size_t)cfg.head_dim / 2 * sizeof(float) + 1);
		model_config_rope_inv_freq(&cfg, f);
		free(f);
		uint64_t n;
		model_config_weight_elems(&cfg, &n);
		model_config_check_fits(&cfg, n, "fuzz");
	});
	fuzz_end();
	return 0;
}
