#!/usr/bin/env python3
# Pinned TRL baseline for `rl4qe bench rl-step`: seconds per RL step of TRL's GRPOTrainer on CPU
# for the refiner's setting — PEFT LoRA r=8 (alpha 32, dropout 0) on q,k,v,o of the SAME GGUF
# rl4qe loads (dequantised to float32 by transformers' GGUF loader), beta 0 (no reference model),
# 2 prompts × K 4 (num_generations=4, per_device_train_batch_size=8: one generation batch per
# optimisation step), temperature 0.7, top-p 0.9, exactly NEW completion tokens
# (max_completion_length = NEW and generation_kwargs min_new_tokens = NEW), prompts of at most
# PROMPT tokens, reward = a function of the rewrite alone (its length in characters near 300:
# −|len − 300| / 300, so the group's rewards differ and the advantages are not all zero).
# TRL's defaults otherwise, except float32 (bf16=False: the same precision as rl4qe; TRL's bf16
# default would change the arithmetic) and use_cpu=True. TRL's default gradient checkpointing
# (True) is kept; --no-gradient-checkpointing turns it off (the JSON says which ran).
# --bf16 (the `/bf16` cases of the bench, ratio key pytorch-bf16): GRPOConfig(bf16=True), which on
# CPU runs the model under torch.autocast("cpu", dtype=torch.bfloat16) (accelerate's bf16 mixed
# precision: matmuls in bf16, LoRA parameters, gradients and AdamW in fp32), generation included.
# transformers refuses to train a model loaded from GGUF while its quantiser marker is set
# (validate_quantization_for_training: "purely quantized model"), although the weights are
# float32 once loaded: the script checks that every parameter is float32 and then clears the
# marker (hf_quantizer, is_quantized, config.quantization_config).
# Versions (oracle venv ~/.cache/rl4qe/oracle): torch 2.15.0, transformers 5.24.0, peft 0.21.2,
# trl 1.16.0, accelerate 1.16.0, datasets 5.2.0.
# Run from the repository root (the bench does this itself):
#   ~/.cache/rl4qe/oracle/bin/python scripts/bench_rl_step_trl.py \
#       --model ~/.cache/rl4qe/test-models/smollm2-135m-instruct-q4_1.gguf --steps 3 --threads 2
# Times every optimisation step (a TrainerCallback around it: generation, reward, scoring,
# backward, AdamW) after one warm-up step; prints one JSON line:
# {"secondsPerStep" (median), "stepsS", "peakRssMb", "promptTokens", "completionTokens", …}.
import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
ap.add_argument("--prompts", type=int, default=2, help="distinct prompts per step")
ap.add_argument("--k", type=int, default=4, help="num_generations")
ap.add_argument("--prompt", type=int, default=512, help="prompt tokens (at most)")
ap.add_argument("--new", type=int, default=128, help="completion tokens (exactly)")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--no-gradient-checkpointing", action="store_true")
ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GRPOConfig bf16=True)")
args = ap.parse_args()

torch.set_num_threads(args.threads)
import transformers  # noqa: E402
import peft  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

d, f = os.path.split(os.path.abspath(args.model))
t0 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
load_s = time.perf_counter() - t0
bad = [n for n, p in model.named_parameters() if p.dtype != torch.float32]
assert not bad, f"not float32 after the GGUF load: {bad[:3]}"
# The weights are plain float32 tensors now; drop the GGUF quantiser marker so Trainer accepts it.
if getattr(model, "hf_quantizer", None) is not None:
    model.hf_quantizer = None
if getattr(model, "is_quantized", False):
    model.is_quantized = False
if getattr(model.config, "quantization_config", None) is not None:
    del model.config.quantization_config
if tok.pad_token is None:
    tok.pad_token = tok.eos_token

# Prompts: a query-rewrite instruction and a DS-1000-style question, padded with more of the
# problem's context and cut to at most PROMPT tokens; one distinct prompt per row.
BASE = ("Rewrite the following programming question so that a code generator can solve it. Keep every "
        "requirement, name the inputs and outputs, and state the expected result.\n\nQuestion {i}: I have a "
        "pandas DataFrame with columns 'user', 'time' and 'amount'. For each user I want the cumulative sum "
        "of amount ordered by time, but it must restart whenever the gap between consecutive times is more "
        "than {i} days. ")
CONTEXT = ("The frame has about ten thousand rows, times are datetime64 values, some users have a single row, "
           "and the result should keep the original index and add a column named 'running'. ")


def make_prompt(i):
    text = BASE.format(i=i + 2)
    while len(tok(text)["input_ids"]) < args.prompt:
        text += CONTEXT
    ids = tok(text)["input_ids"][: args.prompt - 8]  # room for special tokens the trainer adds
    return tok.decode(ids, skip_special_tokens=True)


n_rows = args.prompts * (args.steps + 1)
prompts = [make_prompt(i) for i in range(n_rows)]
prompt_tokens = [len(tok(p)["input_ids"]) for p in prompts]
dataset = Dataset.from_dict({"prompt": prompts})


def length_reward(completions, **kwargs):
    return [-abs(len(c) - 300) / 300 for c in completions]


class StepTimer(TrainerCallback):
    def __init__(self):
        self.t = None
        self.steps = []

    def on_step_begin(self, a, state, control, **kw):
        self.t = time.perf_counter()

    def on_step_end(self, a, state, control, **kw):
        self.steps.append(time.perf_counter() - self.t)


timer = StepTimer()
out_dir = tempfile.mkdtemp(prefix="rl4qe-trl-")
cfg = GRPOConfig(
    output_dir=out_dir,
    use_cpu=True,
    bf16=args.bf16,
    beta=0.0,
    num_generations=args.k,
    per_device_train_batch_size=args.prompts * args.k,
    max_completion_length=args.new,
    temperature=0.7,
    top_p=0.9,
    generation_kwargs={"min_new_tokens": args.new},
    gradient_checkpointing=not args.no_gradient_checkpointing,
    max_steps=args.steps + 1,
    logging_steps=1,
    save_strategy="no",
    report_to=[],
    shuffle_dataset=False,
    seed=1,
    disable_tqdm=True,
)
trainer = GRPOTrainer(
    model=model,
    reward_funcs=length_reward,
    args=cfg,
    train_dataset=dataset,
    processing_class=tok,
    peft_config=LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                           task_type="CAUSAL_LM"),
    callbacks=[timer],
)
trainer.train()
logs = [h for h in trainer.state.log_history if "loss" in h or "reward" in h]
comp_len = [h.get("completions/mean_length") for h in logs]
timed = timer.steps[1:]
print(json.dumps({
    "secondsPerStep": statistics.median(timed) if timed else None,
    "stepsS": timer.steps,
    "warmupS": timer.steps[0] if timer.steps else None,
    "peakRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "loadS": load_s,
    "prompts": args.prompts, "k": args.k,
    "promptTokens": prompt_tokens[: args.prompts * (args.steps + 1)],
    "completionTokens": args.new, "completionMeanLength": comp_len,
    "gradientCheckpointing": cfg.gradient_checkpointing, "bf16": cfg.bf16, "beta": cfg.beta,
    "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
    "peft": peft.__version__, "trl": trl.__version__,
    "rewards": [h.get("reward") for h in logs],
}))
sys.stdout.flush()
