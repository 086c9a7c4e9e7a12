// outfile.c — atomic output: temporary name, then rename; removed if the program dies first.
#include "outfile.h"
#include "die.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
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

static void sync_dir_of(const char *path);
static int is_pending_dir(const char *dir);

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

static void remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode))
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	else
		unlink(path);
}

// Temporaries "BASE.tmp.PID" beside PATH whose process is gone (killed with SIGKILL, or by a power cut) are
// removed: nothing else ever would.  A PID that is alive is left alone, whoever it is.
static void remove_stale_temporaries(const char *path)
{
	char *copy_d = xstrdup(path), *copy_b = xstrdup(path);
	const char *dir = dirname(copy_d), *base = basename(copy_b);
	// Inside a directory this process is building (an outdir's temporary) nothing can be stale, and shard
	// writes thousands of files there: no scan.
	if (is_pending_dir(dir)) {
		free(copy_d);
		free(copy_b);
		return;
	}
	char *prefix = xasprintf("%s.tmp.", base);
	size_t plen = strlen(prefix);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, plen) != 0)
			continue;
		char *end;
		long pid = strtol(e->d_name + plen, &end, 10);
		if (*end || pid <= 0 || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;   // alive (or not ours to ask): maybe still writing
		char *stale = xasprintf("%s/%s", dir, e->d_name);
		remove_tree(stale);
		free(stale);
	}
	if (d)
		closedir(d);
	free(prefix);
	free(copy_d);
	free(copy_b);
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
	remove_stale_temporaries(path);
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
		sync_dir_of(out->path);
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

// fsync directory DIR so that the renames in it survive a power cut.
static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
			die_errno("fsync %s", dir);
		close(fd);
	}
}

static int is_pending_dir(const char *dir)
{
	for (int i = 0; i < MAX_PENDING; i++)
		if (pending[i] && pending_is_dir[i] && strcmp(pending[i], dir) == 0)
			return 1;
	return 0;
}

// fsync the directory PATH is in; inside an outdir's temporary it is done once, at outdir_commit.
static void sync_dir_of(const char *path)
{
	char *copy = xstrdup(path);
	const char *dir = dirname(copy);
	if (!is_pending_dir(dir))
		sync_dir(dir);
	free(copy);
}

void outdir_recover(const char *path)
{
	char *bak = xasprintf("%s.medmoe-old", path);
	struct stat st;
	if (lstat(bak, &st) == 0) {
		if (lstat(path, &st) != 0) {
			// killed between the two renames of a replacement: the old directory is the complete one
			if (rename(bak, path) != 0)
				die_errno("recovering %s from %s", path, bak);
			sync_dir_of(path);
		} else {
			remove_tree(bak);   // killed after the swap, before the backup was removed
		}
	}
	free(bak);
	remove_stale_temporaries(path);
}

struct outdir *outdir_open(const char *path, int force)
{
	outdir_recover(path);
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

// Test hook: MEDMOE_NO_EXCHANGE=1 takes the two-rename path even where RENAME_EXCHANGE works.
static int exchange(const char *a, const char *b)
{
	const char *no = getenv("MEDMOE_NO_EXCHANGE");
	if (no && *no == '1') {
		errno = EINVAL;
		return -1;
	}
#ifdef RENAME_EXCHANGE
	return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
#else
	errno = EINVAL;
	return -1;
#endif
}

void outdir_commit(struct outdir *dir)
{
	struct stat st;
	// everything written inside reaches the disk before the directory is put in place
	sync_dir(dir->tmp_path);
	if (lstat(dir->path, &st) != 0) {
		if (rename(dir->tmp_path, dir->path) != 0)
			die_errno("rename %s to %s", dir->tmp_path, dir->path);
	} else if (exchange(dir->tmp_path, dir->path) == 0) {
		// One atomic step: DIR is the new directory, the temporary name the old one (removed below; a kill
		// before that leaves a stale temporary, which the next run removes).
		sync_dir_of(dir->path);
		remove_tree(dir->tmp_path);
	} else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
		// No RENAME_EXCHANGE here: DIR → DIR.medmoe-old, new → DIR, then the backup goes.  A kill between the two
		// renames leaves DIR.medmoe-old complete and no DIR: outdir_recover (run by the next outdir_open, and by
		// readers of a run's state) puts it back.
		char *bak = xasprintf("%s.medmoe-old", dir->path);
		remove_tree(bak);
		if (rename(dir->path, bak) != 0)
			die_errno("rename %s to %s", dir->path, bak);
		if (rename(dir->tmp_path, dir->path) != 0) {
			int saved = errno;
			if (rename(bak, dir->path) == 0)   // put the old one back before reporting
				sync_dir_of(dir->path);
			errno = saved;
			die_errno("rename %s to %s", dir->tmp_path, dir->path);
		}
		sync_dir_of(dir->path);
		remove_tree(bak);
		free(bak);
	} else {
		die_errno("rename %s to %s", dir->tmp_path, dir->path);
	}
	sync_dir_of(dir->path);
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
