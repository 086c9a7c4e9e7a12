// outfile.c — atomic output: temporary name, then rename; removed if the program dies first.
#include "outfile.h"
#include "die.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Temporary paths not yet committed.  Few outputs per program, so a small fixed table.
#define MAX_PENDING 64
static char *pending[MAX_PENDING];
static int pending_is_dir[MAX_PENDING];
static int handlers_installed;

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static void remove_pending(void)
{
	for (int i = 0; i < MAX_PENDING; i++) {
		if (!pending[i])
			continue;
		if (pending_is_dir[i])
			nftw(pending[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		else
			unlink(pending[i]);
		pending[i] = NULL;
	}
}

static void on_signal(int sig)
{
	remove_pending();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void track(char *tmp_path, int is_dir)
{
	if (!handlers_installed) {
		die_set_cleanup(remove_pending);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
		handlers_installed = 1;
	}
	for (int i = 0; i < MAX_PENDING; i++) {
		if (!pending[i]) {
			pending[i] = tmp_path;
			pending_is_dir[i] = is_dir;
			return;
		}
	}
	die(EXIT_FAIL, "too many outputs open at once");
}

static void untrack(const char *tmp_path)
{
	for (int i = 0; i < MAX_PENDING; i++)
		if (pending[i] == tmp_path)
			pending[i] = NULL;
}

struct outfile *outfile_open(const char *path)
{
	struct outfile *out = xcalloc(1, sizeof *out);
	out->path = xstrdup(path);
	if (strcmp(path, "-") == 0) {
		out->fp = stdout;
		return out;
	}
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		// A device or a FIFO (/dev/null, a named pipe): nothing to rename over; write to it directly.
		out->fp = fopen(path, "wb");
		if (!out->fp)
			die_errno("%s", path);
		return out;
	}
	out->tmp_path = xasprintf("%s.tmp.%ld", path, (long)getpid());
	track(out->tmp_path, 0);
	out->fp = fopen(out->tmp_path, "wb");
	if (!out->fp)
		die_errno("%s", out->tmp_path);
	// Big buffer: records are small and many.
	setvbuf(out->fp, NULL, _IOFBF, 1 << 20);
	return out;
}

void outfile_commit(struct outfile *out)
{
	if (!out->tmp_path) {
		if (fflush(out->fp) != 0 || ferror(out->fp))
			die_errno("%s", out->path);
		if (out->fp != stdout && fclose(out->fp) != 0)
			die_errno("%s", out->path);
	} else {
		if (fflush(out->fp) != 0 || ferror(out->fp))
			die_errno("%s", out->path);
		if (fsync(fileno(out->fp)) != 0 && errno != EINVAL)
			die_errno("%s", out->path);
		if (fclose(out->fp) != 0)
			die_errno("%s", out->path);
		if (rename(out->tmp_path, out->path) != 0)
			die_errno("rename %s to %s", out->tmp_path, out->path);
		untrack(out->tmp_path);
		free(out->tmp_path);
	}
	free(out->path);
	free(out);
}

void outfile_abort(struct outfile *out)
{
	if (!out->tmp_path && out->fp != stdout)
		fclose(out->fp);
	if (out->tmp_path) {
		fclose(out->fp);
		unlink(out->tmp_path);
		untrack(out->tmp_path);
		free(out->tmp_path);
	}
	free(out->path);
	free(out);
}

struct outdir *outdir_open(const char *path, int force)
{
	struct stat st;
	if (stat(path, &st) == 0 && !force)
		die(EXIT_FAIL, "%s: already exists (use --force to replace it)", path);
	struct outdir *dir = xcalloc(1, sizeof *dir);
	dir->path = xstrdup(path);
	dir->force = force;
	dir->tmp_path = xasprintf("%s.tmp.%ld", path, (long)getpid());
	track(dir->tmp_path, 1);
	if (mkdir(dir->tmp_path, 0777) != 0)
		die_errno("%s", dir->tmp_path);
	return dir;
}

void outdir_commit(struct outdir *dir)
{
	struct stat st;
	if (stat(dir->path, &st) == 0) {
		// --force: move the old directory aside, put the new one in place, then remove the old.
		char *old = xasprintf("%s.old.%ld", dir->path, (long)getpid());
		if (rename(dir->path, old) != 0)
			die_errno("rename %s", dir->path);
		if (rename(dir->tmp_path, dir->path) != 0)
			die_errno("rename %s to %s", dir->tmp_path, dir->path);
		nftw(old, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		free(old);
	} else if (rename(dir->tmp_path, dir->path) != 0) {
		die_errno("rename %s to %s", dir->tmp_path, dir->path);
	}
	untrack(dir->tmp_path);
	free(dir->tmp_path);
	free(dir->path);
	free(dir);
}

void close_stdout_or_die(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		die_errno("stdout");
	if (fclose(stdout) != 0)
		die_errno("stdout");
}
