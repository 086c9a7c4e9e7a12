// cuts — test helper: the structural boundaries of a file, where the hostile-input tests truncate it.
//
//   cuts msgpack|json|safetensors|idx FILE
//
// Prints one line per boundary, "OFFSET KIND", OFFSET < the file's size.  KIND is "top" where the bytes before
// OFFSET are a whole number of top-level values (a stream cut there is a shorter valid stream) and "inner"
// everywhere else (a reader must refuse the cut file).  msgpack: the start of every value; json: every bracket,
// brace, comma, colon and string start, up to the last byte that is not white space; safetensors: inside the
// length prefix, the JSON header's boundaries, the end of the header, every tensor's first byte; idx: every
// 8-byte offset and inside the first one.  Plain C and jansson, one cc line.
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *buf;
static size_t size;

static uint64_t be(size_t at, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | buf[at + i];
	return v;
}

// One msgpack value at *pos: print its start (a top-level value's start is printed by the caller), move past
// it.  -1 when the bytes end first.
static int walk(size_t *pos, int depth)
{
	if (*pos >= size)
		return -1;
	if (depth > 0 || *pos == 0)
		printf("%zu inner\n", *pos);
	uint8_t t = buf[*pos];
	uint64_t body = 0, count = 0;
	int hdr = 1, container = 0, per = 1, lb = 0;
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
	} else if (t <= 0x8f) {
		container = 1, per = 2, count = t & 15;
	} else if (t <= 0x9f) {
		container = 1, count = t & 15;
	} else if (t <= 0xbf) {
		body = t & 31;
	} else {
		switch (t) {
		case 0xc4: case 0xd9: lb = 1; break;
		case 0xc5: case 0xda: lb = 2; break;
		case 0xc6: case 0xdb: lb = 4; break;
		case 0xc7: lb = 1, body = 1; break;
		case 0xc8: lb = 2, body = 1; break;
		case 0xc9: lb = 4, body = 1; break;
		case 0xca: case 0xce: case 0xd2: body = 4; break;
		case 0xcb: case 0xcf: case 0xd3: body = 8; break;
		case 0xcc: case 0xd0: body = 1; break;
		case 0xcd: case 0xd1: body = 2; break;
		case 0xd4: body = 2; break;
		case 0xd5: body = 3; break;
		case 0xd6: body = 5; break;
		case 0xd7: body = 9; break;
		case 0xd8: body = 17; break;
		case 0xdc: container = 1, lb = 2; break;
		case 0xdd: container = 1, lb = 4; break;
		case 0xde: container = 1, lb = 2, per = 2; break;
		case 0xdf: container = 1, lb = 4, per = 2; break;
		default: return -1;
		}
	}
	if (*pos + 1 + lb > size)
		return -1;
	if (lb) {
		uint64_t n = be(*pos + 1, lb);
		if (container)
			count = n;
		else
			body += n;
		hdr += lb;
	}
	*pos += hdr;
	if (container) {
		for (uint64_t i = 0; i < count * per; i++)
			if (walk(pos, depth + 1) != 0)
				return -1;
		return 0;
	}
	if (*pos + body > size)
		return -1;
	*pos += body;
	return 0;
}

static void json_cuts(size_t from, size_t to)
{
	size_t last = to;
	while (last > from && strchr(" \t\r\n", buf[last - 1]))
		last--;
	int in_str = 0;
	for (size_t i = from; i < last; i++) {
		unsigned char c = buf[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
			printf("%zu inner\n", i);
			printf("%zu inner\n", i + 1);
		} else if (strchr("{}[],:", c)) {
			printf("%zu inner\n", i);
			if (i + 1 < last)
				printf("%zu inner\n", i + 1);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: cuts msgpack|json|safetensors|idx FILE\n");
		return 2;
	}
	FILE *fp = fopen(argv[2], "rb");
	if (!fp) {
		perror(argv[2]);
		return 1;
	}
	size_t cap = 1 << 16, k;
	buf = malloc(cap);
	while ((k = fread(buf + size, 1, cap - size, fp)) > 0)
		if ((size += k) == cap)
			buf = realloc(buf, cap *= 2);
	fclose(fp);
	if (strcmp(argv[1], "msgpack") == 0) {
		size_t pos = 0;
		while (pos < size) {
			if (pos > 0)
				printf("%zu top\n", pos);
			if (walk(&pos, 0) != 0)
				return 1;
		}
	} else if (strcmp(argv[1], "json") == 0) {
		json_cuts(0, size);
	} else if (strcmp(argv[1], "safetensors") == 0) {
		if (size < 8)
			return 1;
		uint64_t hlen = 0;
		for (int i = 7; i >= 0; i--)
			hlen = hlen << 8 | buf[i];
		for (int i = 1; i <= 8; i++)
			printf("%d inner\n", i);
		if (8 + hlen > size)
			return 1;
		json_cuts(8, 8 + hlen);
		if (8 + hlen < size)
			printf("%llu inner\n", (unsigned long long)(8 + hlen));
		json_t *h = json_loadb((const char *)buf + 8, hlen, 0, NULL);
		const char *key;
		json_t *v;
		json_object_foreach(h, key, v) {
			json_t *o = json_object_get(v, "data_offsets");
			json_int_t b = json_integer_value(json_array_get(o, 0));
			if (json_is_array(o) && 8 + hlen + (uint64_t)b + 1 < size)
				printf("%llu inner\n", (unsigned long long)(8 + hlen + (uint64_t)b + 1));
		}
		json_decref(h);
	} else if (strcmp(argv[1], "idx") == 0) {
		for (size_t i = 1; i < size; i += i < 8 ? 1 : 8)
			printf("%zu inner\n", i);
	} else {
		return 2;
	}
	return 0;
}
