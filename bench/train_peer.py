#!/usr/bin/env python3
"""PyTorch peer of bench/train.c: training steps (forward, backward, AdamW) of an adapter on a frozen model, CPU,
fp32, all cores, the same packed input (ids (t*7919 + 13) mod V, DOCS equal documents, position_ids restarting
per document, a block-diagonal causal mask, eager attention, loss on every token inside its document).

METHOD lora:    PEFT LoRA r16, alpha 32, no dropout, on q,k,v,o,gate,up,down.
METHOD mingmoe: PEFT LoRA r16 on q,k,v,o, and on gate,up,down the same MoLoRA math as medmoe, written in torch:
                router Linear(d_in, 8) with bias, top-2 logits, softmax over the kept, 8 experts of rank 16 computed
                densely as two products (H = x A_allᵀ, gate-scaled blocks, y += Hg B_allᵀ) — MING's training path.
Prints: tokens/s and s/step of the median step, loss, peak RSS (MB).  Usage: train_peer.py DIR METHOD TOKENS DOCS REPS"""
import math
import os
import resource
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


class MoLoRALinear(torch.nn.Module):
    def __init__(self, base, n_experts=8, rank=16, alpha=32, top_k=2):
        super().__init__()
        self.base, self.N, self.r, self.k, self.s = base, n_experts, rank, top_k, alpha / rank
        d_in, d_out = base.in_features, base.out_features
        self.router = torch.nn.Linear(d_in, n_experts)
        self.A = torch.nn.Parameter(torch.empty(n_experts * rank, d_in))
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = torch.nn.Parameter(torch.zeros(d_out, n_experts * rank))

    def forward(self, x):
        logits = self.router(x)
        v, idx = logits.topk(self.k, dim=-1)
        g = torch.zeros_like(logits).scatter(-1, idx, torch.softmax(v, dim=-1))
        h = x @ self.A.t()
        hg = (h.view(*h.shape[:-1], self.N, self.r) * g.unsqueeze(-1)).view_as(h) * self.s
        return self.base(x) + hg @ self.B.t()


def main():
    path, method, T, n_docs, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"] + (["gate_proj", "up_proj", "down_proj"] if method == "lora" else [])
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets))
    if method == "mingmoe":
        for layer in model.base_model.model.model.layers:
            mlp = layer.mlp
            for name in ("gate_proj", "up_proj", "down_proj"):
                setattr(mlp, name, MoLoRALinear(getattr(mlp, name)))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
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
    labels[offsets[:-1]] = -100
    labels = torch.cat([labels[1:], torch.tensor([-100])])

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids[None], position_ids=positions[None], attention_mask=mask[None, None]).logits[0]
        loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100)
        loss.backward()
        opt.step()
        return loss.item()

    loss = step()   # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    secs = sorted(times)[(reps - 1) // 2]   # the median step, as bench/train.c
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"{T / secs:.1f} {loss:.6f} {secs:.4f} {peak:.1f}")


if __name__ == "__main__":
    main()
