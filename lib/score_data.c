// score_data.c — reading and checking predictions streams (contract in score_data.h).
#include "score_data.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "schema.h"
#include "stream.h"

static const char *intern_bench(struct pred_set *set, const char *s, size_t len)
{
	for (size_t i = 0; i < set->n_benches; i++)
		if (strlen(set->benches[i]) == len && !memcmp(set->benches[i], s, len))
			return set->benches[i];
	set->benches = xrealloc(set->benches, (set->n_benches + 1) * sizeof *set->benches);
	return set->benches[set->n_benches++] = xstrndup(s, len);
}

// Letters A–H, sorted, distinct; at most EXTRACT_MAX_LETTERS.  Returns NULL or what is wrong.
static const char *check_letters(const char *s, size_t len)
{
	if (len > EXTRACT_MAX_LETTERS)
		return "more than 8 letters";
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 'A' || s[i] > 'H')
			return "not a letter A..H";
		if (i > 0 && s[i] <= s[i - 1])
			return "letters not sorted and distinct";
	}
	return NULL;
}

static void read_letters(const struct stream_reader *r, const msgpack_object *rec, const char *key, char *out)
{
	size_t len;
	const char *s = rec_str(r, rec, key, &len);
	const char *bad = check_letters(s, len);
	if (bad)
		rec_die(r, key, "\"%.*s\": %s", (int)(len < 64 ? len : 64), s, bad);
	memcpy(out, s, len);
	out[len] = '\0';
}

static char *header_str(const struct stream_reader *r, const msgpack_object *map, const char *key)
{
	const msgpack_object *v = map ? msgpack_map_get(map, key) : NULL;
	if (!v || v->type != MSGPACK_OBJECT_STR)
		return NULL;
	(void)r;
	return xstrndup(v->via.str.ptr, v->via.str.size);
}

static void read_header(struct pred_set *set, const struct stream_reader *r, int *shots)
{
	const msgpack_object *s = stream_header_get(r, "shots");
	*shots = s && s->type == MSGPACK_OBJECT_POSITIVE_INTEGER && s->via.u64 < 1000 ? (int)s->via.u64 : -1;
	char *mode = header_str(r, &r->header, "mode");
	if (!mode || (strcmp(mode, "loglik") && strcmp(mode, "generate")))
		die_data(r->path, 0, "mode", "want \"loglik\" or \"generate\"");
	if (!set->mode) {
		set->mode = mode;
	} else {
		if (strcmp(set->mode, mode)) {
			free(set->mode);
			set->mode = xstrdup("mixed");
		}
		free(mode);
	}
	const msgpack_object *model = stream_header_get(r, "model");
	if (model && model->type == MSGPACK_OBJECT_MAP && !set->model_base) {
		set->model_base = header_str(r, model, "base");
		set->model_adapter = header_str(r, model, "adapter");
		set->model_task = header_str(r, model, "task");
	}
}

static void read_record(struct pred_set *set, const struct stream_reader *r, const msgpack_object *rec, int shots)
{
	if (set->n == set->cap) {
		set->cap = set->cap ? 2 * set->cap : 1024;
		set->items = xrealloc(set->items, set->cap * sizeof *set->items);
	}
	struct pred *p = &set->items[set->n];
	memset(p, 0, sizeof *p);
	size_t len;
	const char *bench = rec_str(r, rec, "bench", &len);
	if (len == 0)
		rec_die(r, "bench", "empty");
	p->bench = intern_bench(set, bench, len);
	p->id = rec_strdup(r, rec, "id");
	const char *type = rec_str(r, rec, "type", &len);
	if (len == 5 && !memcmp(type, "multi", 5))
		p->multi = 1;
	else if (!(len == 6 && !memcmp(type, "single", 6)))
		rec_die(r, "type", "\"%.*s\": want single or multi", (int)(len < 32 ? len : 32), type);
	read_letters(r, rec, "answer", p->answer);
	if (!p->answer[0])
		rec_die(r, "answer", "empty");
	if (!p->multi && p->answer[1])
		rec_die(r, "answer", "\"%s\": several letters on a single-answer question", p->answer);
	const msgpack_object *parsed = msgpack_map_get(rec, "parsed");
	p->parsed = parsed->via.boolean;   // the schema check made sure it is a bool
	const msgpack_object *pred = msgpack_map_get(rec, "predicted");
	if (pred->type == MSGPACK_OBJECT_NIL) {
		if (p->parsed)
			rec_die(r, "predicted", "nil on a parsed answer");
	} else {
		if (!p->parsed)
			rec_die(r, "predicted", "letters on an unparsed answer (want nil)");
		read_letters(r, rec, "predicted", p->predicted);
		if (!p->predicted[0])
			rec_die(r, "predicted", "empty on a parsed answer");
	}
	p->correct = p->parsed && !strcmp(p->predicted, p->answer);
	const msgpack_object *cats = msgpack_map_get(rec, "categories");
	p->n_cat = cats->via.map.size;
	p->cat_key = xcalloc(p->n_cat + 1, sizeof *p->cat_key);
	p->cat_val = xcalloc(p->n_cat + 1, sizeof *p->cat_val);
	for (size_t i = 0; i < p->n_cat; i++) {
		const msgpack_object_kv *kv = &cats->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_STR)
			rec_die(r, "categories", "entry %zu is not a string: string pair", i + 1);
		p->cat_key[i] = xstrndup(kv->key.via.str.ptr, kv->key.via.str.size);
		p->cat_val[i] = xstrndup(kv->val.via.str.ptr, kv->val.via.str.size);
	}
	const msgpack_object *scores = msgpack_map_get(rec, "scores");
	if (scores && scores->type == MSGPACK_OBJECT_ARRAY) {
		p->n_scores = scores->via.array.size;
		p->scores = xcalloc(p->n_scores + 1, sizeof *p->scores);
		for (size_t i = 0; i < p->n_scores; i++) {
			const msgpack_object *v = &scores->via.array.ptr[i];
			if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
				p->scores[i] = v->via.f64;
			else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				p->scores[i] = (double)v->via.u64;
			else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
				p->scores[i] = (double)v->via.i64;
			else
				rec_die(r, "scores", "entry %zu is not a number", i + 1);
		}
	}
	const msgpack_object *gen = msgpack_map_get(rec, "generated");
	if (gen && gen->type == MSGPACK_OBJECT_STR)
		p->generated = xstrndup(gen->via.str.ptr, gen->via.str.size);
	p->file = (int)set->n_files - 1;
	p->record = r->record;
	p->match = -1;
	p->shots = shots;
	set->n++;
}

static int cmp_id_then_bench(const void *a, const void *b)
{
	const struct pred *x = *(const struct pred *const *)a, *y = *(const struct pred *const *)b;
	int c = strcmp(x->id, y->id);
	return c ? c : strcmp(x->bench, y->bench);
}

// Within one file: the same bench+id twice, or one id under two benches.
static void check_file_ids(const struct pred_set *set, size_t from)
{
	size_t n = set->n - from;
	const struct pred **order = xmalloc((n ? n : 1) * sizeof *order);
	for (size_t i = 0; i < n; i++)
		order[i] = &set->items[from + i];
	qsort(order, n, sizeof *order, cmp_id_then_bench);
	const struct pred *first = NULL, *second = NULL;
	for (size_t i = 1; i < n && !first; i++) {
		const struct pred *a = order[i - 1], *b = order[i];
		if (!strcmp(a->id, b->id)) {
			first = a->record < b->record ? a : b;
			second = a->record < b->record ? b : a;
		}
	}
	free(order);
	if (!first)
		return;
	if (first->bench == second->bench)
		die_data(set->files[second->file], second->record, "id",
			 "\"%s\" (%s) already in record %lld: the same question twice", second->id, second->bench,
			 (long long)first->record);
	die_data(set->files[second->file], second->record, "id",
		 "\"%s\" is under bench %s here and under %s in record %lld: one stream mixes benchmarks' ids",
		 second->id, second->bench, first->bench, (long long)first->record);
}

void pred_set_read(struct pred_set *set, const char *path)
{
	struct stream_reader *r = stream_open(path, "medmoe.predictions", 1);
	struct schema *spec = schema_load("medmoe.predictions");
	schema_check_header(spec, r);
	set->files = xrealloc(set->files, (set->n_files + 1) * sizeof *set->files);
	set->files[set->n_files++] = xstrdup(path);
	int shots;
	read_header(set, r, &shots);
	size_t from = set->n;
	msgpack_object rec;
	while (stream_next(r, &rec)) {
		schema_check_record(spec, r, &rec);
		read_record(set, r, &rec, shots);
	}
	if (set->n == from)
		die_data(path, -1, NULL, "no records: nothing to score");
	check_file_ids(set, from);
	schema_free(spec);
	stream_close(r);
}

static int cmp_bench_id(const void *a, const void *b)
{
	const struct pred *x = a, *y = b;
	int c = strcmp(x->bench, y->bench);
	return c ? c : strcmp(x->id, y->id);
}

void pred_set_sort(struct pred_set *set)
{
	qsort(set->items, set->n, sizeof *set->items, cmp_bench_id);
	for (size_t i = 1; i < set->n; i++) {
		const struct pred *a = &set->items[i - 1], *b = &set->items[i];
		if (a->bench == b->bench && !strcmp(a->id, b->id)) {
			const struct pred *first = a->file < b->file ? a : b, *second = a->file < b->file ? b : a;
			die_data(set->files[second->file], second->record, "id",
				 "\"%s\" (%s) is also %s record %lld: the same question twice", second->id, second->bench,
				 set->files[first->file], (long long)first->record);
		}
	}
}

size_t pred_set_pair(struct pred_set *run, struct pred_set *base, size_t *only_run, size_t *only_base)
{
	size_t i = 0, j = 0, n_pairs = 0;
	while (i < run->n && j < base->n) {
		struct pred *a = &run->items[i], *b = &base->items[j];
		int c = strcmp(a->bench, b->bench);
		if (!c)
			c = strcmp(a->id, b->id);
		if (c < 0) {
			i++;
		} else if (c > 0) {
			j++;
		} else {
			if (strcmp(a->answer, b->answer))
				die_data(base->files[b->file], b->record, "answer",
					 "question %s %s has answer %s here but %s in %s: not the same question", b->bench,
					 b->id, b->answer, a->answer, run->files[a->file]);
			a->match = (long)j;
			b->match = (long)i;
			n_pairs++;
			i++;
			j++;
		}
	}
	if (n_pairs == 0)
		die_data(base->files[0], -1, NULL, "the baseline shares no question (bench and id) with the run");
	*only_run = run->n - n_pairs;
	*only_base = base->n - n_pairs;
	return n_pairs;
}

const char *pred_category(const struct pred *p, const char *key)
{
	for (size_t i = 0; i < p->n_cat; i++)
		if (!strcmp(p->cat_key[i], key))
			return p->cat_val[i];
	return NULL;
}

void pred_set_free(struct pred_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		struct pred *p = &set->items[i];
		free(p->id);
		for (size_t k = 0; k < p->n_cat; k++) {
			free(p->cat_key[k]);
			free(p->cat_val[k]);
		}
		free(p->cat_key);
		free(p->cat_val);
		free(p->scores);
		free(p->generated);
	}
	free(set->items);
	for (size_t i = 0; i < set->n_files; i++)
		free(set->files[i]);
	free(set->files);
	for (size_t i = 0; i < set->n_benches; i++)
		free(set->benches[i]);
	free(set->benches);
	free(set->mode);
	free(set->model_base);
	free(set->model_adapter);
	free(set->model_task);
	memset(set, 0, sizeof *set);
}
