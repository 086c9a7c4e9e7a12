# svg-chart.awk — small SVG charts for the demo report, from tab-separated lines.
#   awk -v kind=lines -v title=T -v xlabel=X -v ylabel=Y -f svg-chart.awk DATA   lines "series<TAB>x<TAB>y"
#   awk -v kind=heat  -v title=T -f svg-chart.awk DATA                           lines "row<TAB>column<TAB>value"
#   awk -v kind=bars  -v title=T -v ref=0.25 -f svg-chart.awk DATA              lines "label<TAB>value<TAB>lo<TAB>hi"
# (bars: horizontal, with the interval as a whisker and a dashed line at ref, e.g. chance)
# (a heat map: one row per task, one column per expert, darker = more of the task's tokens routed there)
BEGIN { FS = "\t"; W = 640; H = 360; L = 70; R = 150; T = 40; B = 50 }
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
kind == "lines" {
	if (!($1 in seen)) { seen[$1] = 1; order[++ns] = $1 }
	n[$1]++; X[$1, n[$1]] = $2 + 0; Y[$1, n[$1]] = $3 + 0
	if (first == 0 || $2 + 0 < xmin) xmin = $2 + 0
	if (first == 0 || $2 + 0 > xmax) xmax = $2 + 0
	if (first == 0 || $3 + 0 < ymin) ymin = $3 + 0
	if (first == 0 || $3 + 0 > ymax) ymax = $3 + 0
	first = 1
}
kind == "bars" { nb++; BL[nb] = $1; BV[nb] = $2 + 0; BLO[nb] = $3 + 0; BHI[nb] = $4 + 0; next }
kind == "heat" {
	if (!($1 in rseen)) { rseen[$1] = 1; rows[++nr] = $1 }
	if ($2 + 1 > nc) nc = $2 + 1
	V[$1, $2 + 0] = $3 + 0
	if ($3 + 0 > vmax) vmax = $3 + 0
}
END {
	if (kind == "bars") H = T + 10 + nb * 30 + 30   # one 30-pixel row per bar, and the axis
	split("#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #8c564b #e377c2 #17becf", colour, " ")
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H
	printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
	printf "<text x=\"%d\" y=\"22\" font-size=\"14\">%s</text>\n", L, esc(title)
	if (kind == "lines") {
		if (xmax == xmin) xmax = xmin + 1
		if (ymax == ymin) ymax = ymin + 1
		pw = W - L - R; ph = H - T - B
		printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T + ph, L + pw, T + ph
		printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T, L, T + ph
		for (k = 0; k <= 4; k++) {
			yv = ymin + (ymax - ymin) * k / 4; yy = T + ph - ph * k / 4
			printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", L - 6, yy + 4, yv
			xv = xmin + (xmax - xmin) * k / 4; xx = L + pw * k / 4
			printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", xx, T + ph + 18, int(xv + 0.5)
		}
		printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", L + pw / 2, H - 8, esc(xlabel)
		printf "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">%s</text>\n", T + ph / 2, T + ph / 2, esc(ylabel)
		for (s = 1; s <= ns; s++) {
			name = order[s]; pts = ""
			for (i = 1; i <= n[name]; i++)
				pts = pts sprintf("%.1f,%.1f ", L + pw * (X[name, i] - xmin) / (xmax - xmin), T + ph - ph * (Y[name, i] - ymin) / (ymax - ymin))
			printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"%s\"/>\n", colour[(s - 1) % 8 + 1], pts
			printf "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"3\" fill=\"%s\"/>\n", L + pw + 12, T + 16 * s - 4, colour[(s - 1) % 8 + 1]
			printf "<text x=\"%d\" y=\"%d\">%s</text>\n", L + pw + 30, T + 16 * s, esc(name)
		}
	} else if (kind == "bars") {
		L = 200; pw = W - L - 40; bh = 22
		for (i = 1; i <= nb; i++) {
			y = T + 10 + (i - 1) * (bh + 8)
			printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", L - 6, y + bh / 2 + 4, esc(BL[i])
			printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", L, y, pw * BV[i], bh, colour[(i - 1) % 8 + 1]
			printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", L + pw * BLO[i], y + bh / 2, L + pw * BHI[i], y + bh / 2
			printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\">%.1f%%</text>\n", L + pw * BHI[i] + 4, y + bh / 2 + 4, 100 * BV[i]
		}
		ybot = T + 10 + nb * (bh + 8)
		for (k = 0; k <= 4; k++)
			printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d%%</text>\n", L + pw * k / 4, ybot + 14, 25 * k
		if (ref != "")
			printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\n", L + pw * ref, T + 4, L + pw * ref, ybot
	} else {
		cw = (W - L - 40) / (nc ? nc : 1); ch = 26
		for (r = 1; r <= nr; r++) {
			printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", L - 6, T + 10 + r * ch - ch / 2 + 4, esc(rows[r])
			for (c = 0; c < nc; c++) {
				v = V[rows[r], c]; shade = vmax > 0 ? int(255 - 200 * v / vmax) : 255
				printf "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"rgb(%d,%d,255)\" stroke=\"white\"><title>%s expert %d: %.3f</title></rect>\n", L + c * cw, T + 10 + (r - 1) * ch, cw, ch, shade, shade, esc(rows[r]), c, v
				printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%.2f</text>\n", L + c * cw + cw / 2, T + 10 + r * ch - ch / 2 + 4, v
			}
		}
		for (c = 0; c < nc; c++)
			printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">e%d</text>\n", L + c * cw + cw / 2, T + 10 + nr * ch + 16, c
	}
	print "</svg>"
}
