// ops_cuda_plugin.h — the CUDA backend as a plugin: libmedmoe_cuda.so, built from cuda/*.cu when nvcc is
// present, opened on the first use of a CUDA device.  Linking cuBLAS into every program cost each of them
// ~220 MB of resident memory and 0.1-0.4 s of start-up before main (measured: train-experts --version), CPU runs
// included; as a plugin, a CPU run never loads it.
//
// Where it is looked for: $MEDMOE_CUDA_PLUGIN (a path to the .so) when set, and nothing else; else, first found
// wins, the program's own
// directory; ../lib/medmoe/ beside it (make install, make gpu-bundle); the build directory the program was built
// from.  The plugin's cuda_* functions are found by name (ops_backend.h's list); it resolves die() and the other
// library functions it uses from the program, which exports them (linked with -rdynamic).
#ifndef MEDMOE_OPS_CUDA_PLUGIN_H
#define MEDMOE_OPS_CUDA_PLUGIN_H

#include "ops_backend.h"

// The CUDA backend, or NULL when this build made none or it cannot be loaded (*why, when not NULL, says which).
const struct ops_table *cuda_plugin_try(const char **why);
// The CUDA backend; dies (exit 1) naming WHAT and why it is unavailable.
const struct ops_table *cuda_plugin(const char *what);

#endif
