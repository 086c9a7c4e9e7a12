#!/bin/sh
# mix-tasks: sampling strategies, stable task ids, determinism, bad input.
. "$(dirname "$0")/../lib.sh"

# The test streams come from tests/helpers/mktokens.c (tokenize is not needed here).
ok "build the test stream writer" \
	'cc -std=c11 -O1 -D_GNU_SOURCE -o mktokens "$MEDMOE_TOP/tests/helpers/mktokens.c" $(pkg-config --cflags --libs msgpack)'
mk() { ./mktokens "$@"; }
count_task() { stream2json -N "$1" | grep -c "\"task\":\"$2\""; }

ok "three task streams" \
	'mk -t qa -n 1000 -s 1 > qa.mpk && mk -t dialog -n 100 -s 2 > dialog.mpk && mk -t exam -n 10 -s 3 > exam.mpk'
ok "temperature 2 writes a valid medmoe.tokens stream" \
	'mix-tasks --temperature 2 --seed 7 --stats stats.json -o mixed.mpk qa.mpk dialog.mpk exam.mpk 2> table.txt &&
	 stream2json --validate mixed.mpk > /dev/null'
ok "same seed, same bytes" \
	'mix-tasks --temperature 2 --seed 7 -q -o again.mpk qa.mpk dialog.mpk exam.mpk && cmp mixed.mpk again.mpk'
ok "another seed, other bytes (same counts)" \
	'mix-tasks --temperature 2 --seed 8 -q -o other.mpk qa.mpk dialog.mpk exam.mpk && ! cmp -s mixed.mpk other.mpk &&
	 [ "$(count_task other.mpk exam)" = "$(count_task mixed.mpk exam)" ]'
ok "task ids by sorted name in the header task table" \
	'stream2json -H mixed.mpk | grep -q "\"tasks\":\[{\"name\":\"dialog\",\"id\":0,.*{\"name\":\"exam\",\"id\":1,.*{\"name\":\"qa\",\"id\":2," &&
	 [ "$(stream2json -N mixed.mpk | grep "\"task\":\"exam\"" | grep -vc "\"task_id\":1,")" = 0 ]'
ok "temperature 2 up-samples the small task: p ∝ sqrt(n), output total = input total" \
	'n=$(stream2json -N mixed.mpk | wc -l) && [ "$n" = 1110 ] &&
	 e=$(count_task mixed.mpk exam) && awk -v e="$e" "BEGIN { p = sqrt(10) / (sqrt(1000) + sqrt(100) + sqrt(10)); want = 1110 * p; exit !(e >= want - 1 && e <= want + 1) }"'
ok "stderr table and --stats JSON report inputs and shares" \
	'grep -q "^exam  *1  *10 " table.txt && grep -q "\"input_examples\": 1000" stats.json &&
	 grep -q "\"share\"" stats.json && grep -q "\"examples\": 1110" stats.json'
ok "T=1 (--proportional) keeps every example once" \
	'mix-tasks --proportional --seed 1 -q -o prop.mpk qa.mpk dialog.mpk exam.mpk &&
	 [ "$(count_task prop.mpk qa)" = 1000 ] && [ "$(count_task prop.mpk dialog)" = 100 ] &&
	 [ "$(count_task prop.mpk exam)" = 10 ] && [ "$(stream2json -N prop.mpk | grep -o "\"id\":\"qa:[0-9]*\"" | sort -u | wc -l)" = 1000 ]'
ok "explicit weights with a budget" \
	'mix-tasks --weights qa=2,dialog=1,exam=1 --budget 400 --seed 1 -q -o w.mpk qa.mpk dialog.mpk exam.mpk &&
	 [ "$(count_task w.mpk qa)" = 200 ] && [ "$(count_task w.mpk dialog)" = 100 ] && [ "$(count_task w.mpk exam)" = 100 ]'
ok "--epochs limits up-sampling; the rest goes to the other tasks" \
	'mix-tasks --weights qa=1,dialog=1,exam=1 --budget 300 --epochs exam=2 --seed 1 -q -o e.mpk qa.mpk dialog.mpk exam.mpk &&
	 [ "$(count_task e.mpk exam)" = 20 ] && [ "$(stream2json -N e.mpk | wc -l)" = 300 ]'
ok "--cap-examples takes a random subset" \
	'mix-tasks --cap-examples 50 --seed 3 -q -o cap.mpk qa.mpk dialog.mpk exam.mpk &&
	 [ "$(count_task cap.mpk qa)" = 50 ] && [ "$(count_task cap.mpk exam)" = 10 ] &&
	 stream2json -N cap.mpk | grep -o "\"id\":\"qa:[0-9]*\"" | sort -u | wc -l | grep -qx 50 &&
	 [ "$(stream2json -N cap.mpk | grep -o "\"id\":\"qa:[0-9]\"" | wc -l)" -lt 10 ]'
ok "--cap-tokens bounds a task's tokens" \
	'mix-tasks --cap-tokens 500 --seed 3 -q --stats capt.json -o capt.mpk qa.mpk exam.mpk &&
	 stream2json -N capt.mpk | grep "\"task\":\"qa\"" | grep -o "\"ids\":\[[0-9,]*\]" | tr -cd , | wc -c > commas &&
	 awk -v c="$(cat commas)" -v n="$(count_task capt.mpk qa)" "BEGIN { exit !(c + n <= 500 && n > 5) }"'
ok "carried ids are kept, new tasks take the free ids" \
	'mk -t qa -i 5 -n 20 -T qa=5 > carried.mpk && mix-tasks -q -o c.mpk carried.mpk dialog.mpk exam.mpk &&
	 stream2json -H c.mpk | grep -q "{\"name\":\"dialog\",\"id\":0,.*{\"name\":\"exam\",\"id\":1,.*{\"name\":\"qa\",\"id\":5,"'
ok "a re-mix of a mix keeps its ids" \
	'mix-tasks -q -o remix.mpk mixed.mpk &&
	 [ "$(stream2json -H remix.mpk | grep -o "\"tasks\":\[[^]]*\]" | sed "s/\"examples\":[0-9]*,\"tokens\":[0-9]*//g")" = \
	   "$(stream2json -H mixed.mpk | grep -o "\"tasks\":\[[^]]*\]" | sed "s/\"examples\":[0-9]*,\"tokens\":[0-9]*//g")" ]'

ok_fails 65 "a name/id conflict between task tables names both files" \
	'mk -t qa -i 1 -n 5 -T qa=1 > x.mpk && mk -t qa -i 2 -n 5 -T qa=2 > y.mpk && mix-tasks -o bad.mpk x.mpk y.mpk 2> err;
	 s=$?; cat err >&2; grep -q "x.mpk" err && grep -q "y.mpk" err && exit $s'
ok_fails 65 "one id for two names across task tables" \
	'mk -t qa -i 1 -n 5 -T qa=1 > x.mpk && mk -t chat -i 1 -n 5 -T chat=1 > z.mpk && mix-tasks -o bad.mpk x.mpk z.mpk'
ok_fails 65 "one name with two task_ids inside a file" \
	'mk -t qa -i 1 -a 2 -n 4 > twoids.mpk && mix-tasks -o bad.mpk twoids.mpk 2> err; s=$?; cat err >&2;
	 grep -q "twoids.mpk: record 2: task_id" err && exit $s'
ok_fails 65 "records that disagree with their own task table" \
	'mk -t qa -i 3 -n 4 -T qa=1 > disagree.mpk && mix-tasks -o bad.mpk disagree.mpk'
ok_fails 65 "a record whose task its file's table does not list" \
	'mk -t qa -n 3 -T other=1 > unlisted.mpk && mix-tasks -o bad.mpk unlisted.mpk'
ok_fails 65 "mixed tokenizers are refused, naming both files" \
	'mk -t other -k $(printf "c%.0s" $(seq 64)) -n 5 > other.mpk && mix-tasks -o bad.mpk qa.mpk other.mpk 2> err;
	 s=$?; cat err >&2; grep -q "other.mpk" err && grep -q "qa.mpk" err && exit $s'
ok_fails 65 "a stream of another schema is refused" \
	'mk -S medmoe.exam -n 3 > exam-schema.mpk && mix-tasks -o bad.mpk qa.mpk exam-schema.mpk'
ok_fails 65 "a truncated stream is a clear error" \
	'head -c $(( $(wc -c < dialog.mpk) - 7 )) dialog.mpk > cut.mpk && mix-tasks -o bad.mpk qa.mpk cut.mpk 2> err;
	 s=$?; cat err >&2; grep -q "cut.mpk: record 100: truncated" err && exit $s'
ok "no output is left behind by a failed run" \
	'[ ! -e bad.mpk ] && [ -z "$(ls | grep tmp)" ]'
ok_fails 2 "stdin is refused: records are read back by offset" 'mix-tasks -o bad.mpk - < qa.mpk'
ok_fails 2 "--weights must name every task" 'mix-tasks --weights qa=1 -o bad.mpk qa.mpk dialog.mpk'
ok_fails 2 "strategies exclude each other" 'mix-tasks --temperature 2 --proportional qa.mpk'
ok "--help prints the synopsis" 'mix-tasks --help | grep -q "^usage: mix-tasks .*--temperature T"'
# The man page's SYNOPSIS, whitespace folded, is what --help prints.
ok "usage matches the man page SYNOPSIS" \
	'mandoc -Tascii -O width=400 "$MEDMOE_TOP/man/mix-tasks.1" | sed "s/.\\x08//g" | sed -n "/^SYNOPSIS/,/^DESCRIPTION/p" |
	 sed "1d;\$d" | tr -s " \n" "  " | sed "s/^ //; s/ \$//" > synopsis &&
	 mix-tasks --help | sed "s/^usage: //" | tr -s " \n" "  " | sed "s/^ //; s/ \$//" > usage && diff synopsis usage'
ok "the man page is mandoc -Tlint clean" 'mandoc -Tlint -W warning "$MEDMOE_TOP/man/mix-tasks.1"'
done_testing
