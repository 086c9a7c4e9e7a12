// mkpred.c — test helper for tests/t/score.sh: writes a predictions stream from tab-separated lines, with
// libmsgpack alone (no medmoe code, so the stream under test is written independently of the reader).
//
//   mkpred [-m mode] [-s schema] [-n shots] OUT < lines
//   line: bench <TAB> id <TAB> single|multi <TAB> answer <TAB> predicted|- <TAB> key=value;key=value
// "-" as predicted writes nil with parsed false.  Not installed; compiled by the test script.
#include <msgpack.h>
#include <msgpack/fbuffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void kv(msgpack_packer *pk, const char *k, const char *v)
{
	str(pk, k);
	str(pk, v);
}

int main(int argc, char **argv)
{
	const char *mode = "generate", *schema = "medmoe.predictions";
	int ch, shots = -1;
	while ((ch = getopt(argc, argv, "m:s:n:")) != -1) {
		if (ch == 'm')
			mode = optarg;
		else if (ch == 's')
			schema = optarg;
		else if (ch == 'n')
			shots = atoi(optarg);
		else
			return 2;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: mkpred [-m mode] [-s schema] [-n shots] OUT < lines\n");
		return 2;
	}
	FILE *out = fopen(argv[optind], "wb");
	if (!out) {
		perror(argv[optind]);
		return 1;
	}
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_fbuffer_write);
	msgpack_pack_map(&pk, shots >= 0 ? 8 : 7);
	kv(&pk, "schema", schema);
	str(&pk, "version");
	msgpack_pack_int(&pk, 1);
	kv(&pk, "program", "mkpred");
	kv(&pk, "program_version", "0");
	str(&pk, "tokenizer");
	msgpack_pack_map(&pk, 3);
	kv(&pk, "sha256", "0000000000000000000000000000000000000000000000000000000000000000");
	str(&pk, "vocab_size");
	msgpack_pack_int(&pk, 100);
	str(&pk, "special");
	msgpack_pack_map(&pk, 0);
	kv(&pk, "mode", mode);
	str(&pk, "model");
	msgpack_pack_map(&pk, 1);
	kv(&pk, "base", "test-model");
	if (shots >= 0) {
		str(&pk, "shots");
		msgpack_pack_int(&pk, shots);
	}

	char line[4096];
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		char *field[6] = { 0 };
		char *save = NULL, *p = line;
		for (int i = 0; i < 6; i++) {
			field[i] = strsep(&p, "\t");
			if (!field[i]) {
				fprintf(stderr, "mkpred: want 6 tab-separated fields: %s\n", line);
				return 1;
			}
		}
		int parsed = strcmp(field[4], "-") != 0;
		msgpack_pack_map(&pk, 7);
		kv(&pk, "id", field[1]);
		kv(&pk, "bench", field[0]);
		kv(&pk, "type", field[2]);
		kv(&pk, "answer", field[3]);
		str(&pk, "predicted");
		if (parsed)
			str(&pk, field[4]);
		else
			msgpack_pack_nil(&pk);
		str(&pk, "parsed");
		if (parsed)
			msgpack_pack_true(&pk);
		else
			msgpack_pack_false(&pk);
		// categories: count the pairs first
		int n_cat = 0;
		char cats[4096];
		snprintf(cats, sizeof cats, "%s", field[5]);
		for (char *c = strtok_r(cats, ";", &save); c; c = strtok_r(NULL, ";", &save))
			n_cat++;
		str(&pk, "categories");
		msgpack_pack_map(&pk, (size_t)n_cat);
		snprintf(cats, sizeof cats, "%s", field[5]);
		for (char *c = strtok_r(cats, ";", &save); c; c = strtok_r(NULL, ";", &save)) {
			char *eq = strchr(c, '=');
			if (!eq) {
				fprintf(stderr, "mkpred: category without '=': %s\n", c);
				return 1;
			}
			*eq = '\0';
			kv(&pk, c, eq + 1);
		}
	}
	if (fclose(out)) {
		perror(argv[optind]);
		return 1;
	}
	return 0;
}
