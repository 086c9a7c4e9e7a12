// tok_normalize.c — the normalizers: NFC, NFKC, NFD, NFKD (utf8proc), Prepend, Replace, Strip, applied
// in order (a Sequence is flattened at load).  Semantics from HF tokenizers normalizers/*.rs:
// Prepend adds its text only to a non-empty string; Replace replaces every non-overlapping match,
// left to right; Strip removes Unicode whitespace at the chosen ends.
#include <string.h>
#include <utf8proc.h>
#include "die.h"
#include "tok_internal.h"

// Characters NFC leaves alone whatever surrounds them: NFC_Quick_Check=Yes, combining class 0, and
// never the second element of a canonical composition (UAX #15; the blocks checked against
// UnicodeData.txt: ASCII to Spacing Modifiers, General Punctuation from U+2002 (U+2000/2001 are
// singletons), CJK punctuation before the combining tone marks at U+302A, kana without the combining
// sound marks U+3099/309A, CJK ideographs, Hangul syllables, half- and full-width forms).
int tok_nfc_stable(uint32_t cp)
{
	return cp < 0x300 || (cp >= 0x2002 && cp <= 0x206F) || (cp >= 0x3000 && cp <= 0x3029) ||
	       (cp >= 0x3041 && cp <= 0x3096) || (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
	       (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xFF00 && cp <= 0xFFEF);
}

// The same for NFKC, which also rewrites every character with a compatibility decomposition.
int tok_nfkc_stable(uint32_t cp)
{
	return cp < 0xA0 || (cp >= 0x4E00 && cp <= 0x9FFF);
}

static uint32_t next_cp(const unsigned char *p, size_t len, size_t i, size_t *n)
{
	if (p[i] < 0x80) {
		*n = 1;
		return p[i];
	}
	return utf8_decode(p + i, len - i, n);
}

static void unicode_normalize(enum norm_type type, const char *s, size_t len, struct bytevec *out)
{
	utf8proc_option_t opt = UTF8PROC_STABLE;
	switch (type) {
	case NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
	case NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
	case NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
	default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
	}
	utf8proc_uint8_t *res = NULL;
	utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &res, opt);
	if (n < 0)
		die(EXIT_DATA, "tokenizer: cannot normalize text: %s", utf8proc_errmsg(n));
	bytevec_append(out, res, (size_t)n);
	free(res);
}

// NFC or NFKC of S into OUT, running utf8proc only on the stretches around unstable characters.  A
// cut just before a stable character X changes nothing: X is a starter that nothing composes with
// and that canonical reordering cannot cross.  So each stretch runs from the stable character before
// an unstable run (it may compose with what follows) to the next stable character.
static void compose_stretches(enum norm_type type, int (*stable)(uint32_t), const char *s, size_t len,
			      size_t first_unstable, struct bytevec *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t copied = 0, i = first_unstable, prev_start = 0, n;
	// The character before the first unstable one, if any.
	if (i > 0) {
		prev_start = i - 1;
		while (prev_start > 0 && (p[prev_start] & 0xC0) == 0x80)
			prev_start--;
	}
	while (i < len) {
		if (stable(next_cp(p, len, i, &n))) {
			prev_start = i;
			i += n;
			continue;
		}
		size_t from = i > copied ? prev_start : i, to = i + n;
		while (to < len && !stable(next_cp(p, len, to, &n)))
			to += n;
		bytevec_append(out, s + copied, from - copied);
		unicode_normalize(type, s + from, to - from, out);
		copied = i = to;
	}
	bytevec_append(out, s + copied, len - copied);
}

// The offset of the first character not in STABLE, or LEN.
static size_t first_unstable(const char *s, size_t len, int (*stable)(uint32_t))
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;
	while (i < len && (p[i] < 0x80 || stable(next_cp(p, len, i, &n))))
		i += p[i] < 0x80 ? 1 : n;
	return i;
}

static void replace_all(const struct norm_step *st, const char *s, size_t len, struct bytevec *out)
{
	size_t from = 0, copied = 0, ms, me;
	while (from <= len && tok_pattern_find(&st->pattern, s, len, from, &ms, &me)) {
		bytevec_append(out, s + copied, ms - copied);
		bytevec_append(out, st->text, st->text_len);
		copied = me;
		// An empty match replaces nothing's worth of text; step over one character to go on.
		from = me > ms ? me : me + (me < len ? utf8_char_len((unsigned char)s[me]) : 1);
	}
	bytevec_append(out, s + copied, len - copied);
}

static void strip(const struct norm_step *st, const char *s, size_t len, struct bytevec *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t b = 0, e = len, n;
	if (st->strip_left)
		while (b < e && ucp_is_whitespace(utf8_decode(p + b, e - b, &n)))
			b += n;
	if (st->strip_right)
		while (e > b) {
			size_t k = e - 1;
			while (k > b && (p[k] & 0xC0) == 0x80)
				k--;
			if (!ucp_is_whitespace(utf8_decode(p + k, e - k, &n)))
				break;
			e = k;
		}
	bytevec_append(out, s + b, e - b);
}

const char *tok_normalize(const struct tokenizer *tok, const char *s, size_t len, size_t *out_len,
			  struct tok_scratch *scr)
{
	struct bytevec *bufs[2] = { &scr->norm_a, &scr->norm_b };
	int next = 0;
	for (size_t i = 0; i < tok->n_norm; i++) {
		const struct norm_step *st = &tok->norm[i];
		struct bytevec *out = bufs[next];
		out->len = 0;
		switch (st->type) {
		case NORM_NFC:
		case NORM_NFKC: {
			int (*stable)(uint32_t) = st->type == NORM_NFC ? tok_nfc_stable : tok_nfkc_stable;
			size_t u = first_unstable(s, len, stable);
			if (u == len)
				continue;  // already normalized: no copy
			compose_stretches(st->type, stable, s, len, u, out);
			break;
		}
		case NORM_NFD:
		case NORM_NFKD:
			if (len == 0)
				continue;
			unicode_normalize(st->type, s, len, out);
			break;
		case NORM_PREPEND:
			if (len == 0)
				continue;
			bytevec_append(out, st->text, st->text_len);
			bytevec_append(out, s, len);
			break;
		case NORM_REPLACE:
			replace_all(st, s, len, out);
			break;
		case NORM_STRIP:
			strip(st, s, len, out);
			break;
		}
		bytevec_reserve(out, 1);
		s = out->data;
		len = out->len;
		next ^= 1;
	}
	*out_len = len;
	return s;
}
