// model_config.c — config.json → struct model_config.
#include "model_config.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "die.h"
#include "infile.h"

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

// A positive integer field up to MAX; DEFAULT when absent (DEFAULT < 0: required).
static int get_int(json_t *root, const char *path, const char *key, int dflt, int max)
{
	json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v)) {
		if (dflt < 0)
			die_data(path, -1, key, "missing");
		return dflt;
	}
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		die_data(path, -1, key, "not a positive integer");
	if (json_integer_value(v) > max)
		die_data(path, -1, key, "%lld is over the limit %d", (long long)json_integer_value(v), max);
	return (int)json_integer_value(v);
}

// A number that must be finite and positive, also once narrowed to fp32 (where RoPE and RMSNorm use it).
static double positive(double x, const char *path, const char *field, const char *what)
{
	if (!(x > 0) || !isfinite(x) || x > FLT_MAX)
		die_data(path, -1, field, "%s must be a positive finite number (is %g)", what, x);
	return x;
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
	cfg->rope_theta = positive(get_num(root, path, "rope_theta", 10000.0), path, "rope_theta", "rope_theta");
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
		positive(cfg->rope_low_freq_factor, path, field, "low_freq_factor");
		positive(cfg->rope_high_freq_factor, path, field, "high_freq_factor");
		positive(cfg->rope_original_max_pos, path, field, "original_max_position_embeddings");
		if (cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor)
			die_data(path, -1, field, "llama3: high_freq_factor must exceed low_freq_factor");
	} else {
		die_data(path, -1, field, "rope type %s is not supported (default, linear, llama3 are)", type);
	}
	positive(cfg->rope_factor, path, field, "factor");
	positive(cfg->rope_theta, path, field, "rope_theta");
}

void model_config_load(struct model_config *cfg, const char *path)
{
	json_error_t err;
	json_t *root = infile_json(path, JSON_REJECT_DUPLICATES, INFILE_MAX_CONFIG, &err);
	if (!root)
		die_data(path, -1, NULL, "line %d: %s", err.line, err.text);
	if (!json_is_object(root))
		die_data(path, -1, NULL, "not a JSON object");
	memset(cfg, 0, sizeof *cfg);
	cfg->arch = parse_arch(root, path);
	cfg->hidden = get_int(root, path, "hidden_size", -1, MODEL_MAX_HIDDEN);
	cfg->n_layers = get_int(root, path, "num_hidden_layers", -1, MODEL_MAX_LAYERS);
	cfg->n_heads = get_int(root, path, "num_attention_heads", -1, MODEL_MAX_HEADS);
	cfg->n_kv_heads = get_int(root, path, "num_key_value_heads", cfg->n_heads, MODEL_MAX_HEADS);
	int dflt_hd = cfg->hidden / cfg->n_heads;
	cfg->head_dim = get_int(root, path, "head_dim", dflt_hd > 0 ? dflt_hd : -1, MODEL_MAX_HEAD_DIM);
	if (cfg->head_dim > MODEL_MAX_HEAD_DIM)
		die_data(path, -1, "head_dim", "%d (hidden_size / num_attention_heads) is over the limit %d", cfg->head_dim,
			 MODEL_MAX_HEAD_DIM);
	cfg->ffn = get_int(root, path, "intermediate_size", -1, MODEL_MAX_FFN);
	cfg->vocab = get_int(root, path, "vocab_size", -1, MODEL_MAX_VOCAB);
	cfg->max_positions = get_int(root, path, "max_position_embeddings", 2048, 1 << 30);
	cfg->rms_eps = (float)positive(get_num(root, path, "rms_norm_eps", 1e-6), path, "rms_norm_eps", "rms_norm_eps");
	if (!(cfg->rms_eps > 0))
		die_data(path, -1, "rms_norm_eps", "too small for fp32");
	cfg->tie_embeddings = get_bool(root, path, "tie_word_embeddings", 0);
	if ((int64_t)cfg->n_heads * cfg->head_dim > MODEL_MAX_HIDDEN)
		die_data(path, -1, "head_dim", "num_attention_heads × head_dim = %lld is over the limit %d",
			 (long long)cfg->n_heads * cfg->head_dim, MODEL_MAX_HIDDEN);
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
	uint64_t total;
	if (model_config_weight_elems(cfg, &total) != 0 || total > MODEL_MAX_WEIGHTS)
		die_data(path, -1, NULL, "the sizes ask for more than 2^40 weights (hidden_size %d, intermediate_size %d, "
			 "vocab_size %d, num_hidden_layers %d)", cfg->hidden, cfg->ffn, cfg->vocab, cfg->n_layers);
}

int model_config_weight_elems(const struct model_config *c, uint64_t *total)
{
	// Every product in 64 bits with overflow checks: the dimensions are bounded one by one, their products not.
	uint64_t L = (uint64_t)c->n_layers, C = (uint64_t)c->hidden, V = (uint64_t)c->vocab, F = (uint64_t)c->ffn;
	uint64_t HD = (uint64_t)c->head_dim, QD = (uint64_t)c->n_heads * HD, KD = (uint64_t)c->n_kv_heads * HD;
	uint64_t per_layer = 0, t;
	uint64_t parts[] = {
		QD * C, KD * C, KD * C, C * QD,                      // q k v o
		c->qkv_bias ? QD + 2 * KD : 0, c->o_bias ? C : 0,
		c->qk_norm ? 2 * HD : 0, 2 * C,                      // q/k norms, the two RMSNorms
		3 * F * C,                                           // gate up down
	};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (__builtin_add_overflow(per_layer, parts[i], &per_layer))
			return -1;
	if (__builtin_mul_overflow(per_layer, L, &t))
		return -1;
	uint64_t embed = V * C * (c->tie_embeddings ? 1 : 2) + C;   // V, C ≤ 2^24, 2^17: no overflow
	if (__builtin_add_overflow(t, embed, total))
		return -1;
	return 0;
}

void model_config_check_fits(const struct model_config *c, uint64_t stored_elems, const char *dir)
{
	// Some slack (twice the stored count, plus 2^20): a checkpoint that lacks a tensor or two is then refused by
	// the loader naming the tensor; only sizes far beyond what the files hold are refused here, before the
	// allocation they would ask for.
	uint64_t need;
	if (model_config_weight_elems(c, &need) != 0 || need > 2 * stored_elems + (1u << 20))
	{
		char *path = xasprintf("%s/config.json", dir);
		die_data(path, -1, NULL, "the sizes ask for %llu weights but the checkpoint holds %llu: config.json does "
			 "not describe these safetensors", (unsigned long long)need, (unsigned long long)stored_elems);
	}
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
