// infile.c — regular-file checks before reading (see infile.h).
#include "infile.h"
#include "die.h"

#include <errno.h>
#include <fcntl.h>
#include <sha2.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *kind(mode_t m)
{
	if (S_ISDIR(m)) return "a directory";
	if (S_ISFIFO(m)) return "a FIFO";
	if (S_ISCHR(m)) return "a character device";
	if (S_ISBLK(m)) return "a block device";
	if (S_ISSOCK(m)) return "a socket";
	return "not a regular file";
}

int infile_open(const char *path, struct stat *st)
{
	// O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer.
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat sb;
	if (fstat(fd, &sb) != 0)
		die_errno("%s", path);
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		die_data(path, -1, NULL, "is %s, not a regular file", kind(sb.st_mode));
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		die_errno("%s", path);
	if (st)
		*st = sb;
	return fd;
}

FILE *infile_fopen(const char *path)
{
	int fd = infile_open(path, NULL);
	if (fd < 0)
		return NULL;
	FILE *fp = fdopen(fd, "rb");
	if (!fp)
		die_errno("%s", path);
	return fp;
}

FILE *infile_fopen_stream(const char *path)
{
	if (strcmp(path, "-") == 0)
		return stdin;
	struct stat sb;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		die_data(path, -1, NULL, "is a directory, not a stream");
	FILE *fp = fopen(path, "rb");
	if (fp && fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		fclose(fp);
		die_data(path, -1, NULL, "is a directory, not a stream");
	}
	return fp;
}

char *infile_read(const char *path, size_t max, size_t *len)
{
	struct stat st;
	int fd = infile_open(path, &st);
	if (fd < 0)
		return NULL;
	if ((uint64_t)st.st_size > max)
		die_data(path, -1, NULL, "%llu bytes, more than this file may hold (%zu)", (unsigned long long)st.st_size,
			 max);
	size_t cap = (size_t)st.st_size, n = 0;
	char *buf = xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			// the file grew since fstat: read on up to the limit
			if (cap >= max)
				break;
			cap = cap * 2 + 4096 < max ? cap * 2 + 4096 : max;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t k = read(fd, buf + n, cap - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die_errno("%s", path);
		if (k == 0)
			break;
		n += (size_t)k;
	}
	char probe;
	if (n == max && read(fd, &probe, 1) == 1)
		die_data(path, -1, NULL, "more than this file may hold (%zu bytes)", max);
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
}

json_t *infile_json(const char *path, size_t flags, size_t max, json_error_t *err)
{
	size_t len;
	char *text = infile_read(path, max, &len);
	if (!text) {
		memset(err, 0, sizeof *err);
		snprintf(err->text, sizeof err->text, "%s", strerror(errno));
		snprintf(err->source, sizeof err->source, "%s", path);
		err->line = -1;
		return NULL;
	}
	json_t *j = json_loadb(text, len, flags, err);
	free(text);
	return j;
}

void infile_sha256_fd(int fd, const char *path, char out[65], uint64_t *size)
{
	SHA2_CTX ctx;
	SHA256Init(&ctx);
	static __thread uint8_t buf[1 << 16];
	uint64_t off = 0;
	for (;;) {
		ssize_t k = pread(fd, buf, sizeof buf, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die_errno("%s", path);
		if (k == 0)
			break;
		SHA256Update(&ctx, buf, (size_t)k);
		off += (uint64_t)k;
	}
	SHA256End(&ctx, out);
	*size = off;
}

int infile_sha256(const char *path, char out[65], uint64_t *size)
{
	int fd = infile_open(path, NULL);
	if (fd < 0)
		return -1;
	infile_sha256_fd(fd, path, out, size);
	close(fd);
	return 0;
}

int64_t infile_json_int(const json_t *obj, const char *path, const char *key, int64_t lo, int64_t hi)
{
	const json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v))
		die_data(path, -1, key, "missing or not an integer");
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		die_data(path, -1, key, "%lld is not in %lld..%lld", (long long)x, (long long)lo, (long long)hi);
	return x;
}
