"""Reference ids for init-base --bpe-corpus, from Hugging Face tokenizers (PyPI).

tests/fixtures/bpe/tokenizer.json is what `init-base --bpe-corpus corpus.txt --bpe-merges 300` writes (the test
checks that it still does, byte for byte); this script encodes every line of corpus.txt and texts.txt with
`tokenizers` (add_special_tokens=False) and writes ids.jsonl, one {"text", "ids"} per line: tokenize must give
the same ids, so the learned vocabulary is a real tokenizer.json.  Never needed by make test:

    python3 -m venv /tmp/v && /tmp/v/bin/pip install tokenizers
    bin/init-base --arch qwen3 --bpe-corpus tests/fixtures/bpe/corpus.txt --bpe-merges 300 -o /tmp/bpe
    cp /tmp/bpe/tokenizer.json tests/fixtures/bpe/
    /tmp/v/bin/python tests/reference/make_bpe_fixtures.py
"""
import json
import os

from tokenizers import Tokenizer


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "bpe")
    tok = Tokenizer.from_file(os.path.join(here, "tokenizer.json"))
    with open(os.path.join(here, "ids.jsonl"), "w", encoding="utf-8") as out:
        for name in ("corpus.txt", "texts.txt"):
            with open(os.path.join(here, name), encoding="utf-8") as f:
                for line in f:
                    text = line.rstrip("\n")
                    ids = tok.encode(text, add_special_tokens=False).ids
                    out.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
