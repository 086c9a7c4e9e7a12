// blas_select.c — choosing OpenBLAS's kernels by the CPU's instruction sets (why and when: blas_select.h).
#include "blas_select.h"

#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "die.h"

// OpenBLAS core names in three tiers: SSE-era and older AMD kernels, AVX2 ones, AVX-512 ones.  A name not
// listed (a newer OpenBLAS's) is taken as good: it knows the CPU better than this list.
static int core_tier(const char *core)
{
	static const char *const old[] = {
		"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge", "Katmai", "Coppermine",
		"Northwood", "Banias", "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat", "Bulldozer",
		"Piledriver", "Steamroller", "Excavator", "Nano",
	};
	static const char *const avx2[] = { "Haswell", "Zen" };
	if (!core)
		return 3;
	for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
		if (!strcasecmp(core, old[i]))
			return 1;
	for (size_t i = 0; i < sizeof avx2 / sizeof avx2[0]; i++)
		if (!strcasecmp(core, avx2[i]))
			return 2;
	return 3;
}

const char *blas_select_better(const char *core)
{
	__builtin_cpu_init();
	int tier = core_tier(core);
	// the instruction sets OpenBLAS's own dynamic.c requires of each target (with the OS saving the registers,
	// which __builtin_cpu_supports checks through XGETBV)
	if (tier < 3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
	    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vl") && dlsym(RTLD_DEFAULT, "gotoblas_SKYLAKEX"))
		return "SkylakeX";
	if (tier < 2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	    dlsym(RTLD_DEFAULT, "gotoblas_HASWELL"))
		return "Haswell";
	return NULL;
}

// The arguments of this process, from /proc/self/cmdline (NUL-separated), as an argv; NULL on failure.
static char **own_argv(void)
{
	FILE *f = fopen("/proc/self/cmdline", "rbe");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0, n;
	char chunk[4096];
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf = xrealloc(buf, len + n + 1);
		memcpy(buf + len, chunk, n);
		len += n;
	}
	int bad = ferror(f) || len == 0;
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	size_t argc = 0;
	for (size_t i = 0; i < len; i++)
		argc += buf[i] == '\0';
	char **argv = xcalloc(argc + 1, sizeof *argv);
	for (size_t i = 0, k = 0; k < argc; k++, i += strlen(buf + i) + 1)
		argv[k] = buf + i;
	return argv;
}

// The kernels OpenBLAS chose; MEDMOE_BLAS_ASSUME_CORE stands in for them in tests (no CPU at hand makes
// OpenBLAS choose weak kernels on demand).
static const char *chosen_core(void)
{
	const char *assumed = getenv("MEDMOE_BLAS_ASSUME_CORE");
	return assumed && *assumed ? assumed : openblas_get_corename();
}

__attribute__((constructor)) static void blas_select_at_load(void)
{
	const char *off = getenv("MEDMOE_BLAS_SELECT");
	if (getenv("OPENBLAS_CORETYPE") || (off && !strcmp(off, "0")))
		return;
	const char *better = blas_select_better(chosen_core());
	if (!better)
		return;
	char **argv = own_argv();
	if (!argv)
		return;   // blas_select_check() warns when the model loads
	if (setenv("OPENBLAS_CORETYPE", better, 1) == 0)
		execv("/proc/self/exe", argv);
	unsetenv("OPENBLAS_CORETYPE");
	free(argv[0]);
	free(argv);
}

void blas_select_check(void)
{
	static int checked;
	if (checked)
		return;
	checked = 1;
	if (getenv("OPENBLAS_CORETYPE") || getenv("MEDMOE_BLAS_WARNED"))
		return;
	const char *core = chosen_core(), *better = blas_select_better(core);
	if (!better)
		return;
	warnx("OpenBLAS runs its %s kernels on a CPU that can run its %s ones (set OPENBLAS_CORETYPE=%s, or leave "
	      "MEDMOE_BLAS_SELECT unset so that medmoe sets it): matrix products are several times slower",
	      core, better, better);
	setenv("MEDMOE_BLAS_WARNED", "1", 1);   // the programs this one starts stay quiet
}
