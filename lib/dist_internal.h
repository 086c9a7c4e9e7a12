// dist_internal.h — what the implementations of dist.h share.
//   dist.c       the launcher's environment, the one-process implementation, dispatch, the waiting loop
//   dist_mpi.c   MPI: start-up, the arrival notes behind the timeout message, the rank-order sum, gathers
//   dist_nccl.c  NCCL for device buffers, bootstrapped through dist_mpi.c
#ifndef MEDMOE_DIST_INTERNAL_H
#define MEDMOE_DIST_INTERNAL_H

#include <stddef.h>

#include "dist.h"

enum dist_backend { DIST_NONE, DIST_MPI, DIST_NCCL };

struct dist_state {
	int initialised;
	int rank, world, local_rank, local_world;
	enum dist_backend backend;
	double timeout;        // seconds; 0: wait forever
	char context[160];     // dist_context
};
extern struct dist_state dist_g;

// Poll DONE(ARG) until it returns 1; past the timeout, stop the job with a message naming the missing ranks
// (dist_mpi_arrived tells which peers announced the current collective).  Sleeps a little between polls once
// the wait is no longer short, so a waiting rank leaves the cores to the others.
void dist_wait(int (*done)(void *arg), void *arg, const char *what);
double dist_seconds(void);   // a monotonic clock

// MPI (dist_mpi.c; stubs that die when the build has none)
void dist_mpi_init(int *rank, int *world, int *local_rank, int *local_world);
// Tell the peers this rank has reached the next collective (before posting it).
void dist_mpi_announce(void);
// While waiting: read the peers' beats, and send ours when one is due (every second).
void dist_mpi_beat(double now);
// 1 when every arrival note this rank waits for has come (rank 0: every rank's; others: rank 0's).  MISSING
// (world entries, may be NULL) gets 1 for each of those ranks that has not arrived or whose last note or beat
// is older than a few seconds.
int dist_mpi_arrived(int *missing);
// Whether rank PEER's arrival note for the current collective has come (PEER: one this rank exchanges notes with).
int dist_mpi_peer_arrived(int peer);
void dist_mpi_allreduce(void *buf, size_t count, enum dist_type type, const char *what);
void dist_mpi_allgatherv(const void *send, void *recv, const size_t *counts, enum dist_type type, const char *what);
void dist_mpi_barrier(const char *what);
void dist_mpi_finalize(void);

// NCCL (dist_nccl.c; stubs that die when the build has none)
void dist_nccl_init(void);
void dist_nccl_allreduce(void *buf, size_t count, enum dist_type type, const char *what);
void dist_nccl_allgather(const void *send, void *recv, size_t count, enum dist_type type, const char *what);
void dist_nccl_finalize(void);
// Device to device copy (a one-rank all-gather of device buffers).
void dist_nccl_copy(void *dst, const void *src, size_t bytes);

#endif
