// record_index.c — pread one record by its offset and length, unpack it.
#include "record_index.h"
#include "die.h"
#include "infile.h"
#include "mpk_scan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void record_files_init(struct record_files *f)
{
	memset(f, 0, sizeof *f);
	msgpack_unpacked_init(&f->msg);
}

uint32_t record_files_add(struct record_files *f, const char *path)
{
	int fd = infile_open(path, NULL);   // random reads need a regular file (a FIFO is refused, not waited on)
	if (fd < 0)
		die(EXIT_DATA, "%s: %s", path, strerror(errno));
	f->paths = xrealloc(f->paths, (f->n + 1) * sizeof *f->paths);
	f->fds = xrealloc(f->fds, (f->n + 1) * sizeof *f->fds);
	f->paths[f->n] = xstrdup(path);
	f->fds[f->n] = fd;
	return (uint32_t)f->n++;
}

void record_files_read(struct record_files *f, const struct record_ref *ref, int64_t record_no, msgpack_object *rec)
{
	const char *path = f->paths[ref->file];
	f->buf.len = 0;
	bytevec_reserve(&f->buf, ref->length + 1);
	size_t got = 0;
	while (got < ref->length) {
		ssize_t n = pread(f->fds[ref->file], f->buf.data + got, ref->length - got, (off_t)(ref->offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_errno("%s", path);
		if (n == 0)
			die_data(path, record_no, NULL, "the file changed while it was read (short read at byte %llu)",
				 (unsigned long long)(ref->offset + got));
		got += (size_t)n;
	}
	size_t off = 0;
	if (mpk_unpack(&f->msg, f->buf.data, ref->length, &off) != NULL || off != ref->length ||
	    f->msg.data.type != MSGPACK_OBJECT_MAP)
		die_data(path, record_no, NULL, "the file changed while it was read (not one record at byte %llu)",
			 (unsigned long long)ref->offset);
	*rec = f->msg.data;
}

void record_files_close(struct record_files *f)
{
	for (size_t i = 0; i < f->n; i++) {
		close(f->fds[i]);
		free(f->paths[i]);
	}
	free(f->paths);
	free(f->fds);
	free(f->buf.data);
	msgpack_unpacked_destroy(&f->msg);
	memset(f, 0, sizeof *f);
}
