// stream.h — medmoe streams: a msgpack header map, then one msgpack map per record (DESIGN §2).
//
// Header keys every stream has: "schema" (e.g. "medmoe.tokens"), "version" (int), "program", "program_version".
// Token-bearing streams add "tokenizer": {"sha256", "vocab_size", "special": {name: id}}.
// Token id arrays are msgpack bin of little-endian uint32; loss masks are bin of uint8.
//
// Reading is buffered and incremental: it works on pipes and on files far bigger than memory.  Every error
// names the file, the record (the header is record 0, the first record 1) and the field, and exits 65.
#ifndef MEDMOE_STREAM_H
#define MEDMOE_STREAM_H

#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include "outfile.h"
#include "vec.h"

// ---- writing ----

struct stream_writer {
	struct outfile *out;
	msgpack_packer pk;
	int64_t n_records;
};

// Open PATH ("-" = stdout) for writing under a temporary name.  Nothing is visible until stream_commit.
struct stream_writer *stream_create(const char *path);
// Write the header map: the four common keys, then N_EXTRA more key/value pairs the caller packs next.
void stream_begin_header(struct stream_writer *w, const char *schema, int version, const char *program,
			 size_t n_extra);
// Start a record map of N_FIELDS key/value pairs; the caller packs them next.
void stream_begin_record(struct stream_writer *w, size_t n_fields);
// Flush, fsync, rename into place.  Dies on a write error (a full disk), leaving no output.
void stream_commit(struct stream_writer *w);

// Packing helpers (keys are always strings).
void pack_str(msgpack_packer *pk, const char *s);
void pack_strn(msgpack_packer *pk, const char *s, size_t len);
void pack_kv_str(msgpack_packer *pk, const char *key, const char *val);   // val NULL packs nil
void pack_kv_strn(msgpack_packer *pk, const char *key, const char *val, size_t len);
void pack_kv_int(msgpack_packer *pk, const char *key, int64_t val);
void pack_kv_double(msgpack_packer *pk, const char *key, double val);
void pack_kv_bool(msgpack_packer *pk, const char *key, int val);
void pack_u32bin(msgpack_packer *pk, const uint32_t *ids, size_t n);       // bin, little-endian u32
void pack_kv_u32bin(msgpack_packer *pk, const char *key, const uint32_t *ids, size_t n);
void pack_kv_u8bin(msgpack_packer *pk, const char *key, const uint8_t *bytes, size_t n);

// The tokenizer identity a token-bearing header carries.
struct tokenizer_identity {
	char sha256[65];
	uint32_t vocab_size;
	size_t n_special;
	const char **special_names;
	const uint32_t *special_ids;
};
void pack_kv_tokenizer(msgpack_packer *pk, const struct tokenizer_identity *id);

// A jansson value as the same msgpack value (objects become maps in key order, integers stay integers).
struct json_t;
void pack_json(msgpack_packer *pk, const struct json_t *j);

// ---- reading ----

struct stream_reader {
	char *path;               // for messages ("-" for stdin)
	FILE *fp;
	msgpack_unpacker unpacker;
	msgpack_unpacked header_msg;
	msgpack_unpacked record_msg;
	msgpack_object header;    // valid until stream_close
	char *schema;
	int version;
	int64_t record;           // number of the record last returned (0 = header)
	uint64_t bytes_fed;       // bytes read from the file into the unpacker
	uint64_t record_offset;   // byte offset of the record last returned
	uint64_t object_end;      // byte offset just past the last whole object read
	int eof;
};

// Open PATH ("-" = stdin), read and check the header: SCHEMA (NULL accepts any) and a version no newer than
// MAX_VERSION.  A wrong schema, a newer version, an empty or truncated file → exit 65.
struct stream_reader *stream_open(const char *path, const char *schema, int max_version);
// The same on an open FP (stdin, a memory stream in the fuzz targets), called PATH in messages; closed by
// stream_close unless it is stdin.
struct stream_reader *stream_open_fp(FILE *fp, const char *path, const char *schema, int max_version);
// stream_open_fp in its two steps: a reader (nothing read yet), then its header read and checked.
struct stream_reader *stream_reader_new(FILE *fp, const char *path);
void stream_read_header(struct stream_reader *r, const char *schema, int max_version);
// The next record (a map) into *REC, valid until the next call.  1 = record, 0 = end of stream.
int stream_next(struct stream_reader *r, msgpack_object *rec);
// Re-position a file stream at OFFSET (a record_offset seen before); RECORD is the number it had.
void stream_seek(struct stream_reader *r, uint64_t offset, int64_t record);
void stream_close(struct stream_reader *r);

// The header's value for KEY, or NULL.
const msgpack_object *stream_header_get(const struct stream_reader *r, const char *key);
// The header's tokenizer identity (sha256 and vocab size); exits 65 when it has none.
void stream_tokenizer(const struct stream_reader *r, char sha256[65], uint32_t *vocab_size);
// Refuse (exit 65) a stream whose tokenizer is not WANT_SHA256, naming both sides.
void stream_require_tokenizer(const struct stream_reader *r, const char *want_sha256, const char *want_name);

// ---- record fields: each dies naming file, record and field when the field is missing or mistyped ----

// The value of KEY in map OBJ, or NULL.
const msgpack_object *msgpack_map_get(const msgpack_object *obj, const char *key);
int rec_has(const msgpack_object *rec, const char *key);
// String field; *LEN gets its length.  Not NUL-terminated: use rec_strdup for a C string.
const char *rec_str(const struct stream_reader *r, const msgpack_object *rec, const char *key, size_t *len);
char *rec_strdup(const struct stream_reader *r, const msgpack_object *rec, const char *key);
int64_t rec_int(const struct stream_reader *r, const msgpack_object *rec, const char *key);
double rec_double(const struct stream_reader *r, const msgpack_object *rec, const char *key);
// bin of u32 into OUT (replacing its contents); returns the count.
size_t rec_u32bin(const struct stream_reader *r, const msgpack_object *rec, const char *key, struct u32vec *out);
// Raw bin field: pointer and length (no copy).
const uint8_t *rec_bin(const struct stream_reader *r, const msgpack_object *rec, const char *key, size_t *len);
// Decode a bin object of u32 (little-endian) into OUT; returns -1 when its size is not a multiple of 4.
int bin_to_u32(const msgpack_object *bin, struct u32vec *out);

// A bad-field error for callers that check values themselves.
noreturn void rec_die(const struct stream_reader *r, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
