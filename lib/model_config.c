// model_config.c — config.json → struct model_config.
#include "model_config.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "die.h"

static const struct {
	const char *name, *type;
	enum model_arch arch;
} arches[] = {
	{"LlamaForCausalLM", "llama", ARCH_LLAMA},
	{"Qwen2ForCausalLM", "qwen2", ARCH_QWEN2},
	{"Qwen3ForCausalLM", "qwen3", ARCH_QWEN3},
};
#define N_ARCHES (sizeof arches / sizeof arches[0])

const char *model_arch_name(enum model_arch arch) { return arches[arch].name; }
const char *model_arch_type(enum model_arch arch) { return arches[arch].type; }

// A positive integer field; DEFAULT when absent (DEFAULT < 0: required).
static int get_int(json_t *root, const char *path, const char *key, int dflt)
{
	json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v)) {
		if (dflt < 0)
			die_data(path, -1, key, "missing");
		return dflt;
	}
	if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 1 << 30)
		die_data(path, -1, key, "not a positive integer");
	return (int)json_integer_value(v);
}

static double get_num(json_t *obj, const char *path, const char *key, double dflt)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		if (isnan(dflt))
			die_data(path, -1, key, "missing");
		return dflt;
	}
	if (!json_is_number(v))
		die_data(path, -1, key, "not a number");
	return json_number_value(v);
}

static int get_bool(json_t *root, const char *path, const char *key, int dflt)
{
	json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v))
		return dflt;
	if (!json_is_boolean(v))
		die_data(path, -1, key, "not true or false");
	return json_is_true(v);
}

static enum model_arch parse_arch(json_t *root, const char *path)
{
	json_t *a = json_object_get(root, "architectures");
	const char *name = NULL;
	if (json_is_array(a) && json_array_size(a) >= 1 && json_is_string(json_array_get(a, 0)))
		name = json_string_value(json_array_get(a, 0));
	for (size_t i = 0; name && i < N_ARCHES; i++)
		if (strcmp(name, arches[i].name) == 0)
			return arches[i].arch;
	die_data(path, -1, "architectures", "%s is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
		 "Qwen3ForCausalLM)", name ? name : "missing");
}

// The rope parameters object: "rope_parameters" (transformers 5) or "rope_scaling" (older; null = default).
static void parse_rope(struct model_config *cfg, json_t *root, const char *path)
{
	json_t *params = json_object_get(root, "rope_parameters");
	const char *field = "rope_parameters";
	if (!json_is_object(params)) {
		params = json_object_get(root, "rope_scaling");
		field = "rope_scaling";
	}
	cfg->rope_theta = get_num(root, path, "rope_theta", 10000.0);
	cfg->rope_type = ROPE_DEFAULT;
	cfg->rope_factor = 1.0;
	if (!params || json_is_null(params))
		return;
	if (!json_is_object(params))
		die_data(path, -1, field, "not an object");
	cfg->rope_theta = get_num(params, path, "rope_theta", cfg->rope_theta);
	if (get_num(params, path, "partial_rotary_factor", 1.0) != 1.0)
		die_data(path, -1, field, "partial_rotary_factor is not supported");
	json_t *t = json_object_get(params, "rope_type");
	if (!t)
		t = json_object_get(params, "type");   // the legacy key
	const char *type = json_is_string(t) ? json_string_value(t) : "default";
	if (strcmp(type, "default") == 0) {
		cfg->rope_type = ROPE_DEFAULT;
	} else if (strcmp(type, "linear") == 0) {
		cfg->rope_type = ROPE_LINEAR;
		cfg->rope_factor = get_num(params, path, "factor", NAN);
	} else if (strcmp(type, "llama3") == 0) {
		cfg->rope_type = ROPE_LLAMA3;
		cfg->rope_factor = get_num(params, path, "factor", NAN);
		cfg->rope_low_freq_factor = get_num(params, path, "low_freq_factor", NAN);
		cfg->rope_high_freq_factor = get_num(params, path, "high_freq_factor", NAN);
		cfg->rope_original_max_pos = get_num(params, path, "original_max_position_embeddings", NAN);
		if (cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor)
			die_data(path, -1, field, "llama3: high_freq_factor must exceed low_freq_factor");
	} else {
		die_data(path, -1, field, "rope type %s is not supported (default, linear, llama3 are)", type);
	}
	if (!(cfg->rope_factor > 0))
		die_data(path, -1, field, "factor must be positive");
}

void model_config_load(struct model_config *cfg, const char *path)
{
	json_error_t err;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	if (!root)
		die_data(path, -1, NULL, "line %d: %s", err.line, err.text);
	if (!json_is_object(root))
		die_data(path, -1, NULL, "not a JSON object");
	memset(cfg, 0, sizeof *cfg);
	cfg->arch = parse_arch(root, path);
	cfg->hidden = get_int(root, path, "hidden_size", -1);
	cfg->n_layers = get_int(root, path, "num_hidden_layers", -1);
	cfg->n_heads = get_int(root, path, "num_attention_heads", -1);
	cfg->n_kv_heads = get_int(root, path, "num_key_value_heads", cfg->n_heads);
	cfg->head_dim = get_int(root, path, "head_dim", cfg->hidden / cfg->n_heads);
	cfg->ffn = get_int(root, path, "intermediate_size", -1);
	cfg->vocab = get_int(root, path, "vocab_size", -1);
	cfg->max_positions = get_int(root, path, "max_position_embeddings", 2048);
	cfg->rms_eps = (float)get_num(root, path, "rms_norm_eps", 1e-6);
	cfg->tie_embeddings = get_bool(root, path, "tie_word_embeddings", 0);
	if (cfg->n_heads % cfg->n_kv_heads != 0)
		die_data(path, -1, "num_key_value_heads", "%d does not divide num_attention_heads %d", cfg->n_kv_heads,
			 cfg->n_heads);
	if (cfg->head_dim % 2 != 0)
		die_data(path, -1, "head_dim", "%d is odd; rotate-half RoPE needs an even head_dim", cfg->head_dim);
	int attention_bias = get_bool(root, path, "attention_bias", 0);
	switch (cfg->arch) {
	case ARCH_QWEN2:
		// modeling_qwen2: q/k/v are nn.Linear(..., bias=True), o_proj bias=False, whatever attention_bias says.
		cfg->qkv_bias = 1;
		cfg->o_bias = 0;
		if (get_bool(root, path, "use_sliding_window", 0))
			die_data(path, -1, "use_sliding_window", "sliding-window attention is not supported");
		break;
	case ARCH_QWEN3:
		cfg->qk_norm = 1;
		cfg->qkv_bias = cfg->o_bias = attention_bias;
		if (get_bool(root, path, "use_sliding_window", 0))
			die_data(path, -1, "use_sliding_window", "sliding-window attention is not supported");
		break;
	case ARCH_LLAMA:
		cfg->qkv_bias = cfg->o_bias = attention_bias;
		break;
	}
	if (get_bool(root, path, "mlp_bias", 0))
		die_data(path, -1, "mlp_bias", "MLP biases are not supported");
	json_t *act = json_object_get(root, "hidden_act");
	if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
		die_data(path, -1, "hidden_act", "only silu (SwiGLU) is supported");
	if (get_num(root, path, "partial_rotary_factor", 1.0) != 1.0)
		die_data(path, -1, "partial_rotary_factor", "only a full rotary dimension (1.0) is supported");
	parse_rope(cfg, root, path);
	json_decref(root);
}

void model_config_rope_inv_freq(const struct model_config *cfg, float *inv_freq)
{
	int half = cfg->head_dim / 2;
	for (int i = 0; i < half; i++) {
		// _compute_default_rope_parameters: 1 / base^(arange(0, dim, 2) / dim), in fp32.
		float expo = (float)(2 * i) / (float)cfg->head_dim;
		float f = 1.0f / powf((float)cfg->rope_theta, expo);
		if (cfg->rope_type == ROPE_LINEAR) {
			f = f / (float)cfg->rope_factor;
		} else if (cfg->rope_type == ROPE_LLAMA3) {
			// _compute_llama3_parameters: long wavelengths are slowed by factor, short ones kept, the band
			// between them interpolated by smooth = (orig/wavelen − low) / (high − low).
			float factor = (float)cfg->rope_factor, low = (float)cfg->rope_low_freq_factor,
			      high = (float)cfg->rope_high_freq_factor, orig = (float)cfg->rope_original_max_pos;
			float low_wavelen = orig / low, high_wavelen = orig / high;
			float wavelen = 2.0f * (float)M_PI / f;
			if (wavelen > low_wavelen) {
				f = f / factor;
			} else if (wavelen >= high_wavelen) {
				float smooth = (orig / wavelen - low) / (high - low);
				f = (1.0f - smooth) * f / factor + smooth * f;
			}
		}
		inv_freq[i] = f;
	}
}
