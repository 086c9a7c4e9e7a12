// corpus_json.c — JSON Lines and JSON array corpora, and the record shapes they hold (list in corpus.h).
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus_format.h"
#include "die.h"
#include "vec.h"

// ---- Where in a JSON text a byte lies, as a path ("conversations[1].value"), for UTF-8 errors.
// Jansson rejects invalid UTF-8 without saying in which field; this light scan (strings, brackets,
// commas; nothing else matters for locating) names it.  With TOP_IS_RECORDS the outermost array index is
// returned in *TOP_INDEX instead of being part of the path (JSON arrays: the index is the record).

struct path_frame {
	char kind;           // '{' or '['
	long index;          // arrays: the element the scan is in
	const char *key;     // objects: the last key seen
	size_t key_len;
	int want_key;        // objects: the next string is a key
};

static void json_locate(const char *text, size_t offset, int top_is_records, long *top_index, struct bytevec *path)
{
	struct path_frame stack[64];
	int depth = 0, in_string = 0, escaped = 0;
	size_t str_start = 0;
	for (size_t i = 0; i < offset; i++) {
		char c = text[i];
		struct path_frame *top = depth > 0 && depth <= 64 ? &stack[depth - 1] : NULL;
		if (in_string) {
			if (escaped)
				escaped = 0;
			else if (c == '\\')
				escaped = 1;
			else if (c == '"') {
				in_string = 0;
				if (top && top->kind == '{' && top->want_key) {
					top->key = text + str_start;
					top->key_len = i - str_start;
					top->want_key = 0;
				}
			}
			continue;
		}
		if (c == '"') {
			in_string = 1;
			str_start = i + 1;
		} else if (c == '{' || c == '[') {
			if (depth < 64)
				stack[depth] = (struct path_frame){ c, 0, NULL, 0, c == '{' };
			depth++;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		} else if (c == ',' && top) {
			if (top->kind == '[')
				top->index++;
			else
				top->want_key = 1;
		}
	}
	*top_index = -1;
	path->len = 0;
	bytevec_append(path, "", 0);
	for (int d = 0; d < depth && d < 64; d++) {
		const struct path_frame *f = &stack[d];
		if (d == 0 && top_is_records && f->kind == '[') {
			*top_index = f->index;
			continue;
		}
		if (f->kind == '[') {
			char idx[32];
			snprintf(idx, sizeof idx, "[%ld]", f->index);
			bytevec_puts(path, idx);
		} else if (f->key && !f->want_key) {
			if (path->len > 0)
				bytevec_append(path, ".", 1);
			bytevec_append(path, f->key, f->key_len);
		}
	}
}

// ---- Record shapes.

static enum colmap_lookup json_get(void *ctx, const char *name, const char **text, size_t *len, const char **why)
{
	json_t *rec = ctx;
	json_t *v = json_object_get(rec, name);
	static _Thread_local char number[64];
	if (!v || json_is_null(v))
		return FIELD_ABSENT;
	if (json_is_string(v)) {
		*text = json_string_value(v);
		*len = json_string_length(v);
		return FIELD_FOUND;
	}
	if (json_is_integer(v) || json_is_real(v)) {
		if (json_is_integer(v))
			snprintf(number, sizeof number, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		else
			snprintf(number, sizeof number, "%.17g", json_real_value(v));
		*text = number;
		*len = strlen(number);
		return FIELD_FOUND;
	}
	*why = json_is_array(v) ? "is an array, not a string" : json_is_object(v) ? "is an object, not a string"
		: "is a boolean, not a string";
	return FIELD_BAD;
}

static int json_has(void *ctx, const char *name)
{
	json_t *v = json_object_get(ctx, name);
	return v && !json_is_null(v);
}

// Speaker names of ShareGPT "from" and OpenAI-style "role" fields.
static int role_from_name(const char *name, enum turn_role *role)
{
	static const char *const users[] = { "human", "user", "patient" };
	static const char *const assistants[] = { "gpt", "assistant", "chatgpt", "bard", "bing", "model", "doctor" };
	for (size_t i = 0; i < sizeof users / sizeof users[0]; i++)
		if (strcmp(name, users[i]) == 0)
			return *role = ROLE_USER, 1;
	for (size_t i = 0; i < sizeof assistants / sizeof assistants[0]; i++)
		if (strcmp(name, assistants[i]) == 0)
			return *role = ROLE_ASSISTANT, 1;
	if (strcmp(name, "system") == 0)
		return *role = ROLE_SYSTEM, 1;
	return 0;
}

// conversations[{from, value}] (ShareGPT) or messages[{role, content}].
static int dialogue_list(json_t *list, const char *list_key, const char *who_key, const char *text_key,
			 struct conversation *conv, struct rec_err *err)
{
	char field[128];
	if (!json_is_array(list)) {
		rec_err_set(err, list_key, "is not an array");
		return -1;
	}
	size_t i;
	json_t *turn;
	json_array_foreach(list, i, turn) {
		json_t *who = json_object_get(turn, who_key), *text = json_object_get(turn, text_key);
		enum turn_role role;
		if (!json_is_object(turn)) {
			snprintf(field, sizeof field, "%s[%zu]", list_key, i);
			rec_err_set(err, field, "is not an object");
			return -1;
		}
		if (!json_is_string(who) || !role_from_name(json_string_value(who), &role)) {
			snprintf(field, sizeof field, "%s[%zu].%s", list_key, i, who_key);
			if (!who)
				rec_err_set(err, field, "missing");
			else if (!json_is_string(who))
				rec_err_set(err, field, "not a string");
			else
				rec_err_set(err, field, "unknown speaker '%s'", json_string_value(who));
			return -1;
		}
		if (!json_is_string(text)) {
			snprintf(field, sizeof field, "%s[%zu].%s", list_key, i, text_key);
			rec_err_set(err, field, text ? "not a string" : "missing");
			return -1;
		}
		conv_add_turn(conv, role, json_string_value(text), json_string_length(text));
	}
	return 0;
}

// An array of utterance strings, each starting with its speaker (COVID-Dialogue Chinese json).
static int utterance_list(json_t *list, struct conversation *conv, struct rec_err *err)
{
	static const struct {
		const char *prefix;
		enum turn_role role;
	} speakers[] = {
		{ "病人：", ROLE_USER }, { "医生：", ROLE_ASSISTANT }, { "病人:", ROLE_USER }, { "医生:", ROLE_ASSISTANT },
		{ "Patient:", ROLE_USER }, { "Doctor:", ROLE_ASSISTANT },
	};
	size_t i;
	json_t *u;
	char field[32];
	json_array_foreach(list, i, u) {
		snprintf(field, sizeof field, "[%zu]", i);
		if (!json_is_string(u)) {
			rec_err_set(err, field, "utterance is not a string");
			return -1;
		}
		const char *text = json_string_value(u);
		size_t len = json_string_length(u), k;
		for (k = 0; k < sizeof speakers / sizeof speakers[0]; k++) {
			size_t n = strlen(speakers[k].prefix);
			if (len >= n && memcmp(text, speakers[k].prefix, n) == 0) {
				while (n < len && text[n] == ' ')
					n++;
				conv_add_turn(conv, speakers[k].role, text + n, len - n);
				break;
			}
		}
		if (k == sizeof speakers / sizeof speakers[0]) {
			rec_err_set(err, field, "utterance starts with no speaker (病人：, 医生：, Patient:, Doctor:)");
			return -1;
		}
	}
	return 0;
}

static void keys_of(json_t *obj, char *out, size_t outlen)
{
	const char *key;
	json_t *v;
	size_t used = 0;
	out[0] = '\0';
	json_object_foreach(obj, key, v) {
		int n = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", key);
		if (n < 0 || (size_t)n >= outlen - used)
			break;
		used += (size_t)n;
	}
}

static void take_string(json_t *rec, const char *const *keys, void (*set)(struct conversation *, const char *, size_t),
			struct conversation *conv)
{
	for (; *keys; keys++) {
		json_t *v = json_object_get(rec, *keys);
		char number[32];
		if (json_is_string(v) && json_string_length(v) > 0) {
			set(conv, json_string_value(v), json_string_length(v));
			return;
		}
		if (json_is_integer(v)) {
			snprintf(number, sizeof number, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			set(conv, number, strlen(number));
			return;
		}
	}
}

int json_record_to_conversation(struct corpus_src *src, json_t *rec, struct conversation *conv, struct rec_err *err)
{
	static const char *const id_keys[] = { "id", "sample_id", "idx", NULL };
	static const char *const task_keys[] = { "task_dataset", "task", NULL };
	int rc;
	if (json_is_array(rec))
		rc = utterance_list(rec, conv, err);
	else if (!json_is_object(rec)) {
		rec_err_set(err, NULL, "not a JSON object or array");
		return -1;
	} else if (src->map)
		rc = colmap_apply(src->map, json_get, rec, conv, err);
	else if (json_object_get(rec, "conversations"))
		rc = dialogue_list(json_object_get(rec, "conversations"), "conversations", "from", "value", conv, err);
	else if (json_object_get(rec, "messages"))
		rc = dialogue_list(json_object_get(rec, "messages"), "messages", "role", "content", conv, err);
	else {
		int k;
		for (k = 0; k < src->n_defaults; k++)
			if (colmap_fits(&src->defaults[k], json_has, rec))
				break;
		if (k == src->n_defaults) {
			char keys[400];
			keys_of(rec, keys, sizeof keys);
			rec_err_set(err, NULL, "no known record shape (keys: %s); give a column mapping", keys);
			return -1;
		}
		rc = colmap_apply(&src->defaults[k], json_get, rec, conv, err);
	}
	if (rc != 0)
		return rc;
	if (conv->n_turns == 0) {
		rec_err_set(err, NULL, "no turns");
		return -1;
	}
	if (json_is_object(rec)) {
		if (!conv->id)
			take_string(rec, id_keys, conv_set_id, conv);
		if (!conv->task_hint)
			take_string(rec, task_keys, conv_set_task, conv);
	}
	return 0;
}

// ---- JSON Lines: streamed, one record per non-blank line; the record number is the line number.

struct jsonl_reader {
	struct corpus_reader base;
	struct corpus_src *src;
	struct bytevec line, path;
	long lineno;
};

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

static int jsonl_next(struct corpus_reader *base, struct conversation *conv)
{
	struct jsonl_reader *r = (struct jsonl_reader *)base;
	struct rec_err err;
	while (textsrc_getline(r->src->text, &r->line)) {
		r->lineno++;
		if (blank(r->line.data, r->line.len))
			continue;
		size_t bad = textsrc_utf8_check(r->line.data, r->line.len);
		if (bad < r->line.len) {
			long top;
			json_locate(r->line.data, bad, 0, &top, &r->path);
			rec_err_set(&err, r->path.len ? r->path.data : NULL, "invalid UTF-8 at column %zu (byte 0x%02x); give the encoding?",
				    bad + 1, (unsigned char)r->line.data[bad]);
			corpus_reject(r->src, r->lineno, &err);
			continue;
		}
		json_error_t jerr;
		json_t *rec = json_loadb(r->line.data, r->line.len, 0, &jerr);
		if (!rec) {
			rec_err_set(&err, NULL, "malformed JSON: %s (column %d)", jerr.text, jerr.column);
			corpus_reject(r->src, r->lineno, &err);
			continue;
		}
		conv_begin(conv, r->src, r->lineno);
		int rc = json_record_to_conversation(r->src, rec, conv, &err);
		json_decref(rec);
		if (rc != 0) {
			conversation_free(conv);
			corpus_reject(r->src, r->lineno, &err);
			continue;
		}
		conv_finish(conv);
		return 1;
	}
	return 0;
}

static void jsonl_free(struct corpus_reader *base)
{
	struct jsonl_reader *r = (struct jsonl_reader *)base;
	free(r->line.data);
	free(r->path.data);
	free(r);
}

struct corpus_reader *jsonl_reader_new(struct corpus_src *src)
{
	struct jsonl_reader *r = xcalloc(1, sizeof *r);
	r->base = (struct corpus_reader){ jsonl_next, jsonl_free };
	r->src = src;
	return &r->base;
}

// ---- One JSON array: loaded whole (jansson has no streaming parser); item i is record i + 1.  A file
// that does not parse has no records to skip to, so its errors always end the program.

struct array_reader {
	struct corpus_reader base;
	struct corpus_src *src;
	json_t *items;
	size_t next;
};

static void array_load(struct array_reader *r)
{
	struct bytevec all = { 0 }, path = { 0 };
	bytevec_append(&all, "", 0);
	textsrc_read_all(r->src->text, &all);
	size_t bad = textsrc_utf8_check(all.data, all.len);
	if (bad < all.len) {
		long top;
		json_locate(all.data, bad, 1, &top, &path);
		die_data(r->src->name, top >= 0 ? top + 1 : -1, path.len ? path.data : NULL,
			 "invalid UTF-8 (byte 0x%02x at offset %zu; give the encoding?)", (unsigned char)all.data[bad], bad);
	}
	json_error_t jerr;
	r->items = json_loadb(all.data, all.len, 0, &jerr);
	if (!r->items)
		die_data(r->src->name, -1, NULL, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	if (!json_is_array(r->items))
		die_data(r->src->name, -1, NULL, "expected one JSON array");
	free(all.data);
	free(path.data);
}

static int array_next(struct corpus_reader *base, struct conversation *conv)
{
	struct array_reader *r = (struct array_reader *)base;
	struct rec_err err;
	if (!r->items)
		array_load(r);
	while (r->next < json_array_size(r->items)) {
		long record = (long)++r->next;
		conv_begin(conv, r->src, record);
		if (json_record_to_conversation(r->src, json_array_get(r->items, r->next - 1), conv, &err) != 0) {
			conversation_free(conv);
			corpus_reject(r->src, record, &err);
			continue;
		}
		conv_finish(conv);
		return 1;
	}
	return 0;
}

static void array_free(struct corpus_reader *base)
{
	struct array_reader *r = (struct array_reader *)base;
	json_decref(r->items);
	free(r);
}

struct corpus_reader *json_array_reader_new(struct corpus_src *src)
{
	struct array_reader *r = xcalloc(1, sizeof *r);
	r->base = (struct corpus_reader){ array_next, array_free };
	r->src = src;
	return &r->base;
}
