// eval_generate.c — greedy decoding with the KV cache, several questions at once, then the benchmark's answer
// extraction.
//
// Each question's prompt but its last token is prefilled in one model_decode call into a free slot of the KV
// cache; then its sequence advances one token per step, the first step feeding the prompt's last token: the
// argmax of the logits (greedy, do_sample=False, as CMB's README and OpenCompass's GenInferencer evaluate).  Up
// to `batch` questions are in flight, and one step decodes all of them in one forward (model_decode_batch: one
// product per linear, so the weights are read once for all).  A question stops at the token limit, at any
// special token of the tokenizer (<|im_end|>, <|endoftext|>, <|eot_id|>, </s>: what ends a turn or a text), or
// when the decoded text contains a stop string; the stop string and what follows are not kept.  Its slot is
// then refilled from the input, and answers leave in input order.  Only ids the tokenizer knows are candidates:
// the rows a checkpoint pads its vocabulary with have no text.  On the CPU a step gives each question the bits
// it gets alone (model.h), so the output is the same whatever the batch.
#include "eval.h"

#include <math.h>
#include <string.h>

#include "die.h"
#include "eval_finite.h"
#include "extract.h"

// One question in flight, in KV-cache slot `slot`.
struct gen_seq {
	struct eval_question q;
	size_t order;        // its place in the input
	int32_t *gen;        // (max_new) the generated ids
	int n;               // how many so far
	int32_t next;        // the token its next step feeds
};

// An answered question waiting for the ones before it.
struct gen_done {
	struct eval_question q;
	size_t order;
	int n;
};

struct eval_generator {
	struct model *m;
	const struct tokenizer *tok;
	int max_new, batch;
	const char *const *stops;
	int n_stops;
	uint32_t n_ids;              // candidates: ids below min(model vocab, tokenizer vocab)
	struct kv_cache *cache;      // batch slots
	real *logits;                // (batch, V): a prefill's, then a step's rows
	struct gen_seq *seqs;        // (batch), by slot
	int *active;                 // (batch) whether a slot holds a question
	int *step_slots;             // (batch) the slots of one step
	int32_t *step_ids;           // (batch) and their tokens
	struct gen_done *done;       // answered, not yet handed on
	size_t n_done, done_cap;
	struct extractor *extractors[3];   // one per extract_rule, made when first needed
	struct bytevec text;
};

struct eval_generator *eval_generator_new(struct model *m, const struct tokenizer *tok, int max_new,
					  const char *const *stops, int n_stops, int batch)
{
	struct eval_generator *g = xcalloc(1, sizeof *g);
	g->m = m;
	g->tok = tok;
	g->max_new = max_new;
	g->batch = batch;
	g->stops = stops;
	g->n_stops = n_stops;
	uint32_t tv = tokenizer_vocab_size(tok);
	g->n_ids = tv < (uint32_t)m->cfg.vocab ? tv : (uint32_t)m->cfg.vocab;
	g->logits = xmalloc((size_t)batch * (size_t)m->cfg.vocab * sizeof *g->logits);
	g->seqs = xcalloc((size_t)batch, sizeof *g->seqs);
	for (int b = 0; b < batch; b++)
		g->seqs[b].gen = xmalloc((size_t)max_new * sizeof *g->seqs[b].gen);
	g->active = xcalloc((size_t)batch, sizeof *g->active);
	g->step_slots = xcalloc((size_t)batch, sizeof *g->step_slots);
	g->step_ids = xcalloc((size_t)batch, sizeof *g->step_ids);
	return g;
}

void eval_generator_free(struct eval_generator *g)
{
	if (!g)
		return;
	kv_cache_free(g->cache);
	free(g->logits);
	for (int b = 0; b < g->batch; b++)
		free(g->seqs[b].gen);
	free(g->seqs);
	free(g->active);
	free(g->step_slots);
	free(g->step_ids);
	free(g->done);
	for (int i = 0; i < 3; i++)
		if (g->extractors[i])
			extractor_free(g->extractors[i]);
	free(g->text.data);
	free(g);
}

// The first index of the largest of X[0..N) (0 when nothing is larger than −inf), and in *FINITE whether every
// value is finite.  Eight running maxima, so the scan over a 150k vocabulary is not one long chain of dependent
// compares (it ran 7% of a batched step), then the first index that holds the largest.  The finiteness rides
// along in the same pass: x·0 is 0 for a finite x and NaN for a NaN or an infinity.
static uint32_t argmax(const real *x, uint32_t n, int *finite)
{
	real lane[8], zero[8] = {0};
	for (int k = 0; k < 8; k++)
		lane[k] = -INFINITY;
	uint32_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++) {
			lane[k] = x[i + k] > lane[k] ? x[i + k] : lane[k];
			zero[k] += x[i + k] * 0;
		}
	real best = -INFINITY, z = 0;
	for (; i < n; i++) {
		best = x[i] > best ? x[i] : best;
		z += x[i] * 0;
	}
	for (int k = 0; k < 8; k++) {
		best = lane[k] > best ? lane[k] : best;
		z += zero[k];
	}
	*finite = z == 0;
	for (i = 0; i < n; i++)
		if (x[i] == best)
			return i;
	return 0;
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

// The answer of a finished sequence: its text (cut at a stop string), then the bench's extraction.
static void finish(struct eval_generator *g, struct gen_seq *s)
{
	struct eval_question *q = &s->q;
	decode_and_stop(g, s->gen, (size_t)s->n);
	free(q->generated);
	q->generated = valid_utf8(g->text.data, g->text.len);
	enum extract_rule rule = extract_rule_for(q->bench, q->lang);
	if (!g->extractors[rule])
		g->extractors[rule] = extractor_new(rule);
	char out[EXTRACT_MAX_LETTERS + 1];
	q->parsed = extract_answer(g->extractors[rule], q->generated, strlen(q->generated), q->letters,
				   q->n_options, q->multi, out);
	strcpy(q->predicted, q->parsed ? out : "");
	if (g->n_done == g->done_cap)
		g->done = xrealloc(g->done, (g->done_cap = g->done_cap ? 2 * g->done_cap : 16) * sizeof *g->done);
	g->done[g->n_done++] = (struct gen_done){s->q, s->order, s->n};
	memset(&s->q, 0, sizeof s->q);
}

// Slot B has new LOGITS: take the greedy token, and either finish the question (a special token, a stop
// string, the token limit), freeing the slot, or leave the token for the next step.
static void advance(struct eval_generator *g, int b, const real *logits)
{
	struct gen_seq *s = &g->seqs[b];
	int finite;
	uint32_t next = argmax(logits, g->n_ids, &finite);
	if (!finite)
		eval_require_finite_logits(g->m, &s->q, logits, g->n_ids, s->n);   // a NaN is never an answer: exit 65

	if (!tokenizer_is_special(g->tok, next)) {
		s->gen[s->n++] = (int32_t)next;
		if (!decode_and_stop(g, s->gen, (size_t)s->n) && s->n < g->max_new) {
			s->next = (int32_t)next;
			return;
		}
	}
	finish(g, s);
	g->active[b] = 0;
}

// Room in the cache for a question of LEN prompt tokens (its prefill and max_new − 1 steps).  A cache that is
// too short is replaced by a longer one (at least half as long again, so that happens a few times per run)
// once every slot is free; returns 0 while that must wait.
static int cache_fits(struct eval_generator *g, size_t len)
{
	int64_t need = (int64_t)len + g->max_new;
	if (g->cache && g->cache->max_len >= need)
		return 1;
	for (int b = 0; b < g->batch; b++)
		if (g->active[b])
			return 0;
	int64_t grown = g->cache ? g->cache->max_len * 3 / 2 : 512;
	kv_cache_free(g->cache);
	g->cache = kv_cache_new(g->m, ((need > grown ? need : grown) + 63) / 64 * 64, g->batch);
	return 1;
}

// Hand on the answered questions that come next in input order.
static void hand_on(struct eval_generator *g, size_t *next_order, eval_done_fn done, void *ctx)
{
	for (size_t i = 0; i < g->n_done;) {
		if (g->done[i].order != *next_order) {
			i++;
			continue;
		}
		struct gen_done d = g->done[i];
		g->done[i] = g->done[--g->n_done];
		(*next_order)++;
		done(ctx, &d.q, d.n);
		i = 0;
	}
}

size_t eval_generate_all(struct eval_generator *g, eval_next_fn next, eval_done_fn done, void *ctx)
{
	int64_t V = g->m->cfg.vocab;
	size_t n_read = 0, n_out = 0;
	struct eval_question waiting;   // read, not yet in a slot (the cache must grow first)
	int have_waiting = 0, input_left = 1;
	for (;;) {
		// refill the free slots from the input, prefilling each
		for (int b = 0; b < g->batch && (have_waiting || input_left); b++) {
			if (g->active[b])
				continue;
			if (!have_waiting) {
				if (!next(ctx, &waiting)) {
					input_left = 0;
					break;
				}
				have_waiting = 1;
			}
			if (!cache_fits(g, waiting.prompt.len))
				break;
			struct gen_seq *s = &g->seqs[b];
			s->q = waiting;
			have_waiting = 0;
			s->order = n_read++;
			s->n = 0;
			g->active[b] = 1;
			g->cache->len[b] = 0;
			// all but the last prompt token; that one goes with the next step, whose LM head pass gives its
			// logits together with the other questions' (not one pass of the LM head per prefill)
			const int32_t *prompt = (const int32_t *)s->q.prompt.data;
			model_decode(g->m, g->cache, b, prompt, (int64_t)s->q.prompt.len - 1, NULL);
			s->next = prompt[s->q.prompt.len - 1];
		}
		// one step for every question in flight
		int n = 0;
		for (int b = 0; b < g->batch; b++)
			if (g->active[b]) {
				g->step_slots[n] = b;
				g->step_ids[n++] = g->seqs[b].next;
			}
		if (n > 0) {
			model_decode_batch(g->m, g->cache, n, g->step_slots, g->step_ids, g->logits);
			for (int i = 0; i < n; i++)
				advance(g, g->step_slots[i], g->logits + i * V);
		}
		hand_on(g, &n_out, done, ctx);
		if (n == 0 && !have_waiting && !input_left)
			break;
	}
	return n_out;
}
