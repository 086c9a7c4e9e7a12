// merge-adapters — fold a trained adapter into its base: a plain Hugging Face checkpoint, or a PEFT LoRA adapter
// (DESIGN §4; the math and the output layout are in lib/merge.h).  Options mirror man/merge-adapters.1.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "die.h"
#include "merge.h"
#include "outfile.h"

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s --base MODEL --adapter RUN [--task NAME | --all-tasks] [--peft | --attention-only]\n"
		"       [--max-shard-size SIZE] [--force] -o OUT\n"
		"       %s --help | --version\n",
		progname(), progname());
	exit(code);
}

enum { O_BASE = 256, O_ADAPTER, O_TASK, O_ALL, O_PEFT, O_ATTN, O_SHARD, O_FORCE, O_HELP, O_VERSION };

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	static const struct option longopts[] = {
		{"base", 1, 0, O_BASE},      {"adapter", 1, 0, O_ADAPTER},        {"task", 1, 0, O_TASK},
		{"all-tasks", 0, 0, O_ALL},  {"peft", 0, 0, O_PEFT},              {"attention-only", 0, 0, O_ATTN},
		{"max-shard-size", 1, 0, O_SHARD}, {"force", 0, 0, O_FORCE},      {"output", 1, 0, 'o'},
		{"help", 0, 0, O_HELP},      {"version", 0, 0, O_VERSION},        {0, 0, 0, 0}};
	struct merge_opts o = {.max_shard = 5000000000ull};   // transformers' default max_shard_size "5GB"
	int ch;
	while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o': o.out = optarg; break;
		case O_BASE: o.base = optarg; break;
		case O_ADAPTER: o.run = optarg; break;
		case O_TASK: o.task = optarg; break;
		case O_ALL: o.all_tasks = 1; break;
		case O_PEFT: o.peft = 1; break;
		case O_ATTN: o.attention_only = 1; break;
		case O_FORCE: o.force = 1; break;
		case O_SHARD:
			if (merge_parse_size(optarg, &o.max_shard) != 0)
				die(EXIT_USAGE, "--max-shard-size: a positive size such as 5GB, 500MB, 2GiB or bytes: %s", optarg);
			break;
		case O_HELP: usage(stdout, EXIT_OK);
		case O_VERSION: printf("merge-adapters %s\n", MEDMOE_VERSION); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	if (optind != argc || !o.base || !o.run || !o.out)
		usage(stderr, EXIT_USAGE);
	if (o.task && o.all_tasks)
		die(EXIT_USAGE, "--task and --all-tasks exclude each other");
	merge_run(&o);
	close_stdout_or_die();
	return 0;
}
