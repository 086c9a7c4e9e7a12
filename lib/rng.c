// rng.c — splitmix64 seeding, xoshiro256** generation.  See rng.h for the sources.
#include "rng.h"

#include <math.h>
#include <string.h>

uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void rng_seed(struct rng *g, uint64_t seed, uint64_t stream)
{
	// Mix the stream number in through splitmix64 itself so that streams 0,1,2... start far apart.
	uint64_t sm = seed;
	uint64_t st = stream;
	sm ^= splitmix64(&st);
	for (int i = 0; i < 4; i++)
		g->s[i] = splitmix64(&sm);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(struct rng *g)
{
	uint64_t *s = g->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t rng_below(struct rng *g, uint64_t n)
{
	// 2^64 mod n values at the bottom would be drawn once more often than the rest: reject them.
	uint64_t threshold = (0 - n) % n;
	for (;;) {
		uint64_t x = rng_next(g);
		if (x >= threshold)
			return x % n;
	}
}

double rng_uniform(struct rng *g)
{
	return (double)(rng_next(g) >> 11) * 0x1.0p-53;
}

double rng_normal_of(uint64_t a, uint64_t b)
{
	double u1 = 1.0 - (double)(a >> 11) * 0x1.0p-53, u2 = (double)(b >> 11) * 0x1.0p-53;  // u1 in (0, 1]: the log is finite
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double rng_normal(struct rng *g)
{
	uint64_t a = rng_next(g);
	uint64_t b = rng_next(g);
	return rng_normal_of(a, b);
}

void rng_shuffle(struct rng *g, void *base, size_t n, size_t size)
{
	unsigned char *p = base, tmp[64];
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(g, i);
		if (j == i - 1)
			continue;
		unsigned char *a = p + (i - 1) * size, *b = p + j * size;
		for (size_t off = 0; off < size; off += sizeof tmp) {
			size_t chunk = size - off < sizeof tmp ? size - off : sizeof tmp;
			memcpy(tmp, a + off, chunk);
			memcpy(a + off, b + off, chunk);
			memcpy(b + off, tmp, chunk);
		}
	}
}
