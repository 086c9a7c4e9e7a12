// fuzz_shard — a shard directory: manifest.json, an index and a shard file, read by the training reader (one
// epoch of batches) and by `shard --verify`.  Input: a flags byte, then three parts separated by
// "\n--medmoe-part--\n": the manifest, train-00000.idx, train-00000.mpk.  With flag bit 0 the target first
// writes the files' real sizes and checksums into the manifest (when it parses), so that mutated indexes and
// records get past the checksum gate and reach the record checks.
#include <jansson.h>
#include <sha2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "shard_read.h"
#include "shard_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	if (size < 1)
		return 0;
	int flags = data[0];
	const uint8_t *part[3];
	size_t len[3];
	size_t n = fuzz_parts(data + 1, size - 1, part, len, 3);
	if (n < 3)
		return 0;
	char dir[600];
	snprintf(dir, sizeof dir, "%s/shards", fuzz_dir());
	mkdir(dir, 0700);
	char *manifest = NULL;
	size_t manifest_len = len[0];
	if (flags & 1) {
		json_t *root = json_loadb((const char *)part[0], len[0], 0, NULL);
		json_t *sh = json_array_get(json_object_get(json_object_get(json_object_get(root, "splits"), "train"), "shards"), 0);
		if (json_is_object(sh)) {
			char a[65], b[65];
			SHA256Data(part[2], len[2], a);
			SHA256Data(part[1], len[1], b);
			json_object_set_new(sh, "sha256", json_string(a));
			json_object_set_new(sh, "index_sha256", json_string(b));
			json_object_set_new(sh, "bytes", json_integer((json_int_t)len[2]));
			manifest = json_dumps(root, 0);
			manifest_len = manifest ? strlen(manifest) : 0;
		}
		json_decref(root);
	}
	fuzz_file("shards/manifest.json", manifest ? (const uint8_t *)manifest : part[0], manifest_len);
	// manifest is jansson's (tracked): fuzz_end frees it
	fuzz_file("shards/train-00000.idx", part[1], len[1]);
	fuzz_file("shards/train-00000.mpk", part[2], len[2]);
	static struct shard_reader *volatile r;
	static struct shard_batch b;
	r = NULL;
	FUZZ_RUN({
		struct shard_reader_options o = {.split = "train", .world = 1, .batch_size = 2, .shuffle = flags >> 1 & 1,
						 .seed = 7};
		r = shard_reader_open(dir, &o);
		for (int i = 0; i < 64 && shard_reader_next(r, &b) > 0; i++)
			;
	});
	if (r)
		shard_reader_close(r);
	shard_batch_free(&b);
	FUZZ_RUN(shard_verify(dir, 1));
	fuzz_end();
	return 0;
}
