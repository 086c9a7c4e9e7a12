// mklearn — test helper: a small LEARNABLE multi-task medmoe.tokens stream for train-experts' tests.
//
//   mklearn -k SHA256 -V VOCAB [-n RECORDS] [-t TASKS] [-l LEN] [-s SEED] > FILE
//
// Task t (named "task<t>", id t) writes sequences over the 26 ids 65..90 ('A'..'Z'): a marker id 48+t, then a
// random start x0 and x_{j+1} = 65 + (x_j − 65 + t + 1) mod 26, so the next token is a deterministic function of
// the task and the previous token: a model that learns the rule drives the loss towards 0, from about
// log(VOCAB).  The mask is 1 from the third token on.  Plain msgpack-c, one cc line, like mktokens.c.
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
	const char *sha = NULL;
	long n = 200, tasks = 3, len = 24, vocab = 0;
	uint64_t seed = 1;
	int ch;
	while ((ch = getopt(argc, argv, "k:V:n:t:l:s:")) != -1) {
		switch (ch) {
		case 'k': sha = optarg; break;
		case 'V': vocab = atol(optarg); break;
		case 'n': n = atol(optarg); break;
		case 't': tasks = atol(optarg); break;
		case 'l': len = atol(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		default: fprintf(stderr, "mklearn: bad option\n"); return 2;
		}
	}
	if (!sha || vocab < 91 || tasks < 1 || tasks > 9 || len < 3) {
		fprintf(stderr, "usage: mklearn -k SHA256 -V VOCAB(>=91) [-n N] [-t TASKS<=9] [-l LEN>=3] [-s SEED]\n");
		return 2;
	}
	msgpack_packer pk;
	msgpack_packer_init(&pk, NULL, write_stdout);
	msgpack_pack_map(&pk, 6);
	pack_s(&pk, "schema"); pack_s(&pk, "medmoe.tokens");
	pack_s(&pk, "version"); msgpack_pack_int(&pk, 1);
	pack_s(&pk, "program"); pack_s(&pk, "mklearn");
	pack_s(&pk, "program_version"); pack_s(&pk, "0");
	pack_s(&pk, "tokenizer");
	msgpack_pack_map(&pk, 3);
	pack_s(&pk, "sha256"); pack_s(&pk, sha);
	pack_s(&pk, "vocab_size"); msgpack_pack_int(&pk, (int)vocab);
	pack_s(&pk, "special");
	msgpack_pack_map(&pk, 0);
	pack_s(&pk, "tasks");
	msgpack_pack_array(&pk, (size_t)tasks);
	for (long t = 0; t < tasks; t++) {
		char name[16];
		snprintf(name, sizeof name, "task%ld", t);
		msgpack_pack_map(&pk, 4);
		pack_s(&pk, "name"); pack_s(&pk, name);
		pack_s(&pk, "id"); msgpack_pack_int(&pk, (int)t);
		pack_s(&pk, "examples"); msgpack_pack_int(&pk, 0);
		pack_s(&pk, "tokens"); msgpack_pack_int(&pk, 0);
	}
	uint64_t state = seed;
	uint32_t *ids = malloc((size_t)len * 4);
	uint8_t *mask = malloc((size_t)len);
	for (long r = 0; r < n; r++) {
		long t = r % tasks;
		uint32_t x = 65 + (uint32_t)(next(&state) % 26);
		for (long j = 0; j < len; j++) {
			uint32_t v = j == 0 ? 48 + (uint32_t)t : x;
			if (j > 0)
				x = 65 + (x - 65 + (uint32_t)t + 1) % 26;
			uint8_t le[4] = {v, v >> 8, v >> 16, v >> 24};
			memcpy(&ids[j], le, 4);
			mask[j] = j >= 2;
		}
		char name[16], id[32];
		snprintf(name, sizeof name, "task%ld", t);
		snprintf(id, sizeof id, "%s:%ld", name, r);
		msgpack_pack_map(&pk, 6);
		pack_s(&pk, "task"); pack_s(&pk, name);
		pack_s(&pk, "task_id"); msgpack_pack_int(&pk, (int)t);
		pack_s(&pk, "id"); pack_s(&pk, id);
		pack_s(&pk, "ids"); msgpack_pack_bin(&pk, (size_t)len * 4); msgpack_pack_bin_body(&pk, ids, (size_t)len * 4);
		pack_s(&pk, "mask"); msgpack_pack_bin(&pk, (size_t)len); msgpack_pack_bin_body(&pk, mask, (size_t)len);
		pack_s(&pk, "lang"); pack_s(&pk, "en");
	}
	free(ids);
	free(mask);
	return fflush(stdout) == 0 ? 0 : 1;
}
