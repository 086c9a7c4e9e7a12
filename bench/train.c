// train.c — time training steps of the CPU engine (forward, backward into the adapter, AdamW) on a checkpoint.
// Built and run by bench/train.sh (and bench/gpu.sh).  Usage: train DIR METHOD TOKENS DOCS REPS [DEVICE [RECOMPUTE]]
// Token ids are (t·7919 + 13) mod V, as in bench/train_peer.py.  Prints: tokens/s and s/step of the median step, loss,
// peak RSS (MB), peak device memory (MB, 0 on the CPU).
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
	if (argc < 6 || argc > 8)
		die(EXIT_USAGE, "usage: train DIR METHOD TOKENS DOCS REPS [DEVICE [RECOMPUTE]]");
	struct model_options mo = {.device = DEVICE_CPU};
	int index;
	if (argc > 6 && device_parse(argv[6], &mo.device, &index) != 0)
		die(EXIT_USAGE, "bad device %s", argv[6]);
	device_init(mo.device, argc > 6 ? index : -1);
	struct model *m = model_load_with(argv[1], &mo);
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
	struct model_train *tr = model_train_new(m);
	model_train_set_recompute(tr, argc > 7 && atoi(argv[7]));
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
		loss = model_train_forward(tr, ids, T, offsets, n_docs, NULL, mask, NULL);
		model_train_backward(tr, 1.0);
		struct adamw_step step = adamw_at(&opt, 1e-4, (uint64_t)r + 1);
		adamw_update(a->dev.params, a->dev.grads, a->dev.m, a->dev.v, &step);
		ops_sync(m->device);
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
	printf("%.1f %.6f %.4f %.1f %.1f\n", T / med, loss, med, ru.ru_maxrss / 1024.0,
	       m->device == DEVICE_CPU ? 0.0 : ops_peak_bytes(m->device) / 1048576.0);
	model_train_free(tr);
	adapter_free(a);
	model_free(m);
	free(ids);
	free(offsets);
	free(mask);
	return 0;
}
