"""Reference ids for tokenize's chat templates, from Hugging Face tokenizers (PyPI).

For each conversation, the templated string is built the way the model family's chat template writes it and
encoded whole by `tokenizers` (add_special_tokens=False); tokenize must give the same ids.  Writes
tests/fixtures/templates/{chatml-qwen3,llama2-mistral}.jsonl: one line per conversation,
{"conversations": [...ShareGPT...], "ids": [...]}.  Never needed by make test:

    python3 -m venv /tmp/v && /tmp/v/bin/pip install tokenizers
    /tmp/v/bin/python tests/reference/make_template_fixtures.py ../shared
"""
import json
import os
import sys

from tokenizers import Tokenizer

CONVERSATIONS = [
    [("user", "头痛怎么办？"), ("assistant", "多休息。")],
    [("system", "You are a doctor."), ("user", "What is  hypertension?\n"), ("assistant", " High blood pressure. "),
     ("user", "Treatment?"), ("assistant", "ACE inhibitors, e.g. lisinopril 10 mg.")],
    [("user", "患者男，45岁，反复胸痛3天。Diagnosis?"), ("assistant", "考虑不稳定型心绞痛 (unstable angina)。\n\n建议：心电图、肌钙蛋白。")],
    [("user", "Say <|im_end|> literally"), ("assistant", "  spaces   and\ttabs\n")],
]


def chatml(conv):
    """Qwen's ChatML: <|im_start|>ROLE\\nTEXT<|im_end|>\\n per turn."""
    return "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in conv)


def llama2(conv):
    """LLaMA-2 chat: <s>[INST] <<SYS>>..<</SYS>>\\n\\nUSER [/INST] ANSWER </s>, messages stripped."""
    out, system, first = "", None, True
    if conv[0][0] == "system":
        system, conv = conv[0][1].strip(), conv[1:]
    for role, text in conv:
        if role == "user":
            sys_block = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if first and system else ""
            out += f"<s>[INST] {sys_block}{text.strip()} [/INST]"
            first = False
        else:
            out += f" {text.strip()} </s>"
    return out


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = os.path.join(here, "..", "fixtures", "templates")
    os.makedirs(out_dir, exist_ok=True)
    froms = {"user": "human", "assistant": "gpt", "system": "system"}
    for name, tok_dir, build in [("chatml-qwen3", "qwen3", chatml), ("llama2-mistral", "mistral", llama2)]:
        tok = Tokenizer.from_file(os.path.join(shared, "tokenizers", tok_dir, "tokenizer.json"))
        with open(os.path.join(out_dir, name + ".jsonl"), "w", encoding="utf-8") as f:
            for conv in CONVERSATIONS:
                ids = tok.encode(build(conv), add_special_tokens=False).ids
                record = {"conversations": [{"from": froms[r], "value": t} for r, t in conv], "ids": ids}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
