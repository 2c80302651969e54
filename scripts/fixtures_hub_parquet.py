#!/usr/bin/env python3
# Parquet files shaped like the ones the Hub repositories of HumanEval (openai/openai_humaneval:
# openai_humaneval/test-00000-of-00001.parquet) and MBPP (google-research-datasets/mbpp:
# full/{prompt,test,validation,train}-00000-of-00001.parquet) carry, written the way the Hub's
# conversions are written: `datasets` Dataset.to_parquet with the repositories' features
# (MBPP task_id int32, test_list / challenge_test_list sequences of strings), snappy-compressed.
# Rows are the first ones of each split of the repository's own data/ files, so a test can
# compare what rl4qe reads from parquet with what it reads from data/*.jsonl.gz.
#
# Versions (the oracle venv, ~/.cache/rl4qe/oracle, python 3.11; bash scripts/setup-oracle.sh):
#   datasets 5.2.0, pyarrow 26.0.1 (installed there as dependencies of trl)
# Run from the repository root:
#   ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_hub_parquet.py
# It (re)writes test/fixtures/io/hub-parquet/{humaneval,mbpp}/... with the repositories' paths.
import gzip
import json
import os
import shutil
import sys

import datasets
import pyarrow
from datasets import Dataset, Features, Sequence, Value

PINNED = {"datasets": "5.2.0", "pyarrow": "26.0.1"}
for mod, want in [(datasets, PINNED["datasets"]), (pyarrow, PINNED["pyarrow"])]:
    if mod.__version__ != want:
        sys.exit(f"{mod.__name__} {mod.__version__} != pinned {want}: use the oracle venv")

OUT = os.path.join("test", "fixtures", "io", "hub-parquet")
N = 4  # rows per split file


def rows(name):
    with gzip.open(os.path.join("data", name), "rt") as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    he = rows("HumanEval.jsonl.gz")[:N]
    he_features = Features({k: Value("string") for k in ["task_id", "prompt", "canonical_solution", "test", "entry_point"]})
    p = os.path.join(OUT, "humaneval", "openai_humaneval", "test-00000-of-00001.parquet")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    Dataset.from_list([{k: r[k] for k in he_features} for r in he], features=he_features).to_parquet(p)

    mb = rows("mbpp.jsonl.gz")
    mb_features = Features(
        {
            "task_id": Value("int32"),
            "text": Value("string"),
            "code": Value("string"),
            "test_list": Sequence(Value("string")),
            "test_setup_code": Value("string"),
            "challenge_test_list": Sequence(Value("string")),
        }
    )
    splits = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 10**9)}
    for split, (lo, hi) in splits.items():
        part = [r for r in mb if lo <= r["task_id"] <= hi][:N]
        p = os.path.join(OUT, "mbpp", "full", f"{split}-00000-of-00001.parquet")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        Dataset.from_list([{k: r.get(k, []) for k in mb_features} for r in part], features=mb_features).to_parquet(p)
    for root, _, files in os.walk(OUT):
        for f in files:
            print(os.path.join(root, f), os.path.getsize(os.path.join(root, f)))


if __name__ == "__main__":
    main()
