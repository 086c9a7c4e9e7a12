#!/usr/bin/env python3
"""Write the merge-adapters fixtures under tests/fixtures/merge/ (checked by tests/unit/test_merge.c).

Per case, on the base tests/fixtures/model/qwen2:
  run/adapter.safetensors, run/adapter_config.json -- a medmoe adapter run (lib/adapter.h names, lib/adapter_io.h
      config) with random A and B (B non-zero, so the adapter changes the logits), written here;
  expected.safetensors -- ids (F32), logits_peft: base + the PEFT export of `merge-adapters --peft`, loaded by
      PEFT's PeftModel.from_pretrained; logits_merged: the checkpoint of `merge-adapters` (no --peft) loaded by
      transformers' AutoModelForCausalLM unchanged.
Cases: lora (r 4, alpha 8, all seven linears); moelora (4 experts, total rank 8, alpha 16, rsLoRA, 3 tasks,
merged for task1: PEFT's r is the concatenated rank 8, so its alpha/sqrt(r) is our scaling).

Needs: pip install torch transformers peft safetensors, and bin/merge-adapters built (make).  Never needed by
`make test`.  Usage: tests/reference/make_merge_fixtures.py [OUTDIR]   (default tests/fixtures/merge)
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import peft
import torch
import transformers
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
BASE = os.path.join(TOP, "tests", "fixtures", "model", "qwen2")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
T = 24


def linear_dims(cfg):
    C, F, HD = cfg["hidden_size"], cfg["intermediate_size"], cfg["hidden_size"] // cfg["num_attention_heads"]
    QD, KD = cfg["num_attention_heads"] * HD, cfg["num_key_value_heads"] * HD
    return {"q_proj": (C, QD), "k_proj": (C, KD), "v_proj": (C, KD), "o_proj": (QD, C),
            "gate_proj": (C, F), "up_proj": (C, F), "down_proj": (F, C)}


def module_path(layer, target):
    return f"model.layers.{layer}.{'self_attn' if target.endswith(('q_proj', 'k_proj', 'v_proj', 'o_proj')) else 'mlp'}.{target}"


def write_run(run_dir, method, experts, rank, alpha, rslora, tasks, gen):
    with open(os.path.join(BASE, "config.json"), "rb") as f:
        cfg_bytes = f.read()
    cfg = json.loads(cfg_bytes)
    dims = linear_dims(cfg)
    tensors = {}
    task_emb = 8
    if method == "moelora":
        tensors["moelora.task_embedding.weight"] = torch.randn(len(tasks), task_emb, generator=gen)
        tensors["moelora.gate.weight"] = torch.randn(experts, task_emb, generator=gen)
    r_e = rank // experts if method == "moelora" else rank
    for layer in range(cfg["num_hidden_layers"]):
        for t in TARGETS:
            d_in, d_out = dims[t]
            prefix = "base_model.model." + module_path(layer, t)
            whos = [""] if method == "lora" else [f".experts.{e}" for e in range(experts)]
            for who in whos:
                tensors[f"{prefix}{who}.lora_A.weight"] = torch.randn(r_e, d_in, generator=gen) * 0.2
                tensors[f"{prefix}{who}.lora_B.weight"] = torch.randn(d_out, r_e, generator=gen) * 0.2
    os.makedirs(run_dir, exist_ok=True)
    save_file(tensors, os.path.join(run_dir, "adapter.safetensors"), metadata={"format": "pt", "method": method})
    config = {
        "format": "medmoe.adapter", "version": 1, "method": method, "experts": experts, "rank": rank,
        "alpha": alpha, "rslora": rslora, "top_k": 2, "target_modules": TARGETS, "dropout": 0.0,
        "task_embedding_dim": task_emb, "n_tasks": len(tasks), "lb_coef": 0.0, "shared_experts": 0,
        "contrastive_tau": 0.07, "contrastive_lambda": 0.1, "contrastive_proj": 128, "contrastive_queue": 4096,
        "seed": 0,
        "base": {"path": "tests/fixtures/model/qwen2", "architecture": "Qwen2ForCausalLM",
                 "config_sha256": hashlib.sha256(cfg_bytes).hexdigest(), "tokenizer_sha256": "",
                 "num_hidden_layers": cfg["num_hidden_layers"], "hidden_size": cfg["hidden_size"]},
        "tasks": [{"id": i, "name": n} for i, n in enumerate(tasks)],
    }
    with open(os.path.join(run_dir, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids[None]).logits[0].float().contiguous()


def make_case(outdir, name, seed, method, experts, rank, alpha, rslora, tasks, task):
    gen = torch.Generator().manual_seed(seed)
    case_dir = os.path.join(outdir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    run_dir = os.path.join(case_dir, "run")
    write_run(run_dir, method, experts, rank, alpha, rslora, tasks, gen)
    ids = torch.randint(0, 320, (T,), generator=gen)
    tool = os.path.join(TOP, "bin", "merge-adapters")
    task_args = ["--task", task] if task else []
    with tempfile.TemporaryDirectory() as tmp:
        peft_dir, merged_dir = os.path.join(tmp, "peft"), os.path.join(tmp, "merged")
        subprocess.run([tool, "--base", BASE, "--adapter", run_dir, "--peft", *task_args, "-o", peft_dir], check=True)
        subprocess.run([tool, "--base", BASE, "--adapter", run_dir, *task_args, "-o", merged_dir], check=True)
        kw = dict(dtype=torch.float32, attn_implementation="eager")
        base = AutoModelForCausalLM.from_pretrained(BASE, **kw)
        logits_base = logits_of(base, ids)
        with_peft = PeftModel.from_pretrained(base, peft_dir)
        logits_peft = logits_of(with_peft, ids)
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, **kw)
        logits_merged = logits_of(merged, ids)
    # every exported tensor was used: PEFT's base + adapter and transformers' merged directory agree
    if float((logits_merged - logits_peft).abs().max()) > 1e-4 or float((logits_peft - logits_base).abs().max()) < 1e-2:
        sys.exit(f"{name}: the PEFT export and the merged checkpoint disagree, or the adapter changes nothing")
    save_file({"ids": ids.float(), "logits_peft": logits_peft, "logits_merged": logits_merged},
              os.path.join(case_dir, "expected.safetensors"),
              metadata={"transformers": transformers.__version__, "torch": torch.__version__,
                        "peft": peft.__version__, "task": task or ""})
    print(f"{name}: |peft - base| max {float((logits_peft - logits_base).abs().max()):.4f}, "
          f"|merged - peft| max {float((logits_merged - logits_peft).abs().max()):.2e}")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "tests", "fixtures", "merge")
    os.makedirs(outdir, exist_ok=True)
    make_case(outdir, "lora", 3000, "lora", 1, 4, 8.0, False, ["all"], None)
    make_case(outdir, "moelora", 3001, "moelora", 4, 8, 16.0, True, ["task0", "task1", "task2"], "task1")


if __name__ == "__main__":
    main()
