// extract_interim.h — TEMPORARY, TO BE DELETED when branch `score` (lib/extract.{c,h}, the real per-benchmark
// answer extraction: CMB regex, CMMLU cascade, English "answer is") is merged into main.  eval_generate.c then
// includes "extract.h" instead; the declarations below are copied from that header's interface so nothing else
// changes.  The interim rule is deliberately minimal: the option letters that stand alone in the text (not
// inside a Latin word); single-answer questions keep the first, multi-answer ones the sorted set; none → unparsed.
#ifndef MEDMOE_EXTRACT_INTERIM_H
#define MEDMOE_EXTRACT_INTERIM_H

#include <stddef.h>

#define EXTRACT_MAX_LETTERS 8

enum extract_rule { EXTRACT_CMB, EXTRACT_CMMLU, EXTRACT_EN };

enum extract_rule extract_rule_for(const char *bench, const char *lang);
const char *extract_rule_name(enum extract_rule rule);

struct extractor;
struct extractor *extractor_new(enum extract_rule rule);
void extractor_free(struct extractor *x);
int extract_answer(struct extractor *x, const char *text, size_t len, const char *letters, int n_letters,
		   int multi, char out[EXTRACT_MAX_LETTERS + 1]);

#endif
