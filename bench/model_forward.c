// model_forward.c — time the CPU engine's packed forward (loss through the tiled LM head) on a checkpoint.
// Built and run by bench/model_forward.sh.  Usage: model_forward DIR TOKENS DOCS REPS
// Token ids are (t·7919 + 13) mod V, the formula bench/model_forward_peer.py uses too, so both see the same input.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "die.h"
#include "model.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	if (argc != 5)
		die(EXIT_USAGE, "usage: model_forward DIR TOKENS DOCS REPS");
	struct model *m = model_load(argv[1]);
	int T = atoi(argv[2]), n_docs = atoi(argv[3]), reps = atoi(argv[4]);
	int32_t *ids = xmalloc((size_t)T * sizeof *ids), *offsets = xmalloc((size_t)(n_docs + 1) * sizeof *offsets);
	uint8_t *mask = xmalloc((size_t)T);
	for (int t = 0; t < T; t++) {
		ids[t] = (int32_t)(((int64_t)t * 7919 + 13) % m->cfg.vocab);
		mask[t] = 1;
	}
	for (int d = 0; d <= n_docs; d++)
		offsets[d] = (int32_t)((int64_t)T * d / n_docs);
	double loss = model_forward(m, ids, T, offsets, n_docs, mask, NULL, NULL);   // warm-up
	double start = now();
	for (int r = 0; r < reps; r++)
		loss = model_forward(m, ids, T, offsets, n_docs, mask, NULL, NULL);
	double secs = (now() - start) / reps;
	printf("%.1f %.6f %.4f\n", T / secs, loss, secs);
	model_free(m);
	free(ids);
	free(offsets);
	free(mask);
	return 0;
}
