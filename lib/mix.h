// mix.h — multi-task sampling: how many examples each task contributes, and in which order.
//
// Three steps, each a plain function so the math is testable on its own:
//   1. probabilities: p_i ∝ n_i^(1/T) (temperature sampling; Arivazhagan et al. 2019, "Massively Multilingual
//      Neural Machine Translation in the Wild", §4.2; mT5 uses the same rule with α = 1/T = 0.3).  T = 1 is
//      examples-proportional mixing, T → ∞ uniform.  Or explicit weights, normalized.
//   2. targets: integer example counts k_i summing to the total (a --budget, else Σ n_i), by the largest-remainder
//      (Hamilton) rule; a task may be capped (at most E epochs of its pool) and what it cannot take is shared out
//      among the others in proportion to their p (water filling), so the total holds while any task has room.
//   3. order: a sampler that interleaves the draws uniformly at random (at each step a task is chosen with
//      probability remaining_i / remaining), and inside a task walks a fresh random permutation of its pool per
//      epoch, so up-sampled tasks repeat whole epochs and a down-sampled task gives a random subset.
// Memory is one uint32 per pool example; nothing here touches the records themselves.
#ifndef MEDMOE_MIX_H
#define MEDMOE_MIX_H

#include <stddef.h>
#include <stdint.h>
#include "rng.h"

// P[i] = SIZES[i]^(1/T) / Σ; a task of size 0 gets 0.  T must be > 0.
void mix_temperature(size_t n_tasks, const uint64_t *sizes, double temperature, double *p);
// P[i] = WEIGHTS[i] / Σ WEIGHTS (weights ≥ 0, not all 0).
void mix_normalize(size_t n_tasks, const double *weights, double *p);
// K[i] with Σ K = TOTAL, K[i] ≈ TOTAL·P[i], K[i] ≤ CAPS[i] (CAPS NULL = no caps).  Returns Σ K, which is less
// than TOTAL only when every task with P > 0 is at its cap.
uint64_t mix_targets(size_t n_tasks, const double *p, uint64_t total, const uint64_t *caps, uint64_t *k);

// Keep a random subset of a task's N examples: shuffle ORDER (the example numbers) and return how many of its
// first entries stay: at most CAP_EXAMPLES (0 = no cap) and, walking in that order, examples while their
// TOKENS sum to at most CAP_TOKENS (0 = no cap; the first example always stays).
size_t mix_cap(struct rng *g, uint32_t *order, size_t n, const uint32_t *tokens, uint64_t cap_examples,
	       uint64_t cap_tokens);

struct mix_sampler {
	size_t n_tasks;
	struct rng g;
	uint64_t remaining;      // draws left over all tasks
	uint64_t *pool;          // per task: pool size
	uint64_t *left;          // per task: draws left
	uint64_t *pos;           // per task: position in the current epoch's permutation
	uint32_t **perm;         // per task: the current epoch's permutation of 0..pool-1
};

// TARGETS[i] draws from a pool of POOL[i] examples (a task with TARGETS > 0 needs POOL > 0).
void mix_sampler_init(struct mix_sampler *s, size_t n_tasks, const uint64_t *pool, const uint64_t *targets,
		      uint64_t seed);
// The next draw: its task and its example (an index into that task's pool).  0 when all draws are made.
int mix_sampler_next(struct mix_sampler *s, size_t *task, uint64_t *example);
void mix_sampler_free(struct mix_sampler *s);

#endif
