// shard_read.c — rank/world batches with an exact cursor (see shard_read.h).
#include "shard_read.h"
#include "die.h"
#include "infile.h"
#include "mpk_scan.h"
#include "rng.h"
#include "shard_manifest.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <sha2.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct shard_reader {
	struct shard_manifest *m;
	const struct shard_split_entry *split;
	struct shard_reader_options opt;
	uint64_t n;                  // sequences in the split
	uint64_t **offsets;          // per shard: sequences + 1 record offsets
	char **paths;
	int *fds;                    // per shard, opened on first use
	uint64_t *verified_ino;      // per shard: the file verify_shards checked
	struct timespec *verified_ctime;
	uint32_t *perm;              // the current epoch's order (NULL: shard order)
	uint64_t perm_epoch;
	struct shard_cursor cur;
	char *buf;
	size_t buf_cap;
	msgpack_unpacked msg;
};

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int j = 7; j >= 0; j--)
		v = v << 8 | p[j];
	return v;
}

// PATH, the index of shard F: its size and sha256 as the manifest says, then offsets that rise from the end of
// the header to the end of the shard.  The file's size is checked before anything is allocated.
static uint64_t *load_index(const struct shard_manifest *m, const char *path, const struct shard_file_entry *f)
{
	struct stat st;
	int fd = infile_open(path, &st);
	if (fd < 0)
		die(EXIT_DATA, "%s: %s", path, strerror(errno));
	// f->sequences <= f->bytes / (5 seq_len) (shard_manifest_load): (sequences + 1) * 8 cannot wrap
	uint64_t want = f->sequences + 1;
	if ((uint64_t)st.st_size != want * 8)
		die_data(path, -1, NULL, "%llu bytes, but the manifest's %llu sequences need %llu",
			 (unsigned long long)st.st_size, (unsigned long long)f->sequences, (unsigned long long)(want * 8));
	uint8_t *raw = xmalloc((size_t)want * 8);
	size_t got = 0;
	while (got < want * 8) {
		ssize_t k = pread(fd, raw + got, (size_t)(want * 8 - got), (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die_data(path, -1, NULL, "shorter than its size says (changed while read?)");
		got += (size_t)k;
	}
	close(fd);
	char sha[SHA256_DIGEST_STRING_LENGTH];
	SHA256Data(raw, (size_t)want * 8, sha);
	if (strcmp(sha, f->index_sha256) != 0)
		die_data(path, -1, NULL, "sha256 %.12s…, %s says %.12s…: the index is damaged", sha, m->path,
			 f->index_sha256);
	uint64_t *idx = xmalloc((size_t)want * sizeof *idx);
	for (uint64_t i = 0; i < want; i++) {
		idx[i] = le64(raw + 8 * i);
		uint64_t len = i ? idx[i] - idx[i - 1] : 0;
		if ((i == 0 && idx[0] == 0) || (i > 0 && (idx[i] <= idx[i - 1] || len > MPK_MAX_OBJECT_BYTES)))
			die_data(path, (int64_t)i, NULL, "offset %llu does not follow %llu", (unsigned long long)idx[i],
				 i ? (unsigned long long)idx[i - 1] : 0ull);
	}
	if (idx[want - 1] != f->bytes)
		die_data(path, -1, NULL, "ends at %llu, but %s is %llu bytes", (unsigned long long)idx[want - 1], f->file,
			 (unsigned long long)f->bytes);
	free(raw);
	return idx;
}

// ---- verification: every shard's size, sha256 and header, before the run uses any of them ----
//
// Hashing every shard at every start would cost a full read of the data; DIR/.medmoe-verified remembers the
// shards already found to match: one line "SHA256 SIZE INODE CTIME_S CTIME_NS FILE" each.  A shard is taken as
// verified only when its size, inode and ctime are the ones recorded and the recorded sha256 is the manifest's:
// any write to the file, or a replacement, changes its ctime (which no user can set), so a changed shard is
// hashed again.  The cache is advisory: unreadable or malformed lines are ignored, and a directory that cannot
// be written to just goes without it.

#define VERIFIED_NAME ".medmoe-verified"

struct verified {
	char sha[65];
	uint64_t size, ino;
	int64_t ctime_s, ctime_ns;
	char file[256];
};

static size_t load_verified(const char *dir, struct verified **out)
{
	char *path = xasprintf("%s/%s", dir, VERIFIED_NAME);
	size_t len, n = 0;
	struct stat st;
	*out = NULL;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > INFILE_MAX_CONFIG) {
		free(path);
		return 0;
	}
	char *text = infile_read(path, INFILE_MAX_CONFIG, &len);
	free(path);
	if (!text)
		return 0;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		struct verified v;
		unsigned long long size, ino;
		long long cs, cns;
		if (sscanf(line, "%64s %llu %llu %lld %lld %255s", v.sha, &size, &ino, &cs, &cns, v.file) != 6)
			continue;
		v.size = size, v.ino = ino, v.ctime_s = cs, v.ctime_ns = cns;
		*out = xrealloc(*out, (n + 1) * sizeof **out);
		(*out)[n++] = v;
	}
	free(text);
	return n;
}

static void save_verified(const char *dir, const struct verified *v, size_t n)
{
	char *path = xasprintf("%s/%s", dir, VERIFIED_NAME), *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	FILE *fp = fopen(tmp, "w");
	int ok = fp != NULL;
	for (size_t i = 0; ok && i < n; i++)
		ok = fprintf(fp, "%s %llu %llu %lld %lld %s\n", v[i].sha, (unsigned long long)v[i].size,
			     (unsigned long long)v[i].ino, (long long)v[i].ctime_s, (long long)v[i].ctime_ns, v[i].file) > 0;
	if (fp && fclose(fp) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) != 0)
		unlink(tmp);   // a read-only shard directory: verified again next time
	free(tmp);
	free(path);
}

static int str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

// The header of shard LO (open as FD) says what the manifest says.
static void check_header(struct shard_reader *r, size_t lo, int fd)
{
	const char *path = r->paths[lo];
	uint64_t hlen = r->offsets[lo][0];
	char *hbuf = xmalloc((size_t)hlen);
	if (pread(fd, hbuf, (size_t)hlen, 0) != (ssize_t)hlen)
		die_data(path, 0, NULL, "cannot read the header");
	size_t pos = 0;
	const char *why = mpk_unpack(&r->msg, hbuf, (size_t)hlen, &pos);
	const msgpack_object *h = &r->msg.data;
	if (why || pos != hlen || h->type != MSGPACK_OBJECT_MAP)
		die_data(path, 0, NULL, "not one header map before the first record%s%s", why ? ": " : "", why ? why : "");
	const msgpack_object *seq_len = msgpack_map_get(h, "seq_len"), *tok = msgpack_map_get(h, "tokenizer");
	const msgpack_object *sha_o = tok ? msgpack_map_get(tok, "sha256") : NULL;
	if (!str_is(msgpack_map_get(h, "schema"), "medmoe.shard"))
		die_data(path, 0, "schema", "not medmoe.shard");
	if (!seq_len || seq_len->type != MSGPACK_OBJECT_POSITIVE_INTEGER || seq_len->via.u64 != r->m->seq_len)
		die_data(path, 0, "seq_len", "differs from the manifest's %u", r->m->seq_len);
	if (!str_is(msgpack_map_get(h, "split"), r->split->name))
		die_data(path, 0, "split", "is not \"%s\"", r->split->name);
	if (!str_is(sha_o, r->m->tokenizer_sha256))
		die_data(path, 0, "tokenizer.sha256", "differs from the manifest's %.12s…", r->m->tokenizer_sha256);
	free(hbuf);
}

// Every shard of the split: its size and sha256 are the manifest's (hashed, or found in the cache), and its
// header says what the manifest says.  Only then may any token reach the model: a truncated shard, bytes
// appended, or a manifest whose checksum does not match are refused (exit 65) before the run writes anything.
static void verify_shards(struct shard_reader *r)
{
	struct verified *cache;
	size_t n_cache = load_verified(r->m->dir, &cache), n_new = 0;
	struct verified *fresh = xcalloc(r->split->n_shards ? r->split->n_shards : 1, sizeof *fresh);
	for (size_t lo = 0; lo < r->split->n_shards; lo++) {
		const struct shard_file_entry *f = &r->split->shards[lo];
		const char *path = r->paths[lo];
		struct stat st;
		int fd = infile_open(path, &st);
		if (fd < 0)
			die(EXIT_DATA, "%s: %s", path, strerror(errno));
		if ((uint64_t)st.st_size != f->bytes)
			die_data(path, -1, NULL, "%llu bytes, %s says %llu (truncated, or bytes added?)",
				 (unsigned long long)st.st_size, r->m->path, (unsigned long long)f->bytes);
		struct verified v = {.size = (uint64_t)st.st_size, .ino = (uint64_t)st.st_ino,
				     .ctime_s = (int64_t)st.st_ctim.tv_sec, .ctime_ns = (int64_t)st.st_ctim.tv_nsec};
		snprintf(v.file, sizeof v.file, "%s", f->file);
		int known = 0;
		for (size_t i = 0; i < n_cache && !known; i++)
			known = cache[i].size == v.size && cache[i].ino == v.ino && cache[i].ctime_s == v.ctime_s &&
				cache[i].ctime_ns == v.ctime_ns && strcmp(cache[i].file, v.file) == 0 &&
				strcmp(cache[i].sha, f->sha256) == 0;
		if (!known) {
			uint64_t size;
			infile_sha256_fd(fd, path, v.sha, &size);
			if (size != f->bytes || strcmp(v.sha, f->sha256) != 0)
				die_data(path, -1, NULL, "sha256 %.12s… (%llu bytes), %s says %.12s… (%llu bytes): the "
					 "shard is damaged (shard --verify lists every difference)", v.sha,
					 (unsigned long long)size, r->m->path, f->sha256, (unsigned long long)f->bytes);
			n_new++;
		} else {
			memcpy(v.sha, f->sha256, sizeof v.sha);
		}
		check_header(r, lo, fd);
		close(fd);
		fresh[lo] = v;
		r->verified_ino[lo] = v.ino;
		r->verified_ctime[lo] = (struct timespec){(time_t)v.ctime_s, (long)v.ctime_ns};
	}
	if (n_new) {
		// what was known of other shards (the other split) is kept
		struct verified *all = xmalloc((n_cache + r->split->n_shards) * sizeof *all);
		size_t n_all = 0;
		for (size_t i = 0; i < n_cache; i++) {
			int mine = 0;
			for (size_t lo = 0; lo < r->split->n_shards && !mine; lo++)
				mine = strcmp(cache[i].file, r->split->shards[lo].file) == 0;
			if (!mine)
				all[n_all++] = cache[i];
		}
		for (size_t lo = 0; lo < r->split->n_shards; lo++)
			all[n_all++] = fresh[lo];
		save_verified(r->m->dir, all, n_all);
		free(all);
	}
	free(cache);
	free(fresh);
}

// Shard LO, opened for reading: still the file verified when the run started.
static void open_shard(struct shard_reader *r, size_t lo)
{
	const char *path = r->paths[lo];
	struct stat st;
	int fd = infile_open(path, &st);
	if (fd < 0)
		die(EXIT_DATA, "%s: %s", path, strerror(errno));
	if ((uint64_t)st.st_size != r->split->shards[lo].bytes || (uint64_t)st.st_ino != r->verified_ino[lo] ||
	    st.st_ctim.tv_sec != r->verified_ctime[lo].tv_sec || st.st_ctim.tv_nsec != r->verified_ctime[lo].tv_nsec)
		die_data(path, -1, NULL, "changed since it was verified at the start of this run");
	r->fds[lo] = fd;
}

struct shard_reader *shard_reader_open(const char *dir, const struct shard_reader_options *opt)
{
	if (opt->world == 0 || opt->rank >= opt->world)
		die(EXIT_USAGE, "rank %u is not in 0..world-1 (world %u)", opt->rank, opt->world);
	if (opt->batch_size == 0)
		die(EXIT_USAGE, "batch size must be at least 1");
	struct shard_reader *r = xcalloc(1, sizeof *r);
	r->m = shard_manifest_load(dir);
	r->opt = *opt;
	r->split = shard_manifest_split(r->m, opt->split ? opt->split : "train");
	if (!r->split)
		die(EXIT_USAGE, "no split \"%s\" (train or valid)", opt->split);
	r->n = r->split->sequences;
	if (r->n > UINT32_MAX)
		die(EXIT_DATA, "%s: more than 2^32 sequences", r->m->path);
	size_t ns = r->split->n_shards;
	r->offsets = xcalloc(ns ? ns : 1, sizeof *r->offsets);
	r->paths = xcalloc(ns ? ns : 1, sizeof *r->paths);
	r->fds = xmalloc((ns ? ns : 1) * sizeof *r->fds);
	r->verified_ino = xcalloc(ns ? ns : 1, sizeof *r->verified_ino);
	r->verified_ctime = xcalloc(ns ? ns : 1, sizeof *r->verified_ctime);
	uint64_t total = 0;
	for (size_t i = 0; i < ns; i++) {
		const struct shard_file_entry *f = &r->split->shards[i];
		char *ipath = xasprintf("%s/%s", dir, f->index);
		r->offsets[i] = load_index(r->m, ipath, f);
		free(ipath);
		r->paths[i] = xasprintf("%s/%s", dir, f->file);
		r->fds[i] = -1;
		total += f->sequences;
	}
	if (total != r->n)
		die_data(r->m->path, -1, "sequences", "the shards hold %llu, the split says %llu", (unsigned long long)total,
			 (unsigned long long)r->n);
	msgpack_unpacked_init(&r->msg);
	verify_shards(r);
	return r;
}

uint32_t shard_reader_seq_len(const struct shard_reader *r) { return r->m->seq_len; }
uint64_t shard_reader_sequences(const struct shard_reader *r) { return r->n; }
const char *shard_reader_tokenizer_sha256(const struct shard_reader *r) { return r->m->tokenizer_sha256; }

uint64_t shard_reader_rank_sequences(const struct shard_reader *r)
{
	return r->n / r->opt.world + (r->opt.rank < r->n % r->opt.world);
}

uint64_t shard_reader_min_rank_sequences(const struct shard_reader *r)
{
	return r->n / r->opt.world;
}

// The epoch's order: perm[i] is the sequence at position i.
static void make_order(struct shard_reader *r, uint64_t epoch)
{
	if (!r->opt.shuffle || (r->perm && r->perm_epoch == epoch))
		return;
	if (!r->perm)
		r->perm = xmalloc((r->n ? r->n : 1) * sizeof *r->perm);
	for (uint64_t i = 0; i < r->n; i++)
		r->perm[i] = (uint32_t)i;
	struct rng g;
	rng_seed(&g, r->opt.seed, epoch);
	rng_shuffle(&g, r->perm, r->n, sizeof *r->perm);
	r->perm_epoch = epoch;
}

static const msgpack_object *need_bin(const char *path, uint64_t seq, const msgpack_object *rec, const char *key,
				      size_t unit)
{
	const msgpack_object *v = msgpack_map_get(rec, key);
	if (!v || v->type != MSGPACK_OBJECT_BIN || v->via.bin.size % unit != 0)
		die_data(path, (int64_t)seq + 1, key, "missing or not a bin of %zu-byte values", unit);
	return v;
}

static uint32_t le32(const char *p)
{
	const uint8_t *u = (const uint8_t *)p;
	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

// Read sequence G of the split into row ROW of B.
static void read_sequence(struct shard_reader *r, uint64_t g, uint32_t row, struct shard_batch *b)
{
	// The shard holding g: binary search on the shards' first sequence numbers.
	size_t lo = 0, hi = r->split->n_shards;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (r->split->shards[mid].first <= g)
			lo = mid;
		else
			hi = mid;
	}
	const char *path = r->paths[lo];
	uint64_t local = g - r->split->shards[lo].first;
	uint64_t off = r->offsets[lo][local], len = r->offsets[lo][local + 1] - off;
	if (r->fds[lo] < 0)
		open_shard(r, lo);
	if (len > r->buf_cap) {
		r->buf = xrealloc(r->buf, len);
		r->buf_cap = len;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t k = pread(r->fds[lo], r->buf + got, len - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die_data(path, (int64_t)local + 1, NULL, "cannot read %llu bytes at %llu (the file is shorter than its index)",
				 (unsigned long long)len, (unsigned long long)off);
		got += (size_t)k;
	}
	size_t pos = 0;
	const char *why = mpk_unpack(&r->msg, r->buf, len, &pos);
	if (why || pos != len || r->msg.data.type != MSGPACK_OBJECT_MAP)
		die_data(path, (int64_t)local + 1, NULL, "not one record where the index points%s%s", why ? ": " : "",
			 why ? why : "");
	const msgpack_object *rec = &r->msg.data;
	uint32_t seq_len = r->m->seq_len;
	const msgpack_object *ids = need_bin(path, local, rec, "ids", 4);
	const msgpack_object *mask = need_bin(path, local, rec, "mask", 1);
	const msgpack_object *offs = need_bin(path, local, rec, "doc_offsets", 4);
	const msgpack_object *tasks = need_bin(path, local, rec, "doc_task_ids", 4);
	uint32_t n_docs = tasks->via.bin.size / 4;
	if (ids->via.bin.size != seq_len * 4 || mask->via.bin.size != seq_len || offs->via.bin.size / 4 != n_docs + 1 ||
	    n_docs == 0)
		die_data(path, (int64_t)local + 1, NULL, "ids, mask, doc_offsets or doc_task_ids has the wrong length");
	if (le32(offs->via.bin.ptr) != 0)
		die_data(path, (int64_t)local + 1, "doc_offsets", "does not start at 0");
	uint32_t used = le32(offs->via.bin.ptr + 4 * n_docs);
	const uint8_t *mk = (const uint8_t *)mask->via.bin.ptr;
	uint32_t vocab = r->m->vocab_size;
	for (uint32_t i = 0; i < seq_len; i++) {
		uint32_t id = le32(ids->via.bin.ptr + 4 * i);
		if (id >= vocab)
			die_data(path, (int64_t)local + 1, "ids", "position %u: id %u is outside the vocabulary (%u)", i, id,
				 vocab);
		if (mk[i] > 1 || (i >= used && mk[i]))
			die_data(path, (int64_t)local + 1, "mask", "position %u: %u (0 or 1, and 0 on the padding)", i, mk[i]);
		b->ids[(size_t)row * seq_len + i] = id;
	}
	memcpy(b->mask + (size_t)row * seq_len, mk, seq_len);
	b->seq_index[row] = g;
	if (b->n_docs + n_docs > b->cap_docs) {
		size_t cap = b->cap_docs ? b->cap_docs : 64;
		while (cap < b->n_docs + n_docs)
			cap *= 2;
		b->doc_seq = xrealloc(b->doc_seq, cap * sizeof *b->doc_seq);
		b->doc_begin = xrealloc(b->doc_begin, cap * sizeof *b->doc_begin);
		b->doc_end = xrealloc(b->doc_end, cap * sizeof *b->doc_end);
		b->doc_task_id = xrealloc(b->doc_task_id, cap * sizeof *b->doc_task_id);
		b->cap_docs = cap;
	}
	for (uint32_t d = 0; d < n_docs; d++) {
		uint32_t begin = le32(offs->via.bin.ptr + 4 * d), end = le32(offs->via.bin.ptr + 4 * (d + 1));
		if (begin >= end || end > seq_len)
			die_data(path, (int64_t)local + 1, "doc_offsets", "not rising within seq_len");
		uint32_t k = b->n_docs++;
		b->doc_seq[k] = row;
		b->doc_begin[k] = begin;
		b->doc_end[k] = end;
		b->doc_task_id[k] = le32(tasks->via.bin.ptr + 4 * d);
	}
}

uint32_t shard_reader_next_part(struct shard_reader *r, struct shard_batch *b, uint32_t part, uint32_t parts)
{
	if (parts == 0 || part >= parts)
		die(EXIT_USAGE, "batch part %u is not in 0..%u", part, parts ? parts - 1 : 0);
	uint64_t share = shard_reader_rank_sequences(r);
	uint32_t seq_len = r->m->seq_len;
	if (r->cur.position >= share) {
		r->cur.epoch++;
		r->cur.position = 0;
		b->n_seqs = 0;
		b->n_docs = 0;
		return 0;
	}
	uint64_t left = share - r->cur.position;
	uint32_t n = left < r->opt.batch_size ? (uint32_t)left : r->opt.batch_size;
	if (!b->ids || b->seq_len != seq_len) {
		// Sized for a full batch once, so the training loop allocates nothing.
		free(b->ids);
		free(b->mask);
		free(b->seq_index);
		b->ids = xmalloc((size_t)r->opt.batch_size * seq_len * sizeof *b->ids);
		b->mask = xmalloc((size_t)r->opt.batch_size * seq_len);
		b->seq_index = xmalloc(r->opt.batch_size * sizeof *b->seq_index);
		b->seq_len = seq_len;
	}
	make_order(r, r->cur.epoch);
	b->n_docs = 0;
	uint32_t lo = (uint32_t)((uint64_t)n * part / parts), hi = (uint32_t)((uint64_t)n * (part + 1) / parts);
	for (uint32_t row = lo; row < hi; row++) {
		uint64_t i = r->opt.rank + (r->cur.position + row) * r->opt.world;
		read_sequence(r, r->perm ? r->perm[i] : i, row - lo, b);
	}
	b->n_seqs = hi - lo;
	r->cur.position += n;
	return n;
}

uint32_t shard_reader_next(struct shard_reader *r, struct shard_batch *b)
{
	return shard_reader_next_part(r, b, 0, 1);
}

struct shard_cursor shard_reader_tell(const struct shard_reader *r)
{
	struct shard_cursor c = r->cur;
	c.sequences = r->n;
	c.seed = r->opt.seed;
	c.rank = r->opt.rank;
	c.world = r->opt.world;
	c.shuffle = r->opt.shuffle != 0;
	return c;
}

void shard_reader_seek(struct shard_reader *r, struct shard_cursor c)
{
	struct shard_cursor here = shard_reader_tell(r);
	if (c.sequences != here.sequences || c.seed != here.seed || c.rank != here.rank || c.world != here.world ||
	    c.shuffle != here.shuffle)
		die(EXIT_DATA,
		    "%s: the cursor was saved reading %llu sequences as rank %u of %u (seed %llu, shuffle %u), "
		    "not %llu as rank %u of %u (seed %llu, shuffle %u): resuming would not repeat the same batches",
		    r->m->dir, (unsigned long long)c.sequences, c.rank, c.world, (unsigned long long)c.seed, c.shuffle,
		    (unsigned long long)here.sequences, here.rank, here.world, (unsigned long long)here.seed,
		    here.shuffle);
	if (c.position > shard_reader_rank_sequences(r))
		die(EXIT_DATA, "cursor position %llu is past this rank's %llu sequences", (unsigned long long)c.position,
		    (unsigned long long)shard_reader_rank_sequences(r));
	r->cur.epoch = c.epoch;
	r->cur.position = c.position;
}

void shard_reader_close(struct shard_reader *r)
{
	for (size_t i = 0; i < r->split->n_shards; i++) {
		if (r->fds[i] >= 0)
			close(r->fds[i]);
		free(r->offsets[i]);
		free(r->paths[i]);
	}
	free(r->offsets);
	free(r->paths);
	free(r->fds);
	free(r->verified_ino);
	free(r->verified_ctime);
	free(r->perm);
	free(r->buf);
	msgpack_unpacked_destroy(&r->msg);
	shard_manifest_free(r->m);
	free(r);
}

void shard_batch_free(struct shard_batch *b)
{
	free(b->ids);
	free(b->mask);
	free(b->seq_index);
	free(b->doc_seq);
	free(b->doc_begin);
	free(b->doc_end);
	free(b->doc_task_id);
	memset(b, 0, sizeof *b);
}
