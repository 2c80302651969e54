#!/usr/bin/env python3
"""Oracle fixtures for the local-engine generator (src/generators/local.ts, peft-adapter.ts).

For the committed tiny random models test/fixtures/models/tiny-llama and tiny-qwen2 (written by
scripts/fixtures_models.py) this script makes what a trained refiner ships, and what Python
transformers + PEFT do with it:
  - a 256-token byte-level BPE tokenizer with a ChatML chat template (ids 0..4 are <pad>, <s>,
    </s>, <|im_start|>, <|im_end|>; ids 5..255 the bytes 5..255), saved with save_pretrained;
  - one PEFT LoRA adapter per model, saved with PeftModel.save_pretrained (lora_B made non-zero):
      tiny-llama: target_modules a list of all 7 projections, r=4, alpha=8, and
                  rank_pattern/alpha_pattern {o_proj: 2 / 4} (per-module rank and scaling);
      tiny-qwen2: target_modules a regular expression (q, v, down), r=4, alpha=8, use_rslora
                  (scaling alpha/sqrt(r));
  - expected.json: for a chat request, the prompt ids (apply_chat_template), the first-step logits
    with and without the adapter, and PEFT's greedy continuation (generate, eos = </s> and
    <|im_end|>) with its decoded text, picked so the top-2 logit margin stays >= 5e-3 at every
    step (float32 rounding cannot flip a token).

Pinned versions (the oracle venv ~/.cache/rl4qe/oracle, Python 3.11):
    torch==2.15.0  transformers==5.24.0  peft==0.21.2  tokenizers==0.23.3  safetensors==0.8.0  gguf==0.19.0

Run from the repository root:
    ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_local_generator.py
And the same on the real SmolLM2-135M test GGUF (~/.cache/rl4qe/test-models, fetched by
`node scripts/fetch-test-models.mjs`), loaded by transformers' GGUF loader: an adapter with
layers_to_transform (r=4 on q_proj, v_proj of layers 0, 6, 12, 18, 24), the chat prompt ids
(the GGUF's own template), PEFT's greedy continuation and first-step top-10 logits.
Writes test/fixtures/generators/local/{tokenizer/, adapter-tiny-llama/, adapter-tiny-qwen2/,
adapter-smollm2/, expected.json} (about 230 KB).
"""
import json
import os
import sys

import torch
import transformers
import peft
import tokenizers
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

OUT = os.path.join("test", "fixtures", "generators", "local")
MODELS = os.path.join("test", "fixtures", "models")
REGEN = "~/.cache/rl4qe/oracle/bin/python scripts/fixtures_local_generator.py"
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

SPECIALS = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)
N_NEW = 16
CANDIDATES = [
    [{"role": "system", "content": "Refine the query."}, {"role": "user", "content": "sum a list"}],
    [{"role": "user", "content": "Sort a DataFrame by column a."}],
    [{"role": "system", "content": "Be precise."}, {"role": "user", "content": "reverse a string in Python"}],
    [{"role": "user", "content": "np.mean of rows"}],
    [{"role": "user", "content": "Plot x against y."}],
    [{"role": "user", "content": "merge two dicts"}],
]


def bytes_to_unicode():
    """GPT-2's byte → printable character map (what the ByteLevel pre-tokenizer uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def make_tokenizer():
    b2u = bytes_to_unicode()
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for b in range(len(SPECIALS), 256):
        vocab[b2u[b]] = b
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHATML
    d = os.path.join(OUT, "tokenizer")
    os.makedirs(d, exist_ok=True)
    fast.save_pretrained(d)
    return fast


def lora_config(name):
    if name == "tiny-llama":
        return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none",
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                          rank_pattern={"o_proj": 2}, alpha_pattern={"o_proj": 4}, task_type="CAUSAL_LM")
    return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", use_rslora=True,
                      target_modules=r".*\.(q_proj|v_proj|down_proj)", task_type="CAUSAL_LM")


# Module-matching cases: PEFT's own check_target_module_exists and get_pattern_key on these
# configs and module names (what src/generators/peft-adapter.ts isPeftTarget reproduces).
MATCH_KEYS = [
    "model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj", "model.layers.12.self_attn.v_proj",
    "model.layers.0.mlp.down_proj", "model.layers.3.mlp.gate_proj", "lm_head", "model.layers.2.self_attn.o_proj",
]
MATCH_CONFIGS = [
    {"target_modules": ["q_proj", "v_proj"]},
    {"target_modules": ["model.layers.0.mlp.down_proj", "o_proj"]},
    {"target_modules": r".*\.(q_proj|down_proj)"},
    {"target_modules": r"model\.layers\.1\..*"},
    {"target_modules": ["q_proj", "v_proj", "down_proj"], "exclude_modules": ["v_proj"]},
    {"target_modules": ["q_proj", "v_proj", "down_proj"], "exclude_modules": r".*layers\.0\..*"},
    {"target_modules": ["q_proj", "v_proj", "o_proj"], "layers_to_transform": [0, 12]},
    {"target_modules": ["q_proj", "down_proj"], "layers_to_transform": 1, "layers_pattern": "layers"},
    {"target_modules": ["q_proj", "down_proj"], "layers_to_transform": [0], "layers_pattern": ["blocks", "layers"]},
]
PATTERN_KEYS = ["o_proj", "model.layers.1.self_attn.q_proj", r"layers\.12\..*"]


def matching_cases():
    from peft.tuners.tuners_utils import check_target_module_exists
    from peft.utils.other import get_pattern_key
    cases = []
    for c in MATCH_CONFIGS:
        cfg = LoraConfig(r=4, lora_alpha=8, **c)
        cases.append({"config": c, "matches": {k: bool(check_target_module_exists(cfg, k)) for k in MATCH_KEYS}})
    patterns = {k: get_pattern_key(PATTERN_KEYS, k) for k in MATCH_KEYS}
    return {"targets": cases, "patternKeys": PATTERN_KEYS, "patternOf": patterns}


SMOLLM2 = "smollm2-135m-instruct-q4_1.gguf"
SMOLLM2_NEW = 8
SMOLLM2_CANDIDATES = [
    [{"role": "system", "content": "You write Python."}, {"role": "user", "content": "Write a function that adds two numbers."}],
    [{"role": "user", "content": "Sort a list of numbers in Python."}],
    [{"role": "user", "content": "Reverse a string."}],
]


def smollm2_case():
    """A PEFT adapter on the real SmolLM2-135M (the test GGUF, dequantised to float32 by
    transformers' GGUF loader, as rl4qe does): r=4 on q_proj and v_proj of every 6th layer
    (layers_to_transform, default layers_pattern), its greedy chat continuation and first-step
    top-10 logits with and without it."""
    from transformers import AutoTokenizer
    home = os.environ.get("RL4QE_HOME", os.path.join(os.path.expanduser("~"), ".cache", "rl4qe"))
    d = os.path.join(home, "test-models")
    tok = AutoTokenizer.from_pretrained(d, gguf_file=SMOLLM2)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=SMOLLM2, dtype=torch.float32).eval()
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", target_modules=["q_proj", "v_proj"],
                     layers_to_transform=[0, 6, 12, 18, 24], task_type="CAUSAL_LM")
    torch.manual_seed(2026)
    pm = get_peft_model(model, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.15 * torch.randn_like(p))
    pm.eval()
    adir = os.path.join(OUT, "adapter-smollm2")
    pm.save_pretrained(adir)
    os.remove(os.path.join(adir, "README.md"))
    cfg_file = os.path.join(adir, "adapter_config.json")
    with open(cfg_file) as f:
        saved = json.load(f)
    saved["target_modules"] = sorted(saved["target_modules"])
    saved["base_model_name_or_path"] = SMOLLM2
    with open(cfg_file, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
    os.chmod(os.path.join(adir, "adapter_model.safetensors"), 0o644)
    eos = [0, 2]  # <|endoftext|>, <|im_end|>: what rl4qe's defaultStopTokens picks for this model
    for msgs in SMOLLM2_CANDIDATES:
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            gen = pm.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=SMOLLM2_NEW,
                              do_sample=False, eos_token_id=eos, pad_token_id=0)
            toks = gen[0, len(ids):].tolist()
            full = pm(input_ids=gen).logits[0, len(ids) - 1:len(ids) - 1 + len(toks)]
            with pm.disable_adapter():
                base = pm(input_ids=x).logits[0, -1]
        top2 = full.topk(2, dim=-1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
        if margin < 5e-3:
            continue
        first = full[0]
        top = first.topk(10)
        stopped = len(toks) > 0 and toks[-1] in eos
        print("smollm2 prompt", len(ids), "tokens", toks, "margin", margin,
              "max |adapter - base|", float((first - base).abs().max()))
        return {"model": SMOLLM2, "adapter": adir, "messages": msgs, "promptIds": ids, "tokens": toks,
                "text": tok.decode(toks[:-1] if stopped else toks, skip_special_tokens=True),
                "finishReason": "stop" if stopped else "length", "minMargin": margin, "stopTokenIds": eos,
                "firstLogitsTop": {"ids": top.indices.tolist(), "values": [float(v) for v in top.values]},
                "baseFirstLogitsAtTop": [float(base[i]) for i in top.indices.tolist()]}
    raise SystemExit("smollm2: no candidate prompt with a safe greedy margin")


def main():
    print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__,
          "tokenizers", tokenizers.__version__)
    fast = make_tokenizer()
    eos = [fast.convert_tokens_to_ids("</s>"), fast.convert_tokens_to_ids("<|im_end|>")]
    out = {"regenerate": REGEN,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "peft": peft.__version__, "tokenizers": tokenizers.__version__},
           "stopTokenIds": eos, "maxTokens": N_NEW, "matching": matching_cases(), "models": {}}
    for name in ["tiny-llama", "tiny-qwen2"]:
        model = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, name), dtype=torch.float32).eval()
        torch.manual_seed(2024 if name == "tiny-llama" else 2025)
        pm = get_peft_model(model, lora_config(name))
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.copy_(0.2 * torch.randn_like(p))
        pm.eval()
        adir = os.path.join(OUT, f"adapter-{name}")
        pm.save_pretrained(adir)
        os.remove(os.path.join(adir, "README.md"))  # PEFT's model card template: not needed
        # PEFT writes target_modules from a set (order varies with PYTHONHASHSEED): sort it so the
        # committed file is reproducible.
        cfg_file = os.path.join(adir, "adapter_config.json")
        with open(cfg_file) as f:
            saved = json.load(f)
        if isinstance(saved["target_modules"], list):
            saved["target_modules"] = sorted(saved["target_modules"])
        with open(cfg_file, "w") as f:
            json.dump(saved, f, indent=2, sort_keys=True)
        os.chmod(os.path.join(adir, "adapter_model.safetensors"), 0o644)
        chosen = None
        for msgs in CANDIDATES:
            text = fast.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            ids = fast(text, add_special_tokens=False)["input_ids"]
            x = torch.tensor([ids])
            with torch.no_grad():
                gen = pm.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=N_NEW,
                                  do_sample=False, eos_token_id=eos, pad_token_id=0)
                toks = gen[0, len(ids):].tolist()
                full = pm(input_ids=gen).logits[0, len(ids) - 1:len(ids) - 1 + len(toks)]
            top2 = full.topk(2, dim=-1).values
            margin = float((top2[:, 0] - top2[:, 1]).min())
            if margin >= 5e-3:
                chosen = (msgs, text, ids, toks, margin)
                break
        assert chosen is not None, f"{name}: no candidate prompt with a safe greedy margin"
        msgs, text, ids, toks, margin = chosen
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = pm(input_ids=x).logits[0, -1]
            with pm.disable_adapter():
                base = pm(input_ids=x).logits[0, -1]
        stopped = len(toks) > 0 and toks[-1] in eos
        body = toks[:-1] if stopped else toks
        out["models"][name] = {
            "model": os.path.join(MODELS, name),
            "adapter": adir,
            "messages": msgs,
            "promptText": text,
            "promptIds": ids,
            "tokens": toks,
            "text": fast.decode(body, skip_special_tokens=True),
            "finishReason": "stop" if stopped else "length",
            "minMargin": margin,
            "logits": [round(float(v), 6) for v in logits],
            "baseLogits": [round(float(v), 6) for v in base],
        }
        print(name, "prompt", len(ids), "tokens", toks, "margin", margin,
              "max |adapter - base|", float((logits - base).abs().max()))
    out["smollm2"] = smollm2_case()
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
