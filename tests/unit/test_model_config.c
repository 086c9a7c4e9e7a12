// test_model_config.c — config.json parsing: defaults, both RoPE spellings, per-architecture biases, refusals,
// and the inverse frequencies of the linear and llama3 scalings against the formulas in double precision.
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model_config.h"

static char path[256];

static void load(struct model_config *c, const char *json)
{
	snprintf(path, sizeof path, "/tmp/medmoe-test-config.%ld.json", (long)getpid());
	FILE *fp = fopen(path, "w");
	fputs(json, fp);
	fclose(fp);
	model_config_load(c, path);
	unlink(path);
}

#define BASE "\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, " \
	     "\"intermediate_size\": 128, \"vocab_size\": 300"

static void test_defaults_and_legacy_rope(void **state)
{
	(void)state;
	struct model_config c;
	// no kv heads, no head_dim, legacy "type" key in rope_scaling
	load(&c, "{\"architectures\": [\"LlamaForCausalLM\"], " BASE ", \"rope_theta\": 5000, "
		 "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}");
	assert_int_equal(c.arch, ARCH_LLAMA);
	assert_int_equal(c.n_kv_heads, 4);
	assert_int_equal(c.head_dim, 16);
	assert_int_equal(c.rope_type, ROPE_LINEAR);
	assert_true(c.rope_theta == 5000.0 && c.rope_factor == 2.0);
	assert_false(c.tie_embeddings);
	assert_false(c.qkv_bias);
	float f[8];
	model_config_rope_inv_freq(&c, f);
	// linear: 1 / (5000^(2i/16) · 2)
	for (int i = 0; i < 8; i++)
		assert_true(fabs(f[i] - 1.0 / (pow(5000.0, 2.0 * i / 16.0) * 2.0)) < 1e-6 * f[i]);

	// rope_scaling null is the default rope; head_dim null falls back to hidden / heads
	load(&c, "{\"architectures\": [\"LlamaForCausalLM\"], " BASE ", \"head_dim\": null, \"rope_scaling\": null}");
	assert_int_equal(c.rope_type, ROPE_DEFAULT);
	assert_true(c.rope_theta == 10000.0);
	assert_int_equal(c.head_dim, 16);
}

static void test_arch_biases(void **state)
{
	(void)state;
	struct model_config c;
	load(&c, "{\"architectures\": [\"Qwen2ForCausalLM\"], " BASE ", \"attention_bias\": false}");
	assert_true(c.qkv_bias && !c.o_bias && !c.qk_norm);   // Qwen2: q/k/v biases whatever the flag says
	load(&c, "{\"architectures\": [\"Qwen3ForCausalLM\"], " BASE ", \"attention_bias\": true, \"head_dim\": 32}");
	assert_true(c.qkv_bias && c.o_bias && c.qk_norm);
	assert_int_equal(c.head_dim, 32);
	load(&c, "{\"architectures\": [\"LlamaForCausalLM\"], " BASE ", \"attention_bias\": true, "
		 "\"tie_word_embeddings\": true}");
	assert_true(c.qkv_bias && c.o_bias && !c.qk_norm && c.tie_embeddings);
}

// llama3 scaling, the LLaMA-3.1 parameters on head_dim 128: each regime (kept, interpolated, divided).
static void test_llama3_inv_freq(void **state)
{
	(void)state;
	struct model_config c;
	load(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 4096, \"num_hidden_layers\": 1, "
		 "\"num_attention_heads\": 32, \"intermediate_size\": 16, \"vocab_size\": 16, "
		 "\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 8.0, "
		 "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}");
	assert_int_equal(c.rope_type, ROPE_LLAMA3);
	float f[64];
	model_config_rope_inv_freq(&c, f);
	// The three regimes of transformers' _compute_llama3_parameters, in double precision and written out
	// independently of model_config.c's fp32 path: wavelength < orig/high kept, > orig/low divided by factor,
	// between them interpolated with smooth = (orig/wavelength − low) / (high − low).
	for (int i = 0; i < 64; i++) {
		double inv = 1.0 / pow(500000.0, 2.0 * i / 128.0), wl = 2.0 * M_PI / inv, want;
		if (wl < 8192.0 / 4.0)
			want = inv;
		else if (wl > 8192.0 / 1.0)
			want = inv / 8.0;
		else {
			double s = (8192.0 / wl - 1.0) / (4.0 - 1.0);
			want = (1.0 - s) * inv / 8.0 + s * inv;
		}
		if (fabs(f[i] - want) > 2e-6 * want)
			fail_msg("inv_freq[%d]: got %.9g, want %.9g", i, f[i], want);
	}
}

static void test_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"{\"architectures\": [\"MistralForCausalLM\"], " BASE "}",
		"{\"architectures\": [\"LlamaForCausalLM\"], " BASE ", \"rope_scaling\": {\"rope_type\": \"dynamic\", "
		"\"factor\": 2.0}}",
		"{\"architectures\": [\"LlamaForCausalLM\"], " BASE ", \"partial_rotary_factor\": 0.5}",
		"{\"architectures\": [\"LlamaForCausalLM\"], " BASE ", \"hidden_act\": \"gelu\"}",
		"{\"architectures\": [\"LlamaForCausalLM\"], " BASE ", \"mlp_bias\": true}",
		"{\"architectures\": [\"Qwen2ForCausalLM\"], " BASE ", \"use_sliding_window\": true}",
		"{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0) {
			freopen("/dev/null", "w", stderr);
			struct model_config c;
			load(&c, bad[i]);
			_exit(0);
		}
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 65)
			fail_msg("config %zu was not refused with exit 65: %s", i, bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_legacy_rope),
		cmocka_unit_test(test_arch_biases),
		cmocka_unit_test(test_llama3_inv_freq),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
