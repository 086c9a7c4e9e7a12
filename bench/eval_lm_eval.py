#!/usr/bin/env python3
"""lm-evaluation-harness on CPU, a second peer of eval-exam --mode loglik: its HFLM model (transformers
underneath, as `lm_eval --model hf --model_args pretrained=DIR` builds it, batch size 1, fp32, all cores) scores
the same exam stream (JSON lines from stream2json -N): per question, one loglikelihood request per option whose
context is the prompt and whose continuation is the option, given as the same token ids (HFLM's
_loglikelihood_tokens, what its loglikelihood calls after tokenizing), so both sides score exactly the same
tokens; lm-eval groups the options that share a context+prefix into one forward, as it does for its own
multiple-choice tasks.
Prints: questions/s, seconds in all; writes the scores as JSON lines to OUT.
Usage: eval_lm_eval.py DIR EXAM.jsonl OUT"""
import json
import os
import sys
import time

import torch
from lm_eval.models.huggingface import HFLM


def main():
    path, exam, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(os.cpu_count())
    lm = HFLM(pretrained=path, device="cpu", batch_size=1, dtype="float32")
    with open(exam) as f:
        questions = [json.loads(line) for line in f]
    requests, owner = [], []
    for i, q in enumerate(questions):
        for opt in q["option_ids"]:
            requests.append((("", ""), q["prompt"], opt))
            owner.append(i)
    lm._loglikelihood_tokens(requests[:len(questions[0]["option_ids"])], disable_tqdm=True)   # warm-up
    start = time.perf_counter()
    results = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    secs = time.perf_counter() - start
    scores = [[] for _ in questions]
    for i, (logprob, _greedy) in zip(owner, results):
        scores[i].append(logprob)
    with open(out, "w") as f:
        for q, s in zip(questions, scores):
            f.write(json.dumps({"id": q["id"], "scores": s}) + "\n")
    print(f"{len(questions) / secs:.2f} {secs:.3f}")


if __name__ == "__main__":
    main()
