// tok_pretokenize.c — the pre-tokenizers: Split (pattern, behaviour, invert), ByteLevel
// (add_prefix_space, use_regex) and Metaspace (replacement, prepend_scheme, split), applied in order to every
// piece (a Sequence is flattened at load).
//
// Semantics from HF tokenizers (tokenizer/normalizer.rs `split`, pre_tokenizers/split.rs, byte_level.rs):
// a pattern cuts a piece into matches and the text between them; the behaviour decides what becomes a
// piece (Removed drops matches, Isolated keeps each, MergedWithPrevious/Next glue a match to its
// neighbour, Contiguous glues runs); invert swaps matches and non-matches; empty pieces are dropped.
// ByteLevel's byte-to-character mapping is left to the model when ByteLevel is the last step (the
// common case), so the hot path never builds the mapped string.
// Metaspace (pre_tokenizers/metaspace.rs, the SentencePiece scheme of newer LLaMA-2/Mistral conversions):
// every " " becomes the replacement; a piece that does not then start with the replacement gets one
// prepended — always, never, or ("first") only the piece that starts at offset 0 of the original input; with
// split, the piece is cut before every replacement, each joined to what follows (MergedWithNext).
#include <string.h>
#include "tok_internal.h"

void piecevec_push(struct piecevec *v, size_t off, size_t len)
{
	if (v->len == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 256;
		v->data = xrealloc(v->data, v->cap * sizeof *v->data);
	}
	v->data[v->len++] = (struct piece){ off, len };
}

static void push_split(struct tok_scratch *scr, size_t off, size_t len, int is_match)
{
	if (scr->splits.len == scr->split_is_match_cap) {
		scr->split_is_match_cap = scr->split_is_match_cap ? scr->split_is_match_cap * 2 : 256;
		scr->split_is_match = xrealloc(scr->split_is_match, scr->split_is_match_cap);
	}
	scr->split_is_match[scr->splits.len] = (uint8_t)is_match;
	piecevec_push(&scr->splits, off, len);
}

// Cuts TEXT[piece] by the step's pattern and appends the resulting pieces to OUT.
static void split_piece(const struct pretok_step *st, const char *text, struct piece pc, struct piecevec *out,
			struct tok_scratch *scr)
{
	const char *s = text + pc.off;
	size_t len = pc.len, from = 0, prev = 0, ms, me;
	scr->splits.len = 0;
	while (from <= len && tok_pattern_find(&st->pattern, s, len, from, &ms, &me)) {
		if (ms != prev)
			push_split(scr, prev, ms - prev, 0);
		push_split(scr, ms, me - ms, 1);
		prev = me;
		from = me > ms ? me : me + (me < len ? utf8_char_len((unsigned char)s[me]) : 1);
	}
	if (prev != len)
		push_split(scr, prev, len - prev, 0);

	size_t n = scr->splits.len;
	struct piece *sp = scr->splits.data;
	uint8_t *is_match = scr->split_is_match;
	if (st->invert)
		for (size_t i = 0; i < n; i++)
			is_match[i] ^= 1;

	size_t first_out = out->len;
	int previous_match = 0;
	switch (st->behavior) {
	case SPLIT_REMOVED:
		for (size_t i = 0; i < n; i++)
			if (!is_match[i])
				piecevec_push(out, pc.off + sp[i].off, sp[i].len);
		break;
	case SPLIT_ISOLATED:
		for (size_t i = 0; i < n; i++)
			piecevec_push(out, pc.off + sp[i].off, sp[i].len);
		break;
	case SPLIT_MERGED_PREV:  // a match joins the piece before it
		for (size_t i = 0; i < n; i++) {
			if (is_match[i] && !previous_match && out->len > first_out)
				out->data[out->len - 1].len += sp[i].len;
			else
				piecevec_push(out, pc.off + sp[i].off, sp[i].len);
			previous_match = is_match[i];
		}
		break;
	case SPLIT_MERGED_NEXT:  // a match joins the piece after it: walk backwards, then reverse
		for (size_t i = n; i-- > 0;) {
			if (is_match[i] && !previous_match && out->len > first_out) {
				struct piece *last = &out->data[out->len - 1];
				last->len += last->off - (pc.off + sp[i].off);
				last->off = pc.off + sp[i].off;
			} else
				piecevec_push(out, pc.off + sp[i].off, sp[i].len);
			previous_match = is_match[i];
		}
		for (size_t a = first_out, b = out->len; a + 1 < b; a++, b--) {
			struct piece t = out->data[a];
			out->data[a] = out->data[b - 1];
			out->data[b - 1] = t;
		}
		break;
	case SPLIT_CONTIGUOUS:  // runs of matches, and runs of non-matches, become one piece each
		for (size_t i = 0; i < n; i++) {
			if ((int)is_match[i] == previous_match && out->len > first_out)
				out->data[out->len - 1].len += sp[i].len;
			else
				piecevec_push(out, pc.off + sp[i].off, sp[i].len);
			previous_match = is_match[i];
		}
		break;
	}
	// Drop empty pieces.
	size_t w = first_out;
	for (size_t i = first_out; i < out->len; i++)
		if (out->data[i].len)
			out->data[w++] = out->data[i];
	out->len = w;
}

// CUT: every piece of *IN cut by ST's pattern into *OUT.  Else the two swapped, so that *OUT holds the pieces
// uncut (the loop below swaps them back after each step).
static void cut_pieces(const struct pretok_step *st, const char *text, int cut, struct piecevec **in,
		       struct piecevec **out, struct tok_scratch *scr)
{
	if (!cut) {
		struct piecevec *t = *in;
		*in = *out;
		*out = t;
		return;
	}
	for (size_t k = 0; k < (*in)->len; k++)
		split_piece(st, text, (*in)->data[k], *out, scr);
}

// Metaspace's rewrite of every piece of IN into BUF: spaces to the replacement, and the replacement prepended
// where the scheme says.  *ORIGIN is the offset in the text of original offset 0 (SIZE_MAX: none), updated to
// the rewritten text.
static void metaspace_rewrite(const struct pretok_step *st, const char *text, struct piecevec *in,
			      struct bytevec *buf, size_t *origin)
{
	const char *rep = st->replacement;
	size_t rl = st->replacement_len, new_origin = SIZE_MAX;
	buf->len = 0;
	for (size_t k = 0; k < in->len; k++) {
		struct piece pc = in->data[k];
		const char *p = text + pc.off;
		size_t off = buf->len;
		int starts = p[0] == ' ' || (pc.len >= rl && memcmp(p, rep, rl) == 0);
		if (!starts && (st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && pc.off == *origin)))
			bytevec_append(buf, rep, rl);
		size_t from = 0;
		for (size_t j = 0; j < pc.len; j++) {
			if (p[j] != ' ')
				continue;
			bytevec_append(buf, p + from, j - from);
			bytevec_append(buf, rep, rl);
			from = j + 1;
		}
		bytevec_append(buf, p + from, pc.len - from);
		if (pc.off == *origin)
			new_origin = off;
		in->data[k] = (struct piece){ off, buf->len - off };
	}
	*origin = new_origin;
}

void tok_pretokenize(const struct tokenizer *tok, const char *text, size_t len, int at_start,
		     struct tok_scratch *scr, const char **text_out, struct piecevec **pieces_out,
		     int *byte_level_form)
{
	struct piecevec *in = &scr->pieces_a, *out = &scr->pieces_b;
	struct bytevec *texts[2] = { &scr->pre_a, &scr->pre_b };
	int next_text = 0;
	in->len = 0;
	if (len)
		piecevec_push(in, 0, len);
	*byte_level_form = 0;
	// The offset in TEXT of the original input's first byte; a rewrite of the text moves it.  The byte-level
	// rewrites below do not track it: no tokenizer puts a Metaspace after a ByteLevel.
	size_t origin = at_start ? 0 : SIZE_MAX;

	for (size_t i = 0; i < tok->n_pretok; i++) {
		const struct pretok_step *st = &tok->pretok[i];
		out->len = 0;
		if (st->type == PRETOK_SPLIT) {
			cut_pieces(st, text, 1, &in, &out, scr);
		} else if (st->type == PRETOK_METASPACE) {
			struct bytevec *buf = texts[next_text];
			next_text ^= 1;
			metaspace_rewrite(st, text, in, buf, &origin);
			text = buf->data;
			cut_pieces(st, text, st->split, &in, &out, scr);
		} else {
			origin = SIZE_MAX;
			if (st->add_prefix_space) {  // a space before every piece that lacks one
				struct bytevec *buf = texts[next_text];
				next_text ^= 1;
				buf->len = 0;
				for (size_t k = 0; k < in->len; k++) {
					struct piece pc = in->data[k];
					size_t off = buf->len;
					if (text[pc.off] != ' ')
						bytevec_append(buf, " ", 1);
					bytevec_append(buf, text + pc.off, pc.len);
					in->data[k] = (struct piece){ off, buf->len - off };
				}
				text = buf->data;
			}
			cut_pieces(st, text, st->use_regex, &in, &out, scr);
			if (i + 1 == tok->n_pretok) {
				*byte_level_form = 1;
			} else {  // a later step sees the mapped characters: build them
				const struct byte_level_table *bl = byte_level();
				struct bytevec *buf = texts[next_text];
				next_text ^= 1;
				buf->len = 0;
				for (size_t k = 0; k < out->len; k++) {
					struct piece pc = out->data[k];
					size_t off = buf->len;
					for (size_t j = 0; j < pc.len; j++) {
						unsigned char b = (unsigned char)text[pc.off + j];
						bytevec_append(buf, bl->str[b], bl->len[b]);
					}
					out->data[k] = (struct piece){ off, buf->len - off };
				}
				text = buf->data;
			}
		}
		struct piecevec *t = in;
		in = out;
		out = t;
	}
	*text_out = text;
	*pieces_out = in;
}
