// score_history.c — appending to and reading a JSON Lines run history (layout in score_history.h).
#include "score_history.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "die.h"
#include "infile.h"
#include "outfile.h"

static json_t *point_object(const struct score_row *row)
{
	json_t *o = json_object();
	json_object_set_new(o, "acc", json_real(row->value_pt));
	if (isnan(row->lo)) {
		json_object_set_new(o, "acc_ci", json_null());
	} else {
		json_t *ci = json_array();
		json_array_append_new(ci, json_real(row->lo));
		json_array_append_new(ci, json_real(row->hi));
		json_object_set_new(o, "acc_ci", ci);
	}
	json_object_set_new(o, "n", json_integer((json_int_t)row->n));
	return o;
}

void history_append(const char *path, const struct score_report *rep, const char *label, char *const *files,
		    size_t n_files, double date)
{
	// the old lines first (a missing file is a new history)
	char *old = NULL;
	size_t old_len = 0;
	FILE *in = infile_fopen(path);   // a regular file (or none yet): a FIFO would block
	if (in) {
		char buf[65536];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
			old = xrealloc(old, old_len + n);
			memcpy(old + old_len, buf, n);
			old_len += n;
		}
		if (ferror(in))
			die_errno("%s", path);
		fclose(in);
	} else if (errno != ENOENT) {
		die_errno("%s", path);
	}

	json_t *line = json_object();
	char stamp[32];
	time_t secs = (time_t)date;
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(line, "timestamp", json_string(stamp));
	json_object_set_new(line, "date", json_real(date));
	json_object_set_new(line, "label", label ? json_string(label) : json_null());
	json_t *jfiles = json_array();
	for (size_t i = 0; i < n_files; i++)
		json_array_append_new(jfiles, json_string(files[i]));
	json_object_set_new(line, "files", jfiles);
	json_t *results = json_object();
	for (size_t r = 0; r < rep->n_rows; r++) {
		const struct score_row *row = &rep->rows[r];
		if (row->kind == ROW_ALL)
			json_object_set_new(results, "all", point_object(row));
		else if (row->kind == ROW_BENCH)
			json_object_set_new(results, row->bench, point_object(row));
	}
	json_object_set_new(line, "results", results);
	char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	if (!text)
		die(EXIT_FAIL, "%s: cannot encode the history line", path);

	struct outfile *out = outfile_open(path);
	if (old_len) {
		fwrite(old, 1, old_len, out->fp);
		if (old[old_len - 1] != '\n')
			fputc('\n', out->fp);
	}
	fprintf(out->fp, "%s\n", text);
	outfile_commit(out);
	free(text);
	free(old);
	json_decref(line);
}

static size_t series_index(struct history *h, const char *name)
{
	for (size_t i = 0; i < h->n_series; i++)
		if (!strcmp(h->series[i], name))
			return i;
	h->series = xrealloc(h->series, (h->n_series + 1) * sizeof *h->series);
	h->series[h->n_series] = xstrdup(name);
	return h->n_series++;
}

struct raw_point {
	size_t run, series;
	struct history_point pt;
};

static int cmp_series_name(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	int xa = !strcmp(x, "all"), ya = !strcmp(y, "all");
	if (xa != ya)
		return ya - xa;
	return strcmp(x, y);
}

void history_read(struct history *h, const char *path)
{
	memset(h, 0, sizeof *h);
	FILE *fp = infile_fopen(path);
	if (!fp)
		die_errno("%s", path);
	struct raw_point *raw = NULL;
	size_t n_raw = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int64_t line_no = 0;
	while ((len = getline(&line, &cap, fp)) != -1) {
		line_no++;
		if (len <= 1 && (len == 0 || line[0] == '\n'))
			continue;
		json_error_t err;
		json_t *obj = json_loads(line, 0, &err);
		if (!obj || !json_is_object(obj)) {
			fclose(fp);
			free(raw);
			free(line);
			json_decref(obj);
			die_data(path, line_no, NULL, "not a JSON object: %s", obj ? "another value" : err.text);
		}
		json_t *results = json_object_get(obj, "results");
		if (!json_is_object(results)) {
			fclose(fp);
			free(raw);
			free(line);
			json_decref(obj);
			die_data(path, line_no, "results", "missing or not an object");
		}
		json_t *label = json_object_get(obj, "label"), *stamp = json_object_get(obj, "timestamp");
		const char *name = json_is_string(label) ? json_string_value(label)
				   : json_is_string(stamp) ? json_string_value(stamp) : "?";
		h->labels = xrealloc(h->labels, (h->n_runs + 1) * sizeof *h->labels);
		h->labels[h->n_runs] = xstrdup(name);
		const char *key;
		json_t *val;
		json_object_foreach(results, key, val) {
			json_t *acc = json_object_get(val, "acc"), *ci = json_object_get(val, "acc_ci"),
			       *n = json_object_get(val, "n");
			if (!json_is_number(acc)) {
				char series[256];   // key lives in obj
				snprintf(series, sizeof series, "%s", key);
				fclose(fp);
				free(raw);
				free(line);
				json_decref(obj);
				die_data(path, line_no, series, "no numeric \"acc\"");
			}
			struct raw_point p = { h->n_runs, series_index(h, key), { json_number_value(acc), NAN, NAN, 0 } };
			if (json_is_array(ci) && json_array_size(ci) == 2) {
				p.pt.lo = json_number_value(json_array_get(ci, 0));
				p.pt.hi = json_number_value(json_array_get(ci, 1));
			}
			p.pt.n = json_is_integer(n) ? (size_t)json_integer_value(n) : 0;
			raw = xrealloc(raw, (n_raw + 1) * sizeof *raw);
			raw[n_raw++] = p;
		}
		h->n_runs++;
		json_decref(obj);
	}
	if (ferror(fp))
		die_errno("%s", path);
	free(line);
	fclose(fp);
	if (h->n_runs == 0)
		die_data(path, -1, NULL, "no runs in the history");

	// series in a fixed order: "all", then sorted; remap the raw points
	char **unsorted = xmalloc(h->n_series * sizeof *unsorted);
	memcpy(unsorted, h->series, h->n_series * sizeof *unsorted);
	qsort(h->series, h->n_series, sizeof *h->series, cmp_series_name);
	size_t *remap = xmalloc(h->n_series * sizeof *remap);
	for (size_t i = 0; i < h->n_series; i++)
		for (size_t j = 0; j < h->n_series; j++)
			if (unsorted[i] == h->series[j])
				remap[i] = j;
	h->points = xmalloc(h->n_series * h->n_runs * sizeof *h->points);
	for (size_t i = 0; i < h->n_series * h->n_runs; i++)
		h->points[i] = (struct history_point){ NAN, NAN, NAN, 0 };
	for (size_t i = 0; i < n_raw; i++)
		h->points[remap[raw[i].series] * h->n_runs + raw[i].run] = raw[i].pt;
	free(remap);
	free(unsorted);
	free(raw);
}

void history_free(struct history *h)
{
	for (size_t i = 0; i < h->n_runs; i++)
		free(h->labels[i]);
	free(h->labels);
	for (size_t i = 0; i < h->n_series; i++)
		free(h->series[i]);
	free(h->series);
	free(h->points);
	memset(h, 0, sizeof *h);
}
