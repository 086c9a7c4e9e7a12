// test_hostile.c — the defences against hostile input and crashes: the msgpack scanner (counts backed by bytes,
// depth, lengths, fed in pieces), readers that refuse FIFOs and oversized files without blocking, config sizes
// bounded before anything is allocated, and directory replacement that survives a kill between its renames.
#include "unit.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "die.h"
#include "infile.h"
#include "model_config.h"
#include "mpk_scan.h"
#include "outfile.h"
#include "stream.h"

static char dir[] = "/tmp/medmoe-test-hostile-XXXXXX";

static char *in_dir(const char *name) { return xasprintf("%s/%s", dir, name); }

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, n, fp), n);
	fclose(fp);
}

// ---- the msgpack scanner ----

static void scanner_whole_object_in_pieces(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	pack_kv_str(&pk, "id", "q1");
	uint32_t ids[300];
	for (int i = 0; i < 300; i++)
		ids[i] = (uint32_t)i * 7;
	pack_kv_u32bin(&pk, "ids", ids, 300);
	pack_str(&pk, "nested");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_array(&pk, 0);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_nil(&pk);   // a second object after the first
	// fed one more byte at a time: incomplete until the last byte of the map
	struct mpk_scan s;
	mpk_scan_init(&s);
	size_t len = sb.size - 1;
	for (size_t avail = 0; avail < len; avail++)
		assert_int_equal(mpk_scan_feed(&s, sb.data, avail), MPK_NEED_MORE);
	assert_int_equal(mpk_scan_feed(&s, sb.data, sb.size), MPK_COMPLETE);
	assert_int_equal(s.pos, len);
	// and unpacked through the checked path, twice
	msgpack_unpacked msg;
	msgpack_unpacked_init(&msg);
	size_t off = 0;
	assert_null(mpk_unpack(&msg, sb.data, sb.size, &off));
	assert_int_equal(msg.data.type, MSGPACK_OBJECT_MAP);
	assert_int_equal(off, len);
	assert_null(mpk_unpack(&msg, sb.data, sb.size, &off));
	assert_int_equal(msg.data.type, MSGPACK_OBJECT_NIL);
	assert_string_equal(mpk_unpack(&msg, sb.data, sb.size, &off), "truncated");
	msgpack_unpacked_destroy(&msg);
	msgpack_sbuffer_destroy(&sb);
}

static void scanner_refuses_counts_lengths_depth(void **state)
{
	(void)state;
	struct mpk_scan s;
	// array32 / map32 of 2^32 - 1: refused from the 5-byte header, before any element
	const uint8_t arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff}, map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
	mpk_scan_init(&s);
	assert_int_equal(mpk_scan_feed(&s, arr, sizeof arr), MPK_BAD);
	mpk_scan_init(&s);
	assert_int_equal(mpk_scan_feed(&s, map, sizeof map), MPK_BAD);
	// a bin of 3 GiB
	const uint8_t bin[] = {0xc6, 0xc0, 0x00, 0x00, 0x00};
	mpk_scan_init(&s);
	assert_int_equal(mpk_scan_feed(&s, bin, sizeof bin), MPK_BAD);
	// the unused byte
	const uint8_t c1[] = {0xc1};
	mpk_scan_init(&s);
	assert_int_equal(mpk_scan_feed(&s, c1, 1), MPK_BAD);
	// nesting: 32 arrays deep is fine, 33 is not
	uint8_t deep[40];
	for (int d = 32; d <= 33; d++) {
		memset(deep, 0x91, (size_t)d);   // fixarray of 1
		deep[d] = 0xc0;
		mpk_scan_init(&s);
		assert_int_equal(mpk_scan_feed(&s, deep, (size_t)d + 1), d == 32 ? MPK_COMPLETE : MPK_BAD);
	}
	// an array count backed by too few bytes is simply incomplete (a stream then ends "truncated")
	const uint8_t short_arr[] = {0xdc, 0x00, 0x10, 0xc0, 0xc0};
	mpk_scan_init(&s);
	assert_int_equal(mpk_scan_feed(&s, short_arr, sizeof short_arr), MPK_NEED_MORE);
}

// A stream whose second object claims an array of 2^32 - 1 elements: exit 65, no allocation.
static void read_huge_count(void *arg)
{
	struct stream_reader *r = stream_open(arg, NULL, 1);
	msgpack_object rec;
	while (stream_next(r, &rec))
		;
	stream_close(r);
}

static void stream_with_huge_count_is_data_error(void **state)
{
	(void)state;
	char *path = in_dir("huge.mpk");
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	pack_kv_str(&pk, "schema", "medmoe.tokens");
	pack_kv_int(&pk, "version", 1);
	const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
	msgpack_sbuffer_write(&sb, (const char *)huge, sizeof huge);
	write_file(path, sb.data, sb.size);
	assert_int_equal(unit_exit_status(read_huge_count, path), EXIT_DATA);
	// a version of 2^32 + 1 is not version 1
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 2);
	pack_kv_str(&pk, "schema", "medmoe.tokens");
	pack_kv_int(&pk, "version", (1ll << 32) + 1);
	write_file(path, sb.data, sb.size);
	assert_int_equal(unit_exit_status(read_huge_count, path), EXIT_DATA);
	msgpack_sbuffer_destroy(&sb);
	free(path);
}

// ---- inputs that must be regular files ----

static void open_regular(void *arg)
{
	alarm(10);   // a blocking open would hang the test: fail it instead
	int fd = infile_open(arg, NULL);
	_exit(fd >= 0 ? 0 : 3);
}

static void read_config(void *arg)
{
	alarm(10);
	struct model_config c;
	model_config_load(&c, arg);
}

static void fifo_and_directory_refused_without_blocking(void **state)
{
	(void)state;
	char *fifo = in_dir("fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(unit_exit_status(open_regular, fifo), EXIT_DATA);
	assert_int_equal(unit_exit_status(read_config, fifo), EXIT_DATA);
	assert_int_equal(unit_exit_status(open_regular, dir), EXIT_DATA);
	char *missing = in_dir("missing");
	assert_int_equal(unit_exit_status(open_regular, missing), 3);
	free(fifo);
	free(missing);
}

static void config_sizes_bounded(void **state)
{
	(void)state;
	char *path = in_dir("config.json");
	const char *bad[] = {
		// one dimension over its limit
		"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":1073741824,\"num_hidden_layers\":2,"
		"\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":16}",
		// each dimension fine, the product not (2^17 · 2^24 · 2 + ...)
		"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":131072,\"num_hidden_layers\":4096,"
		"\"num_attention_heads\":16,\"intermediate_size\":1048576,\"vocab_size\":16777216}",
		// a negative epsilon (NaN activations) and a zero rope_theta
		"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"num_hidden_layers\":1,"
		"\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":16,\"rms_norm_eps\":-1}",
		"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"num_hidden_layers\":1,"
		"\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":16,\"rope_theta\":0}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(path, bad[i], strlen(bad[i]));
		assert_int_equal(unit_exit_status(read_config, path), EXIT_DATA);
	}
	const char *good = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"num_hidden_layers\":1,"
			   "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":16}";
	write_file(path, good, strlen(good));
	struct model_config c;
	model_config_load(&c, path);
	uint64_t n;
	assert_int_equal(model_config_weight_elems(&c, &n), 0);
	// embed 16·8 twice (untied) + final norm 8 + one layer: q k v o 4·64, norms 16, mlp 3·64
	assert_int_equal(n, 16 * 8 * 2 + 8 + 4 * 64 + 16 + 3 * 64);
	free(path);
}

// ---- directories replaced across a crash ----

static int has(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void put(const char *d, const char *content)
{
	mkdir(d, 0777);
	char *f = xasprintf("%s/f", d);
	write_file(f, content, strlen(content));
	free(f);
}

static int holds(const char *d, const char *content)
{
	char *f = xasprintf("%s/f", d), buf[64] = {0};
	FILE *fp = fopen(f, "rb");
	free(f);
	if (!fp)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	return n == strlen(content) && memcmp(buf, content, n) == 0;
}

static void replace_dir(const char *path)
{
	struct outdir *d = outdir_open(path, 1);
	put(d->tmp_path, "new");
	outdir_commit(d);
}

static void directory_replacement_and_recovery(void **state)
{
	(void)state;
	char *out = in_dir("out"), *bak = in_dir("out.medmoe-old"), *stale = in_dir("out.tmp.999999");
	for (int exchange = 0; exchange < 2; exchange++) {
		setenv("MEDMOE_NO_EXCHANGE", exchange ? "0" : "1", 1);
		put(out, "old");
		replace_dir(out);
		assert_true(holds(out, "new"));
		assert_false(has(bak));
	}
	unsetenv("MEDMOE_NO_EXCHANGE");
	// killed between the two renames: no DIR, a complete DIR.medmoe-old → the old one comes back
	assert_int_equal(rename(out, bak), 0);
	outdir_recover(out);
	assert_true(holds(out, "new"));
	assert_false(has(bak));
	// killed after the swap, before the backup was removed: the backup goes
	put(bak, "older");
	outdir_recover(out);
	assert_true(holds(out, "new"));
	assert_false(has(bak));
	// a temporary of a process that is gone is removed by the next outdir_open
	put(stale, "partial");
	replace_dir(out);
	assert_false(has(stale));
	free(out);
	free(bak);
	free(stale);
}

static int setup(void **state)
{
	(void)state;
	set_progname("test_hostile");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char *cmd = xasprintf("rm -rf '%s'", dir);
	int rc = system(cmd);
	free(cmd);
	return rc;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scanner_whole_object_in_pieces),
		cmocka_unit_test(scanner_refuses_counts_lengths_depth),
		cmocka_unit_test(stream_with_huge_count_is_data_error),
		cmocka_unit_test(fifo_and_directory_refused_without_blocking),
		cmocka_unit_test(config_sizes_bounded),
		cmocka_unit_test(directory_replacement_and_recovery),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
