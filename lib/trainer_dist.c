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
	struct adapter *a = r->a;
	double *ce = model_train_ce_stats(r->m);
	if (T == 0) {   // no part for this rank: no forward, nothing to add
		ce[0] = ce[1] = 0;
		memset(a->stats, 0, a->n_stats * sizeof(double));
	}
	if (r->world == 1)
		return;
	size_t n = 2 + a->n_stats;
	double *buf = xmalloc(n * sizeof *buf);
	memcpy(buf, ce, 2 * sizeof *buf);
	memcpy(buf + 2, a->stats, a->n_stats * sizeof *buf);
	dist_allreduce(buf, n, DIST_F64, 0, "summing the micro-batch's loss normalisers");
	memcpy(ce, buf, 2 * sizeof *buf);
	memcpy(a->stats, buf + 2, a->n_stats * sizeof *buf);
	free(buf);
}

// Per token of a routed slot: its top-1 expert (int32) and its query in half precision, as the ring stores it.
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
	int W = r->world, P = c->con_proj, n_slots = a->n_layers * N_TARGETS;
	size_t entry = 4 + 2 * (size_t)P, all_tokens = 0;
	for (int q = 0; q < W; q++)
		all_tokens += (size_t)r->part_tokens[q];
	size_t *counts = xmalloc((size_t)W * sizeof *counts), *displ = xmalloc((size_t)W * sizeof *displ);
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
			for (int64_t t = 0; t < T; t++, p += 4) {
				int32_t e = s->topk[t * c->top_k];
				memcpy(p, &e, 4);
			}
			for (int64_t t = 0; t < T * P; t++, p += 2) {
				uint16_t h = st_f32_to_f16((float)s->q[t]);
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
			struct adapter_slot *s = &a->slots[routed[i]];
			for (int q = 0; q < W; q++) {
				size_t Tq = (size_t)r->part_tokens[q];
				const uint8_t *ids = recv + displ[q] + (size_t)i * Tq * entry, *rows = ids + Tq * 4;
				for (size_t t = 0; t < Tq; t++) {
					int32_t e;
					memcpy(&e, ids + 4 * t, 4);
					adapter_queue_push_entry(a, s, e, (const uint16_t *)(const void *)(rows + t * 2 * (size_t)P));
				}
			}
		}
		free(send);
		free(recv);
		s0 = s1;
	}
	free(counts);
	free(displ);
}

void ranks_sum_grads(struct run *r)
{
	struct adapter *a = r->a;
	double t0 = now_seconds();
	dist_allreduce(a->grads, a->n_params, sizeof(real) == 4 ? DIST_F32 : DIST_F64, 0, "summing the gradients");
	r->grads_s += now_seconds() - t0;
}

void ranks_sum_loads(struct run *r)
{
	struct adapter *a = r->a;
	if (r->world == 1 || a->n_routed_slots == 0)
		return;
	size_t n = (size_t)a->cfg.n_tasks * a->cfg.experts;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++)
		n += a->slots[i].kind == SLOT_ROUTED ? (size_t)a->slots[i].n_routed : 0;
	int64_t *buf = xmalloc(n * sizeof *buf), *p = buf;
	size_t n_task = (size_t)a->cfg.n_tasks * a->cfg.experts;
	memcpy(p, a->task_load, n_task * sizeof *p);
	p += n_task;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++)
		if (a->slots[i].kind == SLOT_ROUTED) {
			memcpy(p, a->slots[i].load, (size_t)a->slots[i].n_routed * sizeof *p);
			p += a->slots[i].n_routed;
		}
	dist_allreduce(buf, n, DIST_I64, 0, "summing the expert loads");
	p = buf;
	memcpy(a->task_load, p, n_task * sizeof *p);
	p += n_task;
	for (int i = 0; i < a->n_layers * N_TARGETS; i++)
		if (a->slots[i].kind == SLOT_ROUTED) {
			memcpy(a->slots[i].load, p, (size_t)a->slots[i].n_routed * sizeof *p);
			p += a->slots[i].n_routed;
		}
	free(buf);
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
	const struct adapter *a = r->a;
	uint64_t h = 0xcbf29ce484222325ULL;
	h = hash_bytes(h, a->params, a->n_params * sizeof(real));
	h = hash_bytes(h, a->adam_m, a->n_params * sizeof(real));
	h = hash_bytes(h, a->adam_v, a->n_params * sizeof(real));
	if (a->queue)
		h = hash_bytes(h, a->queue, a->n_queue * sizeof *a->queue);
	for (int i = 0; i < a->n_layers * N_TARGETS; i++)
		if (a->slots[i].q_head) {
			h = hash_bytes(h, a->slots[i].q_head, (size_t)a->slots[i].n_routed * sizeof(int64_t));
			h = hash_bytes(h, a->slots[i].q_fill, (size_t)a->slots[i].n_routed * sizeof(int64_t));
		}
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
