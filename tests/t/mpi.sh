#!/bin/sh
# train-experts and eval-exam as ranks of mpirun (Open MPI): 2 ranks train what 1 rank trains (loss curve and
# adapter within the stated bound) and the same rank count repeats its bytes; checkpoints resume on another rank
# count; eval-exam's predictions are the single process's, byte for byte; a killed or stopped rank ends the job
# with a message naming it and the last checkpoint stays resumable; lib/dist.h's sums and gathers; a build
# without MPI says so.
. "$(dirname "$0")/../lib.sh"
OMP_NUM_THREADS=1
# CI runs as root, on 2 cores: Open MPI must be told both are fine
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
unset MEDMOE_DIST_TIMEOUT
# Open MPI's start-up leaks (open-mpi/ompi#10048, #12584), so under `make test SAN=1` leaks are not checked here
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS
mpi() { n=$1; shift; mpirun --oversubscribe -np "$n" "$@"; }
DIST_FLAGS=$(cat "$MEDMOE_BUILD/dist.flags" 2>/dev/null)
CC_LIB="cc -std=c11 -O1 -D_GNU_SOURCE -fopenmp -I$MEDMOE_TOP/lib"
case $MEDMOE_BUILD in *build-san*) CC_SAN="-fsanitize=address,undefined" ;; *) CC_SAN="" ;; esac   # make test SAN=1

# --- a build without MPI: the layer is left out and says so when a launcher starts ranks ---
ok "a build without MPI: one process runs alone" \
	"$CC_LIB -o distcheck-nompi $MEDMOE_TOP/tests/helpers/distcheck.c $MEDMOE_TOP/lib/dist.c \
		$MEDMOE_TOP/lib/dist_mpi.c $MEDMOE_TOP/lib/dist_nccl.c $MEDMOE_TOP/lib/die.c -lm &&
	 ./distcheck-nompi world | grep -qx 'none rank 0 of 1, local 0 of 1' &&
	 OMPI_COMM_WORLD_SIZE=1 ./distcheck-nompi world | grep -q '^none'"
ok_fails 2 "... and started as one of several ranks it says the layer was left out" \
	'OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 ./distcheck-nompi world 2> e; cat e >&2;
	 grep -q "rank 0 of 2 by mpirun.*this build has no MPI" e && exit 2'

if ! command -v mpirun > /dev/null || ! echo "$DIST_FLAGS" | grep -q MEDMOE_MPI; then
	skip "everything under mpirun" "no mpirun, or this build has no MPI (libopenmpi-dev: scripts/deps.sh)"
	done_testing
	exit $?
fi

ok "build the helpers (learnable tasks, safetensors distance, the dist layer check)" \
	"cc -std=c11 -O1 -D_GNU_SOURCE -o mklearn $MEDMOE_TOP/tests/helpers/mklearn.c \$(pkg-config --cflags --libs msgpack) &&
	 $CC_LIB $CC_SAN -o stdiff $MEDMOE_TOP/tests/helpers/stdiff.c $MEDMOE_BUILD/libmedmoe.a \$(pkg-config --libs jansson libmd) -lm &&
	 $CC_LIB $CC_SAN -o distcheck $MEDMOE_TOP/tests/helpers/distcheck.c $MEDMOE_BUILD/libmedmoe.a $DIST_FLAGS \$(pkg-config --libs jansson libmd) -lm"

# --- lib/dist.h ---
ok "all-reduce is the rank-order sum, bit for bit, and the gathers keep rank order (3 ranks)" \
	'mpi 3 ./distcheck sums | grep -q "^ok: 3 ranks"'
ok "ranks know their place: rank, world, rank on the node" \
	'mpi 2 ./distcheck world | sort > w && grep -qx "mpi rank 0 of 2, local 0 of 2" w && grep -qx "mpi rank 1 of 2, local 1 of 2" w'
ok "a rank that never comes: the others stop on MEDMOE_DIST_TIMEOUT with one message naming it" \
	'! MEDMOE_DIST_TIMEOUT=2 timeout 30 mpirun -q --oversubscribe -np 3 ./distcheck hang 2> e; cat e >&2;
	 [ $(grep -c "waited [0-9]* s for rank 1, which died, stopped or hangs" e) -eq 1 ] && ! grep -q "not stopped" e'

# --- train-experts ---
ok "a tiny base and three learnable tasks in shards" \
	'init-base --arch qwen2 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --init-std 0.15 -o base &&
	 sha=$(sha256sum base/tokenizer.json | cut -c1-64) && ./mklearn -k $sha -V 265 -n 600 -t 3 -l 24 > learn.mpk &&
	 shard -q --seq-len 64 --valid 0.1 -o shards learn.mpk'
common="--base base --batch-tokens 256 --lr 3e-3 --eval-every 5 --con-queue 32 --con-proj 8 -q"
# The metrics without the one field that is a clock reading.
curve() { stream2json -N "$1/metrics.mpk" | jq -c 'del(.tokens_per_s)'; }
# Each step's losses within REL of the other run's, relative (the contrastive loss within REL_CON, default REL).
same_curve() {
	curve "$1" > c1 && curve "$2" > c2 && [ "$(wc -l < c1)" = "$(wc -l < c2)" ] &&
	jq -n --slurpfile a c1 --slurpfile b c2 --argjson rel "$3" --argjson con "${4:-$3}" '
		[range(0; $a | length) as $i | $a[$i] as $x | $b[$i] as $y |
		 ("loss", "lb_loss", "contrastive_loss", "val_loss") as $k | select($x[$k] != null) |
		 (($x[$k] - $y[$k]) | fabs) <= (if $k == "contrastive_loss" then $con else $rel end) * ($x[$k] | fabs)]
		| all' | grep -qx true
}
# The adapter's relative L2 distance within REL.
close_adapter() {
	./stdiff "$1/adapter.safetensors" "$2/adapter.safetensors" | tee d >&2 &&
	awk -v rel="$3" '{ exit !($4 <= rel) }' d
}
# The bound (README "Several processes"): fp32 rounding of sums taken in another order, 1e-6 relative per step's
# losses and 1e-5 relative L2 of the adapter after 10 steps; sparsedoctor's half-precision queue can turn such a
# rounding into one f16 step (5e-4 relative) of an entry, so 1e-4 for its contrastive loss and its adapter.
# (Measured on this machine: losses within 2e-8, adapters 3e-7; sparsedoctor's contrastive loss 4e-6, adapter 5e-7.)
for m in lora moelora mingmoe sparsedoctor; do
	o="$common --method $m --steps 10 --save-every 5"
	[ $m = moelora ] && o="$o --accum 2"
	[ $m = mingmoe ] && o="$o --recompute"
	bound=1e-5; [ $m = sparsedoctor ] && bound=1e-4
	ok "$m: 2 ranks and 1 rank give the same loss curve and adapter within the bound" \
		"train-experts $o -o one-$m shards && mpi 2 train-experts $o -o two-$m shards &&
		 same_curve one-$m two-$m 1e-6 1e-4 && close_adapter one-$m two-$m $bound"
	ok "$m: 2 ranks twice give the same bytes (adapter, optimizer state, metrics)" \
		"mpi 2 train-experts $o -o again-$m shards && cmp two-$m/adapter.safetensors again-$m/adapter.safetensors &&
		 cmp two-$m/state/optimizer.safetensors again-$m/state/optimizer.safetensors &&
		 curve two-$m > a && curve again-$m > b && cmp a b"
done
ok "sparsedoctor: every rank ends with the same adapter and memory queues (the ranks' state hashes agree)" \
	'jq -e ".ranks == 2 and (.rank_states | length == 2 and (unique | length) == 1)" two-sparsedoctor/state/trainer.json'
ok "one process writes the run: one metrics stream, one checkpoint, no temporary files" \
	'[ $(stream2json -N two-lora/metrics.mpk | wc -l) = 10 ] && ! ls two-lora two-lora/state | grep -q tmp'
ok "3 ranks on micro-batches of 4 sequences (parts of 2, 1, 1): the same within the bound" \
	"mpi 3 train-experts $common --method mingmoe --steps 10 --save-every 5 --recompute -o three shards &&
	 same_curve one-mingmoe three 1e-6 && close_adapter one-mingmoe three 1e-5"

o="$common --method sparsedoctor --steps 10 --save-every 5 --dropout 0.1"
ok "resume: 5 steps on 2 ranks, then 5 on 1 rank, as 10 on 1 rank (within the bound)" \
	"train-experts $o -o r-one shards && mpi 2 train-experts $o --stop-after 5 -o r21 shards &&
	 grep -q '\"step\": 5' r21/state/trainer.json && train-experts $o --resume -o r21 shards &&
	 same_curve r-one r21 1e-6 1e-4 && close_adapter r-one r21 1e-4"
ok "resume: 5 steps on 1 rank, then 5 on 2 ranks, as 10 on 1 rank (within the bound)" \
	"train-experts $o --stop-after 5 -o r12 shards && mpi 2 train-experts $o --resume -o r12 shards &&
	 same_curve r-one r12 1e-6 1e-4 && close_adapter r-one r12 1e-4"
ok "resume on 2 ranks of a 2-rank checkpoint gives the uninterrupted 2-rank bytes" \
	"mpi 2 train-experts $o -o r-two shards && mpi 2 train-experts $o --stop-after 5 -o r22 shards &&
	 mpi 2 train-experts $o --resume -o r22 shards && cmp r-two/adapter.safetensors r22/adapter.safetensors"

# --- failures ---
# Start a long 2-rank run in the background (each rank writes its pid to NAME.pidR, then becomes train-experts);
# wait for its checkpoint of step >= 10; print rank 1's pid.  end_long kills what is left of it.
start_long() {
	rm -rf "$1" "$1".*
	( mpirun --oversubscribe -np 2 sh -c "echo \$\$ > $1.pid\$OMPI_COMM_WORLD_RANK; exec train-experts $common \
		--method lora --steps 100000 --save-every 5 -o $1 shards" > "$1.out" 2>&1; echo $? > "$1.rc" ) > /dev/null 2>&1 &
	for i in $(seq 300); do
		s=$(jq -r .step "$1/state/trainer.json" 2>/dev/null || echo 0)
		[ "${s:-0}" -ge 10 ] 2>/dev/null && break
		sleep 0.1
	done
	cat "$1.pid1"
}
end_long() { for f in "$1".pid*; do kill -9 "$(cat "$f")" 2>/dev/null; done; return 0; }
# Wait (at most 60 s) for the run to end.
wait_end() { for i in $(seq 600); do [ -s "$1.rc" ] && return 0; sleep 0.1; done; return 1; }
ok "a rank killed mid-run ends the job within seconds, with a message naming it" \
	'p=$(start_long killed) && kill -9 $p && wait_end killed; rc=$?; end_long killed; [ $rc = 0 ] &&
	 ! grep -qx 0 killed.rc && cat killed.out >&2 && grep -q "rank 1 .*exited on signal 9" killed.out'
ok "... and its last checkpoint resumes (on 1 rank)" \
	'cp killed/state/trainer.json t.json && s=$(jq .step t.json) &&
	 train-experts $common --method lora --steps 100000 --save-every 5 --stop-after 2 --resume -o killed shards &&
	 [ $(jq .step killed/state/trainer.json) -eq $((s + 2)) ] && ! ls killed killed/state | grep -q tmp'
# long enough that a rank descheduled on a busy machine is not taken for a stopped one
export MEDMOE_DIST_TIMEOUT=10
ok "a rank that stops (SIGSTOP) ends the job on the timeout, with one message naming it" \
	'p=$(start_long stopped) && kill -STOP $p && wait_end stopped; rc=$?; end_long stopped; [ $rc = 0 ] &&
	 cat stopped.out >&2 && [ $(grep -c "waited [0-9]* s for rank 1, which died, stopped or hangs" stopped.out) -eq 1 ]'
unset MEDMOE_DIST_TIMEOUT
ok "... and its last checkpoint resumes (on 2 ranks)" \
	'cp stopped/state/trainer.json t.json && s=$(jq .step t.json) &&
	 mpi 2 train-experts $common --method lora --steps 100000 --save-every 5 --stop-after 2 --resume -o stopped shards &&
	 [ $(jq .step stopped/state/trainer.json) -eq $((s + 2)) ]'
ok_fails 1 "a NaN loss on 2 ranks: one message, from rank 0, and the last checkpoint stays" \
	"mpi 2 train-experts $common --method lora --steps 6 --save-every 1 --lr 1e30 --warmup 0 -o nan shards 2> e;
	 rc=\$?; cat e >&2; [ \$(grep -c NaN e) -eq 1 ] && grep -q 'rank 0: step' e && grep -q '\"step\": 1,' nan/state/trainer.json &&
	 exit \$rc"

# --- eval-exam ---
EV=$FIXTURES/eval
ok "an exam of 40 MedQA-style questions (varied lengths)" \
	"awk 'BEGIN { for (i = 1; i <= 40; i++) { q = \"Question \" i \": which organ\"; for (k = 0; k < i % 7; k++) q = q \" really\";
		l = substr(\"ABCD\", i % 4 + 1, 1); t[\"A\"] = \"kidney \" i; t[\"B\"] = \"liver\"; t[\"C\"] = \"heart\"; t[\"D\"] = \"lung\";
		printf \"{\\\"question\\\": \\\"%s filters blood?\\\", \\\"options\\\": {\\\"A\\\": \\\"%s\\\", \\\"B\\\": \\\"liver\\\", \\\"C\\\": \\\"heart\\\", \\\"D\\\": \\\"lung\\\"}, \\\"answer_idx\\\": \\\"%s\\\", \\\"answer\\\": \\\"%s\\\", \\\"meta_info\\\": \\\"step1\\\"}\\n\", q, t[\"A\"], l, t[l] } }' > q.jsonl &&
	 tokenize -q --exam medqa --tokenizer $EV/model -o exam.mpk q.jsonl && [ \$(stream2json -N exam.mpk | wc -l) = 40 ]"
for np in 2 3; do
	ok "loglik: $np ranks write the single process's predictions, byte for byte (12 packs)" \
		"eval-exam -q --base $EV/model --adapter $EV/lora_run --batch-tokens 400 -o one.pred exam.mpk &&
		 mpi $np eval-exam -q --base $EV/model --adapter $EV/lora_run --batch-tokens 400 -o $np.pred exam.mpk &&
		 cmp one.pred $np.pred"
done
ok "generate: 2 ranks write the single process's predictions, byte for byte" \
	"eval-exam -q --base $EV/model --mode generate --max-new-tokens 6 -o gen1.pred exam.mpk &&
	 mpi 2 eval-exam -q --base $EV/model --mode generate --max-new-tokens 6 -o gen2.pred exam.mpk && cmp gen1.pred gen2.pred"
ok "stdout through mpirun: the same bytes; --limit splits the same way" \
	"mpi 2 eval-exam -q --base $EV/model --adapter $EV/lora_run --batch-tokens 400 exam.mpk > out.pred && cmp one.pred out.pred &&
	 eval-exam -q --base $EV/model --limit 7 exam.mpk > l1.pred && mpi 2 eval-exam -q --base $EV/model --limit 7 exam.mpk > l2.pred &&
	 cmp l1.pred l2.pred"
ok_fails 2 "stdin with several ranks is refused (mpirun gives stdin to rank 0 only), in one message" \
	'mpi 2 eval-exam -q --base $EV/model < exam.mpk > /dev/null 2> e; rc=$?; cat e >&2; [ $(grep -c stdin e) -eq 1 ] && exit $rc'
done_testing
