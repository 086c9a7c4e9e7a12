// outfile.h — output files written to a temporary name and renamed into place on success.
//
// outfile_open("-") is stdout.  For a path, the data goes to "PATH.tmp.PID" in the same directory;
// outfile_commit() flushes, fsyncs and renames it to PATH.  If the program dies first (die*(), or a
// signal such as SIGINT/SIGTERM/SIGPIPE), every uncommitted temporary file is removed, so a reader
// never sees a partial or corrupted output.  A full disk surfaces as a write error at commit.
#ifndef MEDMOE_OUTFILE_H
#define MEDMOE_OUTFILE_H

#include <stdio.h>

struct outfile {
	FILE *fp;          // write here
	char *path;        // final name ("-" for stdout)
	char *tmp_path;    // temporary name, NULL for stdout
};

struct outfile *outfile_open(const char *path);
// Flush, fsync, close, rename.  Dies (exit 1, temporary removed) on any write error.
void outfile_commit(struct outfile *out);
// Drop the output: close and remove the temporary file.
void outfile_abort(struct outfile *out);

// Directories get the same treatment: build in "DIR.tmp.PID", rename when complete.
// outdir_open refuses an existing DIR unless force is set (then the old one is replaced at commit).
// Replacing is crash-safe: renameat2(RENAME_EXCHANGE) swaps old and new in one step where the file system
// supports it; elsewhere DIR → DIR.medmoe-old, new → DIR, then DIR.medmoe-old is removed, and a kill between the two renames
// is repaired by outdir_recover (DIR.medmoe-old back to DIR), which outdir_open runs first.  At every instant DIR is
// either the old or the new directory, complete (or, for that one window, DIR.medmoe-old, found again on the next
// run).  The backup's name, DIR.medmoe-old, is one no user picks for a directory of their own (it is removed
// when DIR is complete).  Both outfile_open and outdir_open first remove "PATH.tmp.PID" leftovers of processes
// that are gone.
struct outdir {
	char *path;
	char *tmp_path;
	int force;
};
struct outdir *outdir_open(const char *path, int force);
void outdir_commit(struct outdir *dir);
// Repair what a kill in the middle of replacing PATH left (see above); readers of a directory that is replaced
// in place (a run's state/) call it before they look.
void outdir_recover(const char *path);

// Close stdout and check the close (a full disk or a closed pipe shows up here).
void close_stdout_or_die(void);

#endif
