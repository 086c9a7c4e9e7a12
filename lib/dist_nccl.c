// dist_nccl.c — device buffers through NCCL (dist.h): MPI starts the ranks and hands rank 0's NCCL id to the
// others (as llm.c does), NCCL reduces and gathers in place on the GPU.  The communicator is non-blocking, so
// every wait goes through dist_wait and a peer that never comes is a timeout with its rank named, not a hang.
// ncclAllReduce's summation order is fixed for a given world size, topology and NCCL version: the same N twice
// gives the same bytes, but not the rank-order bytes of the MPI path.
#include "dist_internal.h"

#include "die.h"

#ifdef MEDMOE_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>

static ncclComm_t comm;
static cudaStream_t stream;

static void cuda_check(cudaError_t e, const char *call)
{
	if (e != cudaSuccess)
		die(EXIT_FAIL, "%s: %s", call, cudaGetErrorString(e));
}

static void nccl_check(ncclResult_t r, const char *call)
{
	if (r != ncclSuccess && r != ncclInProgress)
		die(EXIT_FAIL, "%s: %s%s%s", call, ncclGetErrorString(r), comm ? ": " : "",
		    comm ? ncclGetLastError(comm) : "");
}

static ncclDataType_t nccl_type(enum dist_type t)
{
	switch (t) {
	case DIST_U8: return ncclUint8;
	case DIST_I32: return ncclInt32;
	case DIST_I64: return ncclInt64;
	case DIST_F32: return ncclFloat32;
	default: return ncclFloat64;
	}
}

// The communicator has finished what was asked of it (set up, or enqueued the last collective).
static int comm_ready(void *arg)
{
	(void)arg;
	int arrived_all = dist_mpi_arrived(NULL);   // the notes are watched while NCCL works
	ncclResult_t state;
	nccl_check(ncclCommGetAsyncError(comm, &state), "ncclCommGetAsyncError");
	nccl_check(state, "NCCL");
	return state == ncclSuccess && arrived_all;
}

// ... and the GPU has run it.
static int stream_done(void *arg)
{
	if (!comm_ready(arg))
		return 0;
	cudaError_t e = cudaStreamQuery(stream);
	if (e == cudaErrorNotReady)
		return 0;
	cuda_check(e, "cudaStreamQuery");
	return 1;
}

void dist_nccl_init(void)
{
	int n_dev = 0;
	cuda_check(cudaGetDeviceCount(&n_dev), "cudaGetDeviceCount");
	if (dist_g.local_rank >= n_dev)
		die(EXIT_USAGE, "%d ranks on this node but %d GPU%s: start one rank per GPU", dist_g.local_world, n_dev,
		    n_dev == 1 ? "" : "s");
	cuda_check(cudaSetDevice(dist_g.local_rank), "cudaSetDevice");
	ncclUniqueId id = {0};
	if (dist_g.rank == 0)
		nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
	// rank 0's id to all: every rank gathers every rank's (only rank 0's is real)
	ncclUniqueId *all = xmalloc((size_t)dist_g.world * sizeof id);
	size_t *counts = xmalloc((size_t)dist_g.world * sizeof *counts);
	for (int r = 0; r < dist_g.world; r++)
		counts[r] = sizeof id;
	if (dist_g.world > 1)
		dist_mpi_allgatherv(&id, all, counts, DIST_U8, "handing out the NCCL id");
	else
		all[0] = id;
	id = all[0];
	free(all);
	free(counts);
	ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
	cfg.blocking = 0;
	nccl_check(ncclCommInitRankConfig(&comm, dist_g.world, id, dist_g.rank, &cfg), "ncclCommInitRankConfig");
	dist_mpi_announce();
	dist_wait(comm_ready, NULL, "starting NCCL");
	cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
}

void dist_nccl_allreduce(void *buf, size_t count, enum dist_type type, const char *what)
{
	cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");   // the kernels that wrote BUF are done
	dist_mpi_announce();
	nccl_check(ncclAllReduce(buf, buf, count, nccl_type(type), ncclSum, comm, stream), "ncclAllReduce");
	dist_wait(stream_done, NULL, what);
}

void dist_nccl_allgather(const void *send, void *recv, size_t count, enum dist_type type, const char *what)
{
	cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
	dist_mpi_announce();
	nccl_check(ncclAllGather(send, recv, count, nccl_type(type), comm, stream), "ncclAllGather");
	dist_wait(stream_done, NULL, what);
}

void dist_nccl_copy(void *dst, const void *src, size_t bytes)
{
	if (dst != src)
		cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy");
}

void dist_nccl_finalize(void)
{
	nccl_check(ncclCommFinalize(comm), "ncclCommFinalize");
	dist_mpi_announce();
	dist_wait(comm_ready, NULL, "finishing NCCL");
	ncclCommDestroy(comm);
	cudaStreamDestroy(stream);
	comm = NULL;
}

#else   // no NCCL in this build: dist_init refuses GPU ranks before any of these

static noreturn void no_nccl(void) { die(EXIT_FAIL, "this build has no NCCL"); }
void dist_nccl_init(void) { no_nccl(); }
void dist_nccl_allreduce(void *buf, size_t count, enum dist_type type, const char *what)
{
	(void)buf, (void)count, (void)type, (void)what;
	no_nccl();
}
void dist_nccl_allgather(const void *send, void *recv, size_t count, enum dist_type type, const char *what)
{
	(void)send, (void)recv, (void)count, (void)type, (void)what;
	no_nccl();
}
void dist_nccl_finalize(void) {}
void dist_nccl_copy(void *dst, const void *src, size_t bytes)
{
	(void)dst, (void)src, (void)bytes;
	die(EXIT_FAIL, "a device buffer, but this build has no CUDA");
}

#endif
