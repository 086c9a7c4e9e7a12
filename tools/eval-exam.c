// eval-exam — answer the questions of a medmoe.exam stream with a model: option log-likelihoods (loglik) or
// greedy generation and the benchmark's answer extraction (generate); a medmoe.predictions stream out.
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "adapter_io.h"
#include "cli.h"
#include "die.h"
#include "eval.h"
#include "model.h"
#include "outfile.h"
#include "progress.h"
#include "schema.h"
#include "stream.h"
#include "tokenizer.h"

#define MAX_STOPS 16

struct options {
	const char *base, *adapter, *task, *output, *input;
	int generate;
	int64_t batch_tokens, max_new, limit, gen_batch;
	double multi_threshold;
	char *stops[MAX_STOPS];
	int n_stops;
	int quiet;
	struct model_options model;   // --device, --dtype
	int device_index;
};

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s --base model [--adapter run] [--task name] [--mode loglik|generate]\n"
		"       [--batch-tokens n] [--multi-threshold p] [--max-new-tokens n] [--stop string]\n"
		"       [--gen-batch n] [--limit n] [--device cpu|cuda|cuda:N] [--dtype bf16|f16|f32] [-q]\n"
		"       [-o predictions] [exam_stream]\n",
		progname());
	exit(code);
}

// A stop string as typed: \n, \t and \\ stand for a newline, a tab and a backslash (a blank line is "\n\n").
static char *unescape(const char *arg)
{
	char *out = xstrdup(arg), *p = out;
	for (const char *s = arg; *s; s++) {
		if (*s == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\')) {
			s++;
			*p++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : '\\';
		} else {
			*p++ = *s;
		}
	}
	*p = '\0';
	return out;
}

// The task id --task names in RUN's adapter_config.json ("tasks": [{id, name}]), for the moelora gate; without
// --task, task 0, with a warning when a moelora adapter has several (its gate differs per task).  *NAME gets
// the name used (for the predictions header; NULL when the run lists no tasks).
static int adapter_task_id(const char *run, const struct adapter *a, const char *task, char **name)
{
	json_t *root = adapter_config_read(run);
	const json_t *tasks = json_object_get(root, "tasks"), *t;
	size_t i;
	int id = -1;
	struct bytevec known = {0};
	*name = NULL;
	json_array_foreach(tasks, i, t) {
		const char *tn = json_string_value(json_object_get(t, "name"));
		int tid = (int)json_integer_value(json_object_get(t, "id"));
		if (!tn)
			continue;
		bytevec_puts(&known, known.len ? ", " : "");
		bytevec_puts(&known, tn);
		if ((task && strcmp(task, tn) == 0) || (!task && tid == 0)) {
			id = tid;
			free(*name);
			*name = xstrdup(tn);
		}
	}
	if (task && id < 0)
		die(EXIT_USAGE, "--task %s: not a task of %s (its tasks: %s)", task, run, known.len ? known.data : "none");
	if (!task && a->cfg.method == ADAPTER_MOELORA && a->cfg.n_tasks > 1)
		warnx("%s: a moelora adapter with %d tasks and no --task: using task 0%s%s%s", run, a->cfg.n_tasks,
		      *name ? " (" : "", *name ? *name : "", *name ? ")" : "");
	free(known.data);
	json_decref(root);
	return id < 0 ? 0 : id;
}

// Read questions until the pack holds --batch-tokens (at least one), score the pack in one forward, write it;
// FIRST is the question main read already.
static size_t run_loglik(const struct options *o, struct model *m, struct stream_reader *r,
			 const struct schema *spec, struct eval_question *first, struct stream_writer *w,
			 struct progress *p, size_t *tokens)
{
	size_t cap = 64, done = 0;
	struct eval_question *batch = xcalloc(cap, sizeof *batch);
	msgpack_object rec;
	int more = 1;
	struct eval_question pending = *first;   // read but not yet fitted into a pack
	int have_pending = 1;
	while (more || have_pending) {
		size_t n = 0;
		int64_t T = 0;
		for (;;) {
			if (!have_pending) {
				if (!more || (o->limit && done + n >= (size_t)o->limit) || !stream_next(r, &rec)) {
					more = 0;
					break;
				}
				schema_check_record(spec, r, &rec);
				eval_question_read(r, &rec, (uint32_t)m->cfg.vocab, &pending);
				have_pending = 1;
			}
			int64_t t = eval_loglik_tokens(&pending);
			if (n > 0 && T + t > o->batch_tokens)
				break;   // the next pack starts with it
			if (n == cap)
				batch = xrealloc(batch, (cap *= 2) * sizeof *batch);
			batch[n++] = pending;
			have_pending = 0;
			T += t;
		}
		if (n == 0)
			break;
		eval_loglik_score(m, batch, (int)n);
		for (size_t i = 0; i < n; i++) {
			eval_choose(&batch[i], o->multi_threshold);
			eval_prediction_write(w, &batch[i], 1);
			eval_question_free(&batch[i]);
		}
		done += n;
		*tokens += (size_t)T;
		progress_update(p, done, *tokens);
	}
	free(batch);
	return done;
}

// Generate mode: the questions stream through the generator (--gen-batch of them decoded together) and their
// predictions come back in input order.
struct gen_io {
	const struct options *o;
	const struct model *m;
	struct stream_reader *r;
	const struct schema *spec;
	struct eval_question *first;   // read by main, handed out first
	size_t n_read, done, *tokens, *unparsed;
	struct stream_writer *w;
	struct progress *p;
};

static int gen_next(void *ctx, struct eval_question *q)
{
	struct gen_io *io = ctx;
	msgpack_object rec;
	if (io->o->limit && io->n_read >= (size_t)io->o->limit)
		return 0;
	if (io->first) {
		*q = *io->first;
		io->first = NULL;
	} else {
		if (!stream_next(io->r, &rec))
			return 0;
		schema_check_record(io->spec, io->r, &rec);
		eval_question_read(io->r, &rec, (uint32_t)io->m->cfg.vocab, q);
	}
	io->n_read++;
	return 1;
}

static void gen_done(void *ctx, struct eval_question *q, int n_generated)
{
	struct gen_io *io = ctx;
	*io->unparsed += !q->parsed;
	eval_prediction_write(io->w, q, 0);
	*io->tokens += q->prompt.len + (size_t)n_generated;
	eval_question_free(q);
	progress_update(io->p, ++io->done, *io->tokens);
}

static size_t run_generate(const struct options *o, struct model *m, struct stream_reader *r,
			   const struct schema *spec, struct eval_question *first, struct stream_writer *w,
			   struct progress *p, size_t *tokens, size_t *unparsed)
{
	struct tokenizer *tok = tokenizer_load(m->dir);
	struct eval_generator *g = eval_generator_new(m, tok, (int)o->max_new, (const char *const *)o->stops,
						      o->n_stops, (int)o->gen_batch);
	struct gen_io io = {.o = o, .m = m, .r = r, .spec = spec, .first = first, .tokens = tokens,
			    .unparsed = unparsed, .w = w, .p = p};
	size_t done = eval_generate_all(g, gen_next, gen_done, &io);
	eval_generator_free(g);
	tokenizer_free(tok);
	return done;
}

int main(int argc, char **argv)
{
	enum { OPT_BASE = 256, OPT_ADAPTER, OPT_TASK, OPT_MODE, OPT_BATCH_TOKENS, OPT_MULTI_THRESHOLD,
	       OPT_MAX_NEW, OPT_STOP, OPT_GEN_BATCH, OPT_LIMIT, OPT_DEVICE, OPT_DTYPE };
	static const struct option longopts[] = {
		{ "base", required_argument, NULL, OPT_BASE },
		{ "adapter", required_argument, NULL, OPT_ADAPTER },
		{ "task", required_argument, NULL, OPT_TASK },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "batch-tokens", required_argument, NULL, OPT_BATCH_TOKENS },
		{ "multi-threshold", required_argument, NULL, OPT_MULTI_THRESHOLD },
		{ "max-new-tokens", required_argument, NULL, OPT_MAX_NEW },
		{ "stop", required_argument, NULL, OPT_STOP },
		{ "gen-batch", required_argument, NULL, OPT_GEN_BATCH },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "dtype", required_argument, NULL, OPT_DTYPE },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct options o = { .output = "-", .input = "-", .batch_tokens = 2048, .max_new = 32, .gen_batch = 16,
			     .device_index = -1 };
	int ch;

	set_progname(argv[0]);
	while ((ch = getopt_long(argc, argv, "o:q", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_BASE: o.base = optarg; break;
		case OPT_ADAPTER: o.adapter = optarg; break;
		case OPT_TASK: o.task = optarg; break;
		case OPT_MODE:
			if (strcmp(optarg, "loglik") == 0)
				o.generate = 0;
			else if (strcmp(optarg, "generate") == 0)
				o.generate = 1;
			else
				die(EXIT_USAGE, "--mode: loglik or generate, not %s", optarg);
			break;
		case OPT_BATCH_TOKENS: o.batch_tokens = cli_int("--batch-tokens", optarg, 1, INT32_MAX); break;
		case OPT_MULTI_THRESHOLD:
			o.multi_threshold = cli_real("--multi-threshold", optarg, 0, 1);
			if (o.multi_threshold == 0 || o.multi_threshold == 1)
				die(EXIT_USAGE, "--multi-threshold: a probability strictly between 0 and 1, not %s", optarg);
			break;
		case OPT_MAX_NEW: o.max_new = cli_int("--max-new-tokens", optarg, 1, 1 << 20); break;
		case OPT_STOP:
			if (o.n_stops == MAX_STOPS)
				die(EXIT_USAGE, "--stop: at most %d stop strings", MAX_STOPS);
			o.stops[o.n_stops] = unescape(optarg);
			if (!*o.stops[o.n_stops])
				die(EXIT_USAGE, "--stop: an empty stop string would stop at once");
			o.n_stops++;
			break;
		case OPT_GEN_BATCH: o.gen_batch = cli_int("--gen-batch", optarg, 1, OPS_ROWWISE_MAX_ROWS); break;
		case OPT_LIMIT: o.limit = cli_int("--limit", optarg, 1, INT64_MAX); break;
		case OPT_DEVICE: cli_device(optarg, &o.model, &o.device_index); break;
		case OPT_DTYPE: cli_weight_dtype(optarg, &o.model); break;
		case 'o': o.output = optarg; break;
		case 'q': o.quiet = 1; break;
		case 'h': usage(stdout, EXIT_OK);
		case 'V': printf("eval-exam %s\n", MEDMOE_VERSION); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (!o.base)
		die(EXIT_USAGE, "--base is required (a Hugging Face model directory)");
	if (argc > 1)
		usage(stderr, EXIT_USAGE);
	if (argc == 1)
		o.input = argv[0];
	if (o.task && !o.adapter)
		die(EXIT_USAGE, "--task selects an adapter's task: it needs --adapter");

	device_init(o.model.device, o.device_index);
	struct model *m = model_load_with(o.base, &o.model);
	struct adapter *adapter = NULL;
	char *task_name = NULL;
	if (o.adapter) {
		// refuses a run trained on another base (config.json or tokenizer), naming both
		adapter = adapter_load(o.adapter, m);
		model_set_adapter(m, adapter, adapter_task_id(o.adapter, adapter, o.task, &task_name));
	}
	struct stream_reader *r = stream_open(o.input, "medmoe.exam", 1);
	struct schema *spec = schema_load("medmoe.exam");
	schema_check_header(spec, r);
	model_require_stream(m, r);

	// The first question is read before the output is created, so a stream without questions leaves nothing.
	msgpack_object rec;
	if (!stream_next(r, &rec))
		die_data(r->path, -1, NULL, "no questions: the exam stream has a header and no records");
	struct eval_question first;
	schema_check_record(spec, r, &rec);
	eval_question_read(r, &rec, (uint32_t)m->cfg.vocab, &first);

	struct stream_writer *w = eval_predictions_create(o.output, r, o.generate ? "generate" : "loglik", o.base,
							  o.adapter, task_name);
	struct progress p;
	progress_start(&p, "eval-exam", o.quiet);
	size_t tokens = 0, unparsed = 0, n;
	double t0 = now_seconds();
	if (o.generate)
		n = run_generate(&o, m, r, spec, &first, w, &p, &tokens, &unparsed);
	else
		n = run_loglik(&o, m, r, spec, &first, w, &p, &tokens);
	progress_end(&p, n, tokens);
	stream_commit(w);
	if (!o.quiet) {
		double s = now_seconds() - t0;
		fprintf(stderr, "%s: %zu questions (%s), %zu tokens, %.1f s, %.1f questions/s", progname(), n,
			o.generate ? "generate" : "loglik", tokens, s, s > 0 ? n / s : 0.0);
		if (o.generate)
			fprintf(stderr, ", %zu unparsed", unparsed);
		fputc('\n', stderr);
	}
	for (int i = 0; i < o.n_stops; i++)
		free(o.stops[i]);
	schema_free(spec);
	stream_close(r);
	model_free(m);
	adapter_free(adapter);
	free(task_name);
	close_stdout_or_die();
	return 0;
}
