// corpus_covid.c — the COVID-Dialogue English text dump (UCSD-AI4H/COVID-Dialogue), one conversation per
// `id=N` block:
//     id=N / URL / (blank) / Description / text / (blank) / Dialogue / Patient: / text... / Doctor: / text...
// Only the Dialogue part becomes turns (Patient: → user, Doctor: → assistant); the URL and the
// Description (a one-line summary, usually repeating the first patient turn) are dropped.
// Upstream quirks: 150 bare '\r' inside lines, which are line breaks in the original posts, so they
// become '\n'; and `id=18` is used for two different dialogues, so a repeated id N gets the id "N#2"
// (then "N#3", ...) to keep ids unique while keeping every dialogue.  The record number is the block.
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "corpus_format.h"
#include "die.h"
#include "vec.h"

struct seen_id {
	char *id;
	int count;
};

struct covid_reader {
	struct corpus_reader base;
	struct corpus_src *src;
	struct bytevec line, turn, id;
	int started, have_next;   // have_next: id holds the id of the block to read next
	long block;
	void *seen;               // tsearch tree of struct seen_id
};

static size_t rtrim(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	return n;
}

static int is_line(const struct bytevec *line, const char *word)
{
	size_t n = rtrim(line->data, line->len);
	return n == strlen(word) && memcmp(line->data, word, n) == 0;
}

static int is_id_line(const struct bytevec *line)
{
	size_t n = rtrim(line->data, line->len);
	if (n <= 3 || memcmp(line->data, "id=", 3) != 0)
		return 0;
	for (size_t i = 3; i < n; i++)
		if (line->data[i] == ' ' || line->data[i] == '\t')
			return 0;
	return 1;
}

static int seen_cmp(const void *a, const void *b)
{
	return strcmp(((const struct seen_id *)a)->id, ((const struct seen_id *)b)->id);
}

static void seen_free(void *node)
{
	struct seen_id *s = node;
	free(s->id);
	free(s);
}

// The id for this block: N the first time, "N#k" the k-th time N occurs.
static void unique_id(struct covid_reader *r, struct conversation *conv)
{
	struct seen_id key = { r->id.data, 0 };
	struct seen_id **found = tsearch(&key, &r->seen, seen_cmp);
	if (!found)
		die(EXIT_FAIL, "out of memory (tsearch)");
	if (*found == &key) {
		struct seen_id *s = xmalloc(sizeof *s);
		*s = (struct seen_id){ xstrdup(r->id.data), 1 };
		*found = s;  // same key, so the tree order holds
		conv_set_id(conv, r->id.data, r->id.len);
		return;
	}
	char *id = xasprintf("%s#%d", r->id.data, ++(*found)->count);
	conv_set_id(conv, id, strlen(id));
	free(id);
}

// Ends the turn being collected: '\r' → '\n', surrounding white space trimmed.  Returns -1 on bad UTF-8.
static int flush_turn(struct covid_reader *r, struct conversation *conv, int role, struct rec_err *err)
{
	if (role < 0)
		return 0;
	char *t = r->turn.data;
	size_t n = rtrim(t, r->turn.len), start = 0;
	for (size_t i = 0; i < n; i++)
		if (t[i] == '\r')
			t[i] = '\n';
	while (start < n && (t[start] == ' ' || t[start] == '\t' || t[start] == '\n'))
		start++;
	size_t bad = textsrc_utf8_check(t + start, n - start);
	if (bad < n - start) {
		rec_err_set(err, role == ROLE_USER ? "Patient" : "Doctor", "turn %d: invalid UTF-8 (give the encoding?)",
			    conv->n_turns + 1);
		return -1;
	}
	conv_add_turn(conv, (enum turn_role)role, t + start, n - start);
	r->turn.len = 0;
	bytevec_append(&r->turn, "", 0);
	return 0;
}

// Reads the rest of the current block into CONV; leaves the next block's id in r->id.
static int read_block(struct covid_reader *r, struct conversation *conv, struct rec_err *err)
{
	int in_dialogue = 0, role = -1, rc = 0;
	r->have_next = 0;
	r->turn.len = 0;
	bytevec_append(&r->turn, "", 0);
	while (textsrc_getline(r->src->text, &r->line)) {
		if (is_id_line(&r->line)) {
			r->id.len = 0;
			bytevec_append(&r->id, r->line.data + 3, rtrim(r->line.data, r->line.len) - 3);
			r->have_next = 1;
			break;
		}
		if (rc != 0)
			continue;  // a bad block is read to its end, so the next one starts cleanly
		if (!in_dialogue) {
			in_dialogue = is_line(&r->line, "Dialogue");
		} else if (is_line(&r->line, "Patient:") || is_line(&r->line, "Doctor:")) {
			rc = flush_turn(r, conv, role, err);
			role = r->line.data[0] == 'P' ? ROLE_USER : ROLE_ASSISTANT;
		} else if (role >= 0) {
			size_t n = r->line.len;
			if (n > 0 && r->line.data[n - 1] == '\r')
				n--;  // a CRLF line end is not a line break inside the text
			bytevec_append(&r->turn, r->line.data, n);
			bytevec_append(&r->turn, "\n", 1);
		} else if (rtrim(r->line.data, r->line.len) > 0) {
			rec_err_set(err, "Dialogue", "text before the first Patient: or Doctor:");
			rc = -1;
		}
	}
	if (rc == 0)
		rc = flush_turn(r, conv, role, err);
	if (rc == 0 && !in_dialogue) {
		rec_err_set(err, "Dialogue", "missing");
		rc = -1;
	}
	if (rc == 0 && conv->n_turns == 0) {
		rec_err_set(err, "Dialogue", "no Patient: or Doctor: turns");
		rc = -1;
	}
	return rc;
}

static int covid_next(struct corpus_reader *base, struct conversation *conv)
{
	struct covid_reader *r = (struct covid_reader *)base;
	struct rec_err err;
	if (!r->started) {
		r->started = 1;
		while (textsrc_getline(r->src->text, &r->line)) {
			if (is_id_line(&r->line)) {
				r->id.len = 0;
				bytevec_append(&r->id, r->line.data + 3, rtrim(r->line.data, r->line.len) - 3);
				r->have_next = 1;
				break;
			}
			if (rtrim(r->line.data, r->line.len) > 0)
				die_data(r->src->name, -1, NULL, "not a COVID-Dialogue text file: text before the first id=N line");
		}
	}
	while (r->have_next) {
		long record = ++r->block;
		conv_begin(conv, r->src, record);
		if (textsrc_utf8_check(r->id.data, r->id.len) < r->id.len) {
			rec_err_set(&err, "id", "invalid UTF-8");
			conversation_free(conv);
			read_block(r, conv, &err);  // skip to the next block
			conversation_free(conv);
			corpus_reject(r->src, record, &err);
			continue;
		}
		unique_id(r, conv);
		if (read_block(r, conv, &err) != 0) {
			conversation_free(conv);
			corpus_reject(r->src, record, &err);
			continue;
		}
		conv_finish(conv);
		return 1;
	}
	return 0;
}

static void covid_free(struct corpus_reader *base)
{
	struct covid_reader *r = (struct covid_reader *)base;
	tdestroy(r->seen, seen_free);
	free(r->line.data);
	free(r->turn.data);
	free(r->id.data);
	free(r);
}

struct corpus_reader *covid_reader_new(struct corpus_src *src)
{
	struct covid_reader *r = xcalloc(1, sizeof *r);
	r->base = (struct corpus_reader){ covid_next, covid_free };
	r->src = src;
	return &r->base;
}
