#!/usr/bin/env python3
"""Write the model-parity fixtures under tests/fixtures/model/ from transformers (the way llm.c's
train_gpt2.py writes its debug state for test_gpt2.c).

Each case is a tiny random-weight checkpoint (config.json + safetensors) and expected.safetensors holding
  ids (T), doc_offsets (n_docs+1), loss_mask (T)   -- inputs, stored as F32 (exact for these small integers)
  logits (T, V), loss (1)                          -- transformers' outputs in fp32
for packed documents: position_ids restart at 0 per document and a block-diagonal causal 4-D mask keeps each
token inside its document.  The script checks that this equals running each document on its own.

The loss is the mean next-token cross-entropy over targets: token t (not first in its document) with
loss_mask[t] = 1 is predicted from position t-1 (the transformers labels convention).

Needs: pip install torch transformers safetensors.  Never needed by `make test`.
Usage: tests/reference/make_model_fixtures.py [OUTDIR]   (default tests/fixtures/model)
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6)

# name: (config class, model class, config overrides, options)
CASES = {
    # GQA 4:2, untied, default RoPE, sharded checkpoint with an index
    "llama_gqa": (LlamaConfig, LlamaForCausalLM,
                  dict(vocab_size=256, tie_word_embeddings=False, rope_parameters={"rope_type": "default",
                                                                                   "rope_theta": 10000.0}),
                  dict(shard="60KB")),
    # llama3 RoPE scaling, tied embeddings, attention_bias (q/k/v/o biases), bf16 weights,
    # config written in the old rope_theta + rope_scaling form
    "llama3_scaled": (LlamaConfig, LlamaForCausalLM,
                      dict(vocab_size=300, tie_word_embeddings=True, attention_bias=True,
                           rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 32}),
                      dict(dtype="bf16", old_rope_form=True)),
    # linear RoPE scaling, explicit head_dim different from hidden/heads, multi-query (1 kv head)
    "llama_linear": (LlamaConfig, LlamaForCausalLM,
                     dict(vocab_size=200, tie_word_embeddings=False, head_dim=8, num_key_value_heads=1,
                          rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}),
                     dict()),
    # Qwen2: q/k/v biases always, tied embeddings
    "qwen2": (Qwen2Config, Qwen2ForCausalLM,
              dict(vocab_size=320, tie_word_embeddings=True, rope_parameters={"rope_type": "default",
                                                                              "rope_theta": 1000000.0}),
              dict()),
    # Qwen3: q/k RMSNorm, head_dim 32 (4×32 = 128 ≠ hidden 64), untied, f16 weights
    "qwen3": (Qwen3Config, Qwen3ForCausalLM,
              dict(vocab_size=256, tie_word_embeddings=False, head_dim=32,
                   rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
              dict(dtype="f16")),
}

DOC_LENGTHS = [11, 17, 1, 19]   # packed documents, one of a single token


def randomize(model, gen):
    """Weights large enough that logits spread over several units (argmax is never a near-tie)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)


def round_to(model, dtype):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).float())


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


def masked_loss(logits, ids, loss_mask, offsets):
    starts = set(offsets[:-1])
    logp = torch.log_softmax(logits.double(), dim=-1)
    total, n = 0.0, 0
    for t in range(1, len(ids)):
        if t in starts or not loss_mask[t]:
            continue
        total -= logp[t - 1, ids[t]].item()
        n += 1
    return total / n


def make_case(outdir, name, cfg_cls, model_cls, overrides, opts, seed):
    gen = torch.Generator().manual_seed(seed)
    cfg = cfg_cls(**{**COMMON, **overrides})
    cfg._attn_implementation = "eager"
    model = model_cls(cfg).float().eval()
    randomize(model, gen)
    if model.config.tie_word_embeddings:
        model.tie_weights()
    dtype = opts.get("dtype", "f32")
    if dtype != "f32":
        round_to(model, torch.bfloat16 if dtype == "bf16" else torch.float16)

    V = cfg.vocab_size
    T = sum(DOC_LENGTHS)
    ids = torch.randint(0, V, (T,), generator=gen)
    offsets = [0]
    for n in DOC_LENGTHS:
        offsets.append(offsets[-1] + n)
    positions = torch.cat([torch.arange(n) for n in DOC_LENGTHS])
    loss_mask = (torch.rand(T, generator=gen) < 0.7).to(torch.int64)

    with torch.no_grad():
        packed = model(input_ids=ids[None], position_ids=positions[None],
                       attention_mask=block_causal_mask(DOC_LENGTHS)).logits[0].float()
        separate = torch.cat([model(input_ids=ids[None, a:b]).logits[0].float()
                              for a, b in zip(offsets[:-1], offsets[1:])])
    gap = (packed - separate).abs().max().item()
    assert gap < 1e-5, f"{name}: packed and per-document logits differ by {gap}"
    loss = masked_loss(packed, ids.tolist(), loss_mask.tolist(), offsets)

    case_dir = os.path.join(outdir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    save_dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    model.to(save_dtype).save_pretrained(case_dir, max_shard_size=opts.get("shard", "50MB"))
    for extra in ("generation_config.json",):
        path = os.path.join(case_dir, extra)
        if os.path.exists(path):
            os.remove(path)
    config_path = os.path.join(case_dir, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    if opts.get("old_rope_form"):
        # the transformers ≤ 4.x spelling: rope_theta at top level, the scaling in rope_scaling
        rope = config.pop("rope_parameters")
        config["rope_theta"] = rope.pop("rope_theta")
        config["rope_scaling"] = rope
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)

    save_file({
        "ids": ids.float(),
        "doc_offsets": torch.tensor(offsets, dtype=torch.float32),
        "loss_mask": loss_mask.float(),
        "logits": packed.contiguous(),
        "loss": torch.tensor([loss], dtype=torch.float32),
    }, os.path.join(case_dir, "expected.safetensors"),
        metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    print(f"{name}: T={T} V={V} loss={loss:.6f} packed-vs-separate {gap:.2e}")


def main():
    if int(transformers.__version__.split(".")[0]) < 5:
        # older versions silently ignore the rope_parameters argument the cases use
        sys.exit(f"make_model_fixtures: needs transformers >= 5 (have {transformers.__version__})")
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures",
                                                                 "model")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    for i, (name, (cfg_cls, model_cls, overrides, opts)) in enumerate(CASES.items()):
        make_case(outdir, name, cfg_cls, model_cls, overrides, opts, seed=1000 + i)


if __name__ == "__main__":
    main()
