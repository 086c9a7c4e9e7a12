#!/bin/sh
# stream2json: shows streams as JSON lines, validates them against schemas/, refuses broken ones.
. "$MEDMOE_TOP/tests/lib.sh"
# A small hand-made stream: msgpack bytes written by hand (header + one tokens record).
# b HEX... writes bytes; k STR writes a fixstr (< 32 bytes).
b() { for h in "$@"; do printf "\\$(printf %03o "0x$h")"; done; }
k() { b "$(printf %x $((0xa0 + ${#1})))"; printf '%s' "$1"; }
sha=$(printf '%064d' 0)
{
	b 85; k schema; k medmoe.tokens; k version; b 01; k program; k test; k program_version; k 0
	k tokenizer; b 83; k sha256; b d9 40; printf '%s' "$sha"; k vocab_size; b cd 02 00; k special; b 80
	# record: task, task_id, id, ids (bin of 8 bytes = [1, 258]), mask (bin of 2 bytes), lang
	b 86; k task; k qa; k task_id; b 00; k id; k r1
	k ids; b c4 08 01 00 00 00 02 01 00 00
	k mask; b c4 02 00 01; k lang; k en
} > s.mpk
ok "prints the header and the record, ids as numbers and the mask as bytes" "
	stream2json s.mpk > s.json && test \$(wc -l < s.json) -eq 2 &&
	grep -q '\"ids\":\[1,258\],\"mask\":\[0,1\]' s.json && grep -q '\"schema\":\"medmoe.tokens\"' s.json"
ok "--validate accepts a stream that follows its spec" "stream2json --validate s.mpk > /dev/null"
ok "reads standard input" "stream2json -H < s.mpk | grep -q medmoe.tokens"
head -c $(($(wc -c < s.mpk) - 3)) s.mpk > cut.mpk
ok_fails 65 "a truncated stream" "stream2json cut.mpk"
ok "... is called truncated, with the record number" "grep -q 'cut.mpk: record 1: truncated' err.$n_test"
{ head -c $(($(wc -c < s.mpk) - 17)) s.mpk; k mask; b c4 01 00; k lang; k en; } > shortmask.mpk
ok_fails 65 "--validate: a mask shorter than its ids" "stream2json --validate shortmask.mpk"
ok "... names the field" "grep -q 'record 1: mask' err.$n_test"
printf 'not msgpack at all\n' > junk.mpk
ok_fails 65 "not a stream" "stream2json junk.mpk"
ok_fails 2 "an unknown option" "stream2json --frobnicate"
done_testing
