// hf_specials.c — special tokens from a tokenizer.json and the files that name them (rules in hf_specials.h).
#include "hf_specials.h"

#include <string.h>

#include "die.h"
#include "infile.h"
#include "outfile.h"

// End-of-text and end-of-turn tokens of the families medmoe loads, in the order the eos is chosen.
static const char *const end_tokens[] = {
	"<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<|eot_id|>", "<|end|>",
};

// The id of token TEXT: an added token, else (unless ADDED_ONLY) a vocab entry; -1 when neither.
static int64_t token_id(const json_t *root, const char *text, int added_only)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(root, "added_tokens"), i, t) {
		const char *content = json_string_value(json_object_get(t, "content"));
		if (content && !strcmp(content, text) && json_is_integer(json_object_get(t, "id")))
			return json_integer_value(json_object_get(t, "id"));
	}
	if (added_only)
		return -1;
	json_t *v = json_object_get(json_object_get(json_object_get(root, "model"), "vocab"), text);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static void set_token(struct hf_token *tok, const json_t *root, const char *text)
{
	int64_t id = text ? token_id(root, text, 0) : -1;
	if (id < 0)
		return;
	free(tok->text);
	tok->text = xstrdup(text);
	tok->id = id;
}

// The special token a TemplateProcessing puts before the single sequence, or NULL.
static const char *template_bos(const json_t *proc)
{
	const char *type = json_string_value(json_object_get(proc, "type"));
	if (!type)
		return NULL;
	if (!strcmp(type, "Sequence")) {
		size_t i;
		json_t *p;
		json_array_foreach(json_object_get(proc, "processors"), i, p) {
			const char *b = template_bos(p);
			if (b)
				return b;
		}
		return NULL;
	}
	if (strcmp(type, "TemplateProcessing"))
		return NULL;
	json_t *first = json_array_get(json_object_get(proc, "single"), 0);
	return json_string_value(json_object_get(json_object_get(first, "SpecialToken"), "id"));
}

void hf_specials_from_json(struct hf_specials *s, const json_t *root, const char *file)
{
	memset(s, 0, sizeof *s);
	s->bos.id = s->eos.id = s->pad.id = s->unk.id = -1;
	set_token(&s->bos, root, template_bos(json_object_get(root, "post_processor")));
	for (size_t i = 0; i < sizeof end_tokens / sizeof end_tokens[0]; i++) {
		// added tokens only: "</s>" is an ordinary vocab entry in Qwen's vocabulary
		int64_t id = token_id(root, end_tokens[i], 1);
		if (id < 0)
			continue;
		if (s->eos.id < 0)
			set_token(&s->eos, root, end_tokens[i]);
		if (s->n_end < HF_MAX_END)
			s->end[s->n_end++] = id;
	}
	set_token(&s->pad, root, json_string_value(json_object_get(json_object_get(root, "padding"), "pad_token")));
	if (s->pad.id < 0 && s->eos.id >= 0)
		set_token(&s->pad, root, s->eos.text);
	set_token(&s->unk, root, json_string_value(json_object_get(json_object_get(root, "model"), "unk_token")));
	if (s->eos.id < 0)
		warnx("%s: no end-of-text token (%s, %s, ...): generate will run to its length limit", file,
		      end_tokens[0], end_tokens[1]);
}

void hf_specials_load(struct hf_specials *s, const char *path)
{
	json_error_t err;
	json_t *root = infile_json(path, 0, INFILE_MAX_TOKENIZER, &err);   // regular files only, bounded
	if (!root)
		die_data(path, -1, NULL, "line %d: %s", err.line, err.text);
	hf_specials_from_json(s, root, path);
	json_decref(root);
}

void hf_specials_free(struct hf_specials *s)
{
	free(s->bos.text);
	free(s->eos.text);
	free(s->pad.text);
	free(s->unk.text);
	memset(s, 0, sizeof *s);
}

static json_t *id_or_null(int64_t id) { return id >= 0 ? json_integer(id) : json_null(); }
static json_t *text_or_null(const struct hf_token *t) { return t->text ? json_string(t->text) : json_null(); }

static void set_id(json_t *config, const char *key, int64_t id, int only_missing)
{
	json_t *old = json_object_get(config, key);
	if (only_missing && old && !json_is_null(old))
		return;
	json_object_set_new(config, key, id_or_null(id));
}

void hf_config_set_specials(json_t *config, const struct hf_specials *s, int only_missing)
{
	set_id(config, "bos_token_id", s->bos.id >= 0 ? s->bos.id : s->eos.id, only_missing);
	set_id(config, "eos_token_id", s->eos.id, only_missing);
	set_id(config, "pad_token_id", s->pad.id, only_missing);
}

static void write_json(const char *path, json_t *root)
{
	struct outfile *out = outfile_open(path);
	if (json_dumpf(root, out->fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
		die_errno("%s", path);
	fputc('\n', out->fp);
	outfile_commit(out);
	json_decref(root);
}

void hf_write_tokenizer_config(const char *path, const struct hf_specials *s, int64_t max_length)
{
	json_t *root = json_object();
	json_object_set_new(root, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
	json_object_set_new(root, "bos_token", text_or_null(&s->bos));
	json_object_set_new(root, "eos_token", text_or_null(&s->eos));
	json_object_set_new(root, "pad_token", text_or_null(&s->pad));
	json_object_set_new(root, "unk_token", text_or_null(&s->unk));
	json_object_set_new(root, "model_max_length", json_integer(max_length));
	json_object_set_new(root, "clean_up_tokenization_spaces", json_false());
	write_json(path, root);
}

void hf_write_generation_config(const char *path, const struct hf_specials *s)
{
	json_t *root = json_object();
	json_object_set_new(root, "bos_token_id", id_or_null(s->bos.id >= 0 ? s->bos.id : s->eos.id));
	if (s->n_end > 1) {
		json_t *ends = json_array();
		for (int i = 0; i < s->n_end; i++)
			json_array_append_new(ends, json_integer(s->end[i]));
		json_object_set_new(root, "eos_token_id", ends);
	} else {
		json_object_set_new(root, "eos_token_id", id_or_null(s->eos.id));
	}
	json_object_set_new(root, "pad_token_id", id_or_null(s->pad.id));
	json_object_set_new(root, "do_sample", json_false());
	write_json(path, root);
}
