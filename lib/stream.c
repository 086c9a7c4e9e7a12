// stream.c — msgpack streams: header + records, buffered reading, atomic writing.
#include "stream.h"
#include "die.h"
#include "infile.h"
#include "mpk_scan.h"

#include <jansson.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef MEDMOE_VERSION
#define MEDMOE_VERSION "0"
#endif

// Bytes read from the input per refill.  Records bigger than this still work: the unpacker grows.  (The fuzz
// build makes it small, so that refills happen inside records.)
#ifndef STREAM_READ_CHUNK
#define STREAM_READ_CHUNK (1u << 20)
#endif
#define READ_CHUNK STREAM_READ_CHUNK

// ---- writing ----

static int write_to_file(void *data, const char *buf, size_t len)
{
	FILE *fp = data;
	if (len == 0)   // msgpack passes a NULL body for an empty str/bin; fwrite(NULL, ...) is undefined
		return 0;
	return fwrite(buf, 1, len, fp) == len ? 0 : -1;
}

struct stream_writer *stream_create(const char *path)
{
	struct stream_writer *w = xcalloc(1, sizeof *w);
	w->out = outfile_open(path);
	msgpack_packer_init(&w->pk, w->out->fp, write_to_file);
	return w;
}

void stream_begin_header(struct stream_writer *w, const char *schema, int version, const char *program,
			 size_t n_extra)
{
	msgpack_pack_map(&w->pk, 4 + n_extra);
	pack_kv_str(&w->pk, "schema", schema);
	pack_kv_int(&w->pk, "version", version);
	pack_kv_str(&w->pk, "program", program);
	pack_kv_str(&w->pk, "program_version", MEDMOE_VERSION);
}

void stream_begin_record(struct stream_writer *w, size_t n_fields)
{
	msgpack_pack_map(&w->pk, n_fields);
	w->n_records++;
}

void stream_commit(struct stream_writer *w)
{
	outfile_commit(w->out);
	free(w);
}

void pack_strn(msgpack_packer *pk, const char *s, size_t len)
{
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

void pack_str(msgpack_packer *pk, const char *s)
{
	pack_strn(pk, s, strlen(s));
}

void pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
	pack_str(pk, key);
	if (val)
		pack_str(pk, val);
	else
		msgpack_pack_nil(pk);
}

void pack_kv_strn(msgpack_packer *pk, const char *key, const char *val, size_t len)
{
	pack_str(pk, key);
	pack_strn(pk, val, len);
}

void pack_kv_int(msgpack_packer *pk, const char *key, int64_t val)
{
	pack_str(pk, key);
	msgpack_pack_int64(pk, val);
}

void pack_kv_double(msgpack_packer *pk, const char *key, double val)
{
	pack_str(pk, key);
	msgpack_pack_double(pk, val);
}

void pack_kv_bool(msgpack_packer *pk, const char *key, int val)
{
	pack_str(pk, key);
	if (val)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void pack_u32bin(msgpack_packer *pk, const uint32_t *ids, size_t n)
{
	msgpack_pack_bin(pk, n * 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	msgpack_pack_bin_body(pk, ids, n * 4);
#else
	for (size_t i = 0; i < n; i++) {
		uint8_t le[4] = { ids[i], ids[i] >> 8, ids[i] >> 16, ids[i] >> 24 };
		msgpack_pack_bin_body(pk, le, 4);
	}
#endif
}

void pack_kv_u32bin(msgpack_packer *pk, const char *key, const uint32_t *ids, size_t n)
{
	pack_str(pk, key);
	pack_u32bin(pk, ids, n);
}

void pack_kv_u8bin(msgpack_packer *pk, const char *key, const uint8_t *bytes, size_t n)
{
	pack_str(pk, key);
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, bytes, n);
}

void pack_kv_tokenizer(msgpack_packer *pk, const struct tokenizer_identity *id)
{
	pack_str(pk, "tokenizer");
	msgpack_pack_map(pk, 3);
	pack_kv_str(pk, "sha256", id->sha256);
	pack_kv_int(pk, "vocab_size", id->vocab_size);
	pack_str(pk, "special");
	msgpack_pack_map(pk, id->n_special);
	for (size_t i = 0; i < id->n_special; i++)
		pack_kv_int(pk, id->special_names[i], id->special_ids[i]);
}

// ---- reading ----

void rec_die(const struct stream_reader *r, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	die_data(r->path, r->record, field, "%s", msg);
}

// Read more input into the unpacker.  Returns bytes read (0 at end of file).
static size_t refill(struct stream_reader *r)
{
	if (r->eof)
		return 0;
	if (!msgpack_unpacker_reserve_buffer(&r->unpacker, READ_CHUNK))
		die(EXIT_FAIL, "out of memory reading %s", r->path);
	size_t n = fread(msgpack_unpacker_buffer(&r->unpacker), 1, READ_CHUNK, r->fp);
	if (n < READ_CHUNK) {
		if (ferror(r->fp))
			die_errno("%s", r->path);
		r->eof = 1;
	}
	msgpack_unpacker_buffer_consumed(&r->unpacker, n);
	r->bytes_fed += n;
	return n;
}

// The next msgpack object into MSG.  1 = object, 0 = clean end; a partial object at the end is fatal.
static int next_object(struct stream_reader *r, msgpack_unpacked *msg)
{
	// The object is walked (mpk_scan.h) as its bytes arrive, and handed to msgpack-c only once it is complete:
	// a corrupt count or length then ends in a data error naming the record, not in a huge allocation.
	// r->object_end (the end of the last whole object) is where this object begins.
	struct mpk_scan scan;
	mpk_scan_init(&scan);
	for (;;) {
		size_t avail = r->unpacker.used - r->unpacker.off;
		enum mpk_status st = mpk_scan_feed(&scan, r->unpacker.buffer + r->unpacker.off, avail);
		if (st == MPK_BAD)
			die_data(r->path, r->record + 1, NULL, "not msgpack (corrupt stream at byte %llu: %s)",
				 (unsigned long long)(r->object_end + scan.pos), scan.why);
		if (st == MPK_COMPLETE) {
			msgpack_unpack_return ret = msgpack_unpacker_next(&r->unpacker, msg);
			if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
				die(EXIT_FAIL, "%s: record %lld: out of memory", r->path, (long long)r->record + 1);
			if (ret != MSGPACK_UNPACK_SUCCESS)
				die_data(r->path, r->record + 1, NULL, "not msgpack (corrupt stream after byte %llu)",
					 (unsigned long long)r->object_end);
			r->record_offset = r->object_end;
			r->object_end = r->bytes_fed - (r->unpacker.used - r->unpacker.off);
			return 1;
		}
		if (refill(r) == 0) {
			if (avail > 0)
				die_data(r->path, r->record + 1, NULL,
					 "truncated stream (%llu bytes of an incomplete record at the end)",
					 (unsigned long long)avail);
			return 0;
		}
	}
}

static const char *obj_str(const msgpack_object *o, size_t *len)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return NULL;
	*len = o->via.str.size;
	return o->via.str.ptr;
}

const msgpack_object *msgpack_map_get(const msgpack_object *obj, const char *key)
{
	if (obj->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t klen = strlen(key);
	for (uint32_t i = 0; i < obj->via.map.size; i++) {
		const msgpack_object_kv *kv = &obj->via.map.ptr[i];
		size_t len;
		const char *s = obj_str(&kv->key, &len);
		if (s && len == klen && memcmp(s, key, len) == 0)
			return &kv->val;
	}
	return NULL;
}

struct stream_reader *stream_open(const char *path, const char *schema, int max_version)
{
	// open first: a reader allocated before a failing open would be reported as a leak under LSan
	FILE *fp = infile_fopen_stream(path);
	if (!fp)
		die(EXIT_DATA, "%s: %s", path, strerror(errno));
	return stream_open_fp(fp, path, schema, max_version);
}

struct stream_reader *stream_open_fp(FILE *fp, const char *path, const char *schema, int max_version)
{
	struct stream_reader *r = stream_reader_new(fp, path);
	stream_read_header(r, schema, max_version);
	return r;
}

struct stream_reader *stream_reader_new(FILE *fp, const char *path)
{
	struct stream_reader *r = xcalloc(1, sizeof *r);
	r->path = xstrdup(path);
	r->fp = fp;
	if (!msgpack_unpacker_init(&r->unpacker, READ_CHUNK))
		die(EXIT_FAIL, "out of memory");
	msgpack_unpacked_init(&r->header_msg);
	msgpack_unpacked_init(&r->record_msg);
	return r;
}

void stream_read_header(struct stream_reader *r, const char *schema, int max_version)
{
	const char *path = r->path;
	if (!next_object(r, &r->header_msg))
		die_data(path, 0, NULL, "empty stream (no header record)");
	r->header = r->header_msg.data;
	if (r->header.type != MSGPACK_OBJECT_MAP)
		die_data(path, 0, NULL, "the first object is not a header map: not a medmoe stream");
	// header_msg owns its zone (msgpack_unpacker_next hands each object its own), so the header
	// stays valid while later records come and go.
	const msgpack_object *s = msgpack_map_get(&r->header, "schema");
	const msgpack_object *v = msgpack_map_get(&r->header, "version");
	size_t len;
	const char *sv = s ? obj_str(s, &len) : NULL;
	if (!sv)
		die_data(path, 0, "schema", "missing: not a medmoe stream");
	if (len > 256 || memchr(sv, 0, len))
		die_data(path, 0, "schema", "not a schema name");
	r->schema = xstrndup(sv, len);
	if (!v || (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER))
		die_data(path, 0, "version", "missing or not an integer");
	// checked before it is narrowed: 2^32 + 1 must not read as version 1
	if (v->via.u64 < 1 || v->via.u64 > INT_MAX)
		die_data(path, 0, "version", "%llu is not a version number", (unsigned long long)v->via.u64);
	r->version = (int)v->via.u64;
	if (schema && strcmp(r->schema, schema) != 0)
		die_data(path, 0, "schema", "is \"%s\", expected \"%s\"", r->schema, schema);
	if (max_version > 0 && r->version > max_version)
		die_data(path, 0, "version", "%s version %d is newer than this program reads (%d)", r->schema,
			 r->version, max_version);
}

int stream_next(struct stream_reader *r, msgpack_object *rec)
{
	if (!next_object(r, &r->record_msg))
		return 0;
	r->record++;
	*rec = r->record_msg.data;
	if (rec->type != MSGPACK_OBJECT_MAP)
		die_data(r->path, r->record, NULL, "not a map");
	return 1;
}

void stream_seek(struct stream_reader *r, uint64_t offset, int64_t record)
{
	if (r->fp == stdin || fseeko(r->fp, (off_t)offset, SEEK_SET) != 0)
		die(EXIT_FAIL, "%s: cannot seek (a file is needed, not a pipe)", r->path);
	msgpack_unpacker_destroy(&r->unpacker);
	if (!msgpack_unpacker_init(&r->unpacker, READ_CHUNK))
		die(EXIT_FAIL, "out of memory");
	r->bytes_fed = offset;
	r->object_end = offset;
	r->eof = 0;
	r->record = record - 1;
}

void stream_close(struct stream_reader *r)
{
	msgpack_unpacked_destroy(&r->record_msg);
	msgpack_unpacked_destroy(&r->header_msg);
	msgpack_unpacker_destroy(&r->unpacker);
	if (r->fp != stdin)
		fclose(r->fp);
	free(r->schema);
	free(r->path);
	free(r);
}

const msgpack_object *stream_header_get(const struct stream_reader *r, const char *key)
{
	return msgpack_map_get(&r->header, key);
}

void stream_tokenizer(const struct stream_reader *r, char sha256[65], uint32_t *vocab_size)
{
	const msgpack_object *t = stream_header_get(r, "tokenizer");
	if (!t || t->type != MSGPACK_OBJECT_MAP)
		die_data(r->path, 0, "tokenizer", "missing: the header does not say which tokenizer made the ids");
	const msgpack_object *h = msgpack_map_get(t, "sha256");
	const msgpack_object *v = msgpack_map_get(t, "vocab_size");
	size_t len;
	const char *s = h ? obj_str(h, &len) : NULL;
	if (!s || len != 64)
		die_data(r->path, 0, "tokenizer.sha256", "missing or not 64 hex digits");
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			die_data(r->path, 0, "tokenizer.sha256", "not 64 lowercase hex digits");
	memcpy(sha256, s, 64);
	sha256[64] = '\0';
	if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		die_data(r->path, 0, "tokenizer.vocab_size", "missing or not an integer");
	if (v->via.u64 < 1 || v->via.u64 > UINT32_MAX)
		die_data(r->path, 0, "tokenizer.vocab_size", "%llu is not a vocabulary size (1..2^32-1)",
			 (unsigned long long)v->via.u64);
	*vocab_size = (uint32_t)v->via.u64;
}

void stream_require_tokenizer(const struct stream_reader *r, const char *want_sha256, const char *want_name)
{
	char have[65];
	uint32_t vocab;
	stream_tokenizer(r, have, &vocab);
	if (strcmp(have, want_sha256) != 0)
		die_data(r->path, 0, "tokenizer.sha256",
			 "made with tokenizer %.12s…, but %s has tokenizer %.12s…: re-tokenize with the model's tokenizer",
			 have, want_name, want_sha256);
}

// ---- record fields ----

static const msgpack_object *need(const struct stream_reader *r, const msgpack_object *rec, const char *key)
{
	const msgpack_object *v = msgpack_map_get(rec, key);
	if (!v)
		rec_die(r, key, "missing");
	return v;
}

int rec_has(const msgpack_object *rec, const char *key)
{
	const msgpack_object *v = msgpack_map_get(rec, key);
	return v && v->type != MSGPACK_OBJECT_NIL;
}

const char *rec_str(const struct stream_reader *r, const msgpack_object *rec, const char *key, size_t *len)
{
	const msgpack_object *v = need(r, rec, key);
	const char *s = obj_str(v, len);
	if (!s)
		rec_die(r, key, "not a string");
	return s;
}

char *rec_strdup(const struct stream_reader *r, const msgpack_object *rec, const char *key)
{
	size_t len;
	const char *s = rec_str(r, rec, key, &len);
	return xstrndup(s, len);
}

int64_t rec_int(const struct stream_reader *r, const msgpack_object *rec, const char *key)
{
	const msgpack_object *v = need(r, rec, key);
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (v->via.u64 > INT64_MAX)
			rec_die(r, key, "integer out of range");
		return (int64_t)v->via.u64;
	}
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return v->via.i64;
	rec_die(r, key, "not an integer");
}

double rec_double(const struct stream_reader *r, const msgpack_object *rec, const char *key)
{
	const msgpack_object *v = need(r, rec, key);
	switch (v->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return v->via.f64;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return (double)v->via.u64;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return (double)v->via.i64;
	default:
		rec_die(r, key, "not a number");
	}
}

int bin_to_u32(const msgpack_object *bin, struct u32vec *out)
{
	if (bin->type != MSGPACK_OBJECT_BIN || bin->via.bin.size % 4 != 0)
		return -1;
	size_t n = bin->via.bin.size / 4;
	out->len = 0;
	u32vec_reserve(out, n);
	const uint8_t *p = (const uint8_t *)bin->via.bin.ptr;
	for (size_t i = 0; i < n; i++)
		out->data[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
			       (uint32_t)p[4 * i + 3] << 24;
	out->len = n;
	return 0;
}

size_t rec_u32bin(const struct stream_reader *r, const msgpack_object *rec, const char *key, struct u32vec *out)
{
	const msgpack_object *v = need(r, rec, key);
	if (v->type != MSGPACK_OBJECT_BIN)
		rec_die(r, key, "not a bin (token ids are bin of little-endian uint32)");
	if (bin_to_u32(v, out) != 0)
		rec_die(r, key, "bin of %u bytes is not a whole number of uint32", v->via.bin.size);
	return out->len;
}

const uint8_t *rec_bin(const struct stream_reader *r, const msgpack_object *rec, const char *key, size_t *len)
{
	const msgpack_object *v = need(r, rec, key);
	if (v->type != MSGPACK_OBJECT_BIN)
		rec_die(r, key, "not a bin");
	*len = v->via.bin.size;
	return (const uint8_t *)v->via.bin.ptr;
}

// ----------------------------------------------------------------------------
// JSON values as msgpack (object -> map, array -> array, integers stay integers)

void pack_json(msgpack_packer *pk, const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *v;
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, k, v) {
			pack_str(pk, k);
			pack_json(pk, v);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v) pack_json(pk, v);
		break;
	}
	case JSON_STRING: pack_str(pk, json_string_value(j)); break;
	case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
	case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
	case JSON_TRUE: msgpack_pack_true(pk); break;
	case JSON_FALSE: msgpack_pack_false(pk); break;
	default: msgpack_pack_nil(pk); break;
	}
}
