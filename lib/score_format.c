// score_format.c — text, TSV, Markdown and JSON reports (layouts in score_format.h).
#include "score_format.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "die.h"

int display_width(const char *s)
{
	int width = 0;
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	while (*p) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate(p, -1, &cp);
		if (n <= 0) {
			width++;
			p++;
			continue;
		}
		int w = utf8proc_charwidth(cp);
		width += w > 0 ? w : 0;
		p += n;
	}
	return width;
}

char *score_row_label(const struct score_row *row)
{
	switch (row->kind) {
	case ROW_ALL: return xstrdup("all");
	case ROW_BENCH: return xstrdup(row->bench);
	case ROW_MACRO: return xstrdup("  macro (exam_type mean)");
	case ROW_MULTI_EXACT: return xstrdup("  multi-answer exact");
	case ROW_MULTI_F1: return xstrdup("  multi-answer F1");
	case ROW_CATEGORY: return xasprintf("  %s=%s%s", row->key, row->value, row->macro ? " (macro)" : "");
	}
	return xstrdup("?");
}

// ---- text and Markdown: percentages ----

static char *pct(double v) { return isnan(v) ? xstrdup("-") : xasprintf("%.2f", 100 * v); }

static char *pct_ci(double lo, double hi)
{
	return isnan(lo) ? xstrdup("-") : xasprintf("[%.2f, %.2f]", 100 * lo, 100 * hi);
}

static char *signed_pct(double v) { return isnan(v) ? xstrdup("-") : xasprintf("%+.2f", 100 * v); }

static char *signed_pct_ci(double lo, double hi)
{
	return isnan(lo) ? xstrdup("-") : xasprintf("[%+.2f, %+.2f]", 100 * lo, 100 * hi);
}

static char *p_value(double p) { return p < 0.0001 ? xasprintf("%.1e", p) : xasprintf("%.4f", p); }

enum { MAX_COLS = 11 };

// One table: a header row and the cells of every report row, as strings.
struct table {
	size_t n_cols, n_rows;
	const char *head[MAX_COLS];
	char **cells;   // n_rows * n_cols
};

static void build_table(struct table *t, const struct score_report *rep)
{
	static const char *const base_head[] = { "group", "n", "score", "95% CI", "unparsed%" };
	static const char *const paired_head[] = { "paired", "baseline", "diff", "diff 95% CI", "b/c", "McNemar p" };
	t->n_cols = 0;
	for (size_t i = 0; i < 5; i++)
		t->head[t->n_cols++] = base_head[i];
	if (rep->has_baseline)
		for (size_t i = 0; i < 6; i++)
			t->head[t->n_cols++] = paired_head[i];
	t->n_rows = rep->n_rows;
	t->cells = xcalloc(t->n_rows * t->n_cols, sizeof *t->cells);
	for (size_t r = 0; r < rep->n_rows; r++) {
		const struct score_row *row = &rep->rows[r];
		char **c = &t->cells[r * t->n_cols];
		c[0] = score_row_label(row);
		c[1] = xasprintf("%zu", row->n);
		c[2] = pct(row->value_pt);
		c[3] = pct_ci(row->lo, row->hi);
		c[4] = row->n ? xasprintf("%.2f", 100.0 * (double)row->n_unparsed / (double)row->n) : xstrdup("-");
		if (!rep->has_baseline)
			continue;
		if (!row->has_paired) {
			for (size_t k = 5; k < 11; k++)
				c[k] = xstrdup("");
			continue;
		}
		c[5] = xasprintf("%zu", row->n_paired);
		c[6] = pct(row->base_acc);
		c[7] = signed_pct(row->diff);
		c[8] = signed_pct_ci(row->diff_lo, row->diff_hi);
		c[9] = xasprintf("%llu/%llu", (unsigned long long)row->b, (unsigned long long)row->c);
		c[10] = p_value(row->p_mcnemar);
	}
}

static void free_table(struct table *t)
{
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static void pad(FILE *fp, int n)
{
	for (int i = 0; i < n; i++)
		fputc(' ', fp);
}

static void write_meta_lines(FILE *fp, const struct score_report *rep, const struct score_meta *meta,
			     const char *prefix)
{
	const struct pred_set *run = meta->run;
	fprintf(fp, "%s%s%s%zu questions from %zu file%s, mode %s", prefix, meta->label ? meta->label : "",
		meta->label ? ": " : "", run->n, run->n_files, run->n_files == 1 ? "" : "s", run->mode);
	if (run->model_base)
		fprintf(fp, ", model %s%s%s", run->model_base, run->model_adapter ? " + " : "",
			run->model_adapter ? run->model_adapter : "");
	if (meta->opt->n_resamples)
		fprintf(fp, "; %.0f%% percentile bootstrap, %zu resamples, seed %llu", 100 * meta->opt->level,
			meta->opt->n_resamples, (unsigned long long)meta->opt->seed);
	fputc('\n', fp);
	if (rep->has_baseline)
		fprintf(fp, "%sbaseline %s: %zu questions paired, %zu only in the run, %zu only in the baseline\n", prefix,
			meta->baseline_path, rep->n_paired, rep->only_run, rep->only_base);
}

static void write_subject_lists(FILE *fp, const struct score_report *rep, const char *prefix)
{
	for (size_t i = 0; i < rep->n_subject_lists; i++) {
		const struct subject_list *l = &rep->subject_lists[i];
		fprintf(fp, "%s%s subjects (%zu):", prefix, l->bench, l->n);
		for (size_t j = 0; j < l->n; j++)
			fprintf(fp, "%s %s", j ? "," : "", l->subjects[j]);
		fputc('\n', fp);
	}
}

void score_write_text(FILE *fp, const struct score_report *rep, const struct score_meta *meta)
{
	struct table t;
	build_table(&t, rep);
	int width[MAX_COLS];
	for (size_t k = 0; k < t.n_cols; k++) {
		width[k] = display_width(t.head[k]);
		for (size_t r = 0; r < t.n_rows; r++) {
			int w = display_width(t.cells[r * t.n_cols + k]);
			if (w > width[k])
				width[k] = w;
		}
	}
	write_meta_lines(fp, rep, meta, "");
	for (size_t r = 0; r <= t.n_rows; r++) {
		char *line = NULL;
		size_t len = 0;
		FILE *lf = open_memstream(&line, &len);
		if (!lf)
			die_errno("open_memstream");
		for (size_t k = 0; k < t.n_cols; k++) {
			const char *cell = r == 0 ? t.head[k] : t.cells[(r - 1) * t.n_cols + k];
			int fill = width[k] - display_width(cell);
			if (k == 0) {         // the group name: left-aligned
				fputs(cell, lf);
				pad(lf, fill);
			} else {
				pad(lf, 2 + fill);
				fputs(cell, lf);
			}
		}
		fclose(lf);
		while (len > 0 && line[len - 1] == ' ')   // rows without paired columns end in blanks
			len--;
		fwrite(line, 1, len, fp);
		fputc('\n', fp);
		free(line);
	}
	write_subject_lists(fp, rep, "");
	free_table(&t);
}

static void md_cell(FILE *fp, const char *s)
{
	fputs("| ", fp);
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', fp);
		fputc(*s, fp);
	}
	fputc(' ', fp);
}

void score_write_markdown(FILE *fp, const struct score_report *rep, const struct score_meta *meta)
{
	struct table t;
	build_table(&t, rep);
	write_meta_lines(fp, rep, meta, "");
	fputc('\n', fp);
	for (size_t k = 0; k < t.n_cols; k++)
		md_cell(fp, t.head[k]);
	fputs("|\n", fp);
	for (size_t k = 0; k < t.n_cols; k++)
		fputs(k == 0 ? "|---" : "|---:", fp);
	fputs("|\n", fp);
	for (size_t r = 0; r < t.n_rows; r++) {
		for (size_t k = 0; k < t.n_cols; k++) {
			const char *cell = t.cells[r * t.n_cols + k];
			if (k == 0) {   // Markdown collapses leading spaces: show nesting with a non-breaking indent
				const char *s = cell;
				while (*s == ' ')
					s++;
				char *shown = s != cell ? xasprintf("\xC2\xA0\xC2\xA0%s", s) : xstrdup(s);
				md_cell(fp, shown);
				free(shown);
			} else {
				md_cell(fp, cell);
			}
		}
		fputs("|\n", fp);
	}
	if (rep->n_subject_lists)
		fputc('\n', fp);
	write_subject_lists(fp, rep, "");
	free_table(&t);
}

// ---- TSV: fractions ----

static void tsv_num(FILE *fp, double v)
{
	fputc('\t', fp);
	if (!isnan(v))
		fprintf(fp, "%.6f", v);
}

static const char *kind_name(enum row_kind k)
{
	switch (k) {
	case ROW_ALL: return "all";
	case ROW_BENCH: return "bench";
	case ROW_MACRO: return "macro";
	case ROW_MULTI_EXACT: return "multi_exact";
	case ROW_MULTI_F1: return "multi_f1";
	case ROW_CATEGORY: return "category";
	}
	return "?";
}

static void tsv_text(FILE *fp, const char *s)
{
	// tabs and newlines would break the columns
	for (; s && *s; s++)
		fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, fp);
}

void score_write_tsv(FILE *fp, const struct score_report *rep)
{
	fputs("kind\tbench\tkey\tvalue\tn\tn_correct\tn_unparsed\tscore\tstderr\tci_lo\tci_hi", fp);
	if (rep->has_baseline)
		fputs("\tn_paired\tpaired_acc\tbaseline_acc\tdiff\tdiff_lo\tdiff_hi\tb\tc\tmcnemar_p", fp);
	fputc('\n', fp);
	for (size_t r = 0; r < rep->n_rows; r++) {
		const struct score_row *row = &rep->rows[r];
		fputs(kind_name(row->kind), fp);
		fputc('\t', fp);
		tsv_text(fp, row->bench ? row->bench : "");
		fputc('\t', fp);
		tsv_text(fp, row->key);
		fputc('\t', fp);
		tsv_text(fp, row->value);
		fprintf(fp, "\t%zu\t%zu\t%zu", row->n, row->n_correct, row->n_unparsed);
		tsv_num(fp, row->value_pt);
		tsv_num(fp, row->stderr_);
		tsv_num(fp, row->lo);
		tsv_num(fp, row->hi);
		if (rep->has_baseline) {
			if (row->has_paired) {
				fprintf(fp, "\t%zu", row->n_paired);
				tsv_num(fp, row->run_acc);
				tsv_num(fp, row->base_acc);
				tsv_num(fp, row->diff);
				tsv_num(fp, row->diff_lo);
				tsv_num(fp, row->diff_hi);
				fprintf(fp, "\t%llu\t%llu\t%.6g", (unsigned long long)row->b, (unsigned long long)row->c,
					row->p_mcnemar);
			} else {
				fputs("\t\t\t\t\t\t\t\t\t", fp);
			}
		}
		fputc('\n', fp);
	}
}

// ---- JSON: lm-evaluation-harness's results layout ----

static json_t *jnum(double v) { return isnan(v) ? json_null() : json_real(v); }
// lm-eval writes "N/A" where a standard error is not defined
static json_t *jstderr(double v) { return isnan(v) ? json_string("N/A") : json_real(v); }

static json_t *jci(double lo, double hi)
{
	if (isnan(lo) || isnan(hi))
		return json_null();
	json_t *a = json_array();
	json_array_append_new(a, json_real(lo));
	json_array_append_new(a, json_real(hi));
	return a;
}

static void set(json_t *obj, const char *key, json_t *val)
{
	if (!val || json_object_set_new(obj, key, val))
		die(EXIT_FAIL, "json: cannot set %s", key);
}

// OBJ[KEY], created as an empty object when absent.
static json_t *child(json_t *parent, const char *key)
{
	json_t *o = json_object_get(parent, key);
	if (!o) {
		o = json_object();
		set(parent, key, o);
	}
	return o;
}

static json_t *opt_string(const char *s) { return s ? json_string(s) : json_null(); }

char *score_task_name(const struct score_row *row)
{
	switch (row->kind) {
	case ROW_ALL: return xstrdup("all");
	case ROW_BENCH:
	case ROW_MACRO: return xstrdup(row->bench);
	case ROW_MULTI_EXACT:
	case ROW_MULTI_F1: return xasprintf("%s_multi_answer", row->bench);
	case ROW_CATEGORY:
		return !strcmp(row->key, "subject") ? xasprintf("%s_%s", row->bench, row->value)
						    : xasprintf("%s_%s_%s", row->bench, row->key, row->value);
	}
	return xstrdup("?");
}

static json_t *paired_object(const struct score_row *row)
{
	json_t *o = json_object();
	set(o, "n", json_integer((json_int_t)row->n_paired));
	set(o, "acc", jnum(row->run_acc));
	set(o, "baseline_acc", jnum(row->base_acc));
	set(o, "diff", jnum(row->diff));
	set(o, "diff_ci", jci(row->diff_lo, row->diff_hi));
	set(o, "b", json_integer((json_int_t)row->b));
	set(o, "c", json_integer((json_int_t)row->c));
	set(o, "mcnemar_p", jnum(row->p_mcnemar));
	return o;
}

// The shots of the questions of BENCH (NULL: all benches): their common number, -1 when unknown or mixed.
static int common_shots(const struct pred_set *run, const char *bench)
{
	int shots = -2;
	for (size_t i = 0; i < run->n; i++) {
		const struct pred *p = &run->items[i];
		if (bench && p->bench != bench && strcmp(p->bench, bench))
			continue;
		if (shots == -2)
			shots = p->shots;
		else if (shots != p->shots)
			return -1;
	}
	return shots < 0 ? -1 : shots;
}

// One results entry: its lm-eval fields (an alias without indentation: make_table indents by the depth in
// group_subtasks), and everything the lm-eval blocks keyed by task name hold for it.
struct task_blocks {
	json_t *results, *groups, *group_subtasks, *configs, *versions, *n_shot, *higher, *n_samples;
	json_t *intervals, *counts, *paired, *categories;
	const char *output_type;
	const struct pred_set *run;
};

static json_t *task_entry(struct task_blocks *t, const char *name, const char *alias, const char *parent,
			  const char *bench, int is_group, size_t n)
{
	json_t *e = json_object_get(t->results, name);
	if (e)
		return e;
	e = json_object();
	set(e, "alias", json_string(alias));
	set(t->results, name, e);
	if (is_group) {
		json_incref(e);
		set(t->groups, name, e);   // the same object: groups repeat their results entry, as lm-eval's do
		set(t->group_subtasks, name, json_array());
	}
	if (parent)
		json_array_append_new(json_object_get(t->group_subtasks, parent), json_string(name));
	int shots = common_shots(t->run, bench);
	json_t *cfg = json_object();
	set(cfg, "task", json_string(name));
	if (parent)
		set(cfg, "group", json_string(parent));
	set(cfg, "output_type", json_string(t->output_type));
	set(cfg, "num_fewshot", shots >= 0 ? json_integer(shots) : json_null());
	set(cfg, "metric_list", json_array());
	json_t *meta = json_object();
	set(meta, "version", json_real(1.0));
	set(cfg, "metadata", meta);
	set(t->configs, name, cfg);
	set(t->versions, name, json_real(1.0));
	set(t->n_shot, name, shots >= 0 ? json_integer(shots) : json_null());
	set(t->higher, name, json_object());
	json_t *ns = json_object();
	set(ns, "original", json_integer((json_int_t)n));
	set(ns, "effective", json_integer((json_int_t)n));
	set(t->n_samples, name, ns);
	return e;
}

// Metric METRIC of task NAME: value and standard error in results (and groups), interval in "intervals",
// higher-is-better and the metric list.
static void add_metric(struct task_blocks *t, const char *name, const char *metric, double value, double stderr_,
		       double lo, double hi)
{
	json_t *e = json_object_get(t->results, name);
	char *key = xasprintf("%s,none", metric), *se = xasprintf("%s_stderr,none", metric);
	set(e, key, jnum(value));
	set(e, se, jstderr(stderr_));
	free(key);
	free(se);
	set(child(t->intervals, name), metric, jci(lo, hi));
	set(json_object_get(t->higher, name), metric, json_true());
	json_t *m = json_object();
	set(m, "metric", json_string(metric));
	set(m, "aggregation", json_string("mean"));
	set(m, "higher_is_better", json_true());
	json_array_append_new(json_object_get(json_object_get(t->configs, name), "metric_list"), m);
}

static void add_counts(struct task_blocks *t, const char *name, const struct score_row *row)
{
	json_t *c = child(t->counts, name);
	set(c, "n", json_integer((json_int_t)row->n));
	set(c, "n_correct", json_integer((json_int_t)row->n_correct));
	set(c, "n_unparsed", json_integer((json_int_t)row->n_unparsed));
	set(c, "unparsed_rate", jnum(row->n ? (double)row->n_unparsed / (double)row->n : NAN));
}

void score_write_json(FILE *fp, const struct score_report *rep, const struct score_meta *meta)
{
	const struct pred_set *run = meta->run;
	json_t *root = json_object();
	struct task_blocks t = { json_object(), json_object(), json_object(), json_object(), json_object(),
				 json_object(), json_object(), json_object(), json_object(), json_object(),
				 json_object(), json_object(),
				 !strcmp(run->mode, "loglik") ? "multiple_choice" :
				 !strcmp(run->mode, "generate") ? "generate_until" : "mixed", run };
	set(root, "results", t.results);
	set(root, "groups", t.groups);
	set(root, "group_subtasks", t.group_subtasks);
	set(root, "configs", t.configs);
	set(root, "versions", t.versions);
	set(root, "n-shot", t.n_shot);
	set(root, "higher_is_better", t.higher);
	set(root, "n-samples", t.n_samples);
	for (size_t r = 0; r < rep->n_rows; r++) {
		const struct score_row *row = &rep->rows[r];
		char *name = score_task_name(row), *alias = NULL;
		switch (row->kind) {
		case ROW_ALL:
			task_entry(&t, name, "all", NULL, NULL, 1, row->n);
			add_metric(&t, name, "acc", row->value_pt, row->stderr_, row->lo, row->hi);
			add_counts(&t, name, row);
			break;
		case ROW_BENCH:
			task_entry(&t, name, row->bench, "all", row->bench, 1, row->n);
			add_metric(&t, name, "acc", row->value_pt, row->stderr_, row->lo, row->hi);
			add_counts(&t, name, row);
			break;
		case ROW_MACRO:   // the CMB leaderboard's macro average, beside the micro accuracy
			add_metric(&t, name, "acc_macro", row->value_pt, row->stderr_, row->lo, row->hi);
			break;
		case ROW_MULTI_EXACT:
			task_entry(&t, name, "multi-answer", row->bench, row->bench, 0, row->n);
			add_metric(&t, name, "exact_match", row->value_pt, row->stderr_, row->lo, row->hi);
			add_counts(&t, name, row);
			break;
		case ROW_MULTI_F1: {
			add_metric(&t, name, "f1", row->value_pt, row->stderr_, row->lo, row->hi);
			json_t *c = child(t.counts, name);
			set(c, "tp", json_integer((json_int_t)row->f1.tp));
			set(c, "fp", json_integer((json_int_t)row->f1.fp));
			set(c, "fn", json_integer((json_int_t)row->f1.fn));
			break;
		}
		case ROW_CATEGORY: {
			alias = !strcmp(row->key, "subject") ? xstrdup(row->value)
							      : xasprintf("%s=%s", row->key, row->value);
			task_entry(&t, name, alias, row->bench, row->bench, 0, row->n);
			// CMB's exam_type rows average their classes: named for what they are
			add_metric(&t, name, row->macro ? "acc_macro" : "acc", row->value_pt, row->stderr_, row->lo, row->hi);
			add_counts(&t, name, row);
			json_t *c = child(t.categories, name);
			set(c, "bench", json_string(row->bench));
			set(c, "key", json_string(row->key));
			set(c, "value", json_string(row->value));
			set(c, "macro", json_boolean(row->macro));
			break;
		}
		}
		if (row->has_paired) {
			json_t *pr = paired_object(row);
			if (row->kind == ROW_MACRO)
				json_decref(pr);   // the paired test is on the micro accuracy
			else
				set(t.paired, name, pr);
		}
		free(alias);
		free(name);
	}
	// medmoe's own fields, beside lm-eval's
	set(root, "intervals", t.intervals);
	set(root, "counts", t.counts);
	if (rep->has_baseline)
		set(root, "paired", t.paired);
	else
		json_decref(t.paired);
	set(root, "categories", t.categories);
	json_t *subjects = json_object();
	for (size_t i = 0; i < rep->n_subject_lists; i++) {
		const struct subject_list *l = &rep->subject_lists[i];
		json_t *a = json_array();
		for (size_t j = 0; j < l->n; j++)
			json_array_append_new(a, json_string(l->subjects[j]));
		set(subjects, l->bench, a);
	}
	set(root, "subjects", subjects);

	json_t *config = json_object();
	set(root, "config", config);
	set(config, "model", json_string("medmoe"));
	char *args = xasprintf("base=%s%s%s%s%s", run->model_base ? run->model_base : "", run->model_adapter ? ",adapter=" : "",
			       run->model_adapter ? run->model_adapter : "", run->model_task ? ",task=" : "",
			       run->model_task ? run->model_task : "");
	set(config, "model_args", json_string(args));
	free(args);
	set(config, "base", opt_string(run->model_base));
	set(config, "adapter", opt_string(run->model_adapter));
	set(config, "task", opt_string(run->model_task));
	set(config, "device", json_string("cpu"));
	set(config, "limit", json_null());
	set(config, "bootstrap_iters", json_integer((json_int_t)meta->opt->n_resamples));
	set(config, "random_seed", json_integer((json_int_t)meta->opt->seed));
	set(config, "program", json_string("score"));
	set(config, "program_version", json_string(MEDMOE_VERSION));
	set(config, "label", opt_string(meta->label));
	json_t *files = json_array();
	for (size_t i = 0; i < run->n_files; i++)
		json_array_append_new(files, json_string(run->files[i]));
	set(config, "files", files);
	set(config, "baseline", opt_string(meta->baseline_path));
	set(config, "mode", json_string(run->mode));
	set(config, "ci_level", json_real(meta->opt->level));
	if (rep->has_baseline) {
		set(config, "n_paired", json_integer((json_int_t)rep->n_paired));
		set(config, "only_run", json_integer((json_int_t)rep->only_run));
		set(config, "only_baseline", json_integer((json_int_t)rep->only_base));
	}
	set(root, "git_hash", json_null());
	set(root, "date", json_real(meta->date));
	if (json_dumpf(root, fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)))
		die(EXIT_FAIL, "json: cannot write the report");
	fputc('\n', fp);
	json_decref(root);
}
