#!/bin/sh
# mkdata.sh DIR — the inputs of tests/gpu/check-gpu.sh that are made on the build machine, because the GPU machine
# may have no compiler, no msgpack-c and no ../shared (scripts/gpu-bundle.sh copies DIR into the bundle):
#   DIR/shards/      a learnable three-task token stream (tests/helpers/mklearn.c) in shards of 64 tokens, for
#                    the 10-step loss curves, the resume check and the sanitizer runs;
#   DIR/exam.mpk     a real exam as token ids: CMMLU's anatomy test split (148 questions, 0-shot) from
#                    $MEDMOE_SHARED/data, through `tokenize --exam cmmlu` with init-base's byte tokenizer (the
#                    ids are the UTF-8 bytes, so a tiny base model scores it); absent when MEDMOE_SHARED is;
#   DIR/tokenizer.sha256, DIR/README.
# Both streams carry the sha256 of the byte tokenizer that `init-base --tokenizer bytes` writes (the same bytes
# on every machine), so the tiny checkpoints made on the GPU machine accept them.  Tokens only, no text.
# Environment: MEDMOE_BIN (programs), MEDMOE_TOP (the repository), MEDMOE_SHARED (default $MEDMOE_TOP/../shared).
set -eu
[ $# -eq 1 ] || { echo "usage: mkdata.sh DIR" >&2; exit 2; }
dir=$1
MEDMOE_TOP=${MEDMOE_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
: "${MEDMOE_BIN:=$MEDMOE_TOP/bin}" "${MEDMOE_SHARED:=$MEDMOE_TOP/../shared}"
PATH=$MEDMOE_BIN:$PATH
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
work=$dir.tmp
init-base --arch qwen3 --layers 1 --hidden 32 --heads 2 --ffn 64 -o "$work/tok" > /dev/null
sha=$(sha256sum "$work/tok/tokenizer.json" | cut -c1-64)
echo "$sha" > "$work/tokenizer.sha256"
# shellcheck disable=SC2046
cc -std=c11 -O1 -D_GNU_SOURCE -o "$work/mklearn" "$MEDMOE_TOP/tests/helpers/mklearn.c" $(pkg-config --cflags --libs msgpack)
"$work/mklearn" -k "$sha" -V 265 -n 600 -t 3 -l 24 > "$work/learn.mpk"
shard -q --seq-len 64 --valid 0.1 -o "$work/shards" "$work/learn.mpk"
exam=$MEDMOE_SHARED/data/cmmlu/data/test/anatomy.csv
if [ -f "$exam" ]; then
	tokenize -q --exam cmmlu --tokenizer "$work/tok/tokenizer.json" -o "$work/exam.mpk" "$exam"
	exam_note="exam.mpk: tokenize --exam cmmlu --tokenizer (init-base's byte tokenizer) data/cmmlu/data/test/anatomy.csv"
else
	echo "mkdata.sh: WARNING: $exam is absent (MEDMOE_SHARED=$MEDMOE_SHARED): no exam stream, check-gpu's eval-exam check will SKIP" >&2
	exam_note="exam.mpk: not made (MEDMOE_SHARED was absent)"
fi
cat > "$work/README" <<EOF
Inputs of check-gpu.sh, made by tests/gpu/mkdata.sh (token ids only; no text).
tokenizer.sha256: $sha (init-base --tokenizer bytes)
shards/: mklearn -V 265 -n 600 -t 3 -l 24 | shard --seq-len 64 --valid 0.1
$exam_note
EOF
rm -rf "$work/tok" "$work/mklearn" "$work/learn.mpk"
rm -rf "$dir"
mv "$work" "$dir"
