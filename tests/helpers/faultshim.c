// faultshim.c — LD_PRELOAD library for the fault-injection tests (tests/t/faults.sh): it counts the calls by
// which a program changes files, and kills the program or makes a call fail at a chosen one.
//
// Counted calls ("events"): fopen, fwrite, fflush, fclose, fsync, fdatasync, open/openat for writing, write,
// pwrite, ftruncate, rename, renameat, renameat2, mkdir, unlink, rmdir.  Environment:
//   FAULT_COUNT_FILE=F      at exit, write "EVENTS RENAMES FSYNCS" (the calls seen) to F: a dry run, to choose
//                           the points below
//   FAULT_KILL_AT=N         SIGKILL the process just before event N (1-based): a crash at that instant
//   FAULT_RENAME_FAIL=N     the Nth rename/renameat/renameat2 fails with EIO (nothing renamed)
//   FAULT_RENAME_KILL=N     SIGKILL just before the Nth rename-family call
//   FAULT_FSYNC_FAIL=N      the Nth fsync/fdatasync fails with EIO
// Only plain libc calls made through the PLT are seen (stdio's own internal writes are not, fwrite is).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static long events, renames, fsyncs;
static long kill_at = -1, rename_fail = -1, rename_kill = -1, fsync_fail = -1;
static const char *count_file;

static long env_num(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? atol(v) : -1;
}

static void write_count(void)
{
	if (!count_file)
		return;
	FILE *(*real_fopen)(const char *, const char *);
	*(void **)&real_fopen = dlsym(RTLD_NEXT, "fopen");
	FILE *fp = real_fopen(count_file, "w");
	if (fp) {
		fprintf(fp, "%ld %ld %ld\n", events, renames, fsyncs);
		fclose(fp);
	}
}

__attribute__((constructor)) static void init(void)
{
	kill_at = env_num("FAULT_KILL_AT");
	rename_fail = env_num("FAULT_RENAME_FAIL");
	rename_kill = env_num("FAULT_RENAME_KILL");
	fsync_fail = env_num("FAULT_FSYNC_FAIL");
	count_file = getenv("FAULT_COUNT_FILE");
	if (count_file && *count_file)
		atexit(write_count);
	else
		count_file = NULL;
}

static void event(void)
{
	events++;
	if (kill_at > 0 && events == kill_at) {
		write_count();
		raise(SIGKILL);
	}
}

#define REAL(name, type) \
	static __typeof__(&name) real_##name; \
	if (!real_##name) \
		*(void **)&real_##name = dlsym(RTLD_NEXT, #name)

static int rename_event(void)
{
	event();
	renames++;
	if (rename_kill > 0 && renames == rename_kill)
		raise(SIGKILL);
	if (rename_fail > 0 && renames == rename_fail) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int rename(const char *a, const char *b)
{
	REAL(rename, int (*)(const char *, const char *));
	if (rename_event())
		return -1;
	return real_rename(a, b);
}

int renameat(int fa, const char *a, int fb, const char *b)
{
	REAL(renameat, int (*)(int, const char *, int, const char *));
	if (rename_event())
		return -1;
	return real_renameat(fa, a, fb, b);
}

int renameat2(int fa, const char *a, int fb, const char *b, unsigned flags)
{
	REAL(renameat2, int (*)(int, const char *, int, const char *, unsigned));
	if (rename_event())
		return -1;
	return real_renameat2(fa, a, fb, b, flags);
}

static int fsync_event(void)
{
	event();
	fsyncs++;
	if (fsync_fail > 0 && fsyncs == fsync_fail) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int fsync(int fd)
{
	REAL(fsync, int (*)(int));
	if (fsync_event())
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(fdatasync, int (*)(int));
	if (fsync_event())
		return -1;
	return real_fdatasync(fd);
}

FILE *fopen(const char *p, const char *m)
{
	REAL(fopen, FILE * (*)(const char *, const char *));
	event();
	return real_fopen(p, m);
}

FILE *fopen64(const char *p, const char *m)
{
	REAL(fopen64, FILE * (*)(const char *, const char *));
	event();
	return real_fopen64(p, m);
}

size_t fwrite(const void *b, size_t s, size_t n, FILE *fp)
{
	REAL(fwrite, size_t (*)(const void *, size_t, size_t, FILE *));
	event();
	return real_fwrite(b, s, n, fp);
}

int fflush(FILE *fp)
{
	REAL(fflush, int (*)(FILE *));
	if (fp)
		event();
	return real_fflush(fp);
}

int fclose(FILE *fp)
{
	REAL(fclose, int (*)(FILE *));
	event();
	return real_fclose(fp);
}

ssize_t write(int fd, const void *b, size_t n)
{
	REAL(write, ssize_t (*)(int, const void *, size_t));
	if (fd > 2)
		event();
	return real_write(fd, b, n);
}

ssize_t pwrite64(int fd, const void *b, size_t n, off_t o)
{
	REAL(pwrite64, ssize_t (*)(int, const void *, size_t, off_t));
	event();
	return real_pwrite64(fd, b, n, o);
}

static int open_event(int flags)
{
	if (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC))
		event();
	return 0;
}

int open64(const char *p, int flags, ...)
{
	REAL(open64, int (*)(const char *, int, ...));
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (flags & O_CREAT) ? va_arg(ap, mode_t) : 0;
	va_end(ap);
	open_event(flags);
	return real_open64(p, flags, mode);
}

int open(const char *p, int flags, ...)
{
	REAL(open, int (*)(const char *, int, ...));
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (flags & O_CREAT) ? va_arg(ap, mode_t) : 0;
	va_end(ap);
	open_event(flags);
	return real_open(p, flags, mode);
}

int ftruncate64(int fd, off_t len)
{
	REAL(ftruncate64, int (*)(int, off_t));
	event();
	return real_ftruncate64(fd, len);
}

int mkdir(const char *p, mode_t m)
{
	REAL(mkdir, int (*)(const char *, mode_t));
	event();
	return real_mkdir(p, m);
}

int unlink(const char *p)
{
	REAL(unlink, int (*)(const char *));
	event();
	return real_unlink(p);
}

int rmdir(const char *p)
{
	REAL(rmdir, int (*)(const char *));
	event();
	return real_rmdir(p);
}
