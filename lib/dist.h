// dist.h — data parallelism across processes, GPUs and nodes (DESIGN §5): the one interface the trainer and
// eval-exam use to talk to their peer ranks.  Model and op code never see it.
//
// Three implementations behind the same calls:
//   none   one process (no launcher, or a build without MPI): every call is a no-op or a copy;
//   mpi    ranks started by mpirun / srun; host buffers are reduced and gathered with MPI (DESIGN §5: existing
//          engines only, no sockets of our own);
//   nccl   as mpi, plus device buffers (dist_init with gpu set) reduced and gathered with NCCL, whose id MPI
//          hands around.  Compiled when both MPI and NCCL are present (Makefile).
// A process is a rank of a job when a launcher says so in its environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
// PMIX_RANK, SLURM_STEP_NUM_TASKS); MPI is initialised only then, so a plain single process runs as before.
//
// Reductions are deterministic: a sum is taken in rank order, 0 first, whatever MPI's own algorithm would do
// (dist_mpi.c: the buffer is cut into one chunk per rank, each rank sums its chunk over all ranks in rank order,
// an all-gather hands the sums back), so the same world size gives the same bytes run after run.  F32 is
// summed in double and rounded once.  The NCCL path uses ncclAllReduce, whose order is fixed for a given world
// size, topology and NCCL version, but is not the rank order of the MPI path.
//
// A collective that waits longer than MEDMOE_DIST_TIMEOUT seconds (default 600; 0: forever) for its peers stops
// the job with one message naming the rank(s) that did not arrive (each collective is announced to rank 0 with a
// small message, so rank 0 knows who is missing).  Every message a rank prints through die.h starts with
// "PROG: rank R:" once the world is larger than one.
#ifndef MEDMOE_DIST_H
#define MEDMOE_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

enum dist_type { DIST_U8, DIST_I32, DIST_I64, DIST_F32, DIST_F64 };

// Join the job (or become the only rank).  GPU set: this rank takes CUDA device local_rank and device buffers
// go through NCCL.  Dies with a clear message when a launcher started several ranks and this build has no MPI,
// or GPU is asked for and this build has no NCCL.  Calling it again is a no-op.
void dist_init(int gpu);
int dist_rank(void);
int dist_world(void);
int dist_local_rank(void);                // rank among the ranks on this node
int dist_local_world(void);
const char *dist_backend(void);           // "none", "mpi" or "nccl"
// Whether this build holds the MPI (and NCCL) implementation.
int dist_have_mpi(void);
int dist_have_nccl(void);
// What this build holds, for --version: "MPI + NCCL", "MPI" or "left out, built without MPI".
const char *dist_build(void);

// What the job is doing, for the timeout message ("step 12"); copied.
void dist_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// BUF (COUNT values of TYPE, on the device when ON_DEVICE) becomes the element-wise sum over the ranks, taken
// in rank order.  WHAT says what the call does, for a timeout message ("summing the gradients").
void dist_allreduce(void *buf, size_t count, enum dist_type type, int on_device, const char *what);
// RECV (world · COUNT values) gets every rank's SEND (COUNT values) in rank order.
void dist_allgather(const void *send, void *recv, size_t count, enum dist_type type, int on_device,
		    const char *what);
// As dist_allgather with COUNTS[r] values from rank r (host buffers; every rank knows all counts): RECV holds
// Σ COUNTS values, rank 0's first.
void dist_allgatherv(const void *send, void *recv, const size_t *counts, enum dist_type type, const char *what);
void dist_barrier(const char *what);
// Leave the job cleanly (MPI_Finalize) at the end of a successful run.
void dist_finalize(void);
// For a rank other than 0 that has met a failure every rank meets at once (rank 0 reports it): wait quietly
// until the launcher stops the job as rank 0 exits, or exit CODE after the collective timeout.
noreturn void dist_leave(int code);

// Seconds this rank has spent in the calls above since dist_init (waiting for its peers included), for reports.
double dist_seconds_in_calls(void);

size_t dist_type_size(enum dist_type type);

#endif
