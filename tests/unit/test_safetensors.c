// test_safetensors.c — the safetensors reader and writer, and every way a checkpoint can be bad: lying or
// truncated headers, a missing tensor, a wrong shape, an unsupported architecture.  Each bad input must end the
// program with exit 65 and one line on stderr naming the file and the tensor or field.
#include "unit.h"

#include <endian.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "safetensors.h"
#include "stream.h"

#ifndef MEDMOE_SOURCE_DIR
#define MEDMOE_SOURCE_DIR "."
#endif

static char scratch[256];

static int setup(void **state)
{
	(void)state;
	snprintf(scratch, sizeof scratch, "/tmp/medmoe-test-safetensors.%ld", (long)getpid());
	mkdir(scratch, 0777);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
	return system(cmd);
}

// Run FN(ARG) in a child with stderr captured; return its exit status and its stderr in ERR.
static int run_captured(void (*fn)(const char *), const char *arg, char *err, size_t err_size)
{
	char err_path[300];
	snprintf(err_path, sizeof err_path, "%s/stderr", scratch);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(err_path, "w", stderr))
			_exit(99);
		fn(arg);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	FILE *fp = fopen(err_path, "r");
	size_t n = fp ? fread(err, 1, err_size - 1, fp) : 0;
	err[n] = '\0';
	if (fp)
		fclose(fp);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The program must die with 65 and exactly one line containing every NEEDLE.
static void expect_data_error(void (*fn)(const char *), const char *arg, const char *needle1, const char *needle2)
{
	char err[4096];
	int code = run_captured(fn, arg, err, sizeof err);
	if (code != 65)
		fail_msg("expected exit 65, got %d; stderr: %s", code, err);
	char *nl = strchr(err, '\n');
	if (!nl || nl[1] != '\0')
		fail_msg("expected one line on stderr, got: %s", err);
	if (needle1 && !strstr(err, needle1))
		fail_msg("stderr does not name \"%s\": %s", needle1, err);
	if (needle2 && !strstr(err, needle2))
		fail_msg("stderr does not name \"%s\": %s", needle2, err);
	printf("# %s", err);
}

static void open_and_read(const char *path)
{
	struct safetensors *st = safetensors_open(path);
	// touch every byte of every tensor: under ASan an out-of-bounds view would show here
	for (size_t i = 0; i < safetensors_count(st); i++) {
		const struct st_tensor *t = safetensors_at(st, i);
		float *x = malloc((size_t)t->nelem * sizeof(float) + 1);
		st_tensor_to_f32(t, x);
		free(x);
	}
	safetensors_close(st);
}

// Write a raw safetensors file: the u64 length, HEADER as given, then DATA_LEN zero bytes.
static const char *write_raw(const char *name, const char *header, size_t data_len)
{
	static char path[400];
	snprintf(path, sizeof path, "%s/%s", scratch, name);
	FILE *fp = fopen(path, "wb");
	uint64_t n = htole64(strlen(header));
	fwrite(&n, 8, 1, fp);
	fputs(header, fp);
	for (size_t i = 0; i < data_len; i++)
		fputc(0, fp);
	fclose(fp);
	return path;
}

// ----------------------------------------------------------------------------
// reader and writer

static void test_roundtrip(void **state)
{
	(void)state;
	float a[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f}, b[3] = {0.5f, 1.00390625f, -65504.0f}, c[2] = {1, 2};
	char path[300];
	snprintf(path, sizeof path, "%s/rt.safetensors", scratch);
	struct st_writer *w = st_writer_new();
	st_writer_metadata(w, "format", "pt");
	st_writer_add(w, "a", ST_F32, 2, (int64_t[]){2, 3}, a);
	st_writer_add(w, "b.bf16", ST_BF16, 1, (int64_t[]){3}, b);
	st_writer_add(w, "c.f16", ST_F16, 1, (int64_t[]){2}, c);
	st_writer_write(w, path);

	struct safetensors *st = safetensors_open(path);
	assert_int_equal(safetensors_count(st), 3);
	assert_string_equal(safetensors_metadata(st, "format"), "pt");
	const struct st_tensor *ta = safetensors_find(st, "a"), *tb = safetensors_find(st, "b.bf16");
	assert_non_null(ta);
	assert_int_equal(ta->ndim, 2);
	assert_int_equal(ta->shape[0], 2);
	assert_int_equal(ta->shape[1], 3);
	assert_int_equal(tb->dtype, ST_BF16);
	assert_null(safetensors_find(st, "nope"));
	float out[6];
	st_tensor_to_f32(ta, out);
	assert_memory_equal(out, a, sizeof a);
	st_tensor_to_f32(tb, out);
	// 1 + 2^-8 lies halfway between two bf16 values: ties go to the even one, 1.0
	assert_true(out[0] == 0.5f && out[1] == 1.0f && out[2] == -65536.0f);
	st_tensor_to_f32(safetensors_find(st, "c.f16"), out);
	assert_true(out[0] == 1.0f && out[1] == 2.0f);
	safetensors_close(st);

	// header padded to 8 bytes, so the data starts aligned
	FILE *fp = fopen(path, "rb");
	uint64_t n;
	assert_int_equal(fread(&n, 8, 1, fp), 1);
	fclose(fp);
	assert_int_equal(le64toh(n) % 8, 0);
}

static void test_conversions(void **state)
{
	(void)state;
	assert_int_equal(st_f32_to_bf16(1.0f), 0x3f80);
	assert_true(st_bf16_to_f32(0x3f80) == 1.0f);
	assert_int_equal(st_f32_to_bf16(-2.0f), 0xc000);
	assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
	assert_true(st_f16_to_f32(0x3c00) == 1.0f);
	assert_true(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24));   // smallest subnormal
	assert_true(isinf(st_f16_to_f32(0x7c00)));
	assert_int_equal(st_f32_to_f16(65504.0f), 0x7bff);
}

static void test_sharded_index(void **state)
{
	(void)state;
	char path[600];
	snprintf(path, sizeof path, "%s/tests/fixtures/model/llama_gqa", MEDMOE_SOURCE_DIR);
	struct safetensors *st = safetensors_open(path);
	assert_non_null(safetensors_find(st, "model.layers.1.mlp.down_proj.weight"));
	assert_non_null(safetensors_find(st, "lm_head.weight"));
	assert_int_equal(safetensors_count(st), 2 + 2 * 9 + 1);
	safetensors_close(st);
}

// ----------------------------------------------------------------------------
// lying and truncated files

static void test_lying_headers(void **state)
{
	(void)state;
	// each: header, data bytes, what the message must name
	static const struct {
		const char *file, *header;
		size_t data_len;
		const char *needle;
	} cases[] = {
		{"gap.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			   "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16, "y"},
		{"overlap.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			       "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "y"},
		{"not_from_0.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "x"},
		{"size_lie.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "x"},
		{"past_end.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1024],\"data_offsets\":[0,4096]}}", 16, "x"},
		{"trailing.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 64, "cover"},
		{"dtype.st", "{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "I64"},
		{"overflow.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
		 8, "overflows"},
		{"negative.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "x"},
		{"reversed.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "x"},
		{"bad_json.st", "{\"x\":{\"dtype\":\"F32\",", 8, "JSON"},
		{"duplicate.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
				 "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "JSON"},
		{"no_offsets.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
		{"shape_type.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "shape"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *path = write_raw(cases[i].file, cases[i].header, cases[i].data_len);
		expect_data_error(open_and_read, path, cases[i].file, cases[i].needle);
	}
}

static void test_bad_lengths(void **state)
{
	(void)state;
	char path[300];
	// shorter than the 8-byte length
	snprintf(path, sizeof path, "%s/tiny.st", scratch);
	FILE *fp = fopen(path, "wb");
	fputs("abc", fp);
	fclose(fp);
	expect_data_error(open_and_read, path, "tiny.st", "too short");

	// a header length past the end of the file
	snprintf(path, sizeof path, "%s/long_header.st", scratch);
	fp = fopen(path, "wb");
	uint64_t n = htole64(1000);
	fwrite(&n, 8, 1, fp);
	fputs("{}", fp);
	fclose(fp);
	expect_data_error(open_and_read, path, "long_header.st", "past the end");

	// a header length over the 100 MB limit
	snprintf(path, sizeof path, "%s/huge_header.st", scratch);
	fp = fopen(path, "wb");
	n = htole64(200000000ULL);
	fwrite(&n, 8, 1, fp);
	fputs("{}", fp);
	fclose(fp);
	expect_data_error(open_and_read, path, "huge_header.st", "100 MB");
}

// A real checkpoint cut short: the header is intact but the data is not all there.
static void test_truncated_checkpoint(void **state)
{
	(void)state;
	char src[600], dst[300], cmd[1000];
	snprintf(src, sizeof src, "%s/tests/fixtures/model/qwen2/model.safetensors", MEDMOE_SOURCE_DIR);
	snprintf(dst, sizeof dst, "%s/truncated.safetensors", scratch);
	struct stat sb;
	assert_int_equal(stat(src, &sb), 0);
	snprintf(cmd, sizeof cmd, "head -c %lld '%s' > '%s'", (long long)sb.st_size - 100, src, dst);
	assert_int_equal(system(cmd), 0);
	expect_data_error(open_and_read, dst, "truncated.safetensors", NULL);
}

// ----------------------------------------------------------------------------
// bad checkpoints for the model

// Copy fixture qwen2 into DIR, passing each tensor through EDIT (which may drop it: return 0, or reshape it).
static void make_checkpoint(const char *dir, int (*edit)(const char *name, int *ndim, int64_t *shape),
			    const char *config_sed)
{
	char src[600], cmd[2000];
	snprintf(src, sizeof src, "%s/tests/fixtures/model/qwen2", MEDMOE_SOURCE_DIR);
	mkdir(dir, 0777);
	snprintf(cmd, sizeof cmd, "sed '%s' '%s/config.json' > '%s/config.json'", config_sed ? config_sed : "",
		 src, dir);
	assert_int_equal(system(cmd), 0);
	struct safetensors *st = safetensors_open(src);
	struct st_writer *w = st_writer_new();
	size_t n = safetensors_count(st);
	float **keep = calloc(n, sizeof *keep);
	for (size_t i = 0; i < n; i++) {
		const struct st_tensor *t = safetensors_at(st, i);
		int ndim = t->ndim;
		int64_t shape[ST_MAX_DIMS];
		memcpy(shape, t->shape, sizeof shape);
		if (edit && !edit(t->name, &ndim, shape))
			continue;
		int64_t nelem = 1;
		for (int d = 0; d < ndim; d++)
			nelem *= shape[d];
		keep[i] = calloc((size_t)(nelem > t->nelem ? nelem : t->nelem), sizeof(float));
		st_tensor_to_f32(t, keep[i]);
		st_writer_add(w, t->name, t->dtype, ndim, shape, keep[i]);
	}
	char path[400];
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	st_writer_write(w, path);
	for (size_t i = 0; i < n; i++)
		free(keep[i]);
	free(keep);
	safetensors_close(st);
}

static int drop_k_bias(const char *name, int *ndim, int64_t *shape)
{
	(void)ndim;
	(void)shape;
	return strcmp(name, "model.layers.1.self_attn.k_proj.bias") != 0;
}

static int reshape_up(const char *name, int *ndim, int64_t *shape)
{
	(void)ndim;
	if (strcmp(name, "model.layers.0.mlp.up_proj.weight") == 0)
		shape[0] = 96;
	return 1;
}

static void load_model(const char *dir)
{
	model_free(model_load(dir));
}

static void test_model_bad_checkpoints(void **state)
{
	(void)state;
	char dir[300];
	snprintf(dir, sizeof dir, "%s/good", scratch);
	make_checkpoint(dir, NULL, NULL);
	struct model *m = model_load(dir);   // the unedited copy loads
	assert_int_equal(m->cfg.arch, ARCH_QWEN2);
	model_free(m);

	snprintf(dir, sizeof dir, "%s/missing", scratch);
	make_checkpoint(dir, drop_k_bias, NULL);
	expect_data_error(load_model, dir, "model.layers.1.self_attn.k_proj.bias", "missing");

	snprintf(dir, sizeof dir, "%s/shape", scratch);
	make_checkpoint(dir, reshape_up, NULL);
	expect_data_error(load_model, dir, "model.layers.0.mlp.up_proj.weight", "shape [96, 64], expected [128, 64]");

	snprintf(dir, sizeof dir, "%s/arch", scratch);
	make_checkpoint(dir, NULL, "s/Qwen2ForCausalLM/GPT2LMHeadModel/");
	expect_data_error(load_model, dir, "GPT2LMHeadModel", "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM");

	snprintf(dir, sizeof dir, "%s/rope", scratch);
	make_checkpoint(dir, NULL, "s/\"rope_type\": \"default\"/\"rope_type\": \"yarn\"/");
	expect_data_error(load_model, dir, "config.json", "yarn");

	snprintf(dir, sizeof dir, "%s/heads", scratch);
	make_checkpoint(dir, NULL, "s/\"num_key_value_heads\": 2/\"num_key_value_heads\": 3/");
	expect_data_error(load_model, dir, "num_key_value_heads", "does not divide");
}

// The tokenizer identity: the sha256 of the checkpoint's tokenizer.json.
static void test_tokenizer_identity(void **state)
{
	(void)state;
	char dir[300], cmd[800];
	snprintf(dir, sizeof dir, "%s/tok", scratch);
	make_checkpoint(dir, NULL, NULL);
	struct model *m = model_load(dir);
	assert_int_equal(model_check_tokenizer(m, "0000"), -1);   // no tokenizer.json: nothing matches
	model_free(m);
	snprintf(cmd, sizeof cmd, "printf '{\"model\":{}}' > '%s/tokenizer.json'", dir);
	assert_int_equal(system(cmd), 0);
	m = model_load(dir);
	// sha256 of the 12 bytes {"model":{}} (printf '{"model":{}}' | sha256sum)
	const char *want = "bf424d8ddd80096abbed03d6b10b78fc817c625258c998e0a7bda16a855573c8";
	assert_string_equal(m->tokenizer_sha256, want);
	assert_int_equal(model_check_tokenizer(m, want), 0);
	assert_int_equal(model_check_tokenizer(m, "af424d8ddd80096abbed03d6b10b78fc817c625258c998e0a7bda16a855573c8"),
			 -1);
	model_free(m);
}

// A token stream whose header carries tokenizer SHA256 and VOCAB, with one record.
static void write_token_stream(const char *path, const char *sha256, uint32_t vocab)
{
	struct stream_writer *w = stream_create(path);
	struct tokenizer_identity id = {.vocab_size = vocab};
	snprintf(id.sha256, sizeof id.sha256, "%s", sha256);
	stream_begin_header(w, "medmoe.tokens", 1, "test_safetensors", 1);
	pack_kv_tokenizer(&w->pk, &id);
	stream_begin_record(w, 1);
	uint32_t ids[3] = {1, 2, 3};
	pack_kv_u32bin(&w->pk, "ids", ids, 3);
	stream_commit(w);
}

static const char *stream_dir;

static void check_stream(const char *path)
{
	struct model *m = model_load(stream_dir);
	struct stream_reader *r = stream_open(path, NULL, 1);
	model_require_stream(m, r);
	stream_close(r);
	model_free(m);
}

// Token streams are checked against the checkpoint's tokenizer.json: same sha256 passes, another is refused.
static void test_stream_tokenizer(void **state)
{
	(void)state;
	char dir[300], cmd[800], good[400], other[400], wide[400];
	snprintf(dir, sizeof dir, "%s/streamtok", scratch);
	make_checkpoint(dir, NULL, NULL);
	snprintf(cmd, sizeof cmd, "printf '{\"model\":{}}' > '%s/tokenizer.json'", dir);
	assert_int_equal(system(cmd), 0);
	stream_dir = dir;
	const char *sha = "bf424d8ddd80096abbed03d6b10b78fc817c625258c998e0a7bda16a855573c8";
	snprintf(good, sizeof good, "%s/good.mpk", scratch);
	snprintf(other, sizeof other, "%s/other.mpk", scratch);
	snprintf(wide, sizeof wide, "%s/wide.mpk", scratch);
	write_token_stream(good, sha, 300);
	write_token_stream(other, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 300);
	write_token_stream(wide, sha, 400);   // the qwen2 fixture has 320 ids
	check_stream(good);
	expect_data_error(check_stream, other, "other.mpk", "tokenizer.json");
	expect_data_error(check_stream, wide, "wide.mpk", "vocab");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_sharded_index),
		cmocka_unit_test(test_lying_headers),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_truncated_checkpoint),
		cmocka_unit_test(test_model_bad_checkpoints),
		cmocka_unit_test(test_tokenizer_identity),
		cmocka_unit_test(test_stream_tokenizer),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
