// tok_normalize.c — the normalizers: NFC, NFKC, NFD, NFKD (utf8proc), Prepend, Replace, Strip, applied
// in order (a Sequence is flattened at load).  Semantics from HF tokenizers normalizers/*.rs:
// Prepend adds its text only to a non-empty string; Replace replaces every non-overlapping match,
// left to right; Strip removes Unicode whitespace at the chosen ends.
#include <string.h>
#include <utf8proc.h>
#include "die.h"
#include "tok_internal.h"

// A string made only of these code points is already in NFC, so NFC can be skipped (the common case:
// ASCII, Latin-1 and CJK ideographs).  Sound because every one of them has NFC_Quick_Check=Yes and
// combining class 0, and none is the second element of a canonical composition (UAX #15, section 9).
static int nfc_stable(uint32_t cp)
{
	return cp < 0x300 || (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3000 && cp <= 0x3029) ||
	       (cp >= 0xFF00 && cp <= 0xFFEF);
}

// The same for NFKC: code points without compatibility decompositions either.
static int nfkc_stable(uint32_t cp)
{
	return cp < 0xA0 || (cp >= 0x4E00 && cp <= 0x9FFF);
}

static int all_stable(const char *s, size_t len, int (*stable)(uint32_t))
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n;
		if (!stable(utf8_decode(p + i, len - i, &n)))
			return 0;
		i += n;
	}
	return 1;
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
		case NORM_NFKC:
		case NORM_NFD:
		case NORM_NFKD:
			if (st->type == NORM_NFC && all_stable(s, len, nfc_stable))
				continue;
			if (st->type == NORM_NFKC && all_stable(s, len, nfkc_stable))
				continue;
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
