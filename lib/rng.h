// rng.h — a small deterministic random generator: the same seed gives the same numbers on every machine.
//
// xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number generators", 2018) seeded through
// splitmix64, as its authors recommend; normals by the Box–Muller transform.  Not for cryptography.
#ifndef MEDMOE_RNG_H
#define MEDMOE_RNG_H

#include <math.h>
#include <stdint.h>

struct rng {
	uint64_t s[4];
};

static inline uint64_t rng_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = rng_splitmix64(&seed);
}

static inline uint64_t rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rng_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rng_rotl(s[3], 45);
	return result;
}

// Uniform in [0, 1) with 53 random bits.
static inline double rng_uniform(struct rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

// Standard normal (Box–Muller; one of the pair is used, for simplicity and reproducibility).
static inline double rng_normal(struct rng *r)
{
	double u1 = 1.0 - rng_uniform(r), u2 = rng_uniform(r);   // u1 in (0, 1]: log is finite
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

#endif
