// json_out.h — writing msgpack objects as JSON text (for stream2json and for reports).
//
// Bin fields have no element type in msgpack; medmoe's convention (schemas/README.md) is that a bin named
// "mask" holds uint8 and every other bin holds little-endian uint32 (token ids).
#ifndef MEDMOE_JSON_OUT_H
#define MEDMOE_JSON_OUT_H

#include <msgpack.h>
#include <stdio.h>

// Write S (LEN bytes) as a JSON string literal.
void json_write_string(FILE *fp, const char *s, size_t len);
// Write OBJ as compact JSON.  KEY is the map key it sits under (NULL at top level); it picks the bin type.
void json_write_object(FILE *fp, const msgpack_object *obj, const char *key, size_t key_len);

#endif
