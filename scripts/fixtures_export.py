#!/usr/bin/env python3
# Pinned oracle for adapter export (src/io/peft.ts, src/train/export.ts, test/io/export.test.ts):
# SmolLM2-135M-Instruct from the offline GGUF test model, dequantised to float32 by transformers'
# GGUF loader (as scripts/fixtures_gguf_hf.py does), with a PEFT LoRA of rank 2 on q_proj and
# v_proj of every layer whose A and B come from hash_uniform (scripts/fixtures_models.py; the test
# computes the same values bit for bit in test/io/export-fixture.ts).
#
# Versions (oracle venv ~/.cache/rl4qe/oracle, python 3.11):
#   torch 2.15.0, transformers 5.24.0, peft 0.21.2, gguf 0.19.0, safetensors 0.8.0
#
# Run from the repository root (after `node scripts/fetch-test-models.mjs`):
#   ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_export.py
# writes test/fixtures/export/
#   peft-reference/adapter_config.json + adapter_model.safetensors   what PeftModel.save_pretrained
#       writes for this adapter (the test compares rl4qe's writer with it, tensor bytes included)
#   expected.json   for two prompts of test/fixtures/models/llamacpp-smollm2.json: the top-32
#       logits (ids, values) at three positions and 16 greedy tokens (with top-2 margins) of the
#       base model + adapter, as transformers + PEFT compute them
#
# The test also runs it as a checker of what rl4qe exported (only when the oracle venv exists):
#   scripts/fixtures_export.py --check --peft DIR --merged DIR
# loads the rl4qe-written adapter with PeftModel.from_pretrained and the merged export with
# AutoModelForCausalLM / AutoTokenizer, and prints (JSON, stdout) their logits at the fixture's
# ids and positions and the merged tokenizer's ids of each prompt text.
import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_models import hash_uniform  # noqa: E402

import peft  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)
OUT = os.path.join("test", "fixtures", "export")
HOME = os.environ.get("RL4QE_HOME", os.path.join(os.path.expanduser("~"), ".cache", "rl4qe"))
MODELS = os.path.join(HOME, "test-models")
GGUF = "smollm2-135m-instruct-q4_1.gguf"
REGEN = "~/.cache/rl4qe/oracle/bin/python scripts/fixtures_export.py"

# Must equal ADAPTER in test/io/export-fixture.ts.
R, ALPHA, TARGETS, LAYERS, HIDDEN = 2, 4, ["q_proj", "v_proj"], 30, 576
OUT_DIM = {"q_proj": 576, "v_proj": 192}
BOUND = {"q_proj": 0.3, "v_proj": 0.05}
CASES = [0, 1]  # indices into llamacpp-smollm2.json
TOPK, NTOK = 32, 16


def salt(layer, module, which):
    return 1 + 4 * layer + (0 if module == "q_proj" else 2) + (0 if which == "A" else 1)


def base_model():
    return AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=GGUF, dtype=torch.float32).eval()


def with_adapter(model):
    cfg = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                     task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" not in n:
                continue
            # base_model.model.model.layers.N.self_attn.q_proj.lora_A.default.weight
            parts = n.split(".")
            layer = int(parts[parts.index("layers") + 1])
            module = parts[parts.index("self_attn") + 1]
            which = "A" if ".lora_A." in n else "B"
            shape = (R, HIDDEN) if which == "A" else (OUT_DIM[module], R)
            assert tuple(p.shape) == shape, (n, p.shape)
            p.copy_(hash_uniform(p.numel(), salt(layer, module, which), BOUND[module]).view(shape))
    return pm.eval()


def prompts():
    src = json.load(open(os.path.join("test", "fixtures", "models", "llamacpp-smollm2.json")))
    return [src["cases"][i] for i in CASES]


def positions_of(prompt):
    return [0, len(prompt) // 2, len(prompt) - 1]


def logits_at(model, prompt):
    with torch.no_grad():
        return model(torch.tensor([prompt])).logits[0]  # [T, V]


def generate():
    model = with_adapter(base_model())
    cases = []
    for c in prompts():
        lg = logits_at(model, c["prompt"])
        pos = positions_of(c["prompt"])
        top = [{"position": p, "ids": lg[p].topk(TOPK).indices.tolist(), "values": lg[p].topk(TOPK).values.tolist()}
               for p in pos]
        ids = torch.tensor([c["prompt"]])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NTOK,
                                 min_new_tokens=NTOK, do_sample=False, eos_token_id=None, pad_token_id=0)
            toks = out[0, ids.shape[1]:].tolist()
            gl = model(out[:, :-1]).logits[0, ids.shape[1] - 1:]
        t2 = gl.topk(2, dim=-1).values
        cases.append({"text": c["text"], "prompt": c["prompt"], "top": top, "tokens": toks,
                      "margins": (t2[:, 0] - t2[:, 1]).tolist()})
        print(len(toks), "tokens, min margin", float((t2[:, 0] - t2[:, 1]).min()))
    ref = os.path.join(OUT, "peft-reference")
    shutil.rmtree(ref, ignore_errors=True)
    model.save_pretrained(ref)
    os.remove(os.path.join(ref, "README.md"))  # PEFT's 200-line template card: not compared
    json.dump({"regenerate": REGEN,
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "peft": peft.__version__},
               "model": GGUF,
               "adapter": {"r": R, "alpha": ALPHA, "targets": TARGETS, "bound": BOUND},
               "cases": cases},
              open(os.path.join(OUT, "expected.json"), "w"), indent=1)


def check(peft_dir, merged_dir):
    exp = json.load(open(os.path.join(OUT, "expected.json")))
    result = {}

    def values(model):
        out = []
        for c in exp["cases"]:
            lg = logits_at(model, c["prompt"])
            out.append([[float(lg[t["position"], i]) for i in t["ids"]] for t in c["top"]])
        return out

    if peft_dir:
        model = PeftModel.from_pretrained(base_model(), peft_dir).eval()
        result["peft"] = values(model)
        del model
    if merged_dir:
        model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
        result["merged"] = values(model)
        tok = AutoTokenizer.from_pretrained(merged_dir)
        result["mergedTokenizerIds"] = [tok(c["text"], add_special_tokens=True)["input_ids"] for c in exp["cases"]]
    json.dump(result, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--peft")
    ap.add_argument("--merged")
    a = ap.parse_args()
    if a.check:
        check(a.peft, a.merged)
    else:
        print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__,
              file=sys.stderr)
        generate()


if __name__ == "__main__":
    main()
