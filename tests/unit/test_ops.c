// test_ops.c — each CPU op against a direct, unoptimised evaluation of its formula, at shapes where the
// optimisations matter: the LM-head/cross-entropy tiles not dividing the rows or the vocabulary, the online
// softmax across document boundaries and GQA groups, RMSNorm and RoPE on odd sizes.
#include "unit.h"

#include <math.h>
#include <string.h>

#include "ops.h"
#include "rng.h"

static float *randn(struct rng *r, size_t n, float scale)
{
	float *x = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		x[i] = scale * (float)rng_normal(r);
	return x;
}

static void assert_close(const char *what, const float *got, const double *want, size_t n, double tol)
{
	for (size_t i = 0; i < n; i++)
		if (fabs((double)got[i] - want[i]) > tol * (1.0 + fabs(want[i])))
			fail_msg("%s[%zu]: got %.7g, want %.7g", what, i, got[i], want[i]);
}

// Cross-entropy with 130 rows and a vocabulary of 8200 through the CPU backend's 128 × 8192 tiles: partial
// tiles on both axes.
static void test_lmhead_ce_tiles(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 1, 0);
	enum { T = 130, C = 9, V = 8200 };
	float *x = randn(&r, (size_t)T * C, 1.0f), *w = randn(&r, (size_t)V * C, 1.0f);
	int32_t targets[T];
	for (int t = 0; t < T; t++)
		targets[t] = (int32_t)(rng_next(&r) % (uint64_t)V);
	float losses[T], lse[T];
	lmhead_ce_forward(tensor1(losses, T), tensor1(lse, T), tensor2(x, T, C), tensor2(w, V, C), tensor_i32(targets, T));
	double want_loss[T], want_lse[T];
	static double logits[V];
	for (int t = 0; t < T; t++) {
		double m = -INFINITY, s = 0.0;
		for (int v = 0; v < V; v++) {
			logits[v] = 0.0;
			for (int c = 0; c < C; c++)
				logits[v] += (double)x[t * C + c] * w[v * C + c];
			m = fmax(m, logits[v]);
		}
		for (int v = 0; v < V; v++)
			s += exp(logits[v] - m);
		want_lse[t] = m + log(s);
		want_loss[t] = want_lse[t] - logits[targets[t]];
	}
	assert_close("lse", lse, want_lse, (size_t)T, 1e-5);
	assert_close("loss", losses, want_loss, (size_t)T, 1e-5);
	free(x);
	free(w);
}

// The masked softmax attention written out in doubles: want (T,NH,HD), want_lse (NH,T).
static void naive_attention(const float *q, const float *k, const float *v, int T, int NH, int NKV, int HD,
			    const int32_t *offsets, int n_docs, double *want, double *want_lse)
{
	double *s = malloc((size_t)T * sizeof(double));
	memset(want, 0, (size_t)T * NH * HD * sizeof(double));
	for (int t = 0; t < T; t++) {
		int start = 0;
		for (int d = 0; d < n_docs; d++)
			if (offsets[d] <= t)
				start = offsets[d];
		for (int h = 0; h < NH; h++) {
			int kvh = h / (NH / NKV);
			double m = -INFINITY, z = 0.0;
			for (int j = start; j <= t; j++) {
				s[j] = 0.0;
				for (int d = 0; d < HD; d++)
					s[j] += (double)q[(t * NH + h) * HD + d] * k[(j * NKV + kvh) * HD + d];
				s[j] /= sqrt((double)HD);
				m = fmax(m, s[j]);
			}
			for (int j = start; j <= t; j++)
				z += exp(s[j] - m);
			for (int j = start; j <= t; j++)
				for (int d = 0; d < HD; d++)
					want[(t * NH + h) * HD + d] += exp(s[j] - m) / z * v[(j * NKV + kvh) * HD + d];
			want_lse[h * T + t] = m + log(z);
		}
	}
	free(s);
}

// Attention over three packed documents with GQA (6 query heads on 2 kv heads), against the masked softmax
// written out in doubles; and the q_offset form (queries after cached keys) against the same rows.  T = 12 takes
// the streaming path, T = 40 the matrix-product one (blocks of 64 queries, documents cut inside them).
static void check_attention_documents(int T, const int32_t offsets[4], int tail)
{
	struct rng r;
	rng_seed(&r, 2, 0);
	int NH = 6, NKV = 2, HD = 4;
	float *q = randn(&r, (size_t)T * NH * HD, 2.0f), *k = randn(&r, (size_t)T * NKV * HD, 2.0f),
	      *v = randn(&r, (size_t)T * NKV * HD, 1.0f);
	float *out = calloc((size_t)T * NH * HD, sizeof(float)), *lse = malloc((size_t)NH * T * sizeof(float));
	double *want = calloc((size_t)T * NH * HD, sizeof(double)), *want_lse = malloc((size_t)NH * T * sizeof(double));
	naive_attention(q, k, v, T, NH, NKV, HD, offsets, 3, want, want_lse);
	attention_forward(tensor3(out, T, NH, HD), tensor2(lse, NH, T), tensor3(q, T, NH, HD), tensor3(k, T, NKV, HD),
			  tensor3(v, T, NKV, HD), tensor_i32((int32_t *)offsets, 4), TENSOR_NONE, 3, 0);
	assert_close("attention lse", lse, want_lse, (size_t)NH * T, 1e-5);
	assert_close("attention out", out, want, (size_t)T * NH * HD, 1e-5);

	// the last TAIL queries of the last document, given after its first keys (as from a KV cache)
	int a = offsets[2], n = T - a;
	float *out_tail = malloc((size_t)tail * NH * HD * sizeof(float));
	int32_t one_doc[2] = {0, n};
	attention_forward(tensor3(out_tail, tail, NH, HD), TENSOR_NONE, tensor3(q + (T - tail) * NH * HD, tail, NH, HD),
			  tensor3(k + a * NKV * HD, n, NKV, HD), tensor3(v + a * NKV * HD, n, NKV, HD),
			  tensor_i32(one_doc, 2), TENSOR_NONE, 1, n - tail);
	assert_close("attention with q_offset", out_tail, want + (T - tail) * NH * HD, (size_t)tail * NH * HD, 1e-5);
	free(out_tail);
	free(want);
	free(want_lse);
	free(lse);
	free(out);
	free(q);
	free(k);
	free(v);
}

static void test_attention_documents(void **state)
{
	(void)state;
	int32_t short_docs[4] = {0, 5, 6, 12};   // documents of 5, 1 and 6 tokens
	check_attention_documents(12, short_docs, 4);
	int32_t long_docs[4] = {0, 17, 18, 40};  // 17, 1 and 22
	check_attention_documents(40, long_docs, 20);
}

// Documents longer than one key block of the online softmax (ATT_BLOCK = 128 in ops_cpu.c), with scores
// large enough that the running max changes from block to block.
static void test_attention_long_documents(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 5, 0);
	int T = 400, NH = 2, NKV = 1, HD = 8;
	int32_t offsets[3] = {0, 130, 400};
	float *q = randn(&r, (size_t)T * NH * HD, 2.0f), *k = randn(&r, (size_t)T * NKV * HD, 2.0f),
	      *v = randn(&r, (size_t)T * NKV * HD, 1.0f);
	float *out = malloc((size_t)T * NH * HD * sizeof(float)), *lse = malloc((size_t)NH * T * sizeof(float));
	double *want = malloc((size_t)T * NH * HD * sizeof(double)), *want_lse = malloc((size_t)NH * T * sizeof(double));
	naive_attention(q, k, v, T, NH, NKV, HD, offsets, 2, want, want_lse);
	attention_forward(tensor3(out, T, NH, HD), tensor2(lse, NH, T), tensor3(q, T, NH, HD), tensor3(k, T, NKV, HD),
			  tensor3(v, T, NKV, HD), tensor_i32(offsets, 3), TENSOR_NONE, 2, 0);
	assert_close("long attention out", out, want, (size_t)T * NH * HD, 1e-5);
	assert_close("long attention lse", lse, want_lse, (size_t)NH * T, 1e-5);
	// one query at a time after its cached keys: the streaming path over several key blocks
	for (int t = 300; t < T; t += 37) {
		int32_t doc[2] = {0, t + 1 - 130};
		float row[2 * 8];
		attention_forward(tensor3(row, 1, NH, HD), TENSOR_NONE, tensor3(q + t * NH * HD, 1, NH, HD),
				  tensor3(k + 130 * NKV * HD, t + 1 - 130, NKV, HD), tensor3(v + 130 * NKV * HD, t + 1 - 130, NKV, HD),
				  tensor_i32(doc, 2), TENSOR_NONE, 1, t - 130);
		assert_close("long attention, one query", row, want + t * NH * HD, (size_t)NH * HD, 1e-5);
	}
	free(q);
	free(k);
	free(v);
	free(out);
	free(lse);
	free(want);
	free(want_lse);
}

static void test_rmsnorm_rope_swiglu(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 3, 0);
	int N = 5, D = 6;
	float *x = randn(&r, (size_t)N * D, 3.0f), *w = randn(&r, (size_t)D, 1.0f), y[30], rstd[5];
	rmsnorm_forward(tensor2(y, N, D), tensor1(rstd, N), tensor2(x, N, D), tensor1(w, D), 1e-5f);
	double want[30];
	for (int n = 0; n < N; n++) {
		double ss = 0.0;
		for (int i = 0; i < D; i++)
			ss += (double)x[n * D + i] * x[n * D + i];
		for (int i = 0; i < D; i++)
			want[n * D + i] = w[i] * x[n * D + i] / sqrt(ss / D + 1e-5);
	}
	assert_close("rmsnorm", y, want, (size_t)N * D, 1e-5);

	// RoPE on (T=3, H=2, HD=6): pairs (j, j+3) rotated by position · inv_freq[j]
	int32_t pos[3] = {0, 7, 2};
	float inv_freq[3] = {1.0f, 0.1f, 0.01f}, rot[36];
	float *z = randn(&r, 36, 1.0f);
	memcpy(rot, z, sizeof rot);
	rope_forward(tensor3(rot, 3, 2, 6), tensor_i32(pos, 3), tensor1(inv_freq, 3));
	double want_rot[36];
	for (int t = 0; t < 3; t++)
		for (int h = 0; h < 2; h++)
			for (int j = 0; j < 3; j++) {
				const float *row = z + (t * 2 + h) * 6;
				double a = pos[t] * (double)inv_freq[j];
				want_rot[(t * 2 + h) * 6 + j] = row[j] * cos(a) - row[j + 3] * sin(a);
				want_rot[(t * 2 + h) * 6 + j + 3] = row[j + 3] * cos(a) + row[j] * sin(a);
			}
	assert_close("rope", rot, want_rot, 36, 1e-5);

	float *g = randn(&r, 8, 2.0f), *u = randn(&r, 8, 1.0f), s[8];
	double want_s[8];
	swiglu_forward(tensor1(s, 8), tensor1(g, 8), tensor1(u, 8));
	for (int i = 0; i < 8; i++)
		want_s[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
	assert_close("swiglu", s, want_s, 8, 1e-6);
	free(x);
	free(w);
	free(z);
	free(g);
	free(u);
}

static void test_matmul_bias(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 4, 0);
	int T = 3, C = 5, OC = 4;
	float *x = randn(&r, 15, 1.0f), *w = randn(&r, 20, 1.0f), *b = randn(&r, 4, 1.0f), y[12];
	matmul_forward(tensor2(y, T, OC), tensor2(x, T, C), tensor2(w, OC, C), tensor1(b, OC));
	double want[12];
	for (int t = 0; t < T; t++)
		for (int o = 0; o < OC; o++) {
			want[t * OC + o] = b[o];
			for (int c = 0; c < C; c++)
				want[t * OC + o] += (double)x[t * C + c] * w[o * C + c];
		}
	assert_close("matmul", y, want, 12, 1e-5);
	free(x);
	free(w);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lmhead_ce_tiles),
		cmocka_unit_test(test_attention_documents),
		cmocka_unit_test(test_attention_long_documents),
		cmocka_unit_test(test_rmsnorm_rope_swiglu),
		cmocka_unit_test(test_matmul_bias),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
