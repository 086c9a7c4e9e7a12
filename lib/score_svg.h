// score_svg.h — hand-written SVG charts for `score` (no plotting dependency).
//
//   score_write_svg      one horizontal bar per report row (accuracy, or F1 on the multi-answer F1 row),
//                        with a whisker for its bootstrap interval and, with a baseline, a tick at the
//                        baseline's accuracy on the paired questions.  The axis runs from 0 to 100%.
//   score_write_history_svg  the trend of a history file (score_history.h): one line per series (the
//                        overall accuracy and each benchmark) over the runs in file order, a shaded band for
//                        each interval, the run labels under the axis.
// Text is XML-escaped; the files are standalone SVG 1.1 with UTF-8 text.
#ifndef MEDMOE_SCORE_SVG_H
#define MEDMOE_SCORE_SVG_H

#include <stdio.h>

#include "score_history.h"
#include "score_report.h"

void score_write_svg(FILE *fp, const struct score_report *rep, const char *title);
void score_write_history_svg(FILE *fp, const struct history *h, const char *title);

// Write S with & < > " ' escaped.
void xml_escape(FILE *fp, const char *s);

#endif
