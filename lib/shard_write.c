// shard_write.c — first-fit packing, the train/valid split, shard files with running sha256, the manifest.
// The rules are in shard_write.h; the manifest's fields in schemas/medmoe.shard.md.
#include "shard_write.h"
#include "die.h"
#include "outfile.h"
#include "tokenizer.h"
#include "vec.h"

#include <jansson.h>
#include <math.h>
#include <sha2.h>
#include <stdlib.h>
#include <string.h>

#ifndef MEDMOE_VERSION
#define MEDMOE_VERSION "0"
#endif

// ---- documents ----

static const msgpack_object *field(const char *file, int64_t record, const msgpack_object *rec, const char *key,
				   msgpack_object_type type, const char *what)
{
	const msgpack_object *v = msgpack_map_get(rec, key);
	if (!v)
		die_data(file, record, key, "missing");
	if (v->type != type && !(type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
		die_data(file, record, key, "not %s", what);
	return v;
}

void shard_doc_from_record(const char *file, int64_t record, const msgpack_object *rec, uint32_t vocab,
			   struct shard_doc *doc)
{
	const msgpack_object *id = field(file, record, rec, "id", MSGPACK_OBJECT_STR, "a string");
	const msgpack_object *task = field(file, record, rec, "task", MSGPACK_OBJECT_STR, "a string");
	const msgpack_object *task_id = field(file, record, rec, "task_id", MSGPACK_OBJECT_POSITIVE_INTEGER,
					      "an integer");
	const msgpack_object *ids = field(file, record, rec, "ids", MSGPACK_OBJECT_BIN, "a bin of uint32");
	const msgpack_object *mask = field(file, record, rec, "mask", MSGPACK_OBJECT_BIN, "a bin of uint8");
	if (task_id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || task_id->via.u64 > SHARD_MAX_TASK_ID)
		die_data(file, record, "task_id", "not in 0..%d", SHARD_MAX_TASK_ID);
	if (ids->via.bin.size % 4 != 0)
		die_data(file, record, "ids", "bin of %u bytes is not a whole number of uint32", ids->via.bin.size);
	if (mask->via.bin.size != ids->via.bin.size / 4)
		die_data(file, record, "mask", "%u entries for %u ids", mask->via.bin.size, ids->via.bin.size / 4);
	// What `shard --verify` and the training reader refuse is refused here, before it is written.
	if (!utf8_valid(task->via.str.ptr, task->via.str.size) || task->via.str.size == 0 ||
	    memchr(task->via.str.ptr, 0, task->via.str.size))
		die_data(file, record, "task", "not a task name (empty, a NUL byte or not UTF-8)");
	if (id->via.str.size && !utf8_valid(id->via.str.ptr, id->via.str.size))
		die_data(file, record, "id", "not UTF-8");
	const uint8_t *ib = (const uint8_t *)ids->via.bin.ptr, *mb = (const uint8_t *)mask->via.bin.ptr;
	uint32_t n = ids->via.bin.size / 4;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t v = (uint32_t)ib[4 * i] | (uint32_t)ib[4 * i + 1] << 8 | (uint32_t)ib[4 * i + 2] << 16 |
			     (uint32_t)ib[4 * i + 3] << 24;
		if (v >= vocab)
			die_data(file, record, "ids", "token %u: id %u is outside the vocabulary (%u)", i, v, vocab);
		if (mb[i] > 1)
			die_data(file, record, "mask", "token %u: %u (a mask byte is 0 or 1)", i, mb[i]);
	}
	*doc = (struct shard_doc){
		.id = id->via.str.ptr, .id_len = id->via.str.size,
		.task = task->via.str.ptr, .task_len = task->via.str.size,
		.task_id = (uint32_t)task_id->via.u64,
		.ids_le = (const uint8_t *)ids->via.bin.ptr, .mask = (const uint8_t *)mask->via.bin.ptr,
		.len = n,
	};
}

uint64_t shard_split_hash(const char *id, size_t len)
{
	SHA2_CTX ctx;
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256Init(&ctx);
	SHA256Update(&ctx, (const uint8_t *)id, len);
	SHA256Final(digest, &ctx);
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | digest[i];
	return h;
}

// ---- shard files: bytes go through the sha256 on their way to the file ----

struct hash_sink {
	FILE *fp;
	SHA2_CTX sha;
	uint64_t bytes;
};

static int hash_write(void *data, const char *buf, size_t len)
{
	struct hash_sink *h = data;
	if (len == 0)  // an empty bin's body may come with a NULL pointer
		return 0;
	SHA256Update(&h->sha, (const uint8_t *)buf, len);
	h->bytes += len;
	return fwrite(buf, 1, len, h->fp) == len ? 0 : -1;
}

struct shard_info {
	char *file, *idx_file;
	uint64_t sequences, documents, tokens, loss_tokens, bytes;
	char sha256[SHA256_DIGEST_STRING_LENGTH], idx_sha256[SHA256_DIGEST_STRING_LENGTH];
};

struct task_stat {
	uint32_t id;
	char *name;
	uint64_t documents, tokens, loss_tokens;
};

// One sequence being filled.  Bytes past `used` are always zero (the padding).
struct seq_bin {
	int open;
	uint32_t used;
	uint8_t *ids_le, *mask;
	struct u32vec offsets, task_ids, id_ends;
	struct bytevec doc_ids;
};

struct split {
	const char *name;
	struct shard_builder *b;
	// the shard being written
	struct stream_writer *w;
	struct hash_sink sink;
	uint64_t *offsets;
	size_t n_offsets, cap_offsets;
	struct shard_info cur;
	// open sequences, oldest first
	struct seq_bin bins[SHARD_PACK_WINDOW];
	int order[SHARD_PACK_WINDOW];
	int n_open;
	// counts
	uint64_t input_docs, input_tokens, sequences, documents, tokens, loss_tokens, pad_tokens;
	uint64_t truncated_docs, truncated_tokens, dropped_docs, dropped_tokens, empty_docs, no_loss_docs;
	struct task_stat *tasks;
	size_t n_tasks;
	struct shard_info *shards;
	size_t n_shards;
};

// Valid documents held back by the count rule: one entry per distinct hash (copies of an id stay together).
struct held_doc {
	struct shard_doc doc;
	char *bytes;  // owns what doc points to
	struct held_doc *next;
};
struct held_group {
	uint64_t h;
	struct held_doc *docs;
};

struct shard_builder {
	char *dir;
	struct shard_options opt;
	uint64_t seqs_per_shard;
	msgpack_sbuffer header_bytes;
	msgpack_unpacked header;  // a copy of the input's header
	const msgpack_object *tokenizer, *tasks;
	json_t *tokenizer_json, *tasks_json;   // the same, for the manifest
	struct split train, valid;
	uint64_t valid_threshold;  // fraction rule: valid when h < threshold
	struct held_group *heap;   // count rule: max-heap on h, at most valid_count groups
	size_t n_heap;
};

static void split_init(struct split *s, const char *name, struct shard_builder *b)
{
	memset(s, 0, sizeof *s);
	s->name = name;
	s->b = b;
	for (int i = 0; i < SHARD_PACK_WINDOW; i++) {
		s->bins[i].ids_le = xcalloc(b->opt.seq_len, 4);
		s->bins[i].mask = xcalloc(b->opt.seq_len, 1);
	}
}

static void shard_open(struct split *s)
{
	struct shard_builder *b = s->b;
	size_t k = s->n_shards;
	memset(&s->cur, 0, sizeof s->cur);
	s->cur.file = xasprintf("%s-%05zu.mpk", s->name, k);
	s->cur.idx_file = xasprintf("%s-%05zu.idx", s->name, k);
	char *path = xasprintf("%s/%s", b->dir, s->cur.file);
	s->w = stream_create(path);
	free(path);
	s->sink.fp = s->w->out->fp;
	s->sink.bytes = 0;
	SHA256Init(&s->sink.sha);
	msgpack_packer_init(&s->w->pk, &s->sink, hash_write);
	stream_begin_header(s->w, "medmoe.shard", 1, "shard", 4);
	pack_str(&s->w->pk, "tokenizer");
	msgpack_pack_object(&s->w->pk, *b->tokenizer);
	pack_kv_int(&s->w->pk, "seq_len", b->opt.seq_len);
	pack_kv_int(&s->w->pk, "shard", (int64_t)k);
	pack_kv_str(&s->w->pk, "split", s->name);
	s->n_offsets = 0;
}

static void push_offset(struct split *s, uint64_t off)
{
	if (s->n_offsets == s->cap_offsets) {
		s->cap_offsets = s->cap_offsets ? 2 * s->cap_offsets : 1024;
		s->offsets = xrealloc(s->offsets, s->cap_offsets * sizeof *s->offsets);
	}
	s->offsets[s->n_offsets++] = off;
}

static void shard_close(struct split *s)
{
	struct shard_builder *b = s->b;
	push_offset(s, s->sink.bytes);
	s->cur.bytes = s->sink.bytes;
	SHA256End(&s->sink.sha, s->cur.sha256);
	stream_commit(s->w);
	s->w = NULL;

	char *path = xasprintf("%s/%s", b->dir, s->cur.idx_file);
	struct outfile *out = outfile_open(path);
	SHA2_CTX sha;
	SHA256Init(&sha);
	for (size_t i = 0; i < s->n_offsets; i++) {
		uint8_t le[8];
		for (int j = 0; j < 8; j++)
			le[j] = (uint8_t)(s->offsets[i] >> (8 * j));
		SHA256Update(&sha, le, 8);
		if (fwrite(le, 1, 8, out->fp) != 8)
			die_errno("%s", path);
	}
	SHA256End(&sha, s->cur.idx_sha256);
	outfile_commit(out);
	free(path);
	s->shards = xrealloc(s->shards, (s->n_shards + 1) * sizeof *s->shards);
	s->shards[s->n_shards++] = s->cur;
}

static struct task_stat *task_stat(struct split *s, const struct shard_doc *d)
{
	for (size_t i = 0; i < s->n_tasks; i++) {
		struct task_stat *t = &s->tasks[i];
		if (t->id == d->task_id) {
			if (strlen(t->name) != d->task_len || memcmp(t->name, d->task, d->task_len) != 0)
				die_data(s->b->opt.input, -1, "task_id", "id %u is task \"%s\" and task \"%.*s\"", d->task_id,
					 t->name, (int)d->task_len, d->task);
			return t;
		}
		if (strlen(t->name) == d->task_len && memcmp(t->name, d->task, d->task_len) == 0)
			die_data(s->b->opt.input, -1, "task_id", "task \"%s\" has ids %u and %u", t->name, t->id,
				 d->task_id);
	}
	s->tasks = xrealloc(s->tasks, (s->n_tasks + 1) * sizeof *s->tasks);
	s->tasks[s->n_tasks] = (struct task_stat){ .id = d->task_id, .name = xstrndup(d->task, d->task_len) };
	return &s->tasks[s->n_tasks++];
}

// Write bin I of the window as one record and free its slot.
static void emit(struct split *s, int slot)
{
	struct shard_builder *b = s->b;
	struct seq_bin *bin = &s->bins[slot];
	if (!s->w)
		shard_open(s);
	push_offset(s, s->sink.bytes);
	msgpack_packer *pk = &s->w->pk;
	uint32_t n_docs = (uint32_t)bin->task_ids.len;
	stream_begin_record(s->w, 5);
	pack_str(pk, "ids");
	msgpack_pack_bin(pk, (size_t)b->opt.seq_len * 4);
	msgpack_pack_bin_body(pk, bin->ids_le, (size_t)b->opt.seq_len * 4);
	pack_kv_u8bin(pk, "mask", bin->mask, b->opt.seq_len);
	pack_kv_u32bin(pk, "doc_offsets", bin->offsets.data, bin->offsets.len);
	pack_kv_u32bin(pk, "doc_task_ids", bin->task_ids.data, n_docs);
	pack_str(pk, "doc_ids");
	msgpack_pack_array(pk, n_docs);
	for (uint32_t i = 0; i < n_docs; i++) {
		uint32_t start = i ? bin->id_ends.data[i - 1] : 0;
		pack_strn(pk, bin->doc_ids.data + start, bin->id_ends.data[i] - start);
	}
	uint64_t loss = 0;
	for (uint32_t i = 0; i < bin->used; i++)
		loss += bin->mask[i];
	s->cur.sequences++;
	s->cur.documents += n_docs;
	s->cur.tokens += bin->used;
	s->cur.loss_tokens += loss;
	s->sequences++;
	s->documents += n_docs;
	s->tokens += bin->used;
	s->pad_tokens += b->opt.seq_len - bin->used;
	if (s->cur.sequences == b->seqs_per_shard)
		shard_close(s);

	memset(bin->ids_le, 0, (size_t)bin->used * 4);
	memset(bin->mask, 0, bin->used);
	bin->used = 0;
	bin->offsets.len = bin->task_ids.len = bin->id_ends.len = bin->doc_ids.len = 0;
	bin->open = 0;
	int j = 0;
	for (int i = 0; i < s->n_open; i++)
		if (s->order[i] != slot)
			s->order[j++] = s->order[i];
	s->n_open = j;
}

static void split_add(struct split *s, const struct shard_doc *d)
{
	struct shard_builder *b = s->b;
	uint32_t seq_len = b->opt.seq_len, len = d->len;
	s->input_docs++;
	s->input_tokens += len;
	if (len == 0) {
		s->empty_docs++;
		return;
	}
	if (len > seq_len) {
		if (b->opt.overflow == SHARD_DROP) {
			s->dropped_docs++;
			s->dropped_tokens += len;
			return;
		}
		s->truncated_docs++;
		s->truncated_tokens += len - seq_len;
		len = seq_len;
	}
	int slot = -1;
	for (int i = 0; b->opt.pack && i < s->n_open && slot < 0; i++)
		if (s->bins[s->order[i]].used + len <= seq_len)
			slot = s->order[i];
	if (slot < 0) {
		int window = b->opt.pack ? SHARD_PACK_WINDOW : 1;
		if (s->n_open == window) {
			int fullest = s->order[0];
			for (int i = 1; i < s->n_open; i++)
				if (s->bins[s->order[i]].used > s->bins[fullest].used)
					fullest = s->order[i];
			emit(s, fullest);
		}
		for (slot = 0; s->bins[slot].open; slot++)
			;
		s->bins[slot].open = 1;
		s->bins[slot].offsets.len = 0;
		u32vec_push(&s->bins[slot].offsets, 0);
		s->order[s->n_open++] = slot;
	}
	struct seq_bin *bin = &s->bins[slot];
	memcpy(bin->ids_le + (size_t)bin->used * 4, d->ids_le, (size_t)len * 4);
	memcpy(bin->mask + bin->used, d->mask, len);
	uint64_t loss = 0;
	for (uint32_t i = 0; i < len; i++)
		loss += d->mask[i] != 0;
	bin->used += len;
	u32vec_push(&bin->offsets, bin->used);
	u32vec_push(&bin->task_ids, d->task_id);
	if (d->id_len)  // an empty msgpack str may have a NULL pointer
		bytevec_append(&bin->doc_ids, d->id, d->id_len);
	u32vec_push(&bin->id_ends, (uint32_t)bin->doc_ids.len);
	struct task_stat *t = task_stat(s, d);
	t->documents++;
	t->tokens += len;
	t->loss_tokens += loss;
	s->loss_tokens += loss;
	if (loss == 0)
		s->no_loss_docs++;
	if (!b->opt.pack || bin->used == seq_len)
		emit(s, slot);
}

// Write every open sequence, oldest first, and close the last shard.
static void split_flush(struct split *s)
{
	while (s->n_open > 0)
		emit(s, s->order[0]);
	if (s->w)
		shard_close(s);
}

// ---- the valid split's count rule: a max-heap of hash groups ----

static void heap_swap(struct held_group *a, struct held_group *b)
{
	struct held_group t = *a;
	*a = *b;
	*b = t;
}

static void heap_up(struct held_group *h, size_t i)
{
	while (i > 0 && h[(i - 1) / 2].h < h[i].h) {
		heap_swap(&h[(i - 1) / 2], &h[i]);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct held_group *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && h[l].h > h[m].h)
			m = l;
		if (r < n && h[r].h > h[m].h)
			m = r;
		if (m == i)
			return;
		heap_swap(&h[i], &h[m]);
		i = m;
	}
}

static struct held_doc *hold(const struct shard_doc *d)
{
	struct held_doc *hd = xcalloc(1, sizeof *hd);
	size_t n = d->id_len + d->task_len + (size_t)d->len * 5;
	hd->bytes = xmalloc(n ? n : 1);
	char *p = hd->bytes;
	hd->doc = *d;
	// Empty msgpack strs and bins may carry NULL pointers: copy only what has bytes.
	if (d->id_len)
		memcpy(p, d->id, d->id_len);
	hd->doc.id = p;
	p += d->id_len;
	if (d->task_len)
		memcpy(p, d->task, d->task_len);
	hd->doc.task = p;
	p += d->task_len;
	if (d->len) {
		memcpy(p, d->ids_le, (size_t)d->len * 4);
		memcpy(p + (size_t)d->len * 4, d->mask, d->len);
	}
	hd->doc.ids_le = (const uint8_t *)p;
	hd->doc.mask = (const uint8_t *)p + (size_t)d->len * 4;
	return hd;
}

static void release_group(struct split *to, struct held_group *g)
{
	// Docs were pushed at the front: reverse to add them in arrival order.
	struct held_doc *rev = NULL;
	while (g->docs) {
		struct held_doc *next = g->docs->next;
		g->docs->next = rev;
		rev = g->docs;
		g->docs = next;
	}
	while (rev) {
		struct held_doc *next = rev->next;
		if (to)
			split_add(to, &rev->doc);
		free(rev->bytes);
		free(rev);
		rev = next;
	}
}

static void add_counted(struct shard_builder *b, const struct shard_doc *d, uint64_t h)
{
	size_t cap = (size_t)b->opt.valid_count;
	if (b->n_heap == cap && h > b->heap[0].h) {
		split_add(&b->train, d);
		return;
	}
	// A copy of a held id joins its group (linear, but only for the rare h ≤ the largest held).
	for (size_t i = 0; i < b->n_heap; i++) {
		if (b->heap[i].h == h) {
			struct held_doc *hd = hold(d);
			hd->next = b->heap[i].docs;
			b->heap[i].docs = hd;
			return;
		}
	}
	if (b->n_heap == cap) {
		release_group(&b->train, &b->heap[0]);
		b->heap[0] = b->heap[--b->n_heap];
		heap_down(b->heap, b->n_heap, 0);
	}
	b->heap[b->n_heap] = (struct held_group){ .h = h, .docs = hold(d) };
	heap_up(b->heap, b->n_heap++);
}

static int by_hash(const void *a, const void *c)
{
	const struct held_group *x = a, *y = c;
	return (x->h > y->h) - (x->h < y->h);
}

// ---- the builder ----

static json_t *json_from_msgpack(const msgpack_object *o, const char *file, const char *field);

struct shard_builder *shard_builder_open(const char *dir, const struct shard_options *opt,
					 const msgpack_object *header)
{
	struct shard_builder *b = xcalloc(1, sizeof *b);
	b->dir = xstrdup(dir);
	b->opt = *opt;
	b->seqs_per_shard = opt->shard_tokens / opt->seq_len;
	if (b->seqs_per_shard == 0)
		b->seqs_per_shard = 1;
	msgpack_sbuffer_init(&b->header_bytes);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &b->header_bytes, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, *header);
	msgpack_unpacked_init(&b->header);
	msgpack_unpack_next(&b->header, b->header_bytes.data, b->header_bytes.size, NULL);
	b->tokenizer = msgpack_map_get(&b->header.data, "tokenizer");
	b->tasks = msgpack_map_get(&b->header.data, "tasks");
	if (!b->tokenizer || b->tokenizer->type != MSGPACK_OBJECT_MAP)
		die_data(opt->input, 0, "tokenizer", "missing: the header does not say which tokenizer made the ids");
	// The manifest repeats these: converted (and refused when they cannot be) before anything is written.
	b->tokenizer_json = json_from_msgpack(b->tokenizer, opt->input, "tokenizer");
	b->tasks_json = b->tasks ? json_from_msgpack(b->tasks, opt->input, "tasks") : json_null();
	// F·2^64, saturated: h < threshold is "valid".
	if (opt->valid_fraction >= 1.0)
		b->valid_threshold = UINT64_MAX;
	else
		b->valid_threshold = (uint64_t)(opt->valid_fraction * 18446744073709551616.0);
	if (opt->valid_count)
		b->heap = xmalloc(opt->valid_count * sizeof *b->heap);
	split_init(&b->train, "train", b);
	split_init(&b->valid, "valid", b);
	return b;
}

void shard_builder_add(struct shard_builder *b, const struct shard_doc *doc)
{
	if (b->opt.valid_count) {
		add_counted(b, doc, shard_split_hash(doc->id, doc->id_len));
	} else if (b->opt.valid_fraction > 0) {
		uint64_t h = shard_split_hash(doc->id, doc->id_len);
		split_add(h < b->valid_threshold || b->opt.valid_fraction >= 1.0 ? &b->valid : &b->train, doc);
	} else {
		split_add(&b->train, doc);
	}
}

// msgpack (maps, arrays, strings, numbers) as JSON, for the header parts the manifest repeats.  Nothing may be
// lost on the way (a string that is not UTF-8 would silently vanish from the manifest): FILE's header FIELD is
// refused instead.
static json_t *json_from_msgpack(const msgpack_object *o, const char *file, const char *field)
{
	json_t *j = NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return json_null();
	case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			die_data(file, 0, field, "integer out of range");
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64))
			die_data(file, 0, field, "a number that is not finite");
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		j = json_stringn(o->via.str.ptr, o->via.str.size);
		if (!j)
			die_data(file, 0, field, "a string that is not UTF-8");
		return j;
	case MSGPACK_OBJECT_ARRAY: {
		json_t *a = json_array();
		for (uint32_t i = 0; i < o->via.array.size; i++)
			json_array_append_new(a, json_from_msgpack(&o->via.array.ptr[i], file, field));
		return a;
	}
	case MSGPACK_OBJECT_MAP: {
		json_t *m = json_object();
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR || !utf8_valid(kv->key.via.str.ptr, kv->key.via.str.size) ||
			    memchr(kv->key.via.str.ptr, 0, kv->key.via.str.size))
				die_data(file, 0, field, "a map key that is not a UTF-8 string");
			char *k = xstrndup(kv->key.via.str.ptr, kv->key.via.str.size);
			if (json_object_get(m, k))
				die_data(file, 0, field, "key %s given twice", k);
			json_object_set_new(m, k, json_from_msgpack(&kv->val, file, field));
			free(k);
		}
		return m;
	}
	default:
		die_data(file, 0, field, "a msgpack value JSON cannot hold (bin or ext)");
	}
}

static int by_task_id(const void *a, const void *c)
{
	const struct task_stat *x = a, *y = c;
	return (x->id > y->id) - (x->id < y->id);
}

static json_t *split_json(struct split *s, uint32_t seq_len)
{
	double slots = (double)s->sequences * seq_len;
	json_t *j = json_object();
	json_object_set_new(j, "input_documents", json_integer((json_int_t)s->input_docs));
	json_object_set_new(j, "input_tokens", json_integer((json_int_t)s->input_tokens));
	json_object_set_new(j, "sequences", json_integer((json_int_t)s->sequences));
	json_object_set_new(j, "documents", json_integer((json_int_t)s->documents));
	json_object_set_new(j, "tokens", json_integer((json_int_t)s->tokens));
	json_object_set_new(j, "loss_tokens", json_integer((json_int_t)s->loss_tokens));
	json_object_set_new(j, "pad_tokens", json_integer((json_int_t)s->pad_tokens));
	json_object_set_new(j, "efficiency", json_real(slots > 0 ? (double)s->tokens / slots : 0.0));
	json_object_set_new(j, "truncated_documents", json_integer((json_int_t)s->truncated_docs));
	json_object_set_new(j, "truncated_tokens", json_integer((json_int_t)s->truncated_tokens));
	json_object_set_new(j, "dropped_documents", json_integer((json_int_t)s->dropped_docs));
	json_object_set_new(j, "dropped_tokens", json_integer((json_int_t)s->dropped_tokens));
	json_object_set_new(j, "empty_documents", json_integer((json_int_t)s->empty_docs));
	json_object_set_new(j, "no_loss_documents", json_integer((json_int_t)s->no_loss_docs));
	if (s->n_tasks)
		qsort(s->tasks, s->n_tasks, sizeof *s->tasks, by_task_id);
	json_t *tasks = json_array();
	for (size_t i = 0; i < s->n_tasks; i++)
		json_array_append_new(tasks, json_pack("{s:s, s:I, s:I, s:I, s:I}", "name", s->tasks[i].name, "id",
						       (json_int_t)s->tasks[i].id, "documents",
						       (json_int_t)s->tasks[i].documents, "tokens",
						       (json_int_t)s->tasks[i].tokens, "loss_tokens",
						       (json_int_t)s->tasks[i].loss_tokens));
	json_object_set_new(j, "tasks", tasks);
	json_t *shards = json_array();
	for (size_t i = 0; i < s->n_shards; i++) {
		struct shard_info *si = &s->shards[i];
		json_array_append_new(shards, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "file", si->file,
							"index", si->idx_file, "sequences", (json_int_t)si->sequences,
							"documents", (json_int_t)si->documents, "tokens",
							(json_int_t)si->tokens, "loss_tokens", (json_int_t)si->loss_tokens,
							"bytes", (json_int_t)si->bytes, "sha256", si->sha256,
							"index_sha256", si->idx_sha256));
	}
	json_object_set_new(j, "shards", shards);
	return j;
}

static void split_free(struct split *s)
{
	for (int i = 0; i < SHARD_PACK_WINDOW; i++) {
		struct seq_bin *bin = &s->bins[i];
		free(bin->ids_le);
		free(bin->mask);
		free(bin->offsets.data);
		free(bin->task_ids.data);
		free(bin->id_ends.data);
		free(bin->doc_ids.data);
	}
	for (size_t i = 0; i < s->n_tasks; i++)
		free(s->tasks[i].name);
	free(s->tasks);
	for (size_t i = 0; i < s->n_shards; i++) {
		free(s->shards[i].file);
		free(s->shards[i].idx_file);
	}
	free(s->shards);
	free(s->offsets);
}

static void print_split(const struct split *s, uint32_t seq_len)
{
	double slots = (double)s->sequences * seq_len;
	fprintf(stderr,
		"shard: %s: %llu documents (%llu tokens) -> %llu sequences in %zu shards, %llu tokens, efficiency %.4f; "
		"truncated %llu (%llu tokens), dropped %llu (%llu tokens), empty %llu\n",
		s->name, (unsigned long long)s->input_docs, (unsigned long long)s->input_tokens,
		(unsigned long long)s->sequences, s->n_shards, (unsigned long long)s->tokens,
		slots > 0 ? (double)s->tokens / slots : 0.0, (unsigned long long)s->truncated_docs,
		(unsigned long long)s->truncated_tokens, (unsigned long long)s->dropped_docs,
		(unsigned long long)s->dropped_tokens, (unsigned long long)s->empty_docs);
}

void shard_builder_finish(struct shard_builder *b, int print_summary)
{
	// Count rule: the held groups are the valid split, in hash order (a pseudo-random order).
	if (b->n_heap)
		qsort(b->heap, b->n_heap, sizeof *b->heap, by_hash);
	for (size_t i = 0; i < b->n_heap; i++)
		release_group(&b->valid, &b->heap[i]);
	split_flush(&b->train);
	split_flush(&b->valid);

	const struct shard_options *o = &b->opt;
	json_t *m = json_object();
	json_object_set_new(m, "schema", json_string("medmoe.shard"));
	json_object_set_new(m, "version", json_integer(1));
	json_object_set_new(m, "program", json_string("shard"));
	json_object_set_new(m, "program_version", json_string(MEDMOE_VERSION));
	json_object_set_new(m, "input", json_string(o->input));
	json_object_set_new(m, "tokenizer", b->tokenizer_json);
	json_object_set_new(m, "tasks", b->tasks_json);
	json_object_set_new(m, "seq_len", json_integer(o->seq_len));
	json_object_set_new(m, "packed", json_boolean(o->pack));
	json_object_set_new(m, "overflow", json_string(o->overflow == SHARD_DROP ? "drop" : "truncate"));
	json_object_set_new(m, "pad_id", json_integer(0));
	json_object_set_new(m, "shard_tokens", json_integer((json_int_t)o->shard_tokens));
	json_object_set_new(m, "sequences_per_shard", json_integer((json_int_t)b->seqs_per_shard));
	json_object_set_new(m, "shuffle_seed", o->shuffle ? json_integer((json_int_t)o->shuffle_seed) : json_null());
	json_t *valid = json_object();
	json_object_set_new(valid, "rule", json_string(o->valid_count ? "count" : o->valid_fraction > 0 ? "fraction" : "none"));
	json_object_set_new(valid, "fraction", json_real(o->valid_fraction));
	json_object_set_new(valid, "count", json_integer((json_int_t)o->valid_count));
	json_object_set_new(valid, "hash", json_string("first 8 bytes of sha256(record id), big-endian, over 2^64"));
	json_object_set_new(m, "valid", valid);
	json_t *splits = json_object();
	json_object_set_new(splits, "train", split_json(&b->train, o->seq_len));
	json_object_set_new(splits, "valid", split_json(&b->valid, o->seq_len));
	json_object_set_new(m, "splits", splits);

	char *path = xasprintf("%s/manifest.json", b->dir);
	struct outfile *out = outfile_open(path);
	if (json_dumpf(m, out->fp, JSON_INDENT(1)) != 0 || fputc('\n', out->fp) == EOF)
		die_errno("%s", path);
	outfile_commit(out);
	free(path);
	json_decref(m);

	if (print_summary) {
		print_split(&b->train, o->seq_len);
		if (b->valid.input_docs)
			print_split(&b->valid, o->seq_len);
	}
	split_free(&b->train);
	split_free(&b->valid);
	free(b->heap);
	msgpack_unpacked_destroy(&b->header);
	msgpack_sbuffer_destroy(&b->header_bytes);
	free(b->dir);
	free(b);
}
