// test_shard.c — packing invariants, the train/valid split, rank/world coverage and cursor resume.
#include "unit.h"

#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "die.h"
#include "ext_shuffle.h"
#include "shard_manifest.h"
#include "shard_read.h"
#include "shard_verify.h"
#include "shard_write.h"
#include "stream.h"

static char dir[] = "/tmp/medmoe-test-shard-XXXXXX";

enum { SEQ_LEN = 64, MAX_DOC = 150 };

// Document d: length (d·37) mod 150 (so some are empty, some longer than SEQ_LEN), token j = d·1000 + j,
// mask 1 unless the token is a multiple of 3, task "a" (id 0) for even d and "b" (id 1) for odd d.
static uint32_t doc_len(int d) { return (uint32_t)((d * 37) % MAX_DOC); }
static uint32_t doc_token(int d, uint32_t j) { return (uint32_t)d * 1000u + j; }
static uint8_t doc_mask(int d, uint32_t j) { return doc_token(d, j) % 3 != 0; }

static char *write_docs(const char *name, int first, int n)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct stream_writer *w = stream_create(path);
	struct tokenizer_identity tid = { .vocab_size = 1000000 };
	memset(tid.sha256, 'b', 64);
	stream_begin_header(w, "medmoe.tokens", 1, "test_shard", 1);
	pack_kv_tokenizer(&w->pk, &tid);
	uint32_t ids[MAX_DOC];
	uint8_t mask[MAX_DOC];
	for (int d = first; d < first + n; d++) {
		uint32_t len = doc_len(d);
		for (uint32_t j = 0; j < len; j++) {
			ids[j] = doc_token(d, j);
			mask[j] = doc_mask(d, j);
		}
		char id[32];
		snprintf(id, sizeof id, "doc%d", d);
		stream_begin_record(w, 6);
		pack_kv_str(&w->pk, "task", d % 2 ? "b" : "a");
		pack_kv_int(&w->pk, "task_id", d % 2);
		pack_kv_str(&w->pk, "id", id);
		pack_kv_u32bin(&w->pk, "ids", ids, len);
		pack_kv_u8bin(&w->pk, "mask", mask, len);
		pack_kv_str(&w->pk, "lang", "en");
	}
	stream_commit(w);
	return path;
}

// Shard INPUT into a fresh directory NAME; returns its path.
static char *build(const char *name, const char *input, struct shard_options opt)
{
	char *out = xasprintf("%s/%s", dir, name);
	assert_int_equal(mkdir(out, 0777), 0);
	opt.input = input;
	if (!opt.shard_tokens)
		opt.shard_tokens = 20 * SEQ_LEN;
	opt.seq_len = SEQ_LEN;
	struct stream_reader *r = stream_open(input, "medmoe.tokens", 1);
	struct shard_builder *b = shard_builder_open(out, &opt, &r->header);
	msgpack_object rec;
	while (stream_next(r, &rec)) {
		struct shard_doc doc;
		shard_doc_from_record(r->path, r->record, &rec, UINT32_MAX, &doc);
		shard_builder_add(b, &doc);
	}
	shard_builder_finish(b, 0);
	stream_close(r);
	return out;
}

struct placed {
	int count[2000];        // times each document was found
	uint64_t tokens;        // real tokens found
	int docs_per_seq_max;
	char split_of[2000];    // 't' or 'v'
};

// Walk every sequence of both splits and check each document against its definition.
static void scan(const char *out, struct placed *pl)
{
	memset(pl, 0, sizeof *pl);
	struct shard_manifest *m = shard_manifest_load(out);
	const struct shard_split_entry *splits[2] = { &m->train, &m->valid };
	struct u32vec ids = { 0 }, offs = { 0 }, tasks = { 0 };
	for (int s = 0; s < 2; s++) {
		for (size_t k = 0; k < splits[s]->n_shards; k++) {
			char *path = xasprintf("%s/%s", out, splits[s]->shards[k].file);
			struct stream_reader *r = stream_open(path, "medmoe.shard", 1);
			msgpack_object rec;
			while (stream_next(r, &rec)) {
				size_t n_mask;
				const uint8_t *mask = rec_bin(r, &rec, "mask", &n_mask);
				rec_u32bin(r, &rec, "ids", &ids);
				rec_u32bin(r, &rec, "doc_offsets", &offs);
				rec_u32bin(r, &rec, "doc_task_ids", &tasks);
				const msgpack_object *doc_ids = msgpack_map_get(&rec, "doc_ids");
				assert_int_equal(ids.len, SEQ_LEN);
				assert_int_equal(n_mask, SEQ_LEN);
				assert_int_equal(offs.data[0], 0);
				assert_int_equal(tasks.len + 1, offs.len);
				assert_int_equal(doc_ids->via.array.size, tasks.len);
				if ((int)tasks.len > pl->docs_per_seq_max)
					pl->docs_per_seq_max = (int)tasks.len;
				for (size_t d = 0; d < tasks.len; d++) {
					char idbuf[32];
					const msgpack_object *ido = &doc_ids->via.array.ptr[d];
					snprintf(idbuf, sizeof idbuf, "%.*s", (int)ido->via.str.size, ido->via.str.ptr);
					int doc = atoi(idbuf + 3);
					uint32_t begin = offs.data[d], end = offs.data[d + 1];
					assert_true(begin < end && end <= SEQ_LEN);
					assert_int_equal(tasks.data[d], (uint32_t)(doc % 2));
					// The document's first tokens, in order, with their masks: a prefix when truncated.
					assert_int_equal(end - begin, doc_len(doc) < SEQ_LEN ? doc_len(doc) : SEQ_LEN);
					for (uint32_t j = 0; j < end - begin; j++) {
						if (ids.data[begin + j] != doc_token(doc, j))
							fail_msg("%s: doc%d token %u is %u, expected %u", path, doc, j,
								 ids.data[begin + j], doc_token(doc, j));
						assert_int_equal(mask[begin + j], doc_mask(doc, j));
					}
					pl->count[doc]++;
					pl->split_of[doc] = s ? 'v' : 't';
					pl->tokens += end - begin;
				}
				for (uint32_t i = offs.data[offs.len - 1]; i < SEQ_LEN; i++) {
					assert_int_equal(ids.data[i], 0);
					assert_int_equal(mask[i], 0);
				}
			}
			stream_close(r);
			free(path);
		}
	}
	free(ids.data);
	free(offs.data);
	free(tasks.data);
	shard_manifest_free(m);
}

static json_int_t manifest_int(const char *out, const char *split, const char *key)
{
	char *path = xasprintf("%s/manifest.json", out);
	json_t *root = json_load_file(path, 0, NULL);
	assert_non_null(root);
	json_t *v = json_object_get(json_object_get(json_object_get(root, "splits"), split), key);
	assert_non_null(v);
	json_int_t x = json_is_real(v) ? (json_int_t)(json_real_value(v) * 1e6) : json_integer_value(v);
	json_decref(root);
	free(path);
	return x;
}

// Every input token is in exactly one position or counted as truncated; boundaries, task ids, masks survive.
static void test_packing_invariants(void **state)
{
	(void)state;
	char *in = write_docs("in.mpk", 0, 500);
	struct shard_options opt = { .pack = 1, .overflow = SHARD_TRUNCATE };
	char *out = build("packed", in, opt);
	struct placed pl;
	scan(out, &pl);
	uint64_t input_tokens = 0, truncated = 0;
	int empty = 0;
	for (int d = 0; d < 500; d++) {
		input_tokens += doc_len(d);
		if (doc_len(d) > SEQ_LEN)
			truncated += doc_len(d) - SEQ_LEN;
		if (doc_len(d) == 0) {
			empty++;
			assert_int_equal(pl.count[d], 0);
		} else if (pl.count[d] != 1) {
			fail_msg("doc%d was placed %d times", d, pl.count[d]);
		}
	}
	assert_int_equal(pl.tokens + truncated, input_tokens);
	assert_int_equal(manifest_int(out, "train", "truncated_tokens"), (json_int_t)truncated);
	assert_int_equal(manifest_int(out, "train", "tokens"), (json_int_t)pl.tokens);
	assert_int_equal(manifest_int(out, "train", "empty_documents"), empty);
	assert_true(pl.docs_per_seq_max > 1);
	// Efficiency is reported, is tokens / (sequences · seq_len), and first-fit packs tightly here.
	json_int_t seqs = manifest_int(out, "train", "sequences");
	double eff = (double)manifest_int(out, "train", "efficiency") / 1e6;
	assert_float_equal(eff, (double)pl.tokens / ((double)seqs * SEQ_LEN), 1e-5);
	assert_true(eff > 0.9);
	assert_int_equal(shard_verify(out, 1), 0);
	free(out);

	// --drop: long documents are left out and counted; --no-pack: one document per sequence.
	opt.overflow = SHARD_DROP;
	opt.pack = 0;
	out = build("dropped", in, opt);
	scan(out, &pl);
	uint64_t dropped = 0;
	for (int d = 0; d < 500; d++) {
		if (doc_len(d) > SEQ_LEN) {
			dropped += doc_len(d);
			assert_int_equal(pl.count[d], 0);
		} else {
			assert_int_equal(pl.count[d], doc_len(d) > 0);
		}
	}
	assert_int_equal(pl.tokens + dropped, input_tokens);
	assert_int_equal(pl.docs_per_seq_max, 1);
	assert_int_equal(manifest_int(out, "train", "dropped_tokens"), (json_int_t)dropped);
	assert_int_equal(shard_verify(out, 1), 0);
	free(out);
	free(in);
}

// The valid split is a function of the record id: adding data moves no document between splits.
static void test_valid_split_stable(void **state)
{
	(void)state;
	char *small = write_docs("small.mpk", 0, 400), *big = write_docs("big.mpk", 0, 1200);
	struct shard_options opt = { .pack = 1, .valid_fraction = 0.25 };
	char *a = build("valid-a", small, opt), *b = build("valid-b", big, opt);
	struct placed pa, pb;
	scan(a, &pa);
	scan(b, &pb);
	int n_valid = 0, n_placed = 0;
	for (int d = 0; d < 400; d++) {
		if (!pa.count[d])
			continue;
		n_placed++;
		n_valid += pa.split_of[d] == 'v';
		if (pa.split_of[d] != pb.split_of[d])
			fail_msg("doc%d moved from %c to %c when data was added", d, pa.split_of[d], pb.split_of[d]);
	}
	assert_true(n_valid > n_placed / 8 && n_valid < n_placed / 2);  // about a quarter
	free(a);
	free(b);

	// A count: exactly that many documents, those of smallest hash.
	opt.valid_fraction = 0;
	opt.valid_count = 30;
	char *c = build("valid-count", small, opt);
	struct placed pc;
	scan(c, &pc);
	// The 30 smallest hashes of all 400 ids are the valid ones (empty documents among them are not stored).
	uint64_t hashes[400], sorted[400];
	for (int d = 0; d < 400; d++) {
		char id[32];
		snprintf(id, sizeof id, "doc%d", d);
		hashes[d] = sorted[d] = shard_split_hash(id, strlen(id));
	}
	for (int i = 1; i < 400; i++)  // insertion sort: small
		for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			uint64_t t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (int d = 0; d < 400; d++) {
		char want = doc_len(d) == 0 ? 0 : hashes[d] <= sorted[29] ? 'v' : 't';
		if (pc.split_of[d] != want)
			fail_msg("doc%d: split %c, expected %c", d, pc.split_of[d] ? pc.split_of[d] : '-', want ? want : '-');
	}
	free(c);
	free(small);
	free(big);
}

// Over one epoch the ranks of a world see every sequence exactly once, shuffled or not.
static void test_rank_world_coverage(void **state)
{
	(void)state;
	char *in = write_docs("cov.mpk", 0, 700);
	struct shard_options opt = { .pack = 1, .valid_fraction = 0.1 };
	char *out = build("coverage", in, opt);
	struct shard_batch b = { 0 };
	for (int shuffle = 0; shuffle < 2; shuffle++) {
		for (uint32_t world = 1; world <= 5; world++) {
			struct shard_reader_options ro = { .rank = 0, .world = world, .batch_size = 7, .shuffle = shuffle,
							   .seed = 11 };
			struct shard_reader *probe = shard_reader_open(out, &ro);
			uint64_t n = shard_reader_sequences(probe);
			shard_reader_close(probe);
			assert_true(n > 50);
			int *seen = xcalloc(n, sizeof *seen);
			for (uint32_t rank = 0; rank < world; rank++) {
				ro.rank = rank;
				struct shard_reader *r = shard_reader_open(out, &ro);
				uint64_t got = 0;
				uint32_t k;
				while ((k = shard_reader_next(r, &b)) > 0) {
					for (uint32_t i = 0; i < k; i++)
						seen[b.seq_index[i]]++;
					got += k;
				}
				assert_int_equal(got, shard_reader_rank_sequences(r));
				assert_true(got - shard_reader_min_rank_sequences(r) <= 1);
				assert_int_equal(shard_reader_tell(r).epoch, 1);
				shard_reader_close(r);
			}
			for (uint64_t i = 0; i < n; i++)
				if (seen[i] != 1)
					fail_msg("world %u shuffle %d: sequence %llu seen %d times", world, shuffle,
						 (unsigned long long)i, seen[i]);
			free(seen);
		}
	}
	shard_batch_free(&b);
	free(out);
	free(in);
}

static uint64_t batch_hash(const struct shard_batch *b)
{
	// FNV-1a over everything a trainer sees.
	uint64_t h = 1469598103934665603ull;
	const uint8_t *parts[] = { (const uint8_t *)b->ids, b->mask, (const uint8_t *)b->seq_index,
				   (const uint8_t *)b->doc_begin, (const uint8_t *)b->doc_end,
				   (const uint8_t *)b->doc_task_id, (const uint8_t *)b->doc_seq };
	size_t sizes[] = { (size_t)b->n_seqs * b->seq_len * 4, (size_t)b->n_seqs * b->seq_len, b->n_seqs * 8u,
			   b->n_docs * 4u, b->n_docs * 4u, b->n_docs * 4u, b->n_docs * 4u };
	for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++)
		for (size_t i = 0; i < sizes[p]; i++)
			h = (h ^ parts[p][i]) * 1099511628211ull;
	return h ^ b->n_seqs;
}

static const char *mismatch_dir;
static const struct shard_reader_options *mismatch_opt;
static struct shard_cursor mismatch_cursor;
static void seek_mismatch(void *arg)
{
	(void)arg;
	struct shard_reader *r = shard_reader_open(mismatch_dir, mismatch_opt);
	shard_reader_seek(r, mismatch_cursor);
	shard_reader_close(r);
}

// Resuming at a saved cursor gives bit-identical batches, across an epoch boundary; shuffled epochs differ.
static void test_cursor_resume(void **state)
{
	(void)state;
	char *in = write_docs("resume.mpk", 0, 300);
	struct shard_options opt = { .pack = 1 };
	char *out = build("resume", in, opt);
	struct shard_reader_options ro = { .rank = 1, .world = 3, .batch_size = 4, .shuffle = 1, .seed = 5 };
	struct shard_reader *r = shard_reader_open(out, &ro);
	uint64_t per_epoch = (shard_reader_rank_sequences(r) + 3) / 4 + 1;  // batches, plus the end marker
	struct shard_batch b = { 0 };
	for (int i = 0; i < 5; i++)
		assert_true(shard_reader_next(r, &b) > 0);
	struct shard_cursor saved = shard_reader_tell(r);
	int n_after = (int)per_epoch + 6;
	uint64_t *want = xcalloc((size_t)n_after, sizeof *want);
	for (int i = 0; i < n_after; i++) {
		shard_reader_next(r, &b);
		want[i] = batch_hash(&b);
	}
	assert_true(shard_reader_tell(r).epoch == 1);
	shard_reader_close(r);

	struct shard_reader *r2 = shard_reader_open(out, &ro);
	shard_reader_seek(r2, saved);
	for (int i = 0; i < n_after; i++) {
		shard_reader_next(r2, &b);
		if (batch_hash(&b) != want[i])
			fail_msg("batch %d after the cursor differs on resume", i);
	}
	// Epoch 0 and epoch 1 put the sequences in different orders.
	struct shard_cursor e0 = saved, e1 = saved;
	e0.epoch = 0;
	e0.position = 0;
	e1.epoch = 1;
	e1.position = 0;
	shard_reader_seek(r2, e0);
	shard_reader_next(r2, &b);
	uint64_t first0 = batch_hash(&b);
	shard_reader_seek(r2, e1);
	shard_reader_next(r2, &b);
	assert_true(batch_hash(&b) != first0);
	shard_reader_close(r2);
	// A cursor from another world size is refused.
	struct shard_reader_options other = ro;
	other.world = 2;
	other.rank = 0;
	mismatch_dir = out;
	mismatch_opt = &other;
	mismatch_cursor = saved;
	assert_int_equal(unit_exit_status(seek_mismatch, NULL), EXIT_DATA);
	shard_batch_free(&b);
	free(want);
	free(out);
	free(in);
}

// A damaged shard is caught by verify, which names it.
static void test_verify_flipped_byte(void **state)
{
	(void)state;
	char *in = write_docs("flip.mpk", 0, 200);
	struct shard_options opt = { .pack = 1 };
	char *out = build("flip", in, opt);
	assert_int_equal(shard_verify(out, 1), 0);
	char *shard = xasprintf("%s/train-00001.mpk", out);
	FILE *fp = fopen(shard, "r+b");
	assert_non_null(fp);
	fseek(fp, 300, SEEK_SET);
	int c = fgetc(fp);
	fseek(fp, 300, SEEK_SET);
	fputc(c ^ 0x10, fp);
	fclose(fp);
	assert_int_equal(shard_verify(out, 1), 1);
	free(shard);
	free(out);
	free(in);
}

struct drained {
	int n;
	int order[1000];
};

static void collect(const msgpack_object *rec, void *arg)
{
	struct drained *d = arg;
	assert_int_equal(rec->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	d->order[d->n++] = (int)rec->via.u64;
}

// The two-pass shuffle returns every record once, in an order that depends on the seed only, and spreads the
// first records over the whole output (bucket boundaries do not show).
static void test_external_shuffle(void **state)
{
	(void)state;
	struct drained runs[3];
	const uint64_t seeds[3] = { 1, 1, 2 };
	for (int k = 0; k < 3; k++) {
		struct ext_shuffle *sh = ext_shuffle_open(dir, 7, seeds[k]);
		for (int i = 0; i < 1000; i++) {
			msgpack_object o = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = (uint64_t)i };
			ext_shuffle_add(sh, &o);
		}
		runs[k].n = 0;
		ext_shuffle_drain(sh, collect, &runs[k]);
		assert_int_equal(runs[k].n, 1000);
		int seen[1000] = { 0 };
		for (int i = 0; i < 1000; i++)
			seen[runs[k].order[i]]++;
		for (int i = 0; i < 1000; i++)
			assert_int_equal(seen[i], 1);
	}
	assert_memory_equal(runs[0].order, runs[1].order, sizeof runs[0].order);
	assert_memory_not_equal(runs[0].order, runs[2].order, sizeof runs[0].order);
	// Mean output position of records 0..99: 499.5 for a uniform shuffle, sd ≈ 289/sqrt(100) ≈ 29.
	double mean = 0;
	for (int pos = 0; pos < 1000; pos++)
		if (runs[0].order[pos] < 100)
			mean += pos / 100.0;
	assert_true(mean > 499.5 - 4 * 29 && mean < 499.5 + 4 * 29);
	// The buckets are gone.
	char *cmd = xasprintf("ls %s | grep -c shuffle || true", dir);
	FILE *p = popen(cmd, "r");
	char buf[16] = "";
	assert_non_null(fgets(buf, sizeof buf, p));
	pclose(p);
	assert_int_equal(atoi(buf), 0);
	free(cmd);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packing_invariants),
		cmocka_unit_test(test_valid_split_stable),
		cmocka_unit_test(test_rank_world_coverage),
		cmocka_unit_test(test_cursor_resume),
		cmocka_unit_test(test_verify_flipped_byte),
		cmocka_unit_test(test_external_shuffle),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	char *cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		failed++;
	free(cmd);
	return failed;
}
