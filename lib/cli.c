// cli.c — option values.
#include "cli.h"
#include "die.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

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
