#!/usr/bin/env python3
# PyTorch CPU baseline for `rl4qe bench block`: the identical computation — one Llama decoder
# layer (hidden 576, 9 heads, 3 KV heads, MLP 1536, RMSNorm eps 1e-5, RoPE theta 1e5) with PEFT
# LoRA r=8 (alpha 16) on q,k,v,o, batch 1, the same hash-generated weights and input as
# src/models/block-fixture.ts, loss mean(y ⊙ R), gradients for the LoRA parameters only.
# Versions (the oracle venv ~/.cache/rl4qe/oracle): torch 2.15.0, transformers 5.24.0, peft 0.21.2.
# Run: ~/.cache/rl4qe/oracle/bin/python scripts/bench_block_torch.py --seq 256 --runs 5 [--threads N]
# Prints one JSON line: {"forward_s", "forward_backward_s", "loss", "torch", "threads", "attn"}.
# With --serve it prints {"ready": true}, then one such line per line read from stdin ("quit"
# ends it): the bench interleaves rounds of PyTorch with rounds of rl4qe.
# The bench runs it as a subprocess and prints a note instead of the ratio when torch is missing.
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch


def hash_uniform(n, salt, bound):
    M = np.uint64(0xFFFFFFFF)
    h = (np.arange(n, dtype=np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B9)) & M
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & M
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & M
    h ^= h >> np.uint64(16)
    v = (h.astype(np.float64) / 4294967296.0 - 0.5) * 2.0 * bound
    return torch.from_numpy(v.astype(np.float32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--serve", action="store_true", help="time one round per stdin line")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding
    from peft import LoraConfig, inject_adapter_in_model

    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3,
                      rms_norm_eps=1e-5, rope_theta=100000.0, num_hidden_layers=1, vocab_size=256,
                      max_position_embeddings=4096)
    cfg._attn_implementation = a.attn
    layer = LlamaDecoderLayer(cfg, layer_idx=0).float()
    layer = inject_adapter_in_model(LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                               target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]), layer)
    salt = 1
    with torch.no_grad():
        for n, p in sorted(layer.named_parameters()):
            if n.endswith("layernorm.weight"):
                p.copy_(1.0 + hash_uniform(p.numel(), salt, 0.2).view_as(p))
            elif "lora_B" in n:
                p.copy_(hash_uniform(p.numel(), salt, 0.05).view_as(p))
            else:
                p.copy_(hash_uniform(p.numel(), salt, 1.0 / math.sqrt(p.shape[1])).view_as(p))
            salt += 1
    for n, p in layer.named_parameters():
        p.requires_grad_("lora_" in n)
    T, D = a.seq, 576
    x = hash_uniform(T * D, 1000, 1.0).view(1, T, D)
    R = hash_uniform(T * D, 1001, 1.0).view(1, T, D)
    pos = torch.arange(T).view(1, T)
    rot = LlamaRotaryEmbedding(cfg)
    mask = torch.full((T, T), float("-inf")).triu(1).view(1, 1, T, T)

    def fwd():
        cos, sin = rot(x, pos)
        y = layer(x, attention_mask=mask, position_ids=pos, position_embeddings=(cos, sin))
        return y[0] if isinstance(y, tuple) else y

    def time_it(fn):
        fn()
        ts = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    def forward_only():
        with torch.no_grad():
            fwd()

    loss_box = []

    def forward_backward():
        for p in layer.parameters():
            p.grad = None
        loss = (fwd() * R).mean()
        loss.backward()
        loss_box.append(loss.item())

    def report():
        tf = time_it(forward_only)
        tfb = time_it(forward_backward)
        print(json.dumps({"forward_s": tf, "forward_backward_s": tfb, "loss": loss_box[-1], "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "attn": a.attn, "seq": T}), flush=True)

    if not a.serve:
        report()
        return
    # --serve: one timing round (one JSON line) per input line, so the caller can interleave
    # rounds of its own with ours under the same machine load.
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        report()


if __name__ == "__main__":
    sys.exit(main())
