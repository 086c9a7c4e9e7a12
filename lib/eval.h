// eval.h — answering medmoe.exam questions with a model (DESIGN §6): option log-likelihoods or greedy generation,
// one medmoe.predictions record per question.
//
// Four parts, one file each:
//   eval_question.c  reading and checking an exam record; the multi-answer rule; writing a prediction record
//   eval_loglik.c    many questions packed into one forward; the log-probability of each option's tokens
//   eval_generate.c  greedy decoding with the KV cache, several questions at once, stop strings and special
//                    tokens, then the benchmark's own answer extraction (extract.h); an answer that cannot be
//                    read is unparsed, never guessed
//   eval_share.c     the answers of questions split over the ranks of a job (dist.h), handed to every rank
#ifndef MEDMOE_EVAL_H
#define MEDMOE_EVAL_H

#include <msgpack.h>
#include <stdint.h>

#include "model.h"
#include "stream.h"
#include "tokenizer.h"
#include "vec.h"

#define EVAL_MAX_OPTIONS 8   // letters A..H, as EXAM_MAX_OPTIONS

struct eval_question {
	char *id, *bench, *lang;
	int multi;                               // type "multi": any non-empty set of letters may be right
	int n_categories;
	char **category_key, **category_val;
	int n_options;
	char letters[EVAL_MAX_OPTIONS + 1];      // option letters in prompt order, NUL-terminated
	char answer[EVAL_MAX_OPTIONS + 1];       // the correct letters as the exam stream gives them
	struct u32vec prompt;                    // ends at the answer cue
	struct u32vec option_ids[EVAL_MAX_OPTIONS];   // each option's letter as it would follow the prompt
	// filled by answering:
	double scores[EVAL_MAX_OPTIONS];         // loglik: log p(option tokens | prompt), natural log
	char predicted[EVAL_MAX_OPTIONS + 1];    // sorted letters; "" when unparsed
	int parsed;
	char *generated;                         // generate mode: the decoded continuation (stop string cut off)
};

// ---- eval_question.c ----

// Read exam record REC into Q (which it initialises), checking what answering relies on: a non-empty prompt
// and option ids below VOCAB, one non-empty option_ids entry per option, single-letter distinct options, a
// non-empty answer made of option letters (one letter for type single).  Errors name the record and field
// (exit 65).
void eval_question_read(const struct stream_reader *r, const msgpack_object *rec, uint32_t vocab,
			struct eval_question *q);
void eval_question_free(struct eval_question *q);

// The loglik decision from q->scores.  Single answer: the argmax (the first on a tie).  Multi-answer: the
// options whose probability renormalised over the option letters, p_i = exp(s_i) / Σ_j exp(s_j), is at least
// THRESHOLD, always including the argmax; THRESHOLD <= 0 means 1/n_options (an option the model prefers to a
// uniform guess).  Sets predicted (sorted letters) and parsed = 1.
void eval_choose(struct eval_question *q, double threshold);

// A medmoe.predictions stream at PATH whose header copies the exam stream's tokenizer identity.  MODE is
// "loglik" or "generate"; BASE, ADAPTER and TASK (NULL when absent) describe the model.
struct stream_writer *eval_predictions_create(const char *path, const struct stream_reader *exam,
					      const char *mode, const char *base, const char *adapter,
					      const char *task);
// One prediction record: scores when WITH_SCORES (loglik), generated text when q->generated.
void eval_prediction_write(struct stream_writer *w, const struct eval_question *q, int with_scores);

// ---- eval_loglik.c ----

// Tokens one question takes in a packed forward: its prompt plus an option, once per option that cannot be
// read off another option's tokens (usually once in all; see eval_loglik.c).
int64_t eval_loglik_tokens(const struct eval_question *q);
// One packed forward over the N questions (documents, so none sees another), filling each q->scores.
void eval_loglik_score(struct model *m, struct eval_question *qs, int n);

// ---- eval_generate.c ----

struct eval_generator;
// Greedy decoding of at most MAX_NEW tokens per question, BATCH questions at once (each in its own KV-cache
// slot, one forward per step for all of them); a question stops at any special token of TOK (end of turn, end
// of text) and at the first of the N_STOPS stop strings STOPS in the decoded text (cut off from the recorded
// text).  On the CPU the answers are the same bytes whatever BATCH (1 to OPS_ROWWISE_MAX_ROWS).
struct eval_generator *eval_generator_new(struct model *m, const struct tokenizer *tok, int max_new,
					  const char *const *stops, int n_stops, int batch);
void eval_generator_free(struct eval_generator *g);
// The questions come from NEXT, which fills *q (eval_question_read) and returns 1, or returns 0 at the end of
// the input.  Each is answered — q->generated, then q->predicted / q->parsed through the bench's extraction rule
// — and handed to DONE with the number of tokens generated, in the order NEXT gave them; DONE owns the
// question then (eval_question_free).  Returns the number of questions answered.
typedef int (*eval_next_fn)(void *ctx, struct eval_question *q);
typedef void (*eval_done_fn)(void *ctx, struct eval_question *q, int n_generated);
size_t eval_generate_all(struct eval_generator *g, eval_next_fn next, eval_done_fn done, void *ctx);

// ---- eval_share.c ----

// After the ranks of a job have each answered the questions OWNER gives them (owner[i]: the rank of qs[i]),
// give every rank all N answers: parsed, predicted, scores, generated text and, when N_NEW is not NULL, the
// generated token counts (n_new[i]).  The bytes are the answering rank's.  One rank: nothing to do.
void eval_share_answers(struct eval_question *qs, size_t n, const int *owner, int32_t *n_new);

#endif
