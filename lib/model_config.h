// model_config.h — the fields of a Hugging Face config.json that the model engine needs.
//
// Architectures: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM (transformers models/{llama,qwen2,qwen3}).
// The differences that matter here:
//   - Qwen2 always has q/k/v biases (o_proj none); LLaMA and Qwen3 have q/k/v/o biases iff "attention_bias".
//   - Qwen3 applies an RMSNorm over head_dim to every q and k head ("q_norm", "k_norm") before RoPE.
//   - head_dim is explicit in config.json when present (Qwen3-0.6B: 16×128 ≠ hidden 1024), else hidden / heads.
// RoPE parameters come either as "rope_theta" + "rope_scaling" (transformers ≤ 4.x) or as one "rope_parameters"
// object (transformers 5, standardize_rope_params); both are read.  Types: default, linear, llama3.  Anything
// else (yarn, dynamic, sliding windows, mlp_bias, another activation) is refused by name, exit 65.
#ifndef MEDMOE_MODEL_CONFIG_H
#define MEDMOE_MODEL_CONFIG_H

#include <stdint.h>

enum model_arch { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3 };
enum rope_type { ROPE_DEFAULT, ROPE_LINEAR, ROPE_LLAMA3 };

struct model_config {
	enum model_arch arch;
	int hidden;          // C
	int n_layers;        // L
	int n_heads;         // NH
	int n_kv_heads;      // NKV (GQA: NH % NKV == 0)
	int head_dim;        // HD
	int ffn;             // F, intermediate_size
	int vocab;           // V
	float rms_eps;
	int tie_embeddings;  // lm_head is embed_tokens
	int qkv_bias;        // q_proj, k_proj, v_proj have biases
	int o_bias;          // o_proj has a bias
	int qk_norm;         // Qwen3 q_norm / k_norm
	int max_positions;   // max_position_embeddings (informational)
	// RoPE
	double rope_theta;
	enum rope_type rope_type;
	double rope_factor;            // linear, llama3
	double rope_low_freq_factor;   // llama3
	double rope_high_freq_factor;  // llama3
	double rope_original_max_pos;  // llama3: original_max_position_embeddings
};

// Limits on what config.json may ask for (the largest public checkpoints are far inside: Llama-3.1-405B has
// hidden 16384, intermediate 53248, 126 layers, 128 heads; vocabularies reach 256k).  Every dimension is checked
// against its limit and the total weight count in overflow-checked 64-bit arithmetic, before anyone allocates.
#define MODEL_MAX_HIDDEN (1 << 17)
#define MODEL_MAX_FFN (1 << 20)
#define MODEL_MAX_VOCAB (1 << 24)
#define MODEL_MAX_LAYERS 4096
#define MODEL_MAX_HEADS 4096
#define MODEL_MAX_HEAD_DIM 8192
#define MODEL_MAX_WEIGHTS (1ull << 40)

// Parse PATH (a config.json).  Bad or unsupported, a dimension over its limit, sizes whose weights overflow,
// a non-finite or non-positive rms_norm_eps / rope parameter → "PROG: PATH: FIELD: what", exit 65.
void model_config_load(struct model_config *cfg, const char *path);
// The number of weights C describes (embedding, every layer, final norm, lm_head unless tied) into *TOTAL;
// -1 when it overflows 64 bits.
int model_config_weight_elems(const struct model_config *c, uint64_t *total);
// Refuse (exit 65, naming DIR's config.json) sizes that ask for far more weights than the checkpoint stores
// (more than twice STORED_ELEMS, safetensors_total_elems, plus 2^20): called before the weights are allocated.
void model_config_check_fits(const struct model_config *c, uint64_t stored_elems, const char *dir);

// Inverse frequencies for rotate-half RoPE, head_dim/2 of them, with the scaling applied, computed the way
// transformers' modeling_rope_utils does (fp32 results; _compute_default/linear/llama3_parameters).
void model_config_rope_inv_freq(const struct model_config *cfg, float *inv_freq);

const char *model_arch_name(enum model_arch arch);          // "LlamaForCausalLM", ...
const char *model_arch_type(enum model_arch arch);          // "llama", "qwen2", "qwen3" (model_type)

#endif
