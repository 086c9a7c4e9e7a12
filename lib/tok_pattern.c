// tok_pattern.c — the patterns of Split pre-tokenizers and Replace normalizers/decoders: a literal
// string, or a regex compiled by PCRE2 with UTF and UCP (so \s, \p{L}, \p{N} and (?i) follow Unicode,
// as Oniguruma does inside HF tokenizers) and JIT-compiled when the platform allows.
#include <string.h>
#include "die.h"
#include "tok_internal.h"

void tok_pattern_regex(struct tok_pattern *p, const char *regex, const char *file, const char *field)
{
	int err;
	PCRE2_SIZE at;
	memset(p, 0, sizeof *p);
	// MULTILINE: HF compiles with Oniguruma's Ruby syntax, where ^ and $ are line anchors.
	p->re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE,
			      &err, &at, NULL);
	if (!p->re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(err, msg, sizeof msg);
		die_data(file, -1, field, "bad regex at offset %zu: %s", (size_t)at, (const char *)msg);
	}
	pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE);  // without JIT the interpreter still matches
}

void tok_pattern_literal(struct tok_pattern *p, const char *lit, size_t len)
{
	memset(p, 0, sizeof *p);
	p->lit = xstrndup(lit, len);
	p->lit_len = len;
}

void tok_pattern_free(struct tok_pattern *p)
{
	if (p->re)
		pcre2_code_free(p->re);
	free(p->lit);
	memset(p, 0, sizeof *p);
}

int tok_pattern_find(const struct tok_pattern *p, const char *s, size_t len, size_t from, size_t *start,
		     size_t *end)
{
	if (from > len)
		return 0;
	if (!p->re) {
		if (p->lit_len == 0 || p->lit_len > len - from)
			return 0;
		const char *hit = memmem(s + from, len - from, p->lit, p->lit_len);
		if (!hit)
			return 0;
		*start = (size_t)(hit - s);
		*end = *start + p->lit_len;
		return 1;
	}
	struct tok_scratch *scr = tok_scratch_get();
	int rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, scr->match, scr->match_ctx);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc < 0) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(rc, msg, sizeof msg);
		die(EXIT_FAIL, "tokenizer: regex match failed: %s", (const char *)msg);
	}
	// rc == 0 only says the ovector is too small for the capture groups; the whole match is still there.
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(scr->match);
	*start = ov[0];
	*end = ov[1];
	return 1;
}
