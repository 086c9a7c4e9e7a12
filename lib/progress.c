// progress.c — a one-line progress report on a terminal.
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_start(struct progress *p, const char *label, int quiet)
{
	p->label = label;
	p->active = !quiet && isatty(2);
	p->start = p->last = now_seconds();
	p->total = 0;
}

void progress_set_total(struct progress *p, size_t total) { p->total = total; }

static void draw(struct progress *p, size_t done, size_t tokens, double t)
{
	double elapsed = t - p->start;
	double rate = elapsed > 0 ? done / elapsed : 0;
	fprintf(stderr, "\r%s: %zu records, %zu tokens, %.0f records/s, %.0f tokens/s", p->label, done, tokens,
		rate, elapsed > 0 ? tokens / elapsed : 0);
	if (p->total && rate > 0 && done <= p->total)
		fprintf(stderr, ", ETA %.0fs", (p->total - done) / rate);
	fputs("\033[K", stderr);
}

int progress_due(struct progress *p)
{
	if (!p->active)
		return 0;
	double t = now_seconds();
	if (t - p->last < 0.25)
		return 0;
	p->last = t;
	return 1;
}

void progress_update(struct progress *p, size_t done, size_t tokens)
{
	if (progress_due(p))
		draw(p, done, tokens, p->last);
}

void progress_end(struct progress *p, size_t done, size_t tokens)
{
	if (!p->active)
		return;
	draw(p, done, tokens, now_seconds());
	fputc('\n', stderr);
}
