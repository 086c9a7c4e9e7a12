// test_score_report.c — report rows on a small run built in memory: micro and CMB macro accuracy, multi-answer
// exact match and F1, category rows, and the paired comparison, all checked against hand counts.
#include "unit.h"

#include <math.h>
#include <string.h>

#include "die.h"
#include "score_report.h"

static char bench_cmb[] = "cmb", bench_cmmlu[] = "cmmlu";
static char *benches[] = { bench_cmb, bench_cmmlu };

static void add(struct pred_set *s, const char *bench, const char *id, const char *type, const char *cls,
		int multi, const char *answer, const char *predicted)
{
	s->items = xrealloc(s->items, (s->n + 1) * sizeof *s->items);
	struct pred *p = &s->items[s->n++];
	memset(p, 0, sizeof *p);
	p->bench = !strcmp(bench, "cmb") ? bench_cmb : bench_cmmlu;
	p->id = xstrdup(id);
	p->n_cat = 2;
	p->cat_key = xcalloc(2, sizeof *p->cat_key);
	p->cat_val = xcalloc(2, sizeof *p->cat_val);
	p->cat_key[0] = xstrdup(p->bench == bench_cmb ? "exam_type" : "subject");
	p->cat_val[0] = xstrdup(type);
	p->cat_key[1] = xstrdup(p->bench == bench_cmb ? "exam_class" : "subject_zh");
	p->cat_val[1] = xstrdup(cls);
	p->multi = multi;
	strcpy(p->answer, answer);
	p->parsed = predicted != NULL;
	strcpy(p->predicted, predicted ? predicted : "");
	p->correct = p->parsed && !strcmp(p->predicted, p->answer);
	p->match = -1;
}

static void set_free(struct pred_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		for (size_t k = 0; k < 2; k++) {
			free(s->items[i].cat_key[k]);
			free(s->items[i].cat_val[k]);
		}
		free(s->items[i].cat_key);
		free(s->items[i].cat_val);
		free(s->items[i].id);
	}
	free(s->items);
}

static const struct score_row *find(const struct score_report *rep, const char *name)
{
	for (size_t i = 0; i < rep->n_rows; i++)
		if (!strcmp(rep->rows[i].name, name))
			return &rep->rows[i];
	fail_msg("no row %s", name);
	return NULL;
}

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-12)

// CMB: T1/c1 2 of 2 right, T1/c2 0 of 1, T2/c3 0 of 2 (a partial multi-answer, an unparsed); CMMLU 1 of 2.
static void build_run(struct pred_set *run)
{
	memset(run, 0, sizeof *run);
	run->benches = benches;
	run->n_benches = 2;
	add(run, "cmb", "1", "T1", "c1", 0, "A", "A");
	add(run, "cmb", "2", "T1", "c1", 1, "AC", "AC");
	add(run, "cmb", "3", "T1", "c2", 0, "B", "C");
	add(run, "cmb", "4", "T2", "c3", 1, "ABD", "AB");
	add(run, "cmb", "5", "T2", "c3", 0, "E", NULL);
	add(run, "cmmlu", "anatomy_test/0", "anatomy", "解剖学", 0, "C", "C");
	add(run, "cmmlu", "virology_test/0", "virology", "病毒学", 0, "D", "A");
}

static void test_rows(void **state)
{
	(void)state;
	struct pred_set run;
	build_run(&run);
	struct score_options opt = { 200, 3, 0.95 };
	struct score_report rep;
	score_report_build(&rep, &run, NULL, &opt);

	const struct score_row *all = score_report_overall(&rep);
	assert_int_equal(all->n, 7);
	assert_int_equal(all->n_correct, 3);
	assert_int_equal(all->n_unparsed, 1);
	NEAR(all->value_pt, 3.0 / 7);
	assert_true(all->lo <= all->value_pt && all->value_pt <= all->hi);

	NEAR(find(&rep, "cmb")->value_pt, 2.0 / 5);
	// macro: T1 = mean(c1 1.0, c2 0.0) = 0.5; T2 = c3 0.0; mean = 0.25 (micro is 0.4)
	NEAR(find(&rep, "cmb macro")->value_pt, 0.25);
	NEAR(find(&rep, "cmb exam_type=T1")->value_pt, 0.5);
	assert_true(find(&rep, "cmb exam_type=T1")->macro);
	NEAR(find(&rep, "cmb exam_class=c3")->value_pt, 0);
	NEAR(find(&rep, "cmb exam_class=c1")->value_pt, 1);
	// multi-answer: 1 of 2 exact; F1: tp 2+2, fp 0, fn 1 -> 8/9
	NEAR(find(&rep, "cmb multi exact")->value_pt, 0.5);
	NEAR(find(&rep, "cmb multi f1")->value_pt, 8.0 / 9);
	NEAR(find(&rep, "cmmlu subject=anatomy")->value_pt, 1);
	// cmmlu reports "subject" only, never subject_zh; the subject list is kept
	for (size_t i = 0; i < rep.n_rows; i++)
		assert_null(strstr(rep.rows[i].name, "subject_zh"));
	assert_int_equal(rep.n_subject_lists, 1);
	assert_int_equal(rep.subject_lists[0].n, 2);
	assert_string_equal(rep.subject_lists[0].subjects[1], "virology");
	score_report_free(&rep);
	set_free(&run);
}

// The baseline gets questions 1..4 of CMB; it is right on 1, 3, 4, wrong on 2.
// Paired on 4 questions: run right on 1, 2; baseline on 1, 3, 4 -> b = 1 (q2), c = 2 (q3, q4).
static void test_paired(void **state)
{
	(void)state;
	struct pred_set run, base;
	build_run(&run);
	memset(&base, 0, sizeof base);
	base.benches = benches;
	base.n_benches = 1;
	add(&base, "cmb", "1", "T1", "c1", 0, "A", "A");
	add(&base, "cmb", "2", "T1", "c1", 1, "AC", "A");
	add(&base, "cmb", "3", "T1", "c2", 0, "B", "B");
	add(&base, "cmb", "4", "T2", "c3", 1, "ABD", "ABD");
	size_t only_run, only_base;
	assert_int_equal(pred_set_pair(&run, &base, &only_run, &only_base), 4);
	assert_int_equal(only_run, 3);
	assert_int_equal(only_base, 0);
	struct score_options opt = { 200, 3, 0.95 };
	struct score_report rep;
	score_report_build(&rep, &run, &base, &opt);
	const struct score_row *cmb = find(&rep, "cmb");
	assert_true(cmb->has_paired);
	assert_int_equal(cmb->n_paired, 4);
	assert_true(cmb->b == 1 && cmb->c == 2);
	NEAR(cmb->run_acc, 0.5);
	NEAR(cmb->base_acc, 0.75);
	NEAR(cmb->diff, -0.25);
	NEAR(cmb->p_mcnemar, 1.0);   // 2 * (1 + 3) / 8 = 1
	assert_true(cmb->diff_lo <= cmb->diff && cmb->diff <= cmb->diff_hi);
	assert_false(find(&rep, "cmmlu")->has_paired);
	assert_false(find(&rep, "cmb macro")->has_paired);
	score_report_free(&rep);
	set_free(&run);
	set_free(&base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_paired),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
