#!/usr/bin/env python3
"""transformers on CPU, the peer of bench/model_forward.c: the same checkpoint, the same packed input
(ids (t*7919 + 13) mod V, DOCS equal documents, position_ids restarting per document, a block-diagonal causal
mask, eager attention), the same loss (mean next-token cross-entropy inside documents), fp32, all cores.
Prints: tokens/s, loss, seconds per forward.  Usage: model_forward_peer.py DIR TOKENS DOCS REPS"""
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    path, T, n_docs, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(os.cpu_count())
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager").eval()
    V = model.config.vocab_size
    ids = torch.tensor([(t * 7919 + 13) % V for t in range(T)])
    offsets = [T * d // n_docs for d in range(n_docs + 1)]
    positions = torch.cat([torch.arange(b - a) for a, b in zip(offsets[:-1], offsets[1:])])
    allowed = torch.zeros(T, T, dtype=torch.bool)
    for a, b in zip(offsets[:-1], offsets[1:]):
        allowed[a:b, a:b] = torch.tril(torch.ones(b - a, b - a, dtype=torch.bool))
    mask = torch.zeros(T, T)
    mask[~allowed] = torch.finfo(torch.float32).min
    labels = ids.clone()
    labels[offsets[:-1]] = -100        # a document's first token is not predicted from the previous document
    labels = torch.cat([labels[1:], torch.tensor([-100])])

    def forward():
        logits = model(input_ids=ids[None], position_ids=positions[None], attention_mask=mask[None, None]).logits[0]
        return torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100).item()

    with torch.no_grad():
        loss = forward()   # warm-up
        start = time.perf_counter()
        for _ in range(reps):
            loss = forward()
        secs = (time.perf_counter() - start) / reps
    print(f"{T / secs:.1f} {loss:.6f} {secs:.4f}")


if __name__ == "__main__":
    main()
