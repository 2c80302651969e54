#!/usr/bin/env python3
"""Oracle fixtures for rl4qe's text rewards (src/rewards/text.ts).

Computes, with the reference Python packages, the text metrics of the RL4QE authors' code
(github.com/davidyuan666/RL4QE utils/reward_util.py and utils/code_metric.py) on >= 1,000
(hypothesis, reference) pairs and writes test/fixtures/rewards/text_pairs.jsonl.

Pinned environment (the rl4qe oracle venv, ~/.cache/rl4qe/oracle):
    Python 3.11.7, nltk==3.10.4, rouge==1.0.1, six==1.17.0 (difflib, re: the 3.11 stdlib)
Regenerate:
    ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_rewards.py
(reads data/ds1000.jsonl.gz or $RL4QE_DATA_DIR/ds1000.jsonl.gz; DS-1000 text is NOT
copied into the fixture: DS-1000 pairs are stored as problem ids and field names, and the
TypeScript test rebuilds them from the gzipped file, as its authors ask the data stay zipped).

Definitions (each exactly as the authors' code or the package computes it):
  bleu          nltk sentence_bleu([ref.lower().split()], hyp.lower().split(),
                weights=(0.25,)*4, smoothing_function=SmoothingFunction().method1)
  bleu_nosmooth the same without smoothing (the authors' reward_util.py as released)
  rouge_l       Rouge().get_scores(hyp, ref)[0]['rouge-l']['f'] on the raw strings (the authors
                do not lower-case here); null where the package raises ValueError (empty input)
  f1, overlap   reward_util.py: unique lower-cased whitespace tokens
  css, code_precision, code_recall, code_f1
                code_metric.py: regex code tokens, difflib.SequenceMatcher(None, hyp, ref).ratio()
"""
import gzip
import json
import os
import random
import sys
import warnings
import difflib
import re

from nltk.translate.bleu_score import sentence_bleu, SmoothingFunction
from rouge import Rouge

# rouge 1.0.1 reconstructs the LCS recursively; long inputs need a deeper stack than 1000.
sys.setrecursionlimit(100000)
warnings.filterwarnings("ignore")  # nltk warns about 0 n-gram overlaps without smoothing

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "test", "fixtures", "rewards", "text_pairs.jsonl")
SMOOTH = SmoothingFunction().method1
ROUGE = Rouge()
CODE_TOKEN_RE = r'[a-zA-Z_]\w*|[-+*/=<>!&|^%(){}[\],.;:]|\d+(?:\.\d+)?'


def find_ds1000():
    env = os.environ.get("RL4QE_DATA_DIR")
    cands = [os.path.join(env, "ds1000.jsonl.gz")] if env else []
    d = ROOT
    while True:
        cands.append(os.path.join(d, "shared", "data", "ds1000.jsonl.gz"))
        up = os.path.dirname(d)
        if up == d:
            break
        d = up
    for c in cands:
        if os.path.exists(c):
            return c
    sys.exit("ds1000.jsonl.gz not found; set RL4QE_DATA_DIR")


def metrics(hyp, ref):
    out = {}
    h, r = hyp.lower().split(), ref.lower().split()
    out["bleu"] = float(sentence_bleu([r], h, weights=(0.25, 0.25, 0.25, 0.25), smoothing_function=SMOOTH))
    out["bleu_nosmooth"] = float(sentence_bleu([r], h, weights=(0.25, 0.25, 0.25, 0.25)))
    try:
        out["rouge_l"] = ROUGE.get_scores(hyp, ref)[0]["rouge-l"]["f"]
    except ValueError:
        out["rouge_l"] = None
    # reward_util.py _f1_score
    hs, rs = set(h), set(r)
    if len(hs) == 0 or len(rs) == 0:
        out["f1"] = 0.0
    else:
        common = hs & rs
        p = len(common) / len(hs)
        rc = len(common) / len(rs)
        out["f1"] = 0.0 if p + rc == 0 else 2 * p * rc / (p + rc)
    # reward_util.py _overlap_score
    out["overlap"] = 0.0 if not rs else len(hs & rs) / len(rs)
    # code_metric.py calculate_metrics
    if not hyp or not ref:
        out.update(css=0.0, code_precision=0.0, code_recall=0.0, code_f1=0.0)
    else:
        gt = re.findall(CODE_TOKEN_RE, hyp.strip().lower())
        tt = re.findall(CODE_TOKEN_RE, ref.strip().lower())
        gs, ts = set(gt), set(tt)
        common = gs & ts
        p = len(common) / len(gs) if gs else 0.0
        rc = len(common) / len(ts) if ts else 0.0
        out["code_precision"] = p
        out["code_recall"] = rc
        out["code_f1"] = 2 * p * rc / (p + rc) if (p + rc) > 0 else 0.0
        out["css"] = difflib.SequenceMatcher(None, gt, tt).ratio()
    return out


EDGE = [
    ("", ""), ("", "a"), ("a", ""), ("a", "a"), ("a", "b"), ("A", "a"), ("a b c d", "a b c d"),
    ("a b c d e", "a b c d"), ("a b", "a b c d e f g"), (" ", " "), (" ", "a"), ("a", " "),
    (".", "."), ("...", "a"), ("a.", "a"), ("a . b", "a. b"), ("a. . b", "a . . b"),
    ("x = 1", "x=1"), ("df.iloc[List]", "df.iloc[ List ]"), ("\t\n", "\n"),
    ("the the the the the the the", "the cat is on the mat"),
    ("Ünïcödé TEXT", "ünïcödé text"), ("中文 测试 中文", "中文 测试"), ("😀 😀 a", "a 😀"),
    ("ΑΣ ΣΑΣ", "ας σας"), ("İstanbul", "i̇stanbul"), ("straße STRASSE", "strasse straße"),
    ("a\u00a0b", "a b"), ("a\x1cb", "a b"), ("a\x85b", "a b"), ("a\ufeffb", "a b"),
    ("a\u200bb", "a b"), ("a\u3000b\u2028c", "a b c"), ("x1 _y 3.14 ٣ ²", "x1 _y 3.14 3 2"),
    ("def f(x):\n    return x+1", "def f(x):\n    return x + 1"),
    ("result = df.groupby('a').sum()", "result = df.groupby(\"a\").sum()"),
    ("a a a a", "a a a a"), ("a b a b a b", "b a b a b a"), ("1 2 3", "1 2 3 4"),
    ("one", "one two three four five six"), ("x" * 50, "x" * 50), ("a.b.c.d", "a.b.c"),
    ("   leading", "leading   "), ("# comment only", "# comment"), ("###", "###"),
    ("é", "é"), ("e\u0301", "é"), ("np.array([1, 2, 3])", "np.array([1,2,3])"),
]


def rand_text(rng, vocab, n):
    seps = [" ", " ", " ", "  ", "\n", "\t", " \n    ", "\u00a0", "\x1c", "\u3000"]
    out = []
    for i in range(n):
        out.append(rng.choice(vocab))
        if i < n - 1:
            out.append(rng.choice(seps))
    return "".join(out)


def main():
    rng = random.Random(20250101)
    ds = [json.loads(l) for l in gzip.open(find_ds1000(), "rt", encoding="utf-8")]
    rows = []

    def add(kind, hyp, ref, extra=None):
        row = {"id": len(rows), "kind": kind}
        if extra:
            row.update(extra)
        else:
            row["hyp"], row["ref"] = hyp, ref
        row.update(metrics(hyp, ref))
        rows.append(row)

    for h, r in EDGE:
        add("edge", h, r)

    small = ["a", "b", "c", "d", "The", "the", "THE", "x", "=", "1", "(", ")", "df", "df.a", ".",
             "..", "np.sum(x)", "é", "中", "😀", "Σ", "_", "x_1", "3.5", "return", "def", "f(x):",
             "[", "]", "'s'", "\"q\"", "+=", "->", "ß", "İ", "٣", "²", "a.", ".b", "#", "\ufeff"]
    for _ in range(560):
        vocab = rng.sample(small, rng.randint(2, len(small)))
        h = rand_text(rng, vocab, rng.randint(0, 40))
        r = rand_text(rng, vocab, rng.randint(0, 40))
        if rng.random() < 0.3:  # a near-copy: shared n-grams
            toks = r.split()
            rng.shuffle(toks[: len(toks) // 3])
            h = " ".join(toks[: rng.randint(0, len(toks))]) + " " + h[: rng.randint(0, 20)]
        add("random", h, r)
    # long synthetic inputs (LCS tables of ~1e6 cells; sentences split by '.')
    for n in (300, 800, 1200):
        vocab = rng.sample(small, 12)
        add("long", rand_text(rng, vocab, n), rand_text(rng, vocab, n + rng.randint(-50, 50)))
    one_sentence = [w for w in small if "." not in w]
    for n in (600, 1000):
        add("long", rand_text(rng, one_sentence, n), rand_text(rng, one_sentence, n))

    # DS-1000 pairs, stored by reference: perturbation siblings, random pairs, prompt vs reference.
    fam = {}
    for p in ds:
        m = p["metadata"]
        fam.setdefault((m["library"], m["perturbation_origin_id"]), []).append(m["problem_id"])
    sib = [ids for ids in fam.values() if len(ids) > 1]
    def ds_pair(a, fa, b, fb):
        add("ds1000", ds[a][fa], ds[b][fb], {"a": [a, fa], "b": [b, fb]})
    for _ in range(200):
        ids = rng.choice(sib)
        a, b = rng.sample(ids, 2)
        ds_pair(a, "reference_code", b, "reference_code")
    for _ in range(150):
        a, b = rng.randrange(1000), rng.randrange(1000)
        ds_pair(a, "reference_code", b, "reference_code")
    for _ in range(40):
        a = rng.randrange(1000)
        ds_pair(a, "prompt", a, "reference_code")
    for _ in range(10):
        a, b = rng.randrange(1000), rng.randrange(1000)
        ds_pair(a, "prompt", b, "prompt")

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} pairs to {OUT}")


if __name__ == "__main__":
    main()
