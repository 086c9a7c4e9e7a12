// eval_question.c — an exam record in, a prediction record out, and the loglik decision rule between them.
#include "eval.h"

#include <math.h>
#include <string.h>

#include "die.h"

static char *obj_strdup(const struct stream_reader *r, const msgpack_object *o, const char *field)
{
	if (o->type != MSGPACK_OBJECT_STR)
		rec_die(r, field, "not a string");
	return xstrndup(o->via.str.ptr, o->via.str.size);
}

static void check_ids(const struct stream_reader *r, const char *field, const struct u32vec *ids, uint32_t vocab)
{
	if (ids->len == 0)
		rec_die(r, field, "empty");
	for (size_t i = 0; i < ids->len; i++)
		if (ids->data[i] >= vocab)
			rec_die(r, field, "token %zu: id %u is outside the model's vocabulary (%u)", i, ids->data[i],
				vocab);
}

void eval_question_read(const struct stream_reader *r, const msgpack_object *rec, uint32_t vocab,
			struct eval_question *q)
{
	memset(q, 0, sizeof *q);
	q->id = rec_strdup(r, rec, "id");
	q->bench = rec_strdup(r, rec, "bench");
	q->lang = rec_strdup(r, rec, "lang");

	size_t len;
	const char *type = rec_str(r, rec, "type", &len);
	if (len == 6 && memcmp(type, "single", 6) == 0)
		q->multi = 0;
	else if (len == 5 && memcmp(type, "multi", 5) == 0)
		q->multi = 1;
	else
		rec_die(r, "type", "\"%.*s\": neither single nor multi", (int)len, type);

	const msgpack_object *cats = msgpack_map_get(rec, "categories");
	if (!cats || cats->type != MSGPACK_OBJECT_MAP)
		rec_die(r, "categories", cats ? "not a map" : "missing");
	q->n_categories = (int)cats->via.map.size;
	q->category_key = xcalloc(cats->via.map.size + 1, sizeof(char *));
	q->category_val = xcalloc(cats->via.map.size + 1, sizeof(char *));
	for (uint32_t i = 0; i < cats->via.map.size; i++) {
		q->category_key[i] = obj_strdup(r, &cats->via.map.ptr[i].key, "categories");
		q->category_val[i] = obj_strdup(r, &cats->via.map.ptr[i].val, "categories");
	}

	const msgpack_object *opts = msgpack_map_get(rec, "options");
	if (!opts || opts->type != MSGPACK_OBJECT_ARRAY)
		rec_die(r, "options", opts ? "not an array" : "missing");
	if (opts->via.array.size < 2 || opts->via.array.size > EVAL_MAX_OPTIONS)
		rec_die(r, "options", "%u options; 2 to %d expected", opts->via.array.size, EVAL_MAX_OPTIONS);
	q->n_options = (int)opts->via.array.size;
	for (int i = 0; i < q->n_options; i++) {
		const msgpack_object *o = &opts->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != 1 || o->via.str.ptr[0] < 'A' ||
		    o->via.str.ptr[0] > 'Z')
			rec_die(r, "options", "option %d is not one capital letter", i + 1);
		q->letters[i] = o->via.str.ptr[0];
		if (memchr(q->letters, q->letters[i], (size_t)i))
			rec_die(r, "options", "letter %c appears twice", q->letters[i]);
	}

	const char *answer = rec_str(r, rec, "answer", &len);
	if (len == 0 || len > (size_t)q->n_options)
		rec_die(r, "answer", "\"%.*s\": 1 to %d letters expected", (int)len, answer, q->n_options);
	if (!q->multi && len != 1)
		rec_die(r, "answer", "\"%.*s\": a single-answer question has one letter", (int)len, answer);
	for (size_t i = 0; i < len; i++)
		if (!memchr(q->letters, answer[i], (size_t)q->n_options))
			rec_die(r, "answer", "letter %c is not one of the options %s", answer[i], q->letters);
	memcpy(q->answer, answer, len);

	rec_u32bin(r, rec, "prompt", &q->prompt);
	check_ids(r, "prompt", &q->prompt, vocab);
	const msgpack_object *oids = msgpack_map_get(rec, "option_ids");
	if (!oids || oids->type != MSGPACK_OBJECT_ARRAY)
		rec_die(r, "option_ids", oids ? "not an array" : "missing");
	if ((int)oids->via.array.size != q->n_options)
		rec_die(r, "option_ids", "%u entries for %d options", oids->via.array.size, q->n_options);
	for (int i = 0; i < q->n_options; i++) {
		const msgpack_object *o = &oids->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_BIN || bin_to_u32(o, &q->option_ids[i]) != 0)
			rec_die(r, "option_ids", "option %c: not a bin of u32", q->letters[i]);
		check_ids(r, "option_ids", &q->option_ids[i], vocab);
	}
}

void eval_question_free(struct eval_question *q)
{
	free(q->id);
	free(q->bench);
	free(q->lang);
	for (int i = 0; i < q->n_categories; i++) {
		free(q->category_key[i]);
		free(q->category_val[i]);
	}
	free(q->category_key);
	free(q->category_val);
	free(q->prompt.data);
	for (int i = 0; i < EVAL_MAX_OPTIONS; i++)
		free(q->option_ids[i].data);
	free(q->generated);
	memset(q, 0, sizeof *q);
}

// Letters in alphabetical order (answers are written sorted: "ACD").
static void sort_letters(char *s)
{
	size_t n = strlen(s);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && s[j - 1] > s[j]; j--) {
			char t = s[j];
			s[j] = s[j - 1];
			s[j - 1] = t;
		}
}

void eval_choose(struct eval_question *q, double threshold)
{
	int n = q->n_options, best = 0;
	for (int i = 1; i < n; i++)
		if (q->scores[i] > q->scores[best])
			best = i;
	int k = 0;
	if (!q->multi) {
		q->predicted[k++] = q->letters[best];
	} else {
		// Renormalise over the option letters with the log-sum-exp trick.
		double sum = 0.0;
		for (int i = 0; i < n; i++)
			sum += exp(q->scores[i] - q->scores[best]);
		double cut = threshold > 0 ? threshold : 1.0 / n;
		for (int i = 0; i < n; i++) {
			double p = exp(q->scores[i] - q->scores[best]) / sum;
			if (i == best || p >= cut)
				q->predicted[k++] = q->letters[i];
		}
	}
	q->predicted[k] = '\0';
	sort_letters(q->predicted);
	q->parsed = 1;
}

struct stream_writer *eval_predictions_create(const char *path, const struct stream_reader *exam,
					      const char *mode, const char *base, const char *adapter,
					      const char *task)
{
	const msgpack_object *tok = stream_header_get(exam, "tokenizer");
	if (!tok)
		die_data(exam->path, 0, "tokenizer", "missing");
	// the exam's shots, for score's lm-eval layout ("n-shot")
	const msgpack_object *shots = stream_header_get(exam, "shots");
	struct stream_writer *w = stream_create(path);
	msgpack_packer *pk = &w->pk;
	stream_begin_header(w, "medmoe.predictions", 1, "eval-exam", shots ? 4 : 3);
	pack_str(pk, "tokenizer");
	msgpack_pack_object(pk, *tok);
	if (shots) {
		pack_str(pk, "shots");
		msgpack_pack_object(pk, *shots);
	}
	pack_kv_str(pk, "mode", mode);
	pack_str(pk, "model");
	msgpack_pack_map(pk, 3);
	pack_kv_str(pk, "base", base);
	pack_kv_str(pk, "adapter", adapter);
	pack_kv_str(pk, "task", task);
	return w;
}

void eval_prediction_write(struct stream_writer *w, const struct eval_question *q, int with_scores)
{
	msgpack_packer *pk = &w->pk;
	stream_begin_record(w, 7 + (with_scores != 0) + (q->generated != NULL));
	pack_kv_str(pk, "id", q->id);
	pack_kv_str(pk, "bench", q->bench);
	pack_str(pk, "categories");
	msgpack_pack_map(pk, (size_t)q->n_categories);
	for (int i = 0; i < q->n_categories; i++)
		pack_kv_str(pk, q->category_key[i], q->category_val[i]);
	pack_kv_str(pk, "type", q->multi ? "multi" : "single");
	pack_kv_str(pk, "answer", q->answer);
	pack_kv_str(pk, "predicted", q->parsed ? q->predicted : NULL);
	pack_kv_bool(pk, "parsed", q->parsed);
	if (with_scores) {
		pack_str(pk, "scores");
		msgpack_pack_array(pk, (size_t)q->n_options);
		for (int i = 0; i < q->n_options; i++)
			msgpack_pack_double(pk, q->scores[i]);
	}
	if (q->generated)
		pack_kv_str(pk, "generated", q->generated);
}
