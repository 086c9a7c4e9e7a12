// common.c — the shared part of the fuzz targets (fuzz.h).
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <ftw.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corpus.h"
#include "die.h"

jmp_buf fuzz_jmp;
static char scratch[256];
static int died;          // a die() came back through longjmp during this input
static unsigned long n_inputs, n_refused;   // inputs that reached fuzz_end, and those refused by a die()
static int first_free_fd; // the lowest descriptor not open once fuzz_init is done

// jansson's allocations are tracked, so that the JSON a dying parser held is freed at the end of the input
// (after a longjmp nobody else will); a header of 32 bytes keeps the 16-byte alignment.
struct blk {
	struct blk *prev, *next;
	size_t size, pad;
};
static struct blk live = {&live, &live, 0, 0};

static void *tracked_malloc(size_t n)
{
	struct blk *b = malloc(sizeof *b + n);
	if (!b)
		return NULL;
	b->next = live.next;
	b->prev = &live;
	live.next->prev = b;
	live.next = b;
	b->size = n;
	return b + 1;
}

static void tracked_free(void *p)
{
	if (!p)
		return;
	struct blk *b = (struct blk *)p - 1;
	b->prev->next = b->next;
	b->next->prev = b->prev;
	free(b);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void remove_scratch(void)
{
	nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	// scripts/fuzz.sh adds these up: the inputs tried, and how many ended in a clean refusal
	fprintf(stderr, "fuzz-counts: inputs %lu refused %lu\n", n_inputs, n_refused);
}

static void back_to_target(int code)
{
	(void)code;
	died = 1;
	longjmp(fuzz_jmp, 1);
}

void fuzz_end(void)
{
	n_inputs++;
	n_refused += died != 0;
	while (live.next != &live)
		tracked_free(live.next + 1);
	if (died) {
		// descriptors a dying reader left open: everything above what was open after fuzz_init
		DIR *d = opendir("/proc/self/fd");
		struct dirent *e;
		int self = d ? dirfd(d) : -1;
		while (d && (e = readdir(d))) {
			int fd = atoi(e->d_name);
			if (e->d_name[0] != '.' && fd >= first_free_fd && fd != self)
				close(fd);
		}
		if (d)
			closedir(d);
		died = 0;
	}
}

void fuzz_init(void)
{
	if (scratch[0])
		return;
	die_set_exit(back_to_target, getenv("FUZZ_VERBOSE") == NULL);
	json_set_alloc_funcs(tracked_malloc, tracked_free);
	omp_set_num_threads(1);
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(scratch, sizeof scratch, "%s/medmoe-fuzz.%ld", base, (long)getpid());
	mkdir(scratch, 0700);
	atexit(remove_scratch);
	first_free_fd = dup(0);
	if (first_free_fd >= 0)
		close(first_free_fd);
	first_free_fd = first_free_fd < 3 ? 3 : first_free_fd;
#ifdef MEDMOE_SOURCE_DIR
	if (!getenv("MEDMOE_SCHEMAS"))
		setenv("MEDMOE_SCHEMAS", MEDMOE_SOURCE_DIR "/schemas", 1);
#endif
}

const char *fuzz_dir(void)
{
	return scratch;
}

const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", scratch, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		perror(path);
		abort();
	}
	size_t done = 0;
	while (done < size) {
		ssize_t k = write(fd, data + done, size - done);
		if (k <= 0) {
			perror(path);
			abort();
		}
		done += (size_t)k;
	}
	close(fd);
	return path;
}

size_t fuzz_parts(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, size_t max)
{
	static const char sep[] = "\n--medmoe-part--\n";
	size_t n = 0, start = 0, sl = sizeof sep - 1;
	for (size_t i = 0; n + 1 < max && i + sl <= size; i++) {
		if (memcmp(data + i, sep, sl) == 0) {
			part[n] = data + start;
			len[n++] = i - start;
			start = i + sl;
			i += sl - 1;
		}
	}
	part[n] = data + start;
	len[n++] = size - start;
	return n;
}

void fuzz_read_corpus(const char *path, const struct corpus_opts *opts)
{
	static struct corpus *volatile c;   // static and volatile: still valid after a die() longjmps out
	static struct conversation conv;
	c = NULL;
	FUZZ_RUN({
		c = corpus_open(path, opts);
		while (corpus_next(c, &conv))
			conversation_free(&conv);
	});
	conversation_free(&conv);
	corpus_close(c);
}
