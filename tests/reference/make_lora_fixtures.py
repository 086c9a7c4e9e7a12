#!/usr/bin/env python3
"""Write the PEFT-parity fixtures of plain LoRA under tests/fixtures/lora/ (checked by tests/unit/test_lora_peft.c).

For each base checkpoint of tests/fixtures/model/ named below, PEFT wraps every linear of every layer
(q,k,v,o,gate,up,down) with LoRA r=4, alpha=8, no dropout; A and B get fixed random values (B non-zero, so
every gradient is informative).  The same packed documents as the model fixtures (position_ids restarting per
document, a block-diagonal causal mask) give the mean next-token cross-entropy over the loss mask, and
backward gives the gradient of every LoRA tensor.  Written per case:
  adapter_model.safetensors, adapter_config.json   -- PEFT's own save_pretrained
  expected.safetensors  ids, doc_offsets, loss_mask (as F32), loss (1), and grad.<tensor name> per LoRA tensor

Needs: pip install torch transformers peft safetensors.  Never needed by `make test`.
Usage: tests/reference/make_lora_fixtures.py [OUTDIR]   (default tests/fixtures/lora)
"""
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = ["qwen2", "qwen3"]
DOC_LENGTHS = [11, 17, 1, 19]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def block_causal_mask(doc_lengths):
    T = sum(doc_lengths)
    allowed = torch.zeros(T, T, dtype=torch.bool)
    start = 0
    for n in doc_lengths:
        allowed[start:start + n, start:start + n] = torch.tril(torch.ones(n, n, dtype=torch.bool))
        start += n
    mask = torch.zeros(T, T)
    mask[~allowed] = torch.finfo(torch.float32).min
    return mask[None, None]


def make_case(outdir, name, seed):
    gen = torch.Generator().manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(os.path.join(HERE, "..", "fixtures", "model", name),
                                                dtype=torch.float32, attn_implementation="eager")
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    model.train()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    V = base.config.vocab_size
    T = sum(DOC_LENGTHS)
    ids = torch.randint(0, V, (T,), generator=gen)
    offsets = [0]
    for n in DOC_LENGTHS:
        offsets.append(offsets[-1] + n)
    positions = torch.cat([torch.arange(n) for n in DOC_LENGTHS])
    loss_mask = (torch.rand(T, generator=gen) < 0.7).to(torch.int64)

    logits = model(input_ids=ids[None], position_ids=positions[None],
                   attention_mask=block_causal_mask(DOC_LENGTHS)).logits[0].float()
    starts = set(offsets[:-1])
    rows = [t - 1 for t in range(1, T) if t not in starts and loss_mask[t]]
    targets = [ids[t + 1].item() for t in rows]
    loss = torch.nn.functional.cross_entropy(logits[rows], torch.tensor(targets))
    loss.backward()

    case_dir = os.path.join(outdir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    model.save_pretrained(case_dir)
    os.remove(os.path.join(case_dir, "README.md"))   # PEFT's generated model card
    config_path = os.path.join(case_dir, "adapter_config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["base_model_name_or_path"] = f"tests/fixtures/model/{name}"   # not this machine's absolute path
    config["target_modules"] = sorted(config["target_modules"])
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    tensors = {"ids": ids.float(), "doc_offsets": torch.tensor(offsets, dtype=torch.float32),
               "loss_mask": loss_mask.float(), "loss": torch.tensor([loss.item()], dtype=torch.float32)}
    n_grads = 0
    for n, p in model.named_parameters():
        if p.grad is None:
            continue
        # in memory: base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight
        tensors["grad." + n.replace(".default", "")] = p.grad.detach().contiguous()
        n_grads += 1
    save_file(tensors, os.path.join(case_dir, "expected.safetensors"),
              metadata={"transformers": transformers.__version__, "torch": torch.__version__,
                        "peft": peft.__version__})
    print(f"{name}: T={T} loss={loss.item():.6f} {n_grads} LoRA gradients")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "lora")
    os.makedirs(outdir, exist_ok=True)
    for i, name in enumerate(CASES):
        make_case(outdir, name, seed=2000 + i)


if __name__ == "__main__":
    main()
