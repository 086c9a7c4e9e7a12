// colmap.h — column mappings: which record fields (JSON keys, CSV columns) make which conversation turns.
//
// Syntax (the --columns flag, also used for the built-in defaults):
//     ITEM[,ITEM...]      ITEM = ROLE=FIELD[+FIELD...]      FIELD = NAME or NAME? (optional)
// ROLE is system, user, assistant or text (a turn each, in the order given, so "user=q1,assistant=a1,
// user=q2,assistant=a2" is a two-exchange dialogue), or id / task (one field: the record's id and task hint).
// The fields of one turn are joined with "\n", leaving out empty ones: "user=instruction+input?" is the
// alpaca rule (instruction, plus "\n" + input when input is non-empty).  A required field that the record
// lacks is a bad record; a turn whose fields are all optional and absent or empty is left out.
// Field names cannot contain ',', '+', '=' or end in '?'.
#ifndef MEDMOE_COLMAP_H
#define MEDMOE_COLMAP_H

#include <stddef.h>
#include "corpus.h"

enum colmap_target { MAP_TURN, MAP_ID, MAP_TASK };

struct colmap_field {
	char *name;
	int optional;
};

struct colmap_item {
	enum colmap_target target;
	enum turn_role role;       // for MAP_TURN
	int n_fields;
	struct colmap_field *fields;
};

struct colmap {
	char *spec;                // the text it was parsed from, for messages
	int n_items;
	struct colmap_item *items;
};

// Parses SPEC into *MAP.  Returns 0, or -1 with a message in ERR (ERRLEN bytes).
int colmap_parse(const char *spec, struct colmap *map, char *err, size_t errlen);
void colmap_free(struct colmap *map);

// The built-in mappings, tried in order when no --columns is given (docs/corpora.md lists them).
extern const char *const colmap_default_specs[];
extern const int colmap_n_defaults;

// 1 when every required field of MAP is present according to HAS.
int colmap_fits(const struct colmap *map, int (*has)(void *ctx, const char *name), void *ctx);

// How a reader hands a field's text to colmap_apply: FIELD_FOUND with *TEXT/*LEN set (valid until the
// next call), FIELD_ABSENT, or FIELD_BAD with *WHY saying what is wrong with the value.
enum colmap_lookup { FIELD_ABSENT, FIELD_FOUND, FIELD_BAD };
typedef enum colmap_lookup (*colmap_get_fn)(void *ctx, const char *name, const char **text, size_t *len,
					     const char **why);

struct rec_err;
// Appends MAP's turns to CONV and sets its id / task hint when MAP names them.  Returns 0, or -1 with ERR
// naming the field and the fault.
int colmap_apply(const struct colmap *map, colmap_get_fn get, void *ctx, struct conversation *conv,
		 struct rec_err *err);

#endif
