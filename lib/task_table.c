// task_table.c — stable task ids (see task_table.h for the rule).
#include "task_table.h"
#include "die.h"

#include <stdlib.h>
#include <string.h>

size_t task_table_intern(struct task_table *tt, const char *name, size_t len)
{
	for (size_t i = 0; i < tt->n; i++)
		if (strlen(tt->tasks[i].name) == len && memcmp(tt->tasks[i].name, name, len) == 0)
			return i;
	tt->tasks = xrealloc(tt->tasks, (tt->n + 1) * sizeof *tt->tasks);
	tt->tasks[tt->n] = (struct task_entry){ .name = xstrndup(name, len), .id = -1 };
	return tt->n++;
}

static void carry(struct task_table *tt, const struct stream_reader *r, size_t i, int64_t id)
{
	struct task_entry *t = &tt->tasks[i];
	if (t->id >= 0 && t->id != id)
		die_data(r->path, 0, "tasks", "task \"%s\" has id %lld here but id %lld in %s", t->name,
			 (long long)id, (long long)t->id, t->id_source);
	for (size_t j = 0; j < tt->n; j++)
		if (j != i && tt->tasks[j].id == id)
			die_data(r->path, 0, "tasks", "id %lld is task \"%s\" here but task \"%s\" in %s", (long long)id,
				 t->name, tt->tasks[j].name, tt->tasks[j].id_source);
	if (t->id < 0) {
		t->id = id;
		t->id_source = xstrdup(r->path);
	}
}

int task_table_read_header(struct task_table *tt, const struct stream_reader *r)
{
	const msgpack_object *tasks = stream_header_get(r, "tasks");
	if (!tasks || tasks->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (tasks->type != MSGPACK_OBJECT_ARRAY)
		die_data(r->path, 0, "tasks", "not an array");
	for (uint32_t k = 0; k < tasks->via.array.size; k++) {
		const msgpack_object *e = &tasks->via.array.ptr[k];
		const msgpack_object *name = msgpack_map_get(e, "name");
		const msgpack_object *id = msgpack_map_get(e, "id");
		if (!name || name->type != MSGPACK_OBJECT_STR || !id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    id->via.u64 > UINT32_MAX)
			die_data(r->path, 0, "tasks", "entry %u: needs a string name and an id in 0..2^32-1", k);
		size_t i = task_table_intern(tt, name->via.str.ptr, name->via.str.size);
		carry(tt, r, i, (int64_t)id->via.u64);
	}
	return 1;
}

static int by_name(const void *a, const void *b)
{
	const struct task_entry *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static int id_taken(const struct task_table *tt, int64_t id)
{
	for (size_t i = 0; i < tt->n; i++)
		if (tt->tasks[i].id == id)
			return 1;
	return 0;
}

void task_table_assign(struct task_table *tt)
{
	struct task_entry **order = xmalloc((tt->n ? tt->n : 1) * sizeof *order);
	for (size_t i = 0; i < tt->n; i++)
		order[i] = &tt->tasks[i];
	qsort(order, tt->n, sizeof *order, by_name);
	int64_t next = 0;
	for (size_t i = 0; i < tt->n; i++) {
		if (order[i]->id >= 0)
			continue;
		while (id_taken(tt, next))
			next++;
		order[i]->id = next++;
	}
	free(order);
}

static int by_id(const void *a, const void *b)
{
	const struct task_entry *const *x = a, *const *y = b;
	return ((*x)->id > (*y)->id) - ((*x)->id < (*y)->id);
}

void task_table_pack(msgpack_packer *pk, const struct task_table *tt)
{
	const struct task_entry **order = xmalloc((tt->n ? tt->n : 1) * sizeof *order);
	for (size_t i = 0; i < tt->n; i++)
		order[i] = &tt->tasks[i];
	qsort(order, tt->n, sizeof *order, by_id);
	pack_str(pk, "tasks");
	msgpack_pack_array(pk, tt->n);
	for (size_t i = 0; i < tt->n; i++) {
		msgpack_pack_map(pk, 4);
		pack_kv_str(pk, "name", order[i]->name);
		pack_kv_int(pk, "id", order[i]->id);
		pack_kv_int(pk, "examples", (int64_t)order[i]->examples);
		pack_kv_int(pk, "tokens", (int64_t)order[i]->tokens);
	}
	free(order);
}

void task_table_free(struct task_table *tt)
{
	for (size_t i = 0; i < tt->n; i++) {
		free(tt->tasks[i].name);
		free((char *)tt->tasks[i].id_source);
	}
	free(tt->tasks);
	memset(tt, 0, sizeof *tt);
}
