// fuzz_tokenizer — a tokenizer.json loaded, then a short text (the input's tail after the JSON, or a fixed
// mixed-script string) encoded and decoded again.
#include <string.h>

#include "fuzz.h"
#include "tokenizer.h"
#include "vec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	const uint8_t *part[2];
	size_t len[2];
	size_t n = fuzz_parts(data, size, part, len, 2);
	const char *path = fuzz_file("tokenizer.json", part[0], len[0]);
	static const char fixed[] = "Hello 世界, the patient's BP 120/80 mmHg. 高血压\n\t  ok";
	const char *text = n > 1 ? (const char *)part[1] : fixed;
	size_t text_len = n > 1 ? len[1] : sizeof fixed - 1;
	if (text_len > 4096 || !utf8_valid(text, text_len))
		text = fixed, text_len = sizeof fixed - 1;
	static struct tokenizer *volatile tok;
	static struct u32vec ids;
	static struct bytevec back;
	tok = NULL;
	FUZZ_RUN({
		tok = tokenizer_load(path);
		ids.len = 0;
		tokenizer_encode(tok, text, text_len, &ids);
		back.len = 0;
		tokenizer_decode(tok, ids.data, ids.len, &back);
	});
	tokenizer_free(tok);
	fuzz_end();
	return 0;
}
