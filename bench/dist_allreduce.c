// dist_allreduce — the all-reduce of lib/dist.h timed at adapter sizes, next to MPI's own MPI_Allreduce (host
// buffers) as the peer; with --gpu, device buffers through the NCCL path (one rank per GPU).  Run under mpirun.
//   dist_allreduce [--gpu] [--reps N] FLOATS...
// Rank 0 prints per size: MB, milliseconds (median of the repetitions) and the bus bandwidth in GB/s, the
// NCCL-tests convention: 2 (N−1)/N · bytes / time, what each rank's link carries in a ring.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "dist.h"
#include "progress.h"

#ifdef MEDMOE_MPI
#include <mpi.h>
#endif
#ifdef MEDMOE_NCCL
#include <cuda_runtime.h>
#endif

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	int gpu = 0, reps = 5, i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--gpu") == 0)
			gpu = 1;
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else
			die(EXIT_USAGE, "usage: dist_allreduce [--gpu] [--reps N] FLOATS...");
	}
	dist_init(gpu);
	int W = dist_world(), me = dist_rank();
	double *ms = xmalloc((size_t)(reps > 0 ? reps : 1) * sizeof *ms), *ms_mpi = xmalloc((size_t)(reps > 0 ? reps : 1) * sizeof *ms_mpi);
	if (me == 0)
		printf("%-10s %-22s %10s %10s %12s\n", "MB", "all-reduce", "ms", "bus GB/s", "ranks");
	for (; i < argc; i++) {
		size_t n = (size_t)strtoull(argv[i], NULL, 10);
		float *host = xmalloc(n * sizeof *host), *buf = host;
		for (size_t k = 0; k < n; k++)
			host[k] = (float)((k * 2654435761u + (size_t)me) % 1000) * 1e-3f;
#ifdef MEDMOE_NCCL
		if (gpu) {
			if (cudaMalloc((void **)&buf, n * sizeof *buf) != cudaSuccess)
				die(EXIT_FAIL, "cudaMalloc of %zu floats failed", n);
			cudaMemcpy(buf, host, n * sizeof *buf, cudaMemcpyHostToDevice);
		}
#endif
		for (int r = -2; r < reps; r++) {   // two warm-ups
			dist_barrier("lining up");
			double t0 = now_seconds();
			dist_allreduce(buf, n, DIST_F32, gpu, "the timed all-reduce");
			if (r >= 0)
				ms[r] = 1e3 * (now_seconds() - t0);
#ifdef MEDMOE_MPI
			if (!gpu && W > 1) {
				dist_barrier("lining up");
				t0 = now_seconds();
				MPI_Allreduce(MPI_IN_PLACE, host, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
				if (r >= 0)
					ms_mpi[r] = 1e3 * (now_seconds() - t0);
			}
#endif
		}
		qsort(ms, (size_t)reps, sizeof *ms, by_value);
		qsort(ms_mpi, (size_t)reps, sizeof *ms_mpi, by_value);
		double mb = (double)n * 4 / 1e6, bus = W > 1 ? 2.0 * (W - 1) / W : 1.0;
		if (me == 0) {
			printf("%-10.1f %-22s %10.2f %10.2f %12d\n", mb, gpu ? "medmoe NCCL" : "medmoe (rank order)",
			       ms[reps / 2], bus * mb / ms[reps / 2], W);
			if (!gpu && W > 1)
				printf("%-10.1f %-22s %10.2f %10.2f %12d\n", mb, "MPI_Allreduce", ms_mpi[reps / 2],
				       bus * mb / ms_mpi[reps / 2], W);
		}
#ifdef MEDMOE_NCCL
		if (gpu)
			cudaFree(buf);
#endif
		free(host);
	}
	free(ms);
	free(ms_mpi);
	dist_finalize();
	return 0;
}
