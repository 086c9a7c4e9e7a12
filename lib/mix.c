// mix.c — multi-task sampling math and the draw order (see mix.h for the recipe and its sources).
#include "mix.h"
#include "die.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void mix_temperature(size_t n_tasks, const uint64_t *sizes, double temperature, double *p)
{
	// Work in logs relative to the largest task so that n^(1/T) cannot overflow or underflow for tiny T.
	double max_log = -INFINITY;
	for (size_t i = 0; i < n_tasks; i++)
		if (sizes[i] > 0 && log((double)sizes[i]) > max_log)
			max_log = log((double)sizes[i]);
	double sum = 0;
	for (size_t i = 0; i < n_tasks; i++) {
		p[i] = sizes[i] > 0 ? exp((log((double)sizes[i]) - max_log) / temperature) : 0.0;
		sum += p[i];
	}
	for (size_t i = 0; i < n_tasks; i++)
		p[i] = sum > 0 ? p[i] / sum : 0.0;
}

void mix_normalize(size_t n_tasks, const double *weights, double *p)
{
	double sum = 0;
	for (size_t i = 0; i < n_tasks; i++)
		sum += weights[i];
	for (size_t i = 0; i < n_tasks; i++)
		p[i] = sum > 0 ? weights[i] / sum : 0.0;
}

struct remainder {
	double frac;
	size_t task;
};

static int by_remainder_desc(const void *a, const void *b)
{
	const struct remainder *x = a, *y = b;
	if (x->frac != y->frac)
		return x->frac < y->frac ? 1 : -1;
	return x->task < y->task ? -1 : x->task > y->task;  // ties by task: deterministic
}

// Hamilton's rule over the tasks in OPEN: floor of each quota, then one more to the largest remainders.
static void hamilton(size_t n, const double *p, const int *open, uint64_t total, uint64_t *k)
{
	double psum = 0;
	for (size_t i = 0; i < n; i++)
		if (open[i])
			psum += p[i];
	struct remainder *rem = xcalloc(n ? n : 1, sizeof *rem);
	uint64_t given = 0;
	size_t n_rem = 0;
	for (size_t i = 0; i < n; i++) {
		if (!open[i] || psum <= 0)
			continue;
		double quota = (double)total * (p[i] / psum);
		k[i] = (uint64_t)floor(quota);
		given += k[i];
		rem[n_rem++] = (struct remainder){ quota - floor(quota), i };
	}
	qsort(rem, n_rem, sizeof *rem, by_remainder_desc);
	for (size_t j = 0; given < total && n_rem > 0; j = (j + 1) % n_rem, given++)
		k[rem[j].task]++;
	free(rem);
}

uint64_t mix_targets(size_t n_tasks, const double *p, uint64_t total, const uint64_t *caps, uint64_t *k)
{
	int *open = xcalloc(n_tasks ? n_tasks : 1, sizeof *open);
	for (size_t i = 0; i < n_tasks; i++) {
		open[i] = p[i] > 0 && (!caps || caps[i] > 0);
		k[i] = 0;
	}
	// Water filling: share what is left among the open tasks; fix every task that overshoots its cap at the
	// cap and share again.  Each round closes at least one task, so at most n_tasks rounds.
	uint64_t left = total;
	for (;;) {
		uint64_t *trial = xcalloc(n_tasks ? n_tasks : 1, sizeof *trial);
		hamilton(n_tasks, p, open, left, trial);
		int closed = 0;
		for (size_t i = 0; i < n_tasks; i++) {
			if (open[i] && caps && trial[i] >= caps[i]) {
				k[i] = caps[i];
				left -= caps[i];
				open[i] = 0;
				closed = 1;
			}
		}
		if (!closed) {
			for (size_t i = 0; i < n_tasks; i++)
				if (open[i])
					k[i] = trial[i];
			free(trial);
			break;
		}
		free(trial);
	}
	free(open);
	uint64_t sum = 0;
	for (size_t i = 0; i < n_tasks; i++)
		sum += k[i];
	return sum;
}

size_t mix_cap(struct rng *g, uint32_t *order, size_t n, const uint32_t *tokens, uint64_t cap_examples,
	       uint64_t cap_tokens)
{
	rng_shuffle(g, order, n, sizeof *order);
	size_t keep = n;
	if (cap_examples && cap_examples < keep)
		keep = (size_t)cap_examples;
	if (cap_tokens) {
		uint64_t sum = 0;
		for (size_t i = 0; i < keep; i++) {
			sum += tokens[order[i]];
			if (sum > cap_tokens && i > 0) {
				keep = i;
				break;
			}
		}
	}
	return keep;
}

void mix_sampler_init(struct mix_sampler *s, size_t n_tasks, const uint64_t *pool, const uint64_t *targets,
		      uint64_t seed)
{
	memset(s, 0, sizeof *s);
	s->n_tasks = n_tasks;
	rng_seed(&s->g, seed, 0x6d6978 /* "mix" */);
	s->pool = xcalloc(n_tasks ? n_tasks : 1, sizeof *s->pool);
	s->left = xcalloc(n_tasks ? n_tasks : 1, sizeof *s->left);
	s->pos = xcalloc(n_tasks ? n_tasks : 1, sizeof *s->pos);
	s->perm = xcalloc(n_tasks ? n_tasks : 1, sizeof *s->perm);
	for (size_t i = 0; i < n_tasks; i++) {
		if (targets[i] > 0 && pool[i] == 0)
			die(EXIT_FAIL, "mix: task %zu has draws but no examples", i);
		if (pool[i] > UINT32_MAX)
			die(EXIT_FAIL, "mix: task %zu has more than 2^32 examples", i);
		s->pool[i] = pool[i];
		s->left[i] = targets[i];
		s->remaining += targets[i];
		s->pos[i] = pool[i];  // "epoch finished": the first draw shuffles
		if (targets[i] > 0) {
			s->perm[i] = xmalloc(pool[i] * sizeof *s->perm[i]);
			for (uint64_t j = 0; j < pool[i]; j++)
				s->perm[i][j] = (uint32_t)j;
		}
	}
}

int mix_sampler_next(struct mix_sampler *s, size_t *task, uint64_t *example)
{
	if (s->remaining == 0)
		return 0;
	// A task with probability left_i / remaining: every interleaving of the draws is equally likely.
	uint64_t u = rng_below(&s->g, s->remaining);
	size_t t = 0;
	while (u >= s->left[t]) {
		u -= s->left[t];
		t++;
	}
	if (s->pos[t] == s->pool[t]) {
		rng_shuffle(&s->g, s->perm[t], s->pool[t], sizeof *s->perm[t]);
		s->pos[t] = 0;
	}
	*task = t;
	*example = s->perm[t][s->pos[t]++];
	s->left[t]--;
	s->remaining--;
	return 1;
}

void mix_sampler_free(struct mix_sampler *s)
{
	for (size_t i = 0; i < s->n_tasks; i++)
		free(s->perm[i]);
	free(s->perm);
	free(s->pos);
	free(s->left);
	free(s->pool);
	memset(s, 0, sizeof *s);
}
