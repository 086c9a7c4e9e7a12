// test_corpus.c — corpus reading: every instruction corpus in $MEDMOE_SHARED/data (record counts from its
// README's Files table, a few exact field values), archives built at test time, encodings, column
// mappings, and the refusals (exit 65 in a forked child, with the message checked).
#include "unit.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "colmap.h"
#include "corpus.h"
#include "die.h"
#include "textsrc.h"

// ---- Helpers.

struct convs {
	struct conversation *v;
	size_t n;
	size_t skipped;
};

static struct convs read_all(const char *path, const struct corpus_opts *opts)
{
	struct convs all = { 0 };
	struct corpus *c = corpus_open(path, opts);
	struct conversation conv;
	size_t cap = 0;
	while (corpus_next(c, &conv)) {
		if (all.n == cap) {
			cap = cap ? 2 * cap : 256;
			all.v = xrealloc(all.v, cap * sizeof *all.v);
		}
		all.v[all.n++] = conv;
	}
	all.skipped = corpus_skipped(c);
	corpus_close(c);
	return all;
}

static void convs_free(struct convs *all)
{
	for (size_t i = 0; i < all->n; i++)
		conversation_free(&all->v[i]);
	free(all->v);
	memset(all, 0, sizeof *all);
}

static char data_dir[4096];

// Skips (loudly) when the shared data is absent.
static int need_data(void)
{
	struct stat st;
	snprintf(data_dir, sizeof data_dir, "%s/data", unit_shared_dir());
	if (stat(data_dir, &st) != 0) {
		fprintf(stderr, "# SKIP: %s is absent (set MEDMOE_SHARED): real-corpus test skipped\n", data_dir);
		return 0;
	}
	return 1;
}

static char *data_path(const char *rel)
{
	return xasprintf("%s/%s", data_dir, rel);
}

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

// Checks conversation I of ALL has the roles ROLES ("ua" = user, assistant; "s", "t" likewise).
static void check_roles(const struct convs *all, size_t i, const char *roles)
{
	const struct conversation *c = &all->v[i];
	char got[64] = "";
	for (int k = 0; k < c->n_turns && k < 63; k++)
		got[k] = "suat"[c->turns[k].role];
	if (strcmp(got, roles) != 0)
		fail_msg("record %ld (%s): roles '%s', expected '%s'", c->record, c->id, got, roles);
}

static char tmp_dir[256];

static void make_tmp_dir(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(tmp_dir, sizeof tmp_dir, "%s/test_corpus.XXXXXX", base);
	assert_non_null(mkdtemp(tmp_dir));
}

static void remove_tmp_dir(void)
{
	char *cmd = xasprintf("rm -rf '%s'", tmp_dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static char *write_tmp(const char *name, const char *bytes, size_t len)
{
	char *path = xasprintf("%s/%s", tmp_dir, name);
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(bytes, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	return path;
}

static void run_sh(const char *fmt, const char *a, const char *b, const char *c)
{
	char *cmd = xasprintf(fmt, a, b, c);
	int rc = system(cmd);
	if (rc != 0)
		fail_msg("command failed (%d): %s", rc, cmd);
	free(cmd);
}

// Reads PATH with OPTS in a forked child and expects exit 65 with WANT in its stderr.
static void expect_refusal(const char *path, const struct corpus_opts *opts, const char *want)
{
	char errfile[300];
	snprintf(errfile, sizeof errfile, "%s/stderr.XXXXXX", tmp_dir);
	int fd = mkstemp(errfile);
	assert_true(fd >= 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd, 2);
		struct convs all = read_all(path, opts);
		fprintf(stderr, "read %zu records without an error\n", all.n);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	char msg[2048] = "";
	ssize_t n = pread(fd, msg, sizeof msg - 1, 0);
	msg[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(errfile);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != EXIT_DATA)
		fail_msg("%s: expected exit 65, got status %d; stderr: %s", path, status, msg);
	if (!strstr(msg, want))
		fail_msg("%s: stderr lacks '%s': %s", path, want, msg);
}

// ---- Real corpora (counts: shared/data/README.md, Files table).

static void test_chatdoctor5k_alpaca_array(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *path = data_path("chatdoctor/chatdoctor5k.json");
	struct corpus_opts opts = { 0 };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 5452);
	for (size_t i = 0; i < all.n; i++)
		check_roles(&all, i, "ua");
	// user = instruction + "\n" + input (non-empty input)
	assert_string_equal(all.v[0].turns[0].text,
			    "If you are a doctor, please answer the medical questions based on the patient's description.\n"
			    "Doctor, I have been experiencing sudden and frequent panic attacks. I don't know what to do.");
	assert_true(starts_with(all.v[0].turns[1].text, "Well, based on what you're telling me, it sounds like you may"));
	char *id = xasprintf("%s:1", path);
	assert_string_equal(all.v[0].id, id);
	assert_null(all.v[0].task_hint);
	assert_int_equal(all.v[5451].record, 5452);
	free(id);
	convs_free(&all);
	free(path);
}

static void test_medical_meadow_alpaca_array(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *path = data_path("medical_meadow/medical_meadow_small.json");
	struct corpus_opts opts = { 0 };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 5942);
	check_roles(&all, 0, "ua");
	assert_string_equal(all.v[0].turns[0].text, "Answer this question truthfully\nWhat are the symptoms of Allergy?");
	assert_true(starts_with(all.v[0].turns[1].text, "Allergy symptoms vary, but may include:\nBreathing problems"));
	convs_free(&all);
	free(path);
}

static void test_huatuo_llama_data_jsonl_named_json(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *path = data_path("huatuo_llama_med_chinese/data/llama_data.json");
	struct corpus_opts opts = { 0 };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 8658);
	check_roles(&all, 8657, "ua");
	// input is always "": no "\n" appended
	assert_string_equal(all.v[0].turns[0].text,
			    "一名年龄在70岁的女性，出现了晕厥、不自主颤抖、情绪不稳等症状，请详细说明其手术治疗和术前准备。");
	assert_true(starts_with(all.v[0].turns[1].text, "该病需要进行电极导线、脉冲发生器和永久心脏起搏器置入术"));
	assert_int_equal(all.v[8657].record, 8658);  // JSON Lines: record = line number
	convs_free(&all);
	free(path);
}

static void test_huatuo_liver_cancer_array_with_ids(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *path = data_path("huatuo_llama_med_chinese/data-literature/liver_cancer.json");
	struct corpus_opts opts = { 0 };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 1000);
	size_t own_ids = 0;
	for (size_t i = 0; i < all.n; i++)
		own_ids += strchr(all.v[i].id, ':') == NULL;
	assert_int_equal(own_ids, 211);  // 211 items carry an integer id
	assert_string_equal(all.v[1].id, "748");
	assert_string_equal(all.v[2].id, "279");
	assert_true(starts_with(all.v[0].turns[0].text, " <user>: 我听说免疫疗法是治疗晚期肝癌的一种很有效的方法"));
	assert_string_equal(all.v[0].turns[1].text,
			    "不是所有的肝癌患者都适合进行免疫疗法。根据患者的临床表现和病情，医生会对患者进行评估，从而选择最适合的治疗方案。");
	convs_free(&all);
	free(path);
}

static void test_medicalgpt_sharegpt_jsonl(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *path = data_path("medicalgpt_sft/data/sft/medical_sft_1K_format.jsonl");
	struct corpus_opts opts = { 0 };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 1000);
	for (size_t i = 0; i < all.n; i++)
		check_roles(&all, i, "ua");
	assert_true(starts_with(all.v[0].turns[0].text, "治疗阳痿吃什么药呢？，性生活一直很正常的"));
	assert_true(starts_with(all.v[0].turns[1].text, "男子早泄、早泄病症的再次发生"));
	convs_free(&all);
	free(path);
}

static void test_promptcblue_input_target(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *train = data_path("promptcblue/toy_examples/train.json");
	char *test = data_path("promptcblue/toy_examples/test.json");
	struct corpus_opts opts = { 0 };
	struct convs tr = read_all(train, &opts), te = read_all(test, &opts);
	assert_int_equal(tr.n, 80);
	assert_int_equal(te.n, 80);
	assert_string_equal(tr.v[0].id, "train-35923");  // sample_id
	assert_string_equal(tr.v[0].task_hint, "CHIP-CTC");  // task_dataset
	assert_string_equal(tr.v[0].turns[1].text, "风险评估");
	assert_true(starts_with(tr.v[0].turns[0].text, "3）汉密尔顿抑郁量表17项（HAMD-17）评分≥18分；\n是什么临床试验筛选标准类型？"));
	assert_string_equal(te.v[0].id, "test-3984");
	// 16 CBLUE tasks x 5 examples
	const char *tasks[80];
	int n_tasks = 0;
	for (size_t i = 0; i < tr.n; i++) {
		assert_non_null(tr.v[i].task_hint);
		int k;
		for (k = 0; k < n_tasks && strcmp(tasks[k], tr.v[i].task_hint) != 0; k++)
			;
		if (k == n_tasks)
			tasks[n_tasks++] = tr.v[i].task_hint;
	}
	assert_int_equal(n_tasks, 16);
	// test.json: every target is "" and still an (empty) assistant turn
	for (size_t i = 0; i < te.n; i++) {
		check_roles(&te, i, "ua");
		assert_int_equal(te.v[i].turns[1].len, 0);
	}
	convs_free(&tr);
	convs_free(&te);
	free(train);
	free(test);
}

static void test_covid_english_txt(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *path = data_path("covid_dialogue/COVID-Dialogue-Dataset-English.txt");
	struct corpus_opts opts = { 0 };
	struct convs all = read_all(path, &opts);
	// 604 id= blocks, 603 distinct ids: id=18 names two different dialogues, the second becomes "18#2".
	assert_int_equal(all.n, 604);
	size_t turns = 0, distinct = 0, with_cr = 0;
	for (size_t i = 0; i < all.n; i++) {
		const struct conversation *c = &all.v[i];
		distinct += strchr(c->id, '#') == NULL;
		turns += (size_t)c->n_turns;
		for (int k = 0; k < c->n_turns; k++)
			with_cr += strchr(c->turns[k].text, '\r') != NULL;
		// Turns alternate, except in id=19 where two doctors answer in a row (kept as two turns).
		char alternating[64] = "";
		for (int k = 0; k < c->n_turns && k < 63; k++)
			alternating[k] = k % 2 ? 'a' : 'u';
		check_roles(&all, i, strcmp(c->id, "19") == 0 ? "uaa" : alternating);
	}
	assert_int_equal(distinct, 603);
	assert_int_equal(turns, 616 + 616);  // "Patient:" and "Doctor:" lines in the file
	assert_int_equal(with_cr, 0);        // bare '\r' became '\n'
	assert_string_equal(all.v[0].id, "1");
	assert_string_equal(all.v[17].id, "18");
	assert_string_equal(all.v[18].id, "18#2");
	assert_true(starts_with(all.v[17].turns[1].text, "In brief: Unlikely\nNot at this point."));
	assert_true(starts_with(all.v[18].turns[0].text, "True or false? Anyone infected with COVID-19"));
	assert_true(starts_with(all.v[0].turns[0].text, "Hello doctor, I get a cough for the last few days, which is heavy"));
	// lines of one turn stay lines
	assert_true(starts_with(all.v[0].turns[1].text,
				"Hello, I understand your concern. I just have a few more questions.\nDoes your cough has phlegm?"));
	convs_free(&all);
	free(path);
}

static void test_covid_chinese_utterance_arrays(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *train = data_path("covid_dialogue/CovidDialog/Chinese-COVID-dialogue-code/data/train_data.json");
	char *valid = data_path("covid_dialogue/CovidDialog/Chinese-COVID-dialogue-code/data/validate_data.json");
	struct corpus_opts opts = { 0 };
	struct convs tr = read_all(train, &opts), va = read_all(valid, &opts);
	assert_int_equal(tr.n, 870);
	assert_int_equal(va.n, 109);
	size_t turns = 0;
	for (size_t i = 0; i < tr.n; i++) {
		turns += (size_t)tr.v[i].n_turns;
		for (int k = 0; k < tr.v[i].n_turns; k++)
			assert_int_equal(tr.v[i].turns[k].role, k % 2 ? ROLE_ASSISTANT : ROLE_USER);
	}
	assert_int_equal(turns, 3922 + 3922);
	// the 病人：/医生： prefixes are gone
	assert_true(starts_with(tr.v[0].turns[0].text, "今年1月初以来，出现左侧口角流口水"));
	assert_string_equal(tr.v[0].turns[1].text, "呛咳病程多久了？神志清醒？");
	convs_free(&tr);
	convs_free(&va);
	free(train);
	free(valid);
}

static const char *toyhom_csv = "chinese_medical_dialogue/样例_内科5000-6000.csv";

static void test_chinese_medical_dialogue_gb18030_csv(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	char *path = data_path(toyhom_csv);
	struct corpus_opts opts = { .encoding = "GB18030" };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 7644);
	check_roles(&all, 0, "ua");
	// default mapping user=title+ask, assistant=answer
	assert_string_equal(all.v[0].turns[0].text,
			    "高血压患者能吃党参吗？\n我有高血压这两天女婿来的时候给我拿了些党参泡水喝，您好高血压可以吃党参吗？");
	assert_true(starts_with(all.v[0].turns[1].text, "高血压病人可以口服党参的。党参有降血脂，降血压的作用"));
	// a bare quote inside an unquoted field is kept (row 5112), as Python's csv reads it
	assert_string_equal(all.v[5111].turns[0].text, "小三阳如何是好呢?\n小三阳如何是好。健康检查报告说小三阳\"如何治疗");
	convs_free(&all);
	// Read as UTF-8 it is refused, naming the column.
	make_tmp_dir();
	struct corpus_opts utf8 = { 0 };
	expect_refusal(path, &utf8, "record 1: department: invalid UTF-8");
	remove_tmp_dir();
	free(path);
}

static void test_chatdoctor_csvs_with_documented_columns(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	struct {
		const char *file, *columns;
		size_t rows;
	} csvs[] = {
		{ "chatdoctor/format_dataset.csv", "id=idx,user=Symptom,assistant=disease+reason+TestsAndProcedures+commonMedications", 796 },
		{ "chatdoctor/Autonomous_ChatDoctor_csv/disease_symptom.csv", "user=Symptom,assistant=disease", 12 },
		{ "chatdoctor/Autonomous_ChatGPT_API/disease_database_mini.csv",
		  "id=idx,user=Symptom,assistant=disease+Medical Tests+Medications", 100 },
	};
	make_tmp_dir();
	for (size_t f = 0; f < sizeof csvs / sizeof csvs[0]; f++) {
		char *path = data_path(csvs[f].file);
		struct corpus_opts none = { 0 }, opts = { .columns = csvs[f].columns };
		expect_refusal(path, &none, "no default column mapping fits");
		struct convs all = read_all(path, &opts);
		assert_int_equal(all.n, csvs[f].rows);
		for (size_t i = 0; i < all.n; i++)
			check_roles(&all, i, "ua");
		if (f == 0) {
			assert_string_equal(all.v[0].id, "0");
			assert_true(starts_with(all.v[0].turns[0].text, "['Anxiety and nervousness', 'Depression', "));
			assert_true(starts_with(all.v[0].turns[1].text, "Panic disorder\nPanic disorder is an anxiety disorder"));
			assert_string_equal(all.v[795].id, "795");
		} else if (f == 1) {
			assert_string_equal(all.v[11].turns[1].text, "Tooth disorder");
			assert_string_equal(all.v[0].turns[1].text, "Endophthalmitis");
		} else {
			assert_string_equal(all.v[99].id, "99");
			assert_true(starts_with(all.v[0].turns[1].text, "Panic disorder\n['Psychotherapy', 'Mental health counseling'"));
		}
		convs_free(&all);
		free(path);
	}
	remove_tmp_dir();
}

// ---- Archives, built at test time from real corpus files.

// Same turns in the same order (ids differ: they name the source).
static void assert_same_turns(const struct convs *a, const struct convs *b, size_t offset)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct conversation *x = &a->v[i], *y = &b->v[offset + i];
		assert_int_equal(x->n_turns, y->n_turns);
		for (int k = 0; k < x->n_turns; k++) {
			assert_int_equal(x->turns[k].role, y->turns[k].role);
			if (x->turns[k].len != y->turns[k].len || memcmp(x->turns[k].text, y->turns[k].text, x->turns[k].len))
				fail_msg("record %zu turn %d differs: %s vs %s", i + 1, k, x->id, y->id);
		}
	}
}

static void test_archives(void **state)
{
	(void)state;
	if (!need_data())
		skip();
	make_tmp_dir();
	char *sft = data_path("medicalgpt_sft/data/sft/medical_sft_1K_format.jsonl");
	char *pcb = data_path("promptcblue/toy_examples/train.json");
	struct corpus_opts plain = { 0 };
	struct convs want_sft = read_all(sft, &plain), want_pcb = read_all(pcb, &plain);
	// A tree: d/medical_sft.jsonl, d/sub/train.json and a README.txt that is not a corpus.
	run_sh("mkdir -p '%s/d/sub' && cp '%s' '%s/d/medical_sft.jsonl'", tmp_dir, sft, tmp_dir);
	run_sh("cp '%s' '%s/d/sub/train.json' && echo 'not a corpus' > '%s/d/README.txt'", pcb, tmp_dir, tmp_dir);
	run_sh("cd '%s' && zip -qr c.zip d && tar czf c.tar.gz d && tar cJf c.tar.xz d%s", tmp_dir, "", "");
	run_sh("cd '%s' && tar cf - d | zstd -q -o c.tar.zst%s%s", tmp_dir, "", "");
	const char *names[] = { "c.zip", "c.tar.gz", "c.tar.xz", "c.tar.zst" };
	for (size_t a = 0; a < 4; a++) {
		char *path = xasprintf("%s/%s", tmp_dir, names[a]);
		struct convs all = read_all(path, &plain);
		assert_int_equal(all.n, 1000 + 80);
		// archive order: zip and tar keep the order members were added; find which came first
		size_t sft_at = strstr(all.v[0].id, "medical_sft.jsonl") ? 0 : 80;
		assert_same_turns(&want_sft, &all, sft_at);
		assert_same_turns(&want_pcb, &all, sft_at ? 0 : 1000);
		char *id = xasprintf("%s:d/medical_sft.jsonl:1", path);  // the default id names "archive:member"
		assert_string_equal(all.v[sft_at].id, id);
		assert_string_equal(all.v[sft_at ? 0 : 1000].id, "train-35923");
		free(id);
		convs_free(&all);
		// --member selects by glob
		struct corpus_opts glob = { .member = "*/sub/*.json" };
		all = read_all(path, &glob);
		assert_int_equal(all.n, 80);
		assert_same_turns(&want_pcb, &all, 0);
		convs_free(&all);
		struct corpus_opts none = { .member = "*.csv" };
		expect_refusal(path, &none, "no member matches '*.csv'");
		free(path);
	}
	// One compressed file, not an archive.
	run_sh("cd '%s' && gzip -c d/medical_sft.jsonl > sft.jsonl.gz && xz -c d/sub/train.json > train.json.xz%s", tmp_dir, "", "");
	char *gz = xasprintf("%s/sft.jsonl.gz", tmp_dir), *xz = xasprintf("%s/train.json.xz", tmp_dir);
	struct convs all = read_all(gz, &plain);
	assert_int_equal(all.n, 1000);
	assert_same_turns(&want_sft, &all, 0);
	convs_free(&all);
	all = read_all(xz, &plain);
	assert_int_equal(all.n, 80);
	assert_same_turns(&want_pcb, &all, 0);
	convs_free(&all);
	// A truncated archive: the member cannot be read.
	run_sh("cd '%s' && head -c 300000 c.tar.gz > cut.tar.gz%s%s", tmp_dir, "", "");
	char *cut = xasprintf("%s/cut.tar.gz", tmp_dir);
	expect_refusal(cut, &plain, "cut.tar.gz");
	// The GB18030 CSV inside a zip, converted on the way.
	char *toyhom = data_path(toyhom_csv);
	run_sh("cp '%s' '%s/toyhom.csv' && cd '%s' && zip -q t.zip toyhom.csv", toyhom, tmp_dir, tmp_dir);
	char *tzip = xasprintf("%s/t.zip", tmp_dir);
	struct corpus_opts gb = { .encoding = "GB18030" };
	all = read_all(tzip, &gb);
	assert_int_equal(all.n, 7644);
	assert_true(starts_with(all.v[0].turns[0].text, "高血压患者能吃党参吗？\n"));
	convs_free(&all);
	free(toyhom);
	free(tzip);
	free(cut);
	free(gz);
	free(xz);
	convs_free(&want_sft);
	convs_free(&want_pcb);
	free(sft);
	free(pcb);
	remove_tmp_dir();
}

// ---- Shapes and options on small files.

static void test_json_shapes(void **state)
{
	(void)state;
	make_tmp_dir();
	const char *lines =
		"\xEF\xBB\xBF{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
		"{\"role\":\"assistant\",\"content\":\"Hello\"}],\"id\":\"m1\"}\r\n"
		"\n"
		"{\"conversations\":[{\"from\":\"system\",\"value\":\"S\"},{\"from\":\"human\",\"value\":\"Q1\"},"
		"{\"from\":\"gpt\",\"value\":\"A1\"},{\"from\":\"human\",\"value\":\"Q2\"},{\"from\":\"gpt\",\"value\":\"A2\"}]}\n"
		"{\"prompt\":\"P\",\"response\":\"R\",\"task\":\"qa\",\"idx\":7}\n"
		"{\"text\":\"plain text\"}\n"
		"{\"instruction\":\"I\",\"input\":\"X\",\"output\":\"O\",\"system\":\"sys\"}\n"
		"[\"Patient: cough\",\"Doctor: rest\"]\n";
	char *path = write_tmp("shapes.jsonl", lines, strlen(lines));
	struct corpus_opts opts = { 0 };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 6);
	check_roles(&all, 0, "sua");
	assert_string_equal(all.v[0].id, "m1");
	assert_string_equal(all.v[0].turns[2].text, "Hello");
	check_roles(&all, 1, "suaua");
	assert_int_equal(all.v[1].record, 3);  // line numbers, the blank line counted
	assert_string_equal(all.v[1].turns[4].text, "A2");
	check_roles(&all, 2, "ua");
	assert_string_equal(all.v[2].id, "7");
	assert_string_equal(all.v[2].task_hint, "qa");
	check_roles(&all, 3, "t");
	assert_string_equal(all.v[3].turns[0].text, "plain text");
	check_roles(&all, 4, "sua");
	assert_string_equal(all.v[4].turns[1].text, "I\nX");
	check_roles(&all, 5, "ua");
	assert_string_equal(all.v[5].turns[0].text, "cough");
	convs_free(&all);
	// The same from standard input ("-"): the child exits with the number of records it read.
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDONLY);
		if (fd < 0 || dup2(fd, 0) < 0)
			_exit(100);
		struct convs in = read_all("-", &opts);
		_exit(in.n == 6 && strcmp(in.v[1].turns[4].text, "A2") == 0 ? 6 : 101);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 6);
	// An explicit mapping overrides detection.
	const char *qa = "[{\"q\":\"why\",\"a\":\"because\",\"note\":\"n\",\"key\":\"k1\"}]";
	char *qa_path = write_tmp("qa.json", qa, strlen(qa));
	struct corpus_opts map = { .columns = "user=q+note,assistant=a,id=key" };
	all = read_all(qa_path, &map);
	assert_int_equal(all.n, 1);
	assert_string_equal(all.v[0].turns[0].text, "why\nn");
	assert_string_equal(all.v[0].id, "k1");
	convs_free(&all);
	free(qa_path);
	free(path);
	remove_tmp_dir();
}

static void test_csv_quoting_crlf_and_defaults(void **state)
{
	(void)state;
	make_tmp_dir();
	const char *csv = "ID,Question,Answer\r\n1,\"two\r\nlines, one comma\",\" kept spaces \"\r\n2,\"say \"\"hi\"\"\",ok";
	char *path = write_tmp("qa.csv", csv, strlen(csv));
	struct corpus_opts opts = { 0 };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 2);
	assert_string_equal(all.v[0].id, "1");  // an id column is taken (case-insensitive header)
	assert_string_equal(all.v[0].turns[0].text, "two\r\nlines, one comma");
	assert_string_equal(all.v[0].turns[1].text, " kept spaces ");
	assert_string_equal(all.v[1].turns[0].text, "say \"hi\"");
	assert_string_equal(all.v[1].turns[1].text, "ok");  // no final newline
	convs_free(&all);
	// A multi-turn mapping with an optional system column that is absent.
	struct corpus_opts map = { .columns = "system=sys?,user=Question,assistant=Answer,user=Answer" };
	all = read_all(path, &map);
	check_roles(&all, 0, "uau");
	convs_free(&all);
	// Format forced, from stdin-like unnamed file.
	char *noext = write_tmp("data", csv, strlen(csv));
	struct corpus_opts forced = { .format = "csv" };
	all = read_all(noext, &forced);
	assert_int_equal(all.n, 2);
	convs_free(&all);
	free(noext);
	free(path);
	remove_tmp_dir();
}

static void test_encodings(void **state)
{
	(void)state;
	make_tmp_dir();
	// "病人咳嗽" and "医生" in GB18030, a JSON Lines file.
	const char *gb = "{\"prompt\":\"\xB2\xA1\xC8\xCB\xBF\xC8\xCB\xD4\",\"response\":\"\xD2\xBD\xC9\xFA\"}\n";
	char *path = write_tmp("gb.jsonl", gb, strlen(gb));
	struct corpus_opts opts = { .encoding = "GB18030" };
	struct convs all = read_all(path, &opts);
	assert_int_equal(all.n, 1);
	assert_string_equal(all.v[0].turns[0].text, "病人咳嗽");
	assert_string_equal(all.v[0].turns[1].text, "医生");
	convs_free(&all);
	// Latin-1 CSV.
	const char *latin = "question,answer\nna\xEFve?,caf\xE9\n";
	char *lpath = write_tmp("latin.csv", latin, strlen(latin));
	struct corpus_opts l1 = { .encoding = "ISO-8859-1" };
	all = read_all(lpath, &l1);
	assert_string_equal(all.v[0].turns[0].text, "naïve?");
	assert_string_equal(all.v[0].turns[1].text, "café");
	convs_free(&all);
	// UTF-16LE with its BOM; the sniffing sees the converted text.
	char u16[64];
	const char *ascii = "[{\"text\":\"hi\"}]";
	size_t n = 0;
	u16[n++] = (char)0xFF;
	u16[n++] = (char)0xFE;
	for (const char *p = ascii; *p; p++) {
		u16[n++] = *p;
		u16[n++] = 0;
	}
	char *upath = write_tmp("u16.json", u16, n);
	struct corpus_opts u = { .encoding = "UTF-16" };
	all = read_all(upath, &u);
	assert_int_equal(all.n, 1);
	assert_string_equal(all.v[0].turns[0].text, "hi");
	convs_free(&all);
	// A byte that is not GB18030 at all.
	const char *bad = "{\"text\":\"\xFF\xFF\"}\n";
	char *bpath = write_tmp("bad.jsonl", bad, strlen(bad));
	expect_refusal(bpath, &opts, "not valid GB18030");
	free(bpath);
	free(upath);
	free(lpath);
	free(path);
	remove_tmp_dir();
}

// ---- Refusals, and skip_bad.

static void test_refusals_and_skip_bad(void **state)
{
	(void)state;
	make_tmp_dir();
	struct corpus_opts opts = { 0 }, skip = { .skip_bad = 1 };
	struct convs all;

	const char *malformed = "{\"text\":\"a\"}\n{\"text\":\"b\"}\n{\"text\": \"c\"\n{\"text\":\"d\"}\n";
	char *p1 = write_tmp("malformed.jsonl", malformed, strlen(malformed));
	expect_refusal(p1, &opts, "malformed.jsonl: record 3: malformed JSON");
	all = read_all(p1, &skip);
	assert_int_equal(all.n, 3);
	assert_int_equal(all.skipped, 1);
	assert_string_equal(all.v[2].turns[0].text, "d");
	convs_free(&all);

	const char *missing = "{\"instruction\":\"i\",\"output\":\"o\"}\n{\"instruction\":\"i\",\"input\":\"x\"}\n";
	char *p2 = write_tmp("missing.jsonl", missing, strlen(missing));
	struct corpus_opts map = { .columns = "user=instruction+input?,assistant=output" };
	expect_refusal(p2, &map, "missing.jsonl: record 2: output: missing");
	expect_refusal(p2, &opts, "record 2: no known record shape (keys: instruction, input)");
	map.skip_bad = 1;
	all = read_all(p2, &map);
	assert_int_equal(all.n, 1);
	assert_int_equal(all.skipped, 1);
	convs_free(&all);

	const char *bad_utf8 = "{\"conversations\":[{\"from\":\"human\",\"value\":\"ok\"}]}\n"
			       "{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"gpt\",\"value\":\"b\xC3(\"}]}\n";
	char *p3 = write_tmp("bad_utf8.jsonl", bad_utf8, strlen(bad_utf8));
	expect_refusal(p3, &opts, "bad_utf8.jsonl: record 2: conversations[1].value: invalid UTF-8");
	all = read_all(p3, &skip);
	assert_int_equal(all.n, 1);
	assert_int_equal(all.skipped, 1);
	convs_free(&all);

	const char *bad_array = "[{\"text\":\"a\"},\n {\"instruction\":\"i\",\"input\":\"\xE9t\xE9\",\"output\":\"o\"}]";
	char *p4 = write_tmp("bad_array.json", bad_array, strlen(bad_array));
	expect_refusal(p4, &opts, "bad_array.json: record 2: input: invalid UTF-8");

	const char *bad_csv = "question,answer\nq1,a1\nq2\n\"q3\",\"a\xFF\"\n";
	char *p5 = write_tmp("bad.csv", bad_csv, strlen(bad_csv));
	expect_refusal(p5, &opts, "bad.csv: record 2: 1 fields, the header has 2");
	all = read_all(p5, &skip);
	assert_int_equal(all.n, 1);
	assert_int_equal(all.skipped, 2);  // the short row and the invalid UTF-8 one
	convs_free(&all);

	const char *open_quote = "question,answer\nq1,\"never closed\n";
	char *p6 = write_tmp("open.csv", open_quote, strlen(open_quote));
	expect_refusal(p6, &opts, "open.csv: record 1: CSV:");

	const char *bad_speaker = "{\"conversations\":[{\"from\":\"narrator\",\"value\":\"x\"}]}\n";
	char *p7 = write_tmp("speaker.jsonl", bad_speaker, strlen(bad_speaker));
	expect_refusal(p7, &opts, "record 1: conversations[0].from: unknown speaker 'narrator'");

	const char *no_dialogue = "id=1\nhttp://x\n\nDescription\nd\n\nid=2\nurl\nDialogue\nPatient:\nq\nDoctor:\na\n";
	char *p8 = write_tmp("covid.txt", no_dialogue, strlen(no_dialogue));
	expect_refusal(p8, &opts, "covid.txt: record 1: Dialogue: missing");
	all = read_all(p8, &skip);
	assert_int_equal(all.n, 1);
	assert_string_equal(all.v[0].id, "2");
	convs_free(&all);

	char *p9 = write_tmp("unknown.dat", "hello\n", 6);
	expect_refusal(p9, &opts, "cannot tell the format");

	free(p1);
	free(p2);
	free(p3);
	free(p4);
	free(p5);
	free(p6);
	free(p7);
	free(p8);
	free(p9);
	remove_tmp_dir();
}

// ---- Pieces.

static void test_colmap_parse(void **state)
{
	(void)state;
	struct colmap m;
	char err[200];
	assert_int_equal(colmap_parse("system=s?,user=title+ask,assistant=answer,id=k,task=t", &m, err, sizeof err), 0);
	assert_int_equal(m.n_items, 5);
	assert_int_equal(m.items[0].role, ROLE_SYSTEM);
	assert_true(m.items[0].fields[0].optional);
	assert_int_equal(m.items[1].n_fields, 2);
	assert_string_equal(m.items[1].fields[1].name, "ask");
	assert_int_equal(m.items[3].target, MAP_ID);
	colmap_free(&m);
	assert_int_equal(colmap_parse("user=a,bot=b", &m, err, sizeof err), -1);
	assert_non_null(strstr(err, "unknown role 'bot'"));
	assert_int_equal(colmap_parse("id=a", &m, err, sizeof err), -1);
	assert_non_null(strstr(err, "no turn"));
	assert_int_equal(colmap_parse("user", &m, err, sizeof err), -1);
	assert_int_equal(colmap_parse("user=", &m, err, sizeof err), -1);
	assert_int_equal(colmap_parse("id=a+b,user=c", &m, err, sizeof err), -1);
	for (int k = 0; k < colmap_n_defaults; k++) {
		assert_int_equal(colmap_parse(colmap_default_specs[k], &m, err, sizeof err), 0);
		colmap_free(&m);
	}
}

static void test_utf8_check(void **state)
{
	(void)state;
	struct {
		const char *s;
		size_t at;
	} cases[] = {
		{ "plain", 5 }, { "é中😀", 9 }, { "a\xC3", 1 }, { "ab\xC0\xAF", 2 },     // truncated, overlong '/'
		{ "\xED\xA0\x80", 0 },                                              // a surrogate
		{ "x\xF4\x90\x80\x80", 1 },                                         // above U+10FFFF
		{ "\xE0\x80\xAF", 0 }, { "ok\xF0\x9F\x98", 2 }, { "\x80", 0 }, { "\xF5\x80\x80\x80", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (textsrc_utf8_check(cases[i].s, strlen(cases[i].s)) != cases[i].at)
			fail_msg("case %zu: first invalid byte at %zu, expected %zu", i,
				 textsrc_utf8_check(cases[i].s, strlen(cases[i].s)), cases[i].at);
}

int main(void)
{
	set_progname("test_corpus");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chatdoctor5k_alpaca_array),
		cmocka_unit_test(test_medical_meadow_alpaca_array),
		cmocka_unit_test(test_huatuo_llama_data_jsonl_named_json),
		cmocka_unit_test(test_huatuo_liver_cancer_array_with_ids),
		cmocka_unit_test(test_medicalgpt_sharegpt_jsonl),
		cmocka_unit_test(test_promptcblue_input_target),
		cmocka_unit_test(test_covid_english_txt),
		cmocka_unit_test(test_covid_chinese_utterance_arrays),
		cmocka_unit_test(test_chinese_medical_dialogue_gb18030_csv),
		cmocka_unit_test(test_chatdoctor_csvs_with_documented_columns),
		cmocka_unit_test(test_archives),
		cmocka_unit_test(test_json_shapes),
		cmocka_unit_test(test_csv_quoting_crlf_and_defaults),
		cmocka_unit_test(test_encodings),
		cmocka_unit_test(test_refusals_and_skip_bad),
		cmocka_unit_test(test_colmap_parse),
		cmocka_unit_test(test_utf8_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
