// mix_input.c — indexing the inputs of mix-tasks and copying their records out by offset.
#include "mix_input.h"
#include "die.h"

#include <string.h>

static void task_records_push(struct task_records *tr, struct record_ref ref, uint32_t tokens, int64_t record_no)
{
	if (tr->n == tr->cap) {
		tr->cap = tr->cap ? 2 * tr->cap : 256;
		tr->refs = xrealloc(tr->refs, tr->cap * sizeof *tr->refs);
		tr->tokens = xrealloc(tr->tokens, tr->cap * sizeof *tr->tokens);
		tr->record_no = xrealloc(tr->record_no, tr->cap * sizeof *tr->record_no);
	}
	tr->refs[tr->n] = ref;
	tr->tokens[tr->n] = tokens;
	tr->record_no[tr->n++] = record_no;
}

// Read one input once: header checks, its task table, and the offset of every record.
void mix_input_add(struct mix_input *in, const char *path)
{
	if (strcmp(path, "-") == 0)
		die(EXIT_USAGE, "inputs must be files: mix-tasks reads records back by their offsets");
	struct stream_reader *r = stream_open(path, "medmoe.tokens", 1);
	if (!in->first_path) {
		uint32_t vocab;
		stream_tokenizer(r, in->sha256, &vocab);
		in->first_path = xstrdup(path);
		// Deep-copy the header objects the output needs (the reader's zone dies with it).
		msgpack_sbuffer_init(&in->first_header_bytes);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &in->first_header_bytes, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, r->header);
		msgpack_unpacked_init(&in->first_header);
		msgpack_unpack_next(&in->first_header, in->first_header_bytes.data, in->first_header_bytes.size, NULL);
		const msgpack_object *t = msgpack_map_get(&in->first_header.data, "tokenizer");
		const msgpack_object *tpl = msgpack_map_get(&in->first_header.data, "template");
		in->tokenizer = *t;
		in->template.type = MSGPACK_OBJECT_NIL;
		if (tpl && tpl->type == MSGPACK_OBJECT_STR)
			in->template = *tpl;
	} else {
		stream_require_tokenizer(r, in->sha256, in->first_path);
		// Inputs made with different chat templates: the output names none rather than a wrong one.
		const msgpack_object *tpl = stream_header_get(r, "template");
		if (in->template.type != MSGPACK_OBJECT_NIL &&
		    (!tpl || tpl->type != MSGPACK_OBJECT_STR || tpl->via.str.size != in->template.via.str.size ||
		     memcmp(tpl->via.str.ptr, in->template.via.str.ptr, tpl->via.str.size) != 0))
			in->template.type = MSGPACK_OBJECT_NIL;
	}
	int carried = task_table_read_header(&in->tasks, r);
	uint32_t file = record_files_add(&in->files, path);

	// Inside one file a task name has one task_id and a task_id one name, whatever the table says.
	size_t n_seen = 0;
	int64_t *seen_id = in->seen_id;
	msgpack_object rec;
	while (stream_next(r, &rec)) {
		size_t name_len, id_len, mask_len, ids_len;
		const char *name = rec_str(r, &rec, "task", &name_len);
		int64_t task_id = rec_int(r, &rec, "task_id");
		rec_str(r, &rec, "id", &id_len);
		rec_bin(r, &rec, "ids", &ids_len);
		rec_bin(r, &rec, "mask", &mask_len);
		if (ids_len % 4 != 0)
			rec_die(r, "ids", "bin of %zu bytes is not a whole number of uint32", ids_len);
		if (mask_len != ids_len / 4)
			rec_die(r, "mask", "%zu entries for %zu ids", mask_len, ids_len / 4);
		if (task_id < 0 || task_id > UINT32_MAX)
			rec_die(r, "task_id", "%lld is not in 0..2^32-1", (long long)task_id);
		size_t t = task_table_intern(&in->tasks, name, name_len);
		if (t >= in->n_records) {
			in->records = xrealloc(in->records, in->tasks.n * sizeof *in->records);
			memset(in->records + in->n_records, 0, (in->tasks.n - in->n_records) * sizeof *in->records);
			in->n_records = in->tasks.n;
		}
		if (t >= n_seen) {
			seen_id = in->seen_id = xrealloc(seen_id, in->tasks.n * sizeof *seen_id);
			for (size_t j = n_seen; j < in->tasks.n; j++)
				seen_id[j] = -1;
			n_seen = in->tasks.n;
		}
		if (seen_id[t] < 0) {
			for (size_t j = 0; j < n_seen; j++)
				if (seen_id[j] == task_id)
					rec_die(r, "task_id", "%lld is task \"%s\" in an earlier record, \"%s\" here",
						(long long)task_id, in->tasks.tasks[j].name, in->tasks.tasks[t].name);
			seen_id[t] = task_id;
		} else if (seen_id[t] != task_id) {
			rec_die(r, "task_id", "task \"%s\" had task_id %lld in an earlier record, %lld here",
				in->tasks.tasks[t].name, (long long)seen_id[t], (long long)task_id);
		}
		if (carried && in->tasks.tasks[t].id < 0)
			rec_die(r, "task", "\"%s\" is not in the header's task table", in->tasks.tasks[t].name);
		if (carried && task_id != in->tasks.tasks[t].id)
			rec_die(r, "task_id", "%lld, but the task tables give \"%s\" id %lld", (long long)task_id,
				in->tasks.tasks[t].name, (long long)in->tasks.tasks[t].id);
		uint64_t length = r->object_end - r->record_offset;
		if (length > UINT32_MAX)
			rec_die(r, NULL, "a record of %llu bytes is too big", (unsigned long long)length);
		struct record_ref ref = { r->record_offset, (uint32_t)length, file };
		task_records_push(&in->records[t], ref, (uint32_t)(ids_len / 4), r->record);
	}
	stream_close(r);
}

// Copy REC with its task_id replaced by ID.
static void write_record(struct stream_writer *w, const msgpack_object *rec, int64_t id)
{
	stream_begin_record(w, rec->via.map.size);
	for (uint32_t i = 0; i < rec->via.map.size; i++) {
		const msgpack_object_kv *kv = &rec->via.map.ptr[i];
		msgpack_pack_object(&w->pk, kv->key);
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 7 &&
		    memcmp(kv->key.via.str.ptr, "task_id", 7) == 0)
			msgpack_pack_int64(&w->pk, id);
		else
			msgpack_pack_object(&w->pk, kv->val);
	}
}

void mix_input_init(struct mix_input *in)
{
	memset(in, 0, sizeof *in);
	record_files_init(&in->files);
}

size_t mix_input_finish(struct mix_input *in)
{
	task_table_assign(&in->tasks);
	size_t n = in->tasks.n;
	if (in->n_records < n) {  // tasks named by a header table but with no records here
		in->records = xrealloc(in->records, (n ? n : 1) * sizeof *in->records);
		memset(in->records + in->n_records, 0, (n - in->n_records) * sizeof *in->records);
		in->n_records = n;
	}
	return n;
}

struct stream_writer *mix_input_create_output(const struct mix_input *in, const char *out_path, char **inputs,
					      int n_inputs)
{
	struct stream_writer *w = stream_create(out_path);
	int has_template = in->template.type != MSGPACK_OBJECT_NIL;
	stream_begin_header(w, "medmoe.tokens", 1, "mix-tasks", 3 + (size_t)has_template);
	pack_str(&w->pk, "tokenizer");
	msgpack_pack_object(&w->pk, in->tokenizer);
	if (has_template) {
		pack_str(&w->pk, "template");
		msgpack_pack_object(&w->pk, in->template);
	}
	task_table_pack(&w->pk, &in->tasks);
	pack_str(&w->pk, "inputs");
	msgpack_pack_array(&w->pk, (size_t)n_inputs);
	for (int i = 0; i < n_inputs; i++)
		pack_str(&w->pk, inputs[i]);
	return w;
}

void mix_input_copy(struct mix_input *in, struct stream_writer *w, size_t t, size_t j)
{
	struct task_records *tr = &in->records[t];
	msgpack_object rec;
	record_files_read(&in->files, &tr->refs[j], tr->record_no[j], &rec);
	write_record(w, &rec, in->tasks.tasks[t].id);
}

void mix_input_free(struct mix_input *in)
{
	for (size_t t = 0; t < in->n_records; t++) {
		free(in->records[t].refs);
		free(in->records[t].tokens);
		free(in->records[t].record_no);
	}
	free(in->records);
	free(in->seen_id);
	if (in->first_path) {
		msgpack_unpacked_destroy(&in->first_header);
		msgpack_sbuffer_destroy(&in->first_header_bytes);
	}
	free((char *)in->first_path);
	record_files_close(&in->files);
	task_table_free(&in->tasks);
}
