// exam_check.h — checks shared by the lib/exam unit tests (test_exam.c, test_exam_data.c).
#ifndef MEDMOE_EXAM_CHECK_H
#define MEDMOE_EXAM_CHECK_H
#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "die.h"
#include "exam.h"

// Fail with both strings shown from their first difference on.
static inline void assert_same_text(const char *got, const char *want, const char *what)
{
	if (strcmp(got, want) == 0)
		return;
	size_t i = 0;
	while (got[i] && got[i] == want[i])
		i++;
	fail_msg("%s: prompt differs at byte %zu\n--- got from there:\n%s\n--- want from there:\n%s", what, i, got + i,
		 want + i);
}

static inline int count_newlines_in_fields(const struct exam_item *it)
{
	int n = strchr(it->question, '\n') != NULL;
	for (int i = 0; i < it->n_options; i++)
		n += strchr(it->option_text[i], '\n') != NULL;
	return n;
}

// Every item: a non-empty id unique in the file, options lettered A.. in order, an answer made of
// option letters (one letter unless multi), no CR left over from CRLF files.
static inline void check_items(const char *path, const struct exam_item *items, size_t n, int want_options, int want_multi)
{
	for (size_t i = 0; i < n; i++) {
		const struct exam_item *it = &items[i];
		if (!it->id || !*it->id || !it->question)
			fail_msg("%s: item %zu: no id or question", path, i + 1);
		if (want_options && it->n_options != want_options)
			fail_msg("%s: item %zu (%s): %d options, want %d", path, i + 1, it->id, it->n_options, want_options);
		size_t len = strlen(it->answer);
		if (len == 0 || (len > 1 && !it->multi) || (!want_multi && it->multi))
			fail_msg("%s: item %zu (%s): answer \"%s\" multi %d", path, i + 1, it->id, it->answer, it->multi);
		for (size_t j = 0; j < len; j++) {
			int found = 0;
			for (int k = 0; k < it->n_options; k++)
				found |= it->letters[k] == it->answer[j];
			if (!found || (j && it->answer[j - 1] >= it->answer[j]))
				fail_msg("%s: item %zu (%s): answer \"%s\" not sorted option letters", path, i + 1, it->id,
					 it->answer);
		}
		if (strchr(it->question, '\r'))
			fail_msg("%s: item %zu (%s): CR in the question", path, i + 1, it->id);
		for (int k = 0; k < it->n_options; k++)
			if (strchr(it->option_text[k], '\r'))
				fail_msg("%s: item %zu (%s): CR in option %c", path, i + 1, it->id, it->letters[k]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(items[j].id, it->id) == 0)
				fail_msg("%s: items %zu and %zu share the id %s", path, j + 1, i + 1, it->id);
	}
}

// Read the whole file in a forked child; return its exit status and what it wrote to stderr.
static inline int child_read(const char *bench, const char *path, char *err, size_t err_size)
{
	char errfile[] = "/tmp/test_exam_err_XXXXXX";
	int fd = mkstemp(errfile);
	assert_true(fd >= 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd, 2);
		set_progname("test_exam");
		size_t n;
		struct exam_item *items = exam_read_all(bench, path, &n);
		exam_items_free(items, n);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	ssize_t got = pread(fd, err, err_size - 1, 0);
	err[got > 0 ? got : 0] = '\0';
	close(fd);
	unlink(errfile);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A one-shot prompt must begin with the shot asked as a question, then exam_answer_lead() and the
// shot's answer: so the letters a model is scored on are exactly what the shots taught it.
static inline void assert_shot_consistent(const struct exam_item *item, const struct exam_item *shot)
{
	char *alone = exam_prompt(shot, NULL, 0);
	const struct exam_item *shots[1] = { shot };
	char *with = exam_prompt(item, shots, 1);
	char *want = xasprintf("%s%s%s", alone, exam_answer_lead(item), shot->answer);
	if (strncmp(with, want, strlen(want)) != 0)
		fail_msg("%s %s: the 1-shot prompt does not begin with the shot %s, lead \"%s\" and its answer\n%s",
			 item->bench, item->id, shot->id, exam_answer_lead(item), with);
	free(alone);
	free(with);
	free(want);
}

#endif
