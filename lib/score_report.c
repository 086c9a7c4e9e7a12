// score_report.c — the rows of a score report (what each row means: score_report.h).
#include "score_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"

// ---- statistics over item indices ----

// Mean of VALUES[idx]: accuracy when the values are 0/1 outcomes, the paired difference when they are
// run − baseline outcomes.
struct mean_ctx {
	const double *values;
};

static double stat_mean(const size_t *idx, size_t n, const void *ctx)
{
	const struct mean_ctx *m = ctx;
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += m->values[idx[i]];
	return n ? sum / (double)n : NAN;
}

// CMB's macro average: accuracy per class, the mean of its classes per type, the mean over types.
// Classes or types absent from a resample are left out of the means.
struct macro_ctx {
	const double *correct;
	const size_t *class_of;      // per item
	const size_t *type_of_class; // per class
	size_t n_classes, n_types;
	double *right, *total, *type_sum, *type_count;   // scratch
};

static double stat_macro(const size_t *idx, size_t n, const void *ctx)
{
	const struct macro_ctx *m = ctx;
	memset(m->right, 0, m->n_classes * sizeof *m->right);
	memset(m->total, 0, m->n_classes * sizeof *m->total);
	memset(m->type_sum, 0, m->n_types * sizeof *m->type_sum);
	memset(m->type_count, 0, m->n_types * sizeof *m->type_count);
	for (size_t i = 0; i < n; i++) {
		size_t k = m->class_of[idx[i]];
		m->right[k] += m->correct[idx[i]];
		m->total[k] += 1;
	}
	for (size_t k = 0; k < m->n_classes; k++) {
		if (m->total[k] > 0) {
			m->type_sum[m->type_of_class[k]] += m->right[k] / m->total[k];
			m->type_count[m->type_of_class[k]] += 1;
		}
	}
	double sum = 0;
	size_t n_types = 0;
	for (size_t t = 0; t < m->n_types; t++) {
		if (m->type_count[t] > 0) {
			sum += m->type_sum[t] / m->type_count[t];
			n_types++;
		}
	}
	return n_types ? sum / (double)n_types : NAN;
}

// Micro F1 over the letters of the sampled questions.
struct f1_ctx {
	const struct f1_counts *per_item;
};

static double stat_f1(const size_t *idx, size_t n, const void *ctx)
{
	const struct f1_ctx *f = ctx;
	struct f1_counts sum = { 0, 0, 0 };
	for (size_t i = 0; i < n; i++) {
		sum.tp += f->per_item[idx[i]].tp;
		sum.fp += f->per_item[idx[i]].fp;
		sum.fn += f->per_item[idx[i]].fn;
	}
	return f1_value(&sum);
}

// ---- building ----

struct builder {
	struct score_report *rep;
	const struct pred_set *run, *base;
	const struct score_options *opt;
	double *correct;         // per run item, 0/1
	double *diff;            // per run item, run − baseline (paired items only)
	struct f1_counts *f1;    // per run item
	size_t *scratch;
};

static struct score_row *new_row(struct builder *b, enum row_kind kind, const char *bench, char *name)
{
	struct score_report *rep = b->rep;
	rep->rows = xrealloc(rep->rows, (rep->n_rows + 1) * sizeof *rep->rows);
	struct score_row *row = &rep->rows[rep->n_rows++];
	memset(row, 0, sizeof *row);
	row->kind = kind;
	row->bench = bench;
	row->name = name;
	row->stderr_ = row->lo = row->hi = NAN;
	return row;
}

// The bootstrap seed of a statistic over the questions ITEMS (sorted by bench and id): a hash of the question
// set, so that two rows over the same questions (a bench with one subject and that subject, a one-bench run and
// "all") get the same interval, and adding questions elsewhere moves no interval.  SALT tells the statistics
// apart (accuracy 0, macro average, F1, paired difference).
enum { SALT_ACC = 0, SALT_MACRO = 0x3ac0, SALT_F1 = 0xf1, SALT_PAIRED = 0x9a1bed };

static uint64_t set_seed(const struct builder *b, const size_t *items, size_t n, uint64_t salt)
{
	uint64_t h = FNV_OFFSET ^ salt;
	for (size_t i = 0; i < n; i++) {
		const struct pred *p = &b->run->items[items[i]];
		h = fnv1a("\x1e", fnv1a(p->id, fnv1a("\x1f", fnv1a(p->bench, h))));
	}
	return h ^ b->opt->seed;
}

static void count_row(struct builder *b, struct score_row *row, const size_t *items, size_t n)
{
	row->n = n;
	for (size_t i = 0; i < n; i++) {
		const struct pred *p = &b->run->items[items[i]];
		row->n_correct += (size_t)p->correct;
		row->n_unparsed += (size_t)!p->parsed;
	}
}

// A micro-accuracy row over ITEMS, with its interval and, with a baseline, the paired comparison.
static void accuracy_row(struct builder *b, struct score_row *row, const size_t *items, size_t n)
{
	count_row(b, row, items, n);
	row->value_pt = n ? (double)row->n_correct / (double)n : NAN;
	row->stderr_ = mean_stderr(row->value_pt, n);
	struct mean_ctx ctx = { b->correct };
	bootstrap_ci(items, n, b->opt->n_resamples, set_seed(b, items, n, SALT_ACC), b->opt->level, stat_mean, &ctx,
		     &row->lo, &row->hi);
	if (!b->base)
		return;
	size_t n_paired = 0;
	double run_right = 0, base_right = 0;
	for (size_t i = 0; i < n; i++) {
		const struct pred *p = &b->run->items[items[i]];
		if (p->match < 0)
			continue;
		const struct pred *q = &b->base->items[p->match];
		b->scratch[n_paired++] = items[i];
		run_right += p->correct;
		base_right += q->correct;
		row->b += (uint64_t)(p->correct && !q->correct);
		row->c += (uint64_t)(!p->correct && q->correct);
	}
	if (n_paired == 0)
		return;
	row->has_paired = 1;
	row->n_paired = n_paired;
	row->run_acc = run_right / (double)n_paired;
	row->base_acc = base_right / (double)n_paired;
	row->diff = row->run_acc - row->base_acc;
	row->p_mcnemar = mcnemar_exact_p(row->b, row->c);
	struct mean_ctx dctx = { b->diff };
	bootstrap_ci(b->scratch, n_paired, b->opt->n_resamples, set_seed(b, b->scratch, n_paired, SALT_PAIRED),
		     b->opt->level, stat_mean, &dctx, &row->diff_lo, &row->diff_hi);
}

struct name_index {
	const char *name;
	size_t item;
};

static int cmp_name_index(const void *a, const void *b)
{
	const struct name_index *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->item > y->item) - (x->item < y->item);
}

static const char *category_or_empty(const struct pred *p, const char *key)
{
	const char *v = pred_category(p, key);
	return v ? v : "";
}

// A CMB macro row over ITEMS: classes are (exam_type, exam_class) pairs.
static void macro_row(struct builder *b, struct score_row *row, const size_t *items, size_t n)
{
	count_row(b, row, items, n);
	row->macro = 1;
	// number the classes and types of these items
	struct name_index *by_class = xmalloc((n ? n : 1) * sizeof *by_class);
	char **pair_names = xmalloc((n ? n : 1) * sizeof *pair_names);
	for (size_t i = 0; i < n; i++) {
		const struct pred *p = &b->run->items[items[i]];
		pair_names[i] = xasprintf("%s\x1f%s", category_or_empty(p, "exam_type"), category_or_empty(p, "exam_class"));
		by_class[i] = (struct name_index){ pair_names[i], items[i] };
	}
	qsort(by_class, n, sizeof *by_class, cmp_name_index);
	size_t *class_of = xcalloc(b->run->n, sizeof *class_of);
	size_t *type_of_class = xmalloc((n ? n : 1) * sizeof *type_of_class);
	char **type_names = xmalloc((n ? n : 1) * sizeof *type_names);
	size_t n_classes = 0, n_types = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || strcmp(by_class[i].name, by_class[i - 1].name)) {
			const char *type = category_or_empty(&b->run->items[by_class[i].item], "exam_type");
			size_t t = 0;
			while (t < n_types && strcmp(type_names[t], type))
				t++;
			if (t == n_types)
				type_names[n_types++] = (char *)type;
			type_of_class[n_classes++] = t;
		}
		class_of[by_class[i].item] = n_classes - 1;
	}
	struct macro_ctx ctx = { b->correct, class_of, type_of_class, n_classes, n_types,
				 xcalloc(n_classes + 1, sizeof(double)), xcalloc(n_classes + 1, sizeof(double)),
				 xcalloc(n_types + 1, sizeof(double)), xcalloc(n_types + 1, sizeof(double)) };
	row->value_pt = stat_macro(items, n, &ctx);
	bootstrap_ci(items, n, b->opt->n_resamples, set_seed(b, items, n, SALT_MACRO), b->opt->level, stat_macro, &ctx,
		     &row->lo, &row->hi);
	free(ctx.right);
	free(ctx.total);
	free(ctx.type_sum);
	free(ctx.type_count);
	for (size_t i = 0; i < n; i++)
		free(pair_names[i]);
	free(pair_names);
	free(by_class);
	free(class_of);
	free(type_of_class);
	free(type_names);
}

static void f1_row(struct builder *b, struct score_row *row, const size_t *items, size_t n)
{
	count_row(b, row, items, n);
	for (size_t i = 0; i < n; i++) {
		row->f1.tp += b->f1[items[i]].tp;
		row->f1.fp += b->f1[items[i]].fp;
		row->f1.fn += b->f1[items[i]].fn;
	}
	row->value_pt = f1_value(&row->f1);
	struct f1_ctx ctx = { b->f1 };
	bootstrap_ci(items, n, b->opt->n_resamples, set_seed(b, items, n, SALT_F1), b->opt->level, stat_f1, &ctx,
		     &row->lo, &row->hi);
}

// The category keys reported for BENCH (NULL-terminated), or NULL for "every key".
static const char *const *bench_keys(const char *bench)
{
	static const char *const cmb[] = { "exam_type", "exam_class", NULL };
	static const char *const subject[] = { "subject", NULL };
	static const char *const medqa[] = { "meta_info", NULL };
	static const char *const medmcqa[] = { "subject_name", NULL };
	if (!strcmp(bench, "cmb"))
		return cmb;
	if (!strcmp(bench, "cmmlu") || !strcmp(bench, "mmlu"))
		return subject;
	if (!strcmp(bench, "medqa"))
		return medqa;
	if (!strcmp(bench, "medmcqa"))
		return medmcqa;
	return NULL;
}

// Every category key of the items, in first-seen order (for benches without a fixed list).
static char **all_keys(const struct pred_set *run, const size_t *items, size_t n, size_t *n_keys)
{
	char **keys = NULL;
	*n_keys = 0;
	for (size_t i = 0; i < n; i++) {
		const struct pred *p = &run->items[items[i]];
		for (size_t k = 0; k < p->n_cat; k++) {
			size_t j = 0;
			while (j < *n_keys && strcmp(keys[j], p->cat_key[k]))
				j++;
			if (j == *n_keys) {
				keys = xrealloc(keys, (*n_keys + 1) * sizeof *keys);
				keys[(*n_keys)++] = p->cat_key[k];
			}
		}
	}
	return keys;
}

static void category_rows(struct builder *b, const char *bench, const char *key, const size_t *items, size_t n)
{
	struct name_index *vals = xmalloc((n ? n : 1) * sizeof *vals);
	size_t n_vals = 0;
	for (size_t i = 0; i < n; i++) {
		const char *v = pred_category(&b->run->items[items[i]], key);
		if (v)
			vals[n_vals++] = (struct name_index){ v, items[i] };
	}
	qsort(vals, n_vals, sizeof *vals, cmp_name_index);
	size_t *group = xmalloc((n_vals ? n_vals : 1) * sizeof *group);
	int cmb_type = !strcmp(bench, "cmb") && !strcmp(key, "exam_type");
	int is_subject = !strcmp(key, "subject");
	struct subject_list *list = NULL;
	if (is_subject) {
		struct score_report *rep = b->rep;
		rep->subject_lists = xrealloc(rep->subject_lists, (rep->n_subject_lists + 1) * sizeof *rep->subject_lists);
		list = &rep->subject_lists[rep->n_subject_lists++];
		*list = (struct subject_list){ bench, 0, NULL };
	}
	for (size_t i = 0; i < n_vals;) {
		size_t j = i;
		while (j < n_vals && !strcmp(vals[j].name, vals[i].name)) {
			group[j - i] = vals[j].item;
			j++;
		}
		struct score_row *row = new_row(b, ROW_CATEGORY, bench, xasprintf("%s %s=%s", bench, key, vals[i].name));
		row->key = xstrdup(key);
		row->value = xstrdup(vals[i].name);
		if (cmb_type)
			macro_row(b, row, group, j - i);
		else
			accuracy_row(b, row, group, j - i);
		if (list) {
			list->subjects = xrealloc(list->subjects, (list->n + 1) * sizeof *list->subjects);
			list->subjects[list->n++] = xstrdup(vals[i].name);
		}
		i = j;
	}
	free(group);
	free(vals);
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void score_report_build(struct score_report *rep, const struct pred_set *run, const struct pred_set *base,
			const struct score_options *opt)
{
	memset(rep, 0, sizeof *rep);
	struct builder b = { rep, run, base, opt, NULL, NULL, NULL, NULL };
	size_t n = run->n;
	b.correct = xmalloc((n ? n : 1) * sizeof *b.correct);
	b.diff = xcalloc(n ? n : 1, sizeof *b.diff);
	b.f1 = xcalloc(n ? n : 1, sizeof *b.f1);
	b.scratch = xmalloc((n ? n : 1) * sizeof *b.scratch);
	size_t *items = xmalloc((n ? n : 1) * sizeof *items);
	for (size_t i = 0; i < n; i++) {
		const struct pred *p = &run->items[i];
		b.correct[i] = p->correct;
		if (base && p->match >= 0)
			b.diff[i] = p->correct - base->items[p->match].correct;
		f1_add(&b.f1[i], p->predicted, p->answer);
		items[i] = i;
	}
	if (base) {
		rep->has_baseline = 1;
		for (size_t i = 0; i < n; i++)
			rep->n_paired += run->items[i].match >= 0;
		rep->only_run = n - rep->n_paired;
		rep->only_base = base->n - rep->n_paired;
	}
	accuracy_row(&b, new_row(&b, ROW_ALL, NULL, xstrdup("all")), items, n);

	char **benches = xmalloc((run->n_benches + 1) * sizeof *benches);
	memcpy(benches, run->benches, run->n_benches * sizeof *benches);
	qsort(benches, run->n_benches, sizeof *benches, cmp_str_ptr);
	size_t *bench_items = xmalloc((n ? n : 1) * sizeof *bench_items);
	size_t *multi_items = xmalloc((n ? n : 1) * sizeof *multi_items);
	for (size_t k = 0; k < run->n_benches; k++) {
		const char *bench = benches[k];
		size_t nb = 0, nm = 0;
		for (size_t i = 0; i < n; i++) {
			if (run->items[i].bench != bench)
				continue;
			bench_items[nb++] = i;
			if (run->items[i].multi)
				multi_items[nm++] = i;
		}
		accuracy_row(&b, new_row(&b, ROW_BENCH, bench, xstrdup(bench)), bench_items, nb);
		if (!strcmp(bench, "cmb"))
			macro_row(&b, new_row(&b, ROW_MACRO, bench, xasprintf("%s macro", bench)), bench_items, nb);
		if (nm) {
			accuracy_row(&b, new_row(&b, ROW_MULTI_EXACT, bench, xasprintf("%s multi exact", bench)),
				     multi_items, nm);
			f1_row(&b, new_row(&b, ROW_MULTI_F1, bench, xasprintf("%s multi f1", bench)), multi_items, nm);
		}
		const char *const *keys = bench_keys(bench);
		if (keys) {
			for (; *keys; keys++)
				category_rows(&b, bench, *keys, bench_items, nb);
		} else {
			size_t n_keys;
			char **found = all_keys(run, bench_items, nb, &n_keys);
			for (size_t j = 0; j < n_keys; j++)
				category_rows(&b, bench, found[j], bench_items, nb);
			free(found);
		}
	}
	free(bench_items);
	free(multi_items);
	free(benches);
	free(items);
	free(b.correct);
	free(b.diff);
	free(b.f1);
	free(b.scratch);
}

const struct score_row *score_report_overall(const struct score_report *rep)
{
	return &rep->rows[0];
}

void score_report_free(struct score_report *rep)
{
	for (size_t i = 0; i < rep->n_rows; i++) {
		free(rep->rows[i].name);
		free(rep->rows[i].key);
		free(rep->rows[i].value);
	}
	free(rep->rows);
	for (size_t i = 0; i < rep->n_subject_lists; i++) {
		for (size_t j = 0; j < rep->subject_lists[i].n; j++)
			free(rep->subject_lists[i].subjects[j]);
		free(rep->subject_lists[i].subjects);
	}
	free(rep->subject_lists);
	memset(rep, 0, sizeof *rep);
}
