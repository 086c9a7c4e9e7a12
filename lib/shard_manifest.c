// shard_manifest.c — manifest.json into plain structs.
#include "shard_manifest.h"
#include "die.h"
#include "infile.h"

#include <string.h>

static json_t *get(const struct shard_manifest *m, json_t *obj, const char *key, json_type type)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_typeof(v) != type)
		die_data(m->path, -1, key, "missing or of the wrong type");
	return v;
}

static uint64_t get_count(const struct shard_manifest *m, json_t *obj, const char *key)
{
	json_int_t v = json_integer_value(get(m, obj, key, JSON_INTEGER));
	if (v < 0)
		die_data(m->path, -1, key, "negative");
	return (uint64_t)v;
}

static void copy_sha(const struct shard_manifest *m, json_t *obj, const char *key, char out[65])
{
	const char *s = json_string_value(get(m, obj, key, JSON_STRING));
	if (strlen(s) != 64 || strspn(s, "0123456789abcdef") != 64)
		die_data(m->path, -1, key, "not 64 lowercase hex digits");
	memcpy(out, s, 65);
}

// A file name inside the directory: not empty, no '/', not "." or "..".
static char *file_name(const struct shard_manifest *m, json_t *obj, const char *key)
{
	const char *s = json_string_value(get(m, obj, key, JSON_STRING));
	if (!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > 255)
		die_data(m->path, -1, key, "\"%s\": not a file name inside the shard directory", s);
	return xstrdup(s);
}

// a + b, or die naming the field (the sums of hostile counts must not wrap).
static uint64_t add_count(const struct shard_manifest *m, const char *key, uint64_t a, uint64_t b)
{
	uint64_t s;
	if (__builtin_add_overflow(a, b, &s))
		die_data(m->path, -1, key, "the shards' counts overflow");
	return s;
}

static void load_split(struct shard_manifest *m, json_t *splits, const char *name, struct shard_split_entry *s)
{
	json_t *j = get(m, splits, name, JSON_OBJECT);
	s->name = name;
	s->sequences = get_count(m, j, "sequences");
	s->documents = get_count(m, j, "documents");
	s->tokens = get_count(m, j, "tokens");
	s->loss_tokens = get_count(m, j, "loss_tokens");
	s->tasks = get(m, j, "tasks", JSON_ARRAY);
	size_t i;
	json_t *t;
	json_array_foreach(s->tasks, i, t) {
		if (!json_is_object(t))
			die_data(m->path, -1, "tasks", "%s split: entry %zu is not an object", name, i);
		uint64_t id = get_count(m, t, "id");
		if (id > SHARD_MAX_TASK_ID)
			die_data(m->path, -1, "tasks", "%s split: task id %llu is over %d", name, (unsigned long long)id,
				 SHARD_MAX_TASK_ID);
		get(m, t, "name", JSON_STRING);
		get_count(m, t, "tokens");
		for (size_t k = 0; k < i; k++)
			if (json_integer_value(json_object_get(json_array_get(s->tasks, k), "id")) == (json_int_t)id)
				die_data(m->path, -1, "tasks", "%s split: task id %llu listed twice", name,
					 (unsigned long long)id);
	}
	json_t *shards = get(m, j, "shards", JSON_ARRAY);
	s->n_shards = json_array_size(shards);
	s->shards = xcalloc(s->n_shards ? s->n_shards : 1, sizeof *s->shards);
	uint64_t first = 0, documents = 0, tokens = 0, loss = 0;
	// a record holds at least the ids and the mask of seq_len positions
	uint64_t min_record = (uint64_t)m->seq_len * 5;
	for (size_t i = 0; i < s->n_shards; i++) {
		json_t *e = json_array_get(shards, i);
		struct shard_file_entry *f = &s->shards[i];
		if (!json_is_object(e))
			die_data(m->path, -1, "shards", "entry %zu of %s is not an object", i, name);
		f->file = file_name(m, e, "file");
		f->index = file_name(m, e, "index");
		f->sequences = get_count(m, e, "sequences");
		f->documents = get_count(m, e, "documents");
		f->tokens = get_count(m, e, "tokens");
		f->loss_tokens = get_count(m, e, "loss_tokens");
		f->bytes = get_count(m, e, "bytes");
		copy_sha(m, e, "sha256", f->sha256);
		copy_sha(m, e, "index_sha256", f->index_sha256);
		// Counts that the shard's own size cannot hold are refused before anything is sized by them.
		if (f->sequences == 0 || f->sequences > f->bytes / min_record)
			die_data(m->path, -1, "sequences", "%s: %llu sequences of %u tokens cannot be in %llu bytes", f->file,
				 (unsigned long long)f->sequences, m->seq_len, (unsigned long long)f->bytes);
		if (f->tokens > f->sequences * (uint64_t)m->seq_len || f->loss_tokens > f->tokens ||
		    f->documents > f->tokens || f->documents < f->sequences)
			die_data(m->path, -1, "tokens", "%s: counts that do not fit %llu sequences of %u tokens", f->file,
				 (unsigned long long)f->sequences, m->seq_len);
		f->first = first;
		first = add_count(m, "sequences", first, f->sequences);
		documents = add_count(m, "documents", documents, f->documents);
		tokens = add_count(m, "tokens", tokens, f->tokens);
		loss = add_count(m, "loss_tokens", loss, f->loss_tokens);
	}
	if (first != s->sequences || documents != s->documents || tokens != s->tokens || loss != s->loss_tokens)
		die_data(m->path, -1, "splits", "%s: the shards hold %llu sequences, %llu documents, %llu tokens, %llu loss "
			 "tokens; the split says %llu, %llu, %llu, %llu", name, (unsigned long long)first,
			 (unsigned long long)documents, (unsigned long long)tokens, (unsigned long long)loss,
			 (unsigned long long)s->sequences, (unsigned long long)s->documents,
			 (unsigned long long)s->tokens, (unsigned long long)s->loss_tokens);
}

struct shard_manifest *shard_manifest_load(const char *dir)
{
	struct shard_manifest *m = xcalloc(1, sizeof *m);
	m->dir = xstrdup(dir);
	m->path = xasprintf("%s/manifest.json", dir);
	json_error_t err;
	m->root = infile_json(m->path, JSON_REJECT_DUPLICATES, INFILE_MAX_CONFIG, &err);
	if (!m->root)
		die(EXIT_DATA, "%s: line %d: %s", m->path, err.line, err.text);
	if (!json_is_object(m->root))
		die_data(m->path, -1, NULL, "not a JSON object");
	const char *schema = json_string_value(get(m, m->root, "schema", JSON_STRING));
	if (strcmp(schema, "medmoe.shard") != 0)
		die_data(m->path, -1, "schema", "is \"%s\", expected \"medmoe.shard\"", schema);
	if (get_count(m, m->root, "version") > 1)
		die_data(m->path, -1, "version", "newer than this program reads (1)");
	uint64_t seq_len = get_count(m, m->root, "seq_len");
	if (seq_len == 0 || seq_len > SHARD_MAX_SEQ_LEN)
		die_data(m->path, -1, "seq_len", "%llu is out of range (1..%u)", (unsigned long long)seq_len,
			 SHARD_MAX_SEQ_LEN);
	m->seq_len = (uint32_t)seq_len;
	json_t *tok = get(m, m->root, "tokenizer", JSON_OBJECT);
	copy_sha(m, tok, "sha256", m->tokenizer_sha256);
	uint64_t vocab = get_count(m, tok, "vocab_size");
	if (vocab == 0 || vocab > UINT32_MAX)
		die_data(m->path, -1, "vocab_size", "%llu is not a vocabulary size", (unsigned long long)vocab);
	m->vocab_size = (uint32_t)vocab;
	json_t *splits = get(m, m->root, "splits", JSON_OBJECT);
	load_split(m, splits, "train", &m->train);
	load_split(m, splits, "valid", &m->valid);
	return m;
}

const struct shard_split_entry *shard_manifest_split(const struct shard_manifest *m, const char *name)
{
	if (strcmp(name, "train") == 0)
		return &m->train;
	if (strcmp(name, "valid") == 0)
		return &m->valid;
	return NULL;
}

static void free_split(struct shard_split_entry *s)
{
	for (size_t i = 0; i < s->n_shards; i++) {
		free(s->shards[i].file);
		free(s->shards[i].index);
	}
	free(s->shards);
}

void shard_manifest_free(struct shard_manifest *m)
{
	free_split(&m->train);
	free_split(&m->valid);
	json_decref(m->root);
	free(m->dir);
	free(m->path);
	free(m);
}
