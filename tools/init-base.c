// init-base — write a tiny random-weight Hugging Face checkpoint (config.json, generation_config.json,
// model.safetensors, tokenizer.json, tokenizer_config.json) for LLaMA, Qwen2 or Qwen3, deterministic by seed:
// for tests, benchmarks and the demo.  The special-token ids in the three JSON files come from the tokenizer
// (hf_specials.h), so transformers and lm-evaluation-harness load it with no extra arguments.
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "die.h"
#include "hf_specials.h"
#include "infile.h"
#include "model_config.h"
#include "outfile.h"
#include "rng.h"
#include "safetensors.h"
#include "tok_train.h"
#include "tokenizer.h"
#include "vec.h"

// Specials of the byte tokenizer, from id 256: the chat and document markers of the Qwen and LLaMA families,
// so the same demo checkpoint can be driven with either chat template.
static const char *const byte_specials[] = {
	"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
	"<|end_header_id|>", "<|eot_id|>", "<s>", "</s>",
};
#define N_BYTE_SPECIALS (int)(sizeof byte_specials / sizeof byte_specials[0])

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s --arch llama|qwen2|qwen3 [--layers n] [--hidden n] [--heads n] [--kv-heads n]\n"
		"       [--ffn n] [--vocab n] [--head-dim n] [--tied] [--seed s] [--init-std x] [--dtype f32|bf16]\n"
		"       [--tokenizer file|bytes] [--bpe-corpus file [--bpe-merges n]] [--force] -o dir\n",
		progname());
	exit(code);
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100.. in byte order, so every
// byte has a visible one-character token (openai/gpt-2 encoder.py).
static void byte_token(int byte, char out[3])
{
	int printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE);
	int cp = byte;
	if (!printable) {
		int n = 0;   // rank of this byte among the non-printable ones
		for (int b = 0; b < byte; b++)
			if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)))
				n++;
		cp = 256 + n;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = '\0';
	} else {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		out[2] = '\0';
	}
}

static json_t *byte_level(void)
{
	return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
			 "use_regex", 0);
}

// Write ROOT (a tokenizer.json, consumed) to PATH, and take its special tokens into SPECIALS.
static void write_tokenizer_json(const char *path, json_t *root, struct hf_specials *specials)
{
	struct outfile *out = outfile_open(path);
	if (json_dumpf(root, out->fp, JSON_INDENT(2)) != 0)
		die_errno("%s", path);
	fputc('\n', out->fp);
	outfile_commit(out);
	hf_specials_from_json(specials, root, path);
	json_decref(root);
}

// The project's own byte-level tokenizer.json: BPE over the 256 byte characters with no merges, so a text is
// its UTF-8 bytes, plus the specials from id 256.  Returns the number of ids; SPECIALS gets its special tokens.
static int write_byte_tokenizer(const char *path, struct hf_specials *specials)
{
	json_t *vocab = json_object();
	for (int b = 0; b < 256; b++) {
		char tok[3];
		byte_token(b, tok);
		json_object_set_new(vocab, tok, json_integer(b));
	}
	json_t *added = json_array();
	for (int i = 0; i < N_BYTE_SPECIALS; i++)
		json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", 256 + i, "content",
						       byte_specials[i], "single_word", 0, "lstrip", 0, "rstrip", 0,
						       "normalized", 0, "special", 1));
	json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:[]}", "type", "BPE", "dropout",
				  "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
				  "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges");
	json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:n, s:o, s:n, s:o, s:o}", "version", "1.0", "truncation",
				 "padding", "added_tokens", added, "normalizer", "pre_tokenizer", byte_level(),
				 "post_processor", "decoder", byte_level(), "model", model);
	write_tokenizer_json(path, root, specials);
	return 256 + N_BYTE_SPECIALS;
}

#define BPE_CORPUS_MAX (1u << 30)   // --bpe-corpus is read whole: 1 GiB at most

// --bpe-corpus: the byte tokenizer plus BPE merges learned from a corpus (lib/tok_train.h), a vocabulary of
// whole words and pieces that makes a tiny model's sequences several times shorter than bytes.  Ids 0..255
// are the bytes and 256.. the specials, as in the byte tokenizer, then one id per learned token in the order
// learned.  Its pre-tokenizer cuts words apart (GPT-2's regex, ByteLevel's use_regex) and Han characters one
// from another, so no token spans two words or two characters.
// Returns the number of ids; SPECIALS gets its special tokens.
static int write_bpe_tokenizer(const char *path, const char *corpus_path, int max_merges,
			       struct hf_specials *specials)
{
	// Every Han character is a pre-token of its own: Chinese has no spaces, so a merge across characters would
	// spell a word one way inside one run of characters and another way inside the next ("治疗高血压的" vs
	// "高血压患者"), and a tiny model would not recognise it as the same word.
	json_t *words = byte_level();
	json_object_set_new(words, "use_regex", json_true());
	json_t *pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type",
				"Split", "pattern", "Regex", "\\p{Han}", "behavior", "Isolated", "invert", 0, words);
	json_t *root = json_pack("{s:s, s:n, s:n, s:[], s:n, s:o, s:n, s:o, s:n}", "version", "1.0", "truncation",
				 "padding", "added_tokens", "normalizer", "pre_tokenizer", pre,
				 "post_processor", "decoder", byte_level(), "model");
	json_t *added = json_object_get(root, "added_tokens");
	for (int i = 0; i < N_BYTE_SPECIALS; i++)
		json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", 256 + i, "content",
						       byte_specials[i], "single_word", 0, "lstrip", 0, "rstrip", 0,
						       "normalized", 0, "special", 1));
	json_t *vocab = json_object();
	for (int b = 0; b < 256; b++) {
		char tok[3];
		byte_token(b, tok);
		json_object_set_new(vocab, tok, json_integer(b));
	}
	// The specials are in the model's vocabulary too (as LLaMA's tokenizer.json has <s> and </s>): Hugging
	// Face gives an added token that the model lacks the next id after the model's largest, not the id the
	// file states, so with learned tokens after them they would move (tokenizers 0.23).
	for (int i = 0; i < N_BYTE_SPECIALS; i++)
		json_object_set_new(vocab, byte_specials[i], json_integer(256 + i));
	json_t *merges = json_array();
	json_object_set_new(root, "model", json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type",
						      "BPE", "dropout", "unk_token", "continuing_subword_prefix",
						      "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
						      "ignore_merges", 0, "vocab", vocab, "merges", merges));
	// The merges are learned with this same tokenizer, without merges, doing the pre-tokenization.
	struct outfile *first = outfile_open(path);
	if (json_dumpf(root, first->fp, 0) != 0)
		die_errno("%s", path);
	outfile_commit(first);
	struct tokenizer *tok = tokenizer_load(path);
	size_t text_len;
	char *text = infile_read(corpus_path, BPE_CORPUS_MAX, &text_len);
	if (!text)
		die_errno("%s", corpus_path);
	if (!utf8_valid(text, text_len))
		die_data(corpus_path, -1, NULL, "not valid UTF-8");
	struct bpe_merge *learned;
	size_t n = bpe_learn(tok, text, text_len, (size_t)max_merges, 2, &learned);
	int n_ids = 256 + N_BYTE_SPECIALS;
	for (size_t i = 0; i < n; i++) {
		struct bytevec left = {0}, right = {0};
		for (size_t k = 0; k < learned[i].left_len; k++) {
			char c[3];
			byte_token((unsigned char)learned[i].left[k], c);
			bytevec_puts(&left, c);
		}
		for (size_t k = 0; k < learned[i].right_len; k++) {
			char c[3];
			byte_token((unsigned char)learned[i].right[k], c);
			bytevec_puts(&right, c);
		}
		char *pair = xasprintf("%s %s", left.data, right.data);
		json_array_append_new(merges, json_string(pair));
		char *both = xasprintf("%s%s", left.data, right.data);
		if (!json_object_get(vocab, both))   // a string has one id, however many merges spell it
			json_object_set_new(vocab, both, json_integer(n_ids++));
		free(pair);
		free(both);
		free(left.data);
		free(right.data);
	}
	bpe_merges_free(learned, n);
	free(text);
	tokenizer_free(tok);
	write_tokenizer_json(path, root, specials);
	return n_ids;
}

// Copy a tokenizer.json and return its number of ids (largest id in model.vocab or added_tokens, plus one);
// SPECIALS gets its special tokens.
static int copy_tokenizer(const char *src, const char *path, struct hf_specials *specials)
{
	json_error_t err;
	json_t *root = infile_json(src, JSON_REJECT_DUPLICATES, INFILE_MAX_TOKENIZER, &err);
	if (!root)
		die_data(src, -1, NULL, "line %d: %s", err.line, err.text);
	json_int_t max_id = -1;
	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(json_object_get(root, "model"), "vocab"), key, v)
		if (json_integer_value(v) > max_id)
			max_id = json_integer_value(v);
	size_t i;
	json_array_foreach(json_object_get(root, "added_tokens"), i, v)
		if (json_integer_value(json_object_get(v, "id")) > max_id)
			max_id = json_integer_value(json_object_get(v, "id"));
	hf_specials_from_json(specials, root, src);
	json_decref(root);
	if (max_id < 0)
		die_data(src, -1, "model.vocab", "no token ids found");
	if (max_id >= MODEL_MAX_VOCAB)   // checked before it becomes the int vocab_size
		die_data(src, -1, "model.vocab", "id %lld is over the vocabulary limit %d", (long long)max_id, MODEL_MAX_VOCAB);
	FILE *in = infile_fopen(src);
	if (!in)
		die_errno("%s", src);
	struct outfile *out = outfile_open(path);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		fwrite(buf, 1, n, out->fp);
	if (ferror(in))
		die_errno("%s", src);
	fclose(in);
	outfile_commit(out);
	return (int)max_id + 1;
}

static void write_config(const char *path, const struct model_config *c, const char *dtype,
			 const struct hf_specials *specials)
{
	json_t *root = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:s, s:b, s:s}",
				 "architectures", model_arch_name(c->arch), "model_type", model_arch_type(c->arch),
				 "hidden_size", c->hidden, "intermediate_size", c->ffn, "num_hidden_layers",
				 c->n_layers, "num_attention_heads", c->n_heads, "num_key_value_heads", c->n_kv_heads,
				 "head_dim", c->head_dim, "vocab_size", c->vocab, "max_position_embeddings",
				 c->max_positions, "rms_norm_eps", 1e-6, "rope_theta", c->rope_theta,
				 "tie_word_embeddings", c->tie_embeddings, "hidden_act", "silu", "attention_bias", 0,
				 "torch_dtype", dtype);
	if (c->arch != ARCH_LLAMA)
		json_object_set_new(root, "use_sliding_window", json_false());
	hf_config_set_specials(root, specials, 0);
	struct outfile *out = outfile_open(path);
	if (json_dumpf(root, out->fp, JSON_INDENT(2)) != 0)
		die_errno("%s", path);
	fputc('\n', out->fp);
	outfile_commit(out);
	json_decref(root);
}

// Random weights as transformers initialises them (_init_weights: normal(0, initializer_range = 0.02) for
// linears and the embedding, zero biases, RMSNorm weights 1), drawn tensor by tensor in the order written.
// The standard deviation of the normal draws: transformers' initializer_range by default; --init-std makes a
// base whose logits are large enough for a training test to reach a low loss.
static double init_std = 0.02;

// Normal draws take the generator's outputs in order (cheap) and transform them (log, cos: most of the time)
// on every core, a chunk at a time: the same values as calling rng_normal n times, so that a 7B-shaped
// checkpoint for bench/gpu.sh takes seconds of transforms instead of minutes.
static float *fill(struct rng *r, size_t n, int kind)
{
	float *x = xmalloc(n * sizeof(float));
	if (kind != 'n') {
		for (size_t i = 0; i < n; i++)
			x[i] = kind == '1' ? 1.0f : 0.0f;
		return x;
	}
	enum { CHUNK = 1 << 20 };
	uint64_t *raw = xmalloc(2 * sizeof(uint64_t) * (n < CHUNK ? n : CHUNK));
	for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
		size_t m = n - c0 < CHUNK ? n - c0 : CHUNK;
		for (size_t i = 0; i < 2 * m; i++)
			raw[i] = rng_next(r);
#pragma omp parallel for schedule(static) if (m >= 65536)
		for (size_t i = 0; i < m; i++)
			x[c0 + i] = (float)(init_std * rng_normal_of(raw[2 * i], raw[2 * i + 1]));
	}
	free(raw);
	return x;
}

struct tensors {
	float **data;
	size_t n;
};

static void add(struct st_writer *w, struct tensors *keep, struct rng *r, enum st_dtype dt, const char *name,
		int kind, int64_t d0, int64_t d1)
{
	int64_t shape[2] = {d0, d1};
	float *x = fill(r, (size_t)(d0 * (d1 ? d1 : 1)), kind);
	keep->data = xrealloc(keep->data, (keep->n + 1) * sizeof *keep->data);
	keep->data[keep->n++] = x;
	st_writer_add(w, name, dt, d1 ? 2 : 1, shape, x);
}

static void write_weights(const char *path, const struct model_config *c, uint64_t seed, enum st_dtype dt)
{
	struct rng r;
	rng_seed(&r, seed, 0);
	struct st_writer *w = st_writer_new();
	st_writer_metadata(w, "format", "pt");   // what transformers writes and expects
	struct tensors keep = {0};
	int64_t C = c->hidden, F = c->ffn, V = c->vocab, HD = c->head_dim;
	int64_t QD = (int64_t)c->n_heads * HD, KD = (int64_t)c->n_kv_heads * HD;
	add(w, &keep, &r, dt, "model.embed_tokens.weight", 'n', V, C);
	char name[128];
	for (int l = 0; l < c->n_layers; l++) {
#define ADD(suffix, kind, d0, d1)                                                  \
	do {                                                                        \
		snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);       \
		add(w, &keep, &r, dt, name, kind, d0, d1);                          \
	} while (0)
		ADD("input_layernorm.weight", '1', C, 0);
		ADD("self_attn.q_proj.weight", 'n', QD, C);
		ADD("self_attn.k_proj.weight", 'n', KD, C);
		ADD("self_attn.v_proj.weight", 'n', KD, C);
		if (c->qkv_bias) {
			ADD("self_attn.q_proj.bias", '0', QD, 0);
			ADD("self_attn.k_proj.bias", '0', KD, 0);
			ADD("self_attn.v_proj.bias", '0', KD, 0);
		}
		ADD("self_attn.o_proj.weight", 'n', C, QD);
		if (c->qk_norm) {
			ADD("self_attn.q_norm.weight", '1', HD, 0);
			ADD("self_attn.k_norm.weight", '1', HD, 0);
		}
		ADD("post_attention_layernorm.weight", '1', C, 0);
		ADD("mlp.gate_proj.weight", 'n', F, C);
		ADD("mlp.up_proj.weight", 'n', F, C);
		ADD("mlp.down_proj.weight", 'n', C, F);
#undef ADD
	}
	add(w, &keep, &r, dt, "model.norm.weight", '1', C, 0);
	if (!c->tie_embeddings)
		add(w, &keep, &r, dt, "lm_head.weight", 'n', V, C);
	st_writer_write(w, path);
	for (size_t i = 0; i < keep.n; i++)
		free(keep.data[i]);
	free(keep.data);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"arch", required_argument, NULL, 'a'},     {"layers", required_argument, NULL, 'L'},
		{"hidden", required_argument, NULL, 'C'},   {"heads", required_argument, NULL, 'H'},
		{"kv-heads", required_argument, NULL, 'K'}, {"ffn", required_argument, NULL, 'F'},
		{"vocab", required_argument, NULL, 'v'},    {"head-dim", required_argument, NULL, 'D'},
		{"tied", no_argument, NULL, 't'},           {"seed", required_argument, NULL, 's'},
		{"init-std", required_argument, NULL, 'I'},
		{"dtype", required_argument, NULL, 'd'},    {"tokenizer", required_argument, NULL, 'T'},
		{"force", no_argument, NULL, 'f'},          {"output", required_argument, NULL, 'o'},
		{"bpe-corpus", required_argument, NULL, 'B'}, {"bpe-merges", required_argument, NULL, 'M'},
		{"help", no_argument, NULL, 'h'},           {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct model_config c = {.n_layers = 2, .hidden = 64, .n_heads = 4, .rms_eps = 1e-6f, .max_positions = 2048};
	const char *arch = NULL, *output = NULL, *tokenizer = "bytes", *bpe_corpus = NULL;
	int bpe_merges = 2000;
	int kv_heads = 0, ffn = 0, vocab = 0, head_dim = 0, force = 0;
	uint64_t seed = 0;
	enum st_dtype dtype = ST_F32;
	int ch;

	set_progname(argv[0]);
	while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a': arch = optarg; break;
		case 'L': c.n_layers = (int)cli_int("--layers", optarg, 1, 1 << 20); break;
		case 'C': c.hidden = (int)cli_int("--hidden", optarg, 1, 1 << 20); break;
		case 'H': c.n_heads = (int)cli_int("--heads", optarg, 1, 1 << 20); break;
		case 'K': kv_heads = (int)cli_int("--kv-heads", optarg, 1, 1 << 20); break;
		case 'F': ffn = (int)cli_int("--ffn", optarg, 1, 1 << 20); break;
		case 'v': vocab = (int)cli_int("--vocab", optarg, 1, 1 << 20); break;
		case 'D': head_dim = (int)cli_int("--head-dim", optarg, 1, 1 << 20); break;
		case 't': c.tie_embeddings = 1; break;
		case 's': {
			char *end;
			seed = strtoull(optarg, &end, 10);
			if (*end || end == optarg)
				die(EXIT_USAGE, "--seed: not a number: %s", optarg);
			break;
		}
		case 'I': {
			char *end;
			init_std = strtod(optarg, &end);
			if (*end || end == optarg || !(init_std > 0 && init_std < 100))
				die(EXIT_USAGE, "--init-std: not a positive number: %s", optarg);
			break;
		}
		case 'd':
			if (strcmp(optarg, "f32") == 0)
				dtype = ST_F32;
			else if (strcmp(optarg, "bf16") == 0)
				dtype = ST_BF16;
			else
				die(EXIT_USAGE, "--dtype: %s is not f32 or bf16", optarg);
			break;
		case 'T': tokenizer = optarg; break;
		case 'f': force = 1; break;
		case 'B': bpe_corpus = optarg; break;
		case 'M': bpe_merges = (int)cli_int("--bpe-merges", optarg, 0, 1 << 20); break;
		case 'o': output = optarg; break;
		case 'h': usage(stdout, EXIT_OK);
		case 'V': printf("init-base %s\n", MEDMOE_VERSION); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	if (optind != argc || !arch || !output)
		usage(stderr, EXIT_USAGE);
	if (strcmp(arch, "llama") == 0)
		c.arch = ARCH_LLAMA;
	else if (strcmp(arch, "qwen2") == 0)
		c.arch = ARCH_QWEN2;
	else if (strcmp(arch, "qwen3") == 0)
		c.arch = ARCH_QWEN3;
	else
		die(EXIT_USAGE, "--arch: %s is not llama, qwen2 or qwen3", arch);
	c.n_kv_heads = kv_heads ? kv_heads : (c.n_heads % 2 == 0 ? c.n_heads / 2 : c.n_heads);
	if (c.n_heads % c.n_kv_heads != 0)
		die(EXIT_USAGE, "--kv-heads %d does not divide --heads %d", c.n_kv_heads, c.n_heads);
	c.head_dim = head_dim ? head_dim : c.hidden / c.n_heads;
	if (c.head_dim == 0 || c.head_dim % 2 != 0)
		die(EXIT_USAGE, "head dim %d must be even and positive (--hidden / --heads, or --head-dim)", c.head_dim);
	c.ffn = ffn ? ffn : 2 * c.hidden;
	c.qkv_bias = c.arch == ARCH_QWEN2;   // Qwen2's q/k/v always carry biases
	c.qk_norm = c.arch == ARCH_QWEN3;
	c.rope_theta = c.arch == ARCH_LLAMA ? 10000.0 : 1000000.0;

	struct outdir *dir = outdir_open(output, force);
	char *tok_path = xasprintf("%s/tokenizer.json", dir->tmp_path);
	int bytes = strcmp(tokenizer, "bytes") == 0;
	if (bpe_corpus && !bytes)
		die(EXIT_USAGE, "--bpe-corpus learns merges over the byte tokenizer; it does not go with --tokenizer FILE");
	struct hf_specials specials;
	int n_ids = bpe_corpus ? write_bpe_tokenizer(tok_path, bpe_corpus, bpe_merges, &specials)
		  : bytes ? write_byte_tokenizer(tok_path, &specials) : copy_tokenizer(tokenizer, tok_path, &specials);
	c.vocab = vocab ? vocab : n_ids;
	if (c.vocab < n_ids)
		die(EXIT_USAGE, "--vocab %d is smaller than the tokenizer's %d ids", c.vocab, n_ids);
	char *config_path = xasprintf("%s/config.json", dir->tmp_path);
	char *weights_path = xasprintf("%s/model.safetensors", dir->tmp_path);
	write_config(config_path, &c, dtype == ST_F32 ? "float32" : "bfloat16", &specials);
	write_weights(weights_path, &c, seed, dtype);
	char *tok_config_path = xasprintf("%s/tokenizer_config.json", dir->tmp_path);
	char *gen_config_path = xasprintf("%s/generation_config.json", dir->tmp_path);
	hf_write_tokenizer_config(tok_config_path, &specials, c.max_positions);
	hf_write_generation_config(gen_config_path, &specials);
	outdir_commit(dir);
	hf_specials_free(&specials);
	free(tok_config_path);
	free(gen_config_path);
	free(tok_path);
	free(config_path);
	free(weights_path);
	close_stdout_or_die();
	return 0;
}
