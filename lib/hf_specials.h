// hf_specials.h — the special tokens of a tokenizer.json, and the Hugging Face files that name them.
//
// A checkpoint directory is complete for transformers and lm-evaluation-harness only when three files agree on
// the special tokens: config.json (bos/eos/pad_token_id; without them LlamaConfig falls back to ids 1 and 2,
// which are ordinary tokens in most vocabularies), tokenizer_config.json (without it AutoTokenizer picks the
// tokenizer class from model_type — LlamaTokenizerFast rewrites the post-processor around a "<s>" that a Qwen
// vocabulary lacks, and lm-eval's tok_encode then fails) and generation_config.json (what generate stops at).
// medmoe writes them from the tokenizer.json alone, by these rules:
//   bos   the special token the post-processor puts before a single sequence (TemplateProcessing, alone or in a
//         Sequence: "<s>" of LLaMA-2/Mistral, "<|begin_of_text|>" of LLaMA-3); none otherwise (Qwen, the
//         byte tokenizer of init-base), and config.json's bos_token_id is then the eos, as Qwen's is;
//   eos   the first of <|endoftext|>, <|end_of_text|>, </s>, <|im_end|>, <|eot_id|>, <|end|> that is an added
//         token (Qwen's vocabulary has an ordinary "</s>");
//   end   every one of those present, eos first: generation_config.json's eos_token_id (a list when more than
//         one), so transformers' generate stops where eval-exam's generator does (at an end of text or turn);
//   pad   tokenizer.json's padding.pad_token when set, else the eos;
//   unk   model.unk_token when set.
// tokenizer_config.json names tokenizer_class PreTrainedTokenizerFast: the tokenizer.json is used as it is,
// ids identical to medmoe's, with no class-specific rewriting.
#ifndef MEDMOE_HF_SPECIALS_H
#define MEDMOE_HF_SPECIALS_H

#include <jansson.h>
#include <stdint.h>

#define HF_MAX_END 8

struct hf_token {
	char *text;      // NULL when the tokenizer has none
	int64_t id;      // -1 when none
};

struct hf_specials {
	struct hf_token bos, eos, pad, unk;
	int n_end;
	int64_t end[HF_MAX_END];
};

// The special tokens of the tokenizer.json ROOT (read from FILE, named in errors).  A tokenizer with no
// end-of-text token gets a warning: generate will then run to its length limit.
void hf_specials_from_json(struct hf_specials *s, const json_t *root, const char *file);
// The same from the tokenizer.json at PATH (exit 65 when malformed).
void hf_specials_load(struct hf_specials *s, const char *path);
void hf_specials_free(struct hf_specials *s);

// Set bos_token_id, eos_token_id and pad_token_id of the config.json object CONFIG; with ONLY_MISSING, only
// those absent or null.
void hf_config_set_specials(json_t *config, const struct hf_specials *s, int only_missing);
// Write tokenizer_config.json and generation_config.json at PATH (through outfile.h).  MAX_LENGTH is the
// model's max_position_embeddings (tokenizer model_max_length).
void hf_write_tokenizer_config(const char *path, const struct hf_specials *s, int64_t max_length);
void hf_write_generation_config(const char *path, const struct hf_specials *s);

#endif
