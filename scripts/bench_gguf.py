#!/usr/bin/env python3
# Baseline for `rl4qe bench gguf`: gguf-py's reader and numpy dequantisation on the same file.
# Pinned: python 3.11, gguf==0.19.0, numpy==2.4.6 (oracle venv /root/.cache/rl4qe/oracle).
# Usage: /root/.cache/rl4qe/oracle/bin/python scripts/bench_gguf.py FILE RUNS
# Prints one JSON line: median seconds to open+parse the header (all metadata fields decoded) and
# to dequantise every tensor to float32.
import json
import statistics
import sys
import time

from gguf import GGUFReader
from gguf.quants import dequantize


def main():
    path, runs = sys.argv[1], int(sys.argv[2])
    header, deq, n = [], [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        r = GGUFReader(path)
        for f in r.fields.values():  # decode values, as our reader does eagerly
            f.contents()
        t1 = time.perf_counter()
        n = 0
        for t in r.tensors:
            n += dequantize(t.data, t.tensor_type).size
        t2 = time.perf_counter()
        header.append(t1 - t0)
        deq.append(t2 - t1)
    print(json.dumps({"header_s": statistics.median(header), "dequant_s": statistics.median(deq), "weights": n}))


if __name__ == "__main__":
    main()
