// trainer_metrics.c — the medmoe.metrics stream of a run: appended to and flushed step by step; a resumed run
// cuts it back to the length saved with its checkpoint, so steps redone after an interruption are not listed
// twice.
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_io.h"
#include "die.h"
#include "dist.h"
#include "stream.h"
#include "trainer_internal.h"

static int write_file(void *data, const char *buf, size_t len)
{
	return fwrite(buf, 1, len, data) == len ? 0 : -1;
}

static void write_header(struct run *r)
{
	msgpack_packer *pk = &r->pk;
	msgpack_pack_map(pk, 6);
	pack_kv_str(pk, "schema", "medmoe.metrics");
	pack_kv_int(pk, "version", 1);
	pack_kv_str(pk, "program", "train-experts");
	pack_kv_str(pk, "program_version", MEDMOE_VERSION);
	pack_kv_str(pk, "method", adapter_method_name(r->o->adapter.method));
	pack_str(pk, "config");   // what adapter_config.json holds: every hyperparameter, the base, tasks, training
	json_t *cfg = adapter_config_json(r->a, r->m, r->tasks, r->training);
	pack_json(pk, cfg);
	json_decref(cfg);
}

void metrics_write_step(struct run *r, double loss, double lb, double con, double val, double lr, double gnorm,
			 double tps, int64_t tokens)
{
	if (!r->metrics)
		return;   // [dist] a rank other than 0
	const struct adapter *a = r->a;
	const struct adapter_config *c = &a->cfg;
	int routed = a->n_routed_slots > 0, moe = c->method == ADAPTER_MOELORA;
	msgpack_packer *pk = &r->pk;
	int on_gpu = r->m->device != DEVICE_CPU;
	msgpack_pack_map(pk, 7 + 2 * routed + (c->method == ADAPTER_SPARSEDOCTOR) + !isnan(val) + (routed || moe) + on_gpu);
	pack_kv_int(pk, "step", (int64_t)r->step);
	pack_kv_double(pk, "loss", loss);
	if (routed)
		pack_kv_double(pk, "lb_loss", lb);
	if (c->method == ADAPTER_SPARSEDOCTOR)
		pack_kv_double(pk, "contrastive_loss", con);
	if (!isnan(val))
		pack_kv_double(pk, "val_loss", val);
	pack_kv_double(pk, "lr", lr);
	pack_kv_double(pk, "grad_norm", gnorm);
	pack_kv_double(pk, "tokens_per_s", tps);
	pack_kv_int(pk, "tokens", tokens);
	if (on_gpu)   // the peak so far, as the memory budget is about the whole run
		pack_kv_int(pk, "peak_device_bytes", (int64_t)ops_peak_bytes(r->m->device));
	pack_kv_double(pk, "objective", loss + (routed ? c->lb_coef * lb : 0) + c->con_lambda * con);
	if (routed) {
		// per layer: the share of the top-k assignments each expert received (all routed linears of the layer)
		pack_str(pk, "expert_load");
		msgpack_pack_array(pk, (size_t)a->n_layers);
		for (int l = 0; l < a->n_layers; l++) {
			double cnt[c->experts], total = 0;
			for (int e = 0; e < c->experts; e++)
				cnt[e] = 0;
			for (int t = 0; t < N_TARGETS; t++) {
				const struct adapter_slot *s = &a->slots[l * N_TARGETS + t];
				for (int e = 0; s->kind == SLOT_ROUTED && e < c->experts; e++)
					cnt[e] += (double)s->load[e], total += (double)s->load[e];
			}
			msgpack_pack_array(pk, (size_t)c->experts);
			for (int e = 0; e < c->experts; e++)
				msgpack_pack_double(pk, total ? cnt[e] / total : 0);
		}
	}
	if (routed || moe) {
		// per task: routed methods, the share of its tokens' assignments per expert (all layers);
		// moelora, the gate weights w(task)
		pack_str(pk, "task_load");
		msgpack_pack_map(pk, (size_t)c->n_tasks);
		for (int k = 0; k < c->n_tasks; k++) {
			pack_str(pk, r->task_names[k]);
			msgpack_pack_array(pk, (size_t)c->experts);
			double total = 0;
			for (int e = 0; e < c->experts; e++)
				total += (double)a->task_load[(size_t)k * c->experts + e];
			for (int e = 0; e < c->experts; e++)
				msgpack_pack_double(pk, moe ? (double)a->task_gate[(size_t)k * c->experts + e]
							    : total ? (double)a->task_load[(size_t)k * c->experts + e] / total : 0);
		}
	}
	if (fflush(r->metrics) != 0)
		die_errno("%s/metrics.mpk", r->o->run);
}

// RUN/metrics.mpk for reading and writing: created (emptied unless KEEP), a regular file or refused (a FIFO
// there would block open forever).
static FILE *open_metrics(const char *path, int keep)
{
	int fd = open(path, O_RDWR | O_CREAT | (keep ? 0 : O_TRUNC) | O_NONBLOCK | O_CLOEXEC, 0666);
	if (fd < 0)
		die_errno("%s", path);
	struct stat st;
	if (fstat(fd, &st) != 0)
		die_errno("%s", path);
	if (!S_ISREG(st.st_mode))
		die_data(path, -1, NULL, "not a regular file");
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		die_errno("%s", path);
	FILE *fp = fdopen(fd, "r+");
	if (!fp)
		die_errno("%s", path);
	return fp;
}

void metrics_open(struct run *r, long resume_bytes)
{
	if (dist_rank() != 0)
		return;   // [dist] rank 0 writes the metrics
	char *path = xasprintf("%s/metrics.mpk", r->o->run);
	if (resume_bytes >= 0) {
		// run_resume checked that RESUME_BYTES ends a record inside the file: this only ever cuts
		r->metrics = open_metrics(path, 1);
		if (ftruncate(fileno(r->metrics), resume_bytes) != 0 || fseek(r->metrics, resume_bytes, SEEK_SET) != 0)
			die_errno("%s", path);
		msgpack_packer_init(&r->pk, r->metrics, write_file);
	} else {
		r->metrics = open_metrics(path, 0);
		msgpack_packer_init(&r->pk, r->metrics, write_file);
		write_header(r);
	}
	free(path);
}

void metrics_close(struct run *r)
{
	if (!r->metrics)
		return;
	if (fclose(r->metrics) != 0)
		die_errno("%s/metrics.mpk", r->o->run);
	r->metrics = NULL;
}
