// test_backend_ops.c — every op of ops.h, forward and backward, through the dispatch on every backend this build
// and machine have, against the CPU backend's own sources built in fp64 (ref64_*, Makefile), as ggml's
// test-backend-ops and llm.c's test_gpt2.cu compare their backends.
//
// Each case draws its inputs from a seeded generator, rounded so that every configuration holds exactly the
// same numbers (activations and frozen weights bf16-representable, f32 parameters f32-representable), runs its
// ops, and reads every output back as doubles.  Outputs are poisoned with NaN first, so an element an op never
// writes shows up.  A configuration passes a case when, per output, ‖Δ‖/‖ref‖ ≤ its tolerance (integer outputs
// equal), and when a second run gives the same bytes (the determinism ops.h promises).
//   cpu          fp32 compute, f32 weights                     tolerance 1e-5 (fp32 rounding: ~1e-7 per op)
//   cpu-bf16w    fp32 compute, bf16 weights (converted tiles)  1e-5
//   cuda-f32     f32 activations and weights (--dtype f32)     1e-5 (issue 12: f32 mode within 1e-5 relative)
//   cuda-bf16    bf16 activations and weights, f32 statistics  1e-2: bf16 keeps 8 bits of mantissa, so one
//                rounding of an output is ≤ 2^-9 ≈ 2e-3 relative; an op rounds its inputs' products once more and
//                a backward chains two or three such steps, ≤ ~6e-3; 1e-2 leaves margin (issue 12's bound).
// The CUDA configurations run only when the build has the backend and the machine a GPU (make check-gpu);
// here they report themselves as skipped.  With MEDMOE_OPS_TABLE set the test prints one line per (op,
// configuration): the error against the reference.  MEDMOE_OPS_SEED=N draws the inputs from seeds N, N+1, ...
// instead of the fixed 100, 101, ... (tests/gpu/check-gpu.sh gives a fresh one each run).
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops.h"
#include "ops_backend.h"
#include "die.h"
#include "rng.h"
#include "safetensors.h"

OPS_BACKEND_FUNCS(OPS_DECLARE_REF64)

enum role { R_ACT, R_WEIGHT, R_STAT, R_PARAM, R_I32, R_F16, R_STATS, N_ROLES };

struct config {
	const char *name;
	enum device device;
	enum dtype dt[N_ROLES];
	double tol;
	int ref;   // the fp64 reference: ref64_* directly
};

// R_STATS: the micro-batch statistics (f64 on every backend)
#define REF_CONFIG {"ref64", DEVICE_CPU, {DTYPE_F64, DTYPE_F64, DTYPE_F64, DTYPE_F64, DTYPE_I32, DTYPE_F16, DTYPE_F64}, 0, 1}
static const struct config configs[] = {
	{"cpu", DEVICE_CPU, {DTYPE_F32, DTYPE_F32, DTYPE_F32, DTYPE_F32, DTYPE_I32, DTYPE_F16, DTYPE_F64}, 1e-5, 0},
	{"cpu-bf16w", DEVICE_CPU, {DTYPE_F32, DTYPE_BF16, DTYPE_F32, DTYPE_F32, DTYPE_I32, DTYPE_F16, DTYPE_F64}, 1e-5, 0},
	{"cuda-f32", DEVICE_CUDA, {DTYPE_F32, DTYPE_F32, DTYPE_F32, DTYPE_F32, DTYPE_I32, DTYPE_F16, DTYPE_F64}, 1e-5, 0},
	{"cuda-bf16", DEVICE_CUDA, {DTYPE_BF16, DTYPE_BF16, DTYPE_F32, DTYPE_F32, DTYPE_I32, DTYPE_F16, DTYPE_F64}, 1e-2, 0},
};
#define N_CONFIGS (sizeof configs / sizeof configs[0])

// ----------------------------------------------------------------------------
// one run of a case in one configuration

#define MAX_OUT 16
#define MAX_TENSORS 48

struct run {
	const struct config *cfg;
	struct rng rng;
	struct tensor owned[MAX_TENSORS];
	int n_owned;
	int n_out;
	struct output {
		const char *name;
		int64_t n;
		double *v;
		int is_int;
	} out[MAX_OUT];
};

// Call op NAME with ARGS on the configuration's backend: the dispatch (lib/ops.c) or the fp64 reference.
#define OP(r, name, ...)                                  \
	do {                                              \
		if ((r)->cfg->ref)                        \
			ref64_##name(__VA_ARGS__);        \
		else                                      \
			name(__VA_ARGS__);                \
	} while (0)
#define OPV(r, name, ...) ((r)->cfg->ref ? ref64_##name(__VA_ARGS__) : name(__VA_ARGS__))

static double round_to(double v, enum role role)
{
	switch (role) {
	case R_ACT:
	case R_WEIGHT: return st_bf16_to_f32(st_f32_to_bf16((float)v));
	case R_F16: return st_f16_to_f32(st_f32_to_f16((float)v));
	case R_STATS: return v;
	default: return (float)v;
	}
}

// Host values into a new tensor of ROLE's dtype on the configuration's device.
static struct tensor put(struct run *r, enum role role, int ndim, int64_t d0, int64_t d1, int64_t d2, const double *v)
{
	assert_true(r->n_owned < MAX_TENSORS);
	struct tensor t = tensor_new(r->cfg->dt[role], r->cfg->device, ndim, d0, d1, d2);
	r->owned[r->n_owned++] = t;
	int64_t n = tensor_numel(t);
	if (v)
		tensor_copy(t, tensor_of((void *)v, DTYPE_F64, DEVICE_CPU, 1, n, 1, 1, 1));
	return t;
}

// N random values of ROLE (normal, times SCALE, rounded so every configuration holds them exactly).
static double *draw(struct run *r, int64_t n, double scale, enum role role)
{
	double *v = xmalloc((size_t)(n + 1) * sizeof *v);
	for (int64_t i = 0; i < n; i++)
		v[i] = round_to(scale * rng_normal(&r->rng), role);
	return v;
}

// A random tensor of ROLE.
static struct tensor rnd(struct run *r, enum role role, int ndim, int64_t d0, int64_t d1, int64_t d2, double scale)
{
	int64_t n = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
	double *v = draw(r, n, scale, role);
	struct tensor t = put(r, role, ndim, d0, d1, d2, v);
	free(v);
	return t;
}

// An output tensor, poisoned with NaN so unwritten elements show.
static struct tensor outp(struct run *r, enum role role, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
	struct tensor t = put(r, role, ndim, d0, d1, d2, NULL);
	if (role != R_I32)
		tensor_fill(t, NAN);
	else
		tensor_fill(t, -7);
	return t;
}

static struct tensor ints(struct run *r, int64_t n, const int32_t *v)
{
	struct tensor t = put(r, R_I32, 1, n, 1, 1, NULL);
	tensor_copy(t, tensor_i32((int32_t *)v, n));
	return t;
}

// Keep T's values (read back as doubles) as output NAME.
static void keep(struct run *r, const char *name, struct tensor t)
{
	assert_true(r->n_out < MAX_OUT);
	struct output *o = &r->out[r->n_out++];
	o->name = name;
	o->n = tensor_numel(t);
	o->v = xmalloc((size_t)(o->n + 1) * sizeof(double));
	o->is_int = t.dtype == DTYPE_I32;
	if (o->is_int) {
		int32_t *tmp = xmalloc((size_t)(o->n + 1) * sizeof(int32_t));
		tensor_copy(tensor_i32(tmp, o->n), t);
		for (int64_t i = 0; i < o->n; i++)
			o->v[i] = tmp[i];
		free(tmp);
	} else {
		tensor_copy(tensor_of(o->v, DTYPE_F64, DEVICE_CPU, 1, o->n, 1, 1, 1), t);
	}
}

static void keep_scalar(struct run *r, const char *name, double v)
{
	struct output *o = &r->out[r->n_out++];
	o->name = name;
	o->n = 1;
	o->v = xmalloc(sizeof(double));
	o->v[0] = v;
	o->is_int = 0;
}

static void run_free(struct run *r)
{
	for (int i = 0; i < r->n_owned; i++)
		tensor_free(r->owned[i]);
	for (int i = 0; i < r->n_out; i++)
		free(r->out[i].v);
}

// ----------------------------------------------------------------------------
// the cases: each builds its inputs from r->rng and keeps its outputs

static void case_copy_reduce(struct run *r)
{
	struct tensor a = rnd(r, R_ACT, 2, 37, 11, 0, 1.0), w = rnd(r, R_WEIGHT, 1, 300, 0, 0, 0.5);
	struct tensor b = outp(r, R_STAT, 2, 37, 11, 0);
	OP(r, tensor_copy, b, a);   // a conversion on the device (bf16 -> f32 on cuda-bf16)
	keep(r, "copy", b);
	OP(r, tensor_scale, b, -0.75);
	keep(r, "scale", b);
	keep_scalar(r, "sum", OPV(r, tensor_sum, w));
	keep_scalar(r, "sumsq", OPV(r, tensor_sumsq, w));
	OP(r, tensor_fill, b, 2.5);
	keep(r, "fill", b);
	OP(r, tensor_zero, b);
	keep(r, "zero", b);
}

static void case_gather_scatter(struct run *r)
{
	int64_t V = 19, C = 13, M = 23;
	int32_t idx[23];
	for (int i = 0; i < M; i++)
		idx[i] = (int32_t)((i * 7 + 3) % V);   // repeats: rows gathered and added more than once
	struct tensor wte = rnd(r, R_WEIGHT, 2, V, C, 0, 1.0), ix = ints(r, M, idx);
	struct tensor out = outp(r, R_ACT, 2, M, C, 0);
	OP(r, gather_rows, out, wte, ix);
	keep(r, "gather", out);
	struct tensor acc = rnd(r, R_ACT, 2, V, C, 0, 1.0);
	OP(r, scatter_rows_add, acc, out, ix);
	keep(r, "scatter_add", acc);
	// distinct rows, overwritten; the others keep their values (a batched decoding step's new keys)
	int32_t rows[7] = {11, 0, 18, 5, 3, 12, 7};
	struct tensor cache = rnd(r, R_ACT, 2, V, C, 0, 1.0), fresh = rnd(r, R_ACT, 2, 7, C, 0, 1.0);
	OP(r, scatter_rows, cache, fresh, ints(r, 7, rows));
	keep(r, "scatter", cache);
}

// Bytes of rows r0 .. r0+n−1 of A and of B's first n rows equal.
static int same_rows(struct tensor a, int64_t r0, struct tensor b, int64_t n)
{
	int64_t numel = tensor_numel(tensor_rows(b, 0, n));
	size_t bytes = (size_t)numel * dtype_size(a.dtype);
	char *x = xmalloc(bytes), *y = xmalloc(bytes);
	tensor_copy(tensor_of(x, a.dtype, DEVICE_CPU, 1, numel, 1, 1, 1), tensor_rows(a, r0, n));
	tensor_copy(tensor_of(y, b.dtype, DEVICE_CPU, 1, numel, 1, 1, 1), tensor_rows(b, 0, n));
	int same = memcmp(x, y, bytes) == 0;
	free(x);
	free(y);
	return same;
}

static void case_matmul(struct run *r)
{
	int64_t T = 29, C = 48, OC = 40;
	struct tensor x = rnd(r, R_ACT, 2, T, C, 0, 1.0), w = rnd(r, R_WEIGHT, 2, OC, C, 0, 0.2);
	struct tensor b = rnd(r, R_WEIGHT, 1, OC, 0, 0, 0.5), y = outp(r, R_ACT, 2, T, OC, 0);
	OP(r, matmul_forward, y, x, w, b);
	keep(r, "out", y);
	if (r->cfg->device == DEVICE_CPU) {
		// ops.h: on the CPU a few rows are each computed on their own, the same bits alone or together
		struct tensor one = outp(r, R_ACT, 2, 1, OC, 0), some = outp(r, R_ACT, 2, 5, OC, 0);
		OP(r, matmul_forward, one, tensor_rows(x, 17, 1), w, b);
		OP(r, matmul_forward, some, tensor_rows(x, 3, 5), w, b);
		if (!same_rows(y, 17, one, 1) || !same_rows(y, 3, some, 5))
			fail_msg("%s: matmul: rows computed alone differ from the same rows among 29", r->cfg->name);
	}
	struct tensor dy = rnd(r, R_ACT, 2, T, OC, 0, 1.0), dx = rnd(r, R_ACT, 2, T, C, 0, 1.0);
	OP(r, matmul_backward, dx, TENSOR_NONE, TENSOR_NONE, dy, x, w);
	keep(r, "dinp", dx);
	// weight and bias gradients, for a trainable (f32) weight
	struct tensor wp = rnd(r, R_PARAM, 2, OC, C, 0, 0.2), xp = rnd(r, R_PARAM, 2, T, C, 0, 1.0);
	struct tensor dyp = rnd(r, R_PARAM, 2, T, OC, 0, 1.0);
	struct tensor dw = rnd(r, R_PARAM, 2, OC, C, 0, 1.0), db = rnd(r, R_PARAM, 1, OC, 0, 0, 1.0);
	OP(r, matmul_backward, TENSOR_NONE, dw, db, dyp, xp, wp);
	keep(r, "dweight", dw);
	keep(r, "dbias", db);
}

// Weights wider than one of the CPU backend's converted tiles (512 columns): several tiles per product.
static void case_matmul_wide(struct run *r)
{
	int64_t T = 9, C = 70, OC = 1100;
	struct tensor x = rnd(r, R_ACT, 2, T, C, 0, 1.0), w = rnd(r, R_WEIGHT, 2, OC, C, 0, 0.2);
	struct tensor y = outp(r, R_ACT, 2, T, OC, 0);
	OP(r, matmul_forward, y, x, w, TENSOR_NONE);
	keep(r, "out", y);
	struct tensor w2 = rnd(r, R_WEIGHT, 2, C, OC, 0, 0.2), dy = rnd(r, R_ACT, 2, T, C, 0, 1.0);
	struct tensor dx = rnd(r, R_ACT, 2, T, OC, 0, 1.0);
	OP(r, matmul_backward, dx, TENSOR_NONE, TENSOR_NONE, dy, y, w2);
	keep(r, "dinp", dx);
}

// More rows than the CPU backend's row-wise product takes (OPS_ROWWISE_MAX_ROWS): its BLAS path.
static void case_matmul_many(struct run *r)
{
	int64_t T = OPS_ROWWISE_MAX_ROWS + 7, C = 50, OC = 36;
	struct tensor x = rnd(r, R_ACT, 2, T, C, 0, 1.0), w = rnd(r, R_WEIGHT, 2, OC, C, 0, 0.2);
	struct tensor b = rnd(r, R_WEIGHT, 1, OC, 0, 0, 0.5), y = outp(r, R_ACT, 2, T, OC, 0);
	OP(r, matmul_forward, y, x, w, b);
	keep(r, "out", y);
}

static void case_rmsnorm(struct run *r)
{
	int64_t N = 21, D = 40;
	struct tensor x = rnd(r, R_ACT, 2, N, D, 0, 2.0), w = rnd(r, R_WEIGHT, 1, D, 0, 0, 0.3);
	struct tensor y = outp(r, R_ACT, 2, N, D, 0), rs = outp(r, R_STAT, 1, N, 0, 0);
	OP(r, rmsnorm_forward, y, rs, x, w, 1e-6);
	keep(r, "out", y);
	keep(r, "rstd", rs);
	struct tensor dy = rnd(r, R_ACT, 2, N, D, 0, 1.0), dx = rnd(r, R_ACT, 2, N, D, 0, 1.0);
	struct tensor dw = rnd(r, R_PARAM, 1, D, 0, 0, 1.0);
	OP(r, rmsnorm_backward, dx, dw, dy, x, w, rs);
	keep(r, "dinp", dx);
	keep(r, "dweight", dw);
}

static void case_rope(struct run *r)
{
	int64_t T = 17, H = 3, HD = 16;
	int32_t pos[17];
	for (int t = 0; t < T; t++)
		pos[t] = t < 6 ? t : 1000 + 37 * t;   // large positions too (angles far beyond 2π)
	double f[8];
	for (int i = 0; i < HD / 2; i++)
		f[i] = (float)pow(10000.0, -2.0 * i / (double)HD);
	struct tensor x = rnd(r, R_ACT, 3, T, H, HD, 1.0), p = ints(r, T, pos), inv = put(r, R_STAT, 1, HD / 2, 1, 1, f);
	OP(r, rope_forward, x, p, inv);
	keep(r, "forward", x);
	OP(r, rope_backward, x, p, inv);
	keep(r, "backward", x);
}

// Attention of Tq queries after q_offset cached keys, over documents OFFS (n_docs), and its backward.
static void attention_case(struct run *r, int64_t Tq, int64_t q_offset, const int32_t *offs, int n_docs, int backward)
{
	int64_t NH = 4, NKV = 2, HD = 16, Tk = q_offset + Tq;
	struct tensor q = rnd(r, R_ACT, 3, Tq, NH, HD, 1.0), k = rnd(r, R_ACT, 3, Tk, NKV, HD, 1.0);
	struct tensor v = rnd(r, R_ACT, 3, Tk, NKV, HD, 1.0), o = outp(r, R_ACT, 3, Tq, NH, HD);
	struct tensor lse = outp(r, R_STAT, 2, NH, Tq, 0), doc = ints(r, n_docs + 1, offs);
	OP(r, attention_forward, o, lse, q, k, v, doc, TENSOR_NONE, n_docs, q_offset);
	keep(r, "out", o);
	keep(r, "lse", lse);
	if (!backward)
		return;
	struct tensor dout = rnd(r, R_ACT, 3, Tq, NH, HD, 1.0);
	struct tensor dq = rnd(r, R_ACT, 3, Tq, NH, HD, 1.0), dk = rnd(r, R_ACT, 3, Tk, NKV, HD, 1.0);
	struct tensor dv = rnd(r, R_ACT, 3, Tk, NKV, HD, 1.0);
	OP(r, attention_backward, dq, dk, dv, dout, o, lse, q, k, v, doc, n_docs, q_offset);
	keep(r, "dq", dq);
	keep(r, "dk", dk);
	keep(r, "dv", dv);
}

static void case_attention_packed(struct run *r)
{
	int32_t offs[5] = {0, 29, 30, 95, 150};   // documents of 29, 1, 65 and 55 tokens
	attention_case(r, 150, 0, offs, 4, 1);
}

static void case_attention_short(struct run *r)
{
	int32_t offs[3] = {0, 5, 9};
	attention_case(r, 9, 0, offs, 2, 1);
}

static void case_attention_decode(struct run *r)
{
	int32_t offs[2] = {0, 203};   // 3 new queries after 200 cached keys
	attention_case(r, 3, 200, offs, 1, 0);
}

// A batched decoding step: one query per KV-cache slot (5 slots of 300 keys, the documents), each at its own
// key row, in no particular order and not every slot; a window crosses more than one 256-key split on CUDA.
// Each query must also give what it gives alone (the q_offset form over its slot), to the bit.
static void case_attention_batched_decode(struct run *r)
{
	int64_t NH = 4, NKV = 2, HD = 16, S = 5, L = 300, Tk = S * L, Tq = 4;
	int32_t offs[6] = {0, 300, 600, 900, 1200, 1500}, lens[4] = {299, 3, 0, 270}, slot[4] = {3, 0, 4, 1};
	int32_t rows[4];
	for (int i = 0; i < Tq; i++)
		rows[i] = slot[i] * (int32_t)L + lens[i];
	struct tensor q = rnd(r, R_ACT, 3, Tq, NH, HD, 1.0), k = rnd(r, R_ACT, 3, Tk, NKV, HD, 1.0);
	struct tensor v = rnd(r, R_ACT, 3, Tk, NKV, HD, 1.0), o = outp(r, R_ACT, 3, Tq, NH, HD);
	struct tensor lse = outp(r, R_STAT, 2, NH, Tq, 0), doc = ints(r, S + 1, offs);
	OP(r, attention_forward, o, lse, q, k, v, doc, ints(r, Tq, rows), (int)S, 300);
	keep(r, "out", o);
	keep(r, "lse", lse);
	if (r->cfg->ref)
		return;
	int32_t one_doc[2];
	for (int i = 0; i < Tq; i++) {
		struct tensor oi = outp(r, R_ACT, 3, 1, NH, HD);
		one_doc[0] = 0;
		one_doc[1] = lens[i] + 1;
		struct tensor ki = tensor_rows(k, slot[i] * L, lens[i] + 1), vi = tensor_rows(v, slot[i] * L, lens[i] + 1);
		OP(r, attention_forward, oi, TENSOR_NONE, tensor_rows(q, i, 1), ki, vi, ints(r, 2, one_doc), TENSOR_NONE, 1,
		   lens[i]);
		if (!same_rows(o, i, oi, 1))
			fail_msg("%s: attention batched decode: query %d differs from the same query alone", r->cfg->name,
				 i);
	}
}

static void case_swiglu_residual(struct run *r)
{
	int64_t T = 19, F = 33;
	struct tensor g = rnd(r, R_ACT, 2, T, F, 0, 2.0), u = rnd(r, R_ACT, 2, T, F, 0, 1.0), h = outp(r, R_ACT, 2, T, F, 0);
	OP(r, swiglu_forward, h, g, u);
	keep(r, "swiglu", h);
	struct tensor dh = rnd(r, R_ACT, 2, T, F, 0, 1.0), dg = rnd(r, R_ACT, 2, T, F, 0, 1.0), du = rnd(r, R_ACT, 2, T, F, 0, 1.0);
	OP(r, swiglu_backward, dg, du, dh, g, u);
	keep(r, "dgate", dg);
	keep(r, "dup", du);
	struct tensor s = outp(r, R_ACT, 2, T, F, 0);
	OP(r, residual_forward, s, g, u);
	keep(r, "residual", s);
	OP(r, residual_backward, dg, du, dh);
	keep(r, "dres_a", dg);
	keep(r, "dres_b", du);
}

static void case_lmhead(struct run *r)
{
	int64_t T = 37, C = 32, V = 301;
	int32_t tgt[37], rows[11], ids[11];
	for (int t = 0; t < T; t++)
		tgt[t] = (int32_t)((t * 53 + 7) % V);
	for (int p = 0; p < 11; p++)
		rows[p] = (int32_t)((p * 5) % T), ids[p] = p % 2 ? tgt[rows[p]] : (int32_t)((p * 91) % V);
	struct tensor x = rnd(r, R_ACT, 2, T, C, 0, 1.0), w = rnd(r, R_WEIGHT, 2, V, C, 0, 0.5), tg = ints(r, T, tgt);
	struct tensor loss = outp(r, R_STAT, 1, T, 0, 0), lse = outp(r, R_STAT, 1, T, 0, 0);
	OP(r, lmhead_ce_forward, loss, lse, x, w, tg);
	keep(r, "loss", loss);
	keep(r, "lse", lse);
	struct tensor lp = outp(r, R_STAT, 1, 11, 0, 0);
	OP(r, lmhead_logprob, lp, x, w, lse, ints(r, 11, rows), ints(r, 11, ids));
	keep(r, "logprob", lp);
	double dl[37];
	for (int t = 0; t < T; t++)
		dl[t] = round_to(1.0 / T * (1 + t % 3), R_STAT);
	struct tensor dls = put(r, R_STAT, 1, T, 1, 1, dl), dx = rnd(r, R_ACT, 2, T, C, 0, 0.1);
	OP(r, lmhead_ce_backward, dx, TENSOR_NONE, x, w, tg, lse, dls);
	keep(r, "dx", dx);
}

static void case_dropout(struct run *r)
{
	struct tensor x = rnd(r, R_ACT, 2, 31, 17, 0, 1.0), y = outp(r, R_ACT, 2, 31, 17, 0);
	OP(r, dropout_forward, y, x, 0.3, 0x1234567ULL);
	keep(r, "forward", y);
	struct tensor dx = rnd(r, R_ACT, 2, 31, 17, 0, 1.0);
	OP(r, dropout_backward, dx, x, 0.3, 0x1234567ULL);
	keep(r, "backward", dx);
}

// LoRA experts with gates (E = 3 experts of rank 4) or without (one expert).
static void lora_case(struct run *r, int gated)
{
	int64_t T = 27, C = 40, OC = 24, E = gated ? 3 : 1, R = 4, er = E * R;
	struct tensor x = rnd(r, R_ACT, 2, T, C, 0, 1.0), A = rnd(r, R_PARAM, 2, er, C, 0, 0.2);
	struct tensor B = rnd(r, R_PARAM, 2, OC, er, 0, 0.2), G = gated ? rnd(r, R_PARAM, 2, T, E, 0, 0.5) : TENSOR_NONE;
	struct tensor y = rnd(r, R_ACT, 2, T, OC, 0, 1.0), h = outp(r, R_ACT, 2, T, er, 0);
	OP(r, lora_forward, y, h, x, A, B, G, 2.0);
	keep(r, "y", y);
	keep(r, "h", h);
	struct tensor dy = rnd(r, R_ACT, 2, T, OC, 0, 1.0), dx = rnd(r, R_ACT, 2, T, C, 0, 1.0);
	struct tensor dA = rnd(r, R_PARAM, 2, er, C, 0, 1.0), dB = rnd(r, R_PARAM, 2, OC, er, 0, 1.0);
	struct tensor dG = gated ? rnd(r, R_PARAM, 2, T, E, 0, 1.0) : TENSOR_NONE;
	OP(r, lora_backward, dx, dA, dB, dG, dy, x, h, A, B, G, 2.0);
	keep(r, "dx", dx);
	keep(r, "dA", dA);
	keep(r, "dB", dB);
	if (gated)
		keep(r, "dgates", dG);
}

static void case_lora_gated(struct run *r) { lora_case(r, 1); }
static void case_lora_plain(struct run *r) { lora_case(r, 0); }

static void case_task_gate(struct run *r)
{
	int64_t NT = 3, D = 8, N = 5;
	struct tensor emb = rnd(r, R_PARAM, 2, NT, D, 0, 1.0), wg = rnd(r, R_PARAM, 2, N, D, 0, 0.5);
	struct tensor gate = outp(r, R_PARAM, 2, NT, N, 0);
	OP(r, task_gate_forward, gate, emb, wg);
	keep(r, "gate", gate);
	struct tensor dgate = rnd(r, R_PARAM, 2, NT, N, 0, 1.0);
	struct tensor demb = rnd(r, R_PARAM, 2, NT, D, 0, 1.0), dwg = rnd(r, R_PARAM, 2, N, D, 0, 1.0);
	OP(r, task_gate_backward, demb, dwg, dgate, gate, emb, wg);
	keep(r, "demb", demb);
	keep(r, "dwg", dwg);
}

// A router over N = 6 experts, top-2, one shared expert: the bias spreads the logits well apart so the chosen
// experts do not depend on rounding (a near-tie could legitimately differ between precisions).
static void case_router(struct run *r)
{
	int64_t T = 45, C = 32, N = 6, E = 7, K = 2, NT = 3;
	struct tensor x = rnd(r, R_ACT, 2, T, C, 0, 1.0), w = rnd(r, R_PARAM, 2, N, C, 0, 0.02);
	double bias[6] = {0.0, 1.5, -1.0, 3.0, 0.75, 2.25};
	struct tensor b = put(r, R_PARAM, 1, N, 1, 1, bias);
	struct tensor G = outp(r, R_PARAM, 2, T, E, 0), P = outp(r, R_PARAM, 2, T, N, 0), top = outp(r, R_I32, 2, T, K, 0);
	OP(r, router_forward, G, P, top, x, w, b);
	keep(r, "gates", G);
	keep(r, "probs", P);
	keep(r, "topk", top);
	struct tensor st = outp(r, R_STATS, 1, 2 * N, 0, 0);
	OP(r, router_stats, st, P, top);
	keep(r, "router_stats", st);
	int32_t task[45];
	for (int t = 0; t < T; t++)
		task[t] = t % NT;
	struct tensor cnt = put(r, R_I32, 1, N, 1, 1, NULL), tcnt = put(r, R_I32, 2, NT, N, 1, NULL);
	OP(r, tensor_zero, cnt);
	OP(r, tensor_zero, tcnt);
	OP(r, router_count, cnt, tcnt, top, ints(r, T, task));
	keep(r, "counts", cnt);
	keep(r, "task_counts", tcnt);
	struct tensor dG = rnd(r, R_PARAM, 2, T, E, 0, 1.0), dx = rnd(r, R_ACT, 2, T, C, 0, 1.0);
	struct tensor dw = rnd(r, R_PARAM, 2, N, C, 0, 1.0), db = rnd(r, R_PARAM, 1, N, 0, 0, 1.0);
	double part[12];   // the micro-batch's statistics over 60 tokens, of which these 45 are a part
	for (int e = 0; e < N; e++)
		part[e] = (double)(3 * e + 7), part[N + e] = 2.5 * e + 1;
	OP(r, router_backward, dx, dw, db, dG, G, P, top, x, w, put(r, R_STATS, 1, 2 * N, 1, 1, part), 60.0, 0.3);
	keep(r, "dx", dx);
	keep(r, "dw", dw);
	keep(r, "db", db);
}

// The contrastive loss against a partly filled queue (N = 4 rings of Q = 6, projection D = 8), then a push.
static void case_contrastive(struct run *r)
{
	int64_t T = 21, C = 24, D = 8, N = 4, Q = 6, K = 2;
	int32_t fill[4] = {3, 0, 6, 1}, head[4] = {3, 0, 0, 1}, top[42];
	for (int t = 0; t < T; t++)
		top[2 * t] = (int32_t)((t * 3) % N), top[2 * t + 1] = (int32_t)((t * 3 + 1) % N);
	double *qv = draw(r, N * Q * D, 0.35, R_F16);
	struct tensor x = rnd(r, R_ACT, 2, T, C, 0, 1.0), proj = rnd(r, R_PARAM, 2, D, C, 0, 0.3);
	struct tensor queue = put(r, R_F16, 3, N, Q, D, qv), fl = ints(r, N, fill), tk = ints(r, T * K, top);
	tk = tensor_reshape(tk, 2, T, K, 0);
	free(qv);
	struct tensor q = outp(r, R_PARAM, 2, T, D, 0), zn = outp(r, R_PARAM, 1, T, 0, 0), st = outp(r, R_STATS, 1, 2, 0, 0);
	OP(r, contrastive_forward, st, q, zn, x, proj, queue, fl, tk, 0.5);
	keep(r, "stats", st);
	keep(r, "q", q);
	keep(r, "znorm", zn);
	struct tensor dx = rnd(r, R_ACT, 2, T, C, 0, 1.0), dp = rnd(r, R_PARAM, 2, D, C, 0, 1.0);
	OP(r, contrastive_backward, dx, dp, x, q, zn, proj, queue, fl, tk, 0.5, 0.7);
	keep(r, "dx", dx);
	keep(r, "dproj", dp);
	struct tensor hd = ints(r, N, head);
	OP(r, queue_push, queue, hd, fl, q, tk);
	keep(r, "queue", queue);
	keep(r, "head", hd);
	keep(r, "fill", fl);
}

static void case_adamw(struct run *r)
{
	int64_t n = 1000;
	struct tensor p = rnd(r, R_PARAM, 1, n, 0, 0, 1.0), g = rnd(r, R_PARAM, 1, n, 0, 0, 0.1);
	struct tensor m = rnd(r, R_PARAM, 1, n, 0, 0, 0.01), v = rnd(r, R_PARAM, 1, n, 0, 0, 0.001);
	OP(r, tensor_scale, v, 0.0);   // v ≥ 0: start from zero, then square gradients in
	struct adamw_step s = {1e-2, 0.9, 0.999, 1e-8, 0.1, 3};
	OP(r, adamw_update, p, g, m, v, &s);
	keep(r, "params", p);
	keep(r, "m", m);
	keep(r, "v", v);
}

struct op_case {
	const char *name;
	void (*fn)(struct run *r);
};
static const struct op_case cases[] = {
	{"copy/fill/scale/sum", case_copy_reduce},
	{"gather_rows/scatter_rows(_add)", case_gather_scatter},
	{"matmul", case_matmul},
	{"matmul wide", case_matmul_wide},
	{"matmul many rows", case_matmul_many},
	{"rmsnorm", case_rmsnorm},
	{"rope", case_rope},
	{"attention packed", case_attention_packed},
	{"attention short", case_attention_short},
	{"attention decode", case_attention_decode},
	{"attention batched decode", case_attention_batched_decode},
	{"swiglu/residual", case_swiglu_residual},
	{"lmhead", case_lmhead},
	{"dropout", case_dropout},
	{"lora gated", case_lora_gated},
	{"lora plain", case_lora_plain},
	{"task_gate", case_task_gate},
	{"router/lb/count", case_router},
	{"contrastive/queue", case_contrastive},
	{"adamw", case_adamw},
};
#define N_CASES (sizeof cases / sizeof cases[0])

// ----------------------------------------------------------------------------
// the driver

static void run_case(const struct op_case *c, const struct config *cfg, uint64_t seed, struct run *r)
{
	memset(r, 0, sizeof *r);
	r->cfg = cfg;
	rng_seed(&r->rng, seed, 0);
	c->fn(r);
}

// ‖got − ref‖ / ‖ref‖ of one output (max |Δ| when the reference is zero); NaN where an element is missing.
static double rel_error(const struct output *got, const struct output *ref, int64_t *bad)
{
	double num = 0, den = 0;
	*bad = -1;
	for (int64_t i = 0; i < ref->n; i++) {
		if (isnan(got->v[i]) != isnan(ref->v[i])) {
			*bad = i;
			return NAN;
		}
		if (isnan(ref->v[i]))
			continue;
		double d = got->v[i] - ref->v[i];
		num += d * d;
		den += ref->v[i] * ref->v[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int table_wanted(void) { return getenv("MEDMOE_OPS_TABLE") != NULL; }

static void check_config(const struct config *cfg)
{
	if (!device_available(cfg->device)) {
		printf("# %s: skipped (no %s backend or device here)\n", cfg->name, device_name(cfg->device));
		skip();
	}
	static const struct config ref_cfg = REF_CONFIG;
	// MEDMOE_OPS_SEED draws other inputs (make check-gpu passes a fresh one each run and prints it)
	const char *seed_env = getenv("MEDMOE_OPS_SEED");
	uint64_t seed0 = seed_env ? strtoull(seed_env, NULL, 10) : 100;
	for (size_t i = 0; i < N_CASES; i++) {
		uint64_t seed = seed0 + i;
		struct run ref, got, again;
		run_case(&cases[i], &ref_cfg, seed, &ref);
		run_case(&cases[i], cfg, seed, &got);
		run_case(&cases[i], cfg, seed, &again);
		assert_int_equal(ref.n_out, got.n_out);
		for (int k = 0; k < ref.n_out; k++) {
			const struct output *o = &got.out[k], *w = &ref.out[k];
			int64_t bad;
			double err = rel_error(o, w, &bad);
			if (table_wanted())
				printf("# %-30s %-12s %-10s %10.3g\n", cases[i].name, o->name, cfg->name, err);
			if (memcmp(o->v, again.out[k].v, (size_t)o->n * sizeof(double)) != 0)
				fail_msg("%s: %s: %s: two runs on the same inputs differ", cfg->name, cases[i].name, o->name);
			if (o->is_int) {
				for (int64_t e = 0; e < o->n; e++)
					if (o->v[e] != w->v[e])
						fail_msg("%s: %s: %s[%lld] = %g, the fp64 reference has %g", cfg->name, cases[i].name,
							 o->name, (long long)e, o->v[e], w->v[e]);
				continue;
			}
			if (bad >= 0)
				fail_msg("%s: %s: %s[%lld] = %g where the fp64 reference has %g (unwritten or not finite)",
					 cfg->name, cases[i].name, o->name, (long long)bad, o->v[bad], w->v[bad]);
			if (!(err <= cfg->tol))
				fail_msg("%s: %s: %s: relative error %.3g > %.3g", cfg->name, cases[i].name, o->name, err,
					 cfg->tol);
		}
		run_free(&ref);
		run_free(&got);
		run_free(&again);
	}
}

static void test_cpu(void **state) { (void)state; check_config(&configs[0]); }
static void test_cpu_bf16_weights(void **state) { (void)state; check_config(&configs[1]); }
static void test_cuda_f32(void **state) { (void)state; check_config(&configs[2]); }
static void test_cuda_bf16(void **state) { (void)state; check_config(&configs[3]); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_cpu_bf16_weights),
		cmocka_unit_test(test_cuda_f32),
		cmocka_unit_test(test_cuda_bf16),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
