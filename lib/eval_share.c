// eval_share.c — the answers of a window of questions answered by several ranks, handed to every rank (eval.h).
//
// Each rank packs the answers of the questions it owns, in window order: parsed (1 byte), predicted (9 bytes),
// the scores (8 doubles, their bytes), the generated token count (int32) and text (int32 length, −1 for none,
// then the bytes).  Every rank knows who owns what, so the gathered buffers are read back in rank order without
// any index: the bytes of each answer are the answering rank's, so the predictions written are the ones a single
// process writes.
#include "eval.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "dist.h"

static void put(struct bytevec *v, const void *p, size_t n) { bytevec_append(v, p, n); }

static const unsigned char *get(const unsigned char *p, const unsigned char *end, void *out, size_t n)
{
	if ((size_t)(end - p) < n)
		die(EXIT_FAIL, "eval: a rank's answers end early (%zu bytes short)", n - (size_t)(end - p));
	memcpy(out, p, n);
	return p + n;
}

void eval_share_answers(struct eval_question *qs, size_t n, const int *owner, int32_t *n_new)
{
	int world = dist_world(), me = dist_rank();
	if (world == 1)
		return;
	struct bytevec mine = {0};
	for (size_t i = 0; i < n; i++) {
		if (owner[i] != me)
			continue;
		const struct eval_question *q = &qs[i];
		uint8_t parsed = (uint8_t)q->parsed;
		int32_t new_tokens = n_new ? n_new[i] : 0;
		int32_t len = q->generated ? (int32_t)strlen(q->generated) : -1;
		put(&mine, &parsed, 1);
		put(&mine, q->predicted, sizeof q->predicted);
		put(&mine, q->scores, sizeof q->scores);
		put(&mine, &new_tokens, 4);
		put(&mine, &len, 4);
		if (len > 0)
			put(&mine, q->generated, (size_t)len);
	}
	int64_t size = (int64_t)mine.len, *sizes = xmalloc((size_t)world * sizeof *sizes);
	dist_allgather(&size, sizes, 1, DIST_I64, 0, "gathering the sizes of the answers");
	size_t *counts = xmalloc((size_t)world * sizeof *counts), total = 0;
	for (int r = 0; r < world; r++)
		total += counts[r] = (size_t)sizes[r];
	unsigned char *all = xmalloc(total + 1);
	dist_allgatherv(mine.data, all, counts, DIST_U8, "gathering the answers");
	const unsigned char *p = all;
	for (int r = 0; r < world; r++) {
		const unsigned char *end = p + counts[r];
		for (size_t i = 0; i < n; i++) {
			if (owner[i] != r)
				continue;
			struct eval_question *q = &qs[i];
			uint8_t parsed;
			int32_t new_tokens, len;
			p = get(p, end, &parsed, 1);
			p = get(p, end, q->predicted, sizeof q->predicted);
			p = get(p, end, q->scores, sizeof q->scores);
			p = get(p, end, &new_tokens, 4);
			p = get(p, end, &len, 4);
			q->parsed = parsed;
			if (n_new)
				n_new[i] = new_tokens;
			if (r != me && len >= 0) {
				free(q->generated);
				q->generated = xmalloc((size_t)len + 1);
				p = get(p, end, q->generated, (size_t)len);
				q->generated[len] = '\0';
			} else if (len > 0) {
				p += len;
			}
		}
		if (p != end)
			die(EXIT_FAIL, "eval: rank %d sent %zu bytes of answers more than its questions hold", r,
			    (size_t)(end - p));
	}
	free(all);
	free(counts);
	free(sizes);
	free(mine.data);
}
