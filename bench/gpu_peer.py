#!/usr/bin/env python3
"""GPU peer of bench/train.c for bench/gpu.sh: training steps (forward, backward, AdamW) of an adapter on a frozen
model with transformers + PEFT on one CUDA GPU, bf16 weights and activations, SDPA attention (one causal document,
so PyTorch picks its flash kernel), no gradient checkpointing, the adapter's parameters in f32 (PEFT's default
autocast_adapter_dtype, so the adapter path computes in f32 as PEFT always does), AdamW lr 1e-4.  The same token
ids as bench/train.c ((t*7919 + 13) mod V), the loss on every next token.

METHOD lora:    PEFT LoRA r16, alpha 32, no dropout, on q,k,v,o,gate,up,down.
METHOD mingmoe: PEFT LoRA r16 on q,k,v,o, and on gate,up,down the same MoLoRA math as medmoe in torch (as
                bench/train_peer.py on the CPU): router Linear(d_in, 8) with bias, top-2 logits, softmax over the
                kept, 8 experts of rank 16 computed densely as two products, y = base(x) + (s g⊙(x A_allᵀ)) B_allᵀ.

The checkpoint is loaded once; the methods run one after the other on it (PEFT's unload() between them), each with
the allocator's peak statistics reset.  Prints one line per method:
    METHOD TOKENS_PER_S LOSS S_PER_STEP PEAK_ALLOCATED_MB PEAK_RESERVED_MB
(the median step of REPS after a warm-up; peak memory over the method's steps, the frozen weights included).
Usage: gpu_peer.py DIR TOKENS REPS METHOD[,METHOD...]
MEDMOE_PEER_DEVICE=cpu runs it on the CPU (memory reported as 0): a smoke test of this script without a GPU."""
import gc
import math
import os
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

DEVICE = os.environ.get("MEDMOE_PEER_DEVICE", "cuda")
CUDA = DEVICE.startswith("cuda")
ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]


class MoLoRALinear(torch.nn.Module):
    """MING-MOE's routed LoRA experts around a frozen linear; parameters f32, the adapter path computed in f32 (as
    PEFT computes LoRA), the result added to the bf16 base output."""

    def __init__(self, base, n_experts=8, rank=16, alpha=32, top_k=2):
        super().__init__()
        self.base, self.N, self.r, self.k, self.s = base, n_experts, rank, top_k, alpha / rank
        d_in, d_out = base.in_features, base.out_features
        dev = base.weight.device
        self.router = torch.nn.Linear(d_in, n_experts, device=dev, dtype=torch.float32)
        self.A = torch.nn.Parameter(torch.empty(n_experts * rank, d_in, device=dev, dtype=torch.float32))
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = torch.nn.Parameter(torch.zeros(d_out, n_experts * rank, device=dev, dtype=torch.float32))

    def forward(self, x):
        xf = x.float()
        logits = self.router(xf)
        v, idx = logits.topk(self.k, dim=-1)
        g = torch.zeros_like(logits).scatter(-1, idx, torch.softmax(v, dim=-1))
        h = xf @ self.A.t()
        hg = (h.view(*h.shape[:-1], self.N, self.r) * g.unsqueeze(-1)).view_as(h) * self.s
        return self.base(x) + (hg @ self.B.t()).to(x.dtype)


def sync():
    if CUDA:
        torch.cuda.synchronize()


def bench(model, T, reps):
    dev = torch.device(DEVICE)
    V = model.config.vocab_size
    ids = torch.tensor([(t * 7919 + 13) % V for t in range(T)], device=dev)[None]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=ids, use_cache=False)
        out.loss.backward()
        opt.step()
        return out.loss

    sync()
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    loss = step().item()   # warm-up
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        loss_t = step()
        sync()
        times.append(time.perf_counter() - t0)
        loss = loss_t.item()
    secs = sorted(times)[(reps - 1) // 2]   # the median step, as bench/train.c
    alloc = torch.cuda.max_memory_allocated() / 1048576.0 if CUDA else 0.0
    reserved = torch.cuda.max_memory_reserved() / 1048576.0 if CUDA else 0.0
    del opt
    return T / secs, loss, secs, alloc, reserved


def main():
    path, T, reps, methods = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa",
                                                device_map=DEVICE)
    base.config.use_cache = False
    for method in methods:
        targets = ATTN + (MLP if method == "lora" else [])
        model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets))
        if method == "mingmoe":
            for layer in model.base_model.model.model.layers:
                for name in MLP:
                    setattr(layer.mlp, name, MoLoRALinear(getattr(layer.mlp, name)))
        elif method != "lora":
            sys.exit(f"gpu_peer.py: unknown method {method}")
        tps, loss, secs, alloc, reserved = bench(model, T, reps)
        print(f"{method} {tps:.1f} {loss:.6f} {secs:.4f} {alloc:.1f} {reserved:.1f}", flush=True)
        if method == "mingmoe":   # put the plain linears back before unload()
            for layer in model.base_model.model.model.layers:
                for name in MLP:
                    setattr(layer.mlp, name, getattr(layer.mlp, name).base)
        base = model.unload()
        del model
        gc.collect()
        if CUDA:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
