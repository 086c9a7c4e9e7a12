// extract.c — the three answer-extraction rules of extract.h, on PCRE2 (UTF mode).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "extract.h"

#include <pcre2.h>
#include <string.h>
#include <utf8proc.h>

#include "die.h"
#include "vec.h"

// CMMLU's patterns (src/mp_utils.py extract_choice), in its order, rewritten with one capture group: the
// answer letter.  "@" stands for the option-letter class ("[ABCD]" on CMMLU).
static const char *const cmmlu_single[] = {
	"答案(?:选项)?(?:是|为)：? ?(@)",
	"答案(?:是|为)选项 ?(@)",
	"故?选择?：? ?(@)",
	"(@) ?选?项(?:是|为)?正确",
	"正确的?选项(?:是|为) ?(@)",
	"答案(?:应该)?(?:是|为)(@)",
	"选项 ?(@) ?(?:是|为)?正确",
	"选择答案 ?(@)",
	"答案?：?(@)",
	"(@)(?:选?项)?是?符合题意",
	"答案选项：? ?(@)",
	"答案(?:选项)?为.*?(@)",
};
enum { N_CMMLU_SINGLE = sizeof cmmlu_single / sizeof cmmlu_single[0] };

// The "recursive" patterns: CMMLU re-searches the match minus its first character until nothing is left,
// which ends on the last option letter between the first letter and the keyword.
static const char *const cmmlu_keywords[] = { "当选", "正确" };
enum { N_CMMLU_RECURSIVE = 2 };

static const char cmb_regex[] = "(答案|正确选项)(?:是|：|为|应该是|应该为)(.*?)(?:。|\\.|$)";

// English: the keyword, then the rest of its sentence or line (captured).
static const char en_answer_regex[] =
	"(?i:\\banswer(?:\\s+is\\b|\\s*[:：]))\\s*[:：]?\\s*([^\\n]*?)(?:\\.(?=\\s|$)|\\n|$)";

struct pattern_set {
	char letters[EXTRACT_MAX_LETTERS + 1];   // the option letters these were compiled for
	pcre2_code *single[N_CMMLU_SINGLE];
	pcre2_code *recursive[N_CMMLU_RECURSIVE];
	pcre2_code *weak;
	pcre2_code *lead_one, *lead_run;          // English leading letter (single / multi)
};

enum { N_CACHE = 8 };

struct extractor {
	enum extract_rule rule;
	pcre2_code *cmb;
	pcre2_code *en_answer;
	struct pattern_set cache[N_CACHE];
	int n_cached, next_victim;
	pcre2_match_data *md;
	struct bytevec norm;   // the normalised text
};

static void put_byte(struct bytevec *v, char c) { bytevec_append(v, &c, 1); }

static pcre2_code *compile(const char *regex, uint32_t flags)
{
	int err;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | flags, &err, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(err, msg, sizeof msg);
		die(EXIT_FAIL, "extract: pattern %s: offset %zu: %s", regex, (size_t)off, (char *)msg);
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   // the interpreter still matches without JIT
	return re;
}

// REGEX with each "@" replaced by the class of LETTERS ("[ABCD]").
static pcre2_code *compile_with_class(const char *regex, const char *letters, uint32_t flags)
{
	struct bytevec out = { 0 };
	for (const char *p = regex; *p; p++) {
		if (*p == '@') {
			put_byte(&out, '[');
			bytevec_append(&out, letters, strlen(letters));
			put_byte(&out, ']');
		} else {
			put_byte(&out, *p);
		}
	}
	put_byte(&out, '\0');
	pcre2_code *re = compile(out.data, flags);
	free(out.data);
	return re;
}

enum extract_rule extract_rule_for(const char *bench, const char *lang)
{
	if (!strcmp(bench, "cmb") || !strcmp(bench, "cmexam"))
		return EXTRACT_CMB;
	if (!strcmp(bench, "cmmlu"))
		return EXTRACT_CMMLU;
	return lang && !strcmp(lang, "zh") ? EXTRACT_CMB : EXTRACT_EN;
}

const char *extract_rule_name(enum extract_rule rule)
{
	switch (rule) {
	case EXTRACT_CMB: return "cmb";
	case EXTRACT_CMMLU: return "cmmlu";
	case EXTRACT_EN: return "en";
	}
	return "?";
}

struct extractor *extractor_new(enum extract_rule rule)
{
	struct extractor *x = xcalloc(1, sizeof *x);
	x->rule = rule;
	x->cmb = compile(cmb_regex, PCRE2_DOTALL);
	x->en_answer = compile(en_answer_regex, 0);
	x->md = pcre2_match_data_create(16, NULL);
	if (!x->md)
		die(EXIT_FAIL, "extract: out of memory");
	return x;
}

static void pattern_set_free(struct pattern_set *s)
{
	for (int i = 0; i < N_CMMLU_SINGLE; i++)
		pcre2_code_free(s->single[i]);
	for (int i = 0; i < N_CMMLU_RECURSIVE; i++)
		pcre2_code_free(s->recursive[i]);
	pcre2_code_free(s->weak);
	pcre2_code_free(s->lead_one);
	pcre2_code_free(s->lead_run);
	memset(s, 0, sizeof *s);
}

void extractor_free(struct extractor *x)
{
	if (!x)
		return;
	for (int i = 0; i < x->n_cached; i++)
		pattern_set_free(&x->cache[i]);
	pcre2_code_free(x->cmb);
	pcre2_code_free(x->en_answer);
	pcre2_match_data_free(x->md);
	free(x->norm.data);
	free(x);
}

static const struct pattern_set *patterns_for(struct extractor *x, const char *letters)
{
	for (int i = 0; i < x->n_cached; i++)
		if (!strcmp(x->cache[i].letters, letters))
			return &x->cache[i];
	struct pattern_set *s;
	if (x->n_cached < N_CACHE) {
		s = &x->cache[x->n_cached++];
	} else {
		s = &x->cache[x->next_victim];
		x->next_victim = (x->next_victim + 1) % N_CACHE;
		pattern_set_free(s);
	}
	strcpy(s->letters, letters);
	for (int i = 0; i < N_CMMLU_SINGLE; i++)
		s->single[i] = compile_with_class(cmmlu_single[i], letters, 0);
	for (int i = 0; i < N_CMMLU_RECURSIVE; i++) {
		char *re = xasprintf("(@).*?%s", cmmlu_keywords[i]);
		s->recursive[i] = compile_with_class(re, letters, 0);
		free(re);
	}
	s->weak = compile_with_class("[^不]是：? ?(@)", letters, 0);
	s->lead_one = compile_with_class("^\\s*\\(?(@)(?:[.):,;\\n]|\\s*$)", letters, 0);
	s->lead_run = compile_with_class("^\\s*\\(?(@+)(?:[.):,;\\n]|\\s*$)", letters, 0);
	return s;
}

// Copy TEXT into x->norm as valid UTF-8 with full-width Latin capitals and parentheses made ASCII.
static void normalise(struct extractor *x, const char *text, size_t len)
{
	x->norm.len = 0;
	size_t i = 0;
	while (i < len) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &cp);
		if (n <= 0) {          // an invalid byte: U+FFFD, then go on with the next byte
			bytevec_append(&x->norm, "\xEF\xBF\xBD", 3);
			i++;
			continue;
		}
		if (cp >= 0xFF21 && cp <= 0xFF3A)         // Ａ..Ｚ
			put_byte(&x->norm, (char)('A' + (cp - 0xFF21)));
		else if (cp == 0xFF08)
			put_byte(&x->norm, '(');
		else if (cp == 0xFF09)
			put_byte(&x->norm, ')');
		else
			bytevec_append(&x->norm, text + i, (size_t)n);
		i += (size_t)n;
	}
	put_byte(&x->norm, '\0');
	x->norm.len--;
}

// Search RE in the normalised text from byte START; 1 and the ovector when it matches.
static int search(struct extractor *x, const pcre2_code *re, size_t start, PCRE2_SIZE **ov)
{
	int rc = pcre2_match(re, (PCRE2_SPTR)x->norm.data, x->norm.len, start, PCRE2_NO_UTF_CHECK, x->md, NULL);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc < 0) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(rc, msg, sizeof msg);
		die(EXIT_FAIL, "extract: match: %s", (char *)msg);
	}
	*ov = pcre2_get_ovector_pointer(x->md);
	return 1;
}

static int letter_bit(char c) { return c >= 'A' && c <= 'H' ? 1 << (c - 'A') : 0; }

static void mask_to_letters(unsigned mask, char *out)
{
	int n = 0;
	for (int i = 0; i < EXTRACT_MAX_LETTERS; i++)
		if (mask & (1u << i))
			out[n++] = (char)('A' + i);
	out[n] = '\0';
}

// CMB: the letters A–G of the captured part, or of the whole text when the regex does not match, kept when
// they are options; single-answer questions keep the first.
static unsigned cmb_letters(struct extractor *x, unsigned options, int multi)
{
	PCRE2_SIZE *ov;
	size_t from = 0, to = x->norm.len;
	if (search(x, x->cmb, 0, &ov)) {
		from = ov[4];
		to = ov[5];
	}
	unsigned mask = 0;
	for (size_t i = from; i < to; i++) {
		char c = x->norm.data[i];
		unsigned bit = c >= 'A' && c <= 'G' ? (unsigned)letter_bit(c) & options : 0;
		mask |= bit;
		if (bit && !multi)
			break;
	}
	return mask;
}

// CMMLU's cascade; returns the letter or 0.
static char cmmlu_letter(struct extractor *x, const struct pattern_set *s, unsigned options)
{
	const char *t = x->norm.data;
	size_t i = 0;
	while (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')
		i++;
	if (letter_bit(t[i]) & options)
		return t[i];
	PCRE2_SIZE *ov;
	for (int p = 0; p < N_CMMLU_SINGLE; p++)
		if (search(x, s->single[p], 0, &ov))
			return t[ov[2]];
	for (int p = 0; p < N_CMMLU_RECURSIVE; p++) {
		if (!search(x, s->recursive[p], 0, &ov))
			continue;
		size_t end = ov[1] - strlen(cmmlu_keywords[p]);
		char last = 0;
		for (size_t j = ov[0]; j < end; j++)
			if (letter_bit(t[j]) & options)
				last = t[j];
		return last;
	}
	if (search(x, s->weak, 0, &ov))
		return t[ov[2]];
	char only = 0;
	for (size_t j = 0; j < x->norm.len; j++) {
		if (letter_bit(t[j]) & options) {
			if (only)
				return 0;
			only = t[j];
		}
	}
	return only;
}

static int is_ascii_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// English: the option letters standing alone in t[from, to): words made only of option letters, one letter
// each unless MULTI; a word right after "not" does not count.  Single: the first such letter.
static unsigned en_span_letters(const char *t, size_t from, size_t to, unsigned options, int multi)
{
	unsigned found = 0;
	size_t i = from;
	while (i < to) {
		if (!is_ascii_alpha(t[i])) {
			i++;
			continue;
		}
		size_t start = i;
		unsigned word = 0;
		int all_options = 1, repeated = 0;
		for (; i < to && is_ascii_alpha(t[i]); i++) {
			unsigned bit = (unsigned)letter_bit(t[i]) & options;
			if (!bit)
				all_options = 0;
			if (word & bit)
				repeated = 1;
			word |= bit;
		}
		size_t wlen = i - start;
		if (!all_options || repeated || (!multi && wlen != 1))
			continue;
		// "not B": skip back over spaces and parentheses to the previous word
		size_t k = start;
		while (k > from && (t[k - 1] == ' ' || t[k - 1] == '('))
			k--;
		if (k >= from + 3 && !strncasecmp(t + k - 3, "not", 3) && (k == from + 3 || !is_ascii_alpha(t[k - 4])))
			continue;
		found |= word;
		if (!multi)
			break;
	}
	return found;
}

static unsigned en_letters(struct extractor *x, const struct pattern_set *s, unsigned options, int multi)
{
	PCRE2_SIZE *ov;
	size_t start = 0;
	while (start <= x->norm.len && search(x, x->en_answer, start, &ov)) {
		unsigned found = en_span_letters(x->norm.data, ov[2], ov[3], options, multi);
		if (found)
			return found;
		start = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
	}
	if (search(x, multi ? s->lead_run : s->lead_one, 0, &ov)) {
		unsigned found = 0;
		for (size_t j = ov[2]; j < ov[3]; j++) {
			unsigned bit = (unsigned)letter_bit(x->norm.data[j]);
			if (found & bit)
				return 0;   // "AA": not an answer
			found |= bit;
		}
		return found;
	}
	return 0;
}

int extract_answer(struct extractor *x, const char *text, size_t len, const char *letters, int n_letters,
		   int multi, char out[EXTRACT_MAX_LETTERS + 1])
{
	if (n_letters < 1 || n_letters > EXTRACT_MAX_LETTERS)
		die(EXIT_FAIL, "extract: %d option letters (1..%d)", n_letters, EXTRACT_MAX_LETTERS);
	unsigned options = 0;
	for (int i = 0; i < n_letters; i++) {
		if (!letter_bit(letters[i]))
			die(EXIT_FAIL, "extract: option letter %#x is not A..H", (unsigned char)letters[i]);
		options |= (unsigned)letter_bit(letters[i]);
	}
	char sorted[EXTRACT_MAX_LETTERS + 1];
	mask_to_letters(options, sorted);   // the cache key: the set, in order
	normalise(x, text ? text : "", text ? len : 0);

	unsigned mask = 0;
	switch (x->rule) {
	case EXTRACT_CMB:
		mask = cmb_letters(x, options, multi);
		break;
	case EXTRACT_CMMLU:
		mask = (unsigned)letter_bit(cmmlu_letter(x, patterns_for(x, sorted), options));
		break;
	case EXTRACT_EN:
		mask = en_letters(x, patterns_for(x, sorted), options, multi);
		break;
	}
	mask_to_letters(mask & options, out);
	return mask != 0;
}
