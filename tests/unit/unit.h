// unit.h — what every cmocka unit test includes.
#ifndef MEDMOE_UNIT_H
#define MEDMOE_UNIT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

// Where ../shared is (MEDMOE_SHARED), or NULL when absent: tests that need it call skip() loudly.
static inline const char *unit_shared_dir(void)
{
	const char *dir = getenv("MEDMOE_SHARED");
	return dir ? dir : "../shared";
}
#endif

#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <fcntl.h>

// Run FN(ARG) in a forked child (stderr to /dev/null) and return its exit status, or -1 if it was
// killed by a signal.  For testing code that dies with an exit code.
static inline int unit_exit_status(void (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 2);
		fn(arg);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
