// eval_generate.c — greedy decoding with the KV cache, then the benchmark's answer extraction.
//
// The prompt is prefilled in one model_decode call, then one token at a time: the argmax of the logits (greedy,
// do_sample=False, as CMB's README and OpenCompass's GenInferencer evaluate).  Decoding stops at the token
// limit, at any special token of the tokenizer (<|im_end|>, <|endoftext|>, <|eot_id|>, </s>: what ends a turn
// or a text), or when the decoded text contains a stop string; the stop string and what follows are not kept.
// Only ids the tokenizer knows are candidates: the rows a checkpoint pads its vocabulary with have no text.
#include "eval.h"

#include <string.h>

#include "die.h"
#include "eval_finite.h"
#include "extract.h"

struct eval_generator {
	struct model *m;
	const struct tokenizer *tok;
	int max_new;
	const char *const *stops;
	int n_stops;
	uint32_t n_ids;              // candidates: ids below min(model vocab, tokenizer vocab)
	struct kv_cache *cache;
	real *logits;                // (V)
	int32_t *ids;                // prompt, then generated ids
	size_t ids_cap;
	struct extractor *extractors[3];   // one per extract_rule, made when first needed
	struct bytevec text;
};

struct eval_generator *eval_generator_new(struct model *m, const struct tokenizer *tok, int max_new,
					  const char *const *stops, int n_stops)
{
	struct eval_generator *g = xcalloc(1, sizeof *g);
	g->m = m;
	g->tok = tok;
	g->max_new = max_new;
	g->stops = stops;
	g->n_stops = n_stops;
	uint32_t tv = tokenizer_vocab_size(tok);
	g->n_ids = tv < (uint32_t)m->cfg.vocab ? tv : (uint32_t)m->cfg.vocab;
	g->logits = xmalloc((size_t)m->cfg.vocab * sizeof *g->logits);
	return g;
}

void eval_generator_free(struct eval_generator *g)
{
	if (!g)
		return;
	kv_cache_free(g->cache);
	free(g->logits);
	free(g->ids);
	for (int i = 0; i < 3; i++)
		if (g->extractors[i])
			extractor_free(g->extractors[i]);
	free(g->text.data);
	free(g);
}

static uint32_t argmax(const real *x, uint32_t n)
{
	uint32_t best = 0;
	for (uint32_t i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

// Bytes that are not UTF-8 (a character cut by the token limit, or bytes a byte-level model made up) become
// U+FFFD, one per maximal ill-formed subpart, as Unicode §3.9 (U+FFFD substitution of maximal subparts)
// recommends and as Python's and Rust's lossy decoders do: then the text can be stored as a msgpack str and
// equals what transformers' tokenizer.decode gives for the same ids.
static char *valid_utf8(const char *s, size_t len)
{
	struct bytevec out = {0};
	bytevec_reserve(&out, len + 1);
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		unsigned char c = u[i];
		size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
			 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;   // 0: a byte no character starts with
		// the second byte's range narrows after E0, ED, F0 and F4 (no overlongs, surrogates or > U+10FFFF)
		unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
		size_t k = 1;
		while (k < n && i + k < len && u[i + k] >= (k == 1 ? lo : 0x80) && u[i + k] <= (k == 1 ? hi : 0xBF))
			k++;
		if (n > 0 && k == n)
			bytevec_append(&out, s + i, n);
		else
			bytevec_append(&out, "\xEF\xBF\xBD", 3);
		i += k;
	}
	bytevec_append(&out, "", 0);   // NUL-terminated
	return out.data;
}

// Decode the generated ids into g->text; returns 1 when a stop string appeared (the text is cut before it).
static int decode_and_stop(struct eval_generator *g, const int32_t *gen, size_t n)
{
	g->text.len = 0;
	if (tokenizer_decode(g->tok, (const uint32_t *)gen, n, &g->text) != 0)
		die(EXIT_FAIL, "internal: a generated id has no text");
	bytevec_append(&g->text, "", 0);
	for (int s = 0; s < g->n_stops; s++) {
		const char *hit = memmem(g->text.data, g->text.len, g->stops[s], strlen(g->stops[s]));
		if (hit) {
			g->text.len = (size_t)(hit - g->text.data);
			g->text.data[g->text.len] = '\0';
			return 1;
		}
	}
	return 0;
}

int eval_generate(struct eval_generator *g, struct eval_question *q)
{
	size_t need = q->prompt.len + (size_t)g->max_new;
	if (!g->cache || g->cache->max_len < (int64_t)need) {
		kv_cache_free(g->cache);
		g->cache = kv_cache_new(g->m, (int64_t)need);
	}
	if (g->ids_cap < need) {
		g->ids = xrealloc(g->ids, need * sizeof *g->ids);
		g->ids_cap = need;
	}
	kv_cache_reset(g->cache);
	for (size_t i = 0; i < q->prompt.len; i++)
		g->ids[i] = (int32_t)q->prompt.data[i];
	int32_t *gen = g->ids + q->prompt.len;
	size_t n = 0;
	g->text.len = 0;
	bytevec_append(&g->text, "", 0);

	model_decode(g->m, g->cache, g->ids, (int64_t)q->prompt.len, g->logits);
	while (n < (size_t)g->max_new) {
		eval_require_finite_logits(g->m, q, g->logits, g->n_ids, (int64_t)n);   // a NaN is never an answer
		uint32_t next = argmax(g->logits, g->n_ids);
		if (tokenizer_is_special(g->tok, next))
			break;
		gen[n++] = (int32_t)next;
		if (decode_and_stop(g, gen, n) || n == (size_t)g->max_new)
			break;
		model_decode(g->m, g->cache, &gen[n - 1], 1, g->logits);
	}

	free(q->generated);
	q->generated = valid_utf8(g->text.data, g->text.len);
	enum extract_rule rule = extract_rule_for(q->bench, q->lang);
	if (!g->extractors[rule])
		g->extractors[rule] = extractor_new(rule);
	char out[EXTRACT_MAX_LETTERS + 1];
	q->parsed = extract_answer(g->extractors[rule], q->generated, strlen(q->generated), q->letters,
				   q->n_options, q->multi, out);
	strcpy(q->predicted, q->parsed ? out : "");
	return (int)n;
}
