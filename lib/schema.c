// schema.c — stream specs (schemas/*.json) and the checks they drive.
#include "schema.h"
#include "die.h"
#include "infile.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum field_type {
	T_ANY, T_STR, T_INT, T_UINT, T_FLOAT, T_BOOL, T_BIN_U32, T_BIN_U8, T_MAP, T_ARRAY, T_ARRAY_STR,
	T_ARRAY_BIN_U32,
};

static const char *type_names[] = {
	"any", "str", "int", "uint", "float", "bool", "bin_u32", "bin_u8", "map", "array", "array_str",
	"array_bin_u32",
};

struct field_spec {
	char *name;
	enum field_type type;
	int required, nullable;
	char *same_length_as;  // another bin field whose element count must match
	int token_ids;         // bin_u32 / array_bin_u32: every id below the header's tokenizer.vocab_size
	int64_t max;           // bin_u8 bytes / uint values at most this (-1: no limit)
	int finite;            // float / array: every number finite
};

struct part_spec {
	size_t n_fields;
	struct field_spec *fields;
};

struct schema {
	char *name;
	int version;
	struct part_spec header, record;
};

static char *find_schema_file(const char *name)
{
	const char *env = getenv("MEDMOE_SCHEMAS");
	if (env && *env)
		return xasprintf("%s/%s.json", env, name);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		const char *rel[] = { "../schemas", "../../schemas", "../share/medmoe/schemas" };
		for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
			char *path = xasprintf("%s/%s/%s.json", exe, rel[i], name);
			if (access(path, R_OK) == 0)
				return path;
			free(path);
		}
	}
	return xasprintf("schemas/%s.json", name);
}

static void load_part(const char *file, json_t *root, const char *part_name, struct part_spec *part)
{
	json_t *part_obj = json_object_get(root, part_name);
	json_t *fields = part_obj ? json_object_get(part_obj, "fields") : NULL;
	if (!json_is_object(fields))
		die_data(file, -1, part_name, "missing \"fields\" object");
	part->n_fields = json_object_size(fields);
	part->fields = xcalloc(part->n_fields, sizeof *part->fields);
	const char *key;
	json_t *val;
	size_t i = 0;
	json_object_foreach(fields, key, val) {
		struct field_spec *f = &part->fields[i++];
		f->name = xstrdup(key);
		const char *type = json_string_value(json_object_get(val, "type"));
		if (!type)
			die_data(file, -1, key, "field has no \"type\"");
		size_t t;
		for (t = 0; t < sizeof type_names / sizeof type_names[0]; t++)
			if (strcmp(type, type_names[t]) == 0)
				break;
		if (t == sizeof type_names / sizeof type_names[0])
			die_data(file, -1, key, "unknown type \"%s\"", type);
		f->type = (enum field_type)t;
		f->required = json_is_true(json_object_get(val, "required"));
		f->nullable = json_is_true(json_object_get(val, "nullable"));
		const char *same = json_string_value(json_object_get(val, "same_length_as"));
		f->same_length_as = same ? xstrdup(same) : NULL;
		f->token_ids = json_is_true(json_object_get(val, "token_ids"));
		f->finite = json_is_true(json_object_get(val, "finite"));
		json_t *max = json_object_get(val, "max");
		f->max = json_is_integer(max) ? json_integer_value(max) : -1;
	}
}

struct schema *schema_load_stream(const struct stream_reader *r)
{
	// the name comes from the stream: a known schema's name, never a path
	const char *n = r->schema;
	int plain = strncmp(n, "medmoe.", 7) == 0 && strlen(n) < 64;
	for (const char *c = n; plain && *c; c++)
		plain = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_';
	char *file = plain ? find_schema_file(n) : NULL;
	struct stat st;
	if (!plain || stat(file, &st) != 0)
		die_data(r->path, 0, "schema", "\"%s\" is not a schema this program knows (no %s)", n,
			 file ? file : "spec by that name");
	free(file);
	return schema_load(n);
}

struct schema *schema_load(const char *name)
{
	char *file = find_schema_file(name);
	json_error_t jerr;
	json_t *root = infile_json(file, JSON_REJECT_DUPLICATES, INFILE_MAX_CONFIG, &jerr);
	if (!root)
		die(EXIT_DATA, "%s: schema spec for %s: %s (set MEDMOE_SCHEMAS to the schemas/ directory)", file, name,
		    jerr.text);
	struct schema *s = xcalloc(1, sizeof *s);
	s->name = xstrdup(name);
	json_t *v = json_object_get(root, "version");
	if (!json_is_integer(v))
		die_data(file, -1, "version", "missing or not an integer");
	s->version = (int)json_integer_value(v);
	load_part(file, root, "header", &s->header);
	load_part(file, root, "record", &s->record);
	json_decref(root);
	free(file);
	return s;
}

static void free_part(struct part_spec *p)
{
	for (size_t i = 0; i < p->n_fields; i++) {
		free(p->fields[i].name);
		free(p->fields[i].same_length_as);
	}
	free(p->fields);
}

void schema_free(struct schema *s)
{
	free_part(&s->header);
	free_part(&s->record);
	free(s->name);
	free(s);
}

int schema_version(const struct schema *s) { return s->version; }

static int is_type(const msgpack_object *o, enum field_type t)
{
	switch (t) {
	case T_ANY: return 1;
	case T_STR: return o->type == MSGPACK_OBJECT_STR;
	case T_INT: return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
	case T_UINT: return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	case T_FLOAT:
		return o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64 ||
		       is_type(o, T_INT);
	case T_BOOL: return o->type == MSGPACK_OBJECT_BOOLEAN;
	case T_BIN_U32: return o->type == MSGPACK_OBJECT_BIN && o->via.bin.size % 4 == 0;
	case T_BIN_U8: return o->type == MSGPACK_OBJECT_BIN;
	case T_MAP: return o->type == MSGPACK_OBJECT_MAP;
	case T_ARRAY: return o->type == MSGPACK_OBJECT_ARRAY;
	case T_ARRAY_STR:
	case T_ARRAY_BIN_U32:
		if (o->type != MSGPACK_OBJECT_ARRAY)
			return 0;
		for (uint32_t i = 0; i < o->via.array.size; i++)
			if (!is_type(&o->via.array.ptr[i], t == T_ARRAY_STR ? T_STR : T_BIN_U32))
				return 0;
		return 1;
	}
	return 0;
}

static size_t bin_count(const msgpack_object *o, enum field_type t)
{
	return t == T_BIN_U32 ? o->via.bin.size / 4 : o->via.bin.size;
}

static uint32_t le32(const char *p)
{
	const uint8_t *u = (const uint8_t *)p;
	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

// The header's tokenizer.vocab_size (exit 65 naming the header when a field asks for it and it is not there).
static uint32_t header_vocab(const struct stream_reader *r)
{
	char sha[65];
	uint32_t vocab;
	stream_tokenizer(r, sha, &vocab);
	return vocab;
}

static void check_ids(const struct stream_reader *r, const char *field, const msgpack_object *bin, uint32_t vocab)
{
	for (uint32_t i = 0; i < bin->via.bin.size / 4; i++) {
		uint32_t id = le32(bin->via.bin.ptr + 4 * i);
		if (id >= vocab)
			rec_die(r, field, "token %u: id %u is outside the tokenizer's vocabulary (%u)", i, id, vocab);
	}
}

static int number_is_finite(const msgpack_object *o)
{
	if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
		return isfinite(o->via.f64);
	return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

// The value checks beyond the type: token ids, byte and integer limits, finite numbers.
static void check_values(const struct field_spec *f, const struct stream_reader *r, const msgpack_object *v)
{
	if (f->token_ids) {
		uint32_t vocab = header_vocab(r);
		if (f->type == T_BIN_U32)
			check_ids(r, f->name, v, vocab);
		else if (f->type == T_ARRAY_BIN_U32)
			for (uint32_t i = 0; i < v->via.array.size; i++)
				check_ids(r, f->name, &v->via.array.ptr[i], vocab);
	}
	if (f->max >= 0 && f->type == T_BIN_U8)
		for (uint32_t i = 0; i < v->via.bin.size; i++)
			if ((uint8_t)v->via.bin.ptr[i] > f->max)
				rec_die(r, f->name, "byte %u is %u (at most %lld)", i, (uint8_t)v->via.bin.ptr[i], (long long)f->max);
	if (f->max >= 0 && f->type == T_UINT && v->via.u64 > (uint64_t)f->max)
		rec_die(r, f->name, "%llu is over %lld", (unsigned long long)v->via.u64, (long long)f->max);
	if (f->finite && f->type == T_FLOAT && !number_is_finite(v))
		rec_die(r, f->name, "is not a finite number");
	if (f->finite && f->type == T_ARRAY)
		for (uint32_t i = 0; i < v->via.array.size; i++)
			if (!number_is_finite(&v->via.array.ptr[i]))
				rec_die(r, f->name, "element %u is not a finite number", i);
}

static void check_part(const struct part_spec *part, const struct stream_reader *r, const msgpack_object *obj)
{
	for (size_t i = 0; i < part->n_fields; i++) {
		const struct field_spec *f = &part->fields[i];
		const msgpack_object *v = msgpack_map_get(obj, f->name);
		if (!v) {
			if (f->required)
				rec_die(r, f->name, "missing (required by the %s spec)", r->schema);
			continue;
		}
		if (v->type == MSGPACK_OBJECT_NIL) {
			if (!f->nullable)
				rec_die(r, f->name, "is null, which the %s spec does not allow", r->schema);
			continue;
		}
		if (!is_type(v, f->type))
			rec_die(r, f->name, "is not of type %s", type_names[f->type]);
		check_values(f, r, v);
		if (f->same_length_as) {
			const msgpack_object *other = msgpack_map_get(obj, f->same_length_as);
			const struct field_spec *of = NULL;
			for (size_t j = 0; j < part->n_fields; j++)
				if (strcmp(part->fields[j].name, f->same_length_as) == 0)
					of = &part->fields[j];
			if (other && of && other->type == MSGPACK_OBJECT_BIN &&
			    bin_count(v, f->type) != bin_count(other, of->type))
				rec_die(r, f->name, "has %zu elements but %s has %zu", bin_count(v, f->type),
					f->same_length_as, bin_count(other, of->type));
		}
	}
}

void schema_check_header(const struct schema *s, const struct stream_reader *r)
{
	check_part(&s->header, r, &r->header);
}

void schema_check_record(const struct schema *s, const struct stream_reader *r, const msgpack_object *rec)
{
	check_part(&s->record, r, rec);
}
