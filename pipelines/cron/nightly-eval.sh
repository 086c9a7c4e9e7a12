#!/bin/sh
# nightly-eval.sh CONFIG — evaluate the newest checkpoint on the configured exams, keep a history, redraw the
# trend, and fail on a significant regression.  Meant for cron (see crontab.example).
#
# CONFIG is a shell file setting:
#   BASE    the base model directory (its tokenizer made the exam streams)
#   RUNS    a directory whose subdirectories are train-experts run directories (adapter.safetensors) or merged
#           checkpoints (config.json); the newest by modification time is evaluated
#   EXAMS   exam streams (tokenize --exam output), space-separated
#   STATE   where the lock, the history, the trend chart and each night's predictions live
#   ALPHA   significance level of the regression test (default 0.05)
#   MODE    eval-exam mode (default loglik)
#   BIN     where the medmoe programs are (default: on PATH)
#
# Exit status: 0 evaluated, no significant regression; 1 a failure; 3 a significant regression against the
# previous night (paired: accuracy went down and McNemar's exact p < ALPHA on any exam); 75 another run holds
# the lock (EX_TEMPFAIL: cron simply tries again next time).
set -eu
[ $# -eq 1 ] || { echo "usage: nightly-eval.sh config" >&2; exit 2; }
case $1 in */*) config=$1 ;; *) config=./$1 ;; esac  # "." searches PATH for a bare name
# shellcheck disable=SC1090
. "$config"
: "${BASE:?BASE is not set in $1}" "${RUNS:?RUNS is not set in $1}" "${EXAMS:?EXAMS is not set in $1}"
: "${STATE:?STATE is not set in $1}" "${ALPHA:=0.05}" "${MODE:=loglik}" "${BIN:=}"
P=${BIN:+$BIN/}
log() { echo "nightly-eval: $*" >&2; }

mkdir -p "$STATE/nights"
# The lock: flock(1) holds it for as long as this shell runs; a second run gives up at once.
exec 9> "$STATE/lock"
if ! flock -n 9; then
	log "another evaluation holds $STATE/lock"
	exit 75
fi

# The newest checkpoint: a run directory with an adapter, or a merged checkpoint.
newest=""
for d in $(ls -1td "$RUNS"/*/ 2>/dev/null); do
	d=${d%/}
	if [ -f "$d/adapter.safetensors" ] || [ -f "$d/config.json" ]; then newest=$d; break; fi
done
[ -n "$newest" ] || { log "no checkpoint under $RUNS"; exit 1; }
if [ -f "$newest/adapter.safetensors" ]; then
	model="--base $BASE --adapter $newest"
else
	model="--base $newest"
fi

night=$(date -u +%Y%m%dT%H%M%SZ)
dir="$STATE/nights/$night"
mkdir -p "$dir.tmp"
log "evaluating $newest"
preds=""
for exam in $EXAMS; do
	name=$(basename "$exam"); name=${name%.*}
	# shellcheck disable=SC2086
	${P}eval-exam -q $model --mode "$MODE" -o "$dir.tmp/$name.pred" "$exam"
	preds="$preds $dir.tmp/$name.pred"
done
mv "$dir.tmp" "$dir"
preds=$(echo "$preds" | sed "s|$dir.tmp|$dir|g")

# History and trend.
# shellcheck disable=SC2086
${P}score --label "$(basename "$newest")" --history "$STATE/history.jsonl" --plot-history "$STATE/trend.svg" \
	$preds > "$dir/report.txt"
echo "$newest" > "$dir/checkpoint"

# The paired test against the previous night, exam by exam.
status=0
previous=""
[ -f "$STATE/last" ] && previous=$(cat "$STATE/last")
if [ -n "$previous" ] && [ -d "$previous" ]; then
	for p in $preds; do
		base="$previous/$(basename "$p")"
		[ -f "$base" ] || continue
		${P}score --json --baseline "$base" "$p" > "$p.paired.json"
		verdict=$(jq -r --argjson alpha "$ALPHA" '.paired.all as $q
			| if ($q.diff < 0 and $q.mcnemar_p < $alpha) then "regression \($q.diff) p=\($q.mcnemar_p)"
			  else "ok \($q.diff) p=\($q.mcnemar_p)" end' "$p.paired.json")
		log "$(basename "$p"): $verdict"
		case $verdict in regression*) status=3 ;; esac
	done
fi
echo "$dir" > "$STATE/last"
exit $status
