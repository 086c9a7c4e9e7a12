// score_svg.c — bar chart with interval whiskers, and the history trend (what they show: score_svg.h).
#include "score_svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "score_format.h"

void xml_escape(FILE *fp, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", fp); break;
		case '<': fputs("&lt;", fp); break;
		case '>': fputs("&gt;", fp); break;
		case '"': fputs("&quot;", fp); break;
		case '\'': fputs("&apos;", fp); break;
		default:
			// control characters are not allowed in XML 1.0
			if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n')
				fputc(' ', fp);
			else
				fputc(*s, fp);
		}
	}
}

// Layout in pixels; a character of display width 1 is taken as 7 px at font-size 12.
enum { CHAR_PX = 7, ROW_PX = 20, BAR_PX = 14, PLOT_W = 420, MARGIN = 10, TITLE_PX = 30, AXIS_PX = 30 };

static void svg_open(FILE *fp, int width, int height)
{
	fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		    "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
		    "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
		    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		width, height, width, height);
}

static void svg_title(FILE *fp, int x, const char *title)
{
	fprintf(fp, "<text x=\"%d\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", x);
	xml_escape(fp, title);
	fputs("</text>\n", fp);
}

static const char *bar_colour(enum row_kind k)
{
	switch (k) {
	case ROW_ALL: return "#2b5d8a";
	case ROW_BENCH: return "#4682b4";
	case ROW_MACRO: return "#6a9fcf";
	case ROW_MULTI_EXACT:
	case ROW_MULTI_F1: return "#c9843b";
	case ROW_CATEGORY: return "#9cc3e4";
	}
	return "#999";
}

void score_write_svg(FILE *fp, const struct score_report *rep, const char *title)
{
	int label_w = 0;
	char **labels = xmalloc((rep->n_rows ? rep->n_rows : 1) * sizeof *labels);
	for (size_t r = 0; r < rep->n_rows; r++) {
		const struct score_row *row = &rep->rows[r];
		char *short_label = score_row_label(row);
		labels[r] = row->kind == ROW_ALL || row->kind == ROW_BENCH ? xstrdup(short_label)
			    : xasprintf("%s %s", row->bench, short_label + 2);   // drop the indent, name the bench
		free(short_label);
		int w = display_width(labels[r]) * CHAR_PX;
		if (w > label_w)
			label_w = w;
	}
	int x0 = MARGIN + label_w + 10;
	int width = x0 + PLOT_W + 60;
	int height = TITLE_PX + (int)rep->n_rows * ROW_PX + AXIS_PX;
	svg_open(fp, width, height);
	svg_title(fp, MARGIN, title);
	int y_end = TITLE_PX + (int)rep->n_rows * ROW_PX;
	for (int tick = 0; tick <= 100; tick += 25) {   // grid and axis labels
		double x = x0 + PLOT_W * tick / 100.0;
		fprintf(fp, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, TITLE_PX, x, y_end);
		fprintf(fp, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%d%%</text>\n", x, y_end + 16,
			tick);
	}
	for (size_t r = 0; r < rep->n_rows; r++) {
		const struct score_row *row = &rep->rows[r];
		int y = TITLE_PX + (int)r * ROW_PX;
		fprintf(fp, "<g><title>");
		xml_escape(fp, row->name);
		fprintf(fp, " n=%zu</title>\n", row->n);
		fprintf(fp, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", x0 - 6, y + BAR_PX - 2);
		xml_escape(fp, labels[r]);
		fputs("</text>\n", fp);
		double v = isnan(row->value_pt) ? 0 : row->value_pt;
		fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", x0, y + 2, PLOT_W * v,
			BAR_PX - 2, bar_colour(row->kind));
		if (!isnan(row->lo)) {
			double xl = x0 + PLOT_W * row->lo, xh = x0 + PLOT_W * row->hi, ym = y + 1 + BAR_PX / 2.0;
			fprintf(fp, "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\" stroke=\"#222\" fill=\"none\"/>\n",
				xl, ym, xh, xl, ym - 4, ym + 4, xh, ym - 4, ym + 4);
		}
		if (row->has_paired) {
			double xb = x0 + PLOT_W * row->base_acc;
			fprintf(fp, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c0392b\" stroke-width=\"2\"/>\n",
				xb, y + 1, xb, y + BAR_PX + 1);
		}
		fprintf(fp, "<text x=\"%d\" y=\"%d\" fill=\"#333\">%.1f</text>\n</g>\n", x0 + PLOT_W + 6, y + BAR_PX - 2,
			100 * v);
	}
	fputs("</svg>\n", fp);
	for (size_t r = 0; r < rep->n_rows; r++)
		free(labels[r]);
	free(labels);
}

static const char *const palette[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
				       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };
enum { N_PALETTE = sizeof palette / sizeof palette[0] };

void score_write_history_svg(FILE *fp, const struct history *h, const char *title)
{
	enum { PW = 600, PH = 300, LEFT = 50, TOP = 40, LEGEND_W = 160 };
	int label_rows = 60;   // room for the run labels under the axis
	int width = LEFT + PW + 20 + LEGEND_W, height = TOP + PH + label_rows;
	// y range: the data's range, widened to whole 10% steps
	double ymin = 1, ymax = 0;
	for (size_t i = 0; i < h->n_series * h->n_runs; i++) {
		const struct history_point *p = &h->points[i];
		if (isnan(p->acc))
			continue;
		double lo = isnan(p->lo) ? p->acc : p->lo, hi = isnan(p->hi) ? p->acc : p->hi;
		ymin = fmin(ymin, lo);
		ymax = fmax(ymax, hi);
	}
	ymin = fmax(0, floor(ymin * 10) / 10);
	ymax = fmin(1, ceil(ymax * 10) / 10);
	if (ymax <= ymin) {
		ymin = fmax(0, ymin - 0.1);
		ymax = fmin(1, ymin + 0.2);
	}
	double dx = h->n_runs > 1 ? (double)PW / (double)(h->n_runs - 1) : 0;
#define X(run) (LEFT + (h->n_runs > 1 ? dx * (double)(run) : PW / 2.0))
#define Y(v) (TOP + PH - (double)PH * ((v) - ymin) / (ymax - ymin))
	svg_open(fp, width, height);
	svg_title(fp, LEFT, title);
	for (int step = 0; step <= 10; step++) {
		double v = ymin + (ymax - ymin) * step / 10.0;
		fprintf(fp, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", LEFT, Y(v), LEFT + PW,
			Y(v));
		fprintf(fp, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%.0f%%</text>\n", LEFT - 4,
			Y(v) + 4, 100 * v);
	}
	size_t label_every = h->n_runs > 20 ? (h->n_runs + 19) / 20 : 1;
	for (size_t run = 0; run < h->n_runs; run += label_every) {
		fprintf(fp, "<text transform=\"translate(%.1f %d) rotate(40)\" font-size=\"10\" fill=\"#555\">", X(run),
			TOP + PH + 12);
		xml_escape(fp, h->labels[run]);
		fputs("</text>\n", fp);
	}
	for (size_t s = 0; s < h->n_series; s++) {
		const struct history_point *pts = &h->points[s * h->n_runs];
		const char *colour = palette[s % N_PALETTE];
		fprintf(fp, "<g><title>");
		xml_escape(fp, h->series[s]);
		fputs("</title>\n", fp);
		// the interval band: upper edge left to right, lower edge back (runs with an interval only)
		size_t n_ci = 0;
		for (size_t run = 0; run < h->n_runs; run++)
			n_ci += !isnan(pts[run].lo);
		if (n_ci >= 2) {
			fprintf(fp, "<polygon fill=\"%s\" fill-opacity=\"0.15\" stroke=\"none\" points=\"", colour);
			for (size_t run = 0; run < h->n_runs; run++)
				if (!isnan(pts[run].lo))
					fprintf(fp, "%.1f,%.1f ", X(run), Y(pts[run].hi));
			for (size_t run = h->n_runs; run-- > 0;)
				if (!isnan(pts[run].lo))
					fprintf(fp, "%.1f,%.1f ", X(run), Y(pts[run].lo));
			fputs("\"/>\n", fp);
		}
		fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour);
		for (size_t run = 0; run < h->n_runs; run++)
			if (!isnan(pts[run].acc))
				fprintf(fp, "%.1f,%.1f ", X(run), Y(pts[run].acc));
		fputs("\"/>\n", fp);
		for (size_t run = 0; run < h->n_runs; run++)
			if (!isnan(pts[run].acc))
				fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", X(run), Y(pts[run].acc),
					colour);
		fputs("</g>\n", fp);
		int ly = TOP + 10 + (int)s * 18;
		fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", LEFT + PW + 20, ly - 10,
			colour);
		fprintf(fp, "<text x=\"%d\" y=\"%d\">", LEFT + PW + 38, ly);
		xml_escape(fp, h->series[s]);
		fputs("</text>\n", fp);
	}
#undef X
#undef Y
	fputs("</svg>\n", fp);
}
