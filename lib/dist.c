// dist.c — which world this process is in, the one-process implementation, dispatch to MPI / NCCL, and the
// waiting loop every collective goes through (dist.h).
#include "dist_internal.h"

#include <omp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "die.h"

struct dist_state dist_g = {.rank = 0, .world = 1, .local_rank = 0, .local_world = 1};
static double in_calls;   // dist_seconds_in_calls

size_t dist_type_size(enum dist_type type)
{
	static const size_t size[] = {1, 4, 8, 4, 8};
	return size[type];
}

int dist_rank(void) { return dist_g.rank; }
int dist_world(void) { return dist_g.world; }
int dist_local_rank(void) { return dist_g.local_rank; }
int dist_local_world(void) { return dist_g.local_world; }

const char *dist_backend(void)
{
	static const char *const names[] = {"none", "mpi", "nccl"};
	return names[dist_g.backend];
}

int dist_have_mpi(void)
{
#ifdef MEDMOE_MPI
	return 1;
#else
	return 0;
#endif
}

int dist_have_nccl(void)
{
#ifdef MEDMOE_NCCL
	return 1;
#else
	return 0;
#endif
}

const char *dist_build(void)
{
	return dist_have_nccl() ? "MPI + NCCL" : dist_have_mpi() ? "MPI" : "left out, built without MPI";
}

// ----------------------------------------------------------------------------
// the launcher's environment

static int env_int(const char *name, int fallback)
{
	const char *v = getenv(name);
	char *end;
	if (!v || !*v)
		return fallback;
	long n = strtol(v, &end, 10);
	return *end || n < 0 || n > 1 << 24 ? fallback : (int)n;
}

// The world a launcher announced: 1 when it says this process is one of a job (WORLD may be 0 when only MPI
// can tell, as under a bare PMIx launcher), 0 when no launcher started it.  LAUNCHER names it for messages.
static int launched(int *rank, int *world, const char **launcher)
{
	if (getenv("OMPI_COMM_WORLD_SIZE")) {
		*launcher = "mpirun (Open MPI)";
		*world = env_int("OMPI_COMM_WORLD_SIZE", 0);
		*rank = env_int("OMPI_COMM_WORLD_RANK", 0);
		return 1;
	}
	if (getenv("PMI_SIZE")) {
		*launcher = "an MPI launcher (PMI)";
		*world = env_int("PMI_SIZE", 0);
		*rank = env_int("PMI_RANK", 0);
		return 1;
	}
	if (getenv("PMIX_RANK")) {
		*launcher = "an MPI launcher (PMIx)";
		*world = 0;
		*rank = env_int("PMIX_RANK", 0);
		return 1;
	}
	// srun also runs plain programs: only a step of several tasks is a job of ranks
	if (env_int("SLURM_STEP_NUM_TASKS", 1) > 1) {
		*launcher = "srun";
		*world = env_int("SLURM_STEP_NUM_TASKS", 0);
		*rank = env_int("SLURM_PROCID", 0);
		return 1;
	}
	return 0;
}

// Each rank's share of the node's cores for its OpenMP team, unless OMP_NUM_THREADS says otherwise: a rank the
// launcher bound to some cores already sees only those; an unbound one would otherwise start a thread per core
// of the node, as would every other rank on it.
static void share_cores(void)
{
	if (getenv("OMP_NUM_THREADS") || dist_g.local_world <= 1)
		return;
	cpu_set_t set;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
	if (mine >= online) {
		mine = (int)(online / dist_g.local_world);
		omp_set_num_threads(mine > 0 ? mine : 1);
	}
}

void dist_init(int gpu)
{
	if (dist_g.initialised)
		return;
	dist_g.initialised = 1;
	const char *t = getenv("MEDMOE_DIST_TIMEOUT");
	dist_g.timeout = 600;
	if (t && *t) {
		char *end;
		dist_g.timeout = strtod(t, &end);
		if (*end || !(dist_g.timeout >= 0))
			die(EXIT_USAGE, "MEDMOE_DIST_TIMEOUT: seconds (0: no limit), not %s", t);
	}
	int rank = 0, world = 1;
	const char *launcher = NULL;
	if (!launched(&rank, &world, &launcher))
		return;   // one process, on the CPU or one GPU: nothing to talk to
	if (!dist_have_mpi()) {
		if (world == 1)
			return;   // mpirun -np 1: one process, nothing to talk to
		if (rank > 0) {   // rank 0 says it; its exit ends the job (else this one ends on its own)
			sleep(5);
			exit(EXIT_USAGE);
		}
		die(EXIT_USAGE,
		    "started as rank %d of %s%.0d by %s, but this build has no MPI: the distributed layer was left out "
		    "(install libopenmpi-dev and rebuild, see README); run without the launcher for one process",
		    rank, world ? "" : "several", world, launcher);
	}
	dist_mpi_init(&dist_g.rank, &dist_g.world, &dist_g.local_rank, &dist_g.local_world);
	dist_g.backend = DIST_MPI;
	if (dist_g.world > 1) {
		static char name[128];
		snprintf(name, sizeof name, "%s: rank %d", progname(), dist_g.rank);
		set_progname(name);
	}
	share_cores();
	if (gpu) {
		if (!dist_have_nccl())
			die(EXIT_USAGE, "GPU ranks reduce with NCCL, and this build has none (nccl.h and libnccl were not "
				       "found under CUDA_HOME when it was built)");
		dist_nccl_init();
		dist_g.backend = DIST_NCCL;
	}
}

void dist_context(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dist_g.context, sizeof dist_g.context, fmt, ap);
	va_end(ap);
}

// ----------------------------------------------------------------------------
// waiting

double dist_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Past the timeout: stop the job naming whom it waited for, or (returning) wait on while the notes may still
// tell.  Rank 0 names every rank that did not arrive or went silent; another rank only knows about rank 0.
static void give_up(const char *what, double waited)
{
	const char *ctx = dist_g.context[0] ? dist_g.context : "", *sep = dist_g.context[0] ? ": " : "";
	int *missing = xcalloc((size_t)dist_g.world, sizeof *missing), n = 0;
	dist_mpi_arrived(missing);
	char list[512] = "";
	size_t used = 0;
	for (int r = 0; r < dist_g.world; r++)
		if (missing[r] && used + 16 < sizeof list)
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", n++ ? ", " : "", r);
	free(missing);
	// rank 0 names the missing; another rank blames rank 0 at once only when rank 0 never came, and otherwise
	// leaves the naming to it (a rank 0 that came and went quiet may be descheduled, not dead) for a second timeout
	if (n > 0 && dist_g.rank != 0 && dist_mpi_peer_arrived(0) && waited < 2 * dist_g.timeout)
		return;
	if (n > 0)
		die(EXIT_FAIL, "%s%s%s: waited %.0f s for rank%s %s, which died, stopped or hangs: stopping the job "
			       "(MEDMOE_DIST_TIMEOUT=%g)", ctx, sep, what, waited, n > 1 ? "s" : "", list, dist_g.timeout);
	// everyone is here or still beating: a few more seconds of beats may show who is not
	if (waited < (dist_g.rank == 0 ? dist_g.timeout + 8 : 2 * dist_g.timeout + 8))
		return;
	die(EXIT_FAIL, "%s%s%s: not done after %.0f s although every rank reached it (a network or MPI failure?): "
		       "stopping the job (MEDMOE_DIST_TIMEOUT=%g)", ctx, sep, what, waited, dist_g.timeout);
}

void dist_wait(int (*done)(void *arg), void *arg, const char *what)
{
	double start = dist_seconds();
	long nap = 0;   // nanoseconds, grows while the wait lasts
	for (unsigned polls = 0;; polls++) {
		if (done(arg))
			return;
		if (polls < 2000)
			continue;
		if ((polls & 15) == 0) {
			double now = dist_seconds(), waited = now - start;
			dist_mpi_beat(now);
			if (dist_g.timeout > 0 && waited > dist_g.timeout)
				give_up(what, waited);
		}
		nap = nap < 20000 ? nap + 1000 : nap < 1000000 ? nap * 2 : 1000000;
		struct timespec ts = {0, nap};
		nanosleep(&ts, NULL);
	}
}

noreturn void dist_leave(int code)
{
	double start = dist_seconds();
	while (dist_g.timeout == 0 || dist_seconds() - start < dist_g.timeout)
		sleep(1);
	exit(code);
}

// ----------------------------------------------------------------------------
// the calls

static void need_host(int on_device, const char *what)
{
	if (on_device && dist_g.backend != DIST_NCCL)
		die(EXIT_FAIL, "%s: a device buffer, but this job's ranks did not start with a GPU each", what);
}

double dist_seconds_in_calls(void) { return in_calls; }

void dist_allreduce(void *buf, size_t count, enum dist_type type, int on_device, const char *what)
{
	if (dist_g.world == 1 || count == 0)
		return;   // one rank, on the CPU or its GPU: the sum is the buffer
	need_host(on_device, what);
	double t0 = dist_seconds();
	if (on_device)
		dist_nccl_allreduce(buf, count, type, what);
	else
		dist_mpi_allreduce(buf, count, type, what);
	in_calls += dist_seconds() - t0;
}

void dist_allgather(const void *send, void *recv, size_t count, enum dist_type type, int on_device,
		    const char *what)
{
	if (on_device && dist_g.world == 1) {
		dist_nccl_copy(recv, send, count * dist_type_size(type));
		return;
	}
	need_host(on_device, what);
	double t0 = dist_seconds();
	if (on_device) {
		dist_nccl_allgather(send, recv, count, type, what);
	} else if (dist_g.world == 1) {
		memmove(recv, send, count * dist_type_size(type));
	} else {
		size_t *counts = xmalloc((size_t)dist_g.world * sizeof *counts);
		for (int r = 0; r < dist_g.world; r++)
			counts[r] = count;
		dist_mpi_allgatherv(send, recv, counts, type, what);
		free(counts);
	}
	in_calls += dist_seconds() - t0;
}

void dist_allgatherv(const void *send, void *recv, const size_t *counts, enum dist_type type, const char *what)
{
	if (dist_g.world == 1) {
		memmove(recv, send, counts[0] * dist_type_size(type));
		return;
	}
	double t0 = dist_seconds();
	dist_mpi_allgatherv(send, recv, counts, type, what);
	in_calls += dist_seconds() - t0;
}

void dist_barrier(const char *what)
{
	if (dist_g.world > 1) {
		double t0 = dist_seconds();
		dist_mpi_barrier(what);
		in_calls += dist_seconds() - t0;
	}
}

void dist_finalize(void)
{
	if (dist_g.backend == DIST_NCCL)
		dist_nccl_finalize();
	if (dist_g.backend != DIST_NONE)
		dist_mpi_finalize();
	dist_g.backend = DIST_NONE;
}
