// cli.h — parsing option values the same way in every program: a bad value is a usage error (exit 2)
// that names the option and the value.
#ifndef MEDMOE_CLI_H
#define MEDMOE_CLI_H

#include <stdint.h>

// A whole number in [min, max], decimal.
int64_t cli_int(const char *opt, const char *arg, int64_t min, int64_t max);
// A non-negative whole number (a count, a seed).
uint64_t cli_count(const char *opt, const char *arg);
// A finite real number in [min, max].
double cli_real(const char *opt, const char *arg, double min, double max);

#endif
