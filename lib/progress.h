// progress.h — a progress line on stderr when it is a terminal: count, rate, elapsed (DESIGN §7).
#ifndef MEDMOE_PROGRESS_H
#define MEDMOE_PROGRESS_H

#include <stddef.h>

struct progress {
	const char *label;
	int active;            // stderr is a terminal and not -q
	double start, last;    // seconds
	size_t total;          // expected units (0 = unknown: no ETA)
};

void progress_start(struct progress *p, const char *label, int quiet);
void progress_set_total(struct progress *p, size_t total);
// Redraws at most a few times a second.
void progress_update(struct progress *p, size_t done, size_t tokens);
// For a program that draws its own line: 1 (and the clock restarted) when the line is active and a redraw
// is due, a few times a second.
int progress_due(struct progress *p);
void progress_end(struct progress *p, size_t done, size_t tokens);
double now_seconds(void);

#endif
