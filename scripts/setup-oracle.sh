#!/usr/bin/env bash
# Creates the oracle venv used by the fixture scripts (scripts/fixtures_*.py) and the PyTorch
# baselines of the benchmarks: ${RL4QE_HOME:-~/.cache/rl4qe}/oracle. About 6 GB (PyPI's torch
# wheel pulls the CUDA libraries; there is no CPU-only torch on PyPI).
set -euo pipefail
home="${RL4QE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/rl4qe}"
venv="$home/oracle"
python3 -m venv "$venv"
"$venv/bin/pip" install -q -r "$(dirname "$0")/requirements-oracle.txt"
echo "oracle venv ready: $venv/bin/python"
