// dist_mpi.c — the MPI implementation of dist.h: start-up, the arrival notes behind the timeout message, the
// rank-order sum and the gathers.  Every collective is MPI's own (non-blocking, so dist_wait can watch the
// clock); only the additions of the sum are ours, to fix their order.
#include "dist_internal.h"

#include "die.h"

#ifdef MEDMOE_MPI

#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Collectives and notes on two duplicates of the world, so no note is ever matched by a collective.
//
// Notes say who is still with us.  Rank 0 exchanges them with every rank, the others with rank 0 only (its
// "peers"): on reaching a collective a rank sends its peers the collective's number (an arrival note, tag 0),
// and while it waits, a beat every second (tag 1) with the same number.  A peer that has not arrived, or whose
// last sign of life is older than NOTE_STALE seconds, is the one to blame when a collective times out: it died,
// stopped, or is stuck somewhere outside the collective.
static MPI_Comm coll_comm, note_comm;
static uint64_t seq, seq_out, beat_out;   // collectives begun; the numbers sent in this one's notes and beats
static int n_peers, *peer;                // rank 0: ranks 1..W-1; others: rank 0
static uint64_t *note_in;                 // per peer: the number in its arrival note
static MPI_Request *recv_req, *send_req, *beat_req;   // per peer
static int *arrived;                      // per peer, for the current collective
static double *last_sign;                 // per peer: when its arrival note or a beat of this collective came
static double last_beat;
static int notes_done;
#define NOTE_EVERY 1.0
#define NOTE_STALE 2.5

static MPI_Datatype mpi_type(enum dist_type t)
{
	switch (t) {
	case DIST_U8: return MPI_UINT8_T;
	case DIST_I32: return MPI_INT32_T;
	case DIST_I64: return MPI_INT64_T;
	case DIST_F32: return MPI_FLOAT;
	default: return MPI_DOUBLE;
	}
}

static void check(int rc, const char *call)
{
	if (rc != MPI_SUCCESS) {
		char msg[MPI_MAX_ERROR_STRING];
		int len = 0;
		MPI_Error_string(rc, msg, &len);
		die(EXIT_FAIL, "%s: %.*s", call, len, msg);
	}
}

void dist_mpi_init(int *rank, int *world, int *local_rank, int *local_world)
{
	int provided;
	// OpenMP threads compute, only the main thread talks
	check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
	MPI_Comm_rank(MPI_COMM_WORLD, rank);
	MPI_Comm_size(MPI_COMM_WORLD, world);
	MPI_Comm_dup(MPI_COMM_WORLD, &coll_comm);
	MPI_Comm_dup(MPI_COMM_WORLD, &note_comm);
	MPI_Comm node;
	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &node);
	MPI_Comm_rank(node, local_rank);
	MPI_Comm_size(node, local_world);
	MPI_Comm_free(&node);
	n_peers = *rank == 0 ? *world - 1 : 1;
	size_t n = (size_t)(n_peers > 0 ? n_peers : 1);
	peer = xmalloc(n * sizeof *peer);
	for (int i = 0; i < n_peers; i++)
		peer[i] = *rank == 0 ? i + 1 : 0;
	note_in = xcalloc(n, sizeof *note_in);
	recv_req = xmalloc(3 * n * sizeof *recv_req);
	send_req = recv_req + n;
	beat_req = send_req + n;
	for (size_t i = 0; i < 3 * n; i++)
		recv_req[i] = MPI_REQUEST_NULL;
	arrived = xcalloc(n, sizeof *arrived);
	last_sign = xcalloc(n, sizeof *last_sign);
	notes_done = 1;
}

// Beats are read as they come; one from this collective or a later one (a peer may have finished its part and
// be waiting in the next) is a sign of life.
static void read_beats(double now)
{
	for (;;) {
		int flag = 0;
		MPI_Status st;
		MPI_Iprobe(MPI_ANY_SOURCE, 1, note_comm, &flag, &st);
		if (!flag)
			return;
		uint64_t v;
		MPI_Recv(&v, 1, MPI_UINT64_T, st.MPI_SOURCE, 1, note_comm, MPI_STATUS_IGNORE);
		for (int i = 0; i < n_peers; i++)
			if (peer[i] == st.MPI_SOURCE && v >= seq)
				last_sign[i] = now;
	}
}

void dist_mpi_announce(void)
{
	double now = dist_seconds();
	seq_out = ++seq;
	read_beats(now);   // the last collective's, so they do not pile up
	for (int i = 0; i < n_peers; i++) {
		arrived[i] = 0;
		last_sign[i] = now;   // the wait for its arrival note starts now
		MPI_Irecv(&note_in[i], 1, MPI_UINT64_T, peer[i], 0, note_comm, &recv_req[i]);
		MPI_Isend(&seq_out, 1, MPI_UINT64_T, peer[i], 0, note_comm, &send_req[i]);
	}
	last_beat = now;
	notes_done = 0;
}

void dist_mpi_beat(double now)
{
	read_beats(now);
	if (now - last_beat < NOTE_EVERY)
		return;
	int flag = 0;
	MPI_Testall(n_peers, beat_req, &flag, MPI_STATUSES_IGNORE);
	if (!flag)
		return;   // the last beats are still on their way
	beat_out = seq;
	for (int i = 0; i < n_peers; i++)
		MPI_Isend(&beat_out, 1, MPI_UINT64_T, peer[i], 1, note_comm, &beat_req[i]);
	last_beat = now;
}

int dist_mpi_arrived(int *missing)
{
	if (!notes_done) {
		int all = 1, flag = 0;
		for (int i = 0; i < n_peers; i++) {
			if (!arrived[i]) {
				MPI_Test(&recv_req[i], &arrived[i], MPI_STATUS_IGNORE);
				if (arrived[i]) {
					last_sign[i] = dist_seconds();
					// a rank that announces another collective than ours: the ranks no longer run the same path
					if (note_in[i] != seq)
						die(EXIT_FAIL, "rank %d is at collective %llu and rank %d at %llu: the ranks went out of "
							       "step (a bug; please report it with the command line)",
						    peer[i], (unsigned long long)note_in[i], dist_g.rank, (unsigned long long)seq);
				}
			}
			all &= arrived[i];
		}
		MPI_Testall(n_peers, send_req, &flag, MPI_STATUSES_IGNORE);
		notes_done = all && flag;
	}
	if (missing) {
		// who has not arrived, or arrived and went silent: asked when a collective times out
		double now = dist_seconds();
		read_beats(now);
		memset(missing, 0, (size_t)dist_g.world * sizeof *missing);
		for (int i = 0; i < n_peers; i++)
			missing[peer[i]] = !arrived[i] || now - last_sign[i] > NOTE_STALE;
	}
	return notes_done;
}

int dist_mpi_peer_arrived(int who)
{
	for (int i = 0; i < n_peers; i++)
		if (peer[i] == who)
			return notes_done || arrived[i];
	return 1;
}

struct requests {
	MPI_Request *req;
	int n;
};

static int requests_done(void *arg)
{
	struct requests *q = arg;
	int flag = 0, arrived_all = dist_mpi_arrived(NULL);   // the notes are watched while the collective runs
	MPI_Testall(q->n, q->req, &flag, MPI_STATUSES_IGNORE);
	return flag && arrived_all;
}

static void wait_one(MPI_Request *req, const char *what)
{
	struct requests q = {req, 1};
	dist_wait(requests_done, &q, what);
}

// OUT[k] = Σ_r IN[r·m + k], taken in rank order.  F32 is summed in double and rounded once.
static void sum_in_rank_order(const void *in, void *out, size_t m, int world, enum dist_type type)
{
#define SUM(T, ACC)                                                                      \
	do {                                                                                 \
		const T *p = in;                                                                 \
		T *o = out;                                                                      \
		_Pragma("omp parallel for if (m > 65536)") for (size_t k = 0; k < m; k++) { \
			ACC acc = p[k];                                                          \
			for (int r = 1; r < world; r++)                                          \
				acc += p[(size_t)r * m + k];                                     \
			o[k] = (T)acc;                                                           \
		}                                                                                \
	} while (0)
	switch (type) {
	case DIST_U8: SUM(uint8_t, uint8_t); break;
	case DIST_I32: SUM(int32_t, int32_t); break;
	case DIST_I64: SUM(int64_t, int64_t); break;
	case DIST_F32: SUM(float, double); break;
	case DIST_F64: SUM(double, double); break;
	}
#undef SUM
}

// Per round of at most 64 MiB: an all-to-all hands chunk j of every rank's buffer to rank j, which sums them in
// rank order, and an all-gather hands the sums back.  The same bytes as a left-to-right sum of the ranks'
// buffers, at the traffic of MPI's reduce-scatter + all-gather.
void dist_mpi_allreduce(void *buf, size_t count, enum dist_type type, const char *what)
{
	int W = dist_g.world, me = dist_g.rank;
	size_t es = dist_type_size(type), seg = ((size_t)64 << 20) / es;
	MPI_Datatype T = mpi_type(type);
	int *sc = xmalloc(4 * (size_t)W * sizeof(int)), *sd = sc + W, *rc = sd + W, *rd = rc + W;
	size_t n_max = count < seg ? count : seg, need = ((n_max + (size_t)W - 1) / (size_t)W) * (size_t)W * es + es;
	// kept from call to call: a step's all-reduce then touches no fresh pages
	static char *tmp;
	static size_t tmp_cap;
	if (need > tmp_cap) {
		free(tmp);
		tmp = xmalloc(need);
		tmp_cap = need;
	}
	dist_mpi_announce();
	for (size_t off = 0; off < count; off += seg) {
		size_t n = count - off < seg ? count - off : seg;
		char *base = (char *)buf + off * es;
		for (int j = 0; j < W; j++) {
			size_t lo = n * (size_t)j / (size_t)W, hi = n * (size_t)(j + 1) / (size_t)W;
			sc[j] = (int)(hi - lo);
			sd[j] = (int)lo;
		}
		size_t m = (size_t)sc[me];
		for (int r = 0; r < W; r++) {
			rc[r] = (int)m;
			rd[r] = (int)((size_t)r * m);
		}
		MPI_Request req;
		check(MPI_Ialltoallv(base, sc, sd, T, tmp, rc, rd, T, coll_comm, &req), "MPI_Ialltoallv");
		wait_one(&req, what);
		sum_in_rank_order(tmp, base + (size_t)sd[me] * es, m, W, type);
		check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base, sc, sd, T, coll_comm, &req),
		      "MPI_Iallgatherv");
		wait_one(&req, what);
	}
	free(sc);
}

void dist_mpi_allgatherv(const void *send, void *recv, const size_t *counts, enum dist_type type, const char *what)
{
	int W = dist_g.world;
	int *rc = xmalloc(2 * (size_t)W * sizeof(int)), *rd = rc + W;
	size_t total = 0;
	for (int r = 0; r < W; r++) {
		if (counts[r] > INT_MAX || total > INT_MAX - counts[r])
			die(EXIT_FAIL, "%s: %zu values in one all-gather, more than MPI counts (2^31)", what,
			    total + counts[r]);
		rc[r] = (int)counts[r];
		rd[r] = (int)total;
		total += counts[r];
	}
	static const char nothing[8];
	dist_mpi_announce();
	MPI_Request req;
	check(MPI_Iallgatherv(send ? send : nothing, rc[dist_g.rank], mpi_type(type), recv, rc, rd, mpi_type(type),
			      coll_comm, &req),
	      "MPI_Iallgatherv");
	wait_one(&req, what);
	free(rc);
}

void dist_mpi_barrier(const char *what)
{
	dist_mpi_announce();
	MPI_Request req;
	check(MPI_Ibarrier(coll_comm, &req), "MPI_Ibarrier");
	wait_one(&req, what);
}

void dist_mpi_finalize(void)
{
	read_beats(dist_seconds());
	MPI_Waitall(n_peers, beat_req, MPI_STATUSES_IGNORE);   // sent beats are matched or cancelled by MPI_Finalize
	MPI_Comm_free(&coll_comm);
	MPI_Comm_free(&note_comm);
	free(peer);
	free(note_in);
	free(recv_req);
	free(arrived);
	free(last_sign);
	MPI_Finalize();
}

#else   // no MPI in this build: dist.c never selects these

static noreturn void no_mpi(void) { die(EXIT_FAIL, "this build has no MPI (the distributed layer was left out)"); }
void dist_mpi_init(int *rank, int *world, int *local_rank, int *local_world)
{
	(void)rank, (void)world, (void)local_rank, (void)local_world;
	no_mpi();
}
void dist_mpi_announce(void) { no_mpi(); }
void dist_mpi_beat(double now) { (void)now; }
int dist_mpi_arrived(int *missing)
{
	(void)missing;
	return 1;
}
int dist_mpi_peer_arrived(int who)
{
	(void)who;
	return 1;
}
void dist_mpi_allreduce(void *buf, size_t count, enum dist_type type, const char *what)
{
	(void)buf, (void)count, (void)type, (void)what;
	no_mpi();
}
void dist_mpi_allgatherv(const void *send, void *recv, const size_t *counts, enum dist_type type, const char *what)
{
	(void)send, (void)recv, (void)counts, (void)type, (void)what;
	no_mpi();
}
void dist_mpi_barrier(const char *what)
{
	(void)what;
	no_mpi();
}
void dist_mpi_finalize(void) {}

#endif
