# cmp_pred.awk REF.json GOT.json — compare two eval-exam prediction streams (stream2json -N lines, the same
# questions in the same order), for tests/gpu/check-gpu.sh.  Prints one line:
#   N_REF N_GOT N_DIFFERENT MAX_ABS_DSCORE MAX_GAP ORDER_ERRORS|DIFFERENCES
# MAX_ABS_DSCORE: the largest |Δ| of any option's log-probability; a differing question is listed with the gap
# between the two answers' scores on the REF side ("A->C gap 0.0012"): when that is within the score noise, the
# difference is a near-tie (REF's gap ≤ |Δ| of the two scores ≤ 2·MAX_ABS_DSCORE).
function field(line, key,    re, v) {
	re = "\"" key "\":(\"[^\"]*\"|\\[[^]]*\\]|null|true|false|[-0-9.e]+)"
	if (!match(line, re))
		return ""
	v = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
	gsub(/^["[]|["\]]$/, "", v)
	return v
}
NR == FNR { id[FNR] = field($0, "id"); pr[FNR] = field($0, "predicted"); sc[FNR] = field($0, "scores"); n = FNR; next }
{
	gid = field($0, "id"); gpr = field($0, "predicted"); gsc = field($0, "scores"); m++
	if (gid != id[FNR]) { order = order " " FNR ":" gid "/" id[FNR]; next }
	na = split(sc[FNR], a, ","); nb = split(gsc, b, ",")
	if (na != nb) { order = order " " gid ":options"; next }
	for (i = 1; i <= na; i++) { d = a[i] - b[i]; if (d < 0) d = -d; if (d > maxd) maxd = d }
	if (gpr != pr[FNR]) {
		ndiff++
		ci = index("ABCDEFGHIJ", pr[FNR]); gi = index("ABCDEFGHIJ", gpr)
		if (length(pr[FNR]) == 1 && length(gpr) == 1 && ci && gi) {
			gap = a[ci] - a[gi]; if (gap < 0) gap = -gap
			g = sprintf("%.2g", gap); if (gap > maxgap) maxgap = gap
		} else
			g = "(multi-answer)"
		list = list (list == "" ? "" : ", ") gid " " pr[FNR] "->" gpr " gap " g
	}
}
END { printf "%d %d %d %.3g %.3g %s|%s\n", n, m, ndiff, maxd, maxgap, order, list }
