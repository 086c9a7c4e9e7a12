// safetensors.h — read (memory-mapped) and write Hugging Face safetensors files.
//
// Format (huggingface/safetensors README): [u64 LE N][N bytes of UTF-8 JSON header][data buffer].  The header maps
// each tensor name to {"dtype", "shape", "data_offsets": [BEGIN, END]} relative to the data buffer, plus an
// optional "__metadata__" object of strings.  The reader validates everything the reference reader checks
// (safetensors/src/tensor.rs): N ≤ 100 MB and within the file, the JSON parses with no duplicate keys, each dtype is
// known, END − BEGIN = nelements × dtype size (overflow-checked), the offsets sorted by BEGIN are contiguous from 0
// and cover the whole data buffer (8 + N + END_max = file size).  A file that breaks any of these is a data error
// (exit 65) naming the file and tensor; no byte outside the mapping is ever read.
//
// Only the floating dtypes checkpoints use are accepted: F32, F16, BF16.  Anything else is refused by name.
#ifndef MEDMOE_SAFETENSORS_H
#define MEDMOE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

enum st_dtype { ST_F32, ST_F16, ST_BF16 };

#define ST_MAX_DIMS 8

struct st_tensor {
	char *name;
	enum st_dtype dtype;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	int64_t nelem;
	const void *data;    // inside the mapping; not necessarily aligned (convert with st_tensor_to_f32)
	size_t nbytes;
	const char *file;    // the shard it lives in (for messages)
};

struct safetensors;

// PATH is a .safetensors file, a model.safetensors.index.json, or a directory holding one of
// model.safetensors.index.json (preferred) or model.safetensors.  Every shard named by an index is mapped and
// validated; the index must name a shard for every tensor it lists, and that shard must hold it.
struct safetensors *safetensors_open(const char *path);
void safetensors_close(struct safetensors *st);

size_t safetensors_count(const struct safetensors *st);
const struct st_tensor *safetensors_at(const struct safetensors *st, size_t i);  // sorted by name
// NULL when absent.
const struct st_tensor *safetensors_find(const struct safetensors *st, const char *name);
// The number of elements of every tensor together (what a config's sizes are checked against).
uint64_t safetensors_total_elems(const struct safetensors *st);
// The value of KEY in the first file's __metadata__, or NULL.
const char *safetensors_metadata(const struct safetensors *st, const char *key);

// Convert T's elements to fp32 (OUT holds t->nelem floats).  BF16 and F16 widen exactly.
void st_tensor_to_f32(const struct st_tensor *t, float *out);

// Refuse (exit 65 naming T's file and name) a NaN or infinite element of T, read on its stored bits without
// converting (an all-ones exponent in every dtype): one pass over the mapping, so a 7B checkpoint is checked at
// memory speed as it loads.
void st_require_finite(const struct st_tensor *t);

size_t st_dtype_size(enum st_dtype dtype);
const char *st_dtype_name(enum st_dtype dtype);
// fp32 → bf16 rounding to nearest even (as torch's .to(torch.bfloat16)); NaN stays NaN.
uint16_t st_f32_to_bf16(float x);
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float x);

// Writer: collect tensors (fp32 in memory, stored as DTYPE), then write once, atomically (lib/outfile.h).
// The data pointers must stay valid until st_writer_write.  Tensors are written in the order added; the header is
// padded with spaces to a multiple of 8 bytes so the data starts 8-aligned, as the reference writer does.
struct st_writer;
struct st_writer *st_writer_new(void);
void st_writer_metadata(struct st_writer *w, const char *key, const char *value);
void st_writer_add(struct st_writer *w, const char *name, enum st_dtype dtype, int ndim, const int64_t *shape,
		   const float *data);
// Writes PATH (through a temporary file renamed on success) and frees W.
void st_writer_write(struct st_writer *w, const char *path);

#endif
