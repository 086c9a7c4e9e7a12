// textsrc.c — buffered UTF-8 text from any byte source, with iconv conversion.
#include "textsrc.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "die.h"

enum { CHUNK = 1 << 16 };

struct textsrc {
	char *name;
	textsrc_read_fn read;
	void *ctx;
	int eof;                 // the raw source is exhausted
	char *buf;               // UTF-8 bytes: [pos, len) not yet consumed
	size_t pos, len, cap;
	int bom_checked;
	// Conversion state (cd == (iconv_t)-1 when the input is UTF-8 already).
	iconv_t cd;
	char *encoding;
	char *raw;               // unconverted input: [0, raw_len) carried over (a split multibyte sequence)
	size_t raw_len;
	long long raw_offset;    // input bytes converted so far, for messages
};

struct textsrc *textsrc_new(const char *name, textsrc_read_fn read, void *ctx, const char *encoding)
{
	struct textsrc *s = xcalloc(1, sizeof *s);
	s->name = xstrdup(name);
	s->read = read;
	s->ctx = ctx;
	s->cd = (iconv_t)-1;
	s->cap = CHUNK;
	s->buf = xmalloc(s->cap);  // never NULL, so pointer arithmetic on it is always defined
	if (encoding && strcasecmp(encoding, "UTF-8") != 0 && strcasecmp(encoding, "UTF8") != 0) {
		s->cd = iconv_open("UTF-8", encoding);
		if (s->cd == (iconv_t)-1)
			die(EXIT_USAGE, "unknown encoding '%s' (see iconv -l)", encoding);
		s->encoding = xstrdup(encoding);
		s->raw = xmalloc(CHUNK);
	}
	return s;
}

void textsrc_free(struct textsrc *s)
{
	if (!s)
		return;
	if (s->cd != (iconv_t)-1)
		iconv_close(s->cd);
	free(s->encoding);
	free(s->raw);
	free(s->buf);
	free(s->name);
	free(s);
}

static size_t read_raw(struct textsrc *s, char *dst, size_t n)
{
	const char *err = NULL;
	ssize_t got = s->read(s->ctx, dst, n, &err);
	if (got < 0)
		die_data(s->name, -1, NULL, "cannot read: %s", err ? err : "read error");
	if (got == 0)
		s->eof = 1;
	return (size_t)got;
}

static void reserve(struct textsrc *s, size_t extra)
{
	if (s->len + extra <= s->cap)
		return;
	size_t cap = s->cap;
	while (cap < s->len + extra)
		cap *= 2;
	s->buf = xrealloc(s->buf, cap);
	s->cap = cap;
}

// Converts as much of raw[0, raw_len) as forms whole characters, appending to buf.
static void convert(struct textsrc *s)
{
	char *in = s->raw;
	size_t in_left = s->raw_len;
	while (in_left > 0) {
		reserve(s, in_left * 4 + 16);  // UTF-8 needs at most 4 bytes per input byte
		char *out = s->buf + s->len;
		size_t out_left = s->cap - s->len;
		size_t r = iconv(s->cd, &in, &in_left, &out, &out_left);
		s->len = (size_t)(out - s->buf);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		long long at = s->raw_offset + (in - s->raw);
		if (errno == EILSEQ)
			die_data(s->name, -1, NULL, "byte %lld: not valid %s (0x%02x)", at, s->encoding,
				 (unsigned char)*in);
		if (errno == EINVAL) {  // a character split across reads: keep its start for the next one
			if (s->eof)
				die_data(s->name, -1, NULL, "byte %lld: truncated %s character at the end", at,
					 s->encoding);
			break;
		}
		die_errno("%s: iconv", s->name);
	}
	s->raw_offset += in - s->raw;
	memmove(s->raw, in, in_left);
	s->raw_len = in_left;
}

// Reads more input into buf.  Returns 0 only when nothing more will come.
static int fill(struct textsrc *s)
{
	if (s->pos > 0) {
		memmove(s->buf, s->buf + s->pos, s->len - s->pos);
		s->len -= s->pos;
		s->pos = 0;
	}
	size_t before = s->len;
	while (s->len == before && !s->eof) {
		if (s->cd == (iconv_t)-1) {
			reserve(s, CHUNK);
			s->len += read_raw(s, s->buf + s->len, CHUNK);
		} else {
			size_t got = read_raw(s, s->raw + s->raw_len, CHUNK - s->raw_len);
			s->raw_len += got;
			if (s->raw_len > 0)
				convert(s);
		}
	}
	if (!s->bom_checked && (s->len >= 3 || s->eof)) {
		s->bom_checked = 1;
		if (s->len >= 3 && memcmp(s->buf, "\xEF\xBB\xBF", 3) == 0)
			s->pos = 3;
	}
	return s->len > before;
}

const char *textsrc_peek(struct textsrc *s, size_t want, size_t *got)
{
	while (s->len - s->pos < want || !s->bom_checked)
		if (!fill(s))
			break;
	*got = s->len - s->pos;
	return s->buf + s->pos;
}

size_t textsrc_read(struct textsrc *s, char *dst, size_t n)
{
	if (s->pos == s->len || !s->bom_checked)
		fill(s);
	size_t have = s->len - s->pos;
	if (have > n)
		have = n;
	if (have)
		memcpy(dst, s->buf + s->pos, have);
	s->pos += have;
	return have;
}

int textsrc_getline(struct textsrc *s, struct bytevec *line)
{
	line->len = 0;
	size_t scanned = 0;  // bytes after pos already known to hold no '\n'
	for (;;) {
		char *nl = memchr(s->buf + s->pos + scanned, '\n', s->len - s->pos - scanned);
		if (nl) {
			bytevec_append(line, s->buf + s->pos, (size_t)(nl - (s->buf + s->pos)));
			s->pos = (size_t)(nl - s->buf) + 1;
			return 1;
		}
		scanned = s->len - s->pos;
		if (!fill(s))
			break;
	}
	if (s->len == s->pos)
		return 0;
	bytevec_append(line, s->buf + s->pos, s->len - s->pos);
	s->pos = s->len;
	return 1;
}

void textsrc_read_all(struct textsrc *s, struct bytevec *out)
{
	while (fill(s))
		;
	bytevec_append(out, s->buf + s->pos, s->len - s->pos);
	s->pos = s->len;
}

size_t textsrc_utf8_check(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte (RFC 3629 table)
		if (c >= 0xC2 && c <= 0xDF)
			n = 2;
		else if (c >= 0xE0 && c <= 0xEF) {
			n = 3;
			if (c == 0xE0)
				lo = 0xA0;  // no overlongs
			if (c == 0xED)
				hi = 0x9F;  // no surrogates
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 4;
			if (c == 0xF0)
				lo = 0x90;
			if (c == 0xF4)
				hi = 0x8F;  // nothing above U+10FFFF
		} else
			return i;
		if (i + n > len || s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
		i += n;
	}
	return len;
}
