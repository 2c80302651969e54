#!/usr/bin/env python3
# Pinned oracle for src/models, src/nn and src/sampling: tiny random-weight Llama and Qwen2 models
# made with Hugging Face transformers, and what transformers + PEFT + torch compute on them.
#
# Versions (the oracle venv, ~/.cache/rl4qe/oracle, python 3.11):
#   torch 2.15.0, transformers 5.24.0, peft 0.21.2, safetensors 0.8.0, numpy (any recent)
# Run from the repository root:
#   ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_models.py
# It (re)writes test/fixtures/models/<name>/ for name in tiny-llama, tiny-qwen2:
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


def main():
    print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)
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
