#!/usr/bin/env python3
"""transformers on CPU, the peer of eval-exam: the same checkpoint and the same exam stream (read as JSON lines
from stream2json -N), one question at a time (batch 1, no padding), eager attention, fp32, all cores.
  loglik (the default): per question, the prompt plus the longest option through the model, then
    log p(option tokens | prompt) for every option from the log-softmax of the logits at the option positions;
    writes {id, scores} lines.
  --generate N: greedy decoding as eval-exam --mode generate does it, with transformers' KV cache: the prompt in
    one forward, then one token per forward; the argmax over the tokenizer's ids, stopping at a special token
    (not kept) or after N tokens; the text decoded by the tokenizers library; writes {id, generated} lines.
Prints: questions/s, seconds in all (the question loop, model loading excluded); --generate also the CPU
seconds of the loop (all threads), which a shared machine disturbs less than the wall clock.
Usage: eval_peer.py [--generate N] DIR EXAM.jsonl OUT"""
import inspect
import json
import os
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM


def greedy(model, tok, special, max_new):
    """The greedy loop of one question: prefill, then one cached step per token."""
    n_ids = min(tok.get_vocab_size(), model.config.vocab_size)
    # transformers 5.x calls the KV cache `cache` (in and out), earlier versions `past_key_values`
    kv = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def answer(q):
        out = model(input_ids=torch.tensor([q["prompt"]]), use_cache=True, logits_to_keep=1)
        new = []
        while len(new) < max_new:
            nxt = int(torch.argmax(out.logits[0, -1, :n_ids]))
            if nxt in special:
                break
            new.append(nxt)
            if len(new) == max_new:
                break
            out = model(input_ids=torch.tensor([[nxt]]), use_cache=True, **{kv: getattr(out, kv)})
        return tok.decode(new, skip_special_tokens=False)
    return answer


def main():
    args = sys.argv[1:]
    max_new = 0
    if args[0] == "--generate":
        max_new, args = int(args[1]), args[2:]
    path, exam, out = args
    torch.set_num_threads(os.cpu_count())
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    with open(exam) as f:
        questions = [json.loads(line) for line in f]
    if max_new:
        tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
        answer = greedy(model, tok, special, max_new)
        with torch.no_grad():
            answer(questions[0])   # warm-up
            start, cpu = time.perf_counter(), time.process_time()
            rows = [{"id": q["id"], "generated": answer(q)} for q in questions]
            secs, cpu = time.perf_counter() - start, time.process_time() - cpu
        with open(out, "w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{len(questions) / secs:.2f} {secs:.3f} {cpu:.3f}")
        return

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
