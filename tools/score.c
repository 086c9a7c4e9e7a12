// score — accuracy of predictions streams (from eval-exam) per benchmark and category, with bootstrap
// intervals, a paired comparison against a baseline run, and reports as text, JSON, TSV, Markdown and SVG.
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"
#include "die.h"
#include "outfile.h"
#include "score_data.h"
#include "score_format.h"
#include "score_history.h"
#include "score_report.h"
#include "score_samples.h"
#include "score_svg.h"

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp,
		"usage: %s [--json | --tsv | --markdown] [--svg file] [--samples file] [--baseline pred]\n"
		"             [--bootstrap n] [--seed s] [--history file] [--plot-history file] [--fail-under x]\n"
		"             [--label name] pred ...\n"
		"       %s --history file --plot-history file\n",
		progname(), progname());
	exit(code);
}

// "0.55" or "55%".
static double parse_fraction(const char *opt, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end != s && *end == '%' && end[1] == '\0') {
		v /= 100;
		end++;
	}
	if (end == s || *end || !(v >= 0 && v <= 1))
		die(EXIT_USAGE, "%s: want a fraction 0..1 or a percentage: %s", opt, s);
	return v;
}

// The run's time: SOURCE_DATE_EPOCH when set (reproducible output), else now.
static double run_date(void)
{
	const char *epoch = getenv("SOURCE_DATE_EPOCH");
	if (epoch && *epoch)
		return (double)cli_count("SOURCE_DATE_EPOCH", epoch);
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

enum format { FORMAT_TEXT, FORMAT_JSON, FORMAT_TSV, FORMAT_MARKDOWN };

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "tsv", no_argument, NULL, 't' },
		{ "markdown", no_argument, NULL, 'm' },
		{ "svg", required_argument, NULL, 's' },
		{ "samples", required_argument, NULL, 'L' },
		{ "baseline", required_argument, NULL, 'b' },
		{ "bootstrap", required_argument, NULL, 'B' },
		{ "seed", required_argument, NULL, 'S' },
		{ "history", required_argument, NULL, 'H' },
		{ "plot-history", required_argument, NULL, 'P' },
		{ "fail-under", required_argument, NULL, 'f' },
		{ "label", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	enum format format = FORMAT_TEXT;
	int n_formats = 0;
	const char *svg_path = NULL, *samples_path = NULL, *baseline_path = NULL, *history_path = NULL, *plot_path = NULL, *label = NULL;
	struct score_options opt = { 1000, 1, 0.95 };
	double fail_under = -1;
	int ch;

	set_progname(argv[0]);
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j': format = FORMAT_JSON; n_formats++; break;
		case 't': format = FORMAT_TSV; n_formats++; break;
		case 'm': format = FORMAT_MARKDOWN; n_formats++; break;
		case 's': svg_path = optarg; break;
		case 'L': samples_path = optarg; break;
		case 'b': baseline_path = optarg; break;
		case 'B': opt.n_resamples = cli_count("--bootstrap", optarg); break;
		case 'S': opt.seed = cli_count("--seed", optarg); break;
		case 'H': history_path = optarg; break;
		case 'P': plot_path = optarg; break;
		case 'f': fail_under = parse_fraction("--fail-under", optarg); break;
		case 'l': label = optarg; break;
		case 'h': usage(stdout, EXIT_OK);
		case 'V': printf("score %s\n", MEDMOE_VERSION); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (n_formats > 1)
		die(EXIT_USAGE, "--json, --tsv and --markdown exclude each other");
	if (opt.n_resamples > 1000000)
		die(EXIT_USAGE, "--bootstrap: at most 1000000 resamples");
	if (opt.seed > (unsigned long long)INT64_MAX)
		die(EXIT_USAGE, "--seed: at most %lld", (long long)INT64_MAX);
	if (plot_path && !history_path)
		die(EXIT_USAGE, "--plot-history draws the file given with --history");
	if (argc == 0 && !(plot_path && !baseline_path && !svg_path && !samples_path && fail_under < 0))
		usage(stderr, EXIT_USAGE);

	int below = 0;
	if (argc > 0) {
		struct pred_set run = { 0 }, base = { 0 };
		for (int i = 0; i < argc; i++)
			pred_set_read(&run, argv[i]);
		pred_set_sort(&run);
		if (baseline_path) {
			pred_set_read(&base, baseline_path);
			pred_set_sort(&base);
			size_t only_run, only_base;
			pred_set_pair(&run, &base, &only_run, &only_base);
		}
		struct score_report rep;
		score_report_build(&rep, &run, baseline_path ? &base : NULL, &opt);
		struct score_meta meta = { label, &run, baseline_path, &opt, run_date() };
		switch (format) {
		case FORMAT_TEXT: score_write_text(stdout, &rep, &meta); break;
		case FORMAT_JSON: score_write_json(stdout, &rep, &meta); break;
		case FORMAT_TSV: score_write_tsv(stdout, &rep); break;
		case FORMAT_MARKDOWN: score_write_markdown(stdout, &rep, &meta); break;
		}
		if (samples_path) {
			struct outfile *out = outfile_open(samples_path);
			score_write_samples(out->fp, &run, baseline_path ? &base : NULL);
			outfile_commit(out);
		}
		if (svg_path) {
			struct outfile *out = outfile_open(svg_path);
			score_write_svg(out->fp, &rep, label ? label : "score");
			outfile_commit(out);
		}
		if (history_path)
			history_append(history_path, &rep, label, run.files, run.n_files, meta.date);
		double overall = score_report_overall(&rep)->value_pt;
		if (fail_under >= 0 && overall < fail_under) {
			warnx("overall accuracy %.4f is under --fail-under %.4f", overall, fail_under);
			below = 1;
		}
		score_report_free(&rep);
		pred_set_free(&run);
		pred_set_free(&base);
	}
	if (plot_path) {
		struct history h;
		history_read(&h, history_path);
		struct outfile *out = outfile_open(plot_path);
		score_write_history_svg(out->fp, &h, label ? label : "accuracy over runs");
		outfile_commit(out);
		history_free(&h);
	}
	close_stdout_or_die();
	return below ? EXIT_FAIL : EXIT_OK;
}
