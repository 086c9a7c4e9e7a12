// trainer_checkpoint.c — a run directory's life: created, checkpointed, resumed (trainer.h has the layout).
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_io.h"
#include "die.h"
#include "dist.h"
#include "outfile.h"
#include "trainer_internal.h"

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void run_prepare_dir(const struct train_opts *o)
{
	if (dist_rank() != 0)
		return;   // [dist] only rank 0 writes the run directory
	struct stat st;
	char *state = xasprintf("%s/state", o->run), *metrics = xasprintf("%s/metrics.mpk", o->run);
	if (stat(o->run, &st) != 0) {
		if (o->resume)
			die(EXIT_FAIL, "--resume: %s: no such run directory", o->run);
		if (mkdir(o->run, 0777) != 0)
			die_errno("%s", o->run);
	} else if (!o->resume) {
		if (stat(state, &st) == 0 && !o->force)
			die(EXIT_FAIL, "%s: holds a run already (use --resume to continue it or --force to start over)", o->run);
		char *cmd[] = {state, metrics};
		for (int i = 0; i < 2; i++)
			if (stat(cmd[i], &st) == 0 && S_ISREG(st.st_mode))
				unlink(cmd[i]);
		if (stat(state, &st) == 0 && nftw(state, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
			die_errno("%s", state);
	}
	free(state);
	free(metrics);
}

void run_checkpoint(struct run *r)
{
	if (r->rank != 0)
		return;   // [dist] every rank holds the same state; rank 0 writes it
	const struct train_opts *o = r->o;
	if (fflush(r->metrics) != 0 || fsync(fileno(r->metrics)) != 0)
		die_errno("%s/metrics.mpk", o->run);
	long metrics_bytes = ftell(r->metrics);
	char *state = xasprintf("%s/state", o->run);
	struct outdir *dir = outdir_open(state, 1);
	char *path = xasprintf("%s/optimizer.safetensors", dir->tmp_path);
	adapter_to_host(r->a);
	adapter_state_save(r->a, path);
	free(path);
	// the cursor is global (every rank reads as rank 0 of 1, trainer.c): any number of ranks resumes it; "ranks"
	// only records how many wrote it
	struct shard_cursor c = shard_reader_tell(r->train);
	json_t *j = json_pack("{s:I, s:I, s:i, s:{s:I, s:I, s:I, s:I, s:i, s:i, s:i}, s:O}", "step", (json_int_t)r->step,
			      "metrics_bytes", (json_int_t)metrics_bytes, "ranks", r->world, "cursor", "epoch",
			      (json_int_t)c.epoch,
			      "position", (json_int_t)c.position, "sequences", (json_int_t)c.sequences, "seed",
			      (json_int_t)c.seed, "rank", (int)c.rank, "world", (int)c.world, "shuffle", (int)c.shuffle,
			      "training", r->training);
	if (r->state_hash) {
		// every rank's hash of its adapter state (ranks_check_state): equal, or the run would have stopped
		json_t *h = json_array();
		for (int q = 0; q < r->world; q++) {
			char hex[17];
			snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->state_hash[q]);
			json_array_append_new(h, json_string(hex));
		}
		json_object_set_new(j, "rank_states", h);
	}
	path = xasprintf("%s/trainer.json", dir->tmp_path);
	struct outfile *out = outfile_open(path);
	if (json_dumpf(j, out->fp, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0)
		die_errno("%s", path);
	fputc('\n', out->fp);
	outfile_commit(out);
	free(path);
	json_decref(j);
	outdir_commit(dir);
	free(state);
	adapter_save(r->a, r->m, o->run, r->tasks, r->training);
}

static json_int_t jint(const json_t *obj, const char *path, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v))
		die_data(path, -1, key, "missing or not an integer");
	return json_integer_value(v);
}

long run_resume(struct run *r)
{
	const struct train_opts *o = r->o;
	char *path = xasprintf("%s/state/trainer.json", o->run);
	json_error_t err;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		die(EXIT_FAIL, "--resume: %s: %s (no checkpoint to resume from?)", path, err.text);
	const json_t *saved = json_object_get(j, "training");
	if (!json_equal((json_t *)saved, r->training)) {
		// name the first setting that differs (everything freed first: die exits at once)
		char msg[512] = "the training settings differ from the run's";
		const char *k;
		json_t *v;
		json_object_foreach(r->training, k, v) {
			if (!json_equal(v, json_object_get(saved, k))) {
				char *was = json_dumps(json_object_get(saved, k), JSON_ENCODE_ANY);
				char *now = json_dumps(v, JSON_ENCODE_ANY);
				snprintf(msg, sizeof msg, "%s was %s in this run, %s now", k, was ? was : "absent", now ? now : "?");
				free(was);
				free(now);
				break;
			}
		}
		json_decref(j);
		free(path);
		die(EXIT_USAGE, "--resume: %s", msg);
	}
	r->step = (uint64_t)jint(j, path, "step");
	long metrics_bytes = (long)jint(j, path, "metrics_bytes");
	const json_t *c = json_object_get(j, "cursor");
	struct shard_cursor cur = {
		.epoch = (uint64_t)jint(c, path, "epoch"), .position = (uint64_t)jint(c, path, "position"),
		.sequences = (uint64_t)jint(c, path, "sequences"), .seed = (uint64_t)jint(c, path, "seed"),
		.rank = (uint32_t)jint(c, path, "rank"), .world = (uint32_t)jint(c, path, "world"),
		.shuffle = (uint32_t)jint(c, path, "shuffle")};
	shard_reader_seek(r->train, cur);
	json_decref(j);
	free(path);
	// the adapter's own settings must match too
	json_t *cfg = adapter_config_read(o->run);
	const char *method = json_string_value(json_object_get(cfg, "method"));
	if (!method || strcmp(method, adapter_method_name(o->adapter.method)) != 0)
		die(EXIT_USAGE, "--resume: the run used --method %s", method ? method : "?");
	json_decref(cfg);
	path = xasprintf("%s/state/optimizer.safetensors", o->run);
	adapter_state_load(r->a, path);
	free(path);
	return metrics_bytes;
}
