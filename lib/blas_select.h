// blas_select.h — OpenBLAS's kernels chosen by what the CPU can run, before main.
//
// OpenBLAS (Debian's DYNAMIC_ARCH build) picks its kernels from the CPU model when it loads.  Under hypervisors
// that hide the model it falls back to its SSE3 "Prescott" kernels, and on a CPU newer than the build (Zen 5 on
// 0.3.21) to its AVX2 "Haswell" ones on a CPU with AVX-512: matrix products 2-6x slower than the CPU allows
// (bench/RESULTS.md).  OPENBLAS_CORETYPE overrides the choice, but OpenBLAS reads it only while loading, before
// any code of ours runs.  So a constructor here, linked into every program that does matrix products (through
// ops_cpu.c), runs before main and, when
//   - OPENBLAS_CORETYPE is not set (set, even empty, it is the user's choice and left alone),
//   - MEDMOE_BLAS_SELECT is not "0",
//   - the CPU has, by cpuid with the OS saving the registers, every instruction set of better kernels than the
//     ones OpenBLAS chose (AVX-512 F/CD/BW/DQ/VL: SkylakeX; AVX2 and FMA: Haswell),
//   - and this OpenBLAS build has those kernels (its gotoblas_SKYLAKEX / gotoblas_HASWELL table),
// sets OPENBLAS_CORETYPE and executes the program again (/proc/self/exe with the same arguments and
// environment), before main has read or written anything.  It happens once: the second time the variable is
// set.  The programs it starts inherit the variable, so a pipeline re-executes each program at most once and
// the programs a program starts not at all.
// When that is not possible (MEDMOE_BLAS_SELECT=0, or the exec fails), blas_select_check() warns, at most once
// per pipeline: the warning sets MEDMOE_BLAS_WARNED, which the programs started afterwards inherit.
// MEDMOE_BLAS_ASSUME_CORE=NAME makes both act as if OpenBLAS had chosen NAME (for tests).
#ifndef MEDMOE_BLAS_SELECT_H
#define MEDMOE_BLAS_SELECT_H

// Warn (once per pipeline, see above) when OpenBLAS still runs weaker kernels than the CPU allows.
void blas_select_check(void);

// The OpenBLAS core name to ask for on this CPU, or NULL when OpenBLAS's own choice is as good (exposed for
// the unit test).  CORE is what OpenBLAS chose.
const char *blas_select_better(const char *core);

#endif
