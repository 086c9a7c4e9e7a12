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
