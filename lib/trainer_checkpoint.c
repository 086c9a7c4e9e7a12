// trainer_checkpoint.c — a run directory's life: created, checkpointed, resumed (trainer.h has the layout).
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_io.h"
#include "die.h"
#include "dist.h"
#include "infile.h"
#include "outfile.h"
#include "stream.h"
#include "trainer_internal.h"

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void run_check_dir(const struct train_opts *o)
{
	if (dist_rank() != 0)
		return;   // [dist] only rank 0 writes the run directory
	struct stat st;
	char *state = xasprintf("%s/state", o->run);
	if (stat(o->run, &st) != 0) {
		if (o->resume)
			die(EXIT_FAIL, "--resume: %s: no such run directory", o->run);
	} else if (!S_ISDIR(st.st_mode)) {
		die(EXIT_FAIL, "%s: not a directory", o->run);
	} else if (!o->resume) {
		outdir_recover(state);   // a state/ half-replaced by a killed checkpoint counts as a run
		if (stat(state, &st) == 0 && !o->force)
			die(EXIT_FAIL, "%s: holds a run already (use --resume to continue it or --force to start over)", o->run);
	}
	free(state);
}

void run_prepare_dir(const struct train_opts *o)
{
	if (dist_rank() != 0)
		return;   // [dist]
	struct stat st;
	if (stat(o->run, &st) != 0) {
		if (mkdir(o->run, 0777) != 0)
			die_errno("%s", o->run);
		return;
	}
	if (o->resume)
		return;
	// --force, and every input has been checked: the old run goes (its state, metrics and adapter, so that no
	// file of it is read as part of the new run).
	const char *const files[] = {"metrics.mpk", "adapter.safetensors", "adapter_config.json"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char *path = xasprintf("%s/%s", o->run, files[i]);
		if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode) && unlink(path) != 0)
			die_errno("%s", path);
		free(path);
	}
	char *state = xasprintf("%s/state", o->run);
	if (lstat(state, &st) == 0 && nftw(state, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		die_errno("%s", state);
	free(state);
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
	json_t *j = json_pack("{s:s, s:I, s:I, s:i, s:{s:I, s:I, s:I, s:I, s:i, s:i, s:i}, s:O}", "method",
			      adapter_method_name(r->a->cfg.method), "step", (json_int_t)r->step,
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

// The metrics stream of the run must end, at METRICS_BYTES, with the record of STEP (or, at step 0, with its
// header): anything else (a length past the end of the file, inside a record, of another step) is refused
// before the stream is cut back or extended.
static void check_metrics(const struct train_opts *o, const char *state_path, uint64_t step, uint64_t metrics_bytes)
{
	char *path = xasprintf("%s/metrics.mpk", o->run);
	FILE *fp = infile_fopen(path);
	if (!fp)
		die(EXIT_DATA, "--resume: %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fileno(fp), &st) != 0)
		die_errno("%s", path);
	if (metrics_bytes > (uint64_t)st.st_size)
		die_data(state_path, -1, "metrics_bytes", "%llu, but %s is %llu bytes", (unsigned long long)metrics_bytes,
			 path, (unsigned long long)st.st_size);
	struct stream_reader *r = stream_open_fp(fp, path, "medmoe.metrics", 1);
	uint64_t last_step = 0;
	msgpack_object rec;
	while (r->object_end < metrics_bytes && stream_next(r, &rec))
		last_step = (uint64_t)rec_int(r, &rec, "step");
	if (r->object_end != metrics_bytes || last_step != step)
		die_data(state_path, -1, "metrics_bytes", "%llu is not the end of step %llu's record in %s",
			 (unsigned long long)metrics_bytes, (unsigned long long)step, path);
	stream_close(r);
	free(path);
}

void run_saved_parse(const json_t *j, const char *path, uint64_t steps, uint32_t accum, struct run_saved *sv)
{
	// Every saved number is checked against what this run can have written before it is used.
	sv->step = (uint64_t)infile_json_int(j, path, "step", 0, steps > INT64_MAX ? INT64_MAX : (json_int_t)steps);
	sv->metrics_bytes = (uint64_t)infile_json_int(j, path, "metrics_bytes", 1, LONG_MAX);
	const json_t *c = json_object_get(j, "cursor");
	if (!json_is_object(c))
		die_data(path, -1, "cursor", "missing or not an object");
	struct shard_cursor cur = {
		.epoch = (uint64_t)infile_json_int(c, path, "epoch", 0, INT64_MAX),
		.position = (uint64_t)infile_json_int(c, path, "position", 0, UINT32_MAX),
		.sequences = (uint64_t)infile_json_int(c, path, "sequences", 0, UINT32_MAX),
		.seed = (uint64_t)infile_json_int(c, path, "seed", INT64_MIN, INT64_MAX),
		.rank = (uint32_t)infile_json_int(c, path, "rank", 0, UINT32_MAX - 1),
		.world = (uint32_t)infile_json_int(c, path, "world", 1, UINT32_MAX),
		.shuffle = (uint32_t)infile_json_int(c, path, "shuffle", 0, 1)};
	if (cur.rank >= cur.world)
		die_data(path, -1, "cursor", "rank %u is not below world %u", cur.rank, cur.world);
	// an epoch ends at most 3 times per micro-batch (next_train's retries), and never more often
	if (cur.epoch / 3 > sv->step * (uint64_t)accum)
		die_data(path, -1, "cursor.epoch", "%llu epochs in %llu steps is more than the trainer can have read",
			 (unsigned long long)cur.epoch, (unsigned long long)sv->step);
	sv->cursor = cur;
}

long run_resume(struct run *r)
{
	const struct train_opts *o = r->o;
	char *state = xasprintf("%s/state", o->run);
	outdir_recover(state);   // a checkpoint killed between its two renames left state.medmoe-old
	free(state);
	char *path = xasprintf("%s/state/trainer.json", o->run);
	json_error_t err;
	json_t *j = infile_json(path, JSON_REJECT_DUPLICATES, INFILE_MAX_CONFIG, &err);
	if (!j && access(path, F_OK) != 0)
		die(EXIT_FAIL, "--resume: %s: %s (no checkpoint to resume from?)", path, err.text);
	if (!j)
		die_data(path, -1, NULL, "line %d: %s", err.line, err.text);
	if (!json_is_object(j))
		die_data(path, -1, NULL, "not a JSON object");
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
	struct run_saved sv;
	run_saved_parse(j, path, o->steps, o->accum, &sv);
	r->step = sv.step;
	uint64_t metrics_bytes = sv.metrics_bytes;
	struct shard_cursor cur = sv.cursor;
	check_metrics(o, path, r->step, metrics_bytes);
	shard_reader_seek(r->train, cur);
	// the method must match too: trainer.json records it; older checkpoints only have adapter_config.json
	// (which a run killed during its first checkpoint may not have written yet: then the state's sizes decide)
	json_t *cfg = NULL;
	const char *method = json_string_value(json_object_get(j, "method")), *from = path;
	char *cpath = xasprintf("%s/adapter_config.json", o->run);
	if (!method && access(cpath, F_OK) == 0) {
		cfg = adapter_config_read(o->run);
		method = json_string_value(json_object_get(cfg, "method"));
		from = cpath;
	}
	enum adapter_method saved_method;
	if ((method || cfg) && (!method || adapter_method_parse(method, &saved_method) != 0))
		die_data(from, -1, "method", "%s is not a method", method ? method : "missing");
	if (method && saved_method != o->adapter.method)
		die(EXIT_USAGE, "--resume: the run used --method %s", method);
	json_decref(cfg);
	free(cpath);
	json_decref(j);
	free(path);
	path = xasprintf("%s/state/optimizer.safetensors", o->run);
	adapter_state_load(r->a, path);
	free(path);
	// A checkpoint replaces state/ first and the adapter files after it: a run killed in between has the new
	// state and the older adapter (and perhaps a temporary of it).  The adapter is rewritten from the state, so
	// the two agree even when nothing is left to train.
	adapter_save(r->a, r->m, o->run, r->tasks, r->training);
	return (long)metrics_bytes;
}
