// shard — pack a medmoe.tokens stream into fixed-length training sequences: a directory of shard files and a
// manifest (lib/shard_write.h); `shard --verify DIR` checks such a directory (lib/shard_verify.h).
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "die.h"
#include "progress.h"
#include "ext_shuffle.h"
#include "outfile.h"
#include "shard_verify.h"
#include "shard_write.h"
#include "stream.h"

// The shuffle's buckets aim at this many bytes each: the memory one bucket takes in the second pass.
#define SHUFFLE_BUCKET_BYTES (64u << 20)
// Buckets when the input's size is unknown (a pipe): memory is then about input size / 256.
#define SHUFFLE_PIPE_BUCKETS 256
// At most this many bucket files open at once (the usual limit is 1024 descriptors): past 32 GiB of input
// the buckets grow instead.
#define SHUFFLE_MAX_BUCKETS 512

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s [-q] --seq-len N [--valid F | COUNT] [--shard-tokens N] [--no-pack]\n"
		"       [--truncate | --drop] [--shuffle SEED] [--force] -o DIR [STREAM]\n"
		"       %s [-q] --verify DIR\n",
		progname(), progname());
	exit(code);
}

struct drain_ctx {
	struct shard_builder *b;
	const char *input;
	uint32_t vocab;
};

static void add_shuffled(const msgpack_object *rec, void *arg)
{
	struct drain_ctx *ctx = arg;
	struct shard_doc doc;
	shard_doc_from_record(ctx->input, -1, rec, ctx->vocab, &doc);  // checked once already, on the way in
	shard_builder_add(ctx->b, &doc);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seq-len", required_argument, NULL, 'L' },
		{ "valid", required_argument, NULL, 'v' },
		{ "shard-tokens", required_argument, NULL, 't' },
		{ "no-pack", no_argument, NULL, 'P' },
		{ "truncate", no_argument, NULL, 'T' },
		{ "drop", no_argument, NULL, 'D' },
		{ "shuffle", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "verify", required_argument, NULL, 'C' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct shard_options opt = { .shard_tokens = 1u << 25, .pack = 1, .overflow = SHARD_TRUNCATE };
	const char *out_dir = NULL, *verify_dir = NULL;
	int force = 0, quiet = 0, n_policies = 0;
	uint64_t seq_len = 0;
	int ch;

	set_progname(argv[0]);
	while ((ch = getopt_long(argc, argv, "o:q", longopts, NULL)) != -1) {
		switch (ch) {
		case 'L': seq_len = cli_count("--seq-len", optarg); break;
		case 'v':
			// A number with a point is a fraction of the documents; a whole number is a count.
			if (strpbrk(optarg, ".eE")) {
				char *end;
				opt.valid_fraction = strtod(optarg, &end);
				if (*end || !(opt.valid_fraction >= 0 && opt.valid_fraction <= 1))
					die(EXIT_USAGE, "--valid: not a fraction in [0, 1]: %s", optarg);
			} else {
				opt.valid_count = cli_count("--valid", optarg);
			}
			break;
		case 't': opt.shard_tokens = cli_count("--shard-tokens", optarg); break;
		case 'P': opt.pack = 0; break;
		case 'T': opt.overflow = SHARD_TRUNCATE; n_policies++; break;
		case 'D': opt.overflow = SHARD_DROP; n_policies++; break;
		case 's': opt.shuffle = 1; opt.shuffle_seed = cli_count("--shuffle", optarg); break;
		case 'f': force = 1; break;
		case 'o': out_dir = optarg; break;
		case 'C': verify_dir = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout, EXIT_OK);
		case 'V': printf("shard %s\n", MEDMOE_VERSION); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;

	if (verify_dir) {
		if (argc > 0 || out_dir)
			usage(stderr, EXIT_USAGE);
		int bad = shard_verify(verify_dir, quiet);
		if (bad)
			die(EXIT_DATA, "%s: %d check%s failed", verify_dir, bad, bad == 1 ? "" : "s");
		close_stdout_or_die();
		return 0;
	}
	if (argc > 1 || !out_dir || seq_len == 0)
		usage(stderr, EXIT_USAGE);
	if (seq_len > SHARD_MAX_SEQ_LEN)
		die(EXIT_USAGE, "--seq-len: %llu is too long", (unsigned long long)seq_len);
	if (n_policies > 1)
		die(EXIT_USAGE, "--truncate and --drop exclude each other");
	opt.seq_len = (uint32_t)seq_len;
	opt.input = argc ? argv[0] : "-";

	// Read the header first: a wrong input fails before any directory exists.
	struct stream_reader *r = stream_open(opt.input, "medmoe.tokens", 1);
	char sha[65];
	uint32_t vocab;
	stream_tokenizer(r, sha, &vocab);
	struct outdir *dir = outdir_open(out_dir, force);
	struct shard_builder *b = shard_builder_open(dir->tmp_path, &opt, &r->header);
	msgpack_object rec;
	struct shard_doc doc;
	if (opt.shuffle) {
		size_t n_buckets = SHUFFLE_PIPE_BUCKETS;
		struct stat st;
		if (strcmp(opt.input, "-") != 0 && stat(opt.input, &st) == 0)
			n_buckets = (size_t)(st.st_size / SHUFFLE_BUCKET_BYTES) + 1;
		if (n_buckets > SHUFFLE_MAX_BUCKETS)
			n_buckets = SHUFFLE_MAX_BUCKETS;
		struct ext_shuffle *sh = ext_shuffle_open(dir->tmp_path, n_buckets, opt.shuffle_seed);
		while (stream_next(r, &rec)) {
			shard_doc_from_record(r->path, r->record, &rec, vocab, &doc);
			ext_shuffle_add(sh, &rec);
		}
		struct drain_ctx ctx = { b, opt.input, vocab };
		ext_shuffle_drain(sh, add_shuffled, &ctx);
	} else {
		struct progress prog;
		size_t n_tokens = 0;
		progress_start(&prog, "shard", quiet);
		while (stream_next(r, &rec)) {
			shard_doc_from_record(r->path, r->record, &rec, vocab, &doc);
			shard_builder_add(b, &doc);
			n_tokens += doc.len;
			progress_update(&prog, (size_t)r->record, n_tokens);
		}
		progress_end(&prog, (size_t)r->record, n_tokens);
	}
	shard_builder_finish(b, !quiet);
	stream_close(r);
	outdir_commit(dir);
	close_stdout_or_die();
	return 0;
}
