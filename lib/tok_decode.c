// tok_decode.c — ids back to text (HF TokenizerImpl::decode with skip_special_tokens=False): each id
// becomes its token string (added tokens included), the decoder steps rewrite the list of strings in
// order (a Sequence is flattened at load), and the result is their concatenation.  Without a decoder
// the strings are joined with spaces, as HF does.
//
// Steps (HF decoders/*.rs): ByteLevel maps GPT-2 characters back to bytes over the whole list and
// returns one lossily-decoded string; Replace rewrites every match in each string; ByteFallback turns
// runs of "<0xNN>" into their UTF-8 text (one U+FFFD per byte when the run is not valid UTF-8); Fuse
// joins everything into one string; Strip cuts up to START leading and STOP trailing copies of a
// character from each string; Metaspace turns its replacement character back into a space in every string
// but the first, where (unless its prepend_scheme is "never") it drops them, as HF's Metaspace decoder does.
#include <string.h>
#include "tok_internal.h"

struct toklist {
	struct bytevec text;
	struct piecevec items;
};

static void toklist_add(struct toklist *l, const char *s, size_t len)
{
	size_t off = l->text.len;
	bytevec_append(&l->text, s, len);
	piecevec_push(&l->items, off, len);
}

static void toklist_free(struct toklist *l)
{
	free(l->text.data);
	free(l->items.data);
}

static void dec_byte_level(const struct toklist *in, struct toklist *out)
{
	const struct byte_level_table *bl = byte_level();
	struct bytevec bytes = { 0 };
	for (size_t i = 0; i < in->items.len; i++) {
		const unsigned char *s = (const unsigned char *)in->text.data + in->items.data[i].off;
		size_t len = in->items.data[i].len, at = bytes.len, k = 0, n;
		while (k < len) {
			uint32_t cp = utf8_decode(s + k, len - k, &n);
			int b = cp < 324 ? bl->byte_of[cp] : -1;
			if (b < 0)
				break;
			char c = (char)b;
			bytevec_append(&bytes, &c, 1);
			k += n;
		}
		if (k < len) {  // a string with a non-byte-level character passes through as its own bytes
			bytes.len = at;
			bytevec_append(&bytes, s, len);
		}
	}
	struct bytevec text = { 0 };
	utf8_append_lossy(&text, bytes.data ? bytes.data : "", bytes.len);
	toklist_add(out, text.data ? text.data : "", text.len);
	free(bytes.data);
	free(text.data);
}

static void dec_replace(const struct dec_step *st, const struct toklist *in, struct toklist *out)
{
	for (size_t i = 0; i < in->items.len; i++) {
		const char *s = in->text.data + in->items.data[i].off;
		size_t len = in->items.data[i].len, from = 0, copied = 0, ms, me, off = out->text.len;
		while (from <= len && tok_pattern_find(&st->pattern, s, len, from, &ms, &me)) {
			bytevec_append(&out->text, s + copied, ms - copied);
			bytevec_append(&out->text, st->text, st->text_len);
			copied = me;
			from = me > ms ? me : me + 1;
		}
		bytevec_append(&out->text, s + copied, len - copied);
		piecevec_push(&out->items, off, out->text.len - off);
	}
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void flush_bytes(struct toklist *out, struct bytevec *run)
{
	if (!run->len)
		return;
	if (utf8_valid(run->data, run->len))
		toklist_add(out, run->data, run->len);
	else
		for (size_t i = 0; i < run->len; i++)
			toklist_add(out, "\xEF\xBF\xBD", 3);
	run->len = 0;
}

static void dec_byte_fallback(const struct toklist *in, struct toklist *out)
{
	struct bytevec run = { 0 };
	for (size_t i = 0; i < in->items.len; i++) {
		const char *s = in->text.data + in->items.data[i].off;
		size_t len = in->items.data[i].len;
		int hi, lo;
		if (len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && (hi = hex_digit(s[3])) >= 0 &&
		    (lo = hex_digit(s[4])) >= 0) {
			char b = (char)(hi * 16 + lo);
			bytevec_append(&run, &b, 1);
			continue;
		}
		flush_bytes(out, &run);
		toklist_add(out, s, len);
	}
	flush_bytes(out, &run);
	free(run.data);
}

static void dec_strip(const struct dec_step *st, const struct toklist *in, struct toklist *out)
{
	size_t cl = st->text_len;
	for (size_t i = 0; i < in->items.len; i++) {
		const char *s = in->text.data + in->items.data[i].off;
		size_t b = 0, e = in->items.data[i].len;
		for (size_t k = 0; k < st->strip_start && e - b >= cl && memcmp(s + b, st->text, cl) == 0; k++)
			b += cl;
		for (size_t k = 0; k < st->strip_stop && e - b >= cl && memcmp(s + e - cl, st->text, cl) == 0; k++)
			e -= cl;
		toklist_add(out, s + b, e - b);
	}
}

static void dec_metaspace(const struct dec_step *st, const struct toklist *in, struct toklist *out)
{
	size_t rl = st->text_len;
	for (size_t i = 0; i < in->items.len; i++) {
		const char *s = in->text.data + in->items.data[i].off;
		size_t len = in->items.data[i].len, off = out->text.len, from = 0;
		int drop = i == 0 && st->prepend != PREPEND_NEVER;
		for (size_t j = 0; j + rl <= len;) {
			if (memcmp(s + j, st->text, rl) != 0) {
				j++;
				continue;
			}
			bytevec_append(&out->text, s + from, j - from);
			if (!drop)
				bytevec_append(&out->text, " ", 1);
			j += rl;
			from = j;
		}
		bytevec_append(&out->text, s + from, len - from);
		piecevec_push(&out->items, off, out->text.len - off);
	}
}

int tokenizer_decode(const struct tokenizer *tok, const uint32_t *ids, size_t n, struct bytevec *out)
{
	struct toklist lists[2] = { 0 };
	struct toklist *in = &lists[0], *next = &lists[1];
	for (size_t i = 0; i < n; i++) {
		if (ids[i] >= tok->n_ids) {
			toklist_free(&lists[0]);
			toklist_free(&lists[1]);
			return -1;
		}
		if (tok->id_str[ids[i]])  // ids without a string are skipped, as HF's filter_map does
			toklist_add(in, tok->id_str[ids[i]], tok->id_len[ids[i]]);
	}
	for (size_t d = 0; d < tok->n_dec; d++) {
		const struct dec_step *st = &tok->dec[d];
		next->text.len = 0;
		next->items.len = 0;
		switch (st->type) {
		case DEC_BYTELEVEL: dec_byte_level(in, next); break;
		case DEC_REPLACE: dec_replace(st, in, next); break;
		case DEC_BYTEFALLBACK: dec_byte_fallback(in, next); break;
		case DEC_FUSE: toklist_add(next, in->text.data ? in->text.data : "", in->text.len); break;
		case DEC_STRIP: dec_strip(st, in, next); break;
		case DEC_METASPACE: dec_metaspace(st, in, next); break;
		}
		struct toklist *t = in;
		in = next;
		next = t;
	}
	bytevec_reserve(out, out->len + 1);
	out->data[out->len] = '\0';  // NUL-terminated even when nothing is appended
	for (size_t i = 0; i < in->items.len; i++) {
		if (!tok->has_decoder && i > 0)
			bytevec_append(out, " ", 1);
		bytevec_append(out, in->text.data + in->items.data[i].off, in->items.data[i].len);
	}
	toklist_free(&lists[0]);
	toklist_free(&lists[1]);
	return 0;
}
