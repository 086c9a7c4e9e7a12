// tok_utf8.c — UTF-8 checks and conversions, the Unicode predicates HF's added tokens use, and GPT-2's
// byte-to-character table.
#include <pthread.h>
#include <utf8proc.h>
#include "tok_internal.h"

// Length of the well-formed sequence starting at S (RFC 3629 / Unicode Table 3-7), or 0 when the bytes
// there are ill-formed; *SUBPART gets the length of the maximal subpart to replace with one U+FFFD.
static size_t utf8_seq(const unsigned char *s, size_t len, size_t *subpart)
{
	unsigned char b = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF;
	*subpart = 1;
	if (b < 0x80)
		return 1;
	if (b >= 0xC2 && b <= 0xDF)
		need = 2;
	else if (b >= 0xE0 && b <= 0xEF) {
		need = 3;
		if (b == 0xE0)
			lo = 0xA0;
		else if (b == 0xED)
			hi = 0x9F;
	} else if (b >= 0xF0 && b <= 0xF4) {
		need = 4;
		if (b == 0xF0)
			lo = 0x90;
		else if (b == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	for (size_t i = 1; i < need; i++) {
		if (i >= len)
			return 0;
		unsigned char c = s[i];
		if (c < lo || c > hi)
			return 0;
		lo = 0x80;
		hi = 0xBF;
		*subpart = i + 1;
	}
	return need;
}

int utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, sub;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_seq(p + i, len - i, &sub);
		if (!n)
			return 0;
		i += n;
	}
	return 1;
}

void utf8_append_lossy(struct bytevec *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0, sub;
	while (i < len) {
		size_t n = utf8_seq(p + i, len - i, &sub);
		if (n) {
			i += n;
			continue;
		}
		bytevec_append(out, s + run, i - run);
		bytevec_append(out, "\xEF\xBF\xBD", 3);
		i += sub;
		run = i;
	}
	bytevec_append(out, s + run, len - run);
}

uint32_t utf8_decode(const unsigned char *s, size_t len, size_t *n)
{
	unsigned char b = s[0];
	size_t k = utf8_char_len(b);
	if (k > len)
		k = len;
	*n = k;
	switch (k) {
	case 1:
		return b;
	case 2:
		return (uint32_t)(b & 0x1F) << 6 | (s[1] & 0x3F);
	case 3:
		return (uint32_t)(b & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
	default:
		return (uint32_t)(b & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
		       (s[3] & 0x3F);
	}
}

size_t utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

// The Unicode White_Space property (PropList.txt), which Rust's char::is_whitespace implements.
int ucp_is_whitespace(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
	       cp == 0x3000;
}

// HF single_word treats alphanumerics and '_' as word characters (added_vocabulary.rs).  Rust's
// is_alphanumeric is Alphabetic || Numeric; letters and numbers by general category approximate it.
int ucp_is_word(uint32_t cp)
{
	if (cp == '_')
		return 1;
	switch (utf8proc_category((utf8proc_int32_t)cp)) {
	case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
		return 1;
	default:
		return 0;
	}
}

static struct byte_level_table table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

// GPT-2's encoder.py bytes_to_unicode: printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves; the other 68 bytes map, in increasing order, to U+0100, U+0101, ...
static void table_init(void)
{
	for (int i = 0; i < 324; i++)
		table.byte_of[i] = -1;
	uint32_t next = 256;
	for (int b = 0; b < 256; b++) {
		int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
		uint32_t cp = printable ? (uint32_t)b : next++;
		table.len[b] = (uint8_t)utf8_encode(cp, table.str[b]);
		table.str[b][table.len[b]] = '\0';
		table.byte_of[cp] = (int16_t)b;
	}
}

const struct byte_level_table *byte_level(void)
{
	pthread_once(&table_once, table_init);
	return &table;
}
