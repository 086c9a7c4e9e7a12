// replay.c — a main for the fuzz targets without libFuzzer: run LLVMFuzzerTestOneInput on every file named
// (or every file in every directory named).  `make test` runs it on the committed seeds and regression inputs
// (tests/t/fuzz-regress.sh); under `make test SAN=1` a regression that comes back is a sanitizer report.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		perror(path);
		return 1;
	}
	size_t cap = 1 << 16, n = 0, k;
	uint8_t *buf = malloc(cap);
	while (buf && (k = fread(buf + n, 1, cap - n, fp)) > 0) {
		n += k;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(fp);
	if (!buf)
		return 1;
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int bad = 0, files = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			bad |= run_file(argv[i]);
			files++;
			continue;
		}
		struct dirent **list;
		int n = scandir(argv[i], &list, NULL, alphasort);
		for (int j = 0; j < n; j++) {
			if (list[j]->d_name[0] != '.') {
				char *p = malloc(strlen(argv[i]) + strlen(list[j]->d_name) + 2);
				sprintf(p, "%s/%s", argv[i], list[j]->d_name);
				bad |= run_file(p);
				files++;
				free(p);
			}
			free(list[j]);
		}
		free(list);
	}
	printf("%d inputs replayed\n", files);
	return bad;
}
