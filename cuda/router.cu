// router.cu — the adapter's gates (lib/ops.h): MOELoRA's task gate, the token router of MING-MOE's
// MoLoRALinear (top-k of x·wᵀ + b, softmax over the kept), the Switch load-balancing loss (Fedus et al. 2021,
// eq. 4) and its gradient, and the expert load counters.  The math is lib/adapter_linear.c's (gates_forward,
// the router part of adapter_linear_backward, adapter_backward_finish, adapter_begin's task gate).
//
// Determinism: every floating-point sum is done by one thread in index order, or by a block over a fixed
// thread-to-element assignment followed by a fixed tree (adapter_util.cuh block_sum_*); the products are cuBLAS
// on one stream.  Integer counts use atomics (their result does not depend on order).
#include "adapter_util.cuh"

// ----------------------------------------------------------------------------
// the task gate (MOELoRA peft_model.py Gate): gate (NT,N) = softmax over N of emb (NT,D) · wg (N,D)ᵀ

// One block per task; the N logits go to shared memory, one thread takes the softmax in index order (N is the
// number of experts, a handful).
__global__ void task_gate_forward_kernel(float *gate, const float *emb, const float *wg, int N, int D)
{
	extern __shared__ float u[];   // N
	int k = blockIdx.x;
	for (int e = threadIdx.x; e < N; e += blockDim.x) {
		float v = 0.0f;
		for (int j = 0; j < D; j++)
			v += wg[(int64_t)e * D + j] * emb[(int64_t)k * D + j];
		u[e] = v;
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		float m = -INFINITY, z = 0.0f;
		for (int e = 0; e < N; e++)
			m = fmaxf(m, u[e]);
		for (int e = 0; e < N; e++)
			z += (u[e] = expf(u[e] - m));
		for (int e = 0; e < N; e++)
			gate[(int64_t)k * N + e] = u[e] / z;
	}
}

// du (NT,N) = w ⊙ (dw − Σ w·dw), one thread per task.
__global__ void task_gate_du_kernel(float *du, const float *gate, const float *dgate, int NT, int N)
{
	int k = blockIdx.x * blockDim.x + threadIdx.x;
	if (k >= NT)
		return;
	const float *w = gate + (int64_t)k * N, *dw = dgate + (int64_t)k * N;
	float sum = 0.0f;
	for (int e = 0; e < N; e++)
		sum += w[e] * dw[e];
	for (int e = 0; e < N; e++)
		du[(int64_t)k * N + e] = w[e] * (dw[e] - sum);
}

// dwg (N,D) += duᵀ·emb (sum over tasks in order) and demb (NT,D) += du·wg (sum over experts in order): one
// thread per output element, indices [0, N·D) for dwg then [N·D, N·D + NT·D) for demb.
__global__ void task_gate_grad_kernel(float *dwg, float *demb, const float *du, const float *emb, const float *wg,
				      int NT, int N, int D)
{
	int64_t n_w = dwg ? (int64_t)N * D : 0, n_e = demb ? (int64_t)NT * D : 0;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_w + n_e;
	     i += (int64_t)gridDim.x * blockDim.x) {
		if (i < n_w) {
			int e = (int)(i / D), j = (int)(i % D);
			float acc = 0.0f;
			for (int k = 0; k < NT; k++)
				acc += du[(int64_t)k * N + e] * emb[(int64_t)k * D + j];
			dwg[i] += acc;
		} else {
			int64_t ie = i - n_w;
			int k = (int)(ie / D), j = (int)(ie % D);
			float acc = 0.0f;
			for (int e = 0; e < N; e++)
				acc += du[(int64_t)k * N + e] * wg[(int64_t)e * D + j];
			demb[ie] += acc;
		}
	}
}

// emb (NT,D), wg (N,D) -> gate (NT,N)
extern "C" void cuda_task_gate_forward(struct tensor gate, struct tensor emb, struct tensor wg)
{
	const char *op = "task_gate_forward";
	need_tensor(gate, DTYPE_F32, 0, op, "gate");
	need_tensor(emb, DTYPE_F32, 0, op, "emb");
	need_tensor(wg, DTYPE_F32, 0, op, "wg");
	int NT = (int)emb.dim[0], D = (int)emb.dim[1], N = (int)wg.dim[0];
	if (wg.dim[1] != D || gate.dim[0] != NT || gate.dim[1] != N)
		die(EXIT_FAIL, "%s: emb (%d,%d), wg (%lld,%lld), gate (%lld,%lld) do not match", op, NT, D,
		    (long long)wg.dim[0], (long long)wg.dim[1], (long long)gate.dim[0], (long long)gate.dim[1]);
	if (NT == 0 || N == 0)
		return;
	task_gate_forward_kernel<<<NT, 64, (size_t)N * sizeof(float), cuda_stream()>>>(
	    (float *)gate.data, (const float *)emb.data, (const float *)wg.data, N, D);
	CUDA_LAUNCHED();
}

// dgate (NT,N) -> demb (NT,D) +=, dwg (N,D) += (either may be NONE)
extern "C" void cuda_task_gate_backward(struct tensor demb, struct tensor dwg, struct tensor dgate, struct tensor gate,
					struct tensor emb, struct tensor wg)
{
	const char *op = "task_gate_backward";
	need_tensor(demb, DTYPE_F32, 1, op, "demb");
	need_tensor(dwg, DTYPE_F32, 1, op, "dwg");
	need_tensor(dgate, DTYPE_F32, 0, op, "dgate");
	need_tensor(gate, DTYPE_F32, 0, op, "gate");
	need_tensor(emb, DTYPE_F32, 0, op, "emb");
	need_tensor(wg, DTYPE_F32, 0, op, "wg");
	int NT = (int)emb.dim[0], D = (int)emb.dim[1], N = (int)wg.dim[0];
	if (wg.dim[1] != D || gate.dim[0] != NT || gate.dim[1] != N || dgate.dim[0] != NT || dgate.dim[1] != N ||
	    (demb.data && (demb.dim[0] != NT || demb.dim[1] != D)) ||
	    (dwg.data && (dwg.dim[0] != N || dwg.dim[1] != D)))
		die(EXIT_FAIL, "%s: shapes do not match emb (%d,%d) and wg (%d,%d)", op, NT, D, N, D);
	if (NT == 0 || N == 0 || (!demb.data && !dwg.data))
		return;
	float *du = (float *)cuda_scratch(SCRATCH_ROUTER_1, (size_t)NT * N * sizeof(float));
	task_gate_du_kernel<<<(NT + 127) / 128, 128, 0, cuda_stream()>>>(du, (const float *)gate.data,
									 (const float *)dgate.data, NT, N);
	CUDA_LAUNCHED();
	int64_t n = (dwg.data ? (int64_t)N * D : 0) + (demb.data ? (int64_t)NT * D : 0);
	task_gate_grad_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(
	    (float *)dwg.data, (float *)demb.data, du, (const float *)emb.data, (const float *)wg.data, NT, N, D);
	CUDA_LAUNCHED();
}

// ----------------------------------------------------------------------------
// the token router

// Per token (one thread each): logits (in probs, from the product) + b; the K largest, ties to the lower index,
// best first (lib/adapter_linear.c top_k); gates: softmax over the kept logits at the chosen experts, 0 at the
// other routed ones, 1 at the shared experts e ≥ N; probs: the full softmax in place of the logits.
__global__ void router_select_kernel(float *gates, float *probs, int32_t *topk, const float *b, int64_t T, int N, int E,
				     int K)
{
	for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < T; t += (int64_t)gridDim.x * blockDim.x) {
		float *lg = probs + t * N, *g = gates + t * E;
		int32_t *idx = topk + t * K;
		if (b)
			for (int e = 0; e < N; e++)
				lg[e] += b[e];
		for (int j = 0; j < K; j++) {
			int best = -1;
			for (int e = 0; e < N; e++) {
				int taken = 0;
				for (int i = 0; i < j; i++)
					taken |= idx[i] == e;
				if (!taken && (best < 0 || lg[e] > lg[best]))
					best = e;
			}
			idx[j] = best;
		}
		for (int e = 0; e < E; e++)
			g[e] = e < N ? 0.0f : 1.0f;   // shared experts always on, weight 1 (MING dev share_experts)
		float top = lg[idx[0]], z = 0.0f;
		for (int j = 0; j < K; j++)
			z += (g[idx[j]] = expf(lg[idx[j]] - top));
		for (int j = 0; j < K; j++)
			g[idx[j]] /= z;
		float zz = 0.0f;
		for (int e = 0; e < N; e++)
			zz += (lg[e] = expf(lg[e] - top));
		for (int e = 0; e < N; e++)
			lg[e] /= zz;
	}
}

// x (T,C), w (N,C), b (N) -> gates (T,E), probs (T,N), topk (T,K)
extern "C" void cuda_router_forward(struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x,
				    struct tensor w, struct tensor b)
{
	const char *op = "router_forward";
	need_tensor(gates, DTYPE_F32, 0, op, "gates");
	need_tensor(probs, DTYPE_F32, 0, op, "probs");
	need_tensor(topk, DTYPE_I32, 0, op, "topk");
	need_tensor(w, DTYPE_F32, 0, op, "w");
	need_tensor(b, DTYPE_F32, 1, op, "b");
	if (!is_act_dtype(x.dtype))
		die(EXIT_FAIL, "%s: x is %s (bf16 or f32)", op, dtype_name(x.dtype));
	int64_t T = x.dim[0], C = x.dim[1];
	int N = (int)w.dim[0], E = (int)gates.dim[1], K = (int)topk.dim[1];
	if (w.dim[1] != C || probs.dim[0] != T || probs.dim[1] != N || gates.dim[0] != T || E < N || topk.dim[0] != T ||
	    K < 1 || K > N || (b.data && b.dim[0] != N))
		die(EXIT_FAIL,
		    "%s: shapes do not match: x (%lld,%lld), w (%d,%lld), gates (%lld,%d), topk (%lld,%d)", op,
		    (long long)T, (long long)C, N, (long long)w.dim[1], (long long)gates.dim[0], E,
		    (long long)topk.dim[0], K);
	if (T == 0)
		return;
	// logits (T,N) = x·wᵀ, into probs (fp32 out; a bf16 copy of w when x is bf16)
	const void *w_op = as_dtype(w, x.dtype, SCRATCH_ROUTER_0, op);
	gemm_rm(op, 0, 1, T, N, C, 1.0f, x.data, x.dtype, C, w_op, x.dtype, C, 0.0f, probs.data, DTYPE_F32, N);
	router_select_kernel<<<cuda_blocks(T, 128), 128, 0, cuda_stream()>>>(
	    (float *)gates.data, (float *)probs.data, (int32_t *)topk.data, (const float *)b.data, T, N, E, K);
	CUDA_LAUNCHED();
}

// ----------------------------------------------------------------------------
// the load-balancing loss

// One block: stats[e] = top-k assignments to expert e (shared-memory integer counts: order-independent),
// stats[N+e] = Σ_t probs[t,e] (a fixed-order block sum in double, one expert after another).
__global__ void router_stats_kernel(double *stats, const float *probs, const int32_t *topk, int64_t T, int N, int K)
{
	extern __shared__ double rs_shared[];   // blockDim.x doubles, then N ints
	int *cnt = (int *)(rs_shared + blockDim.x);
	for (int e = threadIdx.x; e < N; e += blockDim.x)
		cnt[e] = 0;
	__syncthreads();
	for (int64_t i = threadIdx.x; i < T * K; i += blockDim.x) {
		int e = topk[i];
		if (e >= 0 && e < N)
			atomicAdd(&cnt[e], 1);
	}
	__syncthreads();
	for (int e = 0; e < N; e++) {
		double p = 0.0;
		for (int64_t t = threadIdx.x; t < T; t += blockDim.x)
			p += probs[t * N + e];
		double P = block_sum_double(p, rs_shared);
		if (threadIdx.x == 0) {
			stats[e] = (double)cnt[e];
			stats[N + e] = P;
		}
	}
}

// probs (T,N), topk (T,K) -> stats (2N) f64: assignments and probabilities summed per expert
extern "C" void cuda_router_stats(struct tensor stats, struct tensor probs, struct tensor topk)
{
	const char *op = "router_stats";
	need_tensor(stats, DTYPE_F64, 0, op, "stats");
	need_tensor(probs, DTYPE_F32, 0, op, "probs");
	need_tensor(topk, DTYPE_I32, 0, op, "topk");
	int64_t T = probs.dim[0];
	int N = (int)probs.dim[1], K = (int)topk.dim[1];
	if (topk.dim[0] != T || tensor_numel(stats) != 2 * (int64_t)N)
		die(EXIT_FAIL, "%s: probs (%lld,%d), topk (%lld,%d), stats (%lld) do not match", op, (long long)T, N,
		    (long long)topk.dim[0], K, (long long)tensor_numel(stats));
	int threads = 512;
	router_stats_kernel<<<1, threads, threads * sizeof(double) + (size_t)N * sizeof(int), cuda_stream()>>>(
	    (double *)stats.data, (const float *)probs.data, (const int32_t *)topk.data, T, N, K);
	CUDA_LAUNCHED();
}

// ----------------------------------------------------------------------------
// router backward

// Per token (one thread each), the CPU backend's router backward: dlogits on the kept experts
// g_k·(dG_k − Σ_kept g·dG) (top-k itself is piecewise constant), plus lb_coef·p ⊙ (f − Σ_e p_e f_e) with
// f_e = stats_e / n the micro-batch's assignment shares and lb_coef = lb_weight·N/n.  Written f32 into dlog, and in the activation dtype into
// dlog_act when that is not NULL (the operand of the bf16 products).
template <typename E>
__global__ void router_dlogits_kernel(float *dlog, E *dlog_act, const float *dgates, const float *gates,
				      const float *probs, const int32_t *topk, const double *stats, double n_tokens,
				      int64_t T, int N, int n_exp, int K, float lb_coef)
{
	for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < T; t += (int64_t)gridDim.x * blockDim.x) {
		float *d = dlog + t * N;
		const float *g = gates + t * n_exp, *p = probs + t * N;
		const int32_t *idx = topk + t * K;
		for (int e = 0; e < N; e++)
			d[e] = 0.0f;
		if (dgates) {
			const float *dg = dgates + t * n_exp;
			float sum = 0.0f;
			for (int j = 0; j < K; j++)
				sum += g[idx[j]] * dg[idx[j]];
			for (int j = 0; j < K; j++)
				d[idx[j]] = g[idx[j]] * (dg[idx[j]] - sum);
		}
		if (lb_coef != 0.0f) {
			// d(N Σ f_e P_e)/dlogit_t = (N/n)·p_t ⊙ (f − Σ_e p_te f_e)
			float pf = 0.0f;
			for (int e = 0; e < N; e++)
				pf += p[e] * (float)(stats[e] / n_tokens);
			for (int e = 0; e < N; e++)
				d[e] += lb_coef * p[e] * ((float)(stats[e] / n_tokens) - pf);
		}
		if (dlog_act)
			for (int e = 0; e < N; e++)
				dlog_act[t * N + e] = from_float<E>(d[e]);
	}
}

// db (N) += Σ_t dlog[t,e]: one block per expert, a fixed-order block sum.
__global__ void router_db_kernel(float *db, const float *dlog, int64_t T, int N)
{
	__shared__ float buf[256];
	int e = blockIdx.x;
	float s = 0.0f;
	for (int64_t t = threadIdx.x; t < T; t += blockDim.x)
		s += dlog[t * N + e];
	float total = block_sum_float(s, buf);
	if (threadIdx.x == 0)
		db[e] += total;
}

// dgates (T,E) and the lb loss weighted lb_weight, with the micro-batch's stats (2N) over n_tokens -> dx (T,C) +=,
// dw (N,C) +=, db (N) += (dx may be NONE)
extern "C" void cuda_router_backward(struct tensor dx, struct tensor dw, struct tensor db, struct tensor dgates,
				     struct tensor gates, struct tensor probs, struct tensor topk, struct tensor x,
				     struct tensor w, struct tensor stats, double n_tokens, double lb_weight)
{
	const char *op = "router_backward";
	need_tensor(stats, DTYPE_F64, 0, op, "stats");
	need_tensor(dw, DTYPE_F32, 1, op, "dw");
	need_tensor(db, DTYPE_F32, 1, op, "db");
	need_tensor(dgates, DTYPE_F32, 1, op, "dgates");
	need_tensor(gates, DTYPE_F32, 0, op, "gates");
	need_tensor(probs, DTYPE_F32, 0, op, "probs");
	need_tensor(topk, DTYPE_I32, 0, op, "topk");
	need_tensor(w, DTYPE_F32, 0, op, "w");
	if (!is_act_dtype(x.dtype))
		die(EXIT_FAIL, "%s: x is %s (bf16 or f32)", op, dtype_name(x.dtype));
	int64_t T = x.dim[0], C = x.dim[1];
	int N = (int)w.dim[0], n_exp = (int)gates.dim[1], K = (int)topk.dim[1];
	if (w.dim[1] != C || probs.dim[0] != T || probs.dim[1] != N || gates.dim[0] != T || n_exp < N ||
	    topk.dim[0] != T || (dgates.data && (dgates.dim[0] != T || dgates.dim[1] != n_exp)) ||
	    (dw.data && (dw.dim[0] != N || dw.dim[1] != C)) || (db.data && db.dim[0] != N) ||
	    (dx.data && (dx.dim[0] != T || dx.dim[1] != C)))
		die(EXIT_FAIL, "%s: shapes do not match x (%lld,%lld) and w (%d,%lld)", op, (long long)T,
		    (long long)C, N, (long long)w.dim[1]);
	if (T == 0)
		return;
	enum dtype at = x.dtype;
	struct carve cv = {0, NULL};
	size_t o_dlog = carve_add(&cv, (size_t)(T * N) * sizeof(float));
	size_t o_act = carve_add(&cv, at == DTYPE_F32 ? 0 : (size_t)(T * N) * dtype_size(at));
	carve_take(&cv, SCRATCH_ROUTER_1);
	float *dlog = (float *)carve_at(&cv, o_dlog);
	void *dlog_act = at == DTYPE_F32 ? (void *)dlog : carve_at(&cv, o_act);
	float lb_coef = n_tokens > 0 ? (float)(lb_weight * N / n_tokens) : 0.0f;
	unsigned grid = cuda_blocks(T, 128);
	if (at == DTYPE_BF16)
		router_dlogits_kernel<__nv_bfloat16><<<grid, 128, 0, cuda_stream()>>>(
		    dlog, (__nv_bfloat16 *)dlog_act, (const float *)dgates.data, (const float *)gates.data,
		    (const float *)probs.data, (const int32_t *)topk.data, (const double *)stats.data, n_tokens, T, N,
		    n_exp, K, lb_coef);
	else
		router_dlogits_kernel<float><<<grid, 128, 0, cuda_stream()>>>(
		    dlog, NULL, (const float *)dgates.data, (const float *)gates.data, (const float *)probs.data,
		    (const int32_t *)topk.data, (const double *)stats.data, n_tokens, T, N, n_exp, K, lb_coef);
	CUDA_LAUNCHED();
	if (db.data) {
		router_db_kernel<<<N, 256, 0, cuda_stream()>>>((float *)db.data, dlog, T, N);
		CUDA_LAUNCHED();
	}
	// dw (N,C) += dlogᵀ (N,T) · x (T,C);  dx (T,C) += dlog (T,N) · w (N,C)
	if (dw.data)
		gemm_rm(op, 1, 0, N, C, T, 1.0f, dlog_act, at, N, x.data, at, C, 1.0f, dw.data, DTYPE_F32, C);
	if (dx.data) {
		const void *w_op = as_dtype(w, at, SCRATCH_ROUTER_0, op);
		gemm_rm(op, 0, 0, T, C, N, 1.0f, dlog_act, at, N, w_op, at, C, 1.0f, dx.data, dx.dtype, C);
	}
}

// ----------------------------------------------------------------------------
// expert load statistics

__global__ void router_count_kernel(int32_t *counts, int32_t *task_counts, const int32_t *topk, const int32_t *tok_task,
				    int64_t T, int K, int N, int NT)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < T * K;
	     i += (int64_t)gridDim.x * blockDim.x) {
		int e = topk[i];
		if (e < 0 || e >= N)
			continue;
		if (counts)
			atomicAdd(&counts[e], 1);
		if (task_counts) {
			int task = tok_task[i / K];
			if (task >= 0 && task < NT)
				atomicAdd(&task_counts[(int64_t)task * N + e], 1);
		}
	}
}

// topk (T,K), tok_task (T) -> counts (N) +=, task_counts (NT,N) += (either may be NONE)
extern "C" void cuda_router_count(struct tensor counts, struct tensor task_counts, struct tensor topk,
				  struct tensor tok_task)
{
	const char *op = "router_count";
	need_tensor(counts, DTYPE_I32, 1, op, "counts");
	need_tensor(task_counts, DTYPE_I32, 1, op, "task_counts");
	need_tensor(topk, DTYPE_I32, 0, op, "topk");
	need_tensor(tok_task, DTYPE_I32, !task_counts.data, op, "tok_task");
	int64_t T = topk.dim[0];
	int K = (int)topk.dim[1];
	int N = counts.data ? (int)counts.dim[0] : (int)task_counts.dim[1];
	int NT = task_counts.data ? (int)task_counts.dim[0] : 0;
	if (task_counts.data && (task_counts.dim[1] != N || tok_task.dim[0] != T))
		die(EXIT_FAIL, "%s: task_counts (%lld,%lld) or tok_task (%lld) do not match topk (%lld,%d)", op,
		    (long long)task_counts.dim[0], (long long)task_counts.dim[1], (long long)tok_task.dim[0],
		    (long long)T, K);
	if (T == 0 || (!counts.data && !task_counts.data))
		return;
	router_count_kernel<<<cuda_blocks(T * K, 256), 256, 0, cuda_stream()>>>(
	    (int32_t *)counts.data, (int32_t *)task_counts.data, (const int32_t *)topk.data,
	    (const int32_t *)tok_task.data, T, K, N, NT);
	CUDA_LAUNCHED();
}
