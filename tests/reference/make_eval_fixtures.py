#!/usr/bin/env python3
"""Write the eval-exam parity fixtures under tests/fixtures/eval/ from transformers.

  model/           a tiny Qwen3 checkpoint from bin/init-base (bf16 weights, the project's byte tokenizer)
  NAME.mpk         medmoe.exam streams from bin/tokenize on the committed exam fixtures (tests/fixtures/exam/)
  expected.json    streams: {NAME: [{id, type, scores, predicted}]}: per question and option, transformers'
                   log p(option tokens | prompt), the sum over the option's tokens of log_softmax of the logits
                   of the sequence prompt + option (each option run on its own, no packing), and the
                   prediction: the argmax for single-answer questions; for multi-answer ones every option whose
                   probability renormalised over the options is >= 1/n_options, always with the argmax
                   (docs/eval.md);
                   generate: {NAME: [{id, generated}]}: greedy decoding of GEN_TOKENS tokens at most, stopping
                   at a special token (not kept), decoded by the tokenizers library (lossy UTF-8: one U+FFFD per
                   maximal ill-formed subpart);
                   lora: {NAME: [{id, scores}]}: the option log-probabilities with lora_run/ applied, through
                   PEFT (PeftModel over the same base).
  lora_run/        a LoRA adapter (rank 4 on every linear) from bin/train-experts: 5 steps on a small made-up
                   two-task corpus, lr 5e-2 so that it moves the scores well beyond the tolerance.

The exam streams cover one-token option letters (CMB: "A" right after the cue; chatml: first in the assistant
turn) and two-token ones (CMExam: " A" is a space then the letter in a byte tokenizer), single- and
multi-answer questions, Chinese and English.

Needs: pip install torch transformers safetensors peft, and `make` (bin/init-base, bin/tokenize, bin/stream2json).
Never needed by `make test`.  Usage: tests/reference/make_eval_fixtures.py [OUTDIR]  (default tests/fixtures/eval)
"""
import json
import math
import os
import shutil
import subprocess
import sys

import tempfile

import torch
import transformers
from peft import PeftModel
from tokenizers import Tokenizer
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
LORA_STREAMS = ["cmb", "cmexam"]
GEN_TOKENS = 8
GEN_STREAMS = ["cmexam", "cmb_val_chatml"]


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def option_scores(model, rec):
    """log p(option tokens | prompt) per option, each option run with the prompt on its own."""
    scores = []
    for opt in rec["option_ids"]:
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([rec["prompt"] + opt])).logits[0].double(), dim=-1)
        P = len(rec["prompt"])
        scores.append(sum(logp[P - 1 + k, tok].item() for k, tok in enumerate(opt)))
    return scores


def read_records(stream):
    return [json.loads(line) for line in run(os.path.join(BIN, "stream2json"), "-N", stream).splitlines()]


def train_lora(model_dir, run_dir):
    """A LoRA run from bin/train-experts on a small two-task corpus; only its adapter files are kept."""
    with tempfile.TemporaryDirectory() as work:
        inputs = []
        for task in ("anatomy", "pharmacy"):
            path = os.path.join(work, task + ".jsonl")
            with open(path, "w") as f:
                for i in range(8):
                    conv = [{"from": "human", "value": f"{task} question {i}: which option is right?"},
                            {"from": "gpt", "value": f"The answer is {'ABCD'[i % 4]}: {task} fact {i}."}]
                    f.write(json.dumps({"conversations": conv}) + "\n")
            out = os.path.join(work, task + ".mpk")
            run(os.path.join(BIN, "tokenize"), "-q", "--tokenizer", model_dir, "--template", "chatml", "--task", task,
                "-o", out, path)
            inputs.append(out)
        mixed = os.path.join(work, "mixed.mpk")
        run(os.path.join(BIN, "mix-tasks"), "-q", "--seed", "1", "-o", mixed, *inputs)
        run(os.path.join(BIN, "shard"), "-q", "--force", "--seq-len", "256", "-o", os.path.join(work, "shards"), mixed)
        trained = os.path.join(work, "run")
        run(os.path.join(BIN, "train-experts"), "-q", "--force", "--base", model_dir, "--method", "lora", "--rank", "4",
            "--steps", "5", "--lr", "5e-2", "--seed", "1", "-o", trained, os.path.join(work, "shards"))
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
        shutil.copy(os.path.join(trained, "adapter.safetensors"), run_dir)
        with open(os.path.join(trained, "adapter_config.json")) as f:
            config = json.load(f)
        # the base by relative path: the fixture must not name the machine it was made on
        config["base"]["path"] = config["base_model_name_or_path"] = "../model"
        with open(os.path.join(run_dir, "adapter_config.json"), "w") as f:
            json.dump(config, f, indent=1)
            f.write("\n")


def peft_model(model_dir, run_dir):
    """PEFT reads adapter_model.safetensors; the run names it adapter.safetensors (same PEFT tensor names)."""
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    with tempfile.TemporaryDirectory() as peft_dir:
        shutil.copy(os.path.join(run_dir, "adapter_config.json"), peft_dir)
        shutil.copy(os.path.join(run_dir, "adapter.safetensors"), os.path.join(peft_dir, "adapter_model.safetensors"))
        return PeftModel.from_pretrained(base, peft_dir).eval()


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
        rows = []
        for rec in read_records(stream):
            scores = option_scores(model, rec)
            ranked = sorted(scores, reverse=True)
            if ranked[0] - ranked[1] < 1e-3:
                print(f"warning: {name} {rec['id']}: near-tie {ranked[:2]}", file=sys.stderr)
            multi = rec["type"] == "multi"
            rows.append({"id": rec["id"], "type": rec["type"], "scores": scores,
                         "predicted": choose(scores, rec["options"], multi)})
            print(f"{name} {rec['id']}: {rows[-1]['predicted']} {[round(s, 4) for s in scores]}")
        expected[name] = rows
    # Greedy decoding, recomputing the whole sequence at every step (no cache: independent of eval-exam's KV cache).
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    generated = {}
    for name in GEN_STREAMS:
        stream = os.path.join(outdir, name + ".mpk")
        rows = []
        for rec in read_records(stream):
            ids = list(rec["prompt"])
            new = []
            with torch.no_grad():
                for _ in range(GEN_TOKENS):
                    logits = model(input_ids=torch.tensor([ids])).logits[0, -1, :tok.get_vocab_size()]
                    nxt = int(torch.argmax(logits))
                    if nxt in special:
                        break
                    new.append(nxt)
                    ids.append(nxt)
            text = tok.decode(new, skip_special_tokens=False)
            rows.append({"id": rec["id"], "ids": new, "generated": text})
            print(f"{name} {rec['id']}: generated {text!r}")
        generated[name] = rows
    # The same option scores with the LoRA adapter applied through PEFT.
    lora_dir = os.path.join(outdir, "lora_run")
    train_lora(model_dir, lora_dir)
    lora_model = peft_model(model_dir, lora_dir)
    lora = {}
    for name in LORA_STREAMS:
        lora[name] = [{"id": rec["id"], "scores": option_scores(lora_model, rec)}
                      for rec in read_records(os.path.join(outdir, name + ".mpk"))]
        print(f"{name} with lora: {[[round(x, 4) for x in r['scores']] for r in lora[name]]}")

    import peft
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "peft": peft.__version__,
            "gen_tokens": GEN_TOKENS}
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump({"meta": meta, "streams": expected, "generate": generated, "lora": lora}, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
