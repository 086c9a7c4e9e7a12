// shard_manifest.c — manifest.json into plain structs.
#include "shard_manifest.h"
#include "die.h"

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
	if (strlen(s) != 64)
		die_data(m->path, -1, key, "not 64 hex digits");
	memcpy(out, s, 65);
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
	json_t *shards = get(m, j, "shards", JSON_ARRAY);
	s->n_shards = json_array_size(shards);
	s->shards = xcalloc(s->n_shards ? s->n_shards : 1, sizeof *s->shards);
	uint64_t first = 0;
	for (size_t i = 0; i < s->n_shards; i++) {
		json_t *e = json_array_get(shards, i);
		struct shard_file_entry *f = &s->shards[i];
		if (!json_is_object(e))
			die_data(m->path, -1, "shards", "entry %zu of %s is not an object", i, name);
		f->file = xstrdup(json_string_value(get(m, e, "file", JSON_STRING)));
		f->index = xstrdup(json_string_value(get(m, e, "index", JSON_STRING)));
		if (strchr(f->file, '/') || strchr(f->index, '/'))
			die_data(m->path, -1, "file", "\"%s\": shard names must not leave the directory", f->file);
		f->sequences = get_count(m, e, "sequences");
		f->documents = get_count(m, e, "documents");
		f->tokens = get_count(m, e, "tokens");
		f->loss_tokens = get_count(m, e, "loss_tokens");
		f->bytes = get_count(m, e, "bytes");
		copy_sha(m, e, "sha256", f->sha256);
		copy_sha(m, e, "index_sha256", f->index_sha256);
		f->first = first;
		first += f->sequences;
	}
}

struct shard_manifest *shard_manifest_load(const char *dir)
{
	struct shard_manifest *m = xcalloc(1, sizeof *m);
	m->dir = xstrdup(dir);
	m->path = xasprintf("%s/manifest.json", dir);
	json_error_t err;
	m->root = json_load_file(m->path, 0, &err);
	if (!m->root)
		die(EXIT_DATA, "%s: line %d: %s", m->path, err.line, err.text);
	const char *schema = json_string_value(get(m, m->root, "schema", JSON_STRING));
	if (strcmp(schema, "medmoe.shard") != 0)
		die_data(m->path, -1, "schema", "is \"%s\", expected \"medmoe.shard\"", schema);
	if (get_count(m, m->root, "version") > 1)
		die_data(m->path, -1, "version", "newer than this program reads (1)");
	uint64_t seq_len = get_count(m, m->root, "seq_len");
	if (seq_len == 0 || seq_len > UINT32_MAX)
		die_data(m->path, -1, "seq_len", "out of range");
	m->seq_len = (uint32_t)seq_len;
	copy_sha(m, get(m, m->root, "tokenizer", JSON_OBJECT), "sha256", m->tokenizer_sha256);
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
