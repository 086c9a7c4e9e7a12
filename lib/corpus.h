// corpus.h — read instruction corpora as normalized conversations, one per example.
//
// Why: the medical corpora come in a handful of JSON shapes, CSVs with their own column names, odd text
// dumps, non-UTF-8 encodings, and sometimes inside archives.  `tokenize` should see one thing only: a
// list of (role, text) turns per example.  Chat templates and loss masks are not this file's business.
//
// Inputs (docs/corpora.md lists every real corpus and the flags it needs):
//   - JSON: the first non-space byte '[' means one JSON array (loaded whole), anything else JSON Lines
//     (streamed), whatever the file is called.  Per record: ShareGPT `conversations[{from,value}]`,
//     `messages[{role,content}]`, an array of utterance strings prefixed 病人：/医生： (or Patient:/Doctor:),
//     or the first default column mapping (colmap.h) whose fields the record has — alpaca
//     instruction/input/output, prompt/response, input/target, question/answer, ..., plain `text`.
//   - CSV (libcsv, streamed): header row, quoted newlines, CRLF; columns by `columns` or a default mapping.
//   - covid-txt: the COVID-Dialogue English dump (`id=N` blocks, `Patient:`/`Doctor:` turns).
//   - Any of these inside zip / tar / tar.gz / tar.xz / tar.zst / tar.bz2 archives (every regular member
//     matching `member`, or every member with a known extension), or compressed alone (x.jsonl.gz, .xz, .zst).
// Text: UTF-8 is checked per record (the error names file, record and field); `encoding` converts from
// anything iconv knows first.  A UTF-8 byte-order mark at the start of a file is dropped.
//
// Errors: bad data ends the program through die_data ("PROG: FILE: record N: FIELD: what", exit 65).
// With skip_bad, a bad *record* (malformed JSON line, missing field, invalid UTF-8 in a streamed record,
// wrong CSV field count, no known shape) is reported with warn_data, counted and skipped.  Damage that
// leaves no next record to find (a JSON array that does not parse, broken CSV quoting, an encoding that
// does not convert, an unreadable archive member) still ends the program.
#ifndef MEDMOE_CORPUS_H
#define MEDMOE_CORPUS_H

#include <stddef.h>

enum turn_role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TEXT };  // ROLE_TEXT: plain text, no chat roles

struct conv_turn {
	enum turn_role role;
	char *text;            // UTF-8, NUL-terminated, len bytes
	size_t len;
};

struct conversation {
	char *id;              // the record's own id (id, sample_id, idx), else "<source>:<record>"
	int n_turns;
	struct conv_turn *turns;
	char *task_hint;       // a task name the record carries (task_dataset, task), or NULL
	const char *source;    // "file" or "archive.zip:member"; valid until corpus_close
	long record;           // 1-based: JSON Lines line number, JSON array item, CSV data row, covid block
};

struct corpus_opts {
	const char *format;    // NULL = by extension and sniffing; else "json", "jsonl", "csv", "covid-txt"
	const char *encoding;  // NULL = UTF-8; else the input's iconv name (e.g. "GB18030")
	const char *columns;   // mapping "user=title+ask,assistant=answer" (colmap.h); NULL = detect
	const char *member;    // fnmatch(3) glob selecting archive members; NULL = every known extension
	int skip_bad;          // warn, skip and count bad records instead of dying
};

// PATH "-" is stdin (never an archive; its format is sniffed unless given).  Dies with exit 2 on a bad
// option (unknown format or encoding, malformed columns) and exit 1 when PATH cannot be opened.
struct corpus *corpus_open(const char *path, const struct corpus_opts *opts);
// Fills *conv with the next example and returns 1, or returns 0 at the end of the input.  The caller owns
// the result and releases it with conversation_free.
int corpus_next(struct corpus *c, struct conversation *conv);
// How many bad records skip_bad has skipped so far.
size_t corpus_skipped(const struct corpus *c);
void corpus_close(struct corpus *c);
// Frees what corpus_next allocated and zeroes *conv (so freeing twice is harmless).
void conversation_free(struct conversation *conv);

const char *turn_role_name(enum turn_role role);  // "system", "user", "assistant", "text"

#endif
