// textsrc.h — a buffered byte source that always yields UTF-8: a file, stdin or an archive member,
// converted with iconv(3) when it is in another encoding.
//
// Why a layer of its own: the corpus readers (JSON Lines, CSV, covid text) want to stream lines or
// chunks without caring where the bytes come from or how they were encoded.  Conversion happens here,
// before parsing, so a GB18030 CSV is parsed as UTF-8 like every other file.
//
// A conversion failure is a data error naming the byte offset in the *input* (die_data, exit 65); a read
// failure too (an archive member that does not decompress is bad data, not an I/O fault).  A UTF-8 BOM at
// the start is dropped.  Validity of unconverted UTF-8 is *not* checked here: readers check per record so
// the message can name the record and field (textsrc_utf8_check).
#ifndef MEDMOE_TEXTSRC_H
#define MEDMOE_TEXTSRC_H

#include <stddef.h>
#include <sys/types.h>
#include "vec.h"

// Reads up to N raw bytes into BUF: returns the count, 0 at end, -1 on error with *ERR set to a message.
typedef ssize_t (*textsrc_read_fn)(void *ctx, void *buf, size_t n, const char **err);

struct textsrc;

// NAME is used in messages.  ENCODING NULL (or "UTF-8") means no conversion; an encoding iconv does not
// know ends the program with exit 2.
struct textsrc *textsrc_new(const char *name, textsrc_read_fn read, void *ctx, const char *encoding);
void textsrc_free(struct textsrc *s);

// Makes at least WANT bytes available (fewer only at the end) and returns them without consuming them.
const char *textsrc_peek(struct textsrc *s, size_t want, size_t *got);
// Up to N bytes, consumed.  Returns 0 only at the end.
size_t textsrc_read(struct textsrc *s, char *buf, size_t n);
// The next line without its '\n' (a '\r' before it is kept), replacing LINE's contents.  Returns 1, or 0
// at the end.  A last line without '\n' is still a line.
int textsrc_getline(struct textsrc *s, struct bytevec *line);
// Everything left, appended to OUT.
void textsrc_read_all(struct textsrc *s, struct bytevec *out);

// The offset of the first byte of S (LEN bytes) that is not part of well-formed UTF-8 (RFC 3629: no
// overlongs, no surrogates, nothing above U+10FFFF), or LEN when all of it is.
size_t textsrc_utf8_check(const char *s, size_t len);

#endif
