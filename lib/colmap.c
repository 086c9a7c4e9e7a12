// colmap.c — parsing and applying column mappings (syntax in colmap.h).
#include "colmap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus_format.h"
#include "die.h"
#include "vec.h"

// Tried in order; the first one whose required fields a record (JSON) or header (CSV) has wins.  The
// alpaca rule comes first so that instruction/input/output is not taken for input/output.
const char *const colmap_default_specs[] = {
	"system=system?,user=instruction+input?,assistant=output",  // alpaca: BenTsao, medAlpaca, ChatDoctor
	"user=title+ask,assistant=answer",                          // Toyhom Chinese-medical-dialogue-data
	"user=question,assistant=answer",
	"user=ask,assistant=answer",
	"user=query,assistant=response",
	"user=prompt,assistant=response",
	"user=prompt,assistant=completion",
	"user=input,assistant=target",                              // PromptCBLUE
	"user=input,assistant=output",
	"text=text",
};
const int colmap_n_defaults = (int)(sizeof colmap_default_specs / sizeof colmap_default_specs[0]);

static const struct {
	const char *name;
	enum colmap_target target;
	enum turn_role role;
} role_names[] = {
	{ "system", MAP_TURN, ROLE_SYSTEM },
	{ "user", MAP_TURN, ROLE_USER },
	{ "assistant", MAP_TURN, ROLE_ASSISTANT },
	{ "text", MAP_TURN, ROLE_TEXT },
	{ "id", MAP_ID, ROLE_TEXT },
	{ "task", MAP_TASK, ROLE_TEXT },
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_item(char *text, struct colmap_item *item, char *err, size_t errlen)
{
	char *eq = strchr(text, '=');
	if (!eq)
		return fail(err, errlen, "'%s' is not ROLE=FIELD", text);
	*eq = '\0';
	int found = 0;
	for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
		if (strcmp(text, role_names[i].name) == 0) {
			item->target = role_names[i].target;
			item->role = role_names[i].role;
			found = 1;
		}
	if (!found)
		return fail(err, errlen, "unknown role '%s' (system, user, assistant, text, id, task)", text);
	for (char *save = NULL, *f = strtok_r(eq + 1, "+", &save); f; f = strtok_r(NULL, "+", &save)) {
		size_t n = strlen(f);
		int optional = n > 0 && f[n - 1] == '?';
		if (optional)
			f[--n] = '\0';
		if (n == 0)
			return fail(err, errlen, "empty field name after '%s='", text);
		item->fields = xrealloc(item->fields, (size_t)(item->n_fields + 1) * sizeof *item->fields);
		item->fields[item->n_fields++] = (struct colmap_field){ xstrdup(f), optional };
	}
	if (item->n_fields == 0)
		return fail(err, errlen, "no field after '%s='", text);
	if (item->target != MAP_TURN && item->n_fields != 1)
		return fail(err, errlen, "'%s' takes exactly one field", text);
	return 0;
}

int colmap_parse(const char *spec, struct colmap *map, char *err, size_t errlen)
{
	memset(map, 0, sizeof *map);
	map->spec = xstrdup(spec);
	char *copy = xstrdup(spec);
	int rc = 0, n_turns = 0;
	for (char *save = NULL, *it = strtok_r(copy, ",", &save); it && rc == 0; it = strtok_r(NULL, ",", &save)) {
		map->items = xrealloc(map->items, (size_t)(map->n_items + 1) * sizeof *map->items);
		struct colmap_item *item = &map->items[map->n_items++];
		memset(item, 0, sizeof *item);
		rc = parse_item(it, item, err, errlen);
		n_turns += item->target == MAP_TURN;
	}
	if (rc == 0 && n_turns == 0)
		rc = fail(err, errlen, "no turn (system=, user=, assistant= or text=) in '%s'", spec);
	free(copy);
	if (rc != 0)
		colmap_free(map);
	return rc;
}

void colmap_free(struct colmap *map)
{
	for (int i = 0; i < map->n_items; i++) {
		for (int k = 0; k < map->items[i].n_fields; k++)
			free(map->items[i].fields[k].name);
		free(map->items[i].fields);
	}
	free(map->items);
	free(map->spec);
	memset(map, 0, sizeof *map);
}

int colmap_fits(const struct colmap *map, int (*has)(void *ctx, const char *name), void *ctx)
{
	for (int i = 0; i < map->n_items; i++)
		for (int k = 0; k < map->items[i].n_fields; k++)
			if (!map->items[i].fields[k].optional && !has(ctx, map->items[i].fields[k].name))
				return 0;
	return 1;
}

int colmap_apply(const struct colmap *map, colmap_get_fn get, void *ctx, struct conversation *conv,
		 struct rec_err *err)
{
	struct bytevec joined = { 0 };
	int rc = 0;
	for (int i = 0; i < map->n_items && rc == 0; i++) {
		const struct colmap_item *item = &map->items[i];
		int any_required = 0;
		joined.len = 0;
		bytevec_append(&joined, "", 0);
		for (int k = 0; k < item->n_fields; k++) {
			const struct colmap_field *f = &item->fields[k];
			const char *text = NULL, *why = NULL;
			size_t len = 0;
			enum colmap_lookup got = get(ctx, f->name, &text, &len, &why);
			if (got == FIELD_BAD) {
				rec_err_set(err, f->name, "%s", why);
				rc = -1;
				break;
			}
			if (got == FIELD_ABSENT) {
				if (!f->optional) {
					rec_err_set(err, f->name, "missing or null (mapping '%s')", map->spec);
					rc = -1;
					break;
				}
				continue;
			}
			any_required |= !f->optional;
			if (len == 0)
				continue;
			if (joined.len > 0)
				bytevec_append(&joined, "\n", 1);
			bytevec_append(&joined, text, len);
		}
		if (rc != 0)
			break;
		if (item->target == MAP_ID)
			conv_set_id(conv, joined.data, joined.len);
		else if (item->target == MAP_TASK)
			conv_set_task(conv, joined.data, joined.len);
		else if (any_required || joined.len > 0)
			conv_add_turn(conv, item->role, joined.data, joined.len);
	}
	free(joined.data);
	return rc;
}
