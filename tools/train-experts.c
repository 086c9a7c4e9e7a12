// train-experts — train a LoRA / MOELoRA / MING-MOE / SparseDoctor adapter on a frozen base model from a
// shard directory (DESIGN §4).  Options mirror man/train-experts.1; the loop is lib/trainer.c.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "cli.h"
#include "die.h"
#include "dist.h"
#include "outfile.h"
#include "trainer.h"

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s --base MODEL --method lora|moelora|mingmoe|sparsedoctor [--steps N] [--save-every N]\n"
		"       [--stop-after K] [--seed S] [--resume] [--force] [-q] -o RUN SHARD_DIR\n"
		"  adapter:   [--experts N] [--rank R] [--alpha A] [--rslora] [--top-k K] [--targets q,k,v,o,gate,up,down]\n"
		"             [--dropout P] [--task-emb N] [--lb-coef C] [--shared-experts N]\n"
		"             [--con-tau T] [--con-lambda L] [--con-proj N] [--con-queue N]\n"
		"  optimizer: [--lr LR] [--schedule cosine|linear|constant] [--warmup N] [--warmup-ratio F]\n"
		"             [--beta1 B] [--beta2 B] [--eps E] [--weight-decay W] [--clip NORM]\n"
		"  batches:   [--batch-tokens N] [--accum N] [--no-shuffle] [--recompute]\n"
		"  eval:      [--eval-every N] [--eval-sequences N]\n"
		"  device:    [--device cpu|cuda|cuda:N] [--dtype bf16|f16|f32]\n"
		"       %s --help | --version\n",
		progname(), progname());
	exit(code);
}

enum {
	O_BASE = 256, O_METHOD, O_STEPS, O_SAVE, O_STOP, O_SEED, O_RESUME, O_FORCE, O_EXPERTS, O_RANK, O_ALPHA,
	O_RSLORA, O_TOPK, O_TARGETS, O_DROPOUT, O_TASKEMB, O_LB, O_SHARED, O_TAU, O_LAMBDA, O_PROJ, O_QUEUE, O_LR,
	O_SCHED, O_WARMUP, O_WARMUP_RATIO, O_BETA1, O_BETA2, O_EPS, O_WD, O_CLIP, O_BATCH, O_ACCUM, O_NOSHUF,
	O_RECOMP, O_EVAL, O_EVALSEQ, O_DEVICE, O_DTYPE, O_HELP, O_VERSION
};

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	static const struct option longopts[] = {
		{"base", 1, 0, O_BASE}, {"method", 1, 0, O_METHOD}, {"steps", 1, 0, O_STEPS},
		{"save-every", 1, 0, O_SAVE}, {"stop-after", 1, 0, O_STOP}, {"seed", 1, 0, O_SEED},
		{"resume", 0, 0, O_RESUME}, {"force", 0, 0, O_FORCE}, {"experts", 1, 0, O_EXPERTS},
		{"rank", 1, 0, O_RANK}, {"alpha", 1, 0, O_ALPHA}, {"rslora", 0, 0, O_RSLORA}, {"top-k", 1, 0, O_TOPK},
		{"targets", 1, 0, O_TARGETS}, {"dropout", 1, 0, O_DROPOUT}, {"task-emb", 1, 0, O_TASKEMB},
		{"lb-coef", 1, 0, O_LB}, {"shared-experts", 1, 0, O_SHARED}, {"con-tau", 1, 0, O_TAU},
		{"con-lambda", 1, 0, O_LAMBDA}, {"con-proj", 1, 0, O_PROJ}, {"con-queue", 1, 0, O_QUEUE},
		{"lr", 1, 0, O_LR}, {"schedule", 1, 0, O_SCHED}, {"warmup", 1, 0, O_WARMUP},
		{"warmup-ratio", 1, 0, O_WARMUP_RATIO}, {"beta1", 1, 0, O_BETA1}, {"beta2", 1, 0, O_BETA2},
		{"eps", 1, 0, O_EPS}, {"weight-decay", 1, 0, O_WD}, {"clip", 1, 0, O_CLIP},
		{"batch-tokens", 1, 0, O_BATCH}, {"accum", 1, 0, O_ACCUM}, {"no-shuffle", 0, 0, O_NOSHUF},
		{"recompute", 0, 0, O_RECOMP}, {"eval-every", 1, 0, O_EVAL}, {"eval-sequences", 1, 0, O_EVALSEQ},
		{"device", 1, 0, O_DEVICE}, {"dtype", 1, 0, O_DTYPE}, {"help", 0, 0, O_HELP}, {"version", 0, 0, O_VERSION},
		{0, 0, 0, 0}};
	// The method's preset must come first and every other option overrides it: find --method before the rest.
	enum adapter_method method = ADAPTER_LORA;
	int have_method = 0;
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		if (strcmp(argv[i], "--method") == 0 && i + 1 < argc)
			v = argv[i + 1];
		else if (strncmp(argv[i], "--method=", 9) == 0)
			v = argv[i] + 9;
		else if (strcmp(argv[i], "--") == 0)
			break;
		if (v) {
			if (adapter_method_parse(v, &method) != 0)
				die(EXIT_USAGE, "--method: unknown method %s (lora, moelora, mingmoe, sparsedoctor)", v);
			have_method = 1;
		}
	}
	struct train_opts o;
	train_opts_defaults(&o, method);
	int ch;
	while ((ch = getopt_long(argc, argv, "o:q", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o': o.run = optarg; break;
		case 'q': o.quiet = 1; break;
		case O_BASE: o.base = optarg; break;
		case O_METHOD: break;
		case O_STEPS: o.steps = cli_count("--steps", optarg); break;
		case O_SAVE: o.save_every = cli_count("--save-every", optarg); break;
		case O_STOP: o.stop_after = cli_count("--stop-after", optarg); break;
		case O_SEED: o.seed = cli_count("--seed", optarg); break;
		case O_RESUME: o.resume = 1; break;
		case O_FORCE: o.force = 1; break;
		case O_EXPERTS: o.adapter.experts = (int)cli_int("--experts", optarg, 1, 1024); break;
		case O_RANK: o.adapter.rank = (int)cli_int("--rank", optarg, 1, 65536); break;
		case O_ALPHA: o.adapter.alpha = cli_real("--alpha", optarg, 1e-9, 1e9); break;
		case O_RSLORA: o.adapter.rslora = 1; break;
		case O_TOPK: o.adapter.top_k = (int)cli_int("--top-k", optarg, 1, 1024); break;
		case O_TARGETS:
			if (adapter_targets_parse(optarg, &o.adapter.targets) != 0)
				die(EXIT_USAGE, "--targets: a comma list of q,k,v,o,gate,up,down: %s", optarg);
			break;
		case O_DROPOUT: o.adapter.dropout = cli_real("--dropout", optarg, 0, 0.999); break;
		case O_TASKEMB: o.adapter.task_emb = (int)cli_int("--task-emb", optarg, 1, 65536); break;
		case O_LB: o.adapter.lb_coef = cli_real("--lb-coef", optarg, 0, 1e6); break;
		case O_SHARED: o.adapter.shared_experts = (int)cli_int("--shared-experts", optarg, 0, 1024); break;
		case O_TAU: o.adapter.con_tau = cli_real("--con-tau", optarg, 1e-6, 1e6); break;
		case O_LAMBDA: o.adapter.con_lambda = cli_real("--con-lambda", optarg, 0, 1e6); break;
		case O_PROJ: o.adapter.con_proj = (int)cli_int("--con-proj", optarg, 1, 65536); break;
		case O_QUEUE: o.adapter.con_queue = (int)cli_int("--con-queue", optarg, 1, 1 << 24); break;
		case O_LR: o.lr = cli_real("--lr", optarg, 0, 1e300); break;
		case O_SCHED:
			if (lr_schedule_parse(optarg, &o.schedule) != 0)
				die(EXIT_USAGE, "--schedule: cosine, linear or constant: %s", optarg);
			break;
		case O_WARMUP: o.warmup = cli_count("--warmup", optarg), o.warmup_given = 1; break;
		case O_WARMUP_RATIO: o.warmup_ratio = cli_real("--warmup-ratio", optarg, 0, 1); break;
		case O_BETA1: o.adamw.beta1 = cli_real("--beta1", optarg, 0, 0.999999); break;
		case O_BETA2: o.adamw.beta2 = cli_real("--beta2", optarg, 0, 0.999999999); break;
		case O_EPS: o.adamw.eps = cli_real("--eps", optarg, 0, 1); break;
		case O_WD: o.adamw.weight_decay = cli_real("--weight-decay", optarg, 0, 1e3); break;
		case O_CLIP: o.clip = cli_real("--clip", optarg, 0, 1e30); break;
		case O_BATCH: o.batch_tokens = (uint32_t)cli_int("--batch-tokens", optarg, 1, 1 << 30); break;
		case O_ACCUM: o.accum = (uint32_t)cli_int("--accum", optarg, 1, 1 << 20); break;
		case O_NOSHUF: o.shuffle = 0; break;
		case O_RECOMP: o.recompute = 1; break;
		case O_EVAL: o.eval_every = cli_count("--eval-every", optarg); break;
		case O_EVALSEQ: o.eval_sequences = cli_count("--eval-sequences", optarg); break;
		case O_DEVICE: cli_device(optarg, &o.model, &o.device_index); break;
		case O_DTYPE: cli_weight_dtype(optarg, &o.model); break;
		case O_HELP: usage(stdout, EXIT_OK);
		case O_VERSION: printf("train-experts %s (data parallel: %s)\n", MEDMOE_VERSION, dist_build()); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	if (optind != argc - 1 || !o.base || !o.run || !have_method)
		usage(stderr, EXIT_USAGE);
	if (o.steps < 1)
		die(EXIT_USAGE, "--steps must be at least 1");
	o.shards = argv[optind];
	train_run(&o);
	close_stdout_or_die();
	return 0;
}
