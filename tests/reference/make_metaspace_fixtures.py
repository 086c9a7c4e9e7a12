#!/usr/bin/env python3
"""Write the Metaspace tokenizer fixtures under tests/fixtures/metaspace/ (checked by
tests/unit/test_tokenizer_metaspace.c) with Hugging Face `tokenizers` from PyPI.

  tiny.json      a small SentencePiece-style BPE tokenizer of our own (byte fallback, <unk> <s> </s>, the
                 LLaMA-2 legacy form: Prepend + Replace normalizers), trained here on the TRAIN texts below
  expected.json  variants: {NAME: {normalizer, pre_tokenizer, decoder}}: the same vocabulary and merges
                 re-expressed with a Metaspace pre-tokenizer (replacement "▁", prepend_scheme first / always /
                 never, split true / false, and the older add_prefix_space form) and a Metaspace decoder or
                 transformers' Replace/ByteFallback/Fuse/Strip one ("first_nosplit" is what transformers'
                 LlamaConverter writes for legacy=False: the non-legacy LLaMA-2/Mistral form);
                 texts: our edge cases (leading and repeated spaces, added tokens mid-text and at the start,
                 "▁" in the input, empty strings, CJK, byte fallback);
                 tiny: {VARIANT: [{ids, decoded}] per text};
                 mistral: {VARIANT: {texts: [{ids, decoded}], edge: {LINE: ids}, corpus: {LINE: ids},
                 corpus_lines}}: the shared Mistral tokenizer (../shared/tokenizers/mistral) under each
                 variant; for the shared edge-cases.jsonl and the first corpus_lines lines of corpus.jsonl
                 (all of it for first_nosplit and always_split_msdecoder, 500 lines for the others, none for
                 the variants that change nearly every line) only the lines whose ids differ
                 from the shared legacy reference ids (*.ids.jsonl) are stored, by line number (0-based): the
                 test takes every other line's ids from the shared file.
All ids are encode(text, add_special_tokens=False); decoded is decode(ids, skip_special_tokens=False).  The
texts of ../shared are not copied here.

Needs: pip install tokenizers.  Never needed by `make test`.
Usage: tests/reference/make_metaspace_fixtures.py [OUTDIR]  (default tests/fixtures/metaspace)
"""
import copy
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, normalizers, trainers

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("MEDMOE_SHARED", os.path.join(TOP, "..", "shared"))
M = "\u2581"

TRAIN = [
    "The patient presented with fever, cough and shortness of breath for three days.",
    "Chest X-ray showed bilateral infiltrates; the diagnosis was community-acquired pneumonia.",
    "Amoxicillin 500 mg three times a day was started, and the fever resolved after 48 hours.",
    "Which of the following is the most likely diagnosis?  A. asthma  B. pneumonia  C. heart failure",
    "Insulin is produced by the beta cells of the pancreas and lowers the blood glucose level.",
    "患者男性，45岁，发热咳嗽三天，胸片示双肺浸润影，诊断为社区获得性肺炎。",
    "下列哪项是最可能的诊断？ A. 哮喘 B. 肺炎 C. 心力衰竭",
    "the the the of of and and patient patient fever fever diagnosis diagnosis",
]

TEXTS = [
    "", " ", "   ", "\n", "Hello world", " Hello world", "  two leading spaces", "trailing ", "trailing two  ",
    "a  b   c", "tab\tand\nnewline", "<s>", "<s>Hello", "<s> Hello", "Hello<s>world", "Hello <s> world",
    "Hello</s>", "</s></s>", "x<unk>y", " <s>after a space", M, M + M + "x", "x" + M + "y", "A" + M + " B",
    "The patient had fever.", "The  patient   had fever.", "患者男性，45岁，发热。", "中文 医学 考试",
    "emoji 😀 ok", "Ω≈ç√ combining é", "Dose: 5 mg/kg q8h (max 2 g/day)",
    "Question: which is correct?\nA. one\nB. two\nAnswer:", "x" * 40 + " " + "y" * 3,
]


def tiny_tokenizer():
    """A small BPE with byte fallback in the LLaMA-2 legacy form, trained on TRAIN."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(M), normalizers.Replace(" ", M)])
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(TRAIN, trainer=trainer)
    spec = json.loads(tok.to_str())
    # byte-fallback tokens <0x00>..<0xFF> right after the specials, as SentencePiece lays them out
    vocab = spec["model"]["vocab"]
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    new = {}
    for t, _ in ordered[:3]:
        new[t] = len(new)
    for b in range(256):
        new["<0x%02X>" % b] = len(new)
    for t, _ in ordered[3:]:
        if t not in new:
            new[t] = len(new)
    spec["model"]["vocab"] = new
    for a in spec["added_tokens"]:
        a["id"] = new[a["content"]]
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": M}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    spec["pre_tokenizer"] = None
    return spec


def metaspace(scheme=None, split=None, **extra):
    d = {"type": "Metaspace", "replacement": M}
    if scheme is not None:
        d["prepend_scheme"] = scheme
    if split is not None:
        d["split"] = split
    d.update(extra)
    return d


CORPUS_LINES = 500
FULL_CORPUS = {"first_nosplit", "always_split_msdecoder"}
EDGE_ONLY = {"never_split_msdecoder", "never_nosplit_msdecoder", "no_prefix_space_json", "nfkc_always_split"}

HF_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": M}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def variants():
    v = {"first_nosplit": {"normalizer": None, "pre_tokenizer": metaspace("first", False), "decoder": HF_DECODER}}
    for scheme in ("first", "always", "never"):
        for split in (True, False):
            name = f"{scheme}_{'split' if split else 'nosplit'}_msdecoder"
            v[name] = {"normalizer": None, "pre_tokenizer": metaspace(scheme, split),
                       "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, metaspace(scheme, split)]}}
    # the form tokenizers wrote before prepend_scheme existed: add_prefix_space, split implied true
    v["add_prefix_space_json"] = {"normalizer": None, "pre_tokenizer": metaspace(add_prefix_space=True),
                                  "decoder": metaspace(add_prefix_space=True)}
    # add_prefix_space false must come with prepend_scheme never (tokenizers refuses it otherwise)
    v["no_prefix_space_json"] = {"normalizer": None, "pre_tokenizer": metaspace("never", add_prefix_space=False),
                                 "decoder": metaspace("never", add_prefix_space=False)}
    # Metaspace next to a normalizer: NFKC first (full-width characters and the ideographic space)
    v["nfkc_always_split"] = {"normalizer": {"type": "NFKC"}, "pre_tokenizer": metaspace("always", True),
                              "decoder": metaspace("always", True)}
    return v


def apply(spec, variant):
    s = copy.deepcopy(spec)
    for k, val in variant.items():
        s[k] = val
    return Tokenizer.from_str(json.dumps(s))


def run(tok, texts):
    rows = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        rows.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return rows


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "tests", "fixtures", "metaspace")
    os.makedirs(out, exist_ok=True)
    tiny = tiny_tokenizer()
    with open(os.path.join(out, "tiny.json"), "w") as f:
        json.dump(tiny, f, ensure_ascii=False, indent=1)
        f.write("\n")
    vs = variants()
    result = {"meta": {"tokenizers": tokenizers.__version__}, "variants": vs, "texts": TEXTS, "tiny": {},
              "mistral": {}}
    for name, v in vs.items():
        result["tiny"][name] = run(apply(tiny, v), TEXTS)
    mistral_dir = os.path.join(SHARED, "tokenizers", "mistral")
    with open(os.path.join(mistral_dir, "tokenizer.json")) as f:
        mistral = json.load(f)
    refs = {}
    for part, texts_file in (("edge", "edge-cases"), ("corpus", "corpus")):
        with open(os.path.join(SHARED, "tokenizers", texts_file + ".jsonl")) as f:
            texts = [json.loads(line)["text"] for line in f]
        with open(os.path.join(mistral_dir, texts_file + ".ids.jsonl")) as f:
            ids = [json.loads(line)["ids"] for line in f]
        refs[part] = (texts, ids)
    for name, v in vs.items():
        tok = apply(mistral, v)
        row = {"texts": run(tok, TEXTS)}
        for part, (texts, ids) in refs.items():
            # the corpus: its first CORPUS_LINES lines, and not under the variants where nearly every line
            # differs from the legacy ids (the fixture stays small; the edge cases cover them)
            n = len(texts) if part == "edge" or name in FULL_CORPUS else 0 if name in EDGE_ONLY else CORPUS_LINES
            row[part] = {str(i): got for i, (t, want) in enumerate(zip(texts[:n], ids[:n]))
                         if (got := tok.encode(t, add_special_tokens=False).ids) != want}
        row["corpus_lines"] = min(n, len(refs["corpus"][0]))
        result["mistral"][name] = row
        print(name, "edge lines differing from legacy:", len(row["edge"]), "corpus:", len(row["corpus"]))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(result, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
