// infile.h — opening input files so that a hostile path cannot block or flood a program.
//
// A FIFO where a checkpoint or config file is expected would block open(2) forever (no writer ever comes), and a
// directory, a device or /dev/zero is never what is meant.  Inputs that must be files (config.json, tokenizer.json,
// safetensors, manifests, indexes, shard files, adapter and training state) are opened with O_NONBLOCK, checked
// with fstat, and refused unless regular (exit 65 naming the file).  Streams may also be pipes (stdin "-", a
// FIFO, process substitution); only a directory is refused there.  Whole-file reads are bounded by a limit that
// the caller names, checked against the file's size before anything is allocated.
#ifndef MEDMOE_INFILE_H
#define MEDMOE_INFILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

// Limits for whole-file reads.
#define INFILE_MAX_CONFIG (64u << 20)     // config.json, adapter_config.json, trainer.json, manifest.json, indexes
#define INFILE_MAX_TOKENIZER (1u << 30)   // tokenizer.json (Qwen's is 11 MB; vocabularies of 1M tokens ~ 100 MB)

// open(2) for reading, refusing anything but a regular file.  -1 with errno set when the open itself fails
// (ENOENT...); a non-regular file → exit 65.  ST (may be NULL) gets its fstat.
int infile_open(const char *path, struct stat *st);
// The same as a stdio stream (NULL with errno when the open fails).
FILE *infile_fopen(const char *path);
// A stream input: "-" is stdin; a regular file, FIFO, socket or character device is opened (blocking, as pipes
// are meant to be read); a directory → exit 65.  NULL with errno when the open fails.
FILE *infile_fopen_stream(const char *path);

// PATH's whole content (regular file only, at most MAX bytes: more → exit 65), NUL-terminated; *LEN its size.
// NULL with errno when the open fails.
char *infile_read(const char *path, size_t max, size_t *len);
// json_load_file with these checks: NULL with ERR filled (as jansson does) when the file cannot be opened or
// parsed; a non-regular file or one over MAX bytes → exit 65.
json_t *infile_json(const char *path, size_t flags, size_t max, json_error_t *err);
// OBJ's integer KEY, in [LO, HI], checked before any caller narrows it; else exit 65 naming PATH and KEY.
int64_t infile_json_int(const json_t *obj, const char *path, const char *key, int64_t lo, int64_t hi);

// sha256 (64 lowercase hex digits) and size of regular file PATH, read with the checks of infile_open.
// -1 with errno when it cannot be opened.
int infile_sha256(const char *path, char out[65], uint64_t *size);
// The same for an open file descriptor, read from its start with pread (the offset is left alone).
void infile_sha256_fd(int fd, const char *path, char out[65], uint64_t *size);

#endif
