// extract_interim.c — TEMPORARY stand-in for branch `score`'s lib/extract.c; delete both extract_interim files
// when that branch is merged (see extract_interim.h).
#include "extract_interim.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"

struct extractor {
	enum extract_rule rule;
};

enum extract_rule extract_rule_for(const char *bench, const char *lang)
{
	if (strcmp(bench, "cmb") == 0 || strcmp(bench, "cmexam") == 0)
		return EXTRACT_CMB;
	if (strcmp(bench, "cmmlu") == 0)
		return EXTRACT_CMMLU;
	return strcmp(lang, "zh") == 0 ? EXTRACT_CMB : EXTRACT_EN;
}

const char *extract_rule_name(enum extract_rule rule)
{
	return rule == EXTRACT_CMB ? "cmb" : rule == EXTRACT_CMMLU ? "cmmlu" : "en";
}

struct extractor *extractor_new(enum extract_rule rule)
{
	struct extractor *x = xcalloc(1, sizeof *x);
	x->rule = rule;
	return x;
}

void extractor_free(struct extractor *x) { free(x); }

static int latin(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

int extract_answer(struct extractor *x, const char *text, size_t len, const char *letters, int n_letters,
		   int multi, char out[EXTRACT_MAX_LETTERS + 1])
{
	(void)x;
	int seen[26] = {0}, n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (c < 'A' || c > 'Z' || !memchr(letters, c, (size_t)n_letters))
			continue;
		if ((i > 0 && latin(text[i - 1])) || (i + 1 < len && latin(text[i + 1])))
			continue;
		if (!seen[c - 'A']) {
			seen[c - 'A'] = 1;
			n++;
		}
		if (!multi)
			break;
	}
	int k = 0;
	for (int c = 0; c < 26; c++)
		if (seen[c])
			out[k++] = (char)('A' + c);
	out[k] = '\0';
	return n > 0;
}
