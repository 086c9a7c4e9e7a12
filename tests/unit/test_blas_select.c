// test_blas_select.c — OpenBLAS's kernels chosen by the CPU's instruction sets (lib/blas_select.h): which
// kernels are asked for over which, the re-execution before main (seen from a child of this very binary,
// started with --probe, that reports the kernels it runs and its OPENBLAS_CORETYPE), that a set
// OPENBLAS_CORETYPE is left alone, and the one warning when selection is off.  No matrix product runs under
// other kernels than the machine's own: the probe only names them.
#include "unit.h"

#include <cblas.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blas_select.h"
#include "die.h"

// What this CPU can run, by the same instruction-set rule as blas_select.c, written out again.
static const char *best_for_cpu(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
		return "SkylakeX";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return "Haswell";
	return NULL;
}

static void test_better(void **state)
{
	(void)state;
	const char *best = best_for_cpu();
	// SSE-era kernels: whatever this CPU can run best
	const char *got = blas_select_better("Prescott");
	if (best)
		assert_string_equal(got, best);
	else
		assert_null(got);
	// AVX-512 kernels, or a name this list does not know: OpenBLAS's own choice stands
	assert_null(blas_select_better("SkylakeX"));
	assert_null(blas_select_better("Cooperlake"));
	assert_null(blas_select_better("SomeFutureCore"));
	// AVX2 kernels: only AVX-512 ones are better
	got = blas_select_better("Haswell");
	if (best && !strcmp(best, "SkylakeX"))
		assert_string_equal(got, "SkylakeX");
	else
		assert_null(got);
	assert_true(blas_select_better("zen") == blas_select_better("Haswell"));   // names are case-blind
}

// Run this binary with --probe under ENV (NAME=VALUE or -NAME to unset; NULL-terminated); OUT gets its
// stdout, ERR its stderr.  Returns its exit status.
static int probe(const char *const *env, char *out, size_t out_n, char *err, size_t err_n)
{
	int po[2], pe[2];
	assert_int_equal(pipe(po), 0);
	assert_int_equal(pipe(pe), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		for (const char *const *e = env; *e; e++) {
			if (**e == '-') {
				unsetenv(*e + 1);
			} else {
				char *kv = xstrdup(*e), *eq = strchr(kv, '=');
				*eq = '\0';
				setenv(kv, eq + 1, 1);
			}
		}
		execl("/proc/self/exe", "test_blas_select", "--probe", (char *)NULL);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	ssize_t n = read(po[0], out, out_n - 1);
	out[n > 0 ? n : 0] = '\0';
	n = read(pe[0], err, err_n - 1);
	err[n > 0 ? n : 0] = '\0';
	close(po[0]);
	close(pe[0]);
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_reexec(void **state)
{
	(void)state;
	const char *best = best_for_cpu();
	char out[256], err[1024], want[256];
	// OpenBLAS "chose" Prescott and nothing is set: the probe runs again with the CPU's best kernels
	const char *weak[] = { "-OPENBLAS_CORETYPE", "-MEDMOE_BLAS_SELECT", "-MEDMOE_BLAS_WARNED",
			       "MEDMOE_BLAS_ASSUME_CORE=Prescott", NULL };
	assert_int_equal(probe(weak, out, sizeof out, err, sizeof err), 0);
	snprintf(want, sizeof want, "OPENBLAS_CORETYPE=%s\n", best ? best : "");
	assert_string_equal(out, want);
	assert_string_equal(err, "");
	// a set OPENBLAS_CORETYPE is the user's choice: no re-execution, no warning
	const char *set[] = { "OPENBLAS_CORETYPE=Prescott", "MEDMOE_BLAS_ASSUME_CORE=Prescott", "-MEDMOE_BLAS_WARNED",
			      NULL };
	assert_int_equal(probe(set, out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "OPENBLAS_CORETYPE=Prescott\n");
	assert_string_equal(err, "");
	if (!best)
		return;
	// selection off: the model's check warns, once, and marks the environment for the programs started next
	const char *off[] = { "-OPENBLAS_CORETYPE", "MEDMOE_BLAS_SELECT=0", "-MEDMOE_BLAS_WARNED",
			      "MEDMOE_BLAS_ASSUME_CORE=Prescott", NULL };
	assert_int_equal(probe(off, out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "OPENBLAS_CORETYPE=\nwarned\n");
	const char *first = strstr(err, "OpenBLAS runs its Prescott kernels");
	assert_non_null(first);
	assert_null(strstr(first + 1, "OpenBLAS runs"));   // once, though the check ran twice
	const char *again[] = { "-OPENBLAS_CORETYPE", "MEDMOE_BLAS_SELECT=0", "MEDMOE_BLAS_WARNED=1",
				"MEDMOE_BLAS_ASSUME_CORE=Prescott", NULL };
	assert_int_equal(probe(again, out, sizeof out, err, sizeof err), 0);
	assert_string_equal(err, "");
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--probe")) {
		// what the model does when it loads: the check, twice (it must warn once)
		set_progname("probe");
		blas_select_check();
		blas_select_check();
		const char *ct = getenv("OPENBLAS_CORETYPE");
		printf("OPENBLAS_CORETYPE=%s\n%s", ct ? ct : "", getenv("MEDMOE_BLAS_WARNED") ? "warned\n" : "");
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_better),
		cmocka_unit_test(test_reexec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
