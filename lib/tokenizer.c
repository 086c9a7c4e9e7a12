// tokenizer.c — loading a Hugging Face tokenizer.json, the encode pipeline, and the accessors.
// The pipeline stages live in tok_added.c, tok_normalize.c, tok_pretokenize.c, tok_bpe.c and
// tok_decode.c; tok_internal.h describes how they fit together.
#include <jansson.h>
#include <pthread.h>
#include <sha2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "die.h"
#include "infile.h"
#include "tok_internal.h"

// GPT-2's pre-tokenizer regex, used by ByteLevel when use_regex is true (HF pre_tokenizers/byte_level.rs).
static const char gpt2_regex[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static atomic_uint_fast64_t next_serial = 1;

// Ids index dense tables, so a stray huge id would be a huge allocation; real vocabularies have at
// most a few hundred thousand entries.
enum { MAX_IDS = 1 << 24 };

static int metaspace_split_safe(const struct tokenizer *tok);

// ---- JSON access with errors naming the file and the field ----

struct loader {
	struct tokenizer *tok;
	const char *file;
};

// OBJ[KEY] of type WANT (JSON_TRUE stands for either boolean); NULL when absent or null and OPTIONAL.
static json_t *member(struct loader *ld, json_t *obj, const char *path, const char *key, json_type want,
		      int optional)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		if (optional)
			return NULL;
		die_data(ld->file, -1, path, "missing \"%s\"", key);
	}
	if (json_typeof(v) != want && !(want == JSON_TRUE && json_is_boolean(v)))
		die_data(ld->file, -1, path, "\"%s\" has the wrong JSON type", key);
	return v;
}

static const char *str_member(struct loader *ld, json_t *obj, const char *path, const char *key, int optional)
{
	json_t *v = member(ld, obj, path, key, JSON_STRING, optional);
	return v ? json_string_value(v) : NULL;
}

static int bool_member(struct loader *ld, json_t *obj, const char *path, const char *key, int dflt)
{
	json_t *v = member(ld, obj, path, key, JSON_TRUE, 1);
	return v ? json_is_true(v) : dflt;
}

static json_int_t int_member(struct loader *ld, json_t *obj, const char *path, const char *key, json_int_t dflt)
{
	json_t *v = member(ld, obj, path, key, JSON_INTEGER, 1);
	return v ? json_integer_value(v) : dflt;
}

static const char *type_of(struct loader *ld, json_t *obj, const char *path)
{
	if (!json_is_object(obj))
		die_data(ld->file, -1, path, "not a JSON object");
	char *field = xasprintf("%s.type", path);
	json_t *t = json_object_get(obj, "type");
	if (!json_is_string(t))
		die_data(ld->file, -1, field, "missing");
	free(field);
	return json_string_value(t);
}

static noreturn void unsupported(struct loader *ld, const char *path, const char *type)
{
	char *field = xasprintf("%s.type", path);
	die_data(ld->file, -1, field, "unsupported \"%s\"", type);
}

// A {"String": s} or {"Regex": r} pattern.
static void parse_pattern(struct loader *ld, json_t *obj, const char *path, struct tok_pattern *p)
{
	char *field = xasprintf("%s.pattern", path);
	json_t *pat = member(ld, obj, path, "pattern", JSON_OBJECT, 0);
	json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
	if (json_is_string(s))
		tok_pattern_literal(p, json_string_value(s), json_string_length(s));
	else if (json_is_string(r))
		tok_pattern_regex(p, json_string_value(r), ld->file, field);
	else
		die_data(ld->file, -1, field, "neither a \"String\" nor a \"Regex\"");
	free(field);
}

static char *dup_json_string(json_t *s, size_t *len)
{
	*len = json_string_length(s);
	char *out = xmalloc(*len + 1);
	memcpy(out, json_string_value(s), *len);
	out[*len] = '\0';
	return out;
}

// ---- normalizer, pre-tokenizer, decoder: nested Sequences flattened into step arrays ----

// Metaspace's replacement (one character) and prepend_scheme, as HF deserializes them (pre_tokenizers/
// metaspace.rs): prepend_scheme "always" unless given; the older add_prefix_space, when false, must come with
// "never" (HF refuses the file otherwise).
static void parse_metaspace(struct loader *ld, json_t *obj, const char *path, char **rep, size_t *rep_len,
			    enum prepend_scheme *prepend)
{
	static const char *const schemes[] = { "always", "first", "never" };
	*rep = dup_json_string(member(ld, obj, path, "replacement", JSON_STRING, 0), rep_len);
	size_t n;
	if (*rep_len == 0 || !utf8_valid(*rep, *rep_len) || (utf8_decode((const unsigned char *)*rep, *rep_len, &n),
							      n != *rep_len)) {
		char *field = xasprintf("%s.replacement", path);
		die_data(ld->file, -1, field, "not one character");
	}
	const char *scheme = str_member(ld, obj, path, "prepend_scheme", 1);
	*prepend = PREPEND_ALWAYS;
	if (scheme) {
		size_t k = 0;
		while (k < 3 && strcmp(scheme, schemes[k]) != 0)
			k++;
		if (k == 3) {
			char *field = xasprintf("%s.prepend_scheme", path);
			die_data(ld->file, -1, field, "unsupported \"%s\"", scheme);
		}
		*prepend = (enum prepend_scheme)k;
	}
	if (!bool_member(ld, obj, path, "add_prefix_space", 1) && *prepend != PREPEND_NEVER) {
		char *field = xasprintf("%s.add_prefix_space", path);
		die_data(ld->file, -1, field, "false does not match prepend_scheme \"%s\"", schemes[*prepend]);
	}
}

static void parse_normalizer(struct loader *ld, json_t *obj, const char *path)
{
	struct tokenizer *tok = ld->tok;
	const char *type = type_of(ld, obj, path);
	if (strcmp(type, "Sequence") == 0) {
		json_t *list = member(ld, obj, path, "normalizers", JSON_ARRAY, 0);
		for (size_t i = 0; i < json_array_size(list); i++) {
			char *sub = xasprintf("%s.normalizers[%zu]", path, i);
			parse_normalizer(ld, json_array_get(list, i), sub);
			free(sub);
		}
		return;
	}
	struct norm_step st = { 0 };
	if (strcmp(type, "NFC") == 0)
		st.type = NORM_NFC;
	else if (strcmp(type, "NFKC") == 0)
		st.type = NORM_NFKC;
	else if (strcmp(type, "NFD") == 0)
		st.type = NORM_NFD;
	else if (strcmp(type, "NFKD") == 0)
		st.type = NORM_NFKD;
	else if (strcmp(type, "Prepend") == 0) {
		st.type = NORM_PREPEND;
		st.text = dup_json_string(member(ld, obj, path, "prepend", JSON_STRING, 0), &st.text_len);
	} else if (strcmp(type, "Replace") == 0) {
		st.type = NORM_REPLACE;
		parse_pattern(ld, obj, path, &st.pattern);
		st.text = dup_json_string(member(ld, obj, path, "content", JSON_STRING, 0), &st.text_len);
	} else if (strcmp(type, "Strip") == 0) {
		st.type = NORM_STRIP;
		st.strip_left = bool_member(ld, obj, path, "strip_left", 1);
		st.strip_right = bool_member(ld, obj, path, "strip_right", 1);
	} else
		unsupported(ld, path, type);
	tok->norm = xrealloc(tok->norm, (tok->n_norm + 1) * sizeof *tok->norm);
	tok->norm[tok->n_norm++] = st;
}

static void parse_pretokenizer(struct loader *ld, json_t *obj, const char *path)
{
	struct tokenizer *tok = ld->tok;
	const char *type = type_of(ld, obj, path);
	if (strcmp(type, "Sequence") == 0) {
		json_t *list = member(ld, obj, path, "pretokenizers", JSON_ARRAY, 0);
		for (size_t i = 0; i < json_array_size(list); i++) {
			char *sub = xasprintf("%s.pretokenizers[%zu]", path, i);
			parse_pretokenizer(ld, json_array_get(list, i), sub);
			free(sub);
		}
		return;
	}
	struct pretok_step st = { 0 };
	if (strcmp(type, "Split") == 0) {
		static const char *const names[] = { "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
						     "Contiguous" };
		st.type = PRETOK_SPLIT;
		parse_pattern(ld, obj, path, &st.pattern);
		const char *behavior = str_member(ld, obj, path, "behavior", 0);
		size_t b = 0;
		while (b < 5 && strcmp(behavior, names[b]) != 0)
			b++;
		if (b == 5) {
			char *field = xasprintf("%s.behavior", path);
			die_data(ld->file, -1, field, "unsupported \"%s\"", behavior);
		}
		st.behavior = (enum split_behavior)b;
		st.invert = bool_member(ld, obj, path, "invert", 0);
	} else if (strcmp(type, "ByteLevel") == 0) {
		st.type = PRETOK_BYTELEVEL;
		st.add_prefix_space = bool_member(ld, obj, path, "add_prefix_space", 1);
		st.use_regex = bool_member(ld, obj, path, "use_regex", 1);
		st.behavior = SPLIT_ISOLATED;
		if (st.use_regex)
			tok_pattern_regex(&st.pattern, gpt2_regex, ld->file, path);
	} else if (strcmp(type, "Metaspace") == 0) {
		st.type = PRETOK_METASPACE;
		parse_metaspace(ld, obj, path, &st.replacement, &st.replacement_len, &st.prepend);
		st.split = bool_member(ld, obj, path, "split", 1);
		st.behavior = SPLIT_MERGED_NEXT;
		tok_pattern_literal(&st.pattern, st.replacement, st.replacement_len);
	} else
		unsupported(ld, path, type);
	tok->pretok = xrealloc(tok->pretok, (tok->n_pretok + 1) * sizeof *tok->pretok);
	tok->pretok[tok->n_pretok++] = st;
}

static void parse_decoder(struct loader *ld, json_t *obj, const char *path)
{
	struct tokenizer *tok = ld->tok;
	const char *type = type_of(ld, obj, path);
	if (strcmp(type, "Sequence") == 0) {
		json_t *list = member(ld, obj, path, "decoders", JSON_ARRAY, 0);
		for (size_t i = 0; i < json_array_size(list); i++) {
			char *sub = xasprintf("%s.decoders[%zu]", path, i);
			parse_decoder(ld, json_array_get(list, i), sub);
			free(sub);
		}
		return;
	}
	struct dec_step st = { 0 };
	if (strcmp(type, "ByteLevel") == 0)
		st.type = DEC_BYTELEVEL;
	else if (strcmp(type, "Replace") == 0) {
		st.type = DEC_REPLACE;
		parse_pattern(ld, obj, path, &st.pattern);
		st.text = dup_json_string(member(ld, obj, path, "content", JSON_STRING, 0), &st.text_len);
	} else if (strcmp(type, "ByteFallback") == 0)
		st.type = DEC_BYTEFALLBACK;
	else if (strcmp(type, "Fuse") == 0)
		st.type = DEC_FUSE;
	else if (strcmp(type, "Metaspace") == 0) {
		st.type = DEC_METASPACE;
		parse_metaspace(ld, obj, path, &st.text, &st.text_len, &st.prepend);
	}
	else if (strcmp(type, "Strip") == 0) {
		st.type = DEC_STRIP;
		st.text = dup_json_string(member(ld, obj, path, "content", JSON_STRING, 0), &st.text_len);
		json_int_t start = int_member(ld, obj, path, "start", 0), stop = int_member(ld, obj, path, "stop", 0);
		if (start < 0 || stop < 0)
			die_data(ld->file, -1, path, "negative start or stop");
		st.strip_start = (size_t)start;
		st.strip_stop = (size_t)stop;
	} else
		unsupported(ld, path, type);
	tok->dec = xrealloc(tok->dec, (tok->n_dec + 1) * sizeof *tok->dec);
	tok->dec[tok->n_dec++] = st;
}

// ---- model ----

static char *arena_dup(struct tokenizer *tok, const char *s, size_t len)
{
	if (tok->n_arena % 1024 == 0)
		tok->arena = xrealloc(tok->arena, (tok->n_arena + 1024) * sizeof *tok->arena);
	char *d = xmalloc(len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	tok->arena[tok->n_arena++] = d;
	return d;
}

static uint32_t vocab_id(struct loader *ld, const char *tokstr, size_t len, const char *field)
{
	int64_t id = strmap_get(&ld->tok->vocab, tokstr, len);
	if (id < 0)
		die_data(ld->file, -1, field, "token \"%.*s\" is not in the vocabulary", (int)len, tokstr);
	return (uint32_t)id;
}

static void parse_merges(struct loader *ld, json_t *merges)
{
	struct tokenizer *tok = ld->tok;
	size_t n = json_array_size(merges);
	struct bytevec joined = { 0 };
	mergemap_init(&tok->merges, n);
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_array_get(merges, i);
		char field[64];
		snprintf(field, sizeof field, "model.merges[%zu]", i);
		const char *a, *b;
		size_t alen, blen;
		if (json_is_string(m)) {  // legacy "a b": exactly one space (HF serialization.rs)
			const char *s = json_string_value(m);
			const char *sp = strchr(s, ' ');
			if (!sp || strchr(sp + 1, ' '))
				die_data(ld->file, -1, field, "not two tokens separated by one space");
			a = s;
			alen = (size_t)(sp - s);
			b = sp + 1;
			blen = json_string_length(m) - alen - 1;
		} else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
			   json_is_string(json_array_get(m, 1))) {
			a = json_string_value(json_array_get(m, 0));
			alen = json_string_length(json_array_get(m, 0));
			b = json_string_value(json_array_get(m, 1));
			blen = json_string_length(json_array_get(m, 1));
		} else
			die_data(ld->file, -1, field, "neither a \"a b\" string nor a pair of strings");
		// The merged token is a + b without b's continuing-subword prefix (HF BpeBuilder::build cuts
		// prefix_len bytes off b).
		size_t cut = tok->subword_prefix ? strlen(tok->subword_prefix) : 0;
		if (blen < cut)
			die_data(ld->file, -1, field, "\"%s\" is shorter than the continuing_subword_prefix", b);
		joined.len = 0;
		bytevec_append(&joined, a, alen);
		bytevec_append(&joined, b + cut, blen - cut);
		uint32_t left = vocab_id(ld, a, alen, field), right = vocab_id(ld, b, blen, field);
		uint32_t merged = vocab_id(ld, joined.data, joined.len, field);
		mergemap_put(&tok->merges, left, right, (uint32_t)i, merged);
	}
	free(joined.data);
}

static void parse_model(struct loader *ld, json_t *model)
{
	struct tokenizer *tok = ld->tok;
	if (!json_is_object(model))
		die_data(ld->file, -1, "model", "missing or not a JSON object");
	json_t *type = json_object_get(model, "type");
	if (type && !json_is_string(type))
		die_data(ld->file, -1, "model.type", "not a string");
	if (type && strcmp(json_string_value(type), "BPE") != 0)
		unsupported(ld, "model", json_string_value(type));
	json_t *dropout = json_object_get(model, "dropout");
	if (json_is_number(dropout) && json_number_value(dropout) > 0)
		die_data(ld->file, -1, "model.dropout", "BPE dropout is not supported (encoding must be deterministic)");

	json_t *vocab = member(ld, model, "model", "vocab", JSON_OBJECT, 0);
	strmap_init(&tok->vocab, json_object_size(vocab));
	const char *key;
	json_t *val;
	uint32_t max_id = 0;
	json_object_foreach(vocab, key, val) {
		if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= MAX_IDS)
			die_data(ld->file, -1, "model.vocab", "token \"%s\": id is not an integer in [0, %d)", key,
				 MAX_IDS);
		uint32_t id = (uint32_t)json_integer_value(val);
		char *s = arena_dup(tok, key, strlen(key));
		strmap_put(&tok->vocab, s, strlen(s), id);
		if (id + 1 > max_id)
			max_id = id + 1;
	}
	tok->n_ids = max_id;
	const char *prefix = str_member(ld, model, "model", "continuing_subword_prefix", 1);
	const char *suffix = str_member(ld, model, "model", "end_of_word_suffix", 1);
	tok->subword_prefix = prefix && *prefix ? xstrdup(prefix) : NULL;
	tok->word_suffix = suffix && *suffix ? xstrdup(suffix) : NULL;
	parse_merges(ld, member(ld, model, "model", "merges", JSON_ARRAY, 0));

	const char *unk = str_member(ld, model, "model", "unk_token", 1);
	tok->unk_id = unk ? (int64_t)vocab_id(ld, unk, strlen(unk), "model.unk_token") : -1;
	tok->fuse_unk = bool_member(ld, model, "model", "fuse_unk", 0);
	tok->byte_fallback = bool_member(ld, model, "model", "byte_fallback", 0);
	tok->ignore_merges = bool_member(ld, model, "model", "ignore_merges", 0);

	const struct byte_level_table *bl = byte_level();
	for (int b = 0; b < 256; b++) {
		char hex[8];
		snprintf(hex, sizeof hex, "<0x%02X>", b);
		tok->byte_token[b] = strmap_get(&tok->vocab, hex, strlen(hex));
		tok->byte_level_id[b] = strmap_get(&tok->vocab, bl->str[b], bl->len[b]);
	}
}

static void parse_added(struct loader *ld, json_t *list)
{
	struct tokenizer *tok = ld->tok;
	if (!list)
		return;
	tok->added = xcalloc(json_array_size(list) + 1, sizeof *tok->added);
	for (size_t i = 0; i < json_array_size(list); i++) {
		char path[64];
		snprintf(path, sizeof path, "added_tokens[%zu]", i);
		json_t *o = json_array_get(list, i);
		if (!json_is_object(o))
			die_data(ld->file, -1, path, "not a JSON object");
		struct added_token *t = &tok->added[tok->n_added++];
		json_int_t id = int_member(ld, o, path, "id", -1);
		if (id < 0 || id >= MAX_IDS)
			die_data(ld->file, -1, path, "missing \"id\", or not an integer in [0, %d)", MAX_IDS);
		t->id = (uint32_t)id;
		t->content = dup_json_string(member(ld, o, path, "content", JSON_STRING, 0), &t->len);
		t->special = bool_member(ld, o, path, "special", 0);
		t->single_word = bool_member(ld, o, path, "single_word", 0);
		t->lstrip = bool_member(ld, o, path, "lstrip", 0);
		t->rstrip = bool_member(ld, o, path, "rstrip", 0);
		t->normalized = bool_member(ld, o, path, "normalized", !t->special);  // HF's default
		if (t->id + 1 > tok->n_ids)
			tok->n_ids = t->id + 1;
	}
}

// The id table and the token-string map over the vocab and the added tokens (added content wins).
static void build_tables(struct tokenizer *tok)
{
	tok->id_str = xcalloc(tok->n_ids ? tok->n_ids : 1, sizeof *tok->id_str);
	tok->id_len = xcalloc(tok->n_ids ? tok->n_ids : 1, sizeof *tok->id_len);
	tok->id_special = xcalloc(tok->n_ids ? tok->n_ids : 1, 1);
	strmap_init(&tok->all_tokens, tok->vocab.count + tok->n_added);
	for (size_t i = 0; i <= tok->vocab.mask; i++) {
		const struct strmap_slot *s = &tok->vocab.slots[i];
		if (!s->key)
			continue;
		tok->id_str[s->val] = (char *)s->key;
		tok->id_len[s->val] = s->len;
		strmap_put(&tok->all_tokens, s->key, s->len, s->val);
	}
	for (size_t i = 0; i < tok->n_added; i++) {
		struct added_token *t = &tok->added[i];
		char *s = arena_dup(tok, t->content, t->len);
		tok->id_str[t->id] = s;
		tok->id_len[t->id] = (uint32_t)t->len;
		tok->id_special[t->id] = (uint8_t)t->special;
		strmap_put(&tok->all_tokens, s, t->len, t->id);
	}
	// Normalized added tokens are matched against normalized text, so match their normalized form.
	struct tok_scratch *scr = tok_scratch_get();
	for (size_t i = 0; i < tok->n_added; i++) {
		struct added_token *t = &tok->added[i];
		if (!t->normalized || !tok->n_norm)
			continue;
		size_t len;
		const char *norm = tok_normalize(tok, t->content, t->len, &len, scr);
		char *copy = xstrndup(norm, len);
		free(t->content);
		t->content = copy;
		t->len = len;
	}
	added_matcher_build(&tok->raw_matcher, tok->added, tok->n_added, 0);
	added_matcher_build(&tok->norm_matcher, tok->added, tok->n_added, 1);
}

static char *read_file(const char *path, size_t *len)
{
	// a regular file of bounded size (a FIFO would block, /dev/zero never end): lib/infile.h
	char *bytes = infile_read(path, INFILE_MAX_TOKENIZER, len);
	if (!bytes)
		die_errno("%s", path);
	return bytes;
}

struct hash_job {
	const uint8_t *bytes;
	size_t len;
	char *hex;  // 65 bytes
};

static void *hash_bytes(void *arg)
{
	struct hash_job *job = arg;
	SHA2_CTX sha;
	SHA256Init(&sha);
	SHA256Update(&sha, job->bytes, job->len);
	SHA256End(&sha, job->hex);
	return NULL;
}

struct tokenizer *tokenizer_load(const char *path)
{
	struct tokenizer *tok = xcalloc(1, sizeof *tok);
	struct stat sb;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		tok->path = xasprintf("%s/tokenizer.json", path);
	else
		tok->path = xstrdup(path);
	tok->serial = atomic_fetch_add(&next_serial, 1);

	size_t len;
	char *bytes = read_file(tok->path, &len);
	// Hash and parse at once: for Qwen's 11 MB file each takes a noticeable share of start-up.  A plain
	// thread, not OpenMP: libgomp's pool does not survive fork(), and tests load tokenizers in forked children.
	struct hash_job job = { (const uint8_t *)bytes, len, tok->sha256 };
	pthread_t hasher;
	int threaded = pthread_create(&hasher, NULL, hash_bytes, &job) == 0;
	if (!threaded)
		hash_bytes(&job);
	json_error_t err;
	json_t *root = json_loadb(bytes, len, 0, &err);
	if (threaded)
		pthread_join(hasher, NULL);
	free(bytes);
	if (!root)
		die_data(tok->path, -1, NULL, "malformed JSON at line %d, column %d: %s", err.line, err.column,
			 err.text);
	if (!json_is_object(root))
		die_data(tok->path, -1, NULL, "not a JSON object");
	struct loader ld = { tok, tok->path };

	parse_model(&ld, json_object_get(root, "model"));
	json_t *added = json_object_get(root, "added_tokens");
	if (added && !json_is_null(added) && !json_is_array(added))
		die_data(tok->path, -1, "added_tokens", "not a JSON array");
	parse_added(&ld, json_is_array(added) ? added : NULL);
	json_t *c;
	if ((c = json_object_get(root, "normalizer")) && !json_is_null(c))
		parse_normalizer(&ld, c, "normalizer");
	if ((c = json_object_get(root, "pre_tokenizer")) && !json_is_null(c))
		parse_pretokenizer(&ld, c, "pre_tokenizer");
	if ((c = json_object_get(root, "decoder")) && !json_is_null(c)) {
		tok->has_decoder = 1;
		parse_decoder(&ld, c, "decoder");
	}
	// post_processor only adds tokens when add_special_tokens is true, which this tokenizer never does.
	json_decref(root);
	build_tables(tok);
	tok->split_at_metaspace = metaspace_split_safe(tok);
	return tok;
}

void tokenizer_free(struct tokenizer *tok)
{
	if (!tok)
		return;
	tok_bpe_release_thread_cache(tok);
	strmap_free(&tok->vocab);
	strmap_free(&tok->all_tokens);
	mergemap_free(&tok->merges);
	for (size_t i = 0; i < tok->n_arena; i++)
		free(tok->arena[i]);
	free(tok->arena);
	free(tok->id_str);
	free(tok->id_len);
	free(tok->id_special);
	for (size_t i = 0; i < tok->n_added; i++)
		free(tok->added[i].content);
	free(tok->added);
	added_matcher_free(&tok->raw_matcher);
	added_matcher_free(&tok->norm_matcher);
	for (size_t i = 0; i < tok->n_norm; i++) {
		free(tok->norm[i].text);
		tok_pattern_free(&tok->norm[i].pattern);
	}
	free(tok->norm);
	for (size_t i = 0; i < tok->n_pretok; i++) {
		tok_pattern_free(&tok->pretok[i].pattern);
		free(tok->pretok[i].replacement);
	}
	free(tok->pretok);
	for (size_t i = 0; i < tok->n_dec; i++) {
		free(tok->dec[i].text);
		tok_pattern_free(&tok->dec[i].pattern);
	}
	free(tok->dec);
	free(tok->subword_prefix);
	free(tok->word_suffix);
	free(tok->path);
	free(tok);
}

// SentencePiece-style tokenizers (LLaMA-2, Mistral) have no pre-tokenizer, or a Metaspace one: each whole
// normalized segment (or each piece of it) is one BPE word, thousands of symbols long and never cached.  When no vocab token holds a
// "▁" right after another character, no merge can join a symbol ending in such a character to one
// starting with "▁" (the result would be such a token), so no symbol ever spans that boundary and
// the merges on either side never interact: cutting the word there gives the same ids, and the
// pieces are short enough for the word cache.  Only valid without ignore_merges (which looks at the
// whole word) and without prefix/suffix (which mark word ends), and on pieces in their plain form (no
// ByteLevel pre-tokenizer: Metaspace pre-tokenizers only).
static const char metaspace[] = "\xe2\x96\x81";  // U+2581

static int metaspace_split_safe(const struct tokenizer *tok)
{
	if (tok->ignore_merges || tok->subword_prefix || tok->word_suffix)
		return 0;
	for (size_t i = 0; i < tok->n_pretok; i++)
		if (tok->pretok[i].type != PRETOK_METASPACE)
			return 0;
	for (size_t i = 0; i <= tok->vocab.mask; i++) {
		const struct strmap_slot *sl = &tok->vocab.slots[i];
		if (!sl->key || sl->len < 4)  // "x▁" takes at least 4 bytes
			continue;
		const char *k = sl->key, *end = k + sl->len, *hit = k;
		while ((hit = memmem(hit + 1, (size_t)(end - hit - 1), metaspace, 3)) != NULL)
			if (hit - k < 3 || memcmp(hit - 3, metaspace, 3) != 0)
				return 0;
	}
	return 1;
}

// ---- encoding ----

// BPE on one pre-token S, cut before each "▁" that follows another character (see metaspace_split_safe).
static void bpe_cut_at_metaspace(const struct tokenizer *tok, const char *s, size_t len, struct u32vec *out)
{
	size_t start = 0;
	const char *hit = s;
	while (hit + 3 <= s + len && (hit = memmem(hit, (size_t)(s + len - hit), metaspace, 3)) != NULL) {
		size_t at = (size_t)(hit - s);
		if (at > start && (at < 3 || memcmp(s + at - 3, metaspace, 3) != 0)) {
			tok_bpe_word(tok, s + start, at - start, 0, out);
			start = at;
		}
		hit += 3;
	}
	tok_bpe_word(tok, s + start, len - start, 0, out);
}

// Pre-tokenize and run BPE on normalized text that holds no added token.
static void encode_model(const struct tokenizer *tok, const char *s, size_t len, struct u32vec *out,
			 struct tok_scratch *scr)
{
	if (tok->split_at_metaspace && !tok->n_pretok) {
		bpe_cut_at_metaspace(tok, s, len, out);
		return;
	}
	const char *text;
	struct piecevec *pieces;
	int byte_level_form;
	tok_pretokenize(tok, s, len, s == scr->norm_origin, scr, &text, &pieces, &byte_level_form);
	for (size_t i = 0; i < pieces->len; i++) {
		const char *p = text + pieces->data[i].off;
		if (tok->split_at_metaspace)
			bpe_cut_at_metaspace(tok, p, pieces->data[i].len, out);
		else
			tok_bpe_word(tok, p, pieces->data[i].len, byte_level_form, out);
	}
}

// Raw text between non-normalized added tokens: normalize, then cut at normalized added tokens.
static void encode_plain(const struct tokenizer *tok, const char *s, size_t len, struct u32vec *out,
			 struct tok_scratch *scr)
{
	size_t norm_len;
	int at_start = s == scr->raw_origin;
	const char *norm = tok_normalize(tok, s, len, &norm_len, scr);
	if (norm_len == 0)
		return;
	scr->norm_origin = at_start ? norm : NULL;
	added_split(tok, &tok->norm_matcher, norm, norm_len, encode_model, out, scr);
}

void tokenizer_encode(const struct tokenizer *tok, const char *text, size_t len, struct u32vec *out)
{
	struct tok_scratch *scr = tok_scratch_get();
	scr->raw_origin = text;
	added_split(tok, &tok->raw_matcher, text, len, encode_plain, out, scr);
}

// ---- accessors ----

int64_t tokenizer_token_id(const struct tokenizer *tok, const char *token)
{
	return strmap_get(&tok->all_tokens, token, strlen(token));
}

const char *tokenizer_token_str(const struct tokenizer *tok, uint32_t id)
{
	return id < tok->n_ids ? tok->id_str[id] : NULL;
}

int tokenizer_is_special(const struct tokenizer *tok, uint32_t id)
{
	return id < tok->n_ids && tok->id_special[id];
}

const char *tokenizer_sha256(const struct tokenizer *tok) { return tok->sha256; }
uint32_t tokenizer_vocab_size(const struct tokenizer *tok) { return tok->n_ids; }
const char *tokenizer_path(const struct tokenizer *tok) { return tok->path; }
