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
// --device cpu|cuda|cuda:N into the model options' device and *index (−1: the default GPU).
struct model_options;
void cli_device(const char *arg, struct model_options *mo, int *index);
// --dtype bf16|f16|f32: the frozen weights' dtype on the device.
void cli_weight_dtype(const char *arg, struct model_options *mo);

#endif
