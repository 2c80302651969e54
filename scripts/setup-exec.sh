#!/usr/bin/env bash
# Creates the DS-1000 execution venv for the sandbox (what `rl4qe setup-exec` runs).
#   bash scripts/setup-exec.sh [VENV_DIR]      default: ${RL4QE_HOME:-~/.cache/rl4qe}/exec-venv
# Unattended and idempotent: installs bubblewrap (apt, when root and missing), creates the venv with
# python3.11, installs the fully pinned src/sandbox/python/requirements-exec.txt with --no-deps,
# writes the offline seaborn datasets, and checks that every package imports. About 7 GB on disk
# (torch's CUDA wheels are 2.8 GB of it; see docs/sandbox.md). Re-running skips a complete venv.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOME_DIR="${RL4QE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/rl4qe}"
VENV="${1:-$HOME_DIR/exec-venv}"
REQ="$ROOT/src/sandbox/python/requirements-exec.txt"
PY="${RL4QE_EXEC_PYTHON:-python3.11}"
STAMP="$VENV/.rl4qe-exec-complete"

if [ "$(id -u)" = 0 ] && ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "setup-exec: installing bubblewrap (sandbox namespaces)"
  (apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null; }) ||
    echo "setup-exec: WARNING: could not install bubblewrap; the sandbox will use its weaker fallback" >&2
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "setup-exec: $VENV is complete (requirements unchanged)"
  exit 0
fi

command -v "$PY" >/dev/null 2>&1 || { echo "setup-exec: $PY not found (set RL4QE_EXEC_PYTHON)" >&2; exit 1; }
echo "setup-exec: creating $VENV with $("$PY" --version)"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade "pip==24.0"
echo "setup-exec: installing $(grep -cv '^#' "$REQ") pinned packages (several GB; minutes)"
"$VENV/bin/python" -m pip install -q --no-deps --only-binary ':all:' -r "$REQ"
DL="$(mktemp -d)"
trap 'rm -rf "$DL"' EXIT
"$VENV/bin/python" "$ROOT/src/sandbox/python/seaborn_data.py" "$DL"
"$VENV/bin/python" - <<'PY'
import importlib, sys
mods = ["numpy", "pandas", "scipy", "sklearn", "matplotlib", "seaborn", "torch", "tensorflow",
        "gensim", "statsmodels", "xgboost", "PIL", "yaml"]
for m in mods:
    mod = importlib.import_module(m)
    print("  %-12s %s" % (m, getattr(mod, "__version__", "?")))
PY
echo "$want" > "$STAMP"
du -sh "$VENV" | sed 's/^/setup-exec: disk /'
echo "setup-exec: done"
