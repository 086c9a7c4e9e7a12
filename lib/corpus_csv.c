// corpus_csv.c — CSV corpora through libcsv, streamed: a header row names the columns, a column mapping
// (given, or the first default that fits the header) turns each data row into a conversation.
//
// libcsv handles quoting, quoted newlines and CR/LF/CRLF line ends.  Not strict mode: a quote inside an
// unquoted field is kept as a character, as Python's csv module does (the Toyhom CSV has one, row 5112:
// `小三阳"如何治疗`); a quoted field left open at the end of the input is still an error.
// Spaces around fields are kept (libcsv trims them by default), so the text reaches the tokenizer byte for
// byte.  Header names match
// case-insensitively.  The record number is the data row (the header is row 0).
#include <csv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "corpus_format.h"
#include "die.h"
#include "vec.h"

struct csv_reader {
	struct corpus_reader base;
	struct corpus_src *src;
	struct csv_parser parser;
	int eof;
	// The row being parsed: field k is row.data[field_off[k], field_off[k] + field_len[k]).
	struct bytevec row;
	size_t *field_off, *field_len;
	int n_fields, cap_fields;
	char **header;
	int n_header;
	const struct colmap *map;  // src->map or the chosen default
	long row_no;
	// Conversations parsed but not yet returned (one chunk of input can complete many rows).
	struct conversation *pending;
	size_t n_pending, head, cap_pending;
};

static int no_space(unsigned char c)
{
	(void)c;
	return 0;
}

static void on_field(void *bytes, size_t len, void *data)
{
	struct csv_reader *r = data;
	if (r->n_fields == r->cap_fields) {
		r->cap_fields = r->cap_fields ? 2 * r->cap_fields : 16;
		r->field_off = xrealloc(r->field_off, (size_t)r->cap_fields * sizeof *r->field_off);
		r->field_len = xrealloc(r->field_len, (size_t)r->cap_fields * sizeof *r->field_len);
	}
	r->field_off[r->n_fields] = r->row.len;
	r->field_len[r->n_fields] = len;
	r->n_fields++;
	bytevec_append(&r->row, len ? bytes : "", len);
}

static int column_index(const struct csv_reader *r, const char *name)
{
	for (int k = 0; k < r->n_header; k++)
		if (strcasecmp(r->header[k], name) == 0)
			return k;
	return -1;
}

static int header_has(void *ctx, const char *name)
{
	return column_index(ctx, name) >= 0;
}

static enum colmap_lookup row_get(void *ctx, const char *name, const char **text, size_t *len, const char **why)
{
	struct csv_reader *r = ctx;
	(void)why;
	int k = column_index(r, name);
	if (k < 0)
		return FIELD_ABSENT;
	*text = r->row.data + r->field_off[k];
	*len = r->field_len[k];
	return FIELD_FOUND;
}

static char *header_list(const struct csv_reader *r)
{
	struct bytevec list = { 0 };
	bytevec_append(&list, "", 0);
	for (int k = 0; k < r->n_header; k++) {
		if (k)
			bytevec_puts(&list, ",");
		bytevec_puts(&list, r->header[k]);
	}
	return list.data;
}

static void take_header(struct csv_reader *r)
{
	r->n_header = r->n_fields;
	r->header = xcalloc((size_t)r->n_header, sizeof *r->header);
	for (int k = 0; k < r->n_fields; k++) {
		const char *name = r->row.data + r->field_off[k];
		size_t len = r->field_len[k];
		if (textsrc_utf8_check(name, len) < len)
			die_data(r->src->name, 0, "header", "column %d: invalid UTF-8 (give the encoding?)", k + 1);
		r->header[k] = xstrndup(name, len);
	}
	if (r->src->map) {
		const struct colmap *m = r->src->map;
		for (int i = 0; i < m->n_items; i++)
			for (int f = 0; f < m->items[i].n_fields; f++)
				if (!m->items[i].fields[f].optional && !header_has(r, m->items[i].fields[f].name)) {
					char *list = header_list(r);
					die_data(r->src->name, 0, m->items[i].fields[f].name, "no such column (header: %s)", list);
				}
		r->map = m;
		return;
	}
	for (int k = 0; k < r->src->n_defaults; k++)
		if (colmap_fits(&r->src->defaults[k], header_has, r)) {
			r->map = &r->src->defaults[k];
			return;
		}
	char *list = header_list(r);
	die_data(r->src->name, 0, "header", "no default column mapping fits (%s); give one (docs/corpora.md)", list);
}

static void take_row(struct csv_reader *r)
{
	static const char *const id_columns[] = { "id", "sample_id", "idx" };
	struct rec_err err;
	long record = ++r->row_no;
	if (r->n_fields != r->n_header) {
		rec_err_set(&err, NULL, "%d fields, the header has %d", r->n_fields, r->n_header);
		corpus_reject(r->src, record, &err);
		return;
	}
	for (int k = 0; k < r->n_fields; k++) {
		size_t len = r->field_len[k];
		if (textsrc_utf8_check(r->row.data + r->field_off[k], len) < len) {
			rec_err_set(&err, r->header[k], "invalid UTF-8 (give the encoding?)");
			corpus_reject(r->src, record, &err);
			return;
		}
	}
	if (r->n_pending == r->cap_pending) {
		r->cap_pending = r->cap_pending ? 2 * r->cap_pending : 64;
		r->pending = xrealloc(r->pending, r->cap_pending * sizeof *r->pending);
	}
	struct conversation *conv = &r->pending[r->n_pending];
	conv_begin(conv, r->src, record);
	if (colmap_apply(r->map, row_get, r, conv, &err) != 0) {
		conversation_free(conv);
		corpus_reject(r->src, record, &err);
		return;
	}
	for (size_t i = 0; i < sizeof id_columns / sizeof id_columns[0] && !conv->id; i++) {
		int k = column_index(r, id_columns[i]);
		if (k >= 0)
			conv_set_id(conv, r->row.data + r->field_off[k], r->field_len[k]);
	}
	conv_finish(conv);
	r->n_pending++;
}

static void on_row(int terminator, void *data)
{
	struct csv_reader *r = data;
	(void)terminator;
	if (!r->header)
		take_header(r);
	else
		take_row(r);
	r->n_fields = 0;
	r->row.len = 0;
}

static void csv_die(struct csv_reader *r)
{
	die_data(r->src->name, r->row_no + 1, NULL, "CSV: %s", csv_strerror(csv_error(&r->parser)));
}

static int csv_next(struct corpus_reader *base, struct conversation *conv)
{
	struct csv_reader *r = (struct csv_reader *)base;
	char chunk[1 << 16];
	while (r->head == r->n_pending) {
		r->head = r->n_pending = 0;
		if (r->eof)
			return 0;
		size_t n = textsrc_read(r->src->text, chunk, sizeof chunk);
		if (n == 0) {
			r->eof = 1;
			// libcsv reports an unterminated quoted field only in strict mode; strictness matters
			// for nothing else at this point, so it is switched on just for the end.
			csv_set_opts(&r->parser, CSV_STRICT | CSV_STRICT_FINI);
			if (csv_fini(&r->parser, on_field, on_row, r) != 0)
				csv_die(r);
		} else if (csv_parse(&r->parser, chunk, n, on_field, on_row, r) != n)
			csv_die(r);
	}
	*conv = r->pending[r->head++];
	return 1;
}

static void csv_reader_free(struct corpus_reader *base)
{
	struct csv_reader *r = (struct csv_reader *)base;
	for (size_t i = r->head; i < r->n_pending; i++)
		conversation_free(&r->pending[i]);
	free(r->pending);
	for (int k = 0; k < r->n_header; k++)
		free(r->header[k]);
	free(r->header);
	free(r->field_off);
	free(r->field_len);
	free(r->row.data);
	csv_free(&r->parser);
	free(r);
}

struct corpus_reader *csv_reader_new(struct corpus_src *src)
{
	struct csv_reader *r = xcalloc(1, sizeof *r);
	r->base = (struct corpus_reader){ csv_next, csv_reader_free };
	r->src = src;
	if (csv_init(&r->parser, 0) != 0)
		die(EXIT_FAIL, "out of memory (csv_init)");
	csv_set_space_func(&r->parser, no_space);
	return &r->base;
}
