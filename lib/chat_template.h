// chat_template.h — turning a conversation into token ids and a loss mask.
//
// Templates (the text each model family was trained on):
//   chatml  Qwen:     <|im_start|>ROLE\nTEXT<|im_end|>\n ...
//   llama2  LLaMA-2:  <s>[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST] ASSISTANT </s><s>[INST] ...
//   llama3  LLaMA-3:  <|begin_of_text|><|start_header_id|>ROLE<|end_header_id|>\n\nTEXT<|eot_id|> ...
//   none    the turns' texts joined by "\n", no special tokens (a plain-text record is encoded as is)
// The loss mask is 1 on assistant tokens and on the end token that closes an assistant turn (<|im_end|>,
// </s>, <|eot_id|>), 0 elsewhere; plain-text records (no roles) carry loss on every token.
//
// Ids are exactly Hugging Face's encoding of the whole templated string: special tokens split the text into
// pieces as Hugging Face's added-token matching does, and each piece is encoded whole.  The mask boundary
// inside a piece (prompt | answer) is found by encoding the prompt part alone: its ids are, in practice, a
// prefix of the piece's ids; when a merge straddles the boundary the straddling token counts as answer.
#ifndef MEDMOE_CHAT_TEMPLATE_H
#define MEDMOE_CHAT_TEMPLATE_H

#include <stdint.h>
#include "tokenizer.h"
#include "vec.h"

enum chat_role { CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT, CHAT_TEXT };

struct chat_turn {
	enum chat_role role;
	const char *text;
	size_t len;
};

enum template_kind { TEMPLATE_NONE, TEMPLATE_CHATML, TEMPLATE_LLAMA2, TEMPLATE_LLAMA3 };

struct chat_template {
	enum template_kind kind;
	const struct tokenizer *tok;
	const char *system;  // default system prompt, or NULL
	// Special ids the template needs, resolved once (UINT32_MAX when the template does not use it).
	uint32_t im_start, im_end, bos, eos, begin_of_text, start_header, end_header, eot;
};

// "chatml", "llama2", "llama3", "none" → kind; -1 when unknown.
int template_parse(const char *name, enum template_kind *kind);
const char *template_name(enum template_kind kind);
// Resolve the special tokens; dies (exit 65) naming the token the tokenizer lacks.
void template_init(struct chat_template *t, const struct tokenizer *tok, enum template_kind kind,
		   const char *system);
// Encode a conversation: ids and mask (one byte per id) are appended.  A conversation's own system turn
// replaces the default system prompt.
void template_encode(const struct chat_template *t, const struct chat_turn *turns, int n_turns,
		     struct u32vec *ids, struct bytevec *mask);
// Encode a single user prompt followed by the opening of the assistant's reply (for exam prompts): the
// model's next token is the answer.  Appends to IDS.
void template_encode_prompt(const struct chat_template *t, const char *user, size_t len, struct u32vec *ids);
// The ids the ANSWER text would get right after template_encode_prompt(USER): Hugging Face's encoding of the
// prompt followed by ANSWER, minus the prompt's ids.
void template_encode_continuation(const struct chat_template *t, const char *user, size_t len,
				  const uint32_t *prompt_ids, size_t n_prompt, const char *answer,
				  struct u32vec *out);

#endif
