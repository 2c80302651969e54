# Outside oracle for the tensor engine: writes test/fixtures/engine/oracle.json, which
# test/oracle/engine-oracle.test.ts compares against (float64).
#
# Pinned packages (the oracle venv ~/.cache/rl4qe/oracle, python 3.11; bash scripts/setup-oracle.sh):
#   torch==2.15.0  transformers==5.24.0
# Regenerate:
#   ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_engine.py
#
# What it records (small inputs, all float64):
#   - RoPE inverse frequencies and attention factor from transformers' ROPE_INIT_FUNCTIONS for
#     default, linear, llama3 and yarn (via LlamaConfig.rope_parameters).
#   - apply_rotary_pos_emb of transformers' Llama (rotate-half) at chosen positions.
#   - Causal grouped-query attention with a KV offset (Tq < Tk) and its gradients, via
#     torch.nn.functional.scaled_dot_product_attention on repeat_interleave'd KV heads.
#   - LlamaRMSNorm forward and gradients; log_softmax-gather token log-probs and gradients.
#   - Three torch.optim.AdamW steps.
import json
import math
import os

import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "engine", "oracle.json")


def vals(n, seed):
    # Deterministic values both sides can regenerate: sin of a scaled index.
    return [math.sin(seed * 1.7 + i * 0.731) for i in range(n)]


def t(shape, seed, requires_grad=True):
    n = math.prod(shape)
    return torch.tensor(vals(n, seed)).reshape(shape).requires_grad_(requires_grad)


def flat(x):
    return x.detach().reshape(-1).tolist()


out = {}

# ---- RoPE tables ----
head_dim = 16
rope_cases = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "yarn": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 2048,
    },
}
out["rope_tables"] = {}
for name, params in rope_cases.items():
    cfg = LlamaConfig(
        hidden_size=head_dim * 2,
        num_attention_heads=2,
        head_dim=head_dim,
        max_position_embeddings=8192 * 4,
        rope_parameters=dict(params),
    )
    fn = ROPE_INIT_FUNCTIONS[params["rope_type"]] if params["rope_type"] != "default" else None
    if fn is None:
        inv = 1.0 / (params["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        att = 1.0
    else:
        inv, att = fn(cfg, "cpu")
    out["rope_tables"][name] = {"params": params, "inv_freq": inv.double().tolist(), "attention_factor": att}

# ---- apply_rotary_pos_emb (rotate-half), B=1, T=3, H=2, D=8 ----
D = 8
inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
positions = [0, 7, 31]
ang = torch.tensor(positions, dtype=torch.float64)[:, None] * inv[None, :]
emb = torch.cat([ang, ang], dim=-1)
cos, sin = emb.cos()[None], emb.sin()[None]  # [1, T, D]
x = t([1, 3, 2, D], 1, False)  # [B, T, H, D]
q_rot, _ = apply_rotary_pos_emb(x.transpose(1, 2), x.transpose(1, 2), cos, sin)
out["rope_apply"] = {"shape": [1, 3, 2, D], "seed": 1, "positions": positions, "out": flat(q_rot.transpose(1, 2))}

# ---- attention: B=2, Tq=3, Tk=5, H=4, KVH=2, D=4, causal with offset ----
B, Tq, Tk, H, KVH, Dh = 2, 3, 5, 4, 2, 4
q = t([B, Tq, H, Dh], 2)
k = t([B, Tk, KVH, Dh], 3)
v = t([B, Tk, KVH, Dh], 4)
qh = q.transpose(1, 2)
kh = k.transpose(1, 2).repeat_interleave(H // KVH, dim=1)
vh = v.transpose(1, 2).repeat_interleave(H // KVH, dim=1)
# Query i sits at key position Tk - Tq + i.
mask = torch.ones(Tq, Tk, dtype=torch.bool).tril(diagonal=Tk - Tq)
o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask).transpose(1, 2)
go = t([B, Tq, H, Dh], 5, False)
(o * go).sum().backward()
out["attention"] = {
    "q": [B, Tq, H, Dh], "k": [B, Tk, KVH, Dh], "seeds": [2, 3, 4, 5],
    "out": flat(o), "gq": flat(q.grad), "gk": flat(k.grad), "gv": flat(v.grad),
}

# ---- RMSNorm (LlamaRMSNorm formula) ----
x = t([3, 6], 6)
w = t([6], 7)
eps = 1e-6
y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
gy = t([3, 6], 8, False)
(y * gy).sum().backward()
out["rmsnorm"] = {"x": [3, 6], "seeds": [6, 7, 8], "eps": eps, "out": flat(y), "gx": flat(x.grad), "gw": flat(w.grad)}

# ---- token log-probs ----
h = t([4, 5], 9)
W = t([7, 5], 10)
targets = [3, 0, 6, 2]
lp = F.log_softmax(h @ W.T, dim=-1).gather(1, torch.tensor(targets)[:, None])[:, 0]
g = t([4], 11, False)
(lp * g).sum().backward()
out["token_logprobs"] = {"h": [4, 5], "w": [7, 5], "seeds": [9, 10, 11], "targets": targets,
                         "out": flat(lp), "gh": flat(h.grad), "gw": flat(W.grad)}

# ---- AdamW ----
p = torch.nn.Parameter(t([5], 12, False).clone())
opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
grads = []
for step in range(3):
    gr = torch.tensor(vals(5, 13 + step))
    grads.append(gr.tolist())
    p.grad = gr.clone()
    opt.step()
out["adamw"] = {"p0": vals(5, 12), "grads": grads, "lr": 0.01, "beta1": 0.9, "beta2": 0.999,
                "eps": 1e-8, "weight_decay": 0.1, "p3": p.detach().tolist()}

out["_versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
with open(OUT, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", os.path.normpath(OUT))
