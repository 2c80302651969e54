#!/usr/bin/env python3
# Pinned oracle for src/models, src/nn and src/sampling: tiny random-weight Llama and Qwen2 models
# made with Hugging Face transformers, and what transformers + PEFT + torch compute on them.
#
# Versions (the oracle venv, ~/.cache/rl4qe/oracle, python 3.11):
#   torch 2.15.0, transformers 5.24.0, peft 0.21.2, safetensors 0.8.0, numpy (any recent)
# Run from the repository root:
#   ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_models.py
# It (re)writes test/fixtures/models/block/expected.safetensors + expected.json: one Llama decoder
# layer at SmolLM2-135M size (hidden 576, 9 heads, 3 KV heads, MLP 1536) with PEFT LoRA r=8 on
# q,k,v,o, its weights and input made by hash_uniform() (integer hashing, reproduced exactly by
# test/models/block.ts, so 3.5M weights need not be committed): the loss and every LoRA gradient.
# And test/fixtures/models/<name>/ for name in tiny-llama, tiny-qwen2:
#   config.json          the HF config (what src/models/config.ts normalises)
#   model.safetensors    float32 weights, HF tensor names
#   lora.safetensors     LoRA A/B (r=8 on q,k,v,o) as PEFT names them, B made non-zero so that
#                        gradients reach A too
#   expected.safetensors logits at chosen positions, LoRA gradients, LoRA weights after AdamW steps
#   expected.json        input ids, positions, loss, greedy continuations, AdamW settings/losses
# Everything is float32 on CPU, deterministic from the seeds below.
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

import transformers
import peft
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from peft import LoraConfig, get_peft_model

OUT = os.path.join("test", "fixtures", "models")
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

LORA_R = 8
LORA_ALPHA = 16
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
ADAMW = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weightDecay": 0.01, "steps": 3, "clipNorm": 0.5}


def common_cfg():
    return dict(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        # Larger than the HF default (0.02) so logits are not all ~0 and greedy decoding has
        # clear margins (a random model with near-ties would make token parity a coin toss).
        initializer_range=0.25,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def make(name):
    if name == "tiny-llama":
        cfg = LlamaConfig(**common_cfg(), rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                          attention_bias=False, mlp_bias=False, hidden_act="silu")
        cls = LlamaForCausalLM
    else:
        cfg = Qwen2Config(**common_cfg(), rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                          hidden_act="silu", use_sliding_window=False)
        cls = Qwen2ForCausalLM
    torch.manual_seed(1234 if name == "tiny-llama" else 4321)
    model = cls(cfg).float().eval()
    with torch.no_grad():
        # HF initialises norms to 1 and biases to 0; perturb them so the test sees their effect.
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif n.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return cfg, model


def greedy(model, prompt, n):
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                         do_sample=False, eos_token_id=None, pad_token_id=0)
    toks = out[0, len(prompt):].tolist()
    # Margins between the best and second-best logit at each step, recomputed without cache.
    with torch.no_grad():
        logits = model(out[:, :-1]).logits[0, len(prompt) - 1:]
    top2 = logits.topk(2, dim=-1).values
    return toks, float((top2[:, 0] - top2[:, 1]).min())


BLOCK = {"hidden": 576, "heads": 9, "kvHeads": 3, "inner": 1536, "eps": 1e-5, "theta": 100000.0, "seq": 64,
         "r": 8, "alpha": 16}


def hash_uniform(n, salt, bound):
    """n values in [-bound, bound) from an integer hash of (index, salt); exact in any language:
    h = i + salt·0x9E3779B9 (mod 2³²), then murmur3's fmix32; value = (h/2³² − 0.5)·2·bound,
    computed in float64 and rounded to float32."""
    import numpy as np
    M = np.uint64(0xFFFFFFFF)
    h = (np.arange(n, dtype=np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B9)) & M
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & M
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & M
    h ^= h >> np.uint64(16)
    v = (h.astype(np.float64) / 4294967296.0 - 0.5) * 2.0 * bound
    return torch.from_numpy(v.astype(np.float32))


def block_fixture():
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding
    from peft import inject_adapter_in_model
    b = BLOCK
    cfg = LlamaConfig(hidden_size=b["hidden"], intermediate_size=b["inner"], num_attention_heads=b["heads"],
                      num_key_value_heads=b["kvHeads"], rms_norm_eps=b["eps"], rope_theta=b["theta"],
                      num_hidden_layers=1, vocab_size=256, max_position_embeddings=4096)
    cfg._attn_implementation = "eager"
    layer = LlamaDecoderLayer(cfg, layer_idx=0).float()
    lcfg = LoraConfig(r=b["r"], lora_alpha=b["alpha"], lora_dropout=0.0, target_modules=LORA_TARGETS)
    layer = inject_adapter_in_model(lcfg, layer)
    # Salts: one per tensor, in this order (test/models/block.ts uses the same table).
    salt = 1
    with torch.no_grad():
        for n, p in sorted(layer.named_parameters()):
            if n.endswith("layernorm.weight"):
                p.copy_(1.0 + hash_uniform(p.numel(), salt, 0.2).view_as(p))
            elif "lora_B" in n:
                p.copy_(hash_uniform(p.numel(), salt, 0.05).view_as(p))
            else:  # base weights and lora_A: U(−1/√in, 1/√in) like nn.Linear and PEFT
                p.copy_(hash_uniform(p.numel(), salt, 1.0 / math.sqrt(p.shape[1])).view_as(p))
            salt += 1
    names = [n for n, _ in sorted(layer.named_parameters())]
    T, D = b["seq"], b["hidden"]
    x = hash_uniform(T * D, 1000, 1.0).view(1, T, D)
    R = hash_uniform(T * D, 1001, 1.0).view(1, T, D)
    pos = torch.arange(T).view(1, T)
    cos, sin = LlamaRotaryEmbedding(cfg)(x, pos)
    mask = torch.full((T, T), float("-inf")).triu(1).view(1, 1, T, T)
    for n, p in layer.named_parameters():
        p.requires_grad_("lora_" in n)
    y = layer(x, attention_mask=mask, position_ids=pos, position_embeddings=(cos, sin))
    y = y[0] if isinstance(y, tuple) else y
    loss = (y * R).mean()
    loss.backward()
    tensors = {"y_rows": y[0, [0, 31, 63]].detach().contiguous()}
    for n, p in layer.named_parameters():
        if "lora_" in n:
            tensors["grad." + n.replace(".default", "")] = p.grad.detach().contiguous()
    d = os.path.join(OUT, "block")
    os.makedirs(d, exist_ok=True)
    save_file(tensors, os.path.join(d, "expected.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"regenerate": "~/.cache/rl4qe/oracle/bin/python scripts/fixtures_models.py",
                   "block": b, "saltOrder": names, "loss": loss.item(), "yRows": [0, 31, 63]}, f, indent=1)
    print("block loss", loss.item(), "params", names)


def main():
    print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)
    block_fixture()
    for name in ["tiny-llama", "tiny-qwen2"]:
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        cfg, model = make(name)
        cfg.save_pretrained(d)  # writes config.json
        sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        if cfg.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})

        g = torch.Generator().manual_seed(7)
        B, T = 2, 24
        ids = torch.randint(3, cfg.vocab_size, (B, T), generator=g)
        positions = [[0, 5, 23], [1, 12, 23]]
        with torch.no_grad():
            logits = model(ids).logits  # [B, T, V]
        sel = torch.stack([logits[b, positions[b]] for b in range(B)])  # [B, 3, V]
        # Loss: mean next-token cross-entropy over all B·(T−1) positions.
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size),
                                                     ids[:, 1:].reshape(-1)).item()

        # Greedy prompts: the first seeded random prompts (lengths 5 and 11) whose 64-step greedy
        # continuation never has a top-2 logit gap below 5e-3, so float32 rounding differences
        # between implementations cannot flip a token (the margin is recorded).
        greedy_out = []
        for length in (5, 11):
            for seed in range(100):
                gp = torch.Generator().manual_seed(1000 * length + seed)
                p = torch.randint(3, cfg.vocab_size, (length,), generator=gp).tolist()
                toks, margin = greedy(model, p, 64)
                if margin >= 5e-3:
                    break
            greedy_out.append({"prompt": p, "tokens": toks, "minMargin": margin})

        # ---- LoRA (PEFT) gradients and AdamW steps ----
        lcfg = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=LORA_TARGETS,
                          bias="none", init_lora_weights=True)
        pm = get_peft_model(model, lcfg)
        pm.train()  # dropout is 0 everywhere, so train() changes nothing numerically
        lora_params = {}
        torch.manual_seed(99)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.copy_(0.1 * torch.randn_like(p))
        for n, p in pm.named_parameters():
            if "lora_" in n:
                short = n.replace("base_model.model.", "").replace(".default", "")
                lora_params[short] = p
        lora_init = {k: v.detach().clone().contiguous() for k, v in lora_params.items()}

        def lm_loss():
            out = pm(input_ids=ids).logits
            return torch.nn.functional.cross_entropy(out[:, :-1].reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))

        l0 = lm_loss()
        l0.backward()
        grads = {k: v.grad.detach().clone().contiguous() for k, v in lora_params.items()}
        for p in lora_params.values():
            p.grad = None

        opt = torch.optim.AdamW(list(lora_params.values()), lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]),
                                eps=ADAMW["eps"], weight_decay=ADAMW["weightDecay"])
        step_losses, grad_norms = [], []
        for _ in range(ADAMW["steps"]):
            opt.zero_grad()
            l = lm_loss()
            l.backward()
            norm = torch.nn.utils.clip_grad_norm_(list(lora_params.values()), ADAMW["clipNorm"])
            opt.step()
            step_losses.append(l.item())
            grad_norms.append(norm.item())
        after = {k: v.detach().clone().contiguous() for k, v in lora_params.items()}

        save_file(lora_init, os.path.join(d, "lora.safetensors"), metadata={"format": "pt"})
        tensors = {"logits": sel.contiguous()}
        for k, v in grads.items():
            tensors["grad." + k] = v
        for k, v in after.items():
            tensors["adamw." + k] = v
        save_file(tensors, os.path.join(d, "expected.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump({
                "regenerate": "~/.cache/rl4qe/oracle/bin/python scripts/fixtures_models.py",
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
                "inputIds": ids.tolist(),
                "positions": positions,
                "loss": loss,
                "loraLoss": l0.item(),
                "lora": {"r": LORA_R, "alpha": LORA_ALPHA, "targets": LORA_TARGETS},
                "adamw": ADAMW,
                "adamwLosses": step_losses,
                "adamwGradNorms": grad_norms,
                "greedy": greedy_out,
            }, f, indent=1)
        print(name, "loss", loss, "lora loss", l0.item(), "greedy margins", [g["minMargin"] for g in greedy_out])


if __name__ == "__main__":
    sys.exit(main())
