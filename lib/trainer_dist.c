// trainer_dist.c — what the ranks of a data-parallel run exchange (dist.h), so that N ranks train the adapter
// one rank would, within fp32 summation-order rounding.
//
// Every micro-batch of the global batch is split into the ranks' parts (shard_reader_next_part: contiguous
// blocks of its sequences, rank 0's first), so the parts in rank order are the one-rank micro-batch.  The
// objective of a micro-batch is not a sum over its tokens (a mean over its targets; the Switch loss's f·P; the
// contrastive mean over the tokens that have a positive), so each rank's part is given the micro-batch's
// totals before its backward:
//   before the forward  the parts' token counts (gathered): the total, and this part's offset, which keys the
//                       dropout masks by position in the whole micro-batch;
//   after the forward   the normalisers (model_train_ce_stats, adapter->stats), summed: with them each rank's
//                       backward gives exactly its share of the one-rank gradient;
//   after the backward  sparsedoctor's new queue entries, gathered and pushed on every rank in rank order:
//                       the one-rank order, and the queues never drift apart;
//   after the step's micro-batches  the gradients (then the norm, clipping and AdamW run identically on every
//                       rank) and the expert-load counters (for the metrics), summed.
// Sums are dist.h's rank-order sums, so a given rank count repeats its bytes.  With one rank every function is
// what the loop did before, without copies.
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "dist.h"
#include "model_train.h"
#include "progress.h"
#include "safetensors.h"
#include "trainer_internal.h"

int64_t ranks_tokens(struct run *r, int64_t T)
{
	if (r->world == 1) {
		r->a->tok_offset = 0;
		return T;
	}
	if (!r->part_tokens)
		r->part_tokens = xcalloc((size_t)r->world, sizeof *r->part_tokens);
	dist_allgather(&T, r->part_tokens, 1, DIST_I64, 0, "gathering the micro-batch's token counts");
	int64_t before = 0, total = 0;
	for (int q = 0; q < r->world; q++) {
		before += q < r->rank ? r->part_tokens[q] : 0;
		total += r->part_tokens[q];
	}
	r->a->tok_offset = before;
	return total;
}

void ranks_sum_stats(struct run *r, int64_t T)
{
	if (r->world == 1)
		return;   // one rank always has a part (T > 0), and its statistics are the sums: no copies
	struct adapter *a = r->a;
	adapter_stats_to_host(a);
	double *ce = model_train_ce_stats(r->tr);
	if (T == 0) {   // no part for this rank: no forward, nothing to add
		ce[0] = ce[1] = 0;
		memset(a->stats, 0, a->n_stats * sizeof(double));
	}
	size_t n = 2 + a->n_stats;
	double *buf = xmalloc(n * sizeof *buf);
	memcpy(buf, ce, 2 * sizeof *buf);
	memcpy(buf + 2, a->stats, a->n_stats * sizeof *buf);
	dist_allreduce(buf, n, DIST_F64, 0, "summing the micro-batch's loss normalisers");
	memcpy(ce, buf, 2 * sizeof *buf);
	memcpy(a->stats, buf + 2, a->n_stats * sizeof *buf);
	free(buf);
	adapter_stats_to_device(a);
}

// Per token of a routed slot: its top-1 expert (int32) and its query in half precision, as the ring stores it.
// The entries of every rank are gathered, slot by slot, and pushed with the queue_push op in rank order: the
// order of the tokens in the whole micro-batch (the half-precision values widen and round back exactly).
void ranks_push_queue(struct run *r, int64_t T)
{
	struct adapter *a = r->a;
	const struct adapter_config *c = &a->cfg;
	if (c->method != ADAPTER_SPARSEDOCTOR)
		return;
	if (r->world == 1) {
		adapter_queue_push(a);
		return;
	}
	int W = r->world, P = c->con_proj, K = c->top_k, n_slots = a->n_layers * N_TARGETS;
	size_t entry = 4 + 2 * (size_t)P, all_tokens = 0;
	for (int q = 0; q < W; q++)
		all_tokens += (size_t)r->part_tokens[q];
	size_t *counts = xmalloc((size_t)W * sizeof *counts), *displ = xmalloc((size_t)W * sizeof *displ);
	real *q_host = xmalloc(((size_t)T * (size_t)(P > K ? P : K) + 1) * sizeof(real));
	int32_t *top_host = xmalloc(((size_t)T * (size_t)K + 1) * sizeof(int32_t));
	real *q_all = xmalloc((all_tokens * (size_t)P + 1) * sizeof(real));
	int32_t *top_all = xmalloc((all_tokens + 1) * sizeof(int32_t));
	struct tensor q_dev = tensor_new(DTYPE_REAL, r->m->device, 2, (int64_t)all_tokens, P, 0);
	struct tensor top_dev = tensor_new(DTYPE_I32, r->m->device, 2, (int64_t)all_tokens, 1, 0);
	// slots in groups of at most ~1 GiB gathered
	int per_group = (int)(((size_t)1 << 30) / (all_tokens * entry + 1));
	per_group = per_group < 1 ? 1 : per_group;
	for (int s0 = 0; s0 < n_slots;) {
		int routed[n_slots], n_routed = 0, s1 = s0;
		for (; s1 < n_slots && n_routed < per_group; s1++)
			if (a->slots[s1].kind == SLOT_ROUTED)
				routed[n_routed++] = s1;
		if (n_routed == 0)
			break;
		uint8_t *send = xmalloc((size_t)n_routed * (size_t)T * entry + 1), *p = send;
		for (int i = 0; i < n_routed; i++) {
			const struct adapter_slot *s = &a->slots[routed[i]];
			if (T > 0) {
				tensor_copy(tensor_i32(top_host, T * K), tensor_rows(s->topk, 0, T));
				tensor_copy(tensor2(q_host, T, P), tensor_rows(s->q, 0, T));
			}
			for (int64_t t = 0; t < T; t++, p += 4)
				memcpy(p, &top_host[t * K], 4);
			for (int64_t t = 0; t < T * P; t++, p += 2) {
				uint16_t h = st_f32_to_f16((float)q_host[t]);
				memcpy(p, &h, 2);
			}
		}
		size_t total = 0;
		for (int q = 0; q < W; q++) {
			counts[q] = (size_t)n_routed * (size_t)r->part_tokens[q] * entry;
			displ[q] = total;
			total += counts[q];
		}
		uint8_t *recv = xmalloc(total + 1);
		dist_allgatherv(send, recv, counts, DIST_U8, "gathering sparsedoctor's memory-queue entries");
		// slot by slot, and within a slot rank by rank: the order of the tokens in the whole micro-batch
		for (int i = 0; i < n_routed; i++) {
			const struct adapter_slot *s = &a->slots[routed[i]];
			size_t n = 0;
			for (int q = 0; q < W; q++) {
				size_t Tq = (size_t)r->part_tokens[q];
				const uint8_t *ids = recv + displ[q] + (size_t)i * Tq * entry, *rows = ids + Tq * 4;
				for (size_t t = 0; t < Tq; t++, n++) {
					memcpy(&top_all[n], ids + 4 * t, 4);
					for (int j = 0; j < P; j++) {
						uint16_t h;
						memcpy(&h, rows + (t * (size_t)P + (size_t)j) * 2, 2);
						q_all[n * (size_t)P + (size_t)j] = st_f16_to_f32(h);
					}
				}
			}
			tensor_copy(q_dev, tensor2(q_all, (int64_t)n, P));
			tensor_copy(top_dev, tensor_i32(top_all, (int64_t)n));
			adapter_queue_push_rows(a, s, q_dev, top_dev);
		}
		free(send);
		free(recv);
		s0 = s1;
	}
	tensor_free(q_dev);
	tensor_free(top_dev);
	free(q_host);
	free(top_host);
	free(q_all);
	free(top_all);
	free(counts);
	free(displ);
}

void ranks_sum_grads(struct run *r)
{
	struct adapter *a = r->a;
	if (r->world == 1)
		return;
	double t0 = now_seconds();
	dist_allreduce(a->dev.grads.data, a->n_params, sizeof(real) == 4 ? DIST_F32 : DIST_F64,
		       a->dev.device != DEVICE_CPU, "summing the gradients");
	r->grads_s += now_seconds() - t0;
}

// The host loads (adapter_loads_to_host first): every slot's counts, then task_load, one array.
void ranks_sum_loads(struct run *r)
{
	struct adapter *a = r->a;
	if (r->world == 1 || a->n_routed_slots == 0)
		return;
	size_t n = ((size_t)a->n_routed_slots + (size_t)a->cfg.n_tasks) * (size_t)a->cfg.experts;
	dist_allreduce(a->loads, n, DIST_I32, 0, "summing the expert loads");
}

// A 64-bit hash of N bytes (FNV-1a over 8-byte words, then the tail bytes), chained from H.
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

void ranks_check_state(struct run *r)
{
	if (r->world == 1)
		return;
	struct adapter *a = r->a;
	adapter_to_host(a);
	uint64_t h = 0xcbf29ce484222325ULL;
	h = hash_bytes(h, a->params, a->n_params * sizeof(real));
	h = hash_bytes(h, a->adam_m, a->n_params * sizeof(real));
	h = hash_bytes(h, a->adam_v, a->n_params * sizeof(real));
	h = hash_bytes(h, a->queue, a->n_queue * sizeof *a->queue);
	h = hash_bytes(h, a->queue_pos, 2 * (size_t)a->n_routed_slots * (size_t)a->cfg.experts * sizeof *a->queue_pos);
	if (!r->state_hash)
		r->state_hash = xcalloc((size_t)r->world, sizeof *r->state_hash);
	int64_t mine = (int64_t)h;
	dist_allgather(&mine, r->state_hash, 1, DIST_I64, 0, "comparing the ranks' adapter states");
	for (int q = 1; q < r->world; q++)
		if (r->state_hash[q] != r->state_hash[0]) {
			if (r->rank > 0)
				dist_leave(EXIT_FAIL);
			die(EXIT_FAIL, "step %llu: rank %d's adapter state (parameters, moments, memory queue) differs from "
				       "rank 0's: the ranks drifted apart (a bug; please report it); the last checkpoint in "
				       "%s/state is intact", (unsigned long long)r->step, q, r->o->run);
		}
}
