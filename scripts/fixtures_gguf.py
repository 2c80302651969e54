#!/usr/bin/env python3
# Oracle fixtures for rl4qe's GGUF reader and dequantisation (src/io/gguf).
#
# Pinned versions (the oracle venv /root/.cache/rl4qe/oracle): python 3.11, gguf==0.19.0,
# numpy==2.4.6.  Regenerate with:
#   /root/.cache/rl4qe/oracle/bin/python scripts/fixtures_gguf.py
# (run `node scripts/fetch-test-models.mjs` first so the blocks taken from the real test models
# are included; without them the script stops with a message).
#
# Writes test/fixtures/io/gguf/dequant.gguf, written by gguf-py's GGUFWriter, holding:
#   - for each quantisation type T and each source S: a tensor `T.S.q` with the raw quantised
#     bytes (type T) and a tensor `T.S.f32` (F32) with gguf.quants.dequantize of those bytes.
#     Sources: `quant` (gguf.quants.quantize of seeded normal data, where gguf-py implements it),
#     `rand` (seeded random block bytes with sane f16 scales, for every type), `model` (the first
#     rows of a real tensor of that type from the offline test models).
#   - metadata of every GGUF value type (checked by the reader's typed-access tests).
import os
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
import gguf.quants as quants

assert gguf.__version__ if hasattr(gguf, "__version__") else True

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "io", "gguf", "dequant.gguf")
MODELS = os.path.join(
    os.environ.get("RL4QE_HOME", os.path.expanduser("~/.cache/rl4qe")), "test-models"
)
rng = np.random.default_rng(1234)

TYPES = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K]

# byte offsets of f16 scale fields inside each block (so random blocks get finite, sane scales)
F16_FIELDS = {
    T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def random_blocks(t, n_blocks):
    blk, size = GGML_QUANT_SIZES[t]
    if t == T.F32:
        return rng.standard_normal(n_blocks * 64).astype(np.float32).view(np.uint8), 64 * n_blocks
    if t in (T.F16, T.BF16):
        x = rng.standard_normal(n_blocks * 64).astype(np.float32)
        return quants.quantize(x, t).view(np.uint8).reshape(-1), 64 * n_blocks
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS[t]:
        scale = (rng.random(n_blocks) * 0.05 + 0.001).astype(np.float16)
        if off == 2 and t in (T.Q4_1, T.Q5_1):
            scale = (rng.standard_normal(n_blocks) * 0.1).astype(np.float16)
        raw[:, off : off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1), blk * n_blocks


def add_pair(w, name, t, raw_bytes, n_elems):
    raw_bytes = np.ascontiguousarray(raw_bytes, dtype=np.uint8).reshape(-1)
    blk, size = GGML_QUANT_SIZES[t]
    assert raw_bytes.size == n_elems // blk * size, (name, raw_bytes.size, n_elems)
    deq = quants.dequantize(raw_bytes.reshape(1, -1), t).reshape(-1).astype(np.float32)
    assert deq.size == n_elems
    if t == T.F32:
        w.add_tensor(f"{name}.q", raw_bytes.view(np.float32).reshape(1, -1))
    else:
        # gguf-py takes the byte shape of raw quantised data and derives the element shape
        w.add_tensor(f"{name}.q", raw_bytes.reshape(1, -1), raw_shape=[1, raw_bytes.size], raw_dtype=t)
    w.add_tensor(f"{name}.f32", deq.reshape(1, -1))


def model_rows(t):
    """First rows (up to 1024 elements) of a real tensor of type t from the test models."""
    for fname in ("smollm2-135m-instruct-q4_1.gguf", "qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf"):
        path = os.path.join(MODELS, fname)
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run `node scripts/fetch-test-models.mjs` first")
        r = GGUFReader(path)
        for ti in r.tensors:
            if ti.tensor_type != t or len(ti.shape) < 2:
                continue
            blk, size = GGML_QUANT_SIZES[t]
            data = np.asarray(ti.data).view(np.uint8).reshape(-1)
            n_elems = (min(1024, int(ti.shape[0]) * 2) // blk) * blk
            return data[: n_elems // blk * size].copy(), n_elems, f"{fname}:{ti.name}"
    return None


def main():
    w = GGUFWriter(OUT, "fixture")
    w.add_name("rl4qe dequant fixture")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo ✓ 🙂")
    w.add_uint64("test.u64", 2**40 + 3)
    w.add_int64("test.i64", -(2**40) - 3)
    w.add_float64("test.f64", 0.1)
    w.add_array("test.arr_i32", [1, -2, 3])
    w.add_array("test.arr_str", ["a", "", "ü"])
    w.add_array("test.arr_f32", [0.5, -0.25])
    sources = []
    for t in TYPES:
        if t not in (T.F32, T.Q4_K, T.Q5_K, T.Q6_K):
            x = rng.standard_normal(512).astype(np.float32)
            q = quants.quantize(x.reshape(2, 256), t).view(np.uint8).reshape(-1)
            add_pair(w, f"{t.name}.quant", t, q, 512)
            sources.append(f"{t.name}.quant")
        raw, n = random_blocks(t, 4)
        add_pair(w, f"{t.name}.rand", t, raw, n)
        sources.append(f"{t.name}.rand")
        if t not in (T.F32, T.F16, T.BF16):
            got = model_rows(t)
            if got is not None:
                raw, n, where = got
                add_pair(w, f"{t.name}.model", t, raw, n)
                sources.append(f"{t.name}.model ({where})")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")
    for s in sources:
        print("  ", s)


if __name__ == "__main__":
    main()
