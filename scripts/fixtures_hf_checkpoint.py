#!/usr/bin/env python3
# Pinned oracle for loading a real Hugging Face checkpoint directory (src/models/load.ts,
# src/io/safetensors, src/tokenizer): tiny random Qwen2 and Llama models written by transformers'
# own save_pretrained in bfloat16, sharded in two (max_shard_size) with
# model.safetensors.index.json, with a tokenizer.json (a byte-level BPE trained here by
# `tokenizers`), tokenizer_config.json (chat template) and generation_config.json: exactly the
# files a Hub model repository carries.
#
# Versions (the oracle venv, ~/.cache/rl4qe/oracle, python 3.11; bash scripts/setup-oracle.sh):
#   torch 2.15.0, transformers 5.24.0, tokenizers 0.23.3, safetensors 0.8.0
# Run from the repository root:
#   ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_hf_checkpoint.py
# It (re)writes test/fixtures/io/hf-checkpoint/:
#   <name>/                 the checkpoint directory as save_pretrained wrote it (name: tiny-qwen2-bf16,
#                           tiny-llama-bf16)
#   <name>.expected.json    the prompt, its token ids (transformers' tokenizer), the shard names
#   <name>.expected.safetensors  `logits` [tokens, vocab] float32: the directory loaded back with
#                           AutoModelForCausalLM.from_pretrained(dtype=float32), i.e. the stored
#                           bf16 weights upcast (what rl4qe computes: it loads bf16 as float32);
#                           the JSON notes how far transformers' own bf16 forward is
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

OUT = os.path.join("test", "fixtures", "io", "hf-checkpoint")
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

PINNED = {"torch": "2.15.0", "transformers": "5.24.0", "tokenizers": "0.23.3"}
for mod, want in [(torch, PINNED["torch"]), (transformers, PINNED["transformers"]), (tokenizers, PINNED["tokenizers"])]:
    if not mod.__version__.startswith(want):
        sys.exit(f"{mod.__name__} {mod.__version__} != pinned {want}: use the oracle venv (bash scripts/setup-oracle.sh)")

VOCAB = 320
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "import numpy as np\nx = np.arange(10).reshape(2, 5)\nprint(x.sum(axis=0))\n",
    "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})\nresult = df.mean()\n",
    "Write a function that returns the sum of two numbers.\n",
    "for i in range(3):\n    print(i * i)\n",
] * 20
PROMPT = "def mul(a, b):\n    return a * b  # numpy pandas\n"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def common(vocab: int, eos: int, pad: int) -> dict:
    return dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        # Larger than the default 0.02 so the logits are not all ~0 (a weak comparison).
        initializer_range=0.3,
        eos_token_id=eos,
        pad_token_id=pad,
        rms_norm_eps=1e-6,
    )


def write(name: str, model, tok: PreTrainedTokenizerFast) -> None:
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    model = model.to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tok.pad_token_id,
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
    )
    # Two shards: the limit is a bit more than half of all bytes (tied embeddings stored once).
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    model.save_pretrained(out, max_shard_size=int(total * 0.55))
    tok.save_pretrained(out)
    shards = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    if len(shards) != 2 or not os.path.exists(os.path.join(out, "model.safetensors.index.json")):
        sys.exit(f"{name}: expected 2 shards and an index, got {shards}")
    for f in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        if not os.path.exists(os.path.join(out, f)):
            sys.exit(f"{name}: save_pretrained wrote no {f}")

    ids = tok(PROMPT, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    # The reference is the checkpoint loaded back the way a user loads it: from_pretrained in
    # float32 (bf16 weights upcast exactly; rotary frequencies computed in float32, not the bf16
    # copies a .to(bfloat16) model carries).
    with torch.no_grad():
        f32 = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        f32_logits = f32(x).logits[0]
        bf16 = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16).eval()
        bf16_logits = bf16(x).logits[0].float()
    with open(os.path.join(OUT, f"{name}.expected.json"), "w") as fh:
        json.dump(
            {
                "generator": "scripts/fixtures_hf_checkpoint.py",
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
                "prompt": PROMPT,
                "ids": ids,
                "vocab": model.config.vocab_size,
                "shards": shards,
                "max_abs_bf16_vs_f32": float((bf16_logits - f32_logits).abs().max()),
            },
            fh,
        )
        fh.write("\n")
    save_file({"logits": f32_logits.contiguous()}, os.path.join(OUT, f"{name}.expected.safetensors"), metadata={"format": "pt"})
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{name}: {len(ids)} tokens, shards {shards}, {size} bytes; bf16 vs f32 compute max |d| {float((bf16_logits - f32_logits).abs().max()):.4f}")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    tok = make_tokenizer()
    vocab = len(tok)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    pad = tok.convert_tokens_to_ids("<|endoftext|>")
    torch.manual_seed(0)
    qwen = Qwen2ForCausalLM(Qwen2Config(**common(vocab, eos, pad), tie_word_embeddings=True, rope_theta=1000000.0))
    write("tiny-qwen2-bf16", qwen, tok)
    torch.manual_seed(1)
    llama = LlamaForCausalLM(LlamaConfig(**common(vocab, eos, pad), tie_word_embeddings=False, rope_theta=10000.0))
    write("tiny-llama-bf16", llama, tok)


if __name__ == "__main__":
    main()
