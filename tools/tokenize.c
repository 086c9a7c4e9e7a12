// tokenize — bilingual corpora and exam files → medmoe.tokens / medmoe.exam streams, with Hugging Face's ids.
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_template.h"
#include "corpus.h"
#include "cli.h"
#include "die.h"
#include "exam.h"
#include "progress.h"
#include "stream.h"
#include "tokenizer.h"

// Records are read in batches, encoded on all cores, and written in input order.
#define BATCH 512

struct options {
	const char *tokenizer_path, *template_name, *system, *task, *lang, *output, *exam;
	const char *shots_from[256];  // --shots-from, repeatable: the pool is their union
	int n_shots_from;
	long task_id;        // -1 = by first appearance
	long max_len;        // 0 = no limit
	int drop_long;       // --overflow drop
	long shots;
	int quiet, skip_bad;
	struct corpus_opts corpus;
};

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s --tokenizer path [-q] [--skip-bad] [--template name] [--system text] [--task name]\n"
		"           [--task-id n] [--lang zh|en|auto] [--max-len n] [--overflow truncate|drop]\n"
		"           [--format fmt] [--encoding enc] [--columns map] [--member glob] [-o out] [file ...]\n"
		"       %s --exam bench --tokenizer path [-q] [--skip-bad] [--template name] [--system text]\n"
		"           [--shots k --shots-from file] [--max-len n] [-o out] file ...\n",
		progname(), progname());
	exit(code);
}

// ---- the header's tokenizer identity ----

// The special tokens worth naming in a header (those the templates and models use), when the tokenizer
// has them as special added tokens (Qwen's vocabulary has a plain "<s>", which is not one).

static const char *known_specials[] = {
	"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "<|begin_of_text|>",
	"<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
};

static void tokenizer_identity(const struct tokenizer *tok, struct tokenizer_identity *tid, const char **names,
			       uint32_t *ids)
{
	memset(tid, 0, sizeof *tid);
	memcpy(tid->sha256, tokenizer_sha256(tok), 65);
	tid->vocab_size = tokenizer_vocab_size(tok);
	for (size_t i = 0; i < sizeof known_specials / sizeof known_specials[0]; i++) {
		int64_t id = tokenizer_token_id(tok, known_specials[i]);
		if (id >= 0 && tokenizer_is_special(tok, (uint32_t)id)) {
			names[tid->n_special] = known_specials[i];
			ids[tid->n_special++] = (uint32_t)id;
		}
	}
	tid->special_names = names;
	tid->special_ids = ids;
}

// ---- language ----

// "zh" when Han characters carry the text, "en" when Latin letters do, else "und".  One Han character
// weighs about as much as a short English word, hence the factor.
static const char *detect_lang(const struct conv_turn *turns, int n)
{
	size_t han = 0, latin = 0;
	for (int t = 0; t < n; t++) {
		const unsigned char *s = (const unsigned char *)turns[t].text;
		for (size_t i = 0; i < turns[t].len; i++) {
			if ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')
				latin++;
			else if (s[i] >= 0xe3 && s[i] <= 0xe9)  // lead byte of U+3000..U+9FFF (CJK)
				han++;
		}
	}
	if (han > 0 && han * 4 >= latin)
		return "zh";
	if (latin > 0)
		return "en";
	return "und";
}

// ---- corpus mode ----

struct example {
	struct conversation conv;
	const char *task;
	uint32_t task_id;
	const char *lang;
	struct u32vec ids;
	struct bytevec mask;
	int truncated, dropped;
};

struct task_table {
	char **names;
	size_t n;
};

static uint32_t task_lookup(struct task_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->names[i], name) == 0)
			return (uint32_t)i;
	t->names = xrealloc(t->names, (t->n + 1) * sizeof *t->names);
	t->names[t->n] = xstrdup(name);
	return (uint32_t)t->n++;
}

// The task name a file gives by default: its base name without extensions.
static char *file_stem(const char *path)
{
	if (strcmp(path, "-") == 0)
		return xstrdup("stdin");
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *dot = strchr(base, '.');
	return dot && dot > base ? xstrndup(base, (size_t)(dot - base)) : xstrdup(base);
}

static void encode_example(const struct chat_template *tmpl, const struct options *o, struct example *ex)
{
	struct chat_turn *turns = xmalloc((size_t)(ex->conv.n_turns ? ex->conv.n_turns : 1) * sizeof *turns);
	for (int i = 0; i < ex->conv.n_turns; i++) {
		const struct conv_turn *ct = &ex->conv.turns[i];
		turns[i].role = ct->role == ROLE_SYSTEM ? CHAT_SYSTEM
			      : ct->role == ROLE_USER ? CHAT_USER
			      : ct->role == ROLE_ASSISTANT ? CHAT_ASSISTANT : CHAT_TEXT;
		turns[i].text = ct->text;
		turns[i].len = ct->len;
	}
	ex->ids.len = ex->mask.len = 0;
	template_encode(tmpl, turns, ex->conv.n_turns, &ex->ids, &ex->mask);
	free(turns);
	ex->lang = o->lang && strcmp(o->lang, "auto") != 0 ? o->lang : detect_lang(ex->conv.turns, ex->conv.n_turns);
	ex->truncated = ex->dropped = 0;
	if (o->max_len > 0 && ex->ids.len > (size_t)o->max_len) {
		if (o->drop_long) {
			ex->dropped = 1;
		} else {
			ex->ids.len = ex->mask.len = (size_t)o->max_len;
			ex->truncated = 1;
		}
	}
}

struct totals {
	size_t records, tokens, loss_tokens, truncated, dropped, skipped;
};

static void write_example(struct stream_writer *w, const struct example *ex)
{
	stream_begin_record(w, ex->truncated ? 7 : 6);
	pack_kv_str(&w->pk, "task", ex->task);
	pack_kv_int(&w->pk, "task_id", ex->task_id);
	pack_kv_str(&w->pk, "id", ex->conv.id);
	pack_kv_u32bin(&w->pk, "ids", ex->ids.data, ex->ids.len);
	pack_kv_u8bin(&w->pk, "mask", (const uint8_t *)ex->mask.data, ex->mask.len);
	pack_kv_str(&w->pk, "lang", ex->lang);
	if (ex->truncated)
		pack_kv_bool(&w->pk, "truncated", 1);
}

// The input side of corpus mode: every file in turn, read into batches of examples with their tasks.
struct corpus_feed {
	const struct options *o;
	char **files;
	int n_files, next_file;
	struct corpus *corpus;   // the file being read, or NULL between files
	char *stem;
	struct task_table tasks; // task names in order of first appearance (their ids unless --task-id)
	size_t skipped;
};

// Fill BATCH with up to BATCH examples; 0 when every file is done.
static int feed_batch(struct corpus_feed *in, struct example *batch)
{
	int n = 0;
	while (n < BATCH) {
		if (!in->corpus) {
			if (in->next_file == in->n_files)
				break;
			in->corpus = corpus_open(in->files[in->next_file], &in->o->corpus);
			in->stem = file_stem(in->files[in->next_file]);
		}
		struct example *ex = &batch[n];
		if (!corpus_next(in->corpus, &ex->conv)) {
			in->skipped += corpus_skipped(in->corpus);
			corpus_close(in->corpus);
			in->corpus = NULL;
			free(in->stem);
			in->next_file++;
			continue;
		}
		const char *task = in->o->task ? in->o->task : ex->conv.task_hint ? ex->conv.task_hint : in->stem;
		uint32_t first_seen = task_lookup(&in->tasks, task);
		ex->task = in->tasks.names[first_seen];  // outlives the file and the record
		ex->task_id = in->o->task_id >= 0 ? (uint32_t)in->o->task_id : first_seen;
		n++;
	}
	return n;
}

static void run_corpus(const struct options *o, const struct chat_template *tmpl,
		       int n_files, char **files, struct stream_writer *w, struct totals *tot)
{
	struct corpus_feed in = { .o = o, .files = files, .n_files = n_files };
	struct example *cur = xcalloc(BATCH, sizeof *cur), *next = xcalloc(BATCH, sizeof *next);
	struct progress prog;
	progress_start(&prog, "tokenize", o->quiet);
	int n = feed_batch(&in, cur);
	while (n > 0) {
		// One thread reads the next batch while the others (and then it) encode this one: reading JSON is
		// serial, and without the overlap it would leave a core idle for a third of the time.
		int n_next = 0;
		#pragma omp parallel
		{
			#pragma omp single nowait
			n_next = feed_batch(&in, next);
			#pragma omp for schedule(dynamic, 4)
			for (int i = 0; i < n; i++)
				encode_example(tmpl, o, &cur[i]);
		}
		for (int i = 0; i < n; i++) {
			struct example *ex = &cur[i];
			if (ex->dropped) {
				tot->dropped++;
			} else {
				write_example(w, ex);
				tot->records++;
				tot->tokens += ex->ids.len;
				for (size_t k = 0; k < ex->mask.len; k++)
					tot->loss_tokens += (unsigned char)ex->mask.data[k];
				tot->truncated += ex->truncated;
			}
			conversation_free(&ex->conv);
		}
		progress_update(&prog, tot->records + tot->dropped, tot->tokens);
		struct example *swap = cur;
		cur = next;
		next = swap;
		n = n_next;
	}
	progress_end(&prog, tot->records + tot->dropped, tot->tokens);
	tot->skipped += in.skipped;
	for (int i = 0; i < BATCH; i++) {
		free(cur[i].ids.data);
		free(cur[i].mask.data);
		free(next[i].ids.data);
		free(next[i].mask.data);
	}
	free(cur);
	free(next);
	for (size_t i = 0; i < in.tasks.n; i++)
		free(in.tasks.names[i]);
	free(in.tasks.names);
}

// ---- exam mode ----

struct question {
	struct exam_item item;
	char *prompt_text;
	struct u32vec prompt;
	struct u32vec option_ids[EXAM_MAX_OPTIONS];
	int shots_used;
};

static void encode_question(const struct chat_template *tmpl, const struct options *o,
			    const struct exam_item *pool, size_t n_pool, struct question *q)
{
	const struct exam_item *shots[64];
	size_t n_shots = 0;
	if (o->shots > 0 && pool)
		n_shots = exam_pick_shots(&q->item, pool, n_pool, (size_t)o->shots, shots);
	// Drop shots, last first, until the prompt fits --max-len (CMMLU drops examples when too long).
	for (;;) {
		free(q->prompt_text);
		q->prompt_text = exam_prompt(&q->item, shots, n_shots);
		q->prompt.len = 0;
		template_encode_prompt(tmpl, q->prompt_text, strlen(q->prompt_text), &q->prompt);
		if (o->max_len <= 0 || q->prompt.len <= (size_t)o->max_len || n_shots == 0)
			break;
		n_shots--;
	}
	q->shots_used = (int)n_shots;
	// The answer letter as the model would write it next: after the bench's cue in a plain prompt (a space
	// after "Answer:", nothing after "答案是："), first thing in an opened assistant turn, and after the
	// space that follows "[/INST]" in LLaMA-2's template.
	const char *sep = tmpl->kind == TEMPLATE_NONE ? exam_answer_lead(&q->item)
			: tmpl->kind == TEMPLATE_LLAMA2 ? " " : "";
	for (int i = 0; i < q->item.n_options; i++) {
		char answer[8];
		snprintf(answer, sizeof answer, "%s%c", sep, q->item.letters[i]);
		template_encode_continuation(tmpl, q->prompt_text, strlen(q->prompt_text), q->prompt.data,
					     q->prompt.len, answer, &q->option_ids[i]);
	}
}

static void write_question(struct stream_writer *w, const struct question *q)
{
	const struct exam_item *it = &q->item;
	msgpack_packer *pk = &w->pk;
	stream_begin_record(w, 11);
	pack_kv_str(pk, "id", it->id);
	pack_kv_str(pk, "bench", it->bench);
	pack_str(pk, "categories");
	msgpack_pack_map(pk, it->n_fields);
	for (int i = 0; i < it->n_fields; i++)
		pack_kv_str(pk, it->field_key[i], it->field_val[i]);
	pack_kv_str(pk, "type", it->multi ? "multi" : "single");
	pack_str(pk, "options");
	msgpack_pack_array(pk, it->n_options);
	for (int i = 0; i < it->n_options; i++)
		pack_strn(pk, &it->letters[i], 1);
	pack_kv_str(pk, "answer", it->answer);
	pack_kv_u32bin(pk, "prompt", q->prompt.data, q->prompt.len);
	pack_str(pk, "option_ids");
	msgpack_pack_array(pk, it->n_options);
	for (int i = 0; i < it->n_options; i++)
		pack_u32bin(pk, q->option_ids[i].data, q->option_ids[i].len);
	pack_kv_str(pk, "lang", it->lang);
	pack_kv_str(pk, "question", it->question);
	pack_str(pk, "option_text");
	msgpack_pack_array(pk, it->n_options);
	for (int i = 0; i < it->n_options; i++)
		pack_str(pk, it->option_text[i]);
}

static void run_exam(const struct options *o, const struct chat_template *tmpl, int n_files, char **files,
		     struct stream_writer *w, struct totals *tot)
{
	size_t n_pool = 0;
	struct exam_item *pool = NULL;
	for (int i = 0; i < o->n_shots_from; i++) {
		size_t n;
		struct exam_item *items = exam_read_all(o->exam, o->shots_from[i], &n);
		pool = xrealloc(pool, (n_pool + n) * sizeof *pool);
		memcpy(pool + n_pool, items, n * sizeof *items);
		n_pool += n;
		free(items);  // the items' strings now belong to the pool
	}
	struct question *batch = xcalloc(BATCH, sizeof *batch);
	struct progress prog;
	size_t short_of_shots = 0;
	progress_start(&prog, "tokenize", o->quiet);
	for (int f = 0; f < n_files; f++) {
		struct exam_reader *r = exam_open(o->exam, files[f], o->skip_bad);
		int more = 1;
		while (more) {
			int n = 0;
			while (n < BATCH && (more = exam_next(r, &batch[n].item)))
				n++;
			#pragma omp parallel for schedule(dynamic, 4)
			for (int i = 0; i < n; i++)
				encode_question(tmpl, o, pool, n_pool, &batch[i]);
			for (int i = 0; i < n; i++) {
				write_question(w, &batch[i]);
				tot->records++;
				tot->tokens += batch[i].prompt.len;
				short_of_shots += batch[i].shots_used < o->shots;
				exam_item_free(&batch[i].item);
				free(batch[i].prompt_text);
				batch[i].prompt_text = NULL;
			}
			progress_update(&prog, tot->records, tot->tokens);
		}
		tot->skipped += exam_skipped(r);
		exam_close(r);
	}
	progress_end(&prog, tot->records, tot->tokens);
	if (short_of_shots && !o->quiet)
		warnx("%zu questions got fewer than %ld shots (too few in the pool, or dropped to fit --max-len)",
		      short_of_shots, o->shots);
	for (int i = 0; i < BATCH; i++) {
		free(batch[i].prompt.data);
		for (int k = 0; k < EXAM_MAX_OPTIONS; k++)
			free(batch[i].option_ids[k].data);
	}
	free(batch);
	if (pool)
		exam_items_free(pool, n_pool);
}

int main(int argc, char **argv)
{
	enum { OPT_TEMPLATE = 256, OPT_SYSTEM, OPT_TASK, OPT_TASK_ID, OPT_LANG, OPT_MAX_LEN, OPT_OVERFLOW, OPT_FORMAT,
	       OPT_ENCODING, OPT_COLUMNS, OPT_MEMBER, OPT_SKIP_BAD, OPT_EXAM, OPT_SHOTS, OPT_SHOTS_FROM, OPT_TOKENIZER };
	static const struct option longopts[] = {
		{ "tokenizer", required_argument, NULL, OPT_TOKENIZER },
		{ "template", required_argument, NULL, OPT_TEMPLATE },
		{ "system", required_argument, NULL, OPT_SYSTEM },
		{ "task", required_argument, NULL, OPT_TASK },
		{ "task-id", required_argument, NULL, OPT_TASK_ID },
		{ "lang", required_argument, NULL, OPT_LANG },
		{ "max-len", required_argument, NULL, OPT_MAX_LEN },
		{ "overflow", required_argument, NULL, OPT_OVERFLOW },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "encoding", required_argument, NULL, OPT_ENCODING },
		{ "columns", required_argument, NULL, OPT_COLUMNS },
		{ "member", required_argument, NULL, OPT_MEMBER },
		{ "skip-bad", no_argument, NULL, OPT_SKIP_BAD },
		{ "exam", required_argument, NULL, OPT_EXAM },
		{ "shots", required_argument, NULL, OPT_SHOTS },
		{ "shots-from", required_argument, NULL, OPT_SHOTS_FROM },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct options o = { .template_name = "none", .output = "-", .task_id = -1 };
	int ch;

	set_progname(argv[0]);
	while ((ch = getopt_long(argc, argv, "o:q", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_TOKENIZER: o.tokenizer_path = optarg; break;
		case OPT_TEMPLATE: o.template_name = optarg; break;
		case OPT_SYSTEM: o.system = optarg; break;
		case OPT_TASK: o.task = optarg; break;
		case OPT_TASK_ID: o.task_id = cli_int("--task-id", optarg, 0, INT64_MAX); break;
		case OPT_LANG:
			if (strcmp(optarg, "zh") && strcmp(optarg, "en") && strcmp(optarg, "auto"))
				die(EXIT_USAGE, "--lang: zh, en or auto, not %s", optarg);
			o.lang = optarg;
			break;
		case OPT_MAX_LEN: o.max_len = cli_int("--max-len", optarg, 1, INT64_MAX); break;
		case OPT_OVERFLOW:
			if (strcmp(optarg, "truncate") == 0)
				o.drop_long = 0;
			else if (strcmp(optarg, "drop") == 0)
				o.drop_long = 1;
			else
				die(EXIT_USAGE, "--overflow: truncate or drop, not %s", optarg);
			break;
		case OPT_FORMAT: o.corpus.format = optarg; break;
		case OPT_ENCODING: o.corpus.encoding = optarg; break;
		case OPT_COLUMNS: o.corpus.columns = optarg; break;
		case OPT_MEMBER: o.corpus.member = optarg; break;
		case OPT_SKIP_BAD: o.skip_bad = o.corpus.skip_bad = 1; break;
		case OPT_EXAM:
			if (!exam_bench_known(optarg))
				die(EXIT_USAGE, "--exam: unknown benchmark %s (known: %s)", optarg, exam_bench_list());
			o.exam = optarg;
			break;
		case OPT_SHOTS: o.shots = cli_int("--shots", optarg, 0, INT64_MAX); break;
		case OPT_SHOTS_FROM:
			if (o.n_shots_from == (int)(sizeof o.shots_from / sizeof o.shots_from[0]))
				die(EXIT_USAGE, "--shots-from: at most 256 files");
			o.shots_from[o.n_shots_from++] = optarg;
			break;
		case 'o': o.output = optarg; break;
		case 'q': o.quiet = 1; break;
		case 'h': usage(stdout, EXIT_OK);
		case 'V': printf("tokenize %s\n", MEDMOE_VERSION); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (!o.tokenizer_path)
		die(EXIT_USAGE, "--tokenizer is required (a tokenizer.json or a model directory)");
	enum template_kind kind;
	if (template_parse(o.template_name, &kind) != 0)
		die(EXIT_USAGE, "--template: unknown template %s (known: chatml, llama2, llama3, none)", o.template_name);
	if (o.shots > 0 && o.n_shots_from == 0)
		die(EXIT_USAGE, "--shots needs --shots-from FILE (the benchmark's dev split)");
	if (o.shots > 64)
		die(EXIT_USAGE, "--shots: at most 64");
	if (o.exam && argc == 0)
		die(EXIT_USAGE, "--exam needs the exam files as arguments");
	static char *stdin_only[] = { "-", NULL };
	if (argc == 0) {
		argv = stdin_only;
		argc = 1;
	}

	struct tokenizer *tok = tokenizer_load(o.tokenizer_path);
	struct chat_template tmpl;
	template_init(&tmpl, tok, kind, o.system);
	const char *special_names[16];
	uint32_t special_ids[16];
	struct tokenizer_identity tid;
	tokenizer_identity(tok, &tid, special_names, special_ids);

	struct stream_writer *w = stream_create(o.output);
	msgpack_packer *pk = &w->pk;
	struct totals tot = { 0 };
	if (o.exam) {
		stream_begin_header(w, "medmoe.exam", 1, "tokenize", 4);
		pack_kv_tokenizer(pk, &tid);
		pack_kv_str(pk, "bench", o.exam);
		pack_kv_int(pk, "shots", o.shots);
		pack_kv_str(pk, "template", template_name(kind));
		run_exam(&o, &tmpl, argc, argv, w, &tot);
	} else {
		int with_tasks = o.task && o.task_id >= 0;
		stream_begin_header(w, "medmoe.tokens", 1, "tokenize", with_tasks ? 4 : 3);
		pack_kv_tokenizer(pk, &tid);
		pack_kv_str(pk, "template", template_name(kind));
		pack_str(pk, "inputs");
		msgpack_pack_array(pk, argc);
		for (int i = 0; i < argc; i++)
			pack_str(pk, argv[i]);
		if (with_tasks) {
			// An explicit --task/--task-id pins the id for mix-tasks.
			pack_str(pk, "tasks");
			msgpack_pack_array(pk, 1);
			msgpack_pack_map(pk, 2);
			pack_kv_str(pk, "name", o.task);
			pack_kv_int(pk, "id", o.task_id);
		}
		run_corpus(&o, &tmpl, argc, argv, w, &tot);
	}
	stream_commit(w);
	if (!o.quiet) {
		fprintf(stderr, "%s: %zu records, %zu tokens", progname(), tot.records, tot.tokens);
		if (!o.exam)
			fprintf(stderr, " (%zu with loss)", tot.loss_tokens);
		if (tot.truncated)
			fprintf(stderr, ", %zu truncated to %ld", tot.truncated, o.max_len);
		if (tot.dropped)
			fprintf(stderr, ", %zu longer than %ld dropped", tot.dropped, o.max_len);
		if (tot.skipped)
			fprintf(stderr, ", %zu bad records skipped", tot.skipped);
		fputc('\n', stderr);
	}
	tokenizer_free(tok);
	close_stdout_or_die();
	return 0;
}
