#!/usr/bin/env python3
"""Write tests/fixtures/eval/large_weights.json: transformers' option log-likelihoods on checkpoints with large
weights and a large vocabulary, where an inexact log-sum-exp over the LM head shows (checked by
tests/t/eval-exam.sh to 1e-5).

Per architecture (llama, qwen2, qwen3): bin/init-base --init-std 0.2 with a 151,936-entry vocabulary (Qwen's
size; the byte tokenizer's 265 ids, the rest of the rows never chosen by the prompts but all in every
softmax), fp32 weights, tied embeddings; the exam streams of tests/fixtures/eval (the same byte tokenizer).
Per question and option: log p(option tokens | prompt) from transformers in fp32, each option on its own
forward, log_softmax taken in fp64 over the fp32 logits (torch's fp32 logsumexp agrees to ~1e-6 here; a
plain sequential fp32 sum of exp(logit - max) is off by ~1e-4): "scores"; the same with the whole model in
fp64: "scores_fp64" (transformers' own fp32 is within ~5e-6 of it on these checkpoints).

Needs: pip install torch transformers safetensors, and `make` (bin/init-base, bin/stream2json).  Never needed by
`make test`.  Usage: tests/reference/make_loglik_fixtures.py [OUT]  (default tests/fixtures/eval/large_weights.json)
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import AutoModelForCausalLM

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(TOP, "bin")
EVAL = os.path.join(TOP, "tests", "fixtures", "eval")
STREAMS = ["cmb", "cmb_val_chatml", "cmexam", "cmexam_zh"]
SHAPE = ["--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--ffn", "128",
         "--vocab", "151936", "--tied", "--init-std", "0.2", "--seed", "7"]
ARCHS = ["llama", "qwen2", "qwen3"]


def read_records(stream):
    out = subprocess.run([os.path.join(BIN, "stream2json"), "-N", stream], check=True, capture_output=True,
                         text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def option_scores(model, rec):
    scores = []
    for opt in rec["option_ids"]:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([rec["prompt"] + opt])).logits[0]
        logp = torch.log_softmax(logits.double(), dim=-1)
        P = len(rec["prompt"])
        scores.append(sum(logp[P - 1 + k, tok].item() for k, tok in enumerate(opt)))
    return scores


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(EVAL, "large_weights.json")
    torch.set_num_threads(os.cpu_count())
    result = {"meta": {"transformers": transformers.__version__, "torch": torch.__version__,
                       "streams": STREAMS}, "cases": {}}
    with tempfile.TemporaryDirectory() as work:
        for arch in ARCHS:
            args = ["--arch", arch] + SHAPE
            d = os.path.join(work, arch)
            subprocess.run([os.path.join(BIN, "init-base"), *args, "-o", d], check=True)
            model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
            model64 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64, attn_implementation="eager").eval()
            streams = {}
            for name in STREAMS:
                streams[name] = [{"id": r["id"], "scores": option_scores(model, r),
                                  "scores_fp64": option_scores(model64, r)}
                                 for r in read_records(os.path.join(EVAL, name + ".mpk"))]
            result["cases"][arch] = {"init_base": args, "streams": streams}
            print(arch, [s["scores"][0] for s in streams["cmb"]])
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
