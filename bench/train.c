// train.c — time training steps of the CPU engine (forward, backward into the adapter, AdamW) on a checkpoint.
// Built and run by bench/train.sh.  Usage: train DIR METHOD TOKENS DOCS REPS
// Token ids are (t·7919 + 13) mod V, as in bench/train_peer.py.  Prints: tokens/s and s/step of the median step, loss, peak RSS (MB).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "adapter.h"
#include "adapter_io.h"
#include "die.h"
#include "model.h"
#include "model_train.h"
#include "optim.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	if (argc != 6)
		die(EXIT_USAGE, "usage: train DIR METHOD TOKENS DOCS REPS");
	struct model *m = model_load(argv[1]);
	enum adapter_method method;
	if (adapter_method_parse(argv[2], &method) != 0)
		die(EXIT_USAGE, "unknown method %s", argv[2]);
	int T = atoi(argv[3]), n_docs = atoi(argv[4]), reps = atoi(argv[5]);
	struct adapter_config cfg;
	adapter_config_preset(&cfg, method);
	cfg.dropout = 0;      // the peer runs without dropout
	cfg.lb_coef = 0;
	struct adapter *a = adapter_new_for_model(&cfg, m);
	model_set_adapter(m, a, 0);
	a->training = 1;
	int32_t *ids = xmalloc((size_t)T * sizeof *ids), *offsets = xmalloc((size_t)(n_docs + 1) * sizeof *offsets);
	uint8_t *mask = xmalloc((size_t)T);
	for (int t = 0; t < T; t++) {
		ids[t] = (int32_t)(((int64_t)t * 7919 + 13) % m->cfg.vocab);
		mask[t] = 1;
	}
	for (int d = 0; d <= n_docs; d++)
		offsets[d] = (int32_t)((int64_t)T * d / n_docs);
	struct adamw opt = {0.9, 0.999, 1e-8, 0};
	double loss = 0, *secs = xmalloc((size_t)(reps + 1) * sizeof(double));
	for (int r = 0; r <= reps; r++) {   // step 0 is a warm-up
		double t0 = now();
		adapter_zero_grads(a);
		loss = model_train_forward(m, ids, T, offsets, n_docs, NULL, mask, NULL);
		model_train_backward(m, 1.0);
		adamw_update(&opt, 1e-4, (uint64_t)r + 1, a->params, a->grads, a->adam_m, a->adam_v, a->n_params);
		secs[r] = now() - t0;
	}
	// the median step: this machine's neighbours make single steps vary by 2x
	for (int i = 1; i <= reps; i++)
		for (int j = i + 1; j <= reps; j++)
			if (secs[j] < secs[i]) {
				double t = secs[i];
				secs[i] = secs[j], secs[j] = t;
			}
	double med = secs[1 + reps / 2 - (reps % 2 == 0)];
	free(secs);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%.1f %.6f %.4f %.1f\n", T / med, loss, med, ru.ru_maxrss / 1024.0);
	adapter_free(a);
	model_free(m);
	free(ids);
	free(offsets);
	free(mask);
	return 0;
}
