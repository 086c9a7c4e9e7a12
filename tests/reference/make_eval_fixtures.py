#!/usr/bin/env python3
"""Write the eval-exam parity fixtures under tests/fixtures/eval/ from transformers.

  model/           a tiny Qwen3 checkpoint from bin/init-base (bf16 weights, the project's byte tokenizer)
  NAME.mpk         medmoe.exam streams from bin/tokenize on the committed exam fixtures (tests/fixtures/exam/)
  expected.json    {NAME: [{id, type, scores, predicted}]}: per question and option, transformers'
                   log p(option tokens | prompt), the sum over the option's tokens of log_softmax of the logits
                   of the sequence prompt + option (each option run on its own, no packing), and the
                   prediction: the argmax for single-answer questions; for multi-answer ones every option whose
                   probability renormalised over the options is >= 1/n_options, always with the argmax
                   (docs/eval.md).

The exam streams cover one-token option letters (CMB: "A" right after the cue; chatml: first in the assistant
turn) and two-token ones (CMExam: " A" is a space then the letter in a byte tokenizer), single- and
multi-answer questions, Chinese and English.

Needs: pip install torch transformers safetensors, and `make` (bin/init-base, bin/tokenize, bin/stream2json).
Never needed by `make test`.  Usage: tests/reference/make_eval_fixtures.py [OUTDIR]  (default tests/fixtures/eval)
"""
import json
import math
import os
import shutil
import subprocess
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(TOP, "bin")
EXAMS = os.path.join(TOP, "tests", "fixtures", "exam")

# name: (bench, exam file, extra tokenize flags)
STREAMS = {
    "cmb": ("cmb", "cmb_test.json", []),
    "cmb_val_chatml": ("cmb", "cmb_val.json", ["--template", "chatml"]),
    "cmexam": ("cmexam", "cmexam_test.csv", []),
    "cmexam_zh": ("cmexam", "cmexam_zh.csv", []),
}


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def choose(scores, letters, multi):
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    if not multi:
        return letters[best]
    top = scores[best]
    z = sum(math.exp(s - top) for s in scores)
    picked = [letters[i] for i, s in enumerate(scores) if i == best or math.exp(s - top) / z >= 1.0 / len(scores)]
    return "".join(sorted(picked))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "tests", "fixtures", "eval")
    os.makedirs(outdir, exist_ok=True)
    model_dir = os.path.join(outdir, "model")
    shutil.rmtree(model_dir, ignore_errors=True)
    run(os.path.join(BIN, "init-base"), "--arch", "qwen3", "--layers", "2", "--hidden", "64", "--heads", "4",
        "--kv-heads", "2", "--ffn", "128", "--dtype", "bf16", "--seed", "7", "-o", model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()

    expected = {}
    for name, (bench, exam_file, flags) in STREAMS.items():
        stream = os.path.join(outdir, name + ".mpk")
        run(os.path.join(BIN, "tokenize"), "-q", "--exam", bench, "--tokenizer", model_dir, *flags, "-o", stream,
            os.path.join(EXAMS, exam_file))
        records = [json.loads(line) for line in run(os.path.join(BIN, "stream2json"), "-N", stream).splitlines()]
        rows = []
        for rec in records:
            scores = []
            for opt in rec["option_ids"]:
                ids = torch.tensor([rec["prompt"] + opt])
                with torch.no_grad():
                    logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
                P = len(rec["prompt"])
                scores.append(sum(logp[P - 1 + k, tok].item() for k, tok in enumerate(opt)))
            ranked = sorted(scores, reverse=True)
            if ranked[0] - ranked[1] < 1e-3:
                print(f"warning: {name} {rec['id']}: near-tie {ranked[:2]}", file=sys.stderr)
            multi = rec["type"] == "multi"
            rows.append({"id": rec["id"], "type": rec["type"], "scores": scores,
                         "predicted": choose(scores, rec["options"], multi)})
            print(f"{name} {rec['id']}: {rows[-1]['predicted']} {[round(s, 4) for s in scores]}")
        expected[name] = rows
    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump({"meta": meta, "streams": expected}, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
