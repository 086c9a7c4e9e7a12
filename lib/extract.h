// extract.h — reading the answer letters out of a model's generated text, per benchmark, deterministically.
//
// Three rules, each a fresh implementation of a published extractor (facts from the original code; see
// docs in man/score.1 and the sources below).  None ever guesses: text with no recognisable answer is
// "unparsed", and score counts it as wrong and reports the unparsed rate.
//
//   EXTRACT_CMB    CMB's match_choice (GH FreedomIntelligence/CMB src/utils.py): the first match of
//                  (答案|正确选项)(?:是|：|为|应该是|应该为)(.*?)(。|\.|$) (dot matches newline) and the letters
//                  A–G inside the captured part; when the regex does not match at all, every A–G letter of
//                  the text.  A match whose captured part holds no letter is unparsed (CMB returns "" there).
//                  Single-answer questions keep the first letter (CMB extract_ans); multi-answer questions
//                  keep the sorted set of distinct letters (OpenCompass multiple_select_postprocess).
//   EXTRACT_CMMLU  CMMLU's extract_choice (GH haonan-li/CMMLU src/mp_utils.py) without its random fallback:
//                  the first character; twelve single-match patterns in order; the recursive 当选 / 正确
//                  patterns (the last letter before the keyword); the weak [^不]是：? ?X; and "the text
//                  mentions exactly one option letter".  Always one letter.
//   EXTRACT_EN     English (MMLU, MedQA-USMLE, MedMCQA), in the manner of MING's eval_em.py "The answer is
//                  (.*?)$" and lm-eval's "answer is (X)" filters: the text after the first "answer is" or
//                  "answer:" (any case) up to the end of that sentence or line, where an option letter stands
//                  alone ("(B)", "B.", "B and D"); else a leading option letter followed by . ) : , ; or the
//                  end ("B. Hypertension", "(C)"); else unparsed.  A lone "A" followed by a word is the
//                  article, never an answer.
//
// Before matching, the text is normalised: invalid UTF-8 becomes U+FFFD, full-width letters Ａ–Ｚ and
// parentheses （）become ASCII (Chinese models write them).  Two deliberate differences from the originals,
// both so that the same answer is never read two ways: leading white space is skipped before CMMLU's
// first-character test, and every rule keeps only the question's own option letters (a CMB "F" on a
// five-option question is dropped before the single-answer rule takes the first letter).
//
// An extractor caches the compiled patterns per option-letter set; it is not thread-safe (one per thread).
// Use, per benchmark (eval-exam):
//     struct extractor *x = extractor_new(extract_rule_for(item->bench, item->lang));
//     char letters[EXTRACT_MAX_LETTERS + 1];
//     int parsed = extract_answer(x, text, text_len, item->letters, item->n_options, item->multi, letters);
//     ... "predicted" = parsed ? letters : nil, "parsed" = parsed ...
//     extractor_free(x);
#ifndef MEDMOE_EXTRACT_H
#define MEDMOE_EXTRACT_H

#include <stddef.h>

#define EXTRACT_MAX_LETTERS 8   // A..H, as EXAM_MAX_OPTIONS

enum extract_rule { EXTRACT_CMB, EXTRACT_CMMLU, EXTRACT_EN };

// The rule for a benchmark's generated answers: cmb, cmexam → CMB; cmmlu → CMMLU; mmlu, medqa, medmcqa →
// EN, except Chinese text (LANG "zh": MedQA-MCMLE) → CMB.  Unknown benches: by LANG.
enum extract_rule extract_rule_for(const char *bench, const char *lang);
const char *extract_rule_name(enum extract_rule rule);

struct extractor;
struct extractor *extractor_new(enum extract_rule rule);
void extractor_free(struct extractor *x);

// Extract from TEXT (LEN bytes, any bytes) the answer to a question whose options are the N_LETTERS
// letters LETTERS ("ABCDE"; at most EXTRACT_MAX_LETTERS, uppercase A–H).  MULTI: several letters may be
// correct.  Writes the sorted distinct letters to OUT (NUL-terminated, "" when unparsed); returns 1 when
// parsed, 0 when not.
int extract_answer(struct extractor *x, const char *text, size_t len, const char *letters, int n_letters,
		   int multi, char out[EXTRACT_MAX_LETTERS + 1]);

#endif
