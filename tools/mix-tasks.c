// mix-tasks — interleave several medmoe.tokens streams into one, sampling tasks by temperature, proportion or
// explicit weights, with stable task ids.  The sampling math is lib/mix.c; the id rule is lib/task_table.h.
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "die.h"
#include "progress.h"
#include "mix.h"
#include "mix_input.h"
#include "outfile.h"
#include "rng.h"
#include "stream.h"

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s [-q] [--temperature T | --proportional | --weights TASK=W,...]\n"
		"       [--cap-examples N] [--cap-tokens N] [--budget N] [--epochs E | TASK=E,...]\n"
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
		case 'c': cap_examples = cli_count("--cap-examples", optarg); break;
		case 't': cap_tokens = cli_count("--cap-tokens", optarg); break;
		case 'b': budget = cli_count("--budget", optarg); break;
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
		case 's': seed = cli_count("--seed", optarg); break;
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

	struct mix_input in;
	mix_input_init(&in);
	for (int i = 0; i < argc; i++)
		mix_input_add(&in, argv[i]);
	size_t n = mix_input_finish(&in);
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

	// Both outputs are written under temporary names and -o is committed last: a failure anywhere (a --stats
	// path that cannot be written included) leaves no -o output, so make does not take it as up to date.
	struct outfile *sf = stats_path ? outfile_open(stats_path) : NULL;
	struct stream_writer *wr = mix_input_create_output(&in, out_path, argv, argc);
	// The same seed replays the same draws.
	mix_sampler_init(&s, n, pool, target, seed);
	struct progress prog;
	size_t n_written = 0, n_written_tokens = 0;
	progress_start(&prog, "mix-tasks", quiet);
	progress_set_total(&prog, drawn_total);
	while (mix_sampler_next(&s, &t, &example)) {
		mix_input_copy(&in, wr, t, pool_order[t][example]);
		n_written_tokens += in.records[t].tokens[pool_order[t][example]];
		progress_update(&prog, ++n_written, n_written_tokens);
	}
	progress_end(&prog, n_written, n_written_tokens);
	mix_sampler_free(&s);

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
	// Rows in id order: the order of the header's task table.
	size_t *by_id = xmalloc(n * sizeof *by_id);
	for (size_t k = 0; k < n; k++) {
		size_t j = k;
		for (; j > 0 && in.tasks.tasks[by_id[j - 1]].id > in.tasks.tasks[k].id; j--)
			by_id[j] = by_id[j - 1];
		by_id[j] = k;
	}
	for (size_t row = 0; row < n; row++) {
		t = by_id[row];
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
	free(by_id);
	if (sf) {
		if (json_dumpf(stats, sf->fp, JSON_INDENT(1)) != 0 || fputc('\n', sf->fp) == EOF)
			die_errno("%s", stats_path);
		outfile_commit(sf);
	}
	json_decref(stats);
	stream_commit(wr);

	for (t = 0; t < n; t++)
		free(pool_order[t]);
	free(pool_order);
	free(pool);
	free(target);
	free(max_draws);
	free(out_tokens);
	free(in_tokens);
	free(p);
	free(w);
	mix_input_free(&in);
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
