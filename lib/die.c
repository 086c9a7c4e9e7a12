// die.c — error reporting and allocation that cannot fail.
#include "die.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog_name = "medmoe";
static void (*cleanup_hook)(void);
static void (*exit_hook)(int code);
static int quiet;

void set_progname(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');
	prog_name = slash ? slash + 1 : argv0;
}

const char *progname(void) { return prog_name; }

void die_set_cleanup(void (*fn)(void)) { cleanup_hook = fn; }

void die_set_exit(void (*fn)(int code), int silent)
{
	exit_hook = fn;
	quiet = silent;
}

static noreturn void finish(int code)
{
	if (cleanup_hook) {
		void (*fn)(void) = cleanup_hook;
		cleanup_hook = NULL;  // a failure inside cleanup must not loop
		fn();
	}
	if (exit_hook)
		exit_hook(code);   // does not return (a fuzz target longjmps back to its loop)
	exit(code);
}

void die(int code, const char *fmt, ...)
{
	va_list ap;
	if (quiet)
		finish(code);
	fflush(stdout);
	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	finish(code);
}

void die_errno(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	if (quiet)
		finish(EXIT_FAIL);
	fflush(stdout);
	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(saved));
	finish(EXIT_FAIL);
}

static void vreport_data(const char *file, int64_t record, const char *field, const char *fmt, va_list ap)
{
	if (quiet)
		return;
	fprintf(stderr, "%s: %s", prog_name, file ? file : "-");
	if (record >= 0)
		fprintf(stderr, ": record %lld", (long long)record);
	if (field)
		fprintf(stderr, ": %s", field);
	fputs(": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void die_data(const char *file, int64_t record, const char *field, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	va_start(ap, fmt);
	vreport_data(file, record, field, fmt, ap);
	va_end(ap);
	finish(EXIT_DATA);
}

void warn_data(const char *file, int64_t record, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport_data(file, record, field, fmt, ap);
	va_end(ap);
}

void warnx(const char *fmt, ...)
{
	va_list ap;
	if (quiet)
		return;
	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die(EXIT_FAIL, "out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		die(EXIT_FAIL, "out of memory (%zu x %zu bytes)", count, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die(EXIT_FAIL, "out of memory (%zu bytes)", n);
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die(EXIT_FAIL, "out of memory");
	return s;
}
