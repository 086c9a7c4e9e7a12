// corpus_format.h — the contract between corpus.c (inputs, archives, sniffing, error policy) and the
// format readers corpus_json.c, corpus_csv.c and corpus_covid.c.  Not for programs: use corpus.h.
#ifndef MEDMOE_CORPUS_FORMAT_H
#define MEDMOE_CORPUS_FORMAT_H

#include <stddef.h>
#include "colmap.h"
#include "corpus.h"
#include "textsrc.h"

// What is wrong with one record: the field (NULL for the record as a whole) and the fault.
struct rec_err {
	char field[256];
	int has_field;
	char msg[512];
};
void rec_err_set(struct rec_err *e, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// One source being read: a file, stdin or one archive member.
struct corpus_src {
	const char *name;             // for messages and conversation.source
	struct textsrc *text;
	const struct colmap *map;     // --columns, or NULL to detect per record / from the CSV header
	const struct colmap *defaults;
	int n_defaults;
	int skip_bad;
	size_t *skipped;
};

// The one place a bad record is handled: die_data (exit 65), or with skip_bad warn_data and count.
void corpus_reject(struct corpus_src *src, long record, const struct rec_err *e);

struct corpus_reader {
	// 1 with *conv filled, 0 at the end of the source.
	int (*next)(struct corpus_reader *r, struct conversation *conv);
	void (*free)(struct corpus_reader *r);
};

struct corpus_reader *jsonl_reader_new(struct corpus_src *src);
struct corpus_reader *json_array_reader_new(struct corpus_src *src);
struct corpus_reader *csv_reader_new(struct corpus_src *src);
struct corpus_reader *covid_reader_new(struct corpus_src *src);

// Conversation building (corpus.c).
void conv_begin(struct conversation *conv, struct corpus_src *src, long record);
void conv_add_turn(struct conversation *conv, enum turn_role role, const char *text, size_t len);
void conv_set_id(struct conversation *conv, const char *id, size_t len);
void conv_set_task(struct conversation *conv, const char *task, size_t len);
// Gives CONV the default id "<source>:<record>" when it has none.
void conv_finish(struct conversation *conv);

// JSON record → conversation (corpus_json.c): the shapes listed in corpus.h.
struct json_t;
int json_record_to_conversation(struct corpus_src *src, struct json_t *rec, struct conversation *conv,
				struct rec_err *err);

#endif
