// mix-tasks — interleave several medmoe.tokens streams into one, sampling tasks by temperature, proportion or
// explicit weights, with stable task ids.  The sampling math is lib/mix.c; the id rule is lib/task_table.h.
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "mix.h"
#include "outfile.h"
#include "record_index.h"
#include "rng.h"
#include "stream.h"
#include "task_table.h"

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s [-q] [--temperature T | --proportional | --weights TASK=W,...]\n"
		"       [--cap-examples N] [--cap-tokens N] [--budget N] [--epochs E|TASK=E,...]\n"
		"       [--seed S] [--stats FILE] [-o OUT] STREAM ...\n",
		progname());
	exit(code);
}

// "a=2,b=1" as names and values.
struct name_values {
	size_t n;
	char **names;
	double *values;
};

static void parse_name_values(const char *opt, const char *arg, struct name_values *nv)
{
	char *copy = xstrdup(arg), *save = NULL;
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strrchr(item, '=');
		char *end;
		if (!eq || eq == item)
			die(EXIT_USAGE, "%s: \"%s\" is not TASK=VALUE", opt, item);
		double v = strtod(eq + 1, &end);
		if (*end || !(v >= 0) || !isfinite(v))
			die(EXIT_USAGE, "%s: \"%s\": not a number ≥ 0", opt, eq + 1);
		nv->names = xrealloc(nv->names, (nv->n + 1) * sizeof *nv->names);
		nv->values = xrealloc(nv->values, (nv->n + 1) * sizeof *nv->values);
		nv->names[nv->n] = xstrndup(item, (size_t)(eq - item));
		nv->values[nv->n++] = v;
	}
	free(copy);
}

// The value for TASK, or -1 when NV does not name it.
static double lookup(const struct name_values *nv, const char *task)
{
	for (size_t i = 0; i < nv->n; i++)
		if (strcmp(nv->names[i], task) == 0)
			return nv->values[i];
	return -1;
}

static uint64_t parse_count(const char *opt, const char *arg)
{
	char *end;
	unsigned long long v = strtoull(arg, &end, 10);
	if (*end || arg[0] == '-' || end == arg)
		die(EXIT_USAGE, "%s: not a count: %s", opt, arg);
	return v;
}

// Every record of one task: where it is and how many tokens it has.
struct task_records {
	size_t n, cap;
	struct record_ref *refs;
	uint32_t *tokens;
	int64_t *record_no;
};

static void task_records_push(struct task_records *tr, struct record_ref ref, uint32_t tokens, int64_t record_no)
{
	if (tr->n == tr->cap) {
		tr->cap = tr->cap ? 2 * tr->cap : 256;
		tr->refs = xrealloc(tr->refs, tr->cap * sizeof *tr->refs);
		tr->tokens = xrealloc(tr->tokens, tr->cap * sizeof *tr->tokens);
		tr->record_no = xrealloc(tr->record_no, tr->cap * sizeof *tr->record_no);
	}
	tr->refs[tr->n] = ref;
	tr->tokens[tr->n] = tokens;
	tr->record_no[tr->n++] = record_no;
}

struct mix_input {
	struct task_table tasks;
	struct task_records *records;  // per task (index in tasks)
	size_t n_records;              // entries of records
	int64_t *seen_id;              // per task: its task_id in the file being indexed (-1: not seen there)
	struct record_files files;
	char sha256[65];
	const char *first_path;
	msgpack_sbuffer first_header_bytes;
	msgpack_unpacked first_header;  // kept for its tokenizer and template (points into first_header_bytes)
	msgpack_object tokenizer, template;
};

// Read one input once: header checks, its task table, and the offset of every record.
static void index_input(struct mix_input *in, const char *path)
{
	if (strcmp(path, "-") == 0)
		die(EXIT_USAGE, "inputs must be files: mix-tasks reads records back by their offsets");
	struct stream_reader *r = stream_open(path, "medmoe.tokens", 1);
	if (!in->first_path) {
		uint32_t vocab;
		stream_tokenizer(r, in->sha256, &vocab);
		in->first_path = xstrdup(path);
		// Deep-copy the header objects the output needs (the reader's zone dies with it).
		msgpack_sbuffer_init(&in->first_header_bytes);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &in->first_header_bytes, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, r->header);
		msgpack_unpacked_init(&in->first_header);
		msgpack_unpack_next(&in->first_header, in->first_header_bytes.data, in->first_header_bytes.size, NULL);
		const msgpack_object *t = msgpack_map_get(&in->first_header.data, "tokenizer");
		const msgpack_object *tpl = msgpack_map_get(&in->first_header.data, "template");
		in->tokenizer = *t;
		in->template.type = MSGPACK_OBJECT_NIL;
		if (tpl)
			in->template = *tpl;
	} else {
		stream_require_tokenizer(r, in->sha256, in->first_path);
	}
	int carried = task_table_read_header(&in->tasks, r);
	uint32_t file = record_files_add(&in->files, path);

	// Inside one file a task name has one task_id and a task_id one name, whatever the table says.
	size_t n_seen = 0;
	int64_t *seen_id = in->seen_id;
	msgpack_object rec;
	while (stream_next(r, &rec)) {
		size_t name_len, id_len, mask_len, ids_len;
		const char *name = rec_str(r, &rec, "task", &name_len);
		int64_t task_id = rec_int(r, &rec, "task_id");
		rec_str(r, &rec, "id", &id_len);
		rec_bin(r, &rec, "ids", &ids_len);
		rec_bin(r, &rec, "mask", &mask_len);
		if (ids_len % 4 != 0)
			rec_die(r, "ids", "bin of %zu bytes is not a whole number of uint32", ids_len);
		if (mask_len != ids_len / 4)
			rec_die(r, "mask", "%zu entries for %zu ids", mask_len, ids_len / 4);
		if (task_id < 0 || task_id > UINT32_MAX)
			rec_die(r, "task_id", "%lld is not in 0..2^32-1", (long long)task_id);
		size_t t = task_table_intern(&in->tasks, name, name_len);
		if (t >= in->n_records) {
			in->records = xrealloc(in->records, in->tasks.n * sizeof *in->records);
			memset(in->records + in->n_records, 0, (in->tasks.n - in->n_records) * sizeof *in->records);
			in->n_records = in->tasks.n;
		}
		if (t >= n_seen) {
			seen_id = in->seen_id = xrealloc(seen_id, in->tasks.n * sizeof *seen_id);
			for (size_t j = n_seen; j < in->tasks.n; j++)
				seen_id[j] = -1;
			n_seen = in->tasks.n;
		}
		if (seen_id[t] < 0) {
			for (size_t j = 0; j < n_seen; j++)
				if (seen_id[j] == task_id)
					rec_die(r, "task_id", "%lld is task \"%s\" in an earlier record, \"%s\" here",
						(long long)task_id, in->tasks.tasks[j].name, in->tasks.tasks[t].name);
			seen_id[t] = task_id;
		} else if (seen_id[t] != task_id) {
			rec_die(r, "task_id", "task \"%s\" had task_id %lld in an earlier record, %lld here",
				in->tasks.tasks[t].name, (long long)seen_id[t], (long long)task_id);
		}
		if (carried && task_id != in->tasks.tasks[t].id)
			rec_die(r, "task_id", "%lld, but the header's task table gives \"%s\" id %lld", (long long)task_id,
				in->tasks.tasks[t].name, (long long)in->tasks.tasks[t].id);
		uint64_t length = r->object_end - r->record_offset;
		if (length > UINT32_MAX)
			rec_die(r, NULL, "a record of %llu bytes is too big", (unsigned long long)length);
		struct record_ref ref = { r->record_offset, (uint32_t)length, file };
		task_records_push(&in->records[t], ref, (uint32_t)(ids_len / 4), r->record);
	}
	stream_close(r);
}

// Copy REC with its task_id replaced by ID.
static void write_record(struct stream_writer *w, const msgpack_object *rec, int64_t id)
{
	stream_begin_record(w, rec->via.map.size);
	for (uint32_t i = 0; i < rec->via.map.size; i++) {
		const msgpack_object_kv *kv = &rec->via.map.ptr[i];
		msgpack_pack_object(&w->pk, kv->key);
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 7 &&
		    memcmp(kv->key.via.str.ptr, "task_id", 7) == 0)
			msgpack_pack_int64(&w->pk, id);
		else
			msgpack_pack_object(&w->pk, kv->val);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "temperature", required_argument, NULL, 'T' },
		{ "proportional", no_argument, NULL, 'P' },
		{ "weights", required_argument, NULL, 'W' },
		{ "cap-examples", required_argument, NULL, 'c' },
		{ "cap-tokens", required_argument, NULL, 't' },
		{ "budget", required_argument, NULL, 'b' },
		{ "epochs", required_argument, NULL, 'e' },
		{ "seed", required_argument, NULL, 's' },
		{ "stats", required_argument, NULL, 'S' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	double temperature = 1.0;
	int n_strategies = 0, quiet = 0;
	const char *strategy = "proportional", *out_path = "-", *stats_path = NULL;
	struct name_values weights = { 0 }, epochs = { 0 };
	double epochs_all = 0;  // 0 = no limit
	uint64_t cap_examples = 0, cap_tokens = 0, budget = 0, seed = 0;
	int ch;

	set_progname(argv[0]);
	while ((ch = getopt_long(argc, argv, "o:q", longopts, NULL)) != -1) {
		switch (ch) {
		case 'T': {
			char *end;
			temperature = strtod(optarg, &end);
			if (*end || !(temperature > 0) || !isfinite(temperature))
				die(EXIT_USAGE, "--temperature: not a number > 0: %s", optarg);
			strategy = "temperature";
			n_strategies++;
			break;
		}
		case 'P': strategy = "proportional"; temperature = 1.0; n_strategies++; break;
		case 'W': parse_name_values("--weights", optarg, &weights); strategy = "weights"; n_strategies++; break;
		case 'c': cap_examples = parse_count("--cap-examples", optarg); break;
		case 't': cap_tokens = parse_count("--cap-tokens", optarg); break;
		case 'b': budget = parse_count("--budget", optarg); break;
		case 'e':
			if (strchr(optarg, '=')) {
				parse_name_values("--epochs", optarg, &epochs);
			} else {
				char *end;
				epochs_all = strtod(optarg, &end);
				if (*end || !(epochs_all > 0) || !isfinite(epochs_all))
					die(EXIT_USAGE, "--epochs: not a number > 0: %s", optarg);
			}
			break;
		case 's': seed = parse_count("--seed", optarg); break;
		case 'S': stats_path = optarg; break;
		case 'o': out_path = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout, EXIT_OK);
		case 'V': printf("mix-tasks %s\n", MEDMOE_VERSION); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage(stderr, EXIT_USAGE);
	if (n_strategies > 1)
		die(EXIT_USAGE, "--temperature, --proportional and --weights exclude each other");

	struct mix_input in = { 0 };
	record_files_init(&in.files);
	for (int i = 0; i < argc; i++)
		index_input(&in, argv[i]);
	task_table_assign(&in.tasks);
	size_t n = in.tasks.n;
	if (in.n_records < n) {  // tasks named by a header table but with no records here
		in.records = xrealloc(in.records, (n ? n : 1) * sizeof *in.records);
		memset(in.records + in.n_records, 0, (n - in.n_records) * sizeof *in.records);
		in.n_records = n;
	}
	if (n == 0)
		die(EXIT_DATA, "the inputs hold no records");
	for (size_t i = 0; i < weights.n; i++) {
		size_t t;
		for (t = 0; t < n && strcmp(in.tasks.tasks[t].name, weights.names[i]) != 0; t++)
			;
		if (t == n)
			die(EXIT_USAGE, "--weights: no task \"%s\" in the inputs", weights.names[i]);
	}
	for (size_t i = 0; i < epochs.n; i++) {
		size_t t;
		for (t = 0; t < n && strcmp(in.tasks.tasks[t].name, epochs.names[i]) != 0; t++)
			;
		if (t == n)
			die(EXIT_USAGE, "--epochs: no task \"%s\" in the inputs", epochs.names[i]);
	}

	// Caps pick a random subset of each task (the pool); sampling then draws from the pools.
	struct rng cap_rng;
	rng_seed(&cap_rng, seed, 0x636170 /* "cap" */);
	uint32_t **pool_order = xcalloc(n, sizeof *pool_order);
	uint64_t *pool = xcalloc(n, sizeof *pool), *target = xcalloc(n, sizeof *target);
	uint64_t *max_draws = xcalloc(n, sizeof *max_draws), *out_tokens = xcalloc(n, sizeof *out_tokens);
	uint64_t *in_tokens = xcalloc(n, sizeof *in_tokens);
	double *p = xcalloc(n, sizeof *p), *w = xcalloc(n, sizeof *w);
	uint64_t pool_total = 0;
	for (size_t t = 0; t < n; t++) {
		struct task_records *tr = &in.records[t];
		if (tr->n > UINT32_MAX)
			die(EXIT_DATA, "task \"%s\" has more than 2^32 records", in.tasks.tasks[t].name);
		pool_order[t] = xmalloc((tr->n ? tr->n : 1) * sizeof *pool_order[t]);
		for (size_t j = 0; j < tr->n; j++) {
			pool_order[t][j] = (uint32_t)j;
			in_tokens[t] += tr->tokens[j];
		}
		pool[t] = mix_cap(&cap_rng, pool_order[t], tr->n, tr->tokens, cap_examples, cap_tokens);
		pool_total += pool[t];
		double e = lookup(&epochs, in.tasks.tasks[t].name);
		if (e < 0)
			e = epochs_all;
		max_draws[t] = e > 0 ? (uint64_t)floor(e * (double)pool[t]) : UINT64_MAX;
	}
	if (strcmp(strategy, "weights") == 0) {
		for (size_t t = 0; t < n; t++) {
			w[t] = lookup(&weights, in.tasks.tasks[t].name);
			if (w[t] < 0)
				die(EXIT_USAGE, "--weights: task \"%s\" has no weight", in.tasks.tasks[t].name);
			if (pool[t] == 0)
				w[t] = 0;
		}
		mix_normalize(n, w, p);
	} else {
		mix_temperature(n, pool, temperature, p);
	}
	uint64_t total = budget ? budget : pool_total;
	uint64_t drawn_total = mix_targets(n, p, total, max_draws, target);
	if (drawn_total < total)
		warnx("every task is at its --epochs limit: %llu examples instead of %llu",
		      (unsigned long long)drawn_total, (unsigned long long)total);

	// Output tokens per task are known before writing: the header's task table carries them.
	struct mix_sampler s;
	mix_sampler_init(&s, n, pool, target, seed);
	size_t t;
	uint64_t example;
	while (mix_sampler_next(&s, &t, &example))
		out_tokens[t] += in.records[t].tokens[pool_order[t][example]];
	mix_sampler_free(&s);
	for (t = 0; t < n; t++) {
		in.tasks.tasks[t].examples = target[t];
		in.tasks.tasks[t].tokens = out_tokens[t];
	}

	struct stream_writer *wr = stream_create(out_path);
	stream_begin_header(wr, "medmoe.tokens", 1, "mix-tasks", 3 + (in.template.type != MSGPACK_OBJECT_NIL));
	pack_str(&wr->pk, "tokenizer");
	msgpack_pack_object(&wr->pk, in.tokenizer);
	if (in.template.type != MSGPACK_OBJECT_NIL) {
		pack_str(&wr->pk, "template");
		msgpack_pack_object(&wr->pk, in.template);
	}
	task_table_pack(&wr->pk, &in.tasks);
	pack_str(&wr->pk, "inputs");
	msgpack_pack_array(&wr->pk, (size_t)argc);
	for (int i = 0; i < argc; i++)
		pack_str(&wr->pk, argv[i]);
	// The same seed replays the same draws.
	mix_sampler_init(&s, n, pool, target, seed);
	while (mix_sampler_next(&s, &t, &example)) {
		struct task_records *tr = &in.records[t];
		size_t j = pool_order[t][example];
		msgpack_object rec;
		record_files_read(&in.files, &tr->refs[j], tr->record_no[j], &rec);
		write_record(wr, &rec, in.tasks.tasks[t].id);
	}
	mix_sampler_free(&s);
	stream_commit(wr);

	// Report: per task what came in, what the caps kept, what went out.
	uint64_t all_out_tokens = 0;
	for (t = 0; t < n; t++)
		all_out_tokens += out_tokens[t];
	json_t *stats = json_pack("{s:s, s:o, s:I, s:I, s:I, s:o}", "strategy", strategy, "temperature",
				  strcmp(strategy, "weights") == 0 ? json_null() : json_real(temperature),
				  "seed", (json_int_t)seed, "examples", (json_int_t)drawn_total, "tokens",
				  (json_int_t)all_out_tokens, "tasks", json_array());
	if (!quiet)
		fprintf(stderr, "%-24s %5s %10s %12s %10s %10s %12s %7s %8s %8s %8s\n", "task", "id", "input", "in_tokens",
			"pool", "output", "out_tokens", "epochs", "p", "share", "tok_share");
	for (t = 0; t < n; t++) {
		struct task_entry *te = &in.tasks.tasks[t];
		double ep = pool[t] ? (double)target[t] / (double)pool[t] : 0.0;
		double share = drawn_total ? (double)target[t] / (double)drawn_total : 0.0;
		double tok_share = all_out_tokens ? (double)out_tokens[t] / (double)all_out_tokens : 0.0;
		if (!quiet)
			fprintf(stderr, "%-24s %5lld %10zu %12llu %10llu %10llu %12llu %7.3f %8.4f %8.4f %8.4f\n", te->name,
				(long long)te->id, in.records[t].n, (unsigned long long)in_tokens[t],
				(unsigned long long)pool[t], (unsigned long long)target[t],
				(unsigned long long)out_tokens[t], ep, p[t], share, tok_share);
		json_array_append_new(json_object_get(stats, "tasks"),
				      json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "name", te->name,
						"id", (json_int_t)te->id, "input_examples", (json_int_t)in.records[t].n,
						"input_tokens", (json_int_t)in_tokens[t], "pool_examples",
						(json_int_t)pool[t], "examples", (json_int_t)target[t], "tokens",
						(json_int_t)out_tokens[t], "epochs", ep, "probability", p[t], "share",
						share, "token_share", tok_share));
	}
	if (stats_path) {
		struct outfile *sf = outfile_open(stats_path);
		if (json_dumpf(stats, sf->fp, JSON_INDENT(1)) != 0 || fputc('\n', sf->fp) == EOF)
			die_errno("%s", stats_path);
		outfile_commit(sf);
	}
	json_decref(stats);

	for (t = 0; t < n; t++) {
		free(pool_order[t]);
		free(in.records[t].refs);
		free(in.records[t].tokens);
		free(in.records[t].record_no);
	}
	free(in.records);
	free(pool_order);
	free(pool);
	free(target);
	free(max_draws);
	free(out_tokens);
	free(in_tokens);
	free(p);
	free(w);
	free(in.seen_id);
	msgpack_unpacked_destroy(&in.first_header);
	msgpack_sbuffer_destroy(&in.first_header_bytes);
	free((char *)in.first_path);
	record_files_close(&in.files);
	task_table_free(&in.tasks);
	for (size_t i = 0; i < weights.n; i++)
		free(weights.names[i]);
	for (size_t i = 0; i < epochs.n; i++)
		free(epochs.names[i]);
	free(weights.names);
	free(weights.values);
	free(epochs.names);
	free(epochs.values);
	close_stdout_or_die();
	return 0;
}
