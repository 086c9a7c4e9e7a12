#!/usr/bin/env python3
"""Write tests/fixtures/checkpoint/expected.json: what transformers and lm-evaluation-harness make of the
checkpoints medmoe writes (checked by tests/t/checkpoint-files.sh).

Cases (name: how the checkpoint is made):
  llama_bytes, qwen2_bytes, qwen3_bytes   bin/init-base --arch ARCH (the project's byte tokenizer)
  llama_qwen3tok, llama_mistraltok        bin/init-base --arch llama --tokenizer ../shared/tokenizers/NAME
                                          (a LLaMA config around another family's vocabulary: the case where
                                          LlamaConfig's default ids 1 and 2 used to leak into generate)
  merged_lora                             bin/merge-adapters --base tests/fixtures/eval/model
                                          --adapter tests/fixtures/eval/lora_run (a base written before init-base
                                          wrote tokenizer_config.json and generation_config.json)
Per case, with no extra arguments to either library:
  config       bos/eos/pad_token_id of AutoConfig
  tokenizer    AutoTokenizer's class and its bos/eos/pad/unk tokens and ids
  generation   the model's generation_config bos/eos/pad_token_id (eos as a list)
  generate     greedy generate from PROMPT with a logits processor that forces the eos at step FORCE_AT: the new
               tokens must be FORCE_AT free tokens then the eos, and nothing after it (generate stopped at the
               tokenizer's eos, not earlier at an ordinary token and not later)
  lm_eval      lm_eval's HFLM(pretrained=DIR): one loglikelihood and one generate_until request run (the log-
               likelihood is recorded)
The script fails if any of that does not hold.

Needs: pip install torch transformers lm_eval accelerate, `make` (bin/), ../shared/tokenizers.  Never needed by
`make test`.  Usage: tests/reference/make_checkpoint_fixtures.py [OUT]  (default
tests/fixtures/checkpoint/expected.json)
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(TOP, "bin")
SHARED = os.environ.get("MEDMOE_SHARED", os.path.join(TOP, "..", "shared"))
SHAPE = ["--layers", "1", "--hidden", "32", "--heads", "2", "--ffn", "64", "--seed", "5"]
CASES = {
    "llama_bytes": ["--arch", "llama"] + SHAPE,
    "qwen2_bytes": ["--arch", "qwen2"] + SHAPE,
    "qwen3_bytes": ["--arch", "qwen3"] + SHAPE,
    "llama_qwen3tok": ["--arch", "llama", "--tokenizer", "SHARED/tokenizers/qwen3/tokenizer.json"] + SHAPE,
    "llama_mistraltok": ["--arch", "llama", "--tokenizer", "SHARED/tokenizers/mistral/tokenizer.json"] + SHAPE,
}
PROMPT = "Question: which organ makes insulin? Answer:"
FORCE_AT = 3


class ForceAt(LogitsProcessor):
    """Leave the first STEP new tokens to the model, then force TOKEN."""

    def __init__(self, prompt_len, step, token):
        self.prompt_len, self.step, self.token = prompt_len, step, token

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.prompt_len == self.step:
            scores = torch.full_like(scores, -float("inf"))
            scores[:, self.token] = 0.0
        return scores


def as_list(v):
    return v if isinstance(v, list) or v is None else [v]


def probe(path):
    cfg = AutoConfig.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    gen = model.generation_config
    eos = tok.eos_token_id
    assert eos is not None, f"{path}: the tokenizer has no eos"
    assert as_list(gen.eos_token_id)[0] == eos, f"{path}: generate's first eos {gen.eos_token_id} is not {eos}"
    ids = tok(PROMPT, return_tensors="pt").input_ids
    # free greedy tokens first: none of them may be an end token, or the check below would be vacuous
    free = model.generate(ids, max_new_tokens=FORCE_AT, do_sample=False)[0, ids.shape[1]:].tolist()
    out = model.generate(ids, max_new_tokens=FORCE_AT + 8, do_sample=False,
                         logits_processor=LogitsProcessorList([ForceAt(ids.shape[1], FORCE_AT, eos)]))
    new = out[0, ids.shape[1]:].tolist()
    assert new == free + [eos], f"{path}: generate gave {new}, want {free} then the eos {eos}"
    row = {
        "config": {k: getattr(cfg, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id")},
        "tokenizer": {"class": type(tok).__name__,
                      **{f"{k}_token": getattr(tok, f"{k}_token") for k in ("bos", "eos", "pad", "unk")},
                      **{f"{k}_token_id": getattr(tok, f"{k}_token_id") for k in ("bos", "eos", "pad", "unk")}},
        "generation": {"bos_token_id": gen.bos_token_id, "eos_token_id": as_list(gen.eos_token_id),
                       "pad_token_id": gen.pad_token_id},
        "generate": {"prompt_ids": ids[0].tolist(), "force_at": FORCE_AT, "new_tokens": new},
    }
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    lm = HFLM(pretrained=path, device="cpu", batch_size=1)
    ll = lm.loglikelihood([Instance(request_type="loglikelihood", doc={}, arguments=(PROMPT, " pancreas"), idx=0)])
    lm.generate_until([Instance(request_type="generate_until", doc={}, idx=0,
                                arguments=(PROMPT, {"until": ["\n\n"], "max_gen_toks": 4}))])
    row["lm_eval"] = {"loglikelihood": ll[0][0]}
    return row


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "tests", "fixtures", "checkpoint", "expected.json")
    import lm_eval
    result = {"meta": {"transformers": transformers.__version__, "torch": torch.__version__,
                       "lm_eval": lm_eval.__version__, "prompt": PROMPT}, "cases": {}}
    with tempfile.TemporaryDirectory() as work:
        for name, args in CASES.items():
            args = [a.replace("SHARED", SHARED) for a in args]
            d = os.path.join(work, name)
            subprocess.run([os.path.join(BIN, "init-base"), *args, "-o", d], check=True)
            result["cases"][name] = {"init_base": [a.replace(SHARED, "$SHARED") for a in args], **probe(d)}
        d = os.path.join(work, "merged_lora")
        fx = os.path.join(TOP, "tests", "fixtures", "eval")
        subprocess.run([os.path.join(BIN, "merge-adapters"), "--base", os.path.join(fx, "model"), "--adapter",
                        os.path.join(fx, "lora_run"), "-o", d], check=True)
        result["cases"]["merged_lora"] = probe(d)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    for name, row in result["cases"].items():
        print(name, row["tokenizer"]["class"], "eos", row["tokenizer"]["eos_token_id"], "generate", row["generate"]["new_tokens"])


if __name__ == "__main__":
    main()
