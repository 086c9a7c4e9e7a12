// test_cuda_adapter_ops.c — the CUDA attention and adapter ops (cuda/attention.cu, lora.cu, router.cu,
// contrastive.cu) against direct double-precision evaluations of their formulas, through the ops.h dispatch
// with every tensor on the GPU: attention over packed documents (GQA, documents inside and across query tiles,
// decoding at a q_offset through the split-K path and the tile path, head dims 36 to 256, misaligned views),
// LoRA with and without gates, the task gate, the router with a tie, the load-balancing loss and its gradient,
// the contrastive loss over the queue, and the queue push across wrapped rings.  bf16 and f32 activations; each
// attention backward runs twice and must give the same bytes.  Gradients are accumulated into random prefilled
// buffers (the ops add).  Skipped when the build has no CUDA backend or the machine no GPU.
#include "unit.h"

#include <math.h>
#include <string.h>

#include "ops.h"
#include "rng.h"

static int have_gpu;
static struct rng R;

#ifdef MEDMOE_CUDA
static void probe_gpu(void *arg)
{
	(void)arg;
	device_init(DEVICE_CUDA, -1);
}
#endif

static int setup(void **state)
{
	(void)state;
	rng_seed(&R, 20251, 0);
#ifdef MEDMOE_CUDA
	if (unit_exit_status(probe_gpu, NULL) == 0) {
		device_init(DEVICE_CUDA, -1);
		have_gpu = 1;
	}
#endif
	return 0;
}

#define NEED_GPU() \
	do { \
		if (!have_gpu) \
			skip(); \
	} while (0)

// ----------------------------------------------------------------------------
// host <-> GPU

static double *vec(size_t n, double scale)
{
	double *v = malloc((n ? n : 1) * sizeof(double));
	for (size_t i = 0; i < n; i++)
		v[i] = scale * (2.0 * rng_uniform(&R) - 1.0);
	return v;
}

static int64_t numel_of(int nd, int64_t d0, int64_t d1, int64_t d2)
{
	return d0 * (nd > 1 ? d1 : 1) * (nd > 2 ? d2 : 1);
}

// A GPU tensor of DT holding V; V is replaced by the values the tensor holds (rounded to DT).
static struct tensor up(double *v, enum dtype dt, int nd, int64_t d0, int64_t d1, int64_t d2)
{
	int64_t n = numel_of(nd, d0, d1, d2);
	float *h = malloc((size_t)(n ? n : 1) * sizeof(float));
	for (int64_t i = 0; i < n; i++)
		h[i] = (float)v[i];
	struct tensor hv = tensor_of(h, DTYPE_F32, DEVICE_CPU, nd, d0, nd > 1 ? d1 : 1, nd > 2 ? d2 : 1, 1);
	struct tensor t = tensor_new(dt, DEVICE_CUDA, nd, d0, d1, d2);
	tensor_copy(t, hv);
	tensor_copy(hv, t);
	for (int64_t i = 0; i < n; i++)
		v[i] = h[i];
	free(h);
	return t;
}

static struct tensor up_i32(const int32_t *v, int64_t n)
{
	struct tensor t = tensor_new(DTYPE_I32, DEVICE_CUDA, 1, n, 1, 1);
	tensor_copy(t, tensor_i32((int32_t *)v, n));
	return t;
}

// T's values as doubles (a fresh array).
static double *down(struct tensor t)
{
	int64_t n = tensor_numel(t);
	float *h = malloc((size_t)(n ? n : 1) * sizeof(float));
	tensor_copy(tensor_of(h, DTYPE_F32, DEVICE_CPU, 1, n, 1, 1, 1), tensor_reshape(t, 1, n, 1, 1));
	double *v = malloc((size_t)(n ? n : 1) * sizeof(double));
	for (int64_t i = 0; i < n; i++)
		v[i] = h[i];
	free(h);
	return v;
}

static void down_i32(int32_t *out, struct tensor t)
{
	tensor_copy(tensor_i32(out, tensor_numel(t)), t);
}

// ‖got − want‖ / ‖want‖ ≤ tol (the relative Frobenius error; bf16 rounds each element by up to 2^-9).
static void check(const char *what, const double *got, const double *want, size_t n, double tol)
{
	double se = 0.0, sr = 0.0, worst = -1.0;
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		double d = got[i] - want[i];
		if (!isfinite(got[i]))
			fail_msg("%s[%zu] is %g (want %g)", what, i, got[i], want[i]);
		se += d * d;
		sr += want[i] * want[i];
		if (fabs(d) > worst) {
			worst = fabs(d);
			at = i;
		}
	}
	double rel = sqrt(se / (sr > 0.0 ? sr : 1.0));
	if (rel > tol)
		fail_msg("%s: relative error %.3g > %.3g (worst at [%zu]: got %.7g, want %.7g)", what, rel, tol, at,
			 n ? got[at] : 0.0, n ? want[at] : 0.0);
}

// GOT − BASE, for gradients accumulated onto a prefilled buffer.
static double *minus(double *got, const double *base, size_t n)
{
	for (size_t i = 0; i < n; i++)
		got[i] -= base[i];
	return got;
}

static void same_bytes(const char *what, const double *a, const double *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], sizeof(double)) != 0)
			fail_msg("%s differs between two runs at [%zu]: %.9g vs %.9g", what, i, a[i], b[i]);
}

// ----------------------------------------------------------------------------
// attention

struct att_case {
	const char *name;
	enum dtype dt;
	int Tq, Tk, NH, NKV, HD, n_docs, q_offset, misalign;
	int32_t docs[5];
};

// Softmax attention of query i of head h over keys doc_start .. q_offset+i, in double: out, lse, and the
// gradients for dout (dq, dk, dv summed over queries and the heads of a group).
static void att_reference(const struct att_case *c, const double *q, const double *k, const double *v,
			  const double *dout, double *out, double *lse, double *gq, double *gk, double *gv)
{
	int group = c->NH / c->NKV, HD = c->HD;
	double scale = 1.0 / sqrt((double)HD), *p = malloc((size_t)c->Tk * sizeof(double));
	for (int h = 0; h < c->NH; h++) {
		int kvh = h / group;
		for (int i = 0; i < c->Tq; i++) {
			int t = c->q_offset + i, d = 0;
			while (d + 1 < c->n_docs && c->docs[d + 1] <= t)
				d++;
			int a = c->docs[d];
			const double *qi = q + ((size_t)i * c->NH + h) * HD, *gi = dout + ((size_t)i * c->NH + h) * HD;
			double m = -INFINITY, z = 0.0, D = 0.0;
			for (int j = a; j <= t; j++) {
				double s = 0.0;
				for (int e = 0; e < HD; e++)
					s += qi[e] * k[((size_t)j * c->NKV + kvh) * HD + e];
				p[j] = s * scale;
				m = fmax(m, p[j]);
			}
			for (int j = a; j <= t; j++)
				z += (p[j] = exp(p[j] - m));
			for (int j = a; j <= t; j++)
				p[j] /= z;
			lse[(size_t)h * c->Tq + i] = m + log(z);
			double *oi = out + ((size_t)i * c->NH + h) * HD;
			for (int e = 0; e < HD; e++) {
				double acc = 0.0;
				for (int j = a; j <= t; j++)
					acc += p[j] * v[((size_t)j * c->NKV + kvh) * HD + e];
				oi[e] = acc;
				D += gi[e] * acc;
			}
			for (int j = a; j <= t; j++) {
				const double *kj = k + ((size_t)j * c->NKV + kvh) * HD,
					     *vj = v + ((size_t)j * c->NKV + kvh) * HD;
				double dp = 0.0;
				for (int e = 0; e < HD; e++)
					dp += gi[e] * vj[e];
				double ds = p[j] * (dp - D);
				for (int e = 0; e < HD; e++) {
					gq[((size_t)i * c->NH + h) * HD + e] += scale * ds * kj[e];
					gk[((size_t)j * c->NKV + kvh) * HD + e] += scale * ds * qi[e];
					gv[((size_t)j * c->NKV + kvh) * HD + e] += p[j] * gi[e];
				}
			}
		}
	}
	free(p);
}

static void att_run(const struct att_case *c)
{
	size_t nq = (size_t)c->Tq * c->NH * c->HD, nk = (size_t)c->Tk * c->NKV * c->HD, nl = (size_t)c->NH * c->Tq;
	int mis = c->misalign;
	// misaligned views: MIS elements into a larger tensor
	double *q = vec(nq + mis, 2.0), *k = vec(nk + mis, 2.0), *v = vec(nk + mis, 1.0), *dout = vec(nq + mis, 1.0);
	double *dq0 = vec(nq + mis, 0.01), *dk0 = vec(nk + mis, 0.01), *dv0 = vec(nk + mis, 0.01),
	       *junk = vec(nq + mis, 1e3);
	struct tensor tq = up(q, c->dt, 1, nq + mis, 1, 1), tk = up(k, c->dt, 1, nk + mis, 1, 1);
	struct tensor tv = up(v, c->dt, 1, nk + mis, 1, 1), tdout = up(dout, c->dt, 1, nq + mis, 1, 1);
	struct tensor tout = up(junk, c->dt, 1, nq + mis, 1, 1),
		      tlse = tensor_new(DTYPE_F32, DEVICE_CUDA, 2, c->NH, c->Tq, 1);
	struct tensor tdq = up(dq0, c->dt, 1, nq + mis, 1, 1), tdk = up(dk0, c->dt, 1, nk + mis, 1, 1);
	struct tensor tdv = up(dv0, c->dt, 1, nk + mis, 1, 1), toffs = up_i32(c->docs, c->n_docs + 1);
	struct tensor vq = tensor_at(tq, mis, 3, c->Tq, c->NH, c->HD), vk = tensor_at(tk, mis, 3, c->Tk, c->NKV, c->HD);
	struct tensor vv = tensor_at(tv, mis, 3, c->Tk, c->NKV, c->HD),
		      vout = tensor_at(tout, mis, 3, c->Tq, c->NH, c->HD);
	struct tensor vdout = tensor_at(tdout, mis, 3, c->Tq, c->NH, c->HD),
		      vdq = tensor_at(tdq, mis, 3, c->Tq, c->NH, c->HD);
	struct tensor vdk = tensor_at(tdk, mis, 3, c->Tk, c->NKV, c->HD),
		      vdv = tensor_at(tdv, mis, 3, c->Tk, c->NKV, c->HD);

	double *out = calloc(nq, sizeof(double)), *lse = calloc(nl, sizeof(double));
	double *gq = calloc(nq, sizeof(double)), *gk = calloc(nk, sizeof(double)), *gv = calloc(nk, sizeof(double));
	att_reference(c, q + mis, k + mis, v + mis, dout + mis, out, lse, gq, gk, gv);

	attention_forward(vout, tlse, vq, vk, vv, toffs, TENSOR_NONE, c->n_docs, c->q_offset);
	double tol = c->dt == DTYPE_F32 ? 1e-5 : 1e-2, btol = c->dt == DTYPE_F32 ? 1e-4 : 2e-2;
	char what[128];
	double *got = down(vout), *glse = down(tlse);
	snprintf(what, sizeof what, "%s: out", c->name);
	check(what, got, out, nq, tol);
	snprintf(what, sizeof what, "%s: lse", c->name);
	check(what, glse, lse, nl, 1e-5);
	free(got);
	free(glse);

	double *first[3] = {NULL, NULL, NULL};
	for (int rep = 0; rep < 2; rep++) {
		struct tensor re;
		re = up(dq0, c->dt, 1, nq + mis, 1, 1);
		tensor_copy(tdq, re);
		tensor_free(re);
		re = up(dk0, c->dt, 1, nk + mis, 1, 1);
		tensor_copy(tdk, re);
		tensor_free(re);
		re = up(dv0, c->dt, 1, nk + mis, 1, 1);
		tensor_copy(tdv, re);
		tensor_free(re);
		attention_backward(vdq, vdk, vdv, vdout, vout, tlse, vq, vk, vv, toffs, c->n_docs, c->q_offset);
		double *g[3] = {down(vdq), down(vdk), down(vdv)};
		size_t n[3] = {nq, nk, nk};
		if (rep == 0) {
			for (int i = 0; i < 3; i++)
				first[i] = g[i];
			continue;
		}
		const char *names[3] = {"dq", "dk", "dv"};
		for (int i = 0; i < 3; i++) {
			snprintf(what, sizeof what, "%s: %s", c->name, names[i]);
			same_bytes(what, first[i], g[i], n[i]);
			free(g[i]);
		}
	}
	snprintf(what, sizeof what, "%s: dq", c->name);
	check(what, minus(first[0], dq0 + mis, nq), gq, nq, btol);
	snprintf(what, sizeof what, "%s: dk", c->name);
	check(what, minus(first[1], dk0 + mis, nk), gk, nk, btol);
	snprintf(what, sizeof what, "%s: dv", c->name);
	check(what, minus(first[2], dv0 + mis, nk), gv, nk, btol);
	for (int i = 0; i < 3; i++)
		free(first[i]);
	struct tensor ts[] = {tq, tk, tv, tdout, tout, tlse, tdq, tdk, tdv, toffs};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
		tensor_free(ts[i]);
	double *hs[] = {q, k, v, dout, dq0, dk0, dv0, junk, out, lse, gq, gk, gv};
	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
		free(hs[i]);
}

static const struct att_case att_cases[] = {
    {"packed, 3 documents, GQA", DTYPE_F32, 150, 150, 4, 2, 64, 3, 0, 0, {0, 37, 100, 150}},
    {"one document, HD 128", DTYPE_F32, 130, 130, 2, 1, 128, 1, 0, 0, {0, 130}},
    {"HD 36, one-token document", DTYPE_F32, 90, 90, 2, 1, 36, 3, 0, 0, {0, 1, 40, 90}},
    {"decode, 3 queries", DTYPE_F32, 3, 150, 4, 2, 64, 2, 147, 0, {0, 60, 150}},
    {"decode, queries across documents", DTYPE_F32, 10, 150, 2, 1, 64, 2, 140, 0, {0, 145, 150}},
    {"chunk at q_offset 50", DTYPE_F32, 70, 120, 2, 1, 64, 2, 50, 0, {0, 30, 120}},
    {"HD 100", DTYPE_F32, 80, 80, 2, 1, 100, 2, 0, 0, {0, 33, 80}},
    {"HD 256", DTYPE_F32, 70, 70, 2, 2, 256, 2, 0, 0, {0, 20, 70}},
    {"misaligned views", DTYPE_F32, 100, 100, 2, 1, 64, 2, 0, 3, {0, 64, 100}},
    {"long document", DTYPE_F32, 600, 600, 2, 1, 64, 2, 0, 0, {0, 500, 600}},
    {"decode over 5 key splits, HD 128", DTYPE_F32, 2, 1100, 4, 1, 128, 2, 1098, 0, {0, 37, 1100}},
    {"decode, 16 queries, HD 256", DTYPE_F32, 16, 700, 2, 2, 256, 1, 684, 0, {0, 700}},
    {"17 queries (tile path), HD 36", DTYPE_F32, 17, 600, 2, 1, 36, 3, 583, 0, {0, 10, 300, 600}},
};

static void test_attention(void **state, enum dtype dt)
{
	(void)state;
	NEED_GPU();
	for (size_t i = 0; i < sizeof att_cases / sizeof att_cases[0]; i++) {
		struct att_case c = att_cases[i];
		c.dt = dt;
		att_run(&c);
	}
}
static void test_attention_f32(void **state)
{
	test_attention(state, DTYPE_F32);
}
static void test_attention_bf16(void **state)
{
	test_attention(state, DTYPE_BF16);
}

// ----------------------------------------------------------------------------
// LoRA

static void lora_run(enum dtype at, int with_gates)
{
	int T = 37, C = 48, OC = 40, E = with_gates ? 4 : 1, R = 3, ER = E * R;
	double s = 2.0, tol = at == DTYPE_F32 ? 1e-5 : 2e-2;
	double *x = vec((size_t)T * C, 1), *A = vec((size_t)ER * C, 0.3), *B = vec((size_t)OC * ER, 0.3);
	double *G = vec((size_t)T * E, 1), *y0 = vec((size_t)T * OC, 0.1), *junk = vec((size_t)T * ER, 1e3);
	for (int i = 0; i < T * E; i++)
		G[i] = i % 3 == 0 ? 0.0 : fabs(G[i]);
	struct tensor tx = up(x, at, 2, T, C, 1), tA = up(A, DTYPE_F32, 2, ER, C, 1),
		      tB = up(B, DTYPE_F32, 2, OC, ER, 1);
	struct tensor tG = with_gates ? up(G, DTYPE_F32, 2, T, E, 1) : TENSOR_NONE, ty = up(y0, at, 2, T, OC, 1);
	struct tensor th = up(junk, at, 2, T, ER, 1);
	lora_forward(ty, th, tx, tA, tB, tG, s);
	double *H = malloc((size_t)T * ER * sizeof(double)), *Hg = malloc((size_t)T * ER * sizeof(double));
	double *dy_ref = calloc((size_t)T * OC, sizeof(double));
	for (int t = 0; t < T; t++)
		for (int j = 0; j < ER; j++) {
			double a = 0.0;
			for (int c = 0; c < C; c++)
				a += x[t * C + c] * A[j * C + c];
			H[t * ER + j] = a;
			Hg[t * ER + j] = s * (with_gates ? G[t * E + j / R] : 1.0) * a;
		}
	for (int t = 0; t < T; t++)
		for (int o = 0; o < OC; o++) {
			double a = 0.0;
			for (int j = 0; j < ER; j++)
				a += Hg[t * ER + j] * B[o * ER + j];
			dy_ref[t * OC + o] = a;
		}
	double *got = down(th);
	check("lora h", got, H, (size_t)T * ER, tol);
	free(got);
	got = down(ty);
	check("lora y += ", minus(got, y0, (size_t)T * OC), dy_ref, (size_t)T * OC, tol);
	free(got);

	double *dy = vec((size_t)T * OC, 1), *dx0 = vec((size_t)T * C, 0.01), *dA0 = vec((size_t)ER * C, 0.01);
	double *dB0 = vec((size_t)OC * ER, 0.01), *dG0 = vec((size_t)T * E, 0.01);
	struct tensor tdy = up(dy, at, 2, T, OC, 1), tdx = up(dx0, at, 2, T, C, 1),
		      tdA = up(dA0, DTYPE_F32, 2, ER, C, 1);
	struct tensor tdB = up(dB0, DTYPE_F32, 2, OC, ER, 1),
		      tdG = with_gates ? up(dG0, DTYPE_F32, 2, T, E, 1) : TENSOR_NONE;
	lora_backward(tdx, tdA, tdB, tdG, tdy, tx, th, tA, tB, tG, s);
	double *rdx = calloc((size_t)T * C, sizeof(double)), *rdA = calloc((size_t)ER * C, sizeof(double));
	double *rdB = calloc((size_t)OC * ER, sizeof(double)), *rdG = calloc((size_t)T * E, sizeof(double));
	double *dHg = calloc((size_t)T * ER, sizeof(double)), *dH = calloc((size_t)T * ER, sizeof(double));
	for (int o = 0; o < OC; o++)
		for (int j = 0; j < ER; j++)
			for (int t = 0; t < T; t++)
				rdB[o * ER + j] += dy[t * OC + o] * Hg[t * ER + j];
	for (int t = 0; t < T; t++)
		for (int j = 0; j < ER; j++)
			for (int o = 0; o < OC; o++)
				dHg[t * ER + j] += dy[t * OC + o] * B[o * ER + j];
	for (int t = 0; t < T; t++)
		for (int e = 0; e < E; e++) {
			double g = s * (with_gates ? G[t * E + e] : 1.0), a = 0.0;
			for (int r = 0; r < R; r++) {
				a += dHg[t * ER + e * R + r] * H[t * ER + e * R + r];
				dH[t * ER + e * R + r] = g * dHg[t * ER + e * R + r];
			}
			rdG[t * E + e] = s * a;
		}
	for (int j = 0; j < ER; j++)
		for (int c = 0; c < C; c++)
			for (int t = 0; t < T; t++)
				rdA[j * C + c] += dH[t * ER + j] * x[t * C + c];
	for (int t = 0; t < T; t++)
		for (int c = 0; c < C; c++)
			for (int j = 0; j < ER; j++)
				rdx[t * C + c] += dH[t * ER + j] * A[j * C + c];
	got = down(tdB);
	check("lora dB", minus(got, dB0, (size_t)OC * ER), rdB, (size_t)OC * ER, tol);
	free(got);
	got = down(tdA);
	check("lora dA", minus(got, dA0, (size_t)ER * C), rdA, (size_t)ER * C, tol);
	free(got);
	got = down(tdx);
	check("lora dx", minus(got, dx0, (size_t)T * C), rdx, (size_t)T * C, tol);
	free(got);
	if (with_gates) {
		got = down(tdG);
		check("lora dgates", minus(got, dG0, (size_t)T * E), rdG, (size_t)T * E, tol);
		free(got);
	}
	struct tensor ts[] = {tx, tA, tB, tG, ty, th, tdy, tdx, tdA, tdB, tdG};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
		if (ts[i].data)
			tensor_free(ts[i]);
	double *hs[] = {x, A, B, G, y0, junk, H, Hg, dy_ref, dy, dx0, dA0, dB0, dG0, rdx, rdA, rdB, rdG, dHg, dH};
	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
		free(hs[i]);
}

static void test_lora(void **state)
{
	(void)state;
	NEED_GPU();
	lora_run(DTYPE_F32, 1);
	lora_run(DTYPE_BF16, 1);
	lora_run(DTYPE_F32, 0);
	lora_run(DTYPE_BF16, 0);
}

// ----------------------------------------------------------------------------
// the task gate

static void test_task_gate(void **state)
{
	(void)state;
	NEED_GPU();
	int NT = 3, D = 8, N = 4;
	double *emb = vec((size_t)NT * D, 1), *wg = vec((size_t)N * D, 1), *dgate = vec((size_t)NT * N, 1);
	double *de0 = vec((size_t)NT * D, 0.1), *dw0 = vec((size_t)N * D, 0.1);
	struct tensor temb = up(emb, DTYPE_F32, 2, NT, D, 1), twg = up(wg, DTYPE_F32, 2, N, D, 1);
	struct tensor tdgate = up(dgate, DTYPE_F32, 2, NT, N, 1), tde = up(de0, DTYPE_F32, 2, NT, D, 1);
	struct tensor tdw = up(dw0, DTYPE_F32, 2, N, D, 1), tgate = tensor_new(DTYPE_F32, DEVICE_CUDA, 2, NT, N, 1);
	double g[12], rde[24] = {0}, rdw[32] = {0};
	for (int k = 0; k < NT; k++) {
		double u[4], m = -INFINITY, z = 0.0, sum = 0.0;
		for (int e = 0; e < N; e++) {
			u[e] = 0.0;
			for (int j = 0; j < D; j++)
				u[e] += wg[e * D + j] * emb[k * D + j];
			m = fmax(m, u[e]);
		}
		for (int e = 0; e < N; e++)
			z += exp(u[e] - m);
		for (int e = 0; e < N; e++) {
			g[k * N + e] = exp(u[e] - m) / z;
			sum += g[k * N + e] * dgate[k * N + e];
		}
		for (int e = 0; e < N; e++) {
			double du = g[k * N + e] * (dgate[k * N + e] - sum);
			for (int j = 0; j < D; j++) {
				rdw[e * D + j] += du * emb[k * D + j];
				rde[k * D + j] += du * wg[e * D + j];
			}
		}
	}
	task_gate_forward(tgate, temb, twg);
	double *got = down(tgate);
	check("task gate", got, g, (size_t)NT * N, 1e-6);
	free(got);
	task_gate_backward(tde, tdw, tdgate, tgate, temb, twg);
	got = down(tde);
	check("task gate demb", minus(got, de0, (size_t)NT * D), rde, (size_t)NT * D, 1e-5);
	free(got);
	got = down(tdw);
	check("task gate dwg", minus(got, dw0, (size_t)N * D), rdw, (size_t)N * D, 1e-5);
	free(got);
	struct tensor ts[] = {temb, twg, tdgate, tde, tdw, tgate};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
		tensor_free(ts[i]);
	free(emb);
	free(wg);
	free(dgate);
	free(de0);
	free(dw0);
}

// ----------------------------------------------------------------------------
// the router, the load-balancing loss, the counters

// V (n values) rounded to DT as the GPU rounds, in place.
static void round_as(enum dtype dt, double *v, int64_t n)
{
	tensor_free(up(v, dt, 1, n, 1, 1));
}

static void router_run(enum dtype at)
{
	enum { T = 50, C = 32, N = 6, E = 7, K = 2, NT = 3 };
	double tol = at == DTYPE_F32 ? 1e-5 : 2e-2, lbw = 0.7;
	double *x = vec(T * C, 1), *w = vec(N * C, 0.5), *b = vec(N, 0.1);
	for (int c = 0; c < C; c++)   // experts 4 and 5 tie everywhere: 4 must always come first
		w[5 * C + c] = w[4 * C + c];
	b[5] = b[4];
	struct tensor tx = up(x, at, 2, T, C, 1), tw = up(w, DTYPE_F32, 2, N, C, 1), tb = up(b, DTYPE_F32, 1, N, 1, 1);
	struct tensor tg = tensor_new(DTYPE_F32, DEVICE_CUDA, 2, T, E, 1),
		      tp = tensor_new(DTYPE_F32, DEVICE_CUDA, 2, T, N, 1);
	struct tensor tk = tensor_new(DTYPE_I32, DEVICE_CUDA, 2, T, K, 1);
	router_forward(tg, tp, tk, tx, tw, tb);
	// the products read w in the activation dtype
	double wr[N * C], lg[T * N], rg[T * E] = {0}, rp[T * N];
	int32_t rk[T * K], gk[T * K];
	memcpy(wr, w, sizeof wr);
	round_as(at, wr, N * C);
	for (int t = 0; t < T; t++) {
		for (int e = 0; e < N; e++) {
			lg[t * N + e] = b[e];
			for (int c = 0; c < C; c++)
				lg[t * N + e] += x[t * C + c] * wr[e * C + c];
		}
		for (int j = 0; j < K; j++) {
			int best = -1;
			for (int e = 0; e < N; e++) {
				int taken = 0;
				for (int i = 0; i < j; i++)
					taken |= rk[t * K + i] == e;
				if (!taken && (best < 0 || lg[t * N + e] > lg[t * N + best]))
					best = e;
			}
			rk[t * K + j] = best;
		}
		for (int e = N; e < E; e++)
			rg[t * E + e] = 1.0;
		double top = lg[t * N + rk[t * K]], z = 0.0, zz = 0.0;
		for (int j = 0; j < K; j++)
			z += exp(lg[t * N + rk[t * K + j]] - top);
		for (int j = 0; j < K; j++)
			rg[t * E + rk[t * K + j]] = exp(lg[t * N + rk[t * K + j]] - top) / z;
		for (int e = 0; e < N; e++)
			zz += exp(lg[t * N + e] - top);
		for (int e = 0; e < N; e++)
			rp[t * N + e] = exp(lg[t * N + e] - top) / zz;
	}
	down_i32(gk, tk);
	for (int i = 0; i < T * K; i++)
		if (gk[i] != rk[i])
			fail_msg("router %s: topk[%d][%d] = %d, want %d", dtype_name(at), i / K, i % K, gk[i], rk[i]);
	double *got = down(tg);
	check("router gates", got, rg, T * E, 1e-5);
	free(got);
	double *probs = down(tp);
	check("router probs", probs, rp, T * N, 1e-5);

	struct tensor tl = tensor_new(DTYPE_F32, DEVICE_CUDA, 1, 1, 1, 1);
	lb_loss_forward(tl, tp, tk);
	double f[N] = {0}, P[N] = {0}, lb = 0.0;
	for (int t = 0; t < T; t++) {
		for (int j = 0; j < K; j++)
			f[rk[t * K + j]] += 1.0;
		for (int e = 0; e < N; e++)
			P[e] += probs[t * N + e];
	}
	for (int e = 0; e < N; e++)
		lb += f[e] / T * P[e] / T;
	lb *= N;
	got = down(tl);
	check("lb loss", got, &lb, 1, 1e-6);
	free(got);

	double *dx0 = vec(T * C, 0.01), *dw0 = vec(N * C, 0.01), *db0 = vec(N, 0.01), *dg = vec(T * E, 1);
	struct tensor tdx = up(dx0, at, 2, T, C, 1), tdw = up(dw0, DTYPE_F32, 2, N, C, 1),
		      tdb = up(db0, DTYPE_F32, 1, N, 1, 1);
	struct tensor tdg = up(dg, DTYPE_F32, 2, T, E, 1);
	router_backward(tdx, tdw, tdb, tdg, tg, tp, tk, tx, tw, lbw);
	double dl[T * N] = {0}, rdx[T * C] = {0}, rdw[N * C] = {0}, rdb[N] = {0};
	double *gates = down(tg);
	for (int t = 0; t < T; t++) {
		double sum = 0.0, pf = 0.0;
		for (int j = 0; j < K; j++)
			sum += gates[t * E + rk[t * K + j]] * dg[t * E + rk[t * K + j]];
		for (int j = 0; j < K; j++)
			dl[t * N + rk[t * K + j]] = gates[t * E + rk[t * K + j]] * (dg[t * E + rk[t * K + j]] - sum);
		for (int e = 0; e < N; e++)
			pf += probs[t * N + e] * f[e] / T;
		for (int e = 0; e < N; e++)
			dl[t * N + e] += lbw * N / T * probs[t * N + e] * (f[e] / T - pf);
	}
	for (int t = 0; t < T; t++)
		for (int e = 0; e < N; e++) {
			rdb[e] += dl[t * N + e];
			for (int c = 0; c < C; c++) {
				rdw[e * C + c] += dl[t * N + e] * x[t * C + c];
				rdx[t * C + c] += dl[t * N + e] * w[e * C + c];
			}
		}
	got = down(tdb);
	check("router db", minus(got, db0, N), rdb, N, 1e-5);
	free(got);
	got = down(tdw);
	check("router dw", minus(got, dw0, N * C), rdw, N * C, tol);
	free(got);
	got = down(tdx);
	check("router dx", minus(got, dx0, T * C), rdx, T * C, tol);
	free(got);

	int32_t counts[N], task_counts[NT * N], tok_task[T], want[N], want_task[NT * N];
	for (int e = 0; e < N; e++)
		counts[e] = want[e] = 5;
	for (int i = 0; i < NT * N; i++)
		task_counts[i] = want_task[i] = 1;
	for (int t = 0; t < T; t++) {
		tok_task[t] = t % NT;
		for (int j = 0; j < K; j++) {
			want[rk[t * K + j]]++;
			want_task[(t % NT) * N + rk[t * K + j]]++;
		}
	}
	struct tensor tc = up_i32(counts, N), ttc = up_i32(task_counts, NT * N), ttt = up_i32(tok_task, T);
	router_count(tc, tensor_reshape(ttc, 2, NT, N, 1), tk, ttt);
	down_i32(counts, tc);
	down_i32(task_counts, ttc);
	for (int e = 0; e < N; e++)
		assert_int_equal(counts[e], want[e]);
	for (int i = 0; i < NT * N; i++)
		assert_int_equal(task_counts[i], want_task[i]);
	struct tensor ts[] = {tx, tw, tb, tg, tp, tk, tl, tdx, tdw, tdb, tdg, tc, ttc, ttt};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
		tensor_free(ts[i]);
	double *hs[] = {x, w, b, probs, dx0, dw0, db0, dg, gates};
	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
		free(hs[i]);
}

static void test_router(void **state)
{
	(void)state;
	NEED_GPU();
	router_run(DTYPE_F32);
	router_run(DTYPE_BF16);
}

// ----------------------------------------------------------------------------
// the contrastive loss and the queue

static void contrastive_run(enum dtype at, enum dtype qt)
{
	enum { T = 40, C = 32, D = 16, N = 4, Q = 8, K = 2 };
	int32_t fill[N] = {8, 3, 0, 5}, topk[T * K];
	double tau = 0.07, coef = 0.3, exact = at == DTYPE_F32 && qt == DTYPE_F32;
	double tol = exact ? 1e-5 : 2e-2, btol = exact ? 1e-4 : 5e-2;
	double *x = vec(T * C, 1), *proj = vec(D * C, 0.5), *keys = vec(N * Q * D, 1);
	for (int r = 0; r < N * Q; r++) {   // unit rows; the rows past a ring's fill are junk that must not count
		double nn = 0.0;
		for (int j = 0; j < D; j++)
			nn += keys[r * D + j] * keys[r * D + j];
		for (int j = 0; j < D; j++)
			keys[r * D + j] = r % Q < fill[r / Q] ? keys[r * D + j] / sqrt(nn) : 100.0;
	}
	for (int t = 0; t < T; t++) {
		topk[t * K] = t % N;
		topk[t * K + 1] = (t + 1) % N;
	}
	struct tensor tx = up(x, at, 2, T, C, 1), tproj = up(proj, DTYPE_F32, 2, D, C, 1);
	struct tensor tqueue = up(keys, DTYPE_F16, 3, N, Q, D), tfill = up_i32(fill, N);
	struct tensor ttopk = tensor_reshape(up_i32(topk, T * K), 2, T, K, 1);
	struct tensor tq = tensor_new(qt, DEVICE_CUDA, 2, T, D, 1),
		      tzn = tensor_new(DTYPE_F32, DEVICE_CUDA, 1, T, 1, 1);
	struct tensor tl = tensor_new(DTYPE_F32, DEVICE_CUDA, 1, 1, 1, 1);
	contrastive_forward(tl, tq, tzn, tx, tproj, tqueue, tfill, ttopk, tau);

	double pr[D * C], zn[T], q[T * D], dq[T * D] = {0}, sum = 0.0;
	int valid = 0;
	memcpy(pr, proj, sizeof pr);
	round_as(at, pr, D * C);
	for (int t = 0; t < T; t++)
		valid += fill[t % N] > 0;
	for (int t = 0; t < T; t++) {
		double nn = 0.0;
		for (int j = 0; j < D; j++) {
			q[t * D + j] = 0.0;
			for (int c = 0; c < C; c++)
				q[t * D + j] += x[t * C + c] * pr[j * C + c];
			nn += q[t * D + j] * q[t * D + j];
		}
		zn[t] = sqrt(nn);
		for (int j = 0; j < D; j++)
			q[t * D + j] /= zn[t];
		int pos = t % N;
		if (!fill[pos])
			continue;
		double sc[N * Q], m = -INFINITY, mp = -INFINITY, z = 0.0, zp = 0.0;
		for (int e = 0; e < N; e++)
			for (int i = 0; i < fill[e]; i++) {
				double a = 0.0;
				for (int j = 0; j < D; j++)
					a += q[t * D + j] * keys[(e * Q + i) * D + j];
				sc[e * Q + i] = a / tau;
				m = fmax(m, a / tau);
				if (e == pos)
					mp = fmax(mp, a / tau);
			}
		for (int e = 0; e < N; e++)
			for (int i = 0; i < fill[e]; i++) {
				z += exp(sc[e * Q + i] - m);
				if (e == pos)
					zp += exp(sc[e * Q + i] - mp);
			}
		double lse = m + log(z), lsep = mp + log(zp);
		sum += lse - lsep;
		for (int e = 0; e < N; e++)
			for (int i = 0; i < fill[e]; i++) {
				double d = exp(sc[e * Q + i] - lse) - (e == pos ? exp(sc[e * Q + i] - lsep) : 0.0);
				for (int j = 0; j < D; j++)
					dq[t * D + j] += coef / valid * d / tau * keys[(e * Q + i) * D + j];
			}
	}
	double loss = sum / valid, *got = down(tzn);
	check("contrastive znorm", got, zn, T, tol);
	free(got);
	got = down(tq);
	check("contrastive q", got, q, T * D, tol);
	free(got);
	got = down(tl);
	check("contrastive loss", got, &loss, 1, exact ? 1e-5 : 3e-2);
	free(got);

	double *dx0 = vec(T * C, 0.01), *dp0 = vec(D * C, 0.01), dz[T * D], rdx[T * C] = {0}, rdp[D * C] = {0};
	struct tensor tdx = up(dx0, at, 2, T, C, 1), tdp = up(dp0, DTYPE_F32, 2, D, C, 1);
	contrastive_backward(tdx, tdp, tx, tq, tzn, tproj, tqueue, tfill, ttopk, tau, coef);
	for (int t = 0; t < T; t++) {
		double qd = 0.0;
		for (int j = 0; j < D; j++)
			qd += q[t * D + j] * dq[t * D + j];
		for (int j = 0; j < D; j++)
			dz[t * D + j] = (dq[t * D + j] - q[t * D + j] * qd) / zn[t];
	}
	for (int t = 0; t < T; t++)
		for (int j = 0; j < D; j++)
			for (int c = 0; c < C; c++) {
				rdp[j * C + c] += dz[t * D + j] * x[t * C + c];
				rdx[t * C + c] += dz[t * D + j] * proj[j * C + c];
			}
	got = down(tdp);
	check("contrastive dproj", minus(got, dp0, D * C), rdp, D * C, btol);
	free(got);
	got = down(tdx);
	check("contrastive dx", minus(got, dx0, T * C), rdx, T * C, btol);
	free(got);
	struct tensor ts[] = {tx, tproj, tqueue, tfill, ttopk, tq, tzn, tl, tdx, tdp};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
		tensor_free(ts[i]);
	double *hs[] = {x, proj, keys, dx0, dp0};
	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
		free(hs[i]);
}

static void test_contrastive(void **state)
{
	(void)state;
	NEED_GPU();
	contrastive_run(DTYPE_F32, DTYPE_F32);
	contrastive_run(DTYPE_BF16, DTYPE_BF16);
	contrastive_run(DTYPE_F32, DTYPE_BF16);
}

// Tokens in order, each into its top-1 expert's ring at head, head advancing mod Q, fill capped at Q; a batch
// of 2500 tokens wraps the rings many times (a later token wins its slot).
static void queue_run(enum dtype qt, int T)
{
	enum { N = 4, Q = 8, D = 5, K = 2 };
	int32_t head[N] = {0, 5, 7, 2}, fill[N] = {0, 8, 3, 8}, *topk = malloc((size_t)T * K * sizeof(int32_t));
	for (int t = 0; t < T; t++) {
		topk[t * K] = rng_next(&R) % 10 < 6 ? 1 : (int32_t)(rng_next(&R) % N);
		topk[t * K + 1] = 0;
	}
	double *keys = vec(N * Q * D, 1), *q = vec((size_t)T * D, 1);
	struct tensor tqueue = up(keys, DTYPE_F16, 3, N, Q, D), tq = up(q, qt, 2, T, D, 1);
	struct tensor th = up_i32(head, N), tf = up_i32(fill, N),
		      tk = tensor_reshape(up_i32(topk, (int64_t)T * K), 2, T, K, 1);
	double *qh = malloc((size_t)T * D * sizeof(double));
	memcpy(qh, q, (size_t)T * D * sizeof(double));
	round_as(DTYPE_F16, qh, (int64_t)T * D);
	for (int t = 0; t < T; t++) {
		int e = topk[t * K];
		for (int j = 0; j < D; j++)
			keys[(e * Q + head[e]) * D + j] = qh[t * D + j];
		head[e] = (head[e] + 1) % Q;
		fill[e] += fill[e] < Q;
	}
	queue_push(tqueue, th, tf, tq, tk);
	double *got = down(tqueue);
	check("queue", got, keys, N * Q * D, 0.0);
	int32_t gh[N], gf[N];
	down_i32(gh, th);
	down_i32(gf, tf);
	for (int e = 0; e < N; e++) {
		assert_int_equal(gh[e], head[e]);
		assert_int_equal(gf[e], fill[e]);
	}
	struct tensor ts[] = {tqueue, tq, th, tf, tk};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
		tensor_free(ts[i]);
	free(got);
	free(keys);
	free(q);
	free(qh);
	free(topk);
}

static void test_queue_push(void **state)
{
	(void)state;
	NEED_GPU();
	queue_run(DTYPE_F32, 37);
	queue_run(DTYPE_BF16, 2500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_attention_f32), cmocka_unit_test(test_attention_bf16),
	    cmocka_unit_test(test_lora),          cmocka_unit_test(test_task_gate),
	    cmocka_unit_test(test_router),        cmocka_unit_test(test_contrastive),
	    cmocka_unit_test(test_queue_push),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
