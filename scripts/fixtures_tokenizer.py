#!/usr/bin/env python3
"""Tokenizer and chat-template oracle fixtures for rl4qe (src/tokenizer).

The oracle is Hugging Face transformers itself: `AutoTokenizer.from_pretrained(dir, gguf_file=...)`
for the GGUF test models (their vocabulary converted the way transformers' GGUF integration does),
`AutoTokenizer.from_pretrained(dir)` for a tokenizer.json, and `apply_chat_template` for chat
templates. The fixtures it writes are small: token ids, hashes of ids, rendered chats, and the
tokenizer.json skeleton (everything but the vocabulary and merges, which are hashed).

Pinned versions (the oracle venv /root/.cache/rl4qe/oracle, Python 3.11.7):
    transformers==5.24.0  tokenizers==0.23.3  gguf==0.19.0  jinja2==3.1.6  sentencepiece==0.2.3

Inputs:
    /work/shared/data/ds1000.jsonl.gz (or $RL4QE_DS1000), sha256 e8c6daa9...9b3
    ~/.cache/rl4qe/test-models/{smollm2-135m-instruct-q4_1.gguf,
        qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf}   (node scripts/fetch-test-models.mjs)

Run (from the repository root):
    /root/.cache/rl4qe/oracle/bin/python scripts/fixtures_tokenizer.py

Writes test/fixtures/tokenizer/:
    synthetic/tokenizer.json, synthetic/tokenizer_config.json   a small BPE trained here
    synthetic-spm/tokenizer.json, .../tokenizer_config.json    a Llama-2-style byte-fallback BPE
    synthetic.gguf                                             the same vocabulary as GGUF metadata
    synthetic.expected.json, synthetic-gguf.expected.json,
    synthetic-spm.expected.json                                ids, decodes, chats for each
    smollm2-135m.expected.json, qwen2.5-coder-0.5b.expected.json   per test model
"""

import gzip
import hashlib
import json
import os
import sys

import gguf
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "tokenizer")
DS1000 = os.environ.get("RL4QE_DS1000", "/work/shared/data/ds1000.jsonl.gz")
HOME = os.environ.get("RL4QE_HOME", os.path.join(os.path.expanduser("~"), ".cache", "rl4qe"))
MODELS_DIR = os.path.join(HOME, "test-models")

TEST_MODELS = [
    ("smollm2-135m", "smollm2-135m-instruct-q4_1.gguf"),
    ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf"),
]

# Every FULL_EVERY-th DS-1000 prompt keeps its full id list (for readable diffs); every prompt
# keeps a hash of its ids (full coverage in a few KB).
FULL_EVERY = 10

# Hand-written texts that stress the pre-tokenizers: tabs, long whitespace runs, CRLF, unicode
# normalisation forms, emoji sequences, CJK, numbers, contractions, special tokens in the text.
EXTRA = [
    "Hello world",
    "",
    " ",
    "   leading spaces",
    "trailing spaces   ",
    "\t\tdef f(x):\n\t\t\treturn x  # tab-indented\n",
    "def g():\n" + " " * 4 + "if x:\n" + " " * 8 + "return [i ** 2 for i in range(10)]\n",
    " " * 37 + "a" + " " * 64 + "\n",
    "\n\n\n\n\n",
    "\t" * 12 + "x",
    " \t \n  \t\n\t  \r\n",
    "line one\r\nline two\r\n\r\n",
    "1234567890 3.14159 -42 1e-10 0xFF 1,000,000 007 2024-01-31",
    "I'm sure you're right, he's done, we've got it, they'll see, I'd say, don't, WON'T, It'S, O'Neil",
    "naïve café résumé Ångström Straße ẞ œuvre",
    "e\u0301 vs \u00e9 (combining vs precomposed)",
    "😀 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️ 🤖🚀",
    "数据框的列名 日本語のテキスト 한국어 텍스트 中文，标点。",
    "مرحبا بالعالم שלום עולם Привет мир Γειά σου",
    "∑ ∫ √ ≤ ≥ ≠ ∞ → ⇒ ∀x∈ℝ",
    "a\u200bb\u00a0c\u2028d\ufeffe",
    "ＡＢＣ１２３ full-width",
    "df.loc[df['a'] > 0, 'b'].apply(lambda x: x**2).groupby(['k1','k2']).agg({'v': 'sum'})",
    "np.einsum('ij,jk->ik', A, B)  # matrix product\nplt.plot(x, y, 'r--', lw=2)",
    "'''docstring''' \"\"\"triple\"\"\" `backtick` ~!@#$%^&*()_+{}|:<>?",
    "https://example.com/path?q=1&r=two#frag user@example.com",
    "a" * 300,
    "=" * 80 + "\n" + "-" * 80,
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after",
    "<|im_start partial <|im_end| <im_end|>",
    "<s> </s> <unk> <tool_call>{\"name\": \"f\"}</tool_call>",
    "x\x00y\x01z\x7f",
    "\u00ff\u0100\u0101 Ġ Ċ ĉ",
    "   \n   \n",
    "Mixed\tTabs\tand  spaces\t \tin a row",
]

CONVERSATIONS = [
    [
        {"role": "system", "content": "You rewrite data-science questions so code models answer them well."},
        {"role": "user", "content": "How do I sort a DataFrame by two columns?"},
    ],
    [{"role": "user", "content": "hi"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is numpy?"},
        {"role": "assistant", "content": "A library for arrays."},
        {"role": "user", "content": "And pandas? 数据框 😀"},
    ],
    [
        {"role": "user", "content": "Write code:\n\tdef f(x):\n\t\treturn x"},
        {"role": "assistant", "content": "```python\ndef f(x):\n    return x\n```"},
        {"role": "user", "content": "Now with a docstring."},
    ],
]

# A tool-calling exchange, rendered only for templates that mention tools (Qwen2.5).
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run_python",
            "description": "Run Python code (ünïcode in the schema)",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        },
    }
]
TOOL_CONVERSATION = [
    {"role": "user", "content": "Compute 1+1 with Python."},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "run_python", "arguments": {"code": "print(1+1)"}}}],
    },
    {"role": "tool", "content": "2"},
]

SYNTHETIC_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}[SYS] {{ m.content | trim }}\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def ids_hash(ids):
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def list_hash(items):
    s = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def skeleton(tok):
    """tokenizer.json without vocab and merges (hashed instead)."""
    j = json.loads(tok.backend_tokenizer.to_str())
    model = dict(j["model"])
    vocab = model.pop("vocab")
    merges = model.pop("merges", None)
    by_id = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        by_id[i] = t
    out = {k: j[k] for k in ("added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder")}
    out["model"] = model
    out["vocab_size"] = len(vocab)
    out["vocab_sha256"] = list_hash(by_id)
    if merges is not None:
        out["merges_count"] = len(merges)
        out["merges_sha256"] = list_hash([m.split(" ") if isinstance(m, str) else m for m in merges])
    return out


def expectations(tok, prompts, full_every):
    special = {k: v for k, v in tok.special_tokens_map.items() if isinstance(v, str)}
    out = {
        "len": len(tok),
        "special_tokens_map": special,
        "special_ids": {k: tok.convert_tokens_to_ids(v) for k, v in special.items()},
        "skeleton": skeleton(tok),
        "extra": [],
        "ds1000": {"count": len(prompts), "full_every": full_every, "hashes": [], "full": {}},
        "chats": [],
    }
    for text in EXTRA:
        ids = tok(text)["input_ids"]
        ids_no_special = tok(text, add_special_tokens=False)["input_ids"]
        out["extra"].append(
            {
                "text": text,
                "ids": ids,
                "ids_no_special": ids_no_special,
                "decoded_no_special": tok.decode(ids_no_special),
                "decoded": tok.decode(ids),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )
    # Streaming decode: prefixes and suffixes of multi-byte characters' ids, where a token holds
    # an incomplete UTF-8 sequence (what a sampler sees mid-generation).
    out["partial_decodes"] = []
    for text in ["😀", "数据框", "👨‍👩‍👧‍👦", "é", "naïve 数 \ufeff!"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        for k in range(1, len(ids)):
            out["partial_decodes"].append({"ids": ids[:k], "decoded": tok.decode(ids[:k])})
            out["partial_decodes"].append({"ids": ids[k:], "decoded": tok.decode(ids[k:])})
    for i, text in enumerate(prompts):
        ids = tok(text)["input_ids"]
        out["ds1000"]["hashes"].append(ids_hash(ids))
        if i % full_every == 0:
            out["ds1000"]["full"][str(i)] = ids
    if tok.chat_template:
        for conv in CONVERSATIONS:
            for agp in (False, True):
                text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp)
                ids = tok(text, add_special_tokens=False)["input_ids"]
                out["chats"].append({"messages": conv, "add_generation_prompt": agp, "text": text, "ids": ids})
        if "tools" in tok.chat_template:
            text = tok.apply_chat_template(TOOL_CONVERSATION, tools=TOOLS, tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            out["chats"].append(
                {"messages": TOOL_CONVERSATION, "tools": TOOLS, "add_generation_prompt": True, "text": text, "ids": ids}
            )
    return out


def write_json(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def synthetic(prompts):
    """A small byte-level BPE (tokenizer.json) and the same vocabulary as a GGUF file."""
    syn_dir = os.path.join(OUT, "synthetic")
    os.makedirs(syn_dir, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(prompts[:200], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.save(os.path.join(syn_dir, "tokenizer.json"))
    with open(os.path.join(syn_dir, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "<|im_end|>",
                "pad_token": "</s>",
                "unk_token": "<unk>",
                "clean_up_tokenization_spaces": False,
                "chat_template": SYNTHETIC_TEMPLATE,
            },
            f,
            indent=2,
        )
    hf = AutoTokenizer.from_pretrained(syn_dir)
    exp = expectations(hf, prompts[:100], 10)
    exp["oracle_class"] = type(hf).__name__
    write_json("synthetic.expected.json", exp)

    # The same vocabulary as GGUF metadata: qwen2 pre-tokenizer, BOS added, a chat template.
    j = json.loads(tok.to_str())
    tokens = [None] * tok.get_vocab_size()
    for t, i in j["model"]["vocab"].items():
        tokens[i] = t
    merges = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    types = [3 if t in specials else 1 for t in tokens]
    gguf_dir = os.path.join(OUT, "synthetic-gguf")
    os.makedirs(gguf_dir, exist_ok=True)
    path = os.path.join(gguf_dir, "synthetic.gguf")
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4)
    w.add_pad_token_id(2)
    w.add_add_bos_token(True)
    w.add_chat_template(SYNTHETIC_TEMPLATE)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    hf = AutoTokenizer.from_pretrained(gguf_dir, gguf_file="synthetic.gguf")
    exp = expectations(hf, prompts[:100], 10)
    exp["oracle_class"] = type(hf).__name__
    write_json("synthetic-gguf.expected.json", exp)


def synthetic_spm(prompts):
    """A Llama-2/Mistral-style tokenizer.json: BPE on '▁'-spelled text with byte fallback
    (<0x00>..<0xFF> after the specials), Prepend+Replace normalizer, no pre-tokenizer, the
    Replace/ByteFallback/Fuse/Strip decoder and a BOS template. Vocabulary trained here."""
    spm_dir = os.path.join(OUT, "synthetic-spm")
    os.makedirs(spm_dir, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False, limit_alphabet=120)
    tok.train_from_iterator(prompts[:200], trainer)
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    trained = [t for t in sorted(vocab, key=vocab.get) if t not in specials and t not in byte_tokens]
    j["model"]["vocab"] = {t: i for i, t in enumerate(specials + byte_tokens + trained)}
    for a in j["added_tokens"]:
        a["id"] = j["model"]["vocab"][a["content"]]
    j["pre_tokenizer"] = None
    j["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "<s>", "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    Tokenizer.from_str(json.dumps(j)).save(os.path.join(spm_dir, "tokenizer.json"))
    with open(os.path.join(spm_dir, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "clean_up_tokenization_spaces": False,
            },
            f,
            indent=2,
        )
    hf = AutoTokenizer.from_pretrained(spm_dir)
    exp = expectations(hf, prompts[:100], 10)
    exp["oracle_class"] = type(hf).__name__
    write_json("synthetic-spm.expected.json", exp)


def main():
    os.makedirs(OUT, exist_ok=True)
    with gzip.open(DS1000, "rt", encoding="utf-8") as f:
        prompts = [json.loads(line)["prompt"] for line in f]
    ds_sha = file_sha256(DS1000)
    synthetic(prompts)
    synthetic_spm(prompts)
    for name, file in TEST_MODELS:
        path = os.path.join(MODELS_DIR, file)
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run `node scripts/fetch-test-models.mjs` first")
        hf = AutoTokenizer.from_pretrained(MODELS_DIR, gguf_file=file)
        exp = expectations(hf, prompts, FULL_EVERY)
        exp["model_file"] = file
        exp["model_sha256"] = file_sha256(path)
        exp["ds1000_sha256"] = ds_sha
        exp["oracle_class"] = type(hf).__name__
        write_json(f"{name}.expected.json", exp)


if __name__ == "__main__":
    main()
