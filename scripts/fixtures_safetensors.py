#!/usr/bin/env python3
# Oracle fixtures for rl4qe's safetensors reader (src/io/safetensors).
#
# Pinned versions (oracle venv /root/.cache/rl4qe/oracle): python 3.11, safetensors==0.8.0,
# torch==2.15.0, huggingface_hub (as installed with transformers), numpy==2.4.6.
# Regenerate with:
#   /root/.cache/rl4qe/oracle/bin/python scripts/fixtures_safetensors.py
#
# Writes test/fixtures/io/safetensors/:
#   single.safetensors  F32, F16, BF16 tensors (and an I64 one) with __metadata__, written by
#                       safetensors.torch.save_file; for each float tensor `x` also `x.as_f32`,
#                       torch's float32 conversion of it (what our reader must produce).
#   sharded/            a state dict saved by huggingface_hub.save_torch_state_dict with a small
#                       max_shard_size: model-0000N-of-0000M.safetensors + model.safetensors.index.json,
#                       plus expected.safetensors (all tensors as float32, one file).
# The script also reads a file given as argv[1] (written by rl4qe) and prints its tensors as
# JSON, so the TS test can check that Python reads our output (`--read FILE`).
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "io", "safetensors")


def read(path):
    t = load_file(path)
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata()
    print(json.dumps({
        "metadata": meta,
        "tensors": {
            k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                "values": v.float().reshape(-1).tolist()}
            for k, v in t.items()
        },
    }))


def main():
    g = torch.Generator().manual_seed(7)
    os.makedirs(OUT, exist_ok=True)
    base = {
        "w32": torch.randn(3, 5, generator=g),
        "w16": (torch.randn(4, 2, generator=g) * 10).to(torch.float16),
        "wbf": (torch.randn(2, 3, 2, generator=g) * 100).to(torch.bfloat16),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }
    tensors = dict(base)
    for k, v in base.items():
        tensors[k + ".as_f32"] = v.float().clone()
    tensors["ids"] = torch.tensor([1, -2, 3], dtype=torch.int64)
    save_file(tensors, os.path.join(OUT, "single.safetensors"), metadata={"format": "pt", "note": "rl4qe"})

    from huggingface_hub import save_torch_state_dict

    sd = {f"layers.{i}.weight": torch.randn(16, 16, generator=g) for i in range(4)}
    sd["embed.weight"] = torch.randn(8, 16, generator=g).to(torch.bfloat16)
    d = os.path.join(OUT, "sharded")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    save_torch_state_dict(sd, d, max_shard_size=2500)
    save_file({k: v.float() for k, v in sd.items()}, os.path.join(d, "expected.safetensors"))
    print("wrote", OUT, sorted(os.listdir(d)))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--read":
        read(sys.argv[2])
    else:
        main()
