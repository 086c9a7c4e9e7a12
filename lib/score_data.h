// score_data.h — predictions streams (schemas/medmoe.predictions.json) read into memory for `score`.
//
// Every record is checked against the spec and for sense: type "single" or "multi", answer and predicted
// sorted distinct letters A–H (predicted nil exactly when parsed is false), a single-answer question with
// one answer letter.  A question is identified by bench and id: the same bench+id twice (in one file or
// across files), or one id under two benches in one file (a stream that mixes benchmarks' ids), dies with
// exit 65 naming both records.  A stream without records dies too (exit 65): an empty run scores nothing.
#ifndef MEDMOE_SCORE_DATA_H
#define MEDMOE_SCORE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "extract.h"

struct pred {
	const char *bench;      // interned in the pred_set
	char *id;
	size_t n_cat;
	char **cat_key, **cat_val;
	int multi;              // type "multi"
	int parsed;
	int correct;            // parsed and predicted == answer (all or nothing, as MING)
	char answer[EXTRACT_MAX_LETTERS + 1];
	char predicted[EXTRACT_MAX_LETTERS + 1];   // "" when unparsed
	int file;               // index into pred_set.files
	int64_t record;         // record number in that file (1 = first)
	long match;             // index of the same question in the other run (baseline), -1 when none
	int shots;              // solved examples in the prompt (its file's header), -1 when the header lacks it
	double *scores;         // per-option log-likelihoods (loglik mode), NULL when absent
	size_t n_scores;
	char *generated;        // generated text (generate mode), NULL when absent
};

struct pred_set {
	struct pred *items;
	size_t n, cap;
	char **files;
	size_t n_files;
	char **benches;         // interned bench names, in first-seen order
	size_t n_benches;
	char *mode;             // "loglik", "generate", or "mixed" when the files differ
	char *model_base, *model_adapter, *model_task;   // from the first header that names them, or NULL
};

// Read PATH ("-" = stdin) into SET, appending; dies on any bad record or a duplicate question.
void pred_set_read(struct pred_set *set, const char *path);
// Sort the items by (bench, id) so that runs can be matched; call after the last pred_set_read.
void pred_set_sort(struct pred_set *set);
void pred_set_free(struct pred_set *set);

// Pair RUN with BASE question by question (both sorted): sets .match on both sides.  A question present in
// both with a different answer key is a different question under the same id: exit 65.  No question in
// common: exit 65 (the baseline is another benchmark or another split).  Returns the number of pairs;
// *ONLY_RUN and *ONLY_BASE get the unmatched counts.
size_t pred_set_pair(struct pred_set *run, struct pred_set *base, size_t *only_run, size_t *only_base);

// The value of category KEY of P, or NULL.
const char *pred_category(const struct pred *p, const char *key);

#endif
