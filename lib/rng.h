// rng.h — the one pseudo-random generator medmoe uses where a --seed must reproduce a run bit for bit.
//
// xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number generators", 2018, prng.di.unimi.it),
// its 256-bit state filled from the 64-bit seed by splitmix64 (Steele, Lea & Flood, "Fast splittable
// pseudorandom number generators", OOPSLA 2014), as the xoshiro authors recommend.  Written here so that a
// seed means the same sequence on every platform and libc.
#ifndef MEDMOE_RNG_H
#define MEDMOE_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
	uint64_t s[4];
};

// splitmix64: advance *STATE and return the next output.  Also a good 64-bit mixing function.
uint64_t splitmix64(uint64_t *state);
// Seed from SEED and a STREAM number, so that independent uses of one --seed do not share a sequence.
void rng_seed(struct rng *g, uint64_t seed, uint64_t stream);
uint64_t rng_next(struct rng *g);
// Uniform in [0, N) without modulo bias (rejection of the short top interval); N > 0.
uint64_t rng_below(struct rng *g, uint64_t n);
// Uniform double in [0, 1) from the top 53 bits.
double rng_uniform(struct rng *g);
// Standard normal by the Box–Muller transform (one of the pair is used, for simplicity and reproducibility).
double rng_normal(struct rng *g);
// The same transform of two raw outputs A then B of rng_next: rng_normal(g) is rng_normal_of(a, b) for the next
// two.  Lets a caller draw the (cheap) raw outputs in order and transform them in parallel, with equal results.
double rng_normal_of(uint64_t a, uint64_t b);
// Fisher–Yates shuffle of N elements of SIZE bytes (Knuth, TAOCP vol. 2, Algorithm 3.4.2P).
void rng_shuffle(struct rng *g, void *base, size_t n, size_t size);

#endif
