#!/bin/sh
# hostile: the table of damaged inputs.  For every file each program reads: truncated at structural boundaries
# (tests/helpers/cuts.c) and with seeded bit flips.  A truncated file must be refused, exit 65, with the file
# named on stderr and no output left behind (the one exception: a stream cut between two records is a shorter
# valid stream).  A flipped file must be refused the same way, or accepted (exit 0) when the flip left it valid
# (a different token id, a weight's low bit); never a crash, a hang, another exit status or a partial output.
# The counts go to hostile.tsv in the scratch directory (bench/RESULTS.md records a long run's).
# Quick by default; MEDMOE_FAULTS=long (make test-faults) tries every boundary and many more flips.
. "$(dirname "$0")/../lib.sh"
OMP_NUM_THREADS=1
export OMP_NUM_THREADS
: "${FAULT_SEED:=14}"
if [ "${MEDMOE_FAULTS:-quick}" = long ]; then CUTS=100000 FLIPS=60; else CUTS=4 FLIPS=4; fi

ok "build the helpers" \
	'cc -std=c11 -O1 -D_GNU_SOURCE -o mklearn "$MEDMOE_TOP/tests/helpers/mklearn.c" $(pkg-config --cflags --libs msgpack) &&
	 cc -std=c11 -O1 -D_GNU_SOURCE -o cuts "$MEDMOE_TOP/tests/helpers/cuts.c" $(pkg-config --cflags --libs jansson)'
ok "inputs: a base, tokens, shards, a resumable run, an exam, predictions" \
	'init-base --arch qwen2 --layers 2 --hidden 16 --heads 2 --kv-heads 1 --ffn 32 -o base &&
	 sha=$(sha256sum base/tokenizer.json | cut -c1-64) && ./mklearn -k $sha -V 265 -n 40 -t 2 -l 12 > tokens.mpk &&
	 shard -q --seq-len 32 --valid 4 -o shards tokens.mpk &&
	 train-experts --base base --method mingmoe --experts 2 --rank 2 --steps 4 --batch-tokens 64 -q --stop-after 2 -o run shards &&
	 cp "$MEDMOE_TOP/tests/fixtures/exam/cmb_val.json" cmb.json && cp "$MEDMOE_TOP/tests/fixtures/exam/cmexam_test.csv" cmexam.csv &&
	 tokenize -q --exam cmb --tokenizer base -o exam.mpk cmb.json && eval-exam -q --base base -o pred.mpk exam.mpk &&
	 printf "{\"instruction\":\"fever %s\",\"input\":\"\",\"output\":\"rest\"}\n" 1 2 3 > c.jsonl &&
	 printf "[{\"instruction\":\"a\",\"input\":\"\",\"output\":\"b\"},{\"instruction\":\"c\",\"input\":\"\",\"output\":\"d\"}]\n" > c.json &&
	 cp -r run run.orig'

printf 'program\tfile\ttried\trefused\taccepted\tbad\n' > hostile.tsv
# seed TAG: a number from FAULT_SEED and TAG
seed() {
	printf '%s' "$FAULT_SEED:$1" | cksum | cut -d' ' -f1
}
# pick N TAG < LIST: at most N lines of LIST (first, last, the rest seeded)
pick() {
	awk -v n="$1" -v seed="$(seed "$2")" 'BEGIN { srand(seed) } { l[NR] = $0 }
		END { if (NR <= n) { for (i = 1; i <= NR; i++) print l[i]; exit }
		      print l[1]; print l[NR]; for (k = 2; k < n; k++) print l[2 + int(rand() * (NR - 2))] }' | sort -un
}
# flip FILE TAG: flip one bit of one byte of FILE, both chosen by the seed
flip() {
	size=$(wc -c < "$1")
	set -- "$1" $(awk -v s="$size" -v seed="$(seed "$2")" 'BEGIN { srand(seed); print int(rand() * s), int(rand() * 8) }')
	off=$2
	byte=$(od -An -tu1 -j "$off" -N1 "$1" | tr -d ' ')
	new=$(( byte ^ (1 << $3) ))
	printf "\\$(printf %03o $new)" | dd of="$1" bs=1 seek="$off" conv=notrunc 2> /dev/null
}
# check RC OUT FILE ALLOW0: one damaged run's verdict; prints refused/accepted/bad:why
check() {
	rc=$1 out=$2 file=$3 allow0=$4
	if [ "$rc" = 2 ] && grep -q -- "--resume: .* was .* in this run" err.txt; then
		# a damaged setting in trainer.json reads as another setting: refused as a mismatch, naming it
		echo refused
	elif [ "$rc" = 1 ] && grep -q "step [0-9]*: the .* is \(NaN\|infinite\): stopping; the last checkpoint" err.txt; then
		# a finite value changed into a huge one (a weight, a moment) makes training diverge: it stops at the
		# first non-finite loss, naming the step, with the checkpoint intact
		echo refused
	elif [ "$rc" = 65 ]; then
		if ! grep -q "$(basename "$file")" err.txt; then echo "bad:65 without naming $(basename "$file"): $(head -1 err.txt)"
		elif [ "$out" != - ] && [ -e "$out" ]; then echo "bad:output $out left behind"
		else echo refused; fi
	elif [ "$rc" = 0 ] && [ "$allow0" = 1 ]; then echo accepted
	elif [ "$rc" = 124 ]; then echo "bad:hang"
	elif [ "$rc" -gt 128 ]; then echo "bad:signal $((rc - 128))"
	else echo "bad:exit $rc: $(head -1 err.txt)"; fi
}
# row NAME FILE KIND OUT CMD...: damage FILE (a copy is restored after each run), run CMD, check.
# KIND: msgpack (a cut between records is valid), msgpack-whole (every cut is damage: checksummed, or state),
# json, json-corpus (an empty file is an empty corpus), json-rewritten (a file the program rewrites from its
# state: accepted only when it was put back as it was), safetensors, idx, text (flips only).
row() {
	name=$1 file=$2 kind=$3 out=$4
	shift 4
	cp -p "$file" hostile.orig
	tried=0 refused=0 accepted=0 bad=0 why=""
	restore() { cp -p hostile.orig "$file"; rm -rf "$out" run && cp -r run.orig run; }
	cutkind=$kind
	[ "$kind" = msgpack-whole ] && cutkind=msgpack
	[ "$kind" = json-corpus ] && cutkind=json
	[ "$kind" = json-rewritten ] && cutkind=json
	if [ "$kind" != text ]; then
		./cuts "$cutkind" hostile.orig > cuts.txt || { echo "# $name: cuts failed"; return 1; }
		for c in $(pick "$CUTS" "$name" < cuts.txt | tr ' ' ':'); do
			at=${c%%:*} where=${c#*:}
			restore
			head -c "$at" hostile.orig > "$file"
			timeout 60 "$@" > /dev/null 2> err.txt
			rc=$?
			allow0=0
			[ "$kind" = msgpack ] && [ "$where" = top ] && allow0=1
			[ "$kind" = json-corpus ] && [ "$at" = 0 ] && allow0=1
			[ "$kind" = json-rewritten ] && cmp -s "$file" hostile.orig && allow0=1
			v=$(check $rc "$out" "$file" $allow0)
			tried=$((tried + 1))
			case $v in refused) refused=$((refused + 1)) ;; accepted) accepted=$((accepted + 1)) ;;
			*) bad=$((bad + 1)); why="$why
# $name: cut at $at ($where): ${v#bad:}" ;; esac
		done
	fi
	for k in $(seq 1 "$FLIPS"); do
		restore
		flip "$file" "$name:$k"
		timeout 60 "$@" > /dev/null 2> err.txt
		v=$(check $? "$out" "$file" 1)
		tried=$((tried + 1))
		case $v in refused) refused=$((refused + 1)) ;; accepted) accepted=$((accepted + 1)) ;;
		*) bad=$((bad + 1)); why="$why
# $name: flip $k: ${v#bad:}" ;; esac
	done
	restore
	printf '%s\t%s\t%d\t%d\t%d\t%d\n' "$name" "$(basename "$file")" $tried $refused $accepted $bad >> hostile.tsv
	echo "# $name: $tried damaged inputs: $refused refused (exit 65, file named), $accepted accepted, $bad bad$why"
	[ $bad = 0 ]
}

T="--base base --method mingmoe --experts 2 --rank 2 --steps 4 --batch-tokens 64 -q"
ok "stream2json --validate: tokens" 'row validate-tokens tokens.mpk msgpack - stream2json --validate tokens.mpk'
ok "stream2json --validate: exam" 'row validate-exam exam.mpk msgpack - stream2json --validate exam.mpk'
ok "stream2json --validate: predictions" 'row validate-pred pred.mpk msgpack - stream2json --validate pred.mpk'
ok "stream2json --validate: metrics" 'row validate-metrics run/metrics.mpk msgpack - stream2json --validate run/metrics.mpk'
ok "stream2json --validate: shard" 'row validate-shard shards/train-00000.mpk msgpack - stream2json --validate shards/train-00000.mpk'
ok "shard: tokens" 'row shard tokens.mpk msgpack out shard -q --seq-len 32 -o out tokens.mpk'
ok "mix-tasks: tokens" 'row mix tokens.mpk msgpack out.mpk mix-tasks -q -o out.mpk tokens.mpk'
ok "shard --verify: manifest" 'row verify-manifest shards/manifest.json json - shard -q --verify shards'
ok "shard --verify: index" 'row verify-idx shards/train-00000.idx idx - shard -q --verify shards'
ok "shard --verify: shard file" 'row verify-shard shards/train-00000.mpk msgpack-whole - shard -q --verify shards'
ok "train-experts: manifest" 'row train-manifest shards/manifest.json json out train-experts $T -o out shards'
ok "train-experts: index" 'row train-idx shards/train-00000.idx idx out train-experts $T -o out shards'
ok "train-experts: shard file" 'row train-shard shards/train-00000.mpk msgpack-whole out train-experts $T -o out shards'
ok "train-experts: config.json" 'row train-config base/config.json json out train-experts $T -o out shards'
ok "train-experts: model.safetensors" 'row train-weights base/model.safetensors safetensors out train-experts $T -o out shards'
ok "train-experts: tokenizer.json" 'row train-tokenizer base/tokenizer.json json out train-experts $T -o out shards'
ok "train-experts --resume: trainer.json" 'row resume-trainer run/state/trainer.json json - train-experts $T --resume -o run shards'
ok "train-experts --resume: optimizer state" \
	'row resume-optimizer run/state/optimizer.safetensors safetensors - train-experts $T --resume -o run shards'
ok "train-experts --resume: metrics" 'row resume-metrics run/metrics.mpk msgpack-whole - train-experts $T --resume -o run shards'
ok "train-experts --resume: adapter_config.json" \
	'row resume-adapter-config run/adapter_config.json json-rewritten - train-experts $T --resume -o run shards'
ok "eval-exam: exam stream" 'row eval-exam exam.mpk msgpack p.mpk eval-exam -q --base base -o p.mpk exam.mpk'
ok "eval-exam --adapter: adapter_config.json" \
	'row eval-adapter-config run/adapter_config.json json p.mpk eval-exam -q --base base --adapter run -o p.mpk exam.mpk'
ok "eval-exam --adapter: adapter.safetensors" \
	'row eval-adapter run/adapter.safetensors safetensors p.mpk eval-exam -q --base base --adapter run -o p.mpk exam.mpk'
ok "merge-adapters: adapter.safetensors" \
	'row merge-adapter run/adapter.safetensors safetensors mg merge-adapters --base base --adapter run --attention-only -o mg'
ok "score: predictions" 'row score pred.mpk msgpack - score pred.mpk'
ok "tokenize: tokenizer.json" 'row tokenize-tokenizer base/tokenizer.json json t.mpk tokenize -q --tokenizer base -o t.mpk c.jsonl'
ok "tokenize: a JSON array corpus" 'row tokenize-json c.json json-corpus t.mpk tokenize -q --tokenizer base -o t.mpk c.json'
ok "tokenize: a JSON Lines corpus" 'row tokenize-jsonl c.jsonl text t.mpk tokenize -q --tokenizer base -o t.mpk c.jsonl'
ok "tokenize --exam cmb" 'row tokenize-cmb cmb.json json t.mpk tokenize -q --exam cmb --tokenizer base -o t.mpk cmb.json'
ok "tokenize --exam cmexam" 'row tokenize-cmexam cmexam.csv text t.mpk tokenize -q --exam cmexam --tokenizer base -o t.mpk cmexam.csv'
ok "the counts" 'cat hostile.tsv | sed "s/^/# /"; awk -F"\t" "NR > 1 { t += \$3; r += \$4; a += \$5; b += \$6 }
	END { printf \"# total: %d damaged inputs, %d refused, %d accepted, %d bad\n\", t, r, a, b }" hostile.tsv'
done_testing
