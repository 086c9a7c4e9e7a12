// fuzz_stream — the msgpack stream reader of every schema, and each schema's record consumer.
// Input: one byte choosing the schema (tokens, exam, shard, metrics, predictions, any), then the stream.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "fuzz.h"
#include "schema.h"
#include "score_data.h"
#include "shard_write.h"
#include "stream.h"

static const char *const schemas[] = {"medmoe.tokens", "medmoe.exam", "medmoe.shard", "medmoe.metrics",
				      "medmoe.predictions", NULL};
#define N_SCHEMAS (sizeof schemas / sizeof schemas[0])

static struct schema *specs[N_SCHEMAS];

static void consume(int k, struct stream_reader *r, const msgpack_object *rec, uint32_t vocab)
{
	if (k == 0) {
		struct shard_doc doc;
		shard_doc_from_record(r->path, r->record, rec, vocab, &doc);
	} else if (k == 1) {
		static struct eval_question q;
		eval_question_read(r, rec, vocab, &q);
		eval_question_free(&q);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	if (size < 1)
		return 0;
	int k = data[0] % N_SCHEMAS;
	data++, size--;
	for (size_t i = 0; i + 1 < N_SCHEMAS; i++)
		if (!specs[i])
			specs[i] = schema_load(schemas[i]);
	// The bytes through a file: fmemopen cannot open an empty buffer.
	const char *path = fuzz_file("in.mpk", data, size);
	FILE *fp = fopen(path, "rb");
	struct stream_reader *r = stream_reader_new(fp, "fuzz.mpk");
	static volatile int whole;
	whole = 0;
	FUZZ_RUN({
		stream_read_header(r, schemas[k], 1);
		uint32_t vocab = 0;
		if (k <= 2) {
			char sha[65];
			stream_tokenizer(r, sha, &vocab);
		}
		if (schemas[k])
			schema_check_header(specs[k], r);
		msgpack_object rec;
		while (stream_next(r, &rec)) {
			if (schemas[k])
				schema_check_record(specs[k], r, &rec);
			consume(k, r, &rec, vocab);
		}
		whole = 1;
	});
	stream_close(r);
	if (k == 4 && whole) {   // score's reader of predictions, on the same bytes when they are a valid stream
		static struct pred_set set;
		FUZZ_RUN(pred_set_read(&set, path));
		pred_set_free(&set);
		memset(&set, 0, sizeof set);
	}
	fuzz_end();
	return 0;
}
