"""Peer for bench/tokenize.sh: builds the text set and times Hugging Face tokenizers on it."""
import glob
import json
import os
import sys
import time


def texts_from(value):
    """Every string in a JSON value (instruction corpora: the fields people write)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from texts_from(v)
    elif isinstance(value, list):
        for v in value:
            yield from texts_from(v)


def build(data_dir, out_path):
    corpora = ["chatdoctor/chatdoctor5k.json", "medical_meadow/medical_meadow_small.json",
               "huatuo_llama_med_chinese/data/llama_data.json", "huatuo_llama_med_chinese/data-literature/liver_cancer.json",
               "medicalgpt_sft/data/sft/medical_sft_1K_format.jsonl", "promptcblue/toy_examples/train.json",
               "covid_dialogue/CovidDialog/Chinese-COVID-dialogue-code/data/train_data.json",
               "medqa/data_clean/questions/US/dev.jsonl", "medqa/data_clean/questions/Mainland/dev.jsonl",
               "medmcqa/dev.json"]
    with open(out_path, "w", encoding="utf-8") as out:
        for rel in corpora:
            path = os.path.join(data_dir, rel)
            with open(path, encoding="utf-8") as f:
                raw = f.read()
            if raw.lstrip().startswith("["):
                records = json.loads(raw)
            else:
                records = [json.loads(line) for line in raw.splitlines() if line.strip()]
            for rec in records:
                text = "\n".join(t for t in texts_from(rec) if t)
                if text:
                    out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


def read_texts(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def main():
    cmd = sys.argv[1]
    if cmd == "texts":
        build(sys.argv[2], sys.argv[3])
    elif cmd == "bytes":
        print(sum(len(t.encode("utf-8")) for t in read_texts(sys.argv[2])))
    elif cmd == "encode":
        # Two times: encode_batch alone, and end to end (load tokenizer.json, read the JSON lines, encode),
        # which is what `tokenize` is timed on.
        start_all = time.perf_counter()
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(sys.argv[2])
        texts = read_texts(sys.argv[3])
        start = time.perf_counter()
        tok.encode_batch(texts, add_special_tokens=False)
        end = time.perf_counter()
        print(f"{end - start:.4f} {end - start_all:.4f}")


if __name__ == "__main__":
    main()
