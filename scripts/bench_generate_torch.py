#!/usr/bin/env python3
# Pinned baseline for `rl4qe bench generate`: transformers' generate() on CPU, float32, on the SAME
# GGUF file rl4qe runs (dequantised to float32 by transformers' GGUF loader, like
# scripts/fixtures_gguf_hf.py), greedy, exactly NEW tokens per sequence (EOS ignored), batch B of
# synthetic prompts of PROMPT tokens (the same ids rl4qe uses: 100 + (7·i + b) mod 1000).
# Versions (oracle venv ~/.cache/rl4qe/oracle): torch 2.15.0, transformers 5.24.0, gguf 0.19.0.
# Run from the repository root (the bench does this itself):
#   ~/.cache/rl4qe/oracle/bin/python scripts/bench_generate_torch.py \
#       --model ~/.cache/rl4qe/test-models/smollm2-135m-instruct-q4_1.gguf \
#       --batches 1,8 --prompt 512 --new 128 --runs 3 --threads 2
# Prints one JSON line: {"load_s": …, "cases": {"1": {"median_s": …, "tokens_per_s": …}, …}}.
import argparse
import json
import os
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--batches", default="1,8")
ap.add_argument("--prompt", type=int, default=512)
ap.add_argument("--new", type=int, default=128)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()

torch.set_num_threads(args.threads)
d, f = os.path.split(os.path.abspath(args.model))
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
load_s = time.perf_counter() - t0


def prompts(b, p):
    return torch.tensor([[100 + ((i * 7 + r) % 1000) for i in range(p)] for r in range(b)])


def gen(ids, n):
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                             min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert out.shape[1] == ids.shape[1] + n, out.shape
    return out


cases = {}
gen(prompts(1, 16), 4)  # warm-up
for b in [int(x) for x in args.batches.split(",") if x]:
    ids = prompts(b, args.prompt)
    ts = []
    first = None
    for _ in range(args.runs):
        t = time.perf_counter()
        out = gen(ids, args.new)
        ts.append(time.perf_counter() - t)
        first = out[0, args.prompt:args.prompt + 8].tolist()
    m = statistics.median(ts)
    cases[str(b)] = {"median_s": m, "tokens_per_s": b * args.new / m, "runs_s": ts, "first_tokens": first}
print(json.dumps({"load_s": load_s, "threads": args.threads, "torch": torch.__version__,
                  "cases": cases}))
