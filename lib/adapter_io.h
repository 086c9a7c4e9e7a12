// adapter_io.h — an adapter on disk: RUN/adapter.safetensors + RUN/adapter_config.json, and the optimizer
// state a resumed run needs.
//
// adapter_config.json holds "format": "medmoe.adapter" (version 1), the method and every hyperparameter of
// struct adapter_config, the base model's identity ("base": directory, architecture, sha256 of its config.json
// and of its tokenizer.json), the task table ("tasks": [{id, name}]) and the trainer's settings ("training").
// For --method lora it also carries PEFT's LoraConfig fields (peft_type, r, lora_alpha, lora_dropout,
// target_modules, use_rslora, task_type), and the tensor names are PEFT's, so PEFT can read a lora run.
// Tensor names: adapter.h.  Every file is written atomically (lib/outfile.h).
//
// Evaluating a run (eval-exam --adapter RUN):
//   struct model *m = model_load(base);
//   struct adapter *a = adapter_load(run, m);          // refuses a run trained on another base
//   model_set_adapter(m, a, task_id);                  // task_id: moelora's gate (RUN's "tasks" table)
//   ... model_forward / model_decode ...
//   model_set_adapter(m, NULL, 0); adapter_free(a); model_free(m);
#ifndef MEDMOE_ADAPTER_IO_H
#define MEDMOE_ADAPTER_IO_H

#include <jansson.h>

#include "adapter.h"
#include "model.h"

// The linear shapes of M (d_in, d_out per target), what adapter_new wants.
void adapter_model_dims(const struct model *m, int64_t dims[N_TARGETS][2]);
// adapter_new for model M's geometry.
struct adapter *adapter_new_for_model(const struct adapter_config *cfg, const struct model *m);

// sha256 (hex) of M's config.json; "" for a model made in memory.
void adapter_base_config_sha256(const struct model *m, char out[65]);

// Write DIR/adapter.safetensors and DIR/adapter_config.json.  TASKS ([{id, name}]) and TRAINING (a map) are
// stored as given (either may be NULL).
void adapter_save(const struct adapter *a, const struct model *m, const char *dir, const json_t *tasks,
		  const json_t *training);
// The two halves of adapter_save: the tensors (F32) to PATH, a config object to PATH (merge-adapters writes an
// experts-only adapter whose base identity is the merged checkpoint, not a loaded model).
void adapter_save_tensors(const struct adapter *a, const char *path);
void adapter_config_write(const json_t *root, const char *path);
// The adapter_config.json object (caller json_decref's).
json_t *adapter_config_json(const struct adapter *a, const struct model *m, const json_t *tasks,
			    const json_t *training);
// Limits on what adapter_config.json may ask for (the methods' defaults: 8 experts of rank 16, 64-d task
// embeddings, 4096-entry queues of 128-d keys).
#define ADAPTER_MAX_EXPERTS 1024
#define ADAPTER_MAX_RANK 65536
#define ADAPTER_MAX_TASKS 65536
#define ADAPTER_MAX_DIM 65536
#define ADAPTER_MAX_QUEUE (1 << 24)
#define ADAPTER_MAX_QUEUE_VALUES (1ull << 32)

// Read RUN_DIR's adapter for base model M: the config (every field range-checked before it is used; the
// parameters it asks for must be in adapter.safetensors before anything is allocated), the base identity (a
// checkpoint whose config.json or tokenizer differs is refused, exit 65, naming both hashes), every tensor with
// its shape, every value finite (a NaN adapter is refused naming the tensor).
struct adapter *adapter_load(const char *run_dir, const struct model *m);
// The adapter_config.json of RUN_DIR (caller json_decref's); exit 65 when missing or malformed.
json_t *adapter_config_read(const char *run_dir);

// Optimizer state: the parameters (exact fp32), AdamW m and v, the sparsedoctor queues and their positions.
// Loading refuses (exit 65) a tensor of another size, a non-finite value, a negative second moment, and queue
// positions outside the ring.
void adapter_state_save(const struct adapter *a, const char *path);
void adapter_state_load(struct adapter *a, const char *path);

#endif
