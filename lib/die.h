// die.h — the one family of error helpers every program uses (like err(3) / git's die()).
//
// Messages go to stderr as "PROG: what" or, for bad data, "PROG: FILE: record N: field: what".
// Before exiting, every output file still open under a temporary name is removed (see outfile.h),
// so a failed run never leaves partial output behind.
#ifndef MEDMOE_DIE_H
#define MEDMOE_DIE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
// C11's noreturn, or C++'s attribute when a .cu file reads this header.
#ifdef __cplusplus
#define MEDMOE_NORETURN [[noreturn]]
extern "C" {
#else
#include <stdnoreturn.h>
#define MEDMOE_NORETURN noreturn
#endif

// Exit codes (sysexits(3) where one fits).
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,     // a failure that is not the input's fault (I/O, memory)
	EXIT_USAGE = 2,    // bad command line
	EXIT_DATA = 65,    // EX_DATAERR: the input data is wrong
};

// Set once at the top of main(); used as the PROG prefix of every message.
void set_progname(const char *argv0);
const char *progname(void);

// "PROG: fmt" and exit with code.
MEDMOE_NORETURN void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// "PROG: fmt: strerror(errno)" and exit 1.
MEDMOE_NORETURN void die_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// "PROG: FILE: record N: FIELD: fmt" and exit 65.  record < 0 leaves "record N" out,
// field NULL leaves the field out.  record counts from 1 (the header of a stream is record 0).
MEDMOE_NORETURN void die_data(const char *file, int64_t record, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
// The same message as die_data, but returned to the caller as a warning (for --skip-bad).
void warn_data(const char *file, int64_t record, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
// "PROG: fmt" as a warning; the program goes on.
void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Allocation that never returns NULL (dies with exit 1).
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
// Printf into a fresh heap string.
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// A hook run by die*() before exit: outfile.c registers the removal of temporary files here.
void die_set_cleanup(void (*fn)(void));
// For the fuzz targets (tests/fuzz): die*() calls FN(code) instead of exit (FN must not return: it longjmps),
// and with SILENT no message is printed.  Programs never call this.
void die_set_exit(void (*fn)(int code), int silent);

#ifdef __cplusplus
}
#endif

#endif
