#!/usr/bin/env python3
"""transformers on CPU, the peer of eval-exam --mode loglik: the same checkpoint and the same exam stream (read
as JSON lines from stream2json -N), one question per forward (batch 1, no padding), eager attention, fp32, all
cores.  Per question: the prompt plus the longest option through the model, then log p(option tokens | prompt)
for every option from the log-softmax of the logits at the option positions, and the argmax.
Prints: questions/s, seconds in all; writes the scores as JSON lines to OUT.
Usage: eval_peer.py DIR EXAM.jsonl OUT"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    path, exam, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(os.cpu_count())
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    with open(exam) as f:
        questions = [json.loads(line) for line in f]

    def answer(q):
        opts = q["option_ids"]
        longest = max(opts, key=len)
        ids = torch.tensor([q["prompt"] + longest])
        # only the logits that predict the option tokens (positions P-1 .. P+L-2, kept as the last L+1 with the
        # unused final one) are formed, as eval-exam forms no others
        logits = model(input_ids=ids, logits_to_keep=len(longest) + 1).logits[0]
        logp = torch.log_softmax(logits.float(), dim=-1)
        scores = []
        for o in opts:
            if o[:-1] == longest[:len(o) - 1]:
                scores.append(sum(logp[k, t].item() for k, t in enumerate(o)))
            else:   # an option that does not share the longest one's prefix: its own forward
                lo = torch.log_softmax(model(input_ids=torch.tensor([q["prompt"] + o]),
                                             logits_to_keep=len(o) + 1).logits[0].float(), dim=-1)
                scores.append(sum(lo[k, t].item() for k, t in enumerate(o)))
        return scores

    with torch.no_grad():
        answer(questions[0])   # warm-up
        start = time.perf_counter()
        rows = [{"id": q["id"], "scores": answer(q)} for q in questions]
        secs = time.perf_counter() - start
    with open(out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"{len(questions) / secs:.2f} {secs:.3f}")


if __name__ == "__main__":
    main()
