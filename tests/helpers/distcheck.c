// distcheck — exercises lib/dist.h directly, for tests/t/mpi.sh (built there against the lib sources):
//   distcheck world   prints "BACKEND rank R of W, local L of LW"
//   distcheck sums    every rank checks, bit for bit, that all-reduce gives the left-to-right sum over the ranks
//                     (F32 summed in double and rounded once, F64, I64), and the all-gathers; prints "ok"
//   distcheck hang    rank 1 sleeps in place of its all-reduce: the others must stop on MEDMOE_DIST_TIMEOUT
// The values of rank r are a pure function of (r, i), so every rank knows every rank's.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "dist.h"

static double value(int r, size_t i)
{
	// magnitudes across many binades, signs mixed, so the summation order shows in the rounding
	unsigned long long h = (unsigned long long)(r + 1) * 0x9e3779b97f4a7c15ULL ^ (i * 0xbf58476d1ce4e5b9ULL);
	h ^= h >> 29;
	double m = (double)(h % 1000003) / 1000003.0 - 0.5;
	return ldexp(m, (int)(h % 40) - 20);
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	if (argc != 2)
		die(EXIT_USAGE, "usage: distcheck world|sums|hang");
	dist_init(0);
	int me = dist_rank(), W = dist_world();
	if (strcmp(argv[1], "world") == 0) {
		printf("%s rank %d of %d, local %d of %d\n", dist_backend(), me, W, dist_local_rank(), dist_local_world());
	} else if (strcmp(argv[1], "sums") == 0) {
		size_t n = 100003;   // not a multiple of the rank count
		float *f = xmalloc(n * sizeof *f);
		double *d = xmalloc(n * sizeof *d);
		int64_t *k = xmalloc(n * sizeof *k);
		for (size_t i = 0; i < n; i++) {
			f[i] = (float)value(me, i);
			d[i] = value(me, i);
			k[i] = (int64_t)(value(me, i) * 1e12);
		}
		dist_allreduce(f, n, DIST_F32, 0, "summing floats");
		dist_allreduce(d, n, DIST_F64, 0, "summing doubles");
		dist_allreduce(k, n, DIST_I64, 0, "summing integers");
		for (size_t i = 0; i < n; i++) {
			double sf = 0, sd = 0;
			int64_t sk = 0;
			for (int r = 0; r < W; r++) {
				sf += (double)(float)value(r, i);
				sd += value(r, i);
				sk += (int64_t)(value(r, i) * 1e12);
			}
			if (f[i] != (float)sf || d[i] != sd || k[i] != sk)
				die(EXIT_FAIL, "element %zu: %.9g %.17g %lld, the rank-order sums are %.9g %.17g %lld", i, f[i], d[i],
				    (long long)k[i], (float)sf, sd, (long long)sk);
		}
		// all-gather: one value each; all-gatherv: rank r gives r + 1 values
		int64_t mine = 1000 + me, *all = xmalloc((size_t)W * sizeof *all);
		dist_allgather(&mine, all, 1, DIST_I64, 0, "gathering one value each");
		size_t *counts = xmalloc((size_t)W * sizeof *counts), total = 0;
		for (int r = 0; r < W; r++) {
			if (all[r] != 1000 + r)
				die(EXIT_FAIL, "all-gather: rank %d's value is %lld", r, (long long)all[r]);
			total += counts[r] = (size_t)r + 1;
		}
		double *part = xmalloc(((size_t)me + 1) * sizeof *part), *got = xmalloc(total * sizeof *got);
		for (int j = 0; j <= me; j++)
			part[j] = value(me, (size_t)j);
		dist_allgatherv(part, got, counts, DIST_F64, "gathering parts");
		for (int r = 0, at = 0; r < W; r++)
			for (int j = 0; j <= r; j++, at++)
				if (got[at] != value(r, (size_t)j))
					die(EXIT_FAIL, "all-gatherv: value %d of rank %d differs", j, r);
		dist_barrier("the end");
		if (me == 0)
			printf("ok: %d ranks, %zu values summed in rank order, gathers in rank order\n", W, n);
		free(f), free(d), free(k), free(all), free(counts), free(part), free(got);
	} else if (strcmp(argv[1], "hang") == 0) {
		double x = me;
		dist_context("the hang check");
		if (me == 1)
			sleep(60);
		dist_allreduce(&x, 1, DIST_F64, 0, "summing one value");
		printf("rank %d: not stopped\n", me);
	} else {
		die(EXIT_USAGE, "distcheck: world, sums or hang");
	}
	dist_finalize();
	return 0;
}
