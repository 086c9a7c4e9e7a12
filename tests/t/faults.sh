#!/bin/sh
# faults: every program that writes, killed (SIGKILL) at seeded points of its run, with failing renames and
# fsyncs around every directory swap, on a full disk, a read-only target, /dev/full, a closed stdout and a
# broken pipe.  After each fault: nothing partial at the target path (it is absent, the old output, or the
# complete new one), the next run leaves no leftovers (PATH.tmp.PID, PATH.medmoe-old) and gives the same bytes as a
# run without faults; an interrupted training run resumes to the same adapter.
#
# Kill points come from tests/helpers/faultshim.c (LD_PRELOAD): a dry run counts the calls that change files
# (events); the program is then killed just before event k, for k drawn with seed $FAULT_SEED.  Quick by default
# (a few points per program, `make test`); MEDMOE_FAULTS=long (`make test-faults`) tries many more.
. "$(dirname "$0")/../lib.sh"
OMP_NUM_THREADS=1
export OMP_NUM_THREADS
SHIM=${MEDMOE_BUILD:-$MEDMOE_TOP/build}/tests/faultshim.so
# Under `make test SAN=1` the programs carry ASan, which wants to be the first library loaded: the shim goes
# before it, which ASan allows when told.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
export ASAN_OPTIONS
if [ ! -f "$SHIM" ]; then
	echo "1..0 # SKIP $SHIM not built (make test builds it)"
	exit 0
fi
: "${FAULT_SEED:=14}"
if [ "${MEDMOE_FAULTS:-quick}" = long ]; then POINTS=40; else POINTS=4; fi

# points N: POINTS kill points in 1..N (always the first and the last), seeded
points() {
	awk -v n="$1" -v p="$POINTS" -v seed="$FAULT_SEED$2" 'BEGIN {
		srand(seed); print 1; if (n > 1) print n
		for (i = 2; i < p && n > 2; i++) print 2 + int(rand() * (n - 2)) }' | sort -un
}
# counts CMD...: run CMD under the shim, print "EVENTS RENAMES FSYNCS"; events CMD...: the first of them
counts() {
	rm -f events.n
	FAULT_COUNT_FILE=$PWD/events.n LD_PRELOAD=$SHIM "$@" > /dev/null 2>&1
	cat events.n
}
events() {
	counts "$@" | cut -d' ' -f1
}
# leftovers DIR: list PATH.tmp.PID and PATH.medmoe-old names under DIR
leftovers() {
	find "$1" -name '*.tmp.[0-9]*' -o -name '*.medmoe-old' -o -name 'shuffle-*.tmp' | grep . && return 1
	return 0
}
# same A B: files or directories with the same content
same() {
	if [ -d "$1" ]; then diff -r "$1" "$2" > /dev/null; else cmp -s "$1" "$2"; fi
}

# The counts of every fault tried go to faults.tsv in the scratch directory (docs/hostile-input.md records a
# long run's): program, fault, how many were injected, and the events the program makes in a clean run.
printf 'program\tfault\tinjected\tevents\n' > faults.tsv

# ---- inputs: a tiny base, two tasks of tokens, shards, a short run, an exam ----
ok "build the helpers" \
	'cc -std=c11 -O1 -D_GNU_SOURCE -o mklearn "$MEDMOE_TOP/tests/helpers/mklearn.c" $(pkg-config --cflags --libs msgpack)'
ok "inputs: base, corpus, tokens, shards, a run, an exam" \
	'init-base --arch qwen2 --layers 2 --hidden 16 --heads 2 --kv-heads 1 --ffn 32 -o base &&
	 sha=$(sha256sum base/tokenizer.json | cut -c1-64) && ./mklearn -k $sha -V 265 -n 60 -t 2 -l 12 > learn.mpk &&
	 ./mklearn -k $sha -V 265 -n 3000 -t 2 -l 40 > big.mpk &&
	 printf "{\"instruction\":\"fever %s\",\"input\":\"\",\"output\":\"rest %s\"}\n" 1 1 2 2 3 3 4 4 5 5 > c.jsonl &&
	 seq 1 3000 | awk "{ printf \"{\\\"instruction\\\":\\\"fever %d\\\",\\\"input\\\":\\\"\\\",\\\"output\\\":\\\"rest\\\"}\\n\", \$1 }" > bigc.jsonl &&
	 tokenize -q --tokenizer base --task a -o a.mpk c.jsonl && tokenize -q --tokenizer base --task b -o b.mpk c.jsonl &&
	 shard -q --seq-len 32 --valid 4 -o shards learn.mpk &&
	 train-experts --base base --method lora --steps 2 --batch-tokens 64 -q -o run shards &&
	 cp "$MEDMOE_TOP/tests/fixtures/exam/cmb_val.json" cmb.json && tokenize -q --exam cmb --tokenizer base -o exam.mpk cmb.json &&
	 eval-exam -q --base base -o pred.mpk exam.mpk'

# kill_test NAME TARGET OLD CMD: CMD writes TARGET; OLD ("" or a copy of an older TARGET, put back before each
# run).  Killed at each point, TARGET must be absent, OLD or the reference; then a clean run must give the
# reference and leave nothing behind.
kill_test() {
	name=$1 target=$2 old=$3
	shift 3
	rm -rf "$target" ref.out
	[ -n "$old" ] && cp -r "$old" "$target"
	"$@" > /dev/null 2>&1 || { echo "# $name: the clean run failed"; return 1; }
	cp -r "$target" ref.out
	rm -rf "$target"
	[ -n "$old" ] && cp -r "$old" "$target"
	n=$(events "$@")
	[ -n "$n" ] && [ "$n" -gt 0 ] || { echo "# $name: no events counted"; return 1; }
	for k in $(points "$n" "$name"); do
		rm -rf "$target" "$target".tmp.* "$target".medmoe-old
		[ -n "$old" ] && cp -r "$old" "$target"
		FAULT_KILL_AT=$k LD_PRELOAD=$SHIM "$@" > /dev/null 2>&1
		if [ -e "$target" ] && ! same "$target" ref.out && { [ -z "$old" ] || ! same "$target" "$old"; }; then
			echo "# $name: killed at event $k of $n: $target is partial"
			return 1
		fi
		if [ ! -e "$target" ] && [ -n "$old" ] && [ ! -e "$target.medmoe-old" ]; then
			echo "# $name: killed at event $k of $n: $target and its backup are both gone"
			return 1
		fi
		"$@" > /dev/null 2>&1 || { echo "# $name: the run after the kill at $k failed"; return 1; }
		same "$target" ref.out || { echo "# $name: after the kill at $k the next run differs"; return 1; }
		leftovers . > /dev/null || { echo "# $name: leftovers after the kill at $k: $(leftovers .)"; return 1; }
	done
	echo "# $name: $n events, killed at $(points "$n" "$name" | tr '\n' ' ')"
	printf '%s\tkill -9\t%d\t%d\n' "$name" "$(points "$n" "$name" | wc -l)" "$n" >> faults.tsv
}

ok "tokenize: kill -9 at seeded points" 'kill_test tokenize t.mpk "" tokenize -q --tokenizer base --task a -o t.mpk c.jsonl'
ok "mix-tasks: kill -9 at seeded points (-o and --stats)" \
	'kill_test mix-tasks m.mpk "" mix-tasks -q --stats st.json -o m.mpk a.mpk b.mpk && [ -f st.json ]'
# (--force where the output is a directory: a kill after the rename leaves it complete, and the run after it
# replaces it by the same bytes)
ok "shard: kill -9 at seeded points" 'kill_test shard sh "" shard -q --force --seq-len 32 --valid 4 -o sh learn.mpk'
ok "shard --force over an old directory: kill -9 at seeded points" \
	'shard -q --seq-len 16 -o sh-old learn.mpk && kill_test shard-force sh sh-old shard -q --force --seq-len 32 -o sh learn.mpk'
ok "init-base --force: kill -9 at seeded points" \
	'init-base --arch llama --layers 1 --hidden 8 --heads 2 --ffn 16 -o b-old &&
	 kill_test init-base b b-old init-base --force --arch qwen2 --layers 2 --hidden 16 --heads 2 --kv-heads 1 --ffn 32 -o b'
ok "merge-adapters --force: kill -9 at seeded points" \
	'merge-adapters --base base --adapter run --peft -o mg-old &&
	 kill_test merge-adapters mg mg-old merge-adapters --base base --adapter run --force -o mg'
ok "eval-exam: kill -9 at seeded points" 'kill_test eval-exam p.mpk "" eval-exam -q --base base -o p.mpk exam.mpk'
ok "score --svg: kill -9 at seeded points" 'kill_test score s.svg "" score --svg s.svg pred.mpk'

# train-experts: killed anywhere, then resumed (or restarted when no checkpoint was made): the same adapter
train_opts="--base base --method lora --steps 6 --save-every 2 --batch-tokens 64 -q"
train_kill() {
	rm -rf tref && train-experts $train_opts -o tref shards > /dev/null 2>&1 || return 1
	n=$(rm -rf tk && events train-experts $train_opts -o tk shards)
	for k in $(points "$n" train); do
		rm -rf tk
		FAULT_KILL_AT=$k LD_PRELOAD=$SHIM train-experts $train_opts -o tk shards > /dev/null 2>&1
		if [ -d tk/state ] || [ -d tk/state.medmoe-old ]; then
			train-experts $train_opts --resume -o tk shards > /dev/null 2>&1 || { echo "# resume after $k failed"; return 1; }
		else
			train-experts $train_opts --force -o tk shards > /dev/null 2>&1 || { echo "# restart after $k failed"; return 1; }
		fi
		cmp -s tk/adapter.safetensors tref/adapter.safetensors || { echo "# killed at $k of $n: another adapter"; return 1; }
		cmp -s tk/state/optimizer.safetensors tref/state/optimizer.safetensors || { echo "# killed at $k: another state"; return 1; }
		[ "$(stream2json -N tk/metrics.mpk | wc -l)" = 6 ] || { echo "# killed at $k: metrics records"; return 1; }
		leftovers tk > /dev/null || { echo "# killed at $k: leftovers $(leftovers tk)"; return 1; }
	done
	echo "# train-experts: $n events, killed at $(points "$n" train | tr '\n' ' ')"
	printf 'train-experts\tkill -9, then --resume\t%d\t%d\n' "$(points "$n" train | wc -l)" "$n" >> faults.tsv
}
ok "train-experts: kill -9 at seeded points, then --resume: the same adapter, state and metrics" train_kill

# ---- failing renames and fsyncs around every directory swap, both ways of swapping ----
# swap_test NAME TARGET OLD CMD: with the Nth rename (or fsync) failing, CMD fails, TARGET is OLD or the new
# output, complete, and nothing is left behind; with a SIGKILL at the Nth rename of the two-rename swap, the
# next run finds the old or the new directory (outdir_recover puts DIR.medmoe-old back).
swap_test() {
	name=$1 target=$2 old=$3
	shift 3
	rm -rf "$target" ref.out && cp -r "$old" "$target" && "$@" > /dev/null 2>&1 && cp -r "$target" ref.out || return 1
	for exch in 0 1; do
		rm -rf "$target" && cp -r "$old" "$target"
		c=$(MEDMOE_NO_EXCHANGE=$exch counts "$@")
		nr=$(echo "$c" | cut -d' ' -f2) nf=$(echo "$c" | cut -d' ' -f3)
		for fault in RENAME_FAIL FSYNC_FAIL RENAME_KILL; do
			n=$nr
			[ $fault = FSYNC_FAIL ] && n=$nf
			for k in $(seq 1 "$n"); do
				rm -rf "$target" "$target".tmp.* "$target".medmoe-old && cp -r "$old" "$target"
				env MEDMOE_NO_EXCHANGE=$exch FAULT_$fault=$k LD_PRELOAD=$SHIM "$@" > /dev/null 2> err.txt
				rc=$?
				if [ $rc -ne 0 ] && [ $fault != RENAME_KILL ] && ! grep -q . err.txt; then
					echo "# $name: $fault=$k exchange=$exch: exit $rc without a message"; return 1
				fi
				if [ $fault = RENAME_KILL ] && [ ! -e "$target" ]; then
					[ -d "$target.medmoe-old" ] || { echo "# $name: kill at rename $k: no $target and no backup"; return 1; }
				elif ! same "$target" "$old" && ! same "$target" ref.out; then
					echo "# $name: $fault=$k exchange=$exch: $target is neither the old nor the new output"; return 1
				fi
				"$@" > /dev/null 2>&1 || { echo "# $name: the run after $fault=$k failed"; return 1; }
				same "$target" ref.out || { echo "# $name: after $fault=$k the next run differs"; return 1; }
				leftovers . > /dev/null || { echo "# $name: $fault=$k: leftovers $(leftovers .)"; return 1; }
			done
			printf '%s\t%s (exchange %s)\t%d\t\n' "$name" "$fault" $((1 - exch)) "$n" >> faults.tsv
		done
	done
	echo "# $name: every rename failed, every fsync failed, killed at every rename, with and without RENAME_EXCHANGE"
}
ok "shard --force: failing renames and fsyncs, a kill between the two renames" \
		'swap_test shard sh sh-old shard -q --force --seq-len 32 -o sh learn.mpk'
ok "merge-adapters --force: failing renames and fsyncs, a kill between the two renames" \
		'swap_test merge mg mg-old merge-adapters --base base --adapter run --force -o mg'
ok "init-base --force: failing renames and fsyncs, a kill between the two renames" \
		'swap_test init-base b b-old init-base --force --arch qwen2 --layers 2 --hidden 16 --heads 2 --kv-heads 1 --ffn 32 -o b'

state_swap() {
	for exch in 0 1; do
		for fault in RENAME_FAIL FSYNC_FAIL RENAME_KILL; do
			for k in 1 2 3 4; do
				rm -rf ts && train-experts $train_opts --stop-after 2 -o ts shards > /dev/null 2>&1 || return 1
				env MEDMOE_NO_EXCHANGE=$exch FAULT_$fault=$k LD_PRELOAD=$SHIM train-experts $train_opts --resume -o ts shards > /dev/null 2>&1
				[ -d ts/state ] || [ -d ts/state.medmoe-old ] || { echo "# $fault=$k: no state at all"; return 1; }
				train-experts $train_opts --resume -o ts shards > /dev/null 2>&1 || { echo "# $fault=$k exchange=$exch: resume failed"; return 1; }
				cmp -s ts/adapter.safetensors tref/adapter.safetensors || { echo "# $fault=$k: another adapter"; return 1; }
				leftovers ts > /dev/null || { echo "# $fault=$k: leftovers $(leftovers ts)"; return 1; }
			done
			printf 'train-experts state/\t%s (exchange %s)\t4\t\n' "$fault" $((1 - exch)) >> faults.tsv
		done
	done
}
ok "train-experts: state/ swaps under failing renames and fsyncs and a kill between renames resume exactly" state_swap

# ---- full disk, read-only target, /dev/full, closed stdout, broken pipe ----
small=""
if [ "$(id -u)" = 0 ] && mkdir -p small && mount -t tmpfs -o size=96k tmpfs small 2> /dev/null; then
	small=small
fi
full_test() {
	[ -n "$small" ] || { ulimit -f 40; trap "" XFSZ; }
	dir=${small:-.}
	for out in t.mpk:tokenize m.mpk:mix sh:shard b:init-base pred2.mpk:eval; do
		f=$dir/${out%%:*}
		rm -rf "$f"
		case ${out#*:} in
		tokenize) tokenize -q --tokenizer base --task a -o "$f" bigc.jsonl ;;
		mix) mix-tasks -q -o "$f" big.mpk ;;
		shard) shard -q --seq-len 32 -o "$f" big.mpk ;;
		init-base) init-base --arch qwen2 --layers 4 --hidden 64 --heads 2 --ffn 128 -o "$f" ;;
		eval)   # a small output: the disk is filled first (on the tmpfs; under ulimit -f it would fit)
			[ -n "$small" ] || continue
			dd if=/dev/zero of="$dir/fill" bs=1k 2> /dev/null
			eval-exam -q --base base -o "$f" exam.mpk ;;
		esac > /dev/null 2> err.txt
		rc=$?
		rm -f "$dir/fill"
		[ $rc = 1 ] || { echo "# ${out#*:}: exit $rc on a full disk"; cat err.txt; return 1; }
		grep -qE "No space left|File too large" err.txt || { echo "# ${out#*:}: $(cat err.txt)"; return 1; }
		[ ! -e "$f" ] || { echo "# ${out#*:}: partial output $f"; return 1; }
		leftovers "$dir" > /dev/null || { echo "# ${out#*:}: leftovers $(leftovers "$dir")"; return 1; }
	done
}
ok "a full disk: exit 1 naming the error, no partial output, no leftovers" '( full_test )'
readonly_test() {
	mkdir -p ro
	if [ "$(id -u)" = 0 ]; then
		mount -t tmpfs -o size=64k,ro tmpfs ro || return 0
	else
		chmod 555 ro
	fi
	for cmd in "tokenize -q --tokenizer base --task a -o ro/t.mpk c.jsonl" "shard -q --seq-len 32 -o ro/sh learn.mpk" \
		   "train-experts $train_opts -o ro/run shards" "eval-exam -q --base base -o ro/p.mpk exam.mpk"; do
		$cmd > /dev/null 2> err.txt
		rc=$?
		[ $rc = 1 ] && grep -q "ro/" err.txt || { echo "# $cmd: exit $rc: $(cat err.txt)"; return 1; }
		[ -z "$(ls -A ro)" ] || { echo "# $cmd wrote into ro"; return 1; }
	done
}
ok "a read-only target: exit 1 naming it, nothing written" 'readonly_test; r=$?; umount ro 2>/dev/null; chmod 755 ro; exit $r'
ok_fails 1 "tokenize -o /dev/full: no space left on device" 'tokenize -q --tokenizer base --task a -o /dev/full c.jsonl'
ok_fails 1 "stream2json > /dev/full" 'stream2json learn.mpk > /dev/full'
ok_fails 1 "score > /dev/full" 'score pred.mpk > /dev/full'
ok_fails 1 "stream2json with stdout closed" 'stream2json learn.mpk >&-'
ok_fails 1 "score with stdout closed" 'score pred.mpk >&-'
ok "a broken pipe ends stream2json with SIGPIPE, or exit 1 when SIGPIPE is ignored, never a crash" \
	'{ stream2json big.mpk; echo $? > rc1; } | head -c 10 > /dev/null; rc=$(cat rc1); { [ "$rc" = 141 ] || [ "$rc" = 1 ]; } &&
	 { (trap "" PIPE; stream2json big.mpk 2> perr.txt; echo $? > rc2); } | head -c 10 > /dev/null; [ "$(cat rc2)" = 1 ] &&
	 grep -q "Broken pipe" perr.txt'
ok "stale temporaries of dead processes are removed by the next run" \
	'mkdir -p st && echo partial > st/t.mpk.tmp.999999 && mkdir st/d.tmp.999998 && echo x > st/d.tmp.999998/f &&
	 tokenize -q --tokenizer base --task a -o st/t.mpk c.jsonl && shard -q --seq-len 32 -o st/d learn.mpk &&
	 [ ! -e st/t.mpk.tmp.999999 ] && [ ! -e st/d.tmp.999998 ] && leftovers st'
ok "the counts" 'sed "s/^/# /" faults.tsv; awk -F"\t" "NR > 1 { n += \$3 } END { printf \"# total: %d faults injected\n\", n }" faults.tsv'
[ -n "$small" ] && umount small
done_testing
