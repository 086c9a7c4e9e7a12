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
#include "dist.h"
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
	if (!task && a->cfg.method == ADAPTER_MOELORA && a->cfg.n_tasks > 1 && dist_rank() == 0)
		warnx("%s: a moelora adapter with %d tasks and no --task: using task 0%s%s%s", run, a->cfg.n_tasks,
		      *name ? " (" : "", *name ? *name : "", *name ? ")" : "");
	free(known.data);
	json_decref(root);
	return id < 0 ? 0 : id;
}

// The exam stream, one question at a time; the first question is read by main (a stream without questions
// leaves no output), and a question that did not fit a pack waits for the next.
struct questions {
	const struct options *o;
	struct model *m;
	struct stream_reader *r;
	const struct schema *spec;
	struct eval_question pending;
	int have_pending;
	size_t read;
};

static int next_question(struct questions *in, struct eval_question *q)
{
	if (in->have_pending) {
		*q = in->pending;
		in->have_pending = 0;
		return 1;
	}
	msgpack_object rec;
	if ((in->o->limit && in->read >= (size_t)in->o->limit) || !stream_next(in->r, &rec))
		return 0;
	schema_check_record(in->spec, in->r, &rec);
	eval_question_read(in->r, &rec, (uint32_t)in->m->cfg.vocab, q);
	in->read++;
	return 1;
}

// A window of questions, in input order: each is answered by one rank (owner), rank 0 writes them all.  One
// rank: a window is one pack (loglik) or one question (generate), as before ranks existed.
struct window {
	struct eval_question *qs;
	int *owner;
	int32_t *n_new;
	size_t n, cap;
};

static void window_add(struct window *w, const struct eval_question *q, int owner)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 64;
		w->qs = xrealloc(w->qs, w->cap * sizeof *w->qs);
		w->owner = xrealloc(w->owner, w->cap * sizeof *w->owner);
		w->n_new = xrealloc(w->n_new, w->cap * sizeof *w->n_new);
	}
	w->qs[w->n] = *q;
	w->owner[w->n] = owner;
	w->n_new[w->n++] = 0;
}

// Rank 0 writes the window in input order (every rank holds every answer: eval_share_answers).
static void window_flush(struct window *w, struct stream_writer *out, int with_scores)
{
	for (size_t i = 0; i < w->n; i++) {
		if (out)
			eval_prediction_write(out, &w->qs[i], with_scores);
		eval_question_free(&w->qs[i]);
	}
	w->n = 0;
}

static void window_free(struct window *w)
{
	free(w->qs);
	free(w->owner);
	free(w->n_new);
}

// Pack questions until a pack holds --batch-tokens (at least one question) and score it in one forward.  With
// several ranks, a window of two packs per rank, pack p answered by rank p mod world: the packs are the ones a
// single process makes, so every score is computed from the same pack.
static size_t run_loglik(const struct options *o, struct questions *in, struct stream_writer *w,
			 struct progress *p, size_t *tokens)
{
	int world = dist_world(), me = dist_rank();
	int per_window = world == 1 ? 1 : 2 * world;
	struct window win = {0};
	size_t done = 0;
	for (;;) {
		int n_packs = 0;
		for (; n_packs < per_window; n_packs++) {
			size_t start = win.n;
			int64_t T = 0;
			struct eval_question q;
			while (next_question(in, &q)) {
				int64_t t = eval_loglik_tokens(&q);
				if (win.n > start && T + t > o->batch_tokens) {
					in->pending = q;   // the next pack starts with it
					in->have_pending = 1;
					break;
				}
				window_add(&win, &q, n_packs % world);
				T += t;
			}
			if (win.n == start)
				break;
			*tokens += (size_t)T;
			if (n_packs % world == me) {
				eval_loglik_score(in->m, win.qs + start, (int)(win.n - start));
				for (size_t i = start; i < win.n; i++)
					eval_choose(&win.qs[i], o->multi_threshold);
			}
		}
		if (win.n == 0)
			break;
		done += win.n;
		eval_share_answers(win.qs, win.n, win.owner, NULL);   // [dist]
		window_flush(&win, w, 1);
		progress_update(p, done, *tokens);
	}
	window_free(&win);
	return done;
}

// Generate mode: the questions stream through the generator (--gen-batch of them decoded together).  One rank:
// straight from the input, each prediction written as it comes back (in input order).  Several ranks: windows of
// 4·gen-batch questions per rank, question i of a window answered by rank i mod world, every answer handed to
// every rank (eval_share_answers), rank 0 writing the window in input order.
struct gen_io {
	struct questions *in;
	struct window *win;
	struct stream_writer *w;
	struct progress *p;
	size_t next, returned, done, *tokens, *unparsed;
	int me;
};

// One rank: the next question of the input, and each answer written at once.
static int gen_next_input(void *ctx, struct eval_question *q)
{
	return next_question(((struct gen_io *)ctx)->in, q);
}

static void gen_done_write(void *ctx, struct eval_question *q, int n_generated)
{
	struct gen_io *io = ctx;
	*io->unparsed += !q->parsed;
	*io->tokens += q->prompt.len + (size_t)n_generated;
	if (io->w)
		eval_prediction_write(io->w, q, 0);
	eval_question_free(q);
	progress_update(io->p, ++io->done, *io->tokens);
}

// Several ranks: this rank's questions of the window, lent to the generator and given back into the window.
static int gen_next_owned(void *ctx, struct eval_question *q)
{
	struct gen_io *io = ctx;
	while (io->next < io->win->n && io->win->owner[io->next] != io->me)
		io->next++;
	if (io->next == io->win->n)
		return 0;
	*q = io->win->qs[io->next++];
	return 1;
}

static void gen_done_owned(void *ctx, struct eval_question *q, int n_generated)
{
	struct gen_io *io = ctx;
	while (io->win->owner[io->returned] != io->me)   // answers come back in the order lent
		io->returned++;
	io->win->qs[io->returned] = *q;
	io->win->n_new[io->returned++] = n_generated;
}

static size_t run_generate(const struct options *o, struct questions *in, struct stream_writer *w,
			   struct progress *p, size_t *tokens, size_t *unparsed)
{
	int world = dist_world(), me = dist_rank();
	struct tokenizer *tok = tokenizer_load(in->m->dir);
	struct eval_generator *g = eval_generator_new(in->m, tok, (int)o->max_new, (const char *const *)o->stops,
						      o->n_stops, (int)o->gen_batch);
	struct window win = {0};
	struct gen_io io = {.in = in, .win = &win, .w = w, .p = p, .tokens = tokens, .unparsed = unparsed, .me = me};
	if (world == 1) {
		eval_generate_all(g, gen_next_input, gen_done_write, &io);
	} else {
		size_t per_window = 4 * (size_t)o->gen_batch * (size_t)world;
		for (;;) {
			struct eval_question q;
			while (win.n < per_window && next_question(in, &q))
				window_add(&win, &q, (int)(win.n % (size_t)world));
			if (win.n == 0)
				break;
			io.next = io.returned = 0;
			eval_generate_all(g, gen_next_owned, gen_done_owned, &io);
			eval_share_answers(win.qs, win.n, win.owner, win.n_new);   // [dist]
			for (size_t i = 0; i < win.n; i++) {
				*unparsed += !win.qs[i].parsed;
				*tokens += win.qs[i].prompt.len + (size_t)win.n_new[i];
			}
			io.done += win.n;
			window_flush(&win, w, 0);
			progress_update(p, io.done, *tokens);
		}
	}
	window_free(&win);
	eval_generator_free(g);
	tokenizer_free(tok);
	return io.done;
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
		case 'V': printf("eval-exam %s (data parallel: %s)\n", MEDMOE_VERSION, dist_build()); return 0;
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
	// [dist] under mpirun / srun: the questions are shared out, rank 0 writes the predictions
	dist_init(0);
	int rank = dist_rank();
	if (dist_world() > 1 && strcmp(o.input, "-") == 0) {
		if (rank > 0)
			dist_leave(EXIT_USAGE);
		die(EXIT_USAGE, "with %d ranks the exam stream must be a file, not stdin (the launcher gives stdin to rank 0 "
				"only)", dist_world());
	}
	// [dist] rank 0 checks the model, the adapter and the stream first, so a mistake is one message
	if (rank > 0)
		dist_barrier("rank 0 checking the model and the exam stream");

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

	struct stream_writer *w = NULL;
	if (rank == 0) {
		w = eval_predictions_create(o.output, r, o.generate ? "generate" : "loglik", o.base, o.adapter, task_name);
		dist_barrier("rank 0 checking the model and the exam stream");   // [dist]
	}
	struct progress p;
	progress_start(&p, "eval-exam", o.quiet || rank > 0);
	size_t tokens = 0, unparsed = 0, n;
	double t0 = now_seconds();
	struct questions in = {.o = &o, .m = m, .r = r, .spec = spec, .pending = first, .have_pending = 1, .read = 1};
	if (o.generate)
		n = run_generate(&o, &in, w, &p, &tokens, &unparsed);
	else
		n = run_loglik(&o, &in, w, &p, &tokens);
	progress_end(&p, n, tokens);
	if (w)
		stream_commit(w);
	if (!o.quiet && rank == 0) {
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
	dist_barrier("the end of the run");   // [dist]
	dist_finalize();
	close_stdout_or_die();
	return 0;
}
