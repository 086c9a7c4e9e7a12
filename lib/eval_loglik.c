// eval_loglik.c — option log-likelihoods, many questions per forward.
//
// The score of option i is log p(o_i | prompt) = Σ_t log p(o_i[t] | prompt, o_i[0..t−1]), the sum over its tokens
// (lm-evaluation-harness's loglikelihood of a continuation, engineering.md §7.1); for the usual one-token letter it
// is the next-token log-probability of that letter.
//
// A question becomes one or a few documents "prompt + option tokens" in the packed sequence.  Document r, made
// with option r's tokens, gives at each option position t the final hidden state h_t with context
// prompt + o_r[0..t−1], and the log-sum-exp of its logits (model_forward leaves both, for its targets, in
// acts.x_sel and acts.lse, read through model_target_logprob).  Any option j with |o_j| ≤ |o_r| whose tokens agree with o_r's before its last one
// (a common prefix of at least |o_j| − 1) has all its contexts in that document, so
//     log p(o_j) = Σ_{t<|o_j|} (h_t · W_head[o_j[t]] − lse_t)
// costs |o_j| dot products and no forward of its own.  One-token letters ("A", "B", …) and letters after a
// shared space token (" A" as [" ", "A"] in a byte tokenizer) all come from a single document; an option that
// fits no earlier document gets its own.  The full (T,V) logits are never formed.
#include "eval.h"

#include <string.h>

#include "die.h"
#include "eval_finite.h"

// For each option, the option whose document serves it (itself when it roots a document).
static int plan(const struct eval_question *q, int root_of[EVAL_MAX_OPTIONS])
{
	int n_docs = 0;
	for (int j = 0; j < q->n_options; j++) {
		const struct u32vec *oj = &q->option_ids[j];
		root_of[j] = j;
		for (int r = 0; r < j; r++) {
			const struct u32vec *or = &q->option_ids[r];
			if (root_of[r] != r || oj->len > or->len)
				continue;
			size_t common = 0;
			while (common < oj->len && oj->data[common] == or->data[common])
				common++;
			if (common + 1 >= oj->len) {
				root_of[j] = r;
				break;
			}
		}
		n_docs += root_of[j] == j;
	}
	return n_docs;
}

int64_t eval_loglik_tokens(const struct eval_question *q)
{
	int root_of[EVAL_MAX_OPTIONS];
	plan(q, root_of);
	int64_t n = 0;
	for (int j = 0; j < q->n_options; j++)
		if (root_of[j] == j)
			n += (int64_t)q->prompt.len + (int64_t)q->option_ids[j].len;
	return n;
}

void eval_loglik_score(struct model *m, struct eval_question *qs, int n)
{
	int64_t T = 0;
	int n_docs = 0;
	for (int i = 0; i < n; i++) {
		int root_of[EVAL_MAX_OPTIONS];
		n_docs += plan(&qs[i], root_of);
		T += eval_loglik_tokens(&qs[i]);
	}
	if (T > INT32_MAX)
		die(EXIT_FAIL, "a pack of %lld tokens is too long", (long long)T);
	int32_t *ids = xmalloc((size_t)T * sizeof *ids);
	uint8_t *mask = xcalloc((size_t)T, 1);
	int32_t *offsets = xmalloc(((size_t)n_docs + 1) * sizeof *offsets);
	// first_target[d]: index in acts.x_sel / acts.lse of document d's first option token
	int64_t *first_target = xmalloc((size_t)n_docs * sizeof *first_target);

	int64_t t = 0, n_targets = 0;
	int d = 0;
	offsets[0] = 0;
	for (int i = 0; i < n; i++) {
		const struct eval_question *q = &qs[i];
		int root_of[EVAL_MAX_OPTIONS];
		plan(q, root_of);
		for (int r = 0; r < q->n_options; r++) {
			if (root_of[r] != r)
				continue;
			for (size_t k = 0; k < q->prompt.len; k++)
				ids[t++] = (int32_t)q->prompt.data[k];
			first_target[d] = n_targets;
			for (size_t k = 0; k < q->option_ids[r].len; k++) {
				mask[t] = 1;   // predicted from the position before it: the targets are the option's tokens
				ids[t++] = (int32_t)q->option_ids[r].data[k];
			}
			n_targets += (int64_t)q->option_ids[r].len;
			offsets[++d] = (int32_t)t;
		}
	}

	int64_t got = 0;
	model_forward(m, ids, T, offsets, n_docs, mask, NULL, &got);
	if (got != n_targets)
		die(EXIT_FAIL, "internal: %lld option targets expected, the forward saw %lld", (long long)n_targets,
		    (long long)got);

	// every (target row, token) pair an option's score needs, in option order
	int64_t P = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < qs[i].n_options; j++)
			P += (int64_t)qs[i].option_ids[j].len;
	int32_t *rows = xmalloc((size_t)(2 * P + 1) * sizeof *rows), *tok = rows + P;
	double *logp = xmalloc((size_t)(P + 1) * sizeof *logp);
	int64_t p = 0;
	d = 0;
	for (int i = 0; i < n; i++) {
		struct eval_question *q = &qs[i];
		int root_of[EVAL_MAX_OPTIONS], doc_of[EVAL_MAX_OPTIONS];
		plan(q, root_of);
		for (int r = 0; r < q->n_options; r++)
			if (root_of[r] == r)
				doc_of[r] = d++;
		for (int j = 0; j < q->n_options; j++) {
			int64_t base = first_target[doc_of[root_of[j]]];
			for (size_t k = 0; k < q->option_ids[j].len; k++, p++) {
				rows[p] = (int32_t)(base + (int64_t)k);
				tok[p] = (int32_t)q->option_ids[j].data[k];
			}
		}
	}
	// the logit is summed in the order lmhead_ce_forward uses, so the root option's score is exactly −(its loss)
	model_target_logprob(m, rows, tok, P, logp);
	p = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < qs[i].n_options; j++) {
			double score = 0.0;
			for (size_t k = 0; k < qs[i].option_ids[j].len; k++)
				score += logp[p++];
			qs[i].scores[j] = score;
		}
	for (int i = 0; i < n; i++)
		eval_require_finite_scores(m, &qs[i]);   // a NaN is an error, never an answer
	free(rows);
	free(logp);
	free(ids);
	free(mask);
	free(offsets);
	free(first_target);
}
