// json_out.c — msgpack objects as JSON.
#include "json_out.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void json_write_string(FILE *fp, const char *s, size_t len)
{
	putc('"', fp);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': fputs("\\\"", fp); break;
		case '\\': fputs("\\\\", fp); break;
		case '\n': fputs("\\n", fp); break;
		case '\r': fputs("\\r", fp); break;
		case '\t': fputs("\\t", fp); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(fp, "\\u%04x", c);
			else
				putc(c, fp);
		}
	}
	putc('"', fp);
}

static int key_is(const char *key, size_t len, const char *want)
{
	return key && len == strlen(want) && memcmp(key, want, len) == 0;
}

static void write_bin(FILE *fp, const msgpack_object *obj, const char *key, size_t key_len)
{
	const uint8_t *p = (const uint8_t *)obj->via.bin.ptr;
	uint32_t n = obj->via.bin.size;
	putc('[', fp);
	if (key_is(key, key_len, "mask") || n % 4 != 0) {
		for (uint32_t i = 0; i < n; i++)
			fprintf(fp, i ? ",%u" : "%u", p[i]);
	} else {
		for (uint32_t i = 0; i < n; i += 4) {
			uint32_t v = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
				     (uint32_t)p[i + 3] << 24;
			fprintf(fp, i ? ",%" PRIu32 : "%" PRIu32, v);
		}
	}
	putc(']', fp);
}

void json_write_object(FILE *fp, const msgpack_object *obj, const char *key, size_t key_len)
{
	switch (obj->type) {
	case MSGPACK_OBJECT_NIL: fputs("null", fp); break;
	case MSGPACK_OBJECT_BOOLEAN: fputs(obj->via.boolean ? "true" : "false", fp); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(fp, "%" PRIu64, obj->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(fp, "%" PRId64, obj->via.i64); break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isfinite(obj->via.f64))
			fprintf(fp, "%.9g", obj->via.f64);
		else
			fputs("null", fp);  // JSON has no NaN/Inf
		break;
	case MSGPACK_OBJECT_STR: json_write_string(fp, obj->via.str.ptr, obj->via.str.size); break;
	case MSGPACK_OBJECT_BIN: write_bin(fp, obj, key, key_len); break;
	case MSGPACK_OBJECT_ARRAY:
		putc('[', fp);
		for (uint32_t i = 0; i < obj->via.array.size; i++) {
			if (i)
				putc(',', fp);
			// Elements of an array inherit the array's key (e.g. option_ids: [bin, bin]).
			json_write_object(fp, &obj->via.array.ptr[i], key, key_len);
		}
		putc(']', fp);
		break;
	case MSGPACK_OBJECT_MAP:
		putc('{', fp);
		for (uint32_t i = 0; i < obj->via.map.size; i++) {
			const msgpack_object_kv *kv = &obj->via.map.ptr[i];
			if (i)
				putc(',', fp);
			const char *k = NULL;
			size_t klen = 0;
			if (kv->key.type == MSGPACK_OBJECT_STR) {
				k = kv->key.via.str.ptr;
				klen = kv->key.via.str.size;
				json_write_string(fp, k, klen);
			} else {
				putc('"', fp);
				json_write_object(fp, &kv->key, NULL, 0);
				putc('"', fp);
			}
			putc(':', fp);
			json_write_object(fp, &kv->val, k, klen);
		}
		putc('}', fp);
		break;
	case MSGPACK_OBJECT_EXT:
		fputs("null", fp);
		break;
	}
}
