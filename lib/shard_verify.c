// shard_verify.c — recompute every checksum and count of a shard directory and compare with its manifest.
#include "shard_verify.h"
#include "die.h"
#include "infile.h"
#include "shard_manifest.h"
#include "stream.h"
#include "vec.h"

#include <errno.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct task_total {
	uint32_t id;
	uint64_t tokens, documents;
};

struct totals {
	uint64_t sequences, documents, tokens, loss_tokens;
	struct task_total *tasks;
	size_t n_tasks;
};

static void add_task(struct totals *t, uint32_t id, uint64_t tokens)
{
	for (size_t i = 0; i < t->n_tasks; i++) {
		if (t->tasks[i].id == id) {
			t->tasks[i].tokens += tokens;
			t->tasks[i].documents++;
			return;
		}
	}
	t->tasks = xrealloc(t->tasks, (t->n_tasks + 1) * sizeof *t->tasks);
	t->tasks[t->n_tasks++] = (struct task_total){ id, tokens, 1 };
}

static int file_sha(const char *path, char out[65], uint64_t *size)
{
	return infile_sha256(path, out, size);
}

static int check_count(const char *path, const char *manifest_path, const char *what, uint64_t have, uint64_t want)
{
	if (have == want)
		return 0;
	warn_data(path, -1, NULL, "%s: %llu, %s says %llu", what, (unsigned long long)have, manifest_path,
		  (unsigned long long)want);
	return 1;
}

// Check one shard's records; add them to T.  Returns the number of failures.
static int verify_records(const struct shard_manifest *m, const char *split, const struct shard_file_entry *f,
			  const char *path, const uint64_t *idx, size_t n_idx, struct totals *t)
{
	struct stream_reader *r = stream_open(path, "medmoe.shard", 1);
	char sha[65];
	uint32_t vocab;
	stream_tokenizer(r, sha, &vocab);
	const msgpack_object *seq_len = stream_header_get(r, "seq_len");
	const msgpack_object *sp = stream_header_get(r, "split");
	int bad = 0;
	if (strcmp(sha, m->tokenizer_sha256) != 0) {
		warn_data(path, 0, "tokenizer.sha256", "%.12s…, %s says %.12s…", sha, m->path, m->tokenizer_sha256);
		bad++;
	}
	if (!seq_len || seq_len->type != MSGPACK_OBJECT_POSITIVE_INTEGER || seq_len->via.u64 != m->seq_len) {
		warn_data(path, 0, "seq_len", "differs from the manifest's %u", m->seq_len);
		bad++;
	}
	if (!sp || sp->type != MSGPACK_OBJECT_STR || sp->via.str.size != strlen(split) ||
	    memcmp(sp->via.str.ptr, split, sp->via.str.size) != 0) {
		warn_data(path, 0, "split", "is not \"%s\"", split);
		bad++;
	}
	uint64_t sequences = 0, documents = 0, tokens = 0, loss = 0;
	struct u32vec offsets = { 0 }, task_ids = { 0 };
	msgpack_object rec;
	while (!bad && stream_next(r, &rec)) {
		if (sequences + 1 >= n_idx || idx[sequences] != r->record_offset) {
			warn_data(path, r->record, NULL, "the index gives another offset for this record");
			bad++;
			break;
		}
		size_t n_ids, n_mask;
		const uint8_t *ids = rec_bin(r, &rec, "ids", &n_ids);
		const uint8_t *mask = rec_bin(r, &rec, "mask", &n_mask);
		rec_u32bin(r, &rec, "doc_offsets", &offsets);
		rec_u32bin(r, &rec, "doc_task_ids", &task_ids);
		const char *why = NULL;
		if (n_ids != (size_t)m->seq_len * 4 || n_mask != m->seq_len)
			why = "ids or mask do not hold seq_len entries";
		else if (offsets.len < 2 || offsets.data[0] != 0)
			why = "doc_offsets must start at 0 and hold at least one document";
		else if (task_ids.len != offsets.len - 1)
			why = "doc_task_ids must hold one id per document";
		for (size_t i = 1; !why && i < offsets.len; i++)
			if (offsets.data[i] <= offsets.data[i - 1] || offsets.data[i] > m->seq_len)
				why = "doc_offsets must rise and stay within seq_len";
		const msgpack_object *doc_ids = msgpack_map_get(&rec, "doc_ids");
		if (!why && doc_ids && (doc_ids->type != MSGPACK_OBJECT_ARRAY || doc_ids->via.array.size != task_ids.len))
			why = "doc_ids must hold one id per document";
		uint32_t used = why ? 0 : offsets.data[offsets.len - 1];
		for (uint32_t i = used; !why && i < m->seq_len; i++)
			if (mask[i])
				why = "a padding position carries loss";
		for (uint32_t i = 0; !why && i < m->seq_len; i++) {
			uint32_t id = (uint32_t)ids[4 * i] | (uint32_t)ids[4 * i + 1] << 8 | (uint32_t)ids[4 * i + 2] << 16 |
				      (uint32_t)ids[4 * i + 3] << 24;
			if (id >= m->vocab_size)
				why = "a token id is outside the vocabulary";
			else if (mask[i] > 1)
				why = "a mask byte is neither 0 nor 1";
		}
		if (why) {
			warn_data(path, r->record, NULL, "%s", why);
			bad++;
			break;
		}
		for (size_t d = 0; d + 1 < offsets.len; d++)
			add_task(t, task_ids.data[d], offsets.data[d + 1] - offsets.data[d]);
		for (uint32_t i = 0; i < used; i++)
			loss += mask[i] != 0;
		sequences++;
		documents += task_ids.len;
		tokens += used;
	}
	if (!bad && (n_idx != sequences + 1 || idx[sequences] != r->object_end)) {
		warn_data(path, -1, NULL, "the index does not end at the end of the file");
		bad++;
	}
	stream_close(r);
	free(offsets.data);
	free(task_ids.data);
	if (bad)
		return bad;
	bad += check_count(path, m->path, "sequences", sequences, f->sequences);
	bad += check_count(path, m->path, "documents", documents, f->documents);
	bad += check_count(path, m->path, "tokens", tokens, f->tokens);
	bad += check_count(path, m->path, "loss tokens", loss, f->loss_tokens);
	t->sequences += sequences;
	t->documents += documents;
	t->tokens += tokens;
	t->loss_tokens += loss;
	return bad;
}

static uint64_t *read_index(const char *path, size_t *n)
{
	*n = 0;
	FILE *fp = infile_fopen(path);
	if (!fp)
		return xcalloc(1, sizeof(uint64_t));
	uint64_t *idx = NULL;
	size_t cap = 0;
	uint8_t le[8];
	while (fread(le, 1, 8, fp) == 8) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 1024;
			idx = xrealloc(idx, cap * sizeof *idx);
		}
		uint64_t v = 0;
		for (int j = 7; j >= 0; j--)
			v = v << 8 | le[j];
		idx[(*n)++] = v;
	}
	fclose(fp);
	return idx ? idx : xcalloc(1, sizeof *idx);
}

static int verify_split(const struct shard_manifest *m, const struct shard_split_entry *s)
{
	int bad = 0;
	struct totals t = { 0 };
	for (size_t i = 0; i < s->n_shards; i++) {
		const struct shard_file_entry *f = &s->shards[i];
		char *path = xasprintf("%s/%s", m->dir, f->file);
		char *ipath = xasprintf("%s/%s", m->dir, f->index);
		char sha[65], isha[65];
		uint64_t size, isize;
		int shard_bad = 0;
		if (file_sha(path, sha, &size) != 0) {
			warn_data(path, -1, NULL, "%s", strerror(errno));
			shard_bad++;
		} else if (strcmp(sha, f->sha256) != 0 || size != f->bytes) {
			warn_data(path, -1, NULL, "sha256 %.12s… (%llu bytes), %s says %.12s… (%llu bytes)", sha,
				  (unsigned long long)size, m->path, f->sha256, (unsigned long long)f->bytes);
			shard_bad++;
		}
		if (file_sha(ipath, isha, &isize) != 0) {
			warn_data(ipath, -1, NULL, "%s", strerror(errno));
			shard_bad++;
		} else if (strcmp(isha, f->index_sha256) != 0) {
			warn_data(ipath, -1, NULL, "sha256 %.12s…, %s says %.12s…", isha, m->path, f->index_sha256);
			shard_bad++;
		}
		if (!shard_bad) {
			size_t n_idx;
			uint64_t *idx = read_index(ipath, &n_idx);
			shard_bad += verify_records(m, s->name, f, path, idx, n_idx, &t);
			free(idx);
		}
		bad += shard_bad;
		free(path);
		free(ipath);
	}
	if (!bad) {
		char *what = xasprintf("%s split", s->name);
		bad += check_count(m->path, m->path, what, t.sequences, s->sequences);
		bad += check_count(m->path, m->path, what, t.documents, s->documents);
		bad += check_count(m->path, m->path, what, t.tokens, s->tokens);
		bad += check_count(m->path, m->path, what, t.loss_tokens, s->loss_tokens);
		size_t n_listed = json_array_size(s->tasks);
		if (n_listed != t.n_tasks) {
			warn_data(m->path, -1, "tasks", "%s split: %zu tasks in the shards, %zu listed", s->name, t.n_tasks,
				  n_listed);
			bad++;
		}
		for (size_t i = 0; i < n_listed; i++) {
			json_t *e = json_array_get(s->tasks, i);
			json_int_t id = json_integer_value(json_object_get(e, "id"));
			json_int_t tokens = json_integer_value(json_object_get(e, "tokens"));
			size_t k;
			for (k = 0; k < t.n_tasks && t.tasks[k].id != (uint64_t)id; k++)
				;
			if (k == t.n_tasks || t.tasks[k].tokens != (uint64_t)tokens) {
				warn_data(m->path, -1, "tasks", "%s split: task id %lld: %llu tokens in the shards, %lld listed",
					  s->name, (long long)id, k < t.n_tasks ? (unsigned long long)t.tasks[k].tokens : 0ull,
					  (long long)tokens);
				bad++;
			}
		}
		free(what);
	}
	free(t.tasks);
	return bad;
}

int shard_verify(const char *dir, int quiet)
{
	struct shard_manifest *m = shard_manifest_load(dir);
	int bad = verify_split(m, &m->train) + verify_split(m, &m->valid);
	if (!bad && !quiet)
		fprintf(stderr, "%s: %s: ok: %zu + %zu shards, %llu + %llu sequences\n", progname(), dir, m->train.n_shards,
			m->valid.n_shards, (unsigned long long)m->train.sequences, (unsigned long long)m->valid.sequences);
	shard_manifest_free(m);
	return bad;
}
