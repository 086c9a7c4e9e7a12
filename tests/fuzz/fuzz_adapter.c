// fuzz_adapter — a run's adapter and training state: adapter_config.json and adapter.safetensors loaded for a
// small in-memory model, then the optimizer state (state/optimizer.safetensors) and state/trainer.json.
// Input: four parts separated by "\n--medmoe-part--\n", in that order.
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "adapter_io.h"
#include "fuzz.h"
#include "infile.h"
#include "model.h"
#include "trainer_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	static struct model *m;
	if (!m) {
		// the geometry of the seeds: 2 layers, hidden 16, 2 heads (1 kv), ffn 32, vocab 64
		struct model_config cfg = {.arch = ARCH_QWEN2, .hidden = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
					   .head_dim = 8, .ffn = 32, .vocab = 64, .rms_eps = 1e-6f, .qkv_bias = 1,
					   .max_positions = 64, .rope_theta = 10000, .rope_type = ROPE_DEFAULT, .rope_factor = 1};
		m = model_new(&cfg);
	}
	const uint8_t *part[4];
	size_t len[4];
	size_t n = fuzz_parts(data, size, part, len, 4);
	char run[600];
	snprintf(run, sizeof run, "%s/run", fuzz_dir());
	mkdir(run, 0700);
	char state[640];
	snprintf(state, sizeof state, "%s/state", run);
	mkdir(state, 0700);
	fuzz_file("run/adapter_config.json", part[0], len[0]);
	fuzz_file("run/adapter.safetensors", n > 1 ? part[1] : (const uint8_t *)"", n > 1 ? len[1] : 0);
	const char *opt = fuzz_file("run/state/optimizer.safetensors", n > 2 ? part[2] : (const uint8_t *)"", n > 2 ? len[2] : 0);
	char opt_path[700];
	snprintf(opt_path, sizeof opt_path, "%s", opt);
	static struct adapter *volatile a;
	a = NULL;
	FUZZ_RUN({
		a = adapter_load(run, m);
		adapter_state_load(a, opt_path);
	});
	adapter_free(a);
	if (n > 3) {
		const char *tj = fuzz_file("run/state/trainer.json", part[3], len[3]);
		static json_t *volatile j;
		j = NULL;
		FUZZ_RUN({
			json_error_t err;
			j = infile_json(tj, JSON_REJECT_DUPLICATES, INFILE_MAX_CONFIG, &err);
			if (j) {
				struct run_saved sv;
				run_saved_parse(j, tj, 100, 2, &sv);
			}
		});
		json_decref(j);
	}
	fuzz_end();
	return 0;
}
