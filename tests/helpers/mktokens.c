// mktokens — test helper: writes a synthetic medmoe.tokens stream, standing in for `tokenize` in the program
// tests of mix-tasks and shard.  Plain msgpack-c only, so a test compiles it with one cc line.
//
//   mktokens [-t TASK] [-i TASK_ID] [-n RECORDS] [-l MIN_LEN] [-L MAX_LEN] [-s SEED] [-k SHA256]
//            [-S SCHEMA] [-T NAME=ID,...] [-p ID_PREFIX] [-a ALT_TASK_ID] > FILE
//
// Record r has a length drawn from [MIN_LEN, MAX_LEN]; its token j is (r * 1000003 + j * 7919 + SEED) mod
// 151643, its mask is 1 from a third of the way on (the "assistant" part).  -T writes a header task table;
// -a gives every odd record another task_id (an inconsistent file, for the error tests).
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_stdout(void *data, const char *buf, size_t len)
{
	(void)data;
	return fwrite(buf, 1, len, stdout) == len ? 0 : -1;
}

static void pack_s(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static uint64_t next(uint64_t *state)  // splitmix64
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
	const char *task = "qa", *sha = NULL, *schema = "medmoe.tokens", *table = NULL, *prefix = NULL;
	long task_id = 0, alt_id = -1, n = 10, min_len = 1, max_len = 50;
	uint64_t seed = 1;
	int ch;
	while ((ch = getopt(argc, argv, "t:i:n:l:L:s:k:S:T:p:a:")) != -1) {
		switch (ch) {
		case 't': task = optarg; break;
		case 'i': task_id = atol(optarg); break;
		case 'n': n = atol(optarg); break;
		case 'l': min_len = atol(optarg); break;
		case 'L': max_len = atol(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'k': sha = optarg; break;
		case 'S': schema = optarg; break;
		case 'T': table = optarg; break;
		case 'p': prefix = optarg; break;
		case 'a': alt_id = atol(optarg); break;
		default: fprintf(stderr, "mktokens: bad option\n"); return 2;
		}
	}
	char default_sha[65];
	memset(default_sha, 'a', 64);
	default_sha[64] = '\0';
	if (!sha)
		sha = default_sha;
	msgpack_packer pk;
	msgpack_packer_init(&pk, NULL, write_stdout);

	msgpack_pack_map(&pk, 5 + (table != NULL));
	pack_s(&pk, "schema"); pack_s(&pk, schema);
	pack_s(&pk, "version"); msgpack_pack_int(&pk, 1);
	pack_s(&pk, "program"); pack_s(&pk, "mktokens");
	pack_s(&pk, "program_version"); pack_s(&pk, "0");
	pack_s(&pk, "tokenizer");
	msgpack_pack_map(&pk, 3);
	pack_s(&pk, "sha256"); pack_s(&pk, sha);
	pack_s(&pk, "vocab_size"); msgpack_pack_int(&pk, 151669);
	pack_s(&pk, "special");
	msgpack_pack_map(&pk, 1);
	pack_s(&pk, "<|endoftext|>"); msgpack_pack_int(&pk, 151643);
	if (table) {
		char *copy = strdup(table), *save = NULL;
		int count = 1;
		for (const char *c = table; *c; c++)
			count += *c == ',';
		pack_s(&pk, "tasks");
		msgpack_pack_array(&pk, count);
		for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(it, '=');
			*eq = '\0';
			msgpack_pack_map(&pk, 4);
			pack_s(&pk, "name"); pack_s(&pk, it);
			pack_s(&pk, "id"); msgpack_pack_int(&pk, atoi(eq + 1));
			pack_s(&pk, "examples"); msgpack_pack_int(&pk, 0);
			pack_s(&pk, "tokens"); msgpack_pack_int(&pk, 0);
		}
		free(copy);
	}

	uint64_t state = seed;
	uint32_t *ids = malloc((size_t)max_len * 4 + 4);
	uint8_t *mask = malloc((size_t)max_len + 1);
	for (long r = 0; r < n; r++) {
		long len = min_len + (long)(next(&state) % (uint64_t)(max_len - min_len + 1));
		for (long j = 0; j < len; j++) {
			uint32_t v = (uint32_t)(((uint64_t)r * 1000003u + (uint64_t)j * 7919u + seed) % 151643u);
			uint8_t le[4] = { v, v >> 8, v >> 16, v >> 24 };
			memcpy(&ids[j], le, 4);
			mask[j] = j >= len / 3;
		}
		char id[128];
		snprintf(id, sizeof id, "%s:%ld", prefix ? prefix : task, r);
		msgpack_pack_map(&pk, 6);
		pack_s(&pk, "task"); pack_s(&pk, task);
		pack_s(&pk, "task_id"); msgpack_pack_int(&pk, (int)(r % 2 && alt_id >= 0 ? alt_id : task_id));
		pack_s(&pk, "id"); pack_s(&pk, id);
		pack_s(&pk, "ids"); msgpack_pack_bin(&pk, (size_t)len * 4); msgpack_pack_bin_body(&pk, ids, (size_t)len * 4);
		pack_s(&pk, "mask"); msgpack_pack_bin(&pk, (size_t)len); msgpack_pack_bin_body(&pk, mask, (size_t)len);
		pack_s(&pk, "lang"); pack_s(&pk, "zh");
	}
	free(ids);
	free(mask);
	return fflush(stdout) == 0 ? 0 : 1;
}
