#!/usr/bin/env python3
# Pinned oracle: transformers on the SAME GGUF that llama.cpp runs (SmolLM2-135M-Instruct Q4_1),
# dequantised to float32 by transformers' GGUF loader (gguf package). rl4qe dequantises the same
# file and runs float32 too, so greedy tokens must agree exactly; llama.cpp (fixtures_llamacpp.mjs)
# multiplies with 8-bit-quantised activations and may drift at near-ties.
# Versions (oracle venv ~/.cache/rl4qe/oracle): torch 2.15.0, transformers 5.24.0, gguf 0.19.0.
# Run from the repository root, after scripts/fixtures_llamacpp.mjs (its prompts are reused):
#   ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_gguf_hf.py            # SmolLM2
#   ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_gguf_hf.py qwen       # Qwen2.5-Coder-0.5B
# Writes test/fixtures/models/hf-smollm2-gguf.json (or hf-qwen2-gguf.json: prompts tokenized by
# transformers' GGUF tokenizer, 32 tokens each).
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM

torch.set_num_threads(2)
home = os.environ.get("RL4QE_HOME", os.path.join(os.path.expanduser("~"), ".cache", "rl4qe"))
d = os.path.join(home, "test-models")
import sys
QWEN = len(sys.argv) > 1 and sys.argv[1] == "qwen"
if QWEN:
    import hashlib
    from transformers import AutoTokenizer
    fname = "qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf"
    tok = AutoTokenizer.from_pretrained(d, gguf_file=fname)
    texts = ["def fibonacci(n):\n", "<|im_start|>user\nSort a list in Python.<|im_end|>\n<|im_start|>assistant\n"]
    src = {"model": {"file": fname, "sha256": hashlib.sha256(open(os.path.join(d, fname), "rb").read()).hexdigest()},
           "cases": [{"prompt": tok(t)["input_ids"], "text": t} for t in texts]}
    N = 32
    out_file = "test/fixtures/models/hf-qwen2-gguf.json"
else:
    fname = "smollm2-135m-instruct-q4_1.gguf"
    src = json.load(open("test/fixtures/models/llamacpp-smollm2.json"))
    N = 64
    out_file = "test/fixtures/models/hf-smollm2-gguf.json"
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=fname, dtype=torch.float32).eval()
cases = []
for c in src["cases"]:
    ids = torch.tensor([c["prompt"]])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=N, min_new_tokens=N,
                             do_sample=False, eos_token_id=None, pad_token_id=0)
        toks = out[0, ids.shape[1]:].tolist()
        logits = model(out[:, :-1]).logits[0, ids.shape[1] - 1:]
    top2 = logits.topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    last = logits[0]
    cases.append({"prompt": c["prompt"], "tokens": toks, "margins": margins,
                  "firstLogitsTop": {"ids": last.topk(10).indices.tolist(), "values": last.topk(10).values.tolist()}})
    print(len(toks), min(margins))
json.dump({"regenerate": "~/.cache/rl4qe/oracle/bin/python scripts/fixtures_gguf_hf.py" + (" qwen" if QWEN else ""),
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
           "model": src["model"], "cases": cases},
          open(out_file, "w"), indent=1)
