// mpk_scan.c — a non-allocating walk over one msgpack object (formats: the msgpack spec, "Formats" table).
#include "mpk_scan.h"

#include <string.h>

void mpk_scan_init(struct mpk_scan *s)
{
	memset(s, 0, sizeof *s);
}

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

// One value ended: close every container it completes.  1 when the whole object is done.
static int value_done(struct mpk_scan *s)
{
	while (s->depth > 0) {
		if (--s->left[s->depth - 1] > 0)
			return 0;
		s->depth--;
	}
	return 1;
}

static enum mpk_status bad(struct mpk_scan *s, const char *why)
{
	s->why = why;
	return MPK_BAD;
}

enum mpk_status mpk_scan_feed(struct mpk_scan *s, const void *buf, size_t avail)
{
	const uint8_t *p = buf;
	for (;;) {
		if (s->done)
			return s->pos <= avail ? MPK_COMPLETE : MPK_NEED_MORE;
		if (s->pos >= avail)
			return MPK_NEED_MORE;
		uint8_t t = p[s->pos];
		// header size, then what follows: a body of `body` bytes, or a container of `count` values
		int hdr = 1, len_bytes = 0, is_container = 0, per_entry = 1;
		uint64_t body = 0, count = 0;
		if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
			// fixint, nil, bool
		} else if (t <= 0x8f) {
			is_container = 1, per_entry = 2, count = t & 0x0f;
		} else if (t <= 0x9f) {
			is_container = 1, count = t & 0x0f;
		} else if (t <= 0xbf) {
			body = t & 0x1f;
		} else {
			switch (t) {
			case 0xc1: return bad(s, "byte 0xc1 (never used in msgpack)");
			case 0xc4: case 0xd9: len_bytes = 1; break;                 // bin8, str8
			case 0xc5: case 0xda: len_bytes = 2; break;                 // bin16, str16
			case 0xc6: case 0xdb: len_bytes = 4; break;                 // bin32, str32
			case 0xc7: len_bytes = 1, body = 1; break;                  // ext8: length, type
			case 0xc8: len_bytes = 2, body = 1; break;
			case 0xc9: len_bytes = 4, body = 1; break;
			case 0xca: case 0xce: case 0xd2: body = 4; break;           // float32, uint32, int32
			case 0xcb: case 0xcf: case 0xd3: body = 8; break;
			case 0xcc: case 0xd0: body = 1; break;
			case 0xcd: case 0xd1: body = 2; break;
			case 0xd4: body = 2; break;                                 // fixext N: type + N bytes
			case 0xd5: body = 3; break;
			case 0xd6: body = 5; break;
			case 0xd7: body = 9; break;
			case 0xd8: body = 17; break;
			case 0xdc: is_container = 1, len_bytes = 2; break;          // array16
			case 0xdd: is_container = 1, len_bytes = 4; break;
			case 0xde: is_container = 1, len_bytes = 2, per_entry = 2; break;   // map16
			case 0xdf: is_container = 1, len_bytes = 4, per_entry = 2; break;
			}
		}
		if (len_bytes) {
			if (avail - s->pos < (uint64_t)1 + len_bytes)
				return MPK_NEED_MORE;   // the length itself has not arrived
			uint64_t n = be(p + s->pos + 1, len_bytes);
			hdr += len_bytes;
			if (is_container)
				count = n;
			else
				body += n;
		}
		if (is_container) {
			uint64_t values = count * per_entry;   // count < 2^32: no overflow
			if (values > MPK_MAX_OBJECT_VALUES - s->values)
				return bad(s, "more values than a record may hold (a corrupt array or map count?)");
			s->values += values;
			s->pos += (uint64_t)hdr;
			if (values > 0) {
				if (s->depth == MPK_MAX_DEPTH)
					return bad(s, "arrays and maps nested too deep");
				s->left[s->depth++] = values;
				continue;
			}
		} else {
			if (body > MPK_MAX_OBJECT_BYTES)
				return bad(s, "a string or bin longer than a record may be (a corrupt length?)");
			s->values++;
			if (s->values > MPK_MAX_OBJECT_VALUES)
				return bad(s, "more values than a record may hold");
			s->pos += (uint64_t)hdr + body;
		}
		if (s->pos > MPK_MAX_OBJECT_BYTES)
			return bad(s, "a record longer than the limit (1 GiB)");
		s->done = value_done(s);
	}
}

const char *mpk_unpack(msgpack_unpacked *msg, const void *buf, size_t len, size_t *off)
{
	struct mpk_scan s;
	mpk_scan_init(&s);
	if (*off > len)
		return "truncated";
	const char *start = (const char *)buf + *off;
	switch (mpk_scan_feed(&s, start, len - *off)) {
	case MPK_BAD: return s.why;
	case MPK_NEED_MORE: return "truncated";
	case MPK_COMPLETE: break;
	}
	size_t used = 0;
	msgpack_unpack_return ret = msgpack_unpack_next(msg, start, (size_t)s.pos, &used);
	if (ret != MSGPACK_UNPACK_SUCCESS || used != s.pos)
		return ret == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory" : "not msgpack";
	*off += used;
	return NULL;
}
