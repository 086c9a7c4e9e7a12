// test_stream.c — the stream writer and reader: round trip, bin arrays, seek, big records, bad input.
#include "unit.h"

#include <string.h>
#include <sys/stat.h>

#include "die.h"
#include "schema.h"
#include "stream.h"

static char dir[] = "/tmp/medmoe-test-stream-XXXXXX";

static char *path_in_dir(const char *name) { return xasprintf("%s/%s", dir, name); }

// A tokens stream of N records; record i has i+1 ids (the last one has BIG ids).
static void write_tokens(const char *path, int n, size_t big)
{
	struct stream_writer *w = stream_create(path);
	const char *names[] = { "<|endoftext|>" };
	uint32_t ids[] = { 151643 };
	struct tokenizer_identity tid = { .vocab_size = 151669, .n_special = 1, .special_names = names,
					  .special_ids = ids };
	memset(tid.sha256, 'a', 64);
	tid.sha256[64] = '\0';
	stream_begin_header(w, "medmoe.tokens", 1, "test_stream", 1);
	pack_kv_tokenizer(&w->pk, &tid);
	for (int i = 0; i < n; i++) {
		size_t len = (i == n - 1 && big) ? big : (size_t)i + 1;
		uint32_t *tok = xmalloc(len * sizeof *tok);
		uint8_t *mask = xmalloc(len);
		for (size_t j = 0; j < len; j++) {
			tok[j] = (uint32_t)((j * 100003u + (uint32_t)i) % 151669u);   // ids below the vocabulary
			mask[j] = j % 2;
		}
		char id[32];
		snprintf(id, sizeof id, "r%d", i);
		stream_begin_record(w, 6);
		pack_kv_str(&w->pk, "task", "qa");
		pack_kv_int(&w->pk, "task_id", 3);
		pack_kv_str(&w->pk, "id", id);
		pack_kv_u32bin(&w->pk, "ids", tok, len);
		pack_kv_u8bin(&w->pk, "mask", mask, len);
		pack_kv_str(&w->pk, "lang", "zh");
		free(tok);
		free(mask);
	}
	stream_commit(w);
}

static void test_round_trip(void **state)
{
	(void)state;
	char *path = path_in_dir("a.mpk");
	write_tokens(path, 5, 3 << 20);  // the last record (12 MiB of ids) is bigger than a read chunk
	struct stream_reader *r = stream_open(path, "medmoe.tokens", 1);
	char sha[65];
	uint32_t vocab;
	stream_tokenizer(r, sha, &vocab);
	assert_int_equal(vocab, 151669);
	assert_int_equal(sha[0], 'a');
	struct schema *spec = schema_load("medmoe.tokens");
	schema_check_header(spec, r);
	msgpack_object rec;
	struct u32vec ids = { 0 };
	int n = 0;
	uint64_t offsets[5];
	while (stream_next(r, &rec)) {
		schema_check_record(spec, r, &rec);
		offsets[n] = r->record_offset;
		size_t len = rec_u32bin(r, &rec, "ids", &ids);
		assert_int_equal(len, n == 4 ? (size_t)3 << 20 : (size_t)n + 1);
		assert_int_equal(ids.data[len - 1], (uint32_t)(((len - 1) * 100003u + (uint32_t)n) % 151669u));
		assert_int_equal(rec_int(r, &rec, "task_id"), 3);
		char *id = rec_strdup(r, &rec, "id");
		char want[32];
		snprintf(want, sizeof want, "r%d", n);
		assert_string_equal(id, want);
		free(id);
		n++;
	}
	assert_int_equal(n, 5);
	// Seek back to record 3 (number 3 counting from 1 is index 2) and read it again.
	stream_seek(r, offsets[2], 3);
	assert_true(stream_next(r, &rec));
	assert_int_equal(r->record, 3);
	assert_int_equal(rec_u32bin(r, &rec, "ids", &ids), 3);
	schema_free(spec);
	stream_close(r);
	free(ids.data);
	free(path);
}

static const char *bad_path;
static void open_and_read_all(void *arg)
{
	const char *schema = arg;
	struct stream_reader *r = stream_open(bad_path, schema, 1);
	msgpack_object rec;
	while (stream_next(r, &rec))
		;
	stream_close(r);
}

static void test_truncated(void **state)
{
	(void)state;
	char *path = path_in_dir("b.mpk");
	write_tokens(path, 4, 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 3), 0);
	bad_path = path;
	assert_int_equal(unit_exit_status(open_and_read_all, "medmoe.tokens"), EXIT_DATA);
	free(path);
}

static void test_wrong_schema_and_empty(void **state)
{
	(void)state;
	char *path = path_in_dir("c.mpk");
	write_tokens(path, 2, 0);
	bad_path = path;
	assert_int_equal(unit_exit_status(open_and_read_all, "medmoe.exam"), EXIT_DATA);
	assert_int_equal(unit_exit_status(open_and_read_all, "medmoe.tokens"), 0);
	FILE *fp = fopen(path, "w");
	fclose(fp);
	assert_int_equal(unit_exit_status(open_and_read_all, "medmoe.tokens"), EXIT_DATA);
	fp = fopen(path, "w");
	fputs("{\"not\": \"msgpack\"}\n", fp);
	fclose(fp);
	assert_int_equal(unit_exit_status(open_and_read_all, NULL), EXIT_DATA);
	free(path);
}

// A writer that dies before committing leaves nothing behind.
static void write_then_die(void *arg)
{
	struct stream_writer *w = stream_create(arg);
	stream_begin_header(w, "medmoe.tokens", 1, "t", 0);
	die(EXIT_DATA, "simulated bad input");
}

static void test_no_partial_output(void **state)
{
	(void)state;
	char *path = path_in_dir("d.mpk");
	assert_int_equal(unit_exit_status(write_then_die, path), EXIT_DATA);
	assert_int_not_equal(access(path, F_OK), 0);
	char *cmd = xasprintf("ls %s | grep -c tmp || true", dir);
	FILE *p = popen(cmd, "r");
	char buf[16] = "";
	assert_non_null(fgets(buf, sizeof buf, p));
	pclose(p);
	assert_int_equal(atoi(buf), 0);
	free(cmd);
	free(path);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	if (!getenv("MEDMOE_SCHEMAS"))
		setenv("MEDMOE_SCHEMAS", MEDMOE_SOURCE_DIR "/schemas", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_wrong_schema_and_empty),
		cmocka_unit_test(test_no_partial_output),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	char *cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		failed++;
	free(cmd);
	return failed;
}
