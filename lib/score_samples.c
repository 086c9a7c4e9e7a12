// score_samples.c — per-question JSON lines (layout in score_samples.h).
#include "score_samples.h"

#include <jansson.h>
#include <string.h>

#include "die.h"

static void set(json_t *obj, const char *key, json_t *val)
{
	if (!val || json_object_set_new(obj, key, val))
		die(EXIT_FAIL, "json: cannot set %s", key);
}

static json_t *letters_or_null(const struct pred *p) { return p->parsed ? json_string(p->predicted) : json_null(); }

void score_write_samples(FILE *fp, const struct pred_set *run, const struct pred_set *base)
{
	size_t doc_id = 0;
	for (size_t i = 0; i < run->n; i++) {
		const struct pred *p = &run->items[i];
		doc_id = i > 0 && run->items[i - 1].bench == p->bench ? doc_id + 1 : 0;
		json_t *line = json_object(), *doc = json_object(), *cats = json_object();
		set(line, "task", json_string(p->bench));
		set(line, "doc_id", json_integer((json_int_t)doc_id));
		set(doc, "id", json_string(p->id));
		set(doc, "bench", json_string(p->bench));
		set(doc, "type", json_string(p->multi ? "multi" : "single"));
		for (size_t k = 0; k < p->n_cat; k++)
			set(cats, p->cat_key[k], json_string(p->cat_val[k]));
		set(doc, "categories", cats);
		set(doc, "file", json_string(run->files[p->file]));
		set(doc, "record", json_integer((json_int_t)p->record));
		set(line, "doc", doc);
		set(line, "target", json_string(p->answer));
		json_t *resps = json_array(), *filtered = json_array();
		if (p->scores) {
			for (size_t k = 0; k < p->n_scores; k++) {
				json_t *one = json_array();
				json_array_append_new(one, json_real(p->scores[k]));
				json_array_append_new(resps, one);
				json_array_append_new(filtered, json_real(p->scores[k]));
			}
		} else {
			json_t *one = json_array();
			json_array_append_new(one, p->generated ? json_string(p->generated) : json_null());
			json_array_append_new(resps, one);
			json_array_append_new(filtered, p->parsed ? json_string(p->predicted) : json_string("[invalid]"));
		}
		set(line, "resps", resps);
		set(line, "filtered_resps", filtered);
		set(line, "filter", json_string("none"));
		json_t *metrics = json_array();
		json_array_append_new(metrics, json_string("acc"));
		set(line, "metrics", metrics);
		set(line, "acc", json_real(p->correct ? 1.0 : 0.0));
		set(line, "predicted", letters_or_null(p));
		set(line, "parsed", json_boolean(p->parsed));
		if (p->shots >= 0)
			set(line, "shots", json_integer(p->shots));
		if (base && p->match >= 0) {
			const struct pred *q = &base->items[p->match];
			json_t *b = json_object();
			set(b, "predicted", letters_or_null(q));
			set(b, "parsed", json_boolean(q->parsed));
			set(b, "acc", json_real(q->correct ? 1.0 : 0.0));
			set(line, "baseline", b);
		}
		if (json_dumpf(line, fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)))
			die(EXIT_FAIL, "json: cannot write a sample");
		fputc('\n', fp);
		json_decref(line);
	}
}
