#!/usr/bin/env python3
# Pinned PyTorch CPU baseline for `rl4qe bench train-step`: the identical training-step
# computation on the SAME GGUF file rl4qe loads (dequantised to float32 by transformers' GGUF
# loader, like scripts/bench_generate_torch.py), with PEFT LoRA r=8 (alpha 32, dropout 0) on
# q,k,v,o, the base frozen:
#   logits of the last C+1 positions only (logits_to_keep), log_softmax, the log-prob of every
#   completion token, loss = −Σ_i adv_i Σ_t log π(token_i,t), backward (LoRA gradients).
# Tokens and advantages are the ones src/cli/benches/train-step-worker.ts builds: P prompts of
# PROMPT ids 100 + (7·i + 11·p) mod 1000, K completions each of NEW ids
# 200 + (13·j + 31·k + 5·p) mod 1500 (k = p·K + c), advantage of sequence k ((k mod 4) − 1.5)/1.5.
# Versions (oracle venv ~/.cache/rl4qe/oracle): torch 2.15.0, transformers 5.24.0, peft 0.21.2,
# gguf 0.19.0.
# Run from the repository root (the bench does this itself):
#   ~/.cache/rl4qe/oracle/bin/python scripts/bench_train_step_torch.py \
#       --model ~/.cache/rl4qe/test-models/smollm2-135m-instruct-q4_1.gguf \
#       --prompts 2 --completions 4 --prompt 512 --new 128 --runs 3 --threads 2
# --autocast bf16 (the `/bf16` cases, ratio key pytorch-bf16): the forward and the loss under
# torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's own bf16 mixed precision (its matmuls
# in bf16 with the weights cast per call, LoRA parameters and their gradients fp32); the backward
# follows the autocast graph. Default none (fp32).
# Prints one JSON line: {"median_s", "runs_s", "tokens_per_s", "loss", "peak_rss_bytes", …};
# peak RSS is getrusage's ru_maxrss of this process (model load included, as rl4qe's).
import argparse
import json
import os
import resource
import statistics
import time

import torch
import transformers
import peft
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--prompts", type=int, default=2)
ap.add_argument("--completions", type=int, default=4)
ap.add_argument("--prompt", type=int, default=512)
ap.add_argument("--new", type=int, default=128)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--r", type=int, default=8)
ap.add_argument("--alpha", type=int, default=32)
ap.add_argument("--autocast", choices=["none", "bf16"], default="none")
args = ap.parse_args()

torch.set_num_threads(args.threads)
d, f = os.path.split(os.path.abspath(args.model))
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=0.0,
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
model.train()  # dropout is 0 everywhere: train() and eval() compute the same thing
load_s = time.perf_counter() - t0
params = [p for p in model.parameters() if p.requires_grad]
assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)

P, K, PL, C = args.prompts, args.completions, args.prompt, args.new
rows = []
for p in range(P):
    prompt = [100 + ((7 * i + 11 * p) % 1000) for i in range(PL)]
    for c in range(K):
        k = p * K + c
        rows.append(prompt + [200 + ((13 * j + 31 * k + 5 * p) % 1500) for j in range(C)])
ids = torch.tensor(rows)  # [B, PL + C]
mask = torch.ones_like(ids)
targets = ids[:, PL:]  # [B, C]
adv = torch.tensor([((k % 4) - 1.5) / 1.5 for k in range(P * K)])  # [B]


def step():
    for p in params:
        p.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
        # The last C+1 positions' logits: positions PL−1 … PL+C−1; the first C predict the completion.
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=C + 1).logits[:, :-1]  # [B, C, V]
        lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [B, C]
        loss = -(adv.unsqueeze(1) * lp).sum()
    loss.backward()
    return loss.item()


loss = step()  # warm-up
ts, cpu = [], []
for _ in range(args.runs):
    c = time.process_time()
    t = time.perf_counter()
    loss = step()
    ts.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)  # CPU seconds of all threads: less sensitive to other load
m = statistics.median(ts)
print(json.dumps({
    "median_s": m, "runs_s": ts, "cpu_s": cpu, "tokens_per_s": ids.numel() / m, "loss": loss,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "load_s": load_s,
    "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
    "peft": peft.__version__, "attn": model.config._attn_implementation,
    "lora_params": sum(p.numel() for p in params), "autocast": args.autocast,
}))
