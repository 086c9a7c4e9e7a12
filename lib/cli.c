// cli.c — option values.
#include "cli.h"
#include "die.h"
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t cli_int(const char *opt, const char *arg, int64_t min, int64_t max)
{
	char *end;
	errno = 0;
	long long v = strtoll(arg, &end, 10);
	if (end == arg || *end || errno || v < min || v > max)
		die(EXIT_USAGE, "%s: not a whole number from %lld to %lld: %s", opt, (long long)min, (long long)max,
		    arg);
	return v;
}

uint64_t cli_count(const char *opt, const char *arg)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (end == arg || *end || errno || arg[0] == '-')
		die(EXIT_USAGE, "%s: not a count: %s", opt, arg);
	return v;
}

double cli_real(const char *opt, const char *arg, double min, double max)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (end == arg || *end || errno || !isfinite(v) || v < min || v > max)
		die(EXIT_USAGE, "%s: not a number from %g to %g: %s", opt, min, max, arg);
	return v;
}

void cli_device(const char *arg, struct model_options *mo, int *index)
{
	if (device_parse(arg, &mo->device, index) != 0)
		die(EXIT_USAGE, "--device: cpu, cuda or cuda:N: %s", arg);
}

void cli_weight_dtype(const char *arg, struct model_options *mo)
{
	static const struct {
		const char *name;
		enum dtype dtype;
	} known[] = {{"bf16", DTYPE_BF16}, {"f16", DTYPE_F16}, {"f32", DTYPE_F32}};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(arg, known[i].name) == 0) {
			mo->weight_dtype = known[i].dtype;
			mo->weight_dtype_given = 1;
			return;
		}
	die(EXIT_USAGE, "--dtype: bf16, f16 or f32: %s", arg);
}
