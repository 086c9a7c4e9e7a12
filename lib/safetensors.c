// safetensors.c — memory-mapped safetensors reader with full header validation, and an atomic writer.
#include "safetensors.h"

#include <endian.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "die.h"
#include "infile.h"
#include "outfile.h"

// The reference reader's limit (safetensors/src/tensor.rs MAX_HEADER_SIZE).
#define ST_MAX_HEADER 100000000ULL

struct st_file {
	char *path;
	const unsigned char *map;
	size_t size;
	json_t *metadata;   // the "__metadata__" object, or NULL
};

struct safetensors {
	struct st_file *files;
	size_t n_files;
	struct st_tensor *tensors;   // sorted by name once opening is done
	size_t n_tensors;
};

size_t st_dtype_size(enum st_dtype dtype)
{
	return dtype == ST_F32 ? 4 : 2;
}

const char *st_dtype_name(enum st_dtype dtype)
{
	switch (dtype) {
	case ST_F32: return "F32";
	case ST_F16: return "F16";
	case ST_BF16: return "BF16";
	}
	return "?";
}

static int parse_dtype(const char *s, enum st_dtype *out)
{
	if (strcmp(s, "F32") == 0) *out = ST_F32;
	else if (strcmp(s, "F16") == 0) *out = ST_F16;
	else if (strcmp(s, "BF16") == 0) *out = ST_BF16;
	else return -1;
	return 0;
}

// ----------------------------------------------------------------------------
// dtype conversion

float st_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;   // bf16 is the top half of an fp32
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t st_f32_to_bf16(float x)
{
	uint32_t bits;
	memcpy(&bits, &x, 4);
	if ((bits & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((bits >> 16) | 0x0040);   // quiet NaN, sign kept
	// round to nearest, ties to even, on the 16 dropped bits
	bits += 0x7fffu + ((bits >> 16) & 1u);
	return (uint16_t)(bits >> 16);
}

#if defined(__clang__) && __clang_major__ < 15
// clang before 15 has no _Float16 on x86 (the fuzz build, tests/fuzz): the same IEEE binary16 conversions by
// hand, round to nearest even, subnormals and NaN kept.
float st_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
	if (exp == 0 && mant == 0) {
		bits = sign;
	} else if (exp == 0) {   // subnormal: normalise
		exp = 127 - 15 + 1;
		while (!(mant & 0x400)) {
			mant <<= 1;
			exp--;
		}
		bits = sign | exp << 23 | (mant & 0x3ff) << 13;
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | mant << 13;
	} else {
		bits = sign | (exp + 112) << 23 | mant << 13;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t st_f32_to_f16(float x)
{
	uint32_t bits;
	memcpy(&bits, &x, 4);
	uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
	uint32_t a = bits & 0x7fffffffu;
	if (a > 0x7f800000u)
		return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff);
	if (a >= 0x477ff000u)   // 65520 and up round to infinity
		return sign | 0x7c00;
	if (a < 0x38800000u) {  // below 2^-14: a multiple of 2^-24, rounded to nearest even (exact scaling)
		float f;
		memcpy(&f, &a, 4);
		return sign | (uint16_t)rintf(f * 16777216.0f);
	}
	uint32_t h = ((a >> 23) - 112) << 10 | (a & 0x7fffff) >> 13, rem = a & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return sign | (uint16_t)h;
}
#else
// The compiler's _Float16 (IEEE binary16) does the rounding and the subnormals right.
float st_f16_to_f32(uint16_t h)
{
	_Float16 v;
	memcpy(&v, &h, 2);
	return (float)v;
}

uint16_t st_f32_to_f16(float x)
{
	_Float16 v = (_Float16)x;
	uint16_t h;
	memcpy(&h, &v, 2);
	return h;
}
#endif

void st_tensor_to_f32(const struct st_tensor *t, float *out)
{
	const unsigned char *p = t->data;
	int64_t n = t->nelem;
	switch (t->dtype) {
	case ST_F32:
		// Little-endian on disk; the hosts we build for are little-endian too (checked in safetensors_open).
		memcpy(out, p, (size_t)n * 4);
		break;
	case ST_BF16:
#pragma omp parallel for if (n > 1 << 16)
		for (int64_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			out[i] = st_bf16_to_f32(h);
		}
		break;
	case ST_F16:
#pragma omp parallel for if (n > 1 << 16)
		for (int64_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			out[i] = st_f16_to_f32(h);
		}
		break;
	}
}

// The first of N 16-bit words STRIDE bytes apart from P whose bits under MASK are all ones, or -1.  Each block of
// 4096 is OR-reduced without a branch first, so the common case (none) vectorizes.
static int64_t first_all_ones(const unsigned char *p, int64_t n, size_t stride, uint16_t mask)
{
	for (int64_t b = 0; b < n; b += 4096) {
		int64_t e = b + 4096 < n ? b + 4096 : n;
		int hit = 0;
		uint16_t x;
		for (int64_t i = b; i < e; i++) {
			memcpy(&x, p + stride * (size_t)i, 2);
			hit |= (x & mask) == mask;
		}
		for (int64_t i = b; hit && i < e; i++) {
			memcpy(&x, p + stride * (size_t)i, 2);
			if ((x & mask) == mask)
				return i;
		}
	}
	return -1;
}

void st_require_finite(const struct st_tensor *t)
{
	const unsigned char *p = t->data;
	// NaN and infinity are the all-ones exponents: bits 0x7c00 of an f16, 0x7f80 of a bf16 and of an f32's upper
	// half (little-endian, as safetensors stores)
	int64_t at = t->dtype == ST_F16	 ? first_all_ones(p, t->nelem, 2, 0x7c00u)
		   : t->dtype == ST_BF16 ? first_all_ones(p, t->nelem, 2, 0x7f80u)
					 : first_all_ones(p + 2, t->nelem, 4, 0x7f80u);
	if (at >= 0) {
		float v;
		st_tensor_to_f32(&(struct st_tensor){.dtype = t->dtype, .nelem = 1,
				 .data = p + (size_t)at * st_dtype_size(t->dtype)}, &v);
		die_data(t->file, -1, t->name, "element %lld is %s: a damaged checkpoint (a weight is never NaN or "
			 "infinite)", (long long)at, isnan(v) ? "NaN" : "infinite");
	}
}

// ----------------------------------------------------------------------------
// reader

static int cmp_offset(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;
	const unsigned char *xa = x->data, *ya = y->data;
	if (xa != ya)
		return xa < ya ? -1 : 1;
	return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

// A non-negative JSON integer, or -1.
static int64_t json_u63(const json_t *v)
{
	if (!json_is_integer(v))
		return -1;
	json_int_t x = json_integer_value(v);
	return x < 0 ? -1 : (int64_t)x;
}

// Parse and validate one tensor entry; its data pointer is first set to base + BEGIN (checked against the data
// buffer once all entries are known).
static void parse_entry(struct st_file *f, const char *name, json_t *v, const unsigned char *data, struct st_tensor *t)
{
	const char *path = f->path;
	if (!json_is_object(v))
		die_data(path, -1, name, "header entry is not an object");
	json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
	       *jo = json_object_get(v, "data_offsets");
	if (!json_is_string(jd))
		die_data(path, -1, name, "dtype missing or not a string");
	if (parse_dtype(json_string_value(jd), &t->dtype) != 0)
		die_data(path, -1, name, "dtype %s not supported (F32, F16, BF16 are)", json_string_value(jd));
	if (!json_is_array(js) || json_array_size(js) > ST_MAX_DIMS)
		die_data(path, -1, name, "shape missing, not an array or more than %d dims", ST_MAX_DIMS);
	if (!json_is_array(jo) || json_array_size(jo) != 2)
		die_data(path, -1, name, "data_offsets missing or not [begin, end]");
	t->name = xstrdup(name);
	t->file = f->path;
	t->ndim = (int)json_array_size(js);
	uint64_t nelem = 1;
	for (int d = 0; d < t->ndim; d++) {
		int64_t n = json_u63(json_array_get(js, d));
		if (n < 0)
			die_data(path, -1, name, "shape[%d] is not a non-negative integer", d);
		t->shape[d] = n;
		if (__builtin_mul_overflow(nelem, (uint64_t)n, &nelem) || nelem > INT64_MAX / 4)
			die_data(path, -1, name, "shape overflows");
	}
	t->nelem = (int64_t)nelem;
	int64_t begin = json_u63(json_array_get(jo, 0)), end = json_u63(json_array_get(jo, 1));
	if (begin < 0 || end < 0)
		die_data(path, -1, name, "data_offsets are not two non-negative integers");
	if (end < begin)
		die_data(path, -1, name, "data_offsets [%lld, %lld] end before they begin", (long long)begin,
			 (long long)end);
	uint64_t want = nelem * st_dtype_size(t->dtype);
	if ((uint64_t)(end - begin) != want)
		die_data(path, -1, name, "data_offsets span %lld bytes but %s shape needs %llu", (long long)(end - begin),
			 st_dtype_name(t->dtype), (unsigned long long)want);
	size_t data_len = f->size - (size_t)(data - f->map);
	if ((uint64_t)end > data_len)
		die_data(path, -1, name, "data_offsets end %lld is past the end of the file (data section %zu bytes)",
			 (long long)end, data_len);
	t->data = data + begin;
	t->nbytes = (size_t)want;
}

// Map and validate one file, appending its tensors to ST.
static void open_file(struct safetensors *st, const char *path)
{
	if (*(const unsigned char *)&(uint16_t){1} != 1)
		die(EXIT_FAIL, "safetensors: this reader assumes a little-endian host");
	st->files = xrealloc(st->files, (st->n_files + 1) * sizeof *st->files);
	struct st_file *f = &st->files[st->n_files++];
	memset(f, 0, sizeof *f);
	f->path = xstrdup(path);
	struct stat sb;
	int fd = infile_open(path, &sb);   // a FIFO is refused, not waited on
	if (fd < 0)
		die_errno("%s", path);
	f->size = (size_t)sb.st_size;
	if (f->size < 8)
		die_data(path, -1, "header", "file is %zu bytes, too short for the 8-byte header length", f->size);
	f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (f->map == MAP_FAILED)
		die_errno("mmap %s", path);
	close(fd);

	uint64_t hlen;
	memcpy(&hlen, f->map, 8);
	hlen = le64toh(hlen);
	if (hlen > ST_MAX_HEADER)
		die_data(path, -1, "header", "header length %llu is over the 100 MB limit", (unsigned long long)hlen);
	if (hlen > f->size - 8)
		die_data(path, -1, "header", "header length %llu runs past the end of the file (%zu bytes): truncated?",
			 (unsigned long long)hlen, f->size);
	json_error_t err;
	json_t *root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
	if (!root)
		die_data(path, -1, "header", "bad JSON at byte %d: %s", err.position, err.text);
	if (!json_is_object(root))
		die_data(path, -1, "header", "not a JSON object");
	const unsigned char *data = f->map + 8 + hlen;
	size_t data_len = f->size - 8 - (size_t)hlen;

	size_t first = st->n_tensors;
	st->tensors = xrealloc(st->tensors, (st->n_tensors + json_object_size(root)) * sizeof *st->tensors);
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		if (strcmp(key, "__metadata__") == 0) {
			if (!json_is_object(v))
				die_data(path, -1, "__metadata__", "not an object");
			const char *mk;
			json_t *mv;
			json_object_foreach(v, mk, mv) {
				if (!json_is_string(mv))
					die_data(path, -1, "__metadata__", "value of %s is not a string", mk);
			}
			f->metadata = json_incref(v);
			continue;
		}
		struct st_tensor *t = &st->tensors[st->n_tensors++];
		memset(t, 0, sizeof *t);
		parse_entry(f, key, v, data, t);
	}
	json_decref(root);

	// Sorted by offset (in place: the table is sorted by name later), the tensors must tile the data section
	// exactly: no gap, no overlap, nothing left over.
	struct st_tensor *mine = st->tensors + first;
	size_t n = st->n_tensors - first;
	qsort(mine, n, sizeof *mine, cmp_offset);
	size_t expect = 0;
	for (size_t i = 0; i < n; i++) {
		size_t begin = (size_t)((const unsigned char *)mine[i].data - data);
		if (begin != expect)
			die_data(path, -1, mine[i].name, "data_offsets begin %zu, but the previous tensor ends at %zu "
				 "(offsets must be contiguous from 0)", begin, expect);
		expect = begin + mine[i].nbytes;
	}
	if (expect != data_len)
		die_data(path, -1, "header", "tensors cover %zu bytes but the data section is %zu bytes%s", expect,
			 data_len, expect > data_len ? " (truncated?)" : "");
}

static void check_unique(struct safetensors *st)
{
	qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_name);
	for (size_t i = 1; i < st->n_tensors; i++)
		if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
			die_data(st->tensors[i].file, -1, st->tensors[i].name, "tensor also in %s", st->tensors[i - 1].file);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

// model.safetensors.index.json: {"metadata": {...}, "weight_map": {"tensor": "shard file", ...}}.
static void open_index(struct safetensors *st, const char *index_path)
{
	json_error_t err;
	json_t *root = infile_json(index_path, JSON_REJECT_DUPLICATES, INFILE_MAX_CONFIG, &err);
	if (!root)
		die_data(index_path, -1, NULL, "line %d: %s", err.line, err.text);
	json_t *map = json_object_get(root, "weight_map");
	if (!json_is_object(map) || json_object_size(map) == 0)
		die_data(index_path, -1, "weight_map", "missing, empty or not an object");
	char *dir_copy = xstrdup(index_path);
	const char *dir = dirname(dir_copy);

	size_t n = 0;
	char **shards = xmalloc(json_object_size(map) * sizeof *shards);
	const char *key;
	json_t *v;
	json_object_foreach(map, key, v) {
		if (!json_is_string(v) || strchr(json_string_value(v), '/') || json_string_value(v)[0] == '\0' ||
		    strcmp(json_string_value(v), "..") == 0)
			die_data(index_path, -1, key, "shard is not a file name in the index's directory");
		shards[n++] = (char *)json_string_value(v);
	}
	qsort(shards, n, sizeof *shards, cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(shards[i], shards[i - 1]) == 0)
			continue;
		char *p = xasprintf("%s/%s", dir, shards[i]);
		open_file(st, p);
		free(p);
	}
	free(shards);
	check_unique(st);
	json_object_foreach(map, key, v) {
		const struct st_tensor *t = safetensors_find(st, key);
		if (!t)
			die_data(index_path, -1, key, "listed in weight_map but in no shard");
		const char *base = strrchr(t->file, '/');
		if (strcmp(base ? base + 1 : t->file, json_string_value(v)) != 0)
			die_data(index_path, -1, key, "weight_map says %s but the tensor is in %s", json_string_value(v),
				 t->file);
	}
	free(dir_copy);
	json_decref(root);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

struct safetensors *safetensors_open(const char *path)
{
	struct safetensors *st = xcalloc(1, sizeof *st);
	struct stat sb;
	if (stat(path, &sb) != 0)
		die_errno("%s", path);
	if (S_ISDIR(sb.st_mode)) {
		char *index = xasprintf("%s/model.safetensors.index.json", path);
		if (access(index, F_OK) == 0) {
			open_index(st, index);
		} else {
			char *single = xasprintf("%s/model.safetensors", path);
			if (access(single, F_OK) != 0)
				die(EXIT_DATA, "%s: no model.safetensors.index.json or model.safetensors", path);
			open_file(st, single);
			check_unique(st);
			free(single);
		}
		free(index);
	} else if (ends_with(path, ".index.json")) {
		open_index(st, path);
	} else {
		open_file(st, path);
		check_unique(st);
	}
	return st;
}

void safetensors_close(struct safetensors *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_tensors; i++)
		free(st->tensors[i].name);
	for (size_t i = 0; i < st->n_files; i++) {
		munmap((void *)st->files[i].map, st->files[i].size);
		json_decref(st->files[i].metadata);
		free(st->files[i].path);
	}
	free(st->tensors);
	free(st->files);
	free(st);
}

size_t safetensors_count(const struct safetensors *st) { return st->n_tensors; }

const struct st_tensor *safetensors_at(const struct safetensors *st, size_t i)
{
	return i < st->n_tensors ? &st->tensors[i] : NULL;
}

const struct st_tensor *safetensors_find(const struct safetensors *st, const char *name)
{
	struct st_tensor key = {.name = (char *)name};
	return bsearch(&key, st->tensors, st->n_tensors, sizeof key, cmp_name);
}

uint64_t safetensors_total_elems(const struct safetensors *st)
{
	uint64_t n = 0;
	for (size_t i = 0; i < st->n_tensors; i++)
		n += (uint64_t)st->tensors[i].nelem;   // each ≤ the mapped bytes: no overflow
	return n;
}

const char *safetensors_metadata(const struct safetensors *st, const char *key)
{
	if (st->n_files == 0 || !st->files[0].metadata)
		return NULL;
	return json_string_value(json_object_get(st->files[0].metadata, key));
}

// ----------------------------------------------------------------------------
// writer

struct st_entry {
	char *name;
	enum st_dtype dtype;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	int64_t nelem;
	const float *data;
};

struct st_writer {
	json_t *metadata;
	struct st_entry *entries;
	size_t n;
};

struct st_writer *st_writer_new(void)
{
	struct st_writer *w = xcalloc(1, sizeof *w);
	w->metadata = json_object();
	return w;
}

void st_writer_metadata(struct st_writer *w, const char *key, const char *value)
{
	json_object_set_new(w->metadata, key, json_string(value));
}

void st_writer_add(struct st_writer *w, const char *name, enum st_dtype dtype, int ndim, const int64_t *shape,
		   const float *data)
{
	if (ndim < 0 || ndim > ST_MAX_DIMS)
		die(EXIT_FAIL, "st_writer_add: %s: %d dims", name, ndim);
	w->entries = xrealloc(w->entries, (w->n + 1) * sizeof *w->entries);
	struct st_entry *e = &w->entries[w->n++];
	memset(e, 0, sizeof *e);
	e->name = xstrdup(name);
	e->dtype = dtype;
	e->ndim = ndim;
	e->nelem = 1;
	for (int d = 0; d < ndim; d++) {
		e->shape[d] = shape[d];
		e->nelem *= shape[d];
	}
	e->data = data;
}

void st_writer_write(struct st_writer *w, const char *path)
{
	json_t *header = json_object();
	if (json_object_size(w->metadata) > 0)
		json_object_set(header, "__metadata__", w->metadata);
	uint64_t offset = 0;
	for (size_t i = 0; i < w->n; i++) {
		struct st_entry *e = &w->entries[i];
		json_t *shape = json_array();
		for (int d = 0; d < e->ndim; d++)
			json_array_append_new(shape, json_integer(e->shape[d]));
		uint64_t nbytes = (uint64_t)e->nelem * st_dtype_size(e->dtype);
		json_t *entry = json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_dtype_name(e->dtype), "shape", shape,
					  "data_offsets", (json_int_t)offset, (json_int_t)(offset + nbytes));
		if (json_object_set_new(header, e->name, entry) != 0)
			die(EXIT_FAIL, "%s: tensor %s added twice", path, e->name);
		offset += nbytes;
	}
	char *text = json_dumps(header, JSON_COMPACT);
	size_t len = strlen(text);
	size_t padded = (len + 7) / 8 * 8;   // data starts 8-aligned (the prefix is 8 bytes)
	struct outfile *out = outfile_open(path);
	uint64_t le = htole64(padded);
	fwrite(&le, 8, 1, out->fp);
	fwrite(text, 1, len, out->fp);
	for (size_t i = len; i < padded; i++)
		fputc(' ', out->fp);
	for (size_t i = 0; i < w->n; i++) {
		struct st_entry *e = &w->entries[i];
		if (e->dtype == ST_F32) {
			fwrite(e->data, 4, (size_t)e->nelem, out->fp);
			continue;
		}
		uint16_t buf[4096];   // converted a block at a time: one fwrite per value costs minutes on a 7B model
		for (int64_t j0 = 0; j0 < e->nelem; j0 += 4096) {
			int64_t m = e->nelem - j0 < 4096 ? e->nelem - j0 : 4096;
			for (int64_t j = 0; j < m; j++)
				buf[j] = e->dtype == ST_BF16 ? st_f32_to_bf16(e->data[j0 + j]) : st_f32_to_f16(e->data[j0 + j]);
			fwrite(buf, 2, (size_t)m, out->fp);
		}
	}
	outfile_commit(out);
	free(text);
	json_decref(header);
	for (size_t i = 0; i < w->n; i++)
		free(w->entries[i].name);
	free(w->entries);
	json_decref(w->metadata);
	free(w);
}
