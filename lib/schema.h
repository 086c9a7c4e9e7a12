// schema.h — checking a stream against its spec in schemas/NAME.json.
//
// A spec lists the header's and a record's fields with a type (str, int, uint, float, bool, bin_u32, bin_u8,
// map, array, array_str, array_bin_u32, any), "required", "nullable" and, for bins, "same_length_as" another
// field; value checks "token_ids" (ids below the header's tokenizer.vocab_size), "max" (bin_u8 bytes, uint
// values) and "finite" (float, or every number of an array).  Specs are found in $MEDMOE_SCHEMAS, else next to the program (../schemas, then
// ../share/medmoe/schemas).
#ifndef MEDMOE_SCHEMA_H
#define MEDMOE_SCHEMA_H

#include <msgpack.h>
#include "stream.h"

struct schema;

// Load the spec named NAME (e.g. "medmoe.tokens"); dies (exit 65) when it is missing or malformed.
struct schema *schema_load(const char *name);
// The spec of stream R's own schema: a name that is not one of ours (or not a plain name at all: the header
// is input) → exit 65 naming the stream.
struct schema *schema_load_stream(const struct stream_reader *r);
void schema_free(struct schema *s);
int schema_version(const struct schema *s);
// Check a header (record 0) or a record against the spec; dies naming file, record and field.
void schema_check_header(const struct schema *s, const struct stream_reader *r);
void schema_check_record(const struct schema *s, const struct stream_reader *r, const msgpack_object *rec);

#endif
