// corpus.c — opening corpora: plain files, stdin, archives and compressed files; choosing the format of
// each source; the error policy for bad records; building conversations.
#include "corpus.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fnmatch.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "corpus_format.h"
#include "die.h"

struct corpus {
	char *path;
	char *format, *encoding, *member;
	int skip_bad;
	struct colmap map;
	int have_map;
	struct colmap *defaults;
	int n_defaults;
	FILE *fp;                  // a plain file or stdin
	struct archive *ar;        // an archive, or one compressed file (raw)
	int raw;
	int n_members;             // archive members read so far
	char **names;              // every source name handed out, so conversation.source stays valid
	int n_names;
	struct corpus_src src;
	struct corpus_reader *reader;
	size_t skipped;
	int done;
};

static const char *const formats[] = { "json", "jsonl", "csv", "covid-txt" };
static const char *const archive_suffixes[] = { ".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst",
						 ".tzst", ".tar.bz2", ".tbz2" };
static const char *const compressed_suffixes[] = { ".gz", ".xz", ".zst", ".bz2" };
static const char *const member_suffixes[] = { ".jsonl", ".ndjson", ".json", ".csv", ".txt" };

static int has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = strlen(suffix);
	return n >= k && strcasecmp(name + n - k, suffix) == 0;
}

static const char *suffix_in(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (has_suffix(name, list[i]))
			return list[i];
	return NULL;
}
#define SUFFIX_IN(name, list) suffix_in(name, list, sizeof list / sizeof list[0])

// ---- Record errors and conversations (shared with the readers through corpus_format.h).

void rec_err_set(struct rec_err *e, const char *field, const char *fmt, ...)
{
	va_list ap;
	e->has_field = field != NULL;
	snprintf(e->field, sizeof e->field, "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
}

void corpus_reject(struct corpus_src *src, long record, const struct rec_err *e)
{
	const char *field = e->has_field ? e->field : NULL;
	if (!src->skip_bad)
		die_data(src->name, record, field, "%s", e->msg);
	warn_data(src->name, record, field, "%s (skipped)", e->msg);
	(*src->skipped)++;
}

void conv_begin(struct conversation *conv, struct corpus_src *src, long record)
{
	memset(conv, 0, sizeof *conv);
	conv->source = src->name;
	conv->record = record;
}

void conv_add_turn(struct conversation *conv, enum turn_role role, const char *text, size_t len)
{
	conv->turns = xrealloc(conv->turns, (size_t)(conv->n_turns + 1) * sizeof *conv->turns);
	conv->turns[conv->n_turns++] = (struct conv_turn){ role, xstrndup(text, len), len };
}

void conv_set_id(struct conversation *conv, const char *id, size_t len)
{
	if (len == 0)
		return;
	free(conv->id);
	conv->id = xstrndup(id, len);
}

void conv_set_task(struct conversation *conv, const char *task, size_t len)
{
	if (len == 0)
		return;
	free(conv->task_hint);
	conv->task_hint = xstrndup(task, len);
}

void conv_finish(struct conversation *conv)
{
	if (!conv->id)
		conv->id = xasprintf("%s:%ld", conv->source, conv->record);
}

void conversation_free(struct conversation *conv)
{
	for (int i = 0; i < conv->n_turns; i++)
		free(conv->turns[i].text);
	free(conv->turns);
	free(conv->id);
	free(conv->task_hint);
	memset(conv, 0, sizeof *conv);
}

const char *turn_role_name(enum turn_role role)
{
	switch (role) {
	case ROLE_SYSTEM: return "system";
	case ROLE_USER: return "user";
	case ROLE_ASSISTANT: return "assistant";
	case ROLE_TEXT: return "text";
	}
	return "?";
}

// ---- Byte sources.

static ssize_t read_file(void *ctx, void *buf, size_t n, const char **err)
{
	FILE *fp = ctx;
	size_t got = fread(buf, 1, n, fp);
	if (got == 0 && ferror(fp)) {
		*err = strerror(errno);
		return -1;
	}
	return (ssize_t)got;
}

static ssize_t read_member(void *ctx, void *buf, size_t n, const char **err)
{
	struct archive *ar = ctx;
	la_ssize_t got = archive_read_data(ar, buf, n);
	if (got < 0) {
		*err = archive_error_string(ar);
		return -1;
	}
	return (ssize_t)got;
}

// ---- Formats.

// covid-txt starts with a line "id=N".
static int looks_covid(const char *bytes, size_t n)
{
	if (n < 4 || memcmp(bytes, "id=", 3) != 0)
		return 0;
	for (size_t i = 3; i < n; i++) {
		if (bytes[i] == '\n' || bytes[i] == '\r')
			return i > 3;
		if (bytes[i] == ' ' || bytes[i] == '\t')
			return 0;
	}
	return 1;
}

// The format of source NAME: the one given, else by extension and the first bytes.  NULL when unknown.
static const char *pick_format(const char *forced, const char *name, struct textsrc *text)
{
	size_t got;
	const char *bytes = textsrc_peek(text, 4096, &got);
	size_t i = 0;
	while (i < got && strchr(" \t\r\n", bytes[i]))
		i++;
	char first = i < got ? bytes[i] : '\0';
	if (forced && strcmp(forced, "json") == 0)
		return first == '[' ? "json" : "jsonl";
	if (forced)
		return forced;
	if (has_suffix(name, ".csv"))
		return "csv";
	if (has_suffix(name, ".json") || has_suffix(name, ".jsonl") || has_suffix(name, ".ndjson"))
		return first == '[' ? "json" : "jsonl";
	if (looks_covid(bytes, got))
		return "covid-txt";
	if (first == '[')
		return "json";
	if (first == '{')
		return "jsonl";
	return NULL;
}

static struct corpus_reader *reader_for(const char *format, struct corpus_src *src)
{
	if (strcmp(format, "json") == 0)
		return json_array_reader_new(src);
	if (strcmp(format, "jsonl") == 0)
		return jsonl_reader_new(src);
	if (strcmp(format, "csv") == 0)
		return csv_reader_new(src);
	return covid_reader_new(src);
}

// Starts reading source NAME from READ/CTX.  Returns 0 (and starts nothing) when the format is unknown
// and SKIP_UNKNOWN is set.
static int start_source(struct corpus *c, const char *name, textsrc_read_fn read, void *ctx, int skip_unknown)
{
	c->names = xrealloc(c->names, (size_t)(c->n_names + 1) * sizeof *c->names);
	c->names[c->n_names++] = xstrdup(name);
	c->src = (struct corpus_src){
		.name = c->names[c->n_names - 1],
		.text = textsrc_new(name, read, ctx, c->encoding),
		.map = c->have_map ? &c->map : NULL,
		.defaults = c->defaults,
		.n_defaults = c->n_defaults,
		.skip_bad = c->skip_bad,
		.skipped = &c->skipped,
	};
	const char *format = pick_format(c->format, name, c->src.text);
	if (!format) {
		textsrc_free(c->src.text);
		c->src.text = NULL;
		if (skip_unknown) {
			warnx("%s: skipped: not a known corpus format", name);
			return 0;
		}
		die_data(name, -1, NULL, "cannot tell the format; give one (json, jsonl, csv, covid-txt)");
	}
	c->reader = reader_for(format, &c->src);
	return 1;
}

static void end_source(struct corpus *c)
{
	if (c->reader)
		c->reader->free(c->reader);
	c->reader = NULL;
	textsrc_free(c->src.text);
	c->src.text = NULL;
}

// Opens the next archive member that is selected.  Returns 0 when there is none left.
static int next_member(struct corpus *c)
{
	struct archive_entry *entry;
	for (;;) {
		int r = archive_read_next_header(c->ar, &entry);
		if (r == ARCHIVE_EOF) {
			if (c->n_members == 0 && c->member)
				die_data(c->path, -1, NULL, "no member matches '%s'", c->member);
			if (c->n_members == 0)
				die_data(c->path, -1, NULL, "no member is a corpus (.jsonl, .ndjson, .json, .csv, .txt)");
			return 0;
		}
		if (r < ARCHIVE_WARN)
			die_data(c->path, -1, NULL, "%s", archive_error_string(c->ar));
		if (archive_entry_filetype(entry) != AE_IFREG)
			continue;
		const char *member = archive_entry_pathname_utf8(entry);
		if (!member)
			member = archive_entry_pathname(entry);
		if (!member)
			die_data(c->path, -1, NULL, "a member name that cannot be read");
		char *stem = NULL, *name;
		if (c->raw) {  // one compressed file: its "member" is the file itself without the compression suffix
			const char *base = strrchr(c->path, '/') ? strrchr(c->path, '/') + 1 : c->path;
			stem = xstrndup(base, strlen(base) - strlen(SUFFIX_IN(base, compressed_suffixes)));
			member = stem;
			name = xstrdup(c->path);
		} else {
			if (c->member ? fnmatch(c->member, member, 0) != 0 : !SUFFIX_IN(member, member_suffixes))
				continue;
			name = xasprintf("%s:%s", c->path, member);
		}
		// A .txt picked only by its extension may be a README: skip it unless it is a known format.
		int skip_unknown = !c->member && !c->raw && has_suffix(member, ".txt");
		int started = start_source(c, name, read_member, c->ar, skip_unknown);
		free(name);
		free(stem);
		if (started) {
			c->n_members++;
			return 1;
		}
	}
}

struct corpus *corpus_open(const char *path, const struct corpus_opts *opts)
{
	struct corpus *c = xcalloc(1, sizeof *c);
	char err[256];
	c->path = xstrdup(path);
	c->format = opts->format ? xstrdup(opts->format) : NULL;
	c->encoding = opts->encoding ? xstrdup(opts->encoding) : NULL;
	c->member = opts->member ? xstrdup(opts->member) : NULL;
	c->skip_bad = opts->skip_bad;
	int known = !c->format;
	for (size_t i = 0; i < sizeof formats / sizeof formats[0] && !known; i++)
		known = strcmp(c->format, formats[i]) == 0;
	if (!known)
		die(EXIT_USAGE, "unknown corpus format '%s' (json, jsonl, csv, covid-txt)", c->format);
	if (c->encoding) {
		iconv_t cd = iconv_open("UTF-8", c->encoding);
		if (cd == (iconv_t)-1)
			die(EXIT_USAGE, "unknown encoding '%s' (see iconv -l)", c->encoding);
		iconv_close(cd);
	}
	if (opts->columns) {
		if (colmap_parse(opts->columns, &c->map, err, sizeof err) != 0)
			die(EXIT_USAGE, "columns: %s", err);
		c->have_map = 1;
	}
	c->n_defaults = colmap_n_defaults;
	c->defaults = xcalloc((size_t)c->n_defaults, sizeof *c->defaults);
	for (int k = 0; k < c->n_defaults; k++)
		if (colmap_parse(colmap_default_specs[k], &c->defaults[k], err, sizeof err) != 0)
			die(EXIT_FAIL, "built-in column mapping '%s': %s", colmap_default_specs[k], err);

	if (strcmp(path, "-") == 0) {
		c->fp = stdin;
		start_source(c, "-", read_file, c->fp, 0);
		return c;
	}
	struct stat st;
	if (stat(path, &st) != 0)
		die_errno("%s", path);
	if (S_ISDIR(st.st_mode))
		die(EXIT_USAGE, "%s: is a directory", path);
	int archive = SUFFIX_IN(path, archive_suffixes) != NULL;
	c->raw = !archive && SUFFIX_IN(path, compressed_suffixes) != NULL;
	if (archive || c->raw) {
		c->ar = archive_read_new();
		archive_read_support_filter_all(c->ar);
		if (c->raw)
			archive_read_support_format_raw(c->ar);
		else
			archive_read_support_format_all(c->ar);
		if (archive_read_open_filename(c->ar, path, 1 << 16) != ARCHIVE_OK) {
			// the reader's buffers go first (the fuzz targets come back from die and go on)
			char *msg = xstrdup(archive_error_string(c->ar) ? archive_error_string(c->ar) : "cannot open");
			archive_read_free(c->ar);
			c->ar = NULL;
			die_data(path, -1, NULL, "%s", msg);
		}
		return c;
	}
	c->fp = fopen(path, "rb");
	if (!c->fp)
		die_errno("%s", path);
	start_source(c, path, read_file, c->fp, 0);
	return c;
}

int corpus_next(struct corpus *c, struct conversation *conv)
{
	for (;;) {
		if (c->reader) {
			if (c->reader->next(c->reader, conv))
				return 1;
			end_source(c);
			if (!c->ar)
				c->done = 1;
		}
		if (c->done)
			return 0;
		if (!next_member(c)) {
			c->done = 1;
			return 0;
		}
	}
}

size_t corpus_skipped(const struct corpus *c)
{
	return c->skipped;
}

void corpus_close(struct corpus *c)
{
	if (!c)
		return;
	end_source(c);
	if (c->ar)
		archive_read_free(c->ar);
	if (c->fp && c->fp != stdin)
		fclose(c->fp);
	if (c->have_map)
		colmap_free(&c->map);
	for (int k = 0; k < c->n_defaults; k++)
		colmap_free(&c->defaults[k]);
	free(c->defaults);
	for (int i = 0; i < c->n_names; i++)
		free(c->names[i]);
	free(c->names);
	free(c->path);
	free(c->format);
	free(c->encoding);
	free(c->member);
	free(c);
}
