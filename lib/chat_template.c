// chat_template.c — conversations to ids + loss mask, matching Hugging Face's encoding of the templated text.
#include "chat_template.h"
#include "die.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

// A piece is the text between two special tokens, made of spans that each carry one mask value.
#define MAX_SPANS 256

struct builder {
	const struct tokenizer *tok;
	struct u32vec *ids;
	struct bytevec *mask;
	struct bytevec text;          // the current piece's text
	size_t span_end[MAX_SPANS];   // byte offset where each span ends
	uint8_t span_mask[MAX_SPANS];
	int n_spans;
	struct u32vec scratch_full, scratch_part;
};

static void add_span(struct builder *b, const char *s, size_t len, uint8_t mask)
{
	if (len == 0)
		return;
	bytevec_append(&b->text, s, len);
	if (b->n_spans > 0 && b->span_mask[b->n_spans - 1] == mask) {
		b->span_end[b->n_spans - 1] = b->text.len;  // same mask: extend the span
		return;
	}
	if (b->n_spans == MAX_SPANS)
		die(EXIT_DATA, "conversation has more than %d turns in one piece of text", MAX_SPANS / 2);
	b->span_end[b->n_spans] = b->text.len;
	b->span_mask[b->n_spans] = mask;
	b->n_spans++;
}

static void add_str(struct builder *b, const char *s, uint8_t mask)
{
	add_span(b, s, strlen(s), mask);
}

static void push_mask(struct bytevec *mask, uint8_t value, size_t n)
{
	bytevec_reserve(mask, mask->len + n + 1);
	memset(mask->data + mask->len, value, n);
	mask->len += n;
}

static void flush_piece(struct builder *b)
{
	if (b->text.len == 0)
		return;
	struct u32vec *full = &b->scratch_full, *part = &b->scratch_part;
	full->len = 0;
	tokenizer_encode(b->tok, b->text.data, b->text.len, full);
	size_t done = 0;  // tokens of FULL already given a mask
	for (int k = 0; k + 1 < b->n_spans; k++) {
		// Tokens up to the end of span k: the common prefix of enc(text[0:end]) and enc(text).
		part->len = 0;
		tokenizer_encode(b->tok, b->text.data, b->span_end[k], part);
		size_t common = 0;
		while (common < part->len && common < full->len && part->data[common] == full->data[common])
			common++;
		if (common > done) {
			push_mask(b->mask, b->span_mask[k], common - done);
			done = common;
		}
	}
	push_mask(b->mask, b->n_spans ? b->span_mask[b->n_spans - 1] : 0, full->len - done);
	u32vec_append(b->ids, full->data, full->len);
	b->text.len = 0;
	b->n_spans = 0;
}

static void add_special(struct builder *b, uint32_t id, uint8_t mask)
{
	flush_piece(b);
	u32vec_push(b->ids, id);
	push_mask(b->mask, mask, 1);
}

static void builder_done(struct builder *b)
{
	flush_piece(b);
	free(b->text.data);
	free(b->scratch_full.data);
	free(b->scratch_part.data);
}

// Hugging Face's LLaMA-2/3 templates strip each message (Jinja's trim).
static void trimmed(const char *s, size_t len, const char **out, size_t *out_len)
{
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	*out = s;
	*out_len = len;
}

int template_parse(const char *name, enum template_kind *kind)
{
	static const struct { const char *name; enum template_kind kind; } names[] = {
		{ "none", TEMPLATE_NONE }, { "chatml", TEMPLATE_CHATML },
		{ "llama2", TEMPLATE_LLAMA2 }, { "llama3", TEMPLATE_LLAMA3 },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(name, names[i].name) == 0) {
			*kind = names[i].kind;
			return 0;
		}
	}
	return -1;
}

const char *template_name(enum template_kind kind)
{
	switch (kind) {
	case TEMPLATE_CHATML: return "chatml";
	case TEMPLATE_LLAMA2: return "llama2";
	case TEMPLATE_LLAMA3: return "llama3";
	case TEMPLATE_NONE: break;
	}
	return "none";
}

static uint32_t need_token(const struct tokenizer *tok, const char *token, const char *template)
{
	int64_t id = tokenizer_token_id(tok, token);
	if (id < 0)
		die_data(tokenizer_path(tok), -1, "added_tokens",
			 "the tokenizer has no %s token, which the %s template needs", token, template);
	return (uint32_t)id;
}

void template_init(struct chat_template *t, const struct tokenizer *tok, enum template_kind kind,
		   const char *system)
{
	memset(t, 0xff, sizeof *t);
	t->kind = kind;
	t->tok = tok;
	t->system = system;
	const char *name = template_name(kind);
	switch (kind) {
	case TEMPLATE_CHATML:
		t->im_start = need_token(tok, "<|im_start|>", name);
		t->im_end = need_token(tok, "<|im_end|>", name);
		break;
	case TEMPLATE_LLAMA2:
		t->bos = need_token(tok, "<s>", name);
		t->eos = need_token(tok, "</s>", name);
		break;
	case TEMPLATE_LLAMA3:
		t->begin_of_text = need_token(tok, "<|begin_of_text|>", name);
		t->start_header = need_token(tok, "<|start_header_id|>", name);
		t->end_header = need_token(tok, "<|end_header_id|>", name);
		t->eot = need_token(tok, "<|eot_id|>", name);
		break;
	case TEMPLATE_NONE:
		break;
	}
}

static const char *role_name(enum chat_role role)
{
	switch (role) {
	case CHAT_SYSTEM: return "system";
	case CHAT_USER: return "user";
	case CHAT_ASSISTANT: return "assistant";
	case CHAT_TEXT: break;
	}
	return "text";
}

static uint8_t role_mask(enum chat_role role)
{
	return role == CHAT_ASSISTANT || role == CHAT_TEXT;
}

static void encode_chatml(const struct chat_template *t, struct builder *b, const struct chat_turn *turns, int n,
			  int open_assistant)
{
	int has_system = n > 0 && turns[0].role == CHAT_SYSTEM;
	if (!has_system && t->system) {
		add_special(b, t->im_start, 0);
		add_str(b, "system\n", 0);
		add_str(b, t->system, 0);
		add_special(b, t->im_end, 0);
		add_str(b, "\n", 0);
	}
	for (int i = 0; i < n; i++) {
		const struct chat_turn *turn = &turns[i];
		if (turn->role == CHAT_TEXT) {
			add_span(b, turn->text, turn->len, 1);
			continue;
		}
		uint8_t m = role_mask(turn->role);
		add_special(b, t->im_start, 0);
		add_str(b, role_name(turn->role), 0);
		add_str(b, "\n", 0);
		add_span(b, turn->text, turn->len, m);
		add_special(b, t->im_end, m);
		add_str(b, "\n", 0);
	}
	if (open_assistant) {
		add_special(b, t->im_start, 0);
		add_str(b, "assistant\n", 0);
	}
}

static void encode_llama2(const struct chat_template *t, struct builder *b, const struct chat_turn *turns, int n,
			  int open_assistant)
{
	const char *system = t->system;
	size_t system_len = system ? strlen(system) : 0;
	int i = 0;
	if (n > 0 && turns[0].role == CHAT_SYSTEM) {
		trimmed(turns[0].text, turns[0].len, &system, &system_len);
		i = 1;
	}
	int first = 1;
	for (; i < n; i++) {
		const struct chat_turn *turn = &turns[i];
		const char *s;
		size_t len;
		trimmed(turn->text, turn->len, &s, &len);
		if (turn->role == CHAT_TEXT) {
			add_span(b, turn->text, turn->len, 1);
		} else if (turn->role == CHAT_USER || turn->role == CHAT_SYSTEM) {
			add_special(b, t->bos, 0);
			add_str(b, "[INST] ", 0);
			if (first && system) {
				add_str(b, "<<SYS>>\n", 0);
				add_span(b, system, system_len, 0);
				add_str(b, "\n<</SYS>>\n\n", 0);
			}
			add_span(b, s, len, 0);
			add_str(b, " [/INST]", 0);
			first = 0;
		} else {
			add_str(b, " ", 1);
			add_span(b, s, len, 1);
			add_str(b, " ", 1);
			add_special(b, t->eos, 1);
		}
	}
	(void)open_assistant;  // the reply follows "[/INST]" directly
}

static void encode_llama3(const struct chat_template *t, struct builder *b, const struct chat_turn *turns, int n,
			  int open_assistant)
{
	add_special(b, t->begin_of_text, 0);
	int has_system = n > 0 && turns[0].role == CHAT_SYSTEM;
	if (!has_system && t->system) {
		add_special(b, t->start_header, 0);
		add_str(b, "system", 0);
		add_special(b, t->end_header, 0);
		add_str(b, "\n\n", 0);
		add_str(b, t->system, 0);
		add_special(b, t->eot, 0);
	}
	for (int i = 0; i < n; i++) {
		const struct chat_turn *turn = &turns[i];
		if (turn->role == CHAT_TEXT) {
			add_span(b, turn->text, turn->len, 1);
			continue;
		}
		const char *s;
		size_t len;
		trimmed(turn->text, turn->len, &s, &len);
		uint8_t m = role_mask(turn->role);
		add_special(b, t->start_header, 0);
		add_str(b, role_name(turn->role), 0);
		add_special(b, t->end_header, 0);
		add_str(b, "\n\n", 0);
		add_span(b, s, len, m);
		add_special(b, t->eot, m);
	}
	if (open_assistant) {
		add_special(b, t->start_header, 0);
		add_str(b, "assistant", 0);
		add_special(b, t->end_header, 0);
		add_str(b, "\n\n", 0);
	}
}

static void encode_none(const struct chat_template *t, struct builder *b, const struct chat_turn *turns, int n)
{
	int has_system = n > 0 && turns[0].role == CHAT_SYSTEM;
	int any = 0;
	if (!has_system && t->system) {
		add_str(b, t->system, 0);
		any = 1;
	}
	for (int i = 0; i < n; i++) {
		if (any)
			add_str(b, "\n", 0);
		add_span(b, turns[i].text, turns[i].len, role_mask(turns[i].role));
		any = 1;
	}
}

static void encode_turns(const struct chat_template *t, struct builder *b, const struct chat_turn *turns, int n,
			 int open_assistant)
{
	switch (t->kind) {
	case TEMPLATE_CHATML: encode_chatml(t, b, turns, n, open_assistant); break;
	case TEMPLATE_LLAMA2: encode_llama2(t, b, turns, n, open_assistant); break;
	case TEMPLATE_LLAMA3: encode_llama3(t, b, turns, n, open_assistant); break;
	case TEMPLATE_NONE: encode_none(t, b, turns, n); break;
	}
}

void template_encode(const struct chat_template *t, const struct chat_turn *turns, int n_turns,
		     struct u32vec *ids, struct bytevec *mask)
{
	struct builder b = { .tok = t->tok, .ids = ids, .mask = mask };
	encode_turns(t, &b, turns, n_turns, 0);
	builder_done(&b);
}

void template_encode_prompt(const struct chat_template *t, const char *user, size_t len, struct u32vec *ids)
{
	struct bytevec mask = { 0 };
	struct builder b = { .tok = t->tok, .ids = ids, .mask = &mask };
	struct chat_turn turn = { CHAT_USER, user, len };
	encode_turns(t, &b, &turn, 1, 1);
	builder_done(&b);
	free(mask.data);
}

void template_encode_continuation(const struct chat_template *t, const char *user, size_t len,
				  const uint32_t *prompt_ids, size_t n_prompt, const char *answer,
				  struct u32vec *out)
{
	struct u32vec ids = { 0 };
	struct bytevec mask = { 0 };
	struct builder b = { .tok = t->tok, .ids = &ids, .mask = &mask };
	struct chat_turn turn = { CHAT_USER, user, len };
	encode_turns(t, &b, &turn, 1, 1);
	// The answer continues the prompt's last piece of text, as it would in the model's output.
	add_str(&b, answer, 1);
	builder_done(&b);
	size_t common = 0;
	while (common < n_prompt && common < ids.len && ids.data[common] == prompt_ids[common])
		common++;
	out->len = 0;
	u32vec_append(out, ids.data + common, ids.len - common);
	free(ids.data);
	free(mask.data);
}
