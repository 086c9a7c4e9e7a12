// ops_cuda_plugin.c — finding and opening libmedmoe_cuda.so (ops_cuda_plugin.h).
#include "ops_cuda_plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"

#define PLUGIN_NAME "libmedmoe_cuda.so"

#ifndef MEDMOE_PLUGIN_DIR
#define MEDMOE_PLUGIN_DIR ""
#endif

static struct ops_table table;
static int tried, loaded;
static char *reason;

// The places to look, in order (at most 4), into PATHS (heap strings).
static int candidates(char *paths[4])
{
	int n = 0;
	const char *env = getenv("MEDMOE_CUDA_PLUGIN");
	if (env && *env) {   // the user's choice, and only that
		paths[n++] = xstrdup(env);
		return n;
	}
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash = len > 0 ? (exe[len] = '\0', strrchr(exe, '/')) : NULL;
	if (slash) {
		*slash = '\0';
		paths[n++] = xasprintf("%s/%s", exe, PLUGIN_NAME);
		paths[n++] = xasprintf("%s/../lib/medmoe/%s", exe, PLUGIN_NAME);
	}
	if (*MEDMOE_PLUGIN_DIR)
		paths[n++] = xasprintf("%s/%s", MEDMOE_PLUGIN_DIR, PLUGIN_NAME);
	return n;
}

// Resolve every function of the list from H; 0 (and *reason) when one is missing.
static int resolve(void *h, const char *path)
{
#define RESOLVE(ret, name, params)                                                                          \
	*(void **)&table.name = dlsym(h, "cuda_" #name);                                                     \
	if (!table.name) {                                                                                   \
		reason = xasprintf("%s lacks cuda_%s (a plugin from another version?)", path, #name);       \
		return 0;                                                                                    \
	}
	OPS_BACKEND_FUNCS(RESOLVE)
#undef RESOLVE
	return 1;
}

static int open_plugin(void)
{
	char *paths[4];
	int n = candidates(paths), ok = 0, found = 0;
	char *looked = xstrdup("");
	for (int i = 0; i < n && !found; i++) {
		if (access(paths[i], F_OK) != 0) {
			char *more = xasprintf("%s%s %s", looked, i ? "," : "", paths[i]);
			free(looked);
			looked = more;
			continue;
		}
		found = 1;
		void *h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
		if (!h)
			reason = xasprintf("the CUDA backend %s cannot be loaded: %s", paths[i], dlerror());
		else
			ok = resolve(h, paths[i]);
	}
	if (!found)
		reason = xasprintf("no CUDA backend: %s not found in%s (a build makes it only when nvcc is on PATH)",
				   PLUGIN_NAME, looked);
	free(looked);
	for (int i = 0; i < n; i++)
		free(paths[i]);
	return ok;
}

const struct ops_table *cuda_plugin_try(const char **why)
{
	if (!tried) {
		tried = 1;
		loaded = open_plugin();
	}
	if (why)
		*why = loaded ? NULL : reason;
	return loaded ? &table : NULL;
}

const struct ops_table *cuda_plugin(const char *what)
{
	const char *why;
	const struct ops_table *t = cuda_plugin_try(&why);
	if (!t)
		die(EXIT_FAIL, "%s: %s; use --device cpu, or build with the CUDA toolkit's nvcc on PATH", what, why);
	return t;
}
