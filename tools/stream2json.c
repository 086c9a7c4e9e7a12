// stream2json — print medmoe streams as JSON lines: the header first, then one line per record.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "json_out.h"
#include "schema.h"
#include "stream.h"

static noreturn void usage(FILE *fp, int code)
{
	fprintf(fp, "usage: %s [-HNv] [-n count] [file ...]\n", progname());
	exit(code);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "header-only", no_argument, NULL, 'H' },
		{ "no-header", no_argument, NULL, 'N' },
		{ "count", required_argument, NULL, 'n' },
		{ "validate", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int header_only = 0, no_header = 0, validate = 0;
	long long max_records = -1;
	int ch;

	set_progname(argv[0]);
	while ((ch = getopt_long(argc, argv, "HNn:v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': header_only = 1; break;
		case 'N': no_header = 1; break;
		case 'n': {
			char *end;
			max_records = strtoll(optarg, &end, 10);
			if (*end || max_records < 0)
				die(EXIT_USAGE, "-n: not a count: %s", optarg);
			break;
		}
		case 'v': validate = 1; break;
		case 'h': usage(stdout, EXIT_OK);
		case 'V': printf("stream2json %s\n", MEDMOE_VERSION); return 0;
		default: usage(stderr, EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	static char *stdin_only[] = { "-", NULL };
	if (argc == 0) {
		argv = stdin_only;
		argc = 1;
	}

	for (int i = 0; i < argc; i++) {
		struct stream_reader *r = stream_open(argv[i], NULL, 0);
		struct schema *spec = NULL;
		if (validate) {
			spec = schema_load_stream(r);
			if (r->version > schema_version(spec))
				die_data(r->path, 0, "version", "%s version %d is newer than its spec (%d)", r->schema,
					 r->version, schema_version(spec));
			schema_check_header(spec, r);
		}
		if (!no_header) {
			json_write_object(stdout, &r->header, NULL, 0);
			putchar('\n');
		}
		msgpack_object rec;
		long long n = 0;
		while (!header_only && (max_records < 0 || n < max_records) && stream_next(r, &rec)) {
			if (spec)
				schema_check_record(spec, r, &rec);
			json_write_object(stdout, &rec, NULL, 0);
			putchar('\n');
			n++;
		}
		if (spec)
			schema_free(spec);
		stream_close(r);
	}
	close_stdout_or_die();
	return 0;
}
